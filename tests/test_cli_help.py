"""`localqueue` and its groups run without a command show their help, as any
click program does, instead of an `Error:` line that holds the whole help."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from localqueue.cli import build_cli


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        ([], "Usage: localqueue [OPTIONS] COMMAND [ARGS]..."),
        (["queue"], "Usage: localqueue queue [OPTIONS] COMMAND [ARGS]..."),
        (["store"], "Usage: localqueue store [OPTIONS] COMMAND [ARGS]..."),
    ],
)
def test_a_group_without_a_command_shows_its_help(args: list[str], usage: str) -> None:
    result = CliRunner().invoke(build_cli(), args, prog_name="localqueue")
    assert result.exit_code == 2  # click's code for "no command given"
    assert result.stderr.startswith(usage)
    assert "Error" not in result.stderr
    assert "Commands:" in result.stderr


def test_a_usage_error_stays_one_line_with_the_help_pointer() -> None:
    result = CliRunner().invoke(build_cli(), ["queue", "nosuch"], prog_name="localqueue")
    assert result.exit_code == 2
    assert result.stderr == "Error: No such command 'nosuch'. (see 'localqueue queue --help')\n"
