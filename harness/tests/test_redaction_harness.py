"""No PostgreSQL password in what the CLI prints or writes (issue 15, item 4):
``harness run`` (summary, --json, the report file) and ``store copy`` (a dry
run into a store that does not exist yet, text and --json), on a live server.

The test server trusts its clients, so the password in these URLs is ignored
by it but must never be shown. (``metrics serve`` is checked in
plugins/prometheus/tests; ``redact_url`` itself in tests/test_redaction.py.)
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from localqueue import PersistentQueue
from localqueue.cli import build_cli
from localqueue_harness.runner import run

PASSWORD = "s3cr3t-pw"


def with_password(url: str) -> str:
    """``url`` with PASSWORD as its password (the user kept, or ``postgres``)."""
    scheme, _, rest = url.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    if "@" in authority:
        user, _, tail = rest.partition("@")
        return f"{scheme}://{user.split(':', 1)[0]}:{PASSWORD}@{tail}"
    return f"{scheme}://postgres:{PASSWORD}@{rest}"


@pytest.fixture
def secret_url(postgres_store_url: str) -> str:
    return with_password(postgres_store_url)


def _clean(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text, text


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_harness_run_never_shows_the_password(
    secret_url: str, tmp_path: Path, as_json: bool
) -> None:
    report_file = tmp_path / "report.json"
    argv = ["harness", "run", "--store", secret_url, "--examples", "3", "--seed", "5",
            "--report", str(report_file)] + (["--json"] if as_json else [])  # fmt: skip
    result = CliRunner().invoke(build_cli(), argv)
    assert result.exit_code == 0, result.output
    _clean(result.stdout, result.stderr, report_file.read_text())
    saved = json.loads(report_file.read_text())
    assert saved["passed"] is True and ":***@" in saved["store"]
    if not as_json:
        assert "stateful on postgresql://" in result.stdout and ":***@" in result.stdout


def test_the_process_runner_report_never_shows_the_password(
    secret_url: str, tmp_path: Path
) -> None:
    report = run(secret_url, producers=1, consumers=1, messages=20, seed=3, workdir=tmp_path)
    assert report.passed, report.summary()
    _clean(report.summary(), json.dumps(report.as_dict()))
    assert ":***@" in report.store


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_store_copy_dry_run_into_a_new_postgres_schema_never_shows_the_password(
    postgres_url: str, tmp_path: Path, as_json: bool
) -> None:
    source = f"sqlite://{tmp_path}/src.sqlite3"
    with PersistentQueue("jobs", store=source) as q:
        q.put_many([1, 2])
    schema = f"lq_absent_{uuid.uuid4().hex[:12]}"  # never created: a dry run creates nothing
    server = with_password(postgres_url)
    destination = f"{server}{'&' if '?' in server else '?'}schema={schema}"
    argv = ["store", "copy", source, destination, "--dry-run"] + (["--json"] if as_json else [])
    result = CliRunner().invoke(build_cli(), argv)
    assert result.exit_code == 0, result.output
    _clean(result.stdout, result.stderr)
    if as_json:
        assert ":***@" in json.loads(result.stdout)["destination"]
    else:
        assert "would copy 2 message(s)" in result.stdout and ":***@" in result.stdout


def test_restart_command_lines_never_show_the_password(secret_url: str, tmp_path: Path) -> None:
    # The restart command names the store with its password (as a script
    # that restarts the server might be given it): the lines that say it
    # ran, the summary and the report show it redacted.
    report_file = tmp_path / "report.json"
    argv = ["harness", "run", "--store", secret_url, "--mode", "crash-recovery",
            "--producers", "1", "--consumers", "1", "--messages", "40", "--kills", "1",
            "--seed", "3", "--restart-cmd", f"echo {secret_url} >/dev/null",
            "--report", str(report_file)]  # fmt: skip
    result = CliRunner().invoke(build_cli(), argv)
    assert result.exit_code == 0, result.output
    _clean(result.stdout, result.stderr, report_file.read_text())
    saved = json.loads(report_file.read_text())
    assert ":***@" in saved["restarts"][0]["command"]
    assert "restart: running echo postgresql://" in result.stderr
