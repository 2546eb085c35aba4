"""``localqueue plugins``: what is loaded, what it implements, which stores exist,
and which installed plugins failed to load."""

from __future__ import annotations

import click

from localqueue import __version__
from localqueue.cli.output import emit_json, example, json_option, table
from localqueue.plugins import list_plugins, plugin_failures
from localqueue.store.url import store_schemes


@click.command("plugins", epilog=example("localqueue plugins --json"))
@json_option
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool) -> None:
    """Loaded plugins with versions, the hooks each implements, and store schemes.

    An installed plugin that failed to load is listed with its error, and the
    exit code is then 1.
    """
    # This command must work with a broken plugin installed: it is how the
    # user finds out which one (other commands refuse to run; see app.py).
    plugins = [{**p, "error": None} for p in list_plugins(allow_failures=True)]
    failures = plugin_failures()
    plugins += [
        {"name": f["name"], "builtin": False, "distribution": f["distribution"], "hooks": [],
         "error": f["error"]}
        for f in failures
    ]  # fmt: skip
    plugins.sort(key=lambda p: str(p["name"]))
    found = store_schemes(allow_failures=True)
    schemes = {
        scheme: {"plugin": plugin, "description": entry.description}
        for scheme, (entry, plugin) in sorted(found.items())
    }
    if as_json:
        emit_json({"localqueue": __version__, "plugins": plugins, "store_schemes": schemes})
    else:
        click.echo(f"localqueue {__version__}\n")
        rows = [
            [
                p["name"],
                "built-in" if p["builtin"] else (p["distribution"] or "-"),
                "FAILED TO LOAD (below)" if p["error"] else ", ".join(p["hooks"]),
            ]
            for p in plugins
        ]
        click.echo(table(rows, ["plugin", "from", "hooks"]))
        click.echo()
        click.echo(table([[s, v["plugin"], v["description"]] for s, v in schemes.items()],
                         ["store scheme", "plugin", "description"]))  # fmt: skip
        if failures:
            click.echo()
            for failure in failures:
                click.echo(f"failed: {failure['error']}")
    if failures:
        ctx.exit(1)
