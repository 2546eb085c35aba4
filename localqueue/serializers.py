"""Turning values into payload bytes and back. JSON by default; never pickle by default.

Pickle would let whoever can write the queue file run code in every worker,
so it is never the default. Any object with ``dumps``/``loads`` works as a
serializer (see :class:`Serializer`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from localqueue.errors import SerializationError

__all__ = [
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


class JSONSerializer:
    """Compact UTF-8 JSON. NaN and infinities are rejected (they are not JSON)."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        try:
            return _ENCODE(value).encode("utf-8")
        except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
            raise SerializationError(
                f"cannot store value as JSON ({exc}); pass JSON-compatible data "
                "(dict, list, str, int, float, bool, None) or give the queue a serializer"
            ) from exc

    def loads(self, data: bytes) -> Any:
        try:
            return json.loads(data)
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
