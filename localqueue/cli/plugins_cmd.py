"""``localqueue plugins``: what is loaded, what it implements, which stores exist."""

from __future__ import annotations

import click

from localqueue import __version__
from localqueue.cli.output import emit_json, json_option, table
from localqueue.plugins import list_plugins
from localqueue.store.url import store_schemes


@click.command("plugins")
@json_option
def plugins_command(as_json: bool) -> None:
    """Loaded plugins with versions, the hooks each implements, and store schemes."""
    plugins = list_plugins()
    schemes = {
        scheme: {"plugin": plugin, "description": entry.description}
        for scheme, (entry, plugin) in sorted(store_schemes().items())
    }
    if as_json:
        emit_json({"localqueue": __version__, "plugins": plugins, "store_schemes": schemes})
        return
    click.echo(f"localqueue {__version__}\n")
    rows = [
        [
            p["name"],
            "built-in" if p["builtin"] else (p["distribution"] or "-"),
            ", ".join(p["hooks"]),
        ]
        for p in plugins
    ]
    click.echo(table(rows, ["plugin", "from", "hooks"]))
    click.echo()
    click.echo(table([[s, v["plugin"], v["description"]] for s, v in schemes.items()],
                     ["store scheme", "plugin", "description"]))  # fmt: skip
