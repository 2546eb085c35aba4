"""``localqueue harness run`` refuses options it cannot honour before it
runs anything: a ``--deadline`` that is no number of seconds or is beyond a
week, ``--deadline`` in stateful mode (where nothing enforces it), and a
``--report`` path that cannot be written. A report that still cannot be
written at the end does not hide the verdict.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from localqueue.cli import build_cli
from localqueue_harness import cli_plugin, runner
from localqueue_harness.runner import Report


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Runs started, recorded instead of run: a refusal must come first."""
    started: list[dict[str, Any]] = []

    def fake_run(url: str, **options: Any) -> Report:
        started.append(options)
        report = Report(url, options["mode"], options["seed"], 1, 1, 1)
        report.invariants = {"finished in time": True}
        return report

    def fake_stateful(url: str, examples: int, seed: int) -> Report:
        started.append({"mode": "stateful", "seed": seed})
        report = Report(url, "stateful", seed, 0, 0, 0)
        report.invariants = {"the store agrees with the contract model": True}
        return report

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.setattr(cli_plugin, "_stateful", fake_stateful)
    return started


def harness_run(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(
        build_cli(),
        ["harness", "run", "--store", "memory://options", "--seed", "3",
         "--report", str(tmp_path / "report.json"), *args],
    )  # fmt: skip


def error_line(result: Result) -> str:
    [line] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    return line


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "604801", "0.5"])
def test_a_deadline_that_is_no_time_limit_is_a_usage_error(
    tmp_path: Path, runs: list[dict[str, Any]], value: str
) -> None:
    result = harness_run(tmp_path, "--mode", "throughput", "--deadline", value)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--deadline'" in error_line(result)
    assert runs == []


def test_a_deadline_of_up_to_a_week_is_the_run_s(
    tmp_path: Path, runs: list[dict[str, Any]]
) -> None:
    result = harness_run(tmp_path, "--mode", "crash-recovery", "--deadline", "604800")
    assert result.exit_code == 0, result.output
    assert [run["deadline"] for run in runs] == [604800.0]


@pytest.mark.parametrize("deadline", [math.nan, math.inf, 0.0, 8 * 86400.0])
def test_the_runner_refuses_a_deadline_that_is_no_time_limit(
    tmp_path: Path, deadline: float
) -> None:
    with pytest.raises(ValueError, match="deadline must be more than 0 and at most 604800"):
        runner.run("memory://refused", deadline=deadline, workdir=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything started


@pytest.mark.parametrize("mode", [[], ["--mode", "stateful"]])
def test_a_deadline_in_stateful_mode_is_a_usage_error(
    tmp_path: Path, runs: list[dict[str, Any]], mode: list[str]
) -> None:
    result = harness_run(tmp_path, *mode, "--deadline", "60")
    assert result.exit_code == 2, result.output
    assert "--deadline needs --mode throughput or crash-recovery" in error_line(result)
    assert runs == []
    # Without --deadline the stateful run goes ahead.
    assert harness_run(tmp_path, *mode).exit_code == 0
    assert runs == [{"mode": "stateful", "seed": 3}]


@pytest.mark.parametrize("mode", ["stateful", "throughput"])
def test_a_report_path_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, runs: list[dict[str, Any]], mode: str
) -> None:
    missing = tmp_path / "no-such-dir" / "r.json"
    result = harness_run(tmp_path, "--mode", mode, "--report", str(missing))
    assert result.exit_code == 2, result.output
    assert error_line(result).startswith(
        f"Error: Invalid value for '--report': cannot write the report to {missing}: "
        f"the directory {missing.parent} does not exist"
    )
    (tmp_path / "a-file").write_text("")
    under_a_file = tmp_path / "a-file" / "r.json"
    result = harness_run(tmp_path, "--mode", mode, "--report", str(under_a_file))
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'a-file'} is not a directory" in error_line(result)
    assert runs == []


def test_a_report_that_cannot_be_written_at_the_end_comes_after_the_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "reports"
    directory.mkdir()

    def stateful_that_fails_and_removes_the_directory(url: str, examples: int, seed: int) -> Report:
        directory.rmdir()  # gone during the run
        report = Report(url, "stateful", seed, 0, 0, 0)
        report.invariants = {"the store agrees with the contract model (claim)": False}
        return report

    monkeypatch.setattr(cli_plugin, "_stateful", stateful_that_fails_and_removes_the_directory)
    path = directory / "r.json"
    result = harness_run(tmp_path, "--report", str(path))
    assert result.exit_code == 1, result.output
    assert "stateful on memory://options (seed 3): FAILED" in result.stdout
    assert "FAIL the store agrees with the contract model (claim)" in result.stdout
    assert error_line(result) == (
        f"Error: could not write the report to {path}: No such file or directory"
    )
    # With --json the document is printed all the same.
    directory.mkdir()
    result = harness_run(tmp_path, "--report", str(path), "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["seed"] == 3
    assert "could not write the report" in error_line(result)
