"""A click group whose subcommands are imported when they are used.

Every ``localqueue`` call builds the command tree; importing every command
module for it (the worker, the recovery views, the maintenance commands)
would make ``localqueue queue add`` pay for all of them. A lazy group names
its subcommands as ``"module:attribute"`` and imports one only when it runs,
is completed, or is listed by ``--help``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click


class LazyGroup(click.Group):
    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def all_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        """Every subcommand, imported (for tools that walk the tree)."""
        found = {name: self.get_command(ctx, name) for name in self.list_commands(ctx)}
        return {name: command for name, command in found.items() if command is not None}
