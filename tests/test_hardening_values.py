"""Issue 15, items 6 and 8: values and arguments that could never work are
refused up front, with one line, instead of failing later.

6. A value nested too deeply for JSON to read back is refused by ``put``
   with SerializationError (not RecursionError, and not accepted only to
   dead-letter on every delivery); ``queue add`` says so in one line.
8. A ``lease_timeout`` below the clock's resolution is refused (minimum
   1 ms); queue names refuse DEL and C1 control characters.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from localqueue import PersistentQueue, QueueSpec, SerializationError
from localqueue.cli import build_cli
from localqueue.serializers import MAX_JSON_DEPTH, JSONSerializer
from localqueue.store.validation import MIN_LEASE_TIMEOUT, check_queue_name
from localqueue.stores.memory import MemoryStore
from localqueue.stores.sqlite import SQLiteStore


def nested(depth: int, leaf: object = 0) -> object:
    """A list nested ``depth`` levels deep, with a dict every other level."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def deeper(frames: int, then: object) -> object:
    """Call ``then`` with ``frames`` more Python frames on the stack."""
    if frames:
        return deeper(frames - 1, then)
    return then()  # type: ignore[operator]


# -- item 6: nesting -----------------------------------------------------------------------


def test_item6_a_value_nested_past_the_recursion_limit_is_a_serialization_error() -> None:
    queue = PersistentQueue("jobs", store=MemoryStore())
    value = json.loads("[" * 900 + "]" * 900)  # parses at the top of the stack
    for too_deep in (nested(100_000), value):
        with pytest.raises(SerializationError, match="nested") as caught:
            queue.put(too_deep)
        assert "\n" not in str(caught.value)
    with pytest.raises(SerializationError, match="nested"):
        queue.put_many([1, nested(5_000)])
    assert queue.stats().total == 0


def test_item6_what_put_accepts_can_be_read_back_even_deep_in_the_stack() -> None:
    """The old failure: a value just under the encoder's limit was stored and
    then failed to decode on every delivery, so it always dead-lettered."""
    queue = PersistentQueue("jobs", store=MemoryStore())
    serializer = JSONSerializer()
    # Find the deepest value the encoder alone manages here...
    lo, hi = 1, 5_000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            serializer.dumps(nested(mid))
            lo = mid
        except SerializationError:
            hi = mid - 1
    assert lo == MAX_JSON_DEPTH  # ...it is the documented limit, not the stack's
    queue.put(nested(MAX_JSON_DEPTH))
    with pytest.raises(SerializationError, match=f"at most {MAX_JSON_DEPTH} levels"):
        queue.put(nested(MAX_JSON_DEPTH + 1))
    # A handler runs some frames down (worker loop, plugin hooks, the user's
    # own code): what was accepted still decodes there.
    message = queue.get(block=False)
    assert deeper(300, lambda: message.value) == nested(MAX_JSON_DEPTH)


def test_item6_the_depth_check_is_exact_and_ignores_brackets_in_strings() -> None:
    serializer = JSONSerializer()
    fine = [
        ["[" * 2_000, "{" * 2_000],  # brackets inside strings are not nesting
        [{"id": n, "tags": [n, [n]]} for n in range(2_000)],  # wide, shallow
        [nested(MAX_JSON_DEPTH - 1, 'quote " and [['), nested(MAX_JSON_DEPTH - 1, "\\")],
        nested(MAX_JSON_DEPTH, ']]]] }}}} \\ \\" [[[['),
    ]
    for value in fine:
        assert json.loads(serializer.dumps(value)) == value
    for value in (
        nested(MAX_JSON_DEPTH + 1, 'a "quoted" ] string'),
        ["]" * 5_000, nested(MAX_JSON_DEPTH + 1)],  # closers in a string hide nothing
        [nested(MAX_JSON_DEPTH), [nested(MAX_JSON_DEPTH)]],
        (nested(MAX_JSON_DEPTH),),  # tuples are arrays too
    ):
        with pytest.raises(SerializationError, match="nested"):
            serializer.dumps(value)


def test_item6_a_stored_payload_too_deep_to_decode_is_a_serialization_error() -> None:
    data = b"[" * 100_000 + b"]" * 100_000  # written by an older version or another tool
    with pytest.raises(SerializationError, match="nested"):
        JSONSerializer().loads(data)


def test_item6_the_common_put_path_pays_almost_nothing_for_the_check() -> None:
    """Small values (the common case) skip the check on their length alone."""
    serializer = JSONSerializer()
    value = {"id": 1, "email": "someone@example.com", "tags": ["a", "b"]}
    data = serializer.dumps(value)
    assert len(data) <= 2 * MAX_JSON_DEPTH  # below the length that could nest too deep
    started = time.perf_counter()
    for _ in range(20_000):
        serializer.dumps(value)
    assert time.perf_counter() - started < 2.0  # a sanity bound, not a benchmark


def _add(db: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(
        build_cli(), ["--store", str(db), "queue", "add", "jobs", *args], input=input
    )


def _one_line_error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    return lines[0]


def test_item6_queue_add_refuses_deep_nesting_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "q.sqlite3"
    very_deep = "[" * 100_000 + "]" * 100_000  # too deep for the JSON parser itself
    just_over = json.dumps(nested(MAX_JSON_DEPTH + 1))  # parses, but cannot be stored
    for text in (very_deep, just_over):
        assert "nested" in _one_line_error(_add(db, "--value", text))
        assert "nested" in _one_line_error(_add(db, input=text))
    line = _one_line_error(_add(db, "--ndjson", input=f"1\n{very_deep}\n"))
    assert "line 2" in line and "nested" in line
    store = SQLiteStore(db)
    assert PersistentQueue("jobs", store=store).stats().total == 0
    store.close()


# -- item 8: lease_timeout and queue names ----------------------------------------------------


@pytest.mark.parametrize("lease", [1e-300, 5e-324, 1e-9, 0.0009])
def test_item8_a_lease_below_the_minimum_is_refused(lease: float) -> None:
    now = 1_700_000_000.0  # a realistic time.time(): its spacing is about 2.4e-7 s
    assert now + lease == now or lease >= 1e-7  # such a lease would end as it starts
    with pytest.raises(ValueError, match=r"lease_timeout must be at least 0\.001 seconds"):
        PersistentQueue("jobs", store=MemoryStore(), lease_timeout=lease)
    with pytest.raises(ValueError, match=r"lease_timeout must be at least 0\.001 seconds"):
        QueueSpec("jobs").with_lease_timeout(lease)
    with pytest.raises(ValueError, match=r"lease_timeout must be at least 0\.001 seconds"):
        QueueSpec("jobs", lease_timeout=lease)


@pytest.mark.parametrize("seconds", [1e-300, 5e-324, 0.0009])
def test_item8_extend_lease_below_the_minimum_is_refused(seconds: float) -> None:
    queue = PersistentQueue("jobs", store=MemoryStore())
    queue.put(1)
    message = queue.get(block=False)
    with pytest.raises(ValueError, match=r"seconds must be at least 0\.001 seconds"):
        queue.extend_lease(message, seconds)
    queue.ack(message)  # the lease was left as it was


def test_item8_the_minimum_lease_works_end_to_end() -> None:
    assert MIN_LEASE_TIMEOUT == 0.001
    assert time.time() + MIN_LEASE_TIMEOUT > time.time()
    queue = PersistentQueue("jobs", store=MemoryStore(), lease_timeout=MIN_LEASE_TIMEOUT)
    queue.put(1)
    message = queue.get(block=False)
    queue.ack(message)
    assert queue.stats().total == 0


@pytest.mark.parametrize("char", ["\x7f", "\x80", "\x85", "\x9b", "\x9f", "\x00", "\x1f"])
def test_item8_queue_names_refuse_del_and_c1_control_characters(char: str) -> None:
    with pytest.raises(ValueError, match="queue name"):
        check_queue_name(f"jobs{char}x")
    with pytest.raises(ValueError, match="queue name"):
        PersistentQueue(f"jobs{char}x", store=MemoryStore())


def test_item8_printable_unicode_queue_names_are_still_fine() -> None:
    for name in ("jobs", "emails.high", "fila-ção", "キュー", "naïve queue", "\xa0x", "日本"):
        assert check_queue_name(name) == name
