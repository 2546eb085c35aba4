"""Shared output for commands: a readable table on a terminal, stable JSON with --json.

JSON documents are what scripts should parse; their keys are documented in
docs/cli.md. Streams (``--watch``) print one JSON object per line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the result as one JSON document (see docs/cli.md).",
)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """Left-aligned columns; numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [
        all(isinstance(row[i], (int, float)) for row in rows) and rows != []
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(list(headers)), *(line(row) for row in cells)])


# C0 and C1 control characters and DEL, shown as escapes: a cell holds text a
# job wrote (an error message, a command's stderr), and an escape sequence in
# it must not clear the operator's screen or retitle the terminal.
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}


def printable(text: str) -> str:
    """``text`` with its control characters written as ``\\xNN`` escapes."""
    return text.translate(_CONTROLS)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return printable(str(value))


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


MAX_DURATION = 10 * 365 * 86400.0  # beyond this, timers overflow (time_t, TIMEOUT_MAX)


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    """Seconds, as a number or with a unit: 30, 1.5, 500ms, 5m, 2h, 1d."""

    name = "seconds"

    def __init__(self, minimum: float = 0.0) -> None:
        self.minimum = minimum

    _units: ClassVar[dict[str, float]] = {
        "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0
    }  # fmt: skip

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = float(value)
        else:
            match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|d)?\s*", str(value))
            if not match:
                self.fail(
                    f"{value!r} is not a duration; use seconds or 500ms, 5m, 2h, 1d", param, ctx
                )
            seconds = float(match.group(1)) * self._units[match.group(2) or "s"]
        if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
            self.fail(f"{value!r} is not a duration >= 0", param, ctx)
        if seconds < self.minimum:
            self.fail(f"{value!r} is shorter than the minimum, {self.minimum:g}s", param, ctx)
        if seconds > MAX_DURATION:
            self.fail(f"{value!r} is longer than 10 years; use a smaller duration", param, ctx)
        return seconds


DURATION = Duration()

# SQLite's (and PostgreSQL's bigint) largest integer: message ids and counts
# beyond it could never match, and would fail deep in the store.
MAX_INTEGER = 2**63 - 1
PRIORITY = click.IntRange(-(2**31), 2**31 - 1)  # what every store keeps (check_priority)


def example(*command_lines: str) -> str:
    """A command's help epilog: its example, printed as written (click's
    ``\\b`` keeps the lines from being rewrapped)."""
    return "\b\nExample:\n" + "\n".join(f"  $ {line}" for line in command_lines)


class StoreInt(click.IntRange):
    """A whole number from ``minimum`` up to what a store can hold (63 bits);
    help shows only the lower bound, the upper one is no choice to make."""

    def __init__(self, minimum: int) -> None:
        super().__init__(minimum, MAX_INTEGER)

    def _describe_range(self) -> str:
        return f"x>={self.min}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = value if isinstance(value, int) else click.INT.convert(value, param, ctx)
        if number > MAX_INTEGER:
            self.fail(f"{number} is more than a store can hold (at most {MAX_INTEGER})", param, ctx)
        return super().convert(number, param, ctx)


POSITIVE_INT = StoreInt(1)
NON_NEGATIVE_INT = StoreInt(0)
MESSAGE_ID = POSITIVE_INT  # ids are positive and what a store holds
