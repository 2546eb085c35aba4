"""Turning values into payload bytes and back. JSON by default; never pickle by default.

Pickle would let whoever can write the queue file run code in every worker,
so it is never the default. Any object with ``dumps``/``loads`` works as a
serializer (see :class:`Serializer`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from itertools import accumulate
from typing import Any, Protocol, runtime_checkable

from localqueue.errors import SerializationError

__all__ = [
    "MAX_JSON_DEPTH",
    "JSONSerializer",
    "RawBytesSerializer",
    "Serializer",
]


@runtime_checkable
class Serializer(Protocol):
    """Converts values to bytes for storage and back."""

    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


def _make_encode() -> Callable[[Any], str]:
    # json.dumps with keyword arguments builds a new JSONEncoder on every
    # call; building it once makes a put measurably cheaper.
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return encoder.encode


_ENCODE = _make_encode()
_DECODE = json.JSONDecoder().decode

# How deeply the JSON serializer lets lists and objects nest. Python's JSON
# decoder recurses once per level and fails with RecursionError when the
# stack runs out; the encoder does too, but where it fails depends on how
# deep the caller's stack already is (at the top of a script, both manage
# about sys.getrecursionlimit() levels; a handler runs dozens of frames
# down). So a value just under the encoder's limit at put time could never
# be decoded in a worker and dead-lettered on every delivery. A fixed limit,
# far below the recursion limit, makes what put accepts readable anywhere.
MAX_JSON_DEPTH = 500

_TOO_DEEP = (
    "cannot store value as JSON: it is nested too deeply (lists and objects may "
    f"nest at most {MAX_JSON_DEPTH} levels, so that every worker can read it back); "
    "flatten it, or store it as text"
)

# The bytes of a JSON text that matter for nesting: brackets, quotes, backslashes.
_NOT_MARKS = bytes(range(256)).translate(None, b'[]{}"\\')
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1
_CHUNK = 128  # < MAX_JSON_DEPTH / 2: shallow text never needs a closer look


def _text_nests_deeper(data: bytes, limit: int) -> bool | None:
    """Whether compact JSON ``data`` nests deeper than ``limit``; None when
    the text alone cannot tell cheaply (quotes or brackets inside strings).

    Nesting ``limit + 1`` levels takes at least that many opening brackets,
    so nearly every payload is cleared by its length or one byte count; the
    rest costs one C-speed pass over the bytes and a loop over the brackets.
    """
    if len(data) <= 2 * limit:
        return False
    marks = data.translate(None, _NOT_MARKS)
    if marks.count(b"[") + marks.count(b"{") <= limit:
        return False
    if b"\\" in marks:
        if b'\\"' in data:  # an escaped quote: strings no longer pair up by quotes
            return None
        marks = marks.replace(b"\\", b"")
    # Outside strings, every string is a pair of quotes; with nothing left
    # between any pair, no bracket was inside a string.
    brackets = marks.replace(b'""', b"")
    if b'"' in brackets:
        return None
    level = 0  # exact nesting at the start of each chunk
    for start in range(0, len(brackets), _CHUNK):
        chunk = brackets[start : start + _CHUNK]
        opened = chunk.count(b"[") + chunk.count(b"{")
        if (
            level + opened > limit
            and level + max(accumulate(map(_STEP.__getitem__, chunk))) > limit
        ):
            return True
        level += 2 * opened - len(chunk)
    return False


def _value_nests_deeper(value: Any, limit: int) -> bool:
    """The same question asked of the value, level by level (no recursion)."""
    level = [value]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        inner: list[Any] = []
        for item in level:
            items = item.values() if isinstance(item, dict) else item
            inner.extend(x for x in items if isinstance(x, (list, tuple, dict)))
        level = inner
    return False


class JSONSerializer:
    """Compact UTF-8 JSON. NaN and infinities are rejected (they are not JSON)."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        try:
            data = _ENCODE(value).encode("utf-8")
        except RecursionError:
            raise SerializationError(_TOO_DEEP) from None
        except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            raise SerializationError(
                f"cannot store value as JSON ({exc}); pass JSON-compatible data "
                "(dict, list, str, int, float, bool, None) or give the queue a serializer"
            ) from exc
        # Refuse now what could not be read back later (see MAX_JSON_DEPTH).
        # Small values, the common case, are cleared by their length alone.
        if len(data) > 2 * MAX_JSON_DEPTH:
            deep = _text_nests_deeper(data, MAX_JSON_DEPTH)
            if deep is None:
                deep = _value_nests_deeper(value, MAX_JSON_DEPTH)
            if deep:
                raise SerializationError(_TOO_DEEP)
        return data

    def loads(self, data: bytes) -> Any:
        try:
            if data.__class__ is bytes:
                # What dumps writes: UTF-8 text, decoded without json.loads'
                # encoding detection (measurable on every job a worker runs).
                with contextlib.suppress(ValueError):  # not UTF-8, or not JSON
                    return _DECODE(data.decode("utf-8"))
            return json.loads(data)  # anything else, and every error, the long way
        except RecursionError:
            raise SerializationError(
                "stored payload is JSON nested too deeply for this Python to read "
                f"(more than the {MAX_JSON_DEPTH} levels put accepts); inspect the raw payload"
            ) from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise SerializationError(
                f"stored payload is not valid JSON ({exc}); read it with "
                "a matching serializer, or inspect the raw payload"
            ) from exc


class RawBytesSerializer:
    """Stores bytes as they are; for payloads the application encodes itself."""

    name = "raw"

    def dumps(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise SerializationError(
                f"the raw serializer stores bytes only, got {type(value).__name__}"
            )
        return bytes(value)

    def loads(self, data: bytes) -> Any:
        return bytes(data)
