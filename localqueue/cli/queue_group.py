"""``localqueue queue ...``: the operator's everyday loop and recovery loop."""

from __future__ import annotations

import click

from localqueue.cli.lazy_group import LazyGroup
from localqueue.cli.output import example

# Imported when used: `queue add` does not pay for the worker or the views.
QUEUE_COMMANDS = {
    "add": "localqueue.cli.queue_add:add_command",
    "exec": "localqueue.cli.queue_work:exec_command",
    "process": "localqueue.cli.queue_work:process_command",
    "stats": "localqueue.cli.queue_watch:stats_command",
    "health": "localqueue.cli.queue_watch:health_command",
    "list": "localqueue.cli.queue_watch:list_command",
    "dead": "localqueue.cli.queue_recover:dead_command",
    "requeue-dead": "localqueue.cli.queue_recover:requeue_dead_command",
    "inspect": "localqueue.cli.queue_recover:inspect_command",
    "purge": "localqueue.cli.queue_recover:purge_command",
    "prune": "localqueue.cli.queue_retention:prune_command",
    "retention": "localqueue.cli.queue_retention:retention_command",
    "acked": "localqueue.cli.queue_retention:acked_command",
}


def queue_group() -> click.Group:
    @click.group(
        "queue",
        cls=LazyGroup,
        lazy=QUEUE_COMMANDS,
        epilog=example(
            'localqueue queue add emails --value \'{"to": "ann@example.com"}\'',
            "localqueue queue stats emails",
        ),
    )
    def queue() -> None:
        """Add work, run workers, watch queues and recover dead letters."""

    return queue
