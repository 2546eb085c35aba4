"""Start-up cost of the ``localqueue`` command (issue 15, item 13).

Timings belong to examples/startup_benchmark.py (machines here are noisy);
these tests pin what makes start-up slow: modules a command does not need.
Before, every command imported the worker (and asyncio with it) through the
package facade and the built-in policies, and pytest and hypothesis through
the harness's CLI plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import localqueue

# Needed only by workers, the harness, or its tests.
NOT_AT_STARTUP = ("localqueue.worker.runner", "asyncio", "hypothesis", "_pytest", "pytest")

PROBE = """
import json, sys
from localqueue.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def modules_loaded_by(args: list[str], tmp_path: Path) -> set[str]:
    env = dict(os.environ, LOCALQUEUE_STORE=f"sqlite:///{tmp_path / 'queue.db'}")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    last_line = done.stderr.strip().splitlines()[-1]
    return set(json.loads(last_line))


@pytest.mark.parametrize(
    "args",
    [["--version"], ["--help"], ["queue", "add", "jobs", "--value", "1"], ["queue", "stats"]],
    ids=["version", "help", "queue-add", "queue-stats"],
)
def test_command_imports_nothing_it_does_not_need(args: list[str], tmp_path: Path) -> None:
    loaded = modules_loaded_by(args, tmp_path)
    assert "localqueue.cli" in loaded  # the probe did run the command
    assert sorted(loaded & set(NOT_AT_STARTUP)) == []
    if args == ["--version"]:
        # Answered before the command tree (click, the plugins) is imported.
        assert not {"click", "localqueue.cli.app", "localqueue.plugins"} & loaded
    else:
        assert "localqueue.cli.app" in loaded


def test_import_localqueue_is_lazy_but_complete() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, localqueue; print('localqueue.queue' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"
    for name in localqueue.__all__:
        assert getattr(localqueue, name) is not None, name
    assert set(localqueue.__all__) <= set(dir(localqueue))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        localqueue.nope  # noqa: B018


def test_worker_package_names_resolve() -> None:
    import localqueue.worker as worker

    for name in worker.__all__:
        assert getattr(worker, name) is not None, name
    with pytest.raises(AttributeError):
        worker.nope  # noqa: B018


def test_queue_add_imports_no_other_command(tmp_path: Path) -> None:
    # The queue and store groups import a subcommand's module when it runs.
    loaded = modules_loaded_by(["queue", "add", "jobs", "--value", "1"], tmp_path)
    assert "localqueue.cli.queue_add" in loaded
    others = {
        "localqueue.cli.queue_recover",
        "localqueue.cli.queue_watch",
        "localqueue.cli.queue_work",
        "localqueue.cli.queue_retention",
        "localqueue.cli.exec_handler",
        "localqueue.cli.store_copy",
    }
    assert sorted(loaded & others) == []
