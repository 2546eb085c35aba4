"""How messages travel to and from the scripts: arguments out, records back.

Times go out as ``repr`` of the float and come back as ``%.17g`` text, so
they round-trip exactly; optional strings go out as ``''`` (none) or ``'='``
and the value; ids travel zero-padded to 16 digits (see scripts.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from localqueue.store import (
    DEAD,
    ErrorInfo,
    MessageRecord,
    State,
    derived_state,
    exhausted_error,
    new_receipt,
    stored_state,
)

SAMPLE = 123456789  # stands for the attempt count in the exhausted error's text
EXHAUSTED = exhausted_error(SAMPLE, 0.0).message.replace("%", "%%").replace(str(SAMPLE), "%d")


def opt(value: str | float | None) -> str:
    """An optional script argument: '' for none, '=' and the value otherwise."""
    if value is None:
        return ""
    return "=" + (repr(value) if isinstance(value, float) else value)


def text(value: bytes | str | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def error_args(error: ErrorInfo | None) -> list[str]:
    if error is None:
        return ["", "", "", ""]
    at = None if error.at is None else float(error.at)
    return [opt(error.type), opt(error.message), opt(error.traceback), opt(at)]


def record(queue: str, row: Sequence[Any], now: float) -> MessageRecord:
    member, payload, st, pr, at, ca, av, by, rc, et, em, etb, eat, fa, dk = row[:15]
    stored = int(st)
    available = float(av)
    state = derived_state(stored, available, now)
    error = None
    if et is not None:
        error = ErrorInfo(
            type=text(et) or "",
            message=text(em) or "",
            traceback=text(etb),
            at=None if eat is None else float(eat),
        )
    inflight = state is State.INFLIGHT
    return MessageRecord(
        int(member), queue, bytes(payload), state, int(pr), int(at), float(ca), available,
        available if inflight else None, text(by) if inflight else None,
        text(rc) if inflight else None, error,
        None if fa is None or stored != DEAD else float(fa), text(dk),
        bool(row[15]) if len(row) > 15 else False,
    )  # fmt: skip


def member(message_id: int) -> str:
    return f"{int(message_id):016d}"


def import_args(r: MessageRecord) -> list[str | bytes]:
    """The 15 values the IMPORT script takes for one copied message.

    An inflight message gets a new receipt: the old one belongs to the
    delivery of the store it was copied from.
    """
    stored = stored_state(r)
    inflight = stored == 1
    failed = None if r.failed_at is None else float(r.failed_at)
    return [
        str(r.id), r.payload, str(stored), str(r.priority), str(r.attempts),
        repr(float(r.created_at)), repr(float(r.available_at)),
        opt(r.leased_by if inflight else None), opt(new_receipt() if inflight else None),
        *error_args(r.last_error), opt(failed), opt(r.dedupe_key),
    ]  # fmt: skip
