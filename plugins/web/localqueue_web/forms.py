"""Reading filters and choices from an address or a form, with the CLI's
rules and a one-line reason for anything refused."""

from __future__ import annotations

from collections.abc import Mapping

import click

from localqueue.cli import DURATION
from localqueue.store import MessageFilter, State, check_message_id, check_queue_name
from localqueue_web.pages import ListFilter

MAX_TEXT = 1000  # longest filter text accepted (a filter, not a payload)


class BadInput(ValueError):
    """Input the dashboard refuses; the message says what to give instead."""


def _text(values: Mapping[str, str], key: str) -> str | None:
    value = values.get(key, "").strip()
    if len(value) > MAX_TEXT:
        raise BadInput(f"{key} is longer than {MAX_TEXT} characters")
    return value or None


def queue_name(name: str) -> str:
    try:
        return check_queue_name(name)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def message_id(text: str, what: str = "message id") -> int:
    try:
        return check_message_id(int(text), what)
    except ValueError:
        raise BadInput(f"{what} must be a whole number >= 1, got {text[:40]!r}") from None


def state(values: Mapping[str, str]) -> State | None:
    text = _text(values, "state")
    if text is None or text == "all":
        return None
    try:
        return State(text)
    except ValueError:
        choices = ", ".join(s.value for s in State)
        raise BadInput(f"state must be one of {choices}, got {text[:40]!r}") from None


def min_attempts(values: Mapping[str, str]) -> int | None:
    text = _text(values, "min_attempts")
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        number = -1
    if not 0 <= number <= 2**31 - 1:
        raise BadInput(f"min_attempts must be a whole number >= 0, got {text[:40]!r}")
    return number


def duration(values: Mapping[str, str], key: str) -> float | None:
    text = _text(values, key)
    if text is None:
        return None
    try:
        return float(DURATION.convert(text, None, None))
    except click.BadParameter as exc:
        raise BadInput(f"{key}: {exc.message}") from None


def after_id(values: Mapping[str, str]) -> int | None:
    text = _text(values, "after")
    return None if text is None else message_id(text, "after")


def dead_filter(values: Mapping[str, str], now: float) -> tuple[MessageFilter | None, str]:
    """The dead-letter filters of a form (as `queue requeue-dead` takes
    them, and as the listing reads them), and the choice in words."""
    chosen = list_filter(values)
    words = []
    if chosen.error_contains is not None:
        words.append(f"whose latest error contains {chosen.error_contains!r}")
    if chosen.error_type is not None:
        words.append(f"whose latest error is a {chosen.error_type}")
    if chosen.min_attempts is not None:
        words.append(f"delivered at least {chosen.min_attempts} times")
    if chosen.failed_within is not None:
        words.append(f"that failed within {chosen.failed_within:g}s")
    described = "dead letters " + " and ".join(words) if words else "every dead letter"
    return chosen.message_filter(now), described


def list_filter(values: Mapping[str, str]) -> ListFilter:
    """The filters of a queue's message listing, from its address."""
    return ListFilter(
        state=state(values),
        error_contains=_text(values, "error_contains"),
        error_type=_text(values, "error_type"),
        min_attempts=min_attempts(values),
        failed_within=duration(values, "failed_within"),
        failed_within_text=_text(values, "failed_within"),
        after=after_id(values),
    )


def chosen_ids(ids: list[str]) -> list[int]:
    if len(ids) > 10_000:
        raise BadInput("select at most 10,000 messages at once, or act on a filter")
    return sorted({message_id(text) for text in ids})
