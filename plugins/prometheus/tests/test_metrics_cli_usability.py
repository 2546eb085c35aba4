"""`metrics serve` and `metrics write` help shows an example, and --queue
completes queue names from the store in force (issue 15, item 14)."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from localqueue import PersistentQueue
from localqueue.cli import build_cli


def test_metrics_commands_show_an_example() -> None:
    for command in ("serve", "write"):
        result = CliRunner().invoke(build_cli(), ["metrics", command, "--help"])
        assert result.exit_code == 0
        assert f"Example:\n    $ localqueue metrics {command} " in result.output


def test_queue_option_completes_queue_names(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    for name in ("emails", "events", "jobs"):
        with PersistentQueue(name, store=url) as q:
            q.put(1)
    cli = build_cli()
    metrics = cli.commands["metrics"]
    assert isinstance(metrics, click.Group)
    for command_name in ("serve", "write"):
        command = metrics.commands[command_name]
        option = next(p for p in command.params if p.name == "queues")
        root = click.Context(cli)
        root.params["store_url"] = url
        ctx = click.Context(command, parent=root)
        assert [item.value for item in option.shell_complete(ctx, "e")] == ["emails", "events"]
