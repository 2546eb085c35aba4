"""localqueue-web's plugin module (entry point ``localqueue``): adds the
``localqueue web`` command group."""

from __future__ import annotations

import click

from localqueue import hookimpl


@hookimpl
def localqueue_cli_commands(cli: click.Group) -> None:
    # The web stack (Starlette, uvicorn, Jinja2) is imported only when
    # ``web serve`` runs: this module is imported by every localqueue command.
    from localqueue_web.cli import web_group

    cli.add_command(web_group)
