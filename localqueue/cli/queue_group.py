"""``localqueue queue ...``: the operator's everyday loop and recovery loop."""

from __future__ import annotations

import click

from localqueue.cli.output import example
from localqueue.cli.queue_add import add_command
from localqueue.cli.queue_recover import (
    dead_command,
    inspect_command,
    purge_command,
    requeue_dead_command,
)
from localqueue.cli.queue_retention import acked_command, prune_command, retention_command
from localqueue.cli.queue_watch import health_command, list_command, stats_command
from localqueue.cli.queue_work import exec_command, process_command


def queue_group() -> click.Group:
    @click.group(
        "queue",
        epilog=example(
            'localqueue queue add emails --value \'{"to": "ann@example.com"}\'',
            "localqueue queue stats emails",
        ),
    )
    def queue() -> None:
        """Add work, run workers, watch queues and recover dead letters."""

    for command in (
        add_command,
        exec_command,
        process_command,
        stats_command,
        health_command,
        dead_command,
        requeue_dead_command,
        inspect_command,
        purge_command,
        prune_command,
        retention_command,
        acked_command,
        list_command,
    ):
        queue.add_command(command)
    return queue
