"""RedisStore: the delivery contract on a Redis server.

Design (docs/redis.md has the long form):

* Every write is one Lua script (localqueue_redis.scripts), so it runs
  atomically on the server: two workers never lease the same message, and a
  crash of a client never leaves half an operation behind.
* Time comes from the server's ``TIME``, read inside each script, or from
  an injected test clock whose value is passed to every script.
* One ``available_at`` per message is both "delayed until" and "leased
  until", as in the SQLite store: per priority a sorted set scored by it, so
  an expired lease is claimable again with no sweep.
* Ids come from one ``INCR`` counter and are never reused.
* ``wait`` subscribes to the queue's channel, which every write that makes
  work available publishes to, and sleeps until a message arrives or the
  earliest delayed or leased message comes due.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.commands.core import Script

from localqueue.store import (
    EXPIRED_ERROR_TYPE,
    WORKER_FORGET_AFTER,
    ClaimResult,
    Clock,
    EnqueueResult,
    ErrorInfo,
    FinishedCounts,
    Lease,
    MessageFilter,
    MessageRecord,
    NewMessage,
    QueueStats,
    SchemaVersionError,
    ServerClock,
    SettleAction,
    Settlement,
    SettleResult,
    State,
    StoreError,
    StoreInfo,
    StoreNotFound,
    batch_order,
    check_positive_int,
    matches,
    new_receipt,
)
from localqueue_redis import encoding as enc
from localqueue_redis import scripts
from localqueue_redis.connection import Runner, first_line, make_client
from localqueue_redis.durability import Persistence, check_durability, read_persistence
from localqueue_redis.url import parse_redis_url
from localqueue_redis.waiting import Waker

SCHEMA_VERSION = 1
PAGE = 500  # records read per round trip when listing or selecting
SLICE = 2000  # messages one purge script looks at (a script holds the server)


class RedisStore:
    """The Redis store. Thread-safe; any number of processes and hosts may share it."""

    def __init__(self, url: str, *, clock: Clock | None = None, create: bool = True) -> None:
        parsed = parse_redis_url(url)
        self.url = parsed.display_url
        self.prefix = parsed.prefix
        self.where = parsed.where
        self._test_clock = clock
        self._client = make_client(parsed.connection)
        self._runner = Runner(self.where)
        self._ids_key = f"{self.prefix}:ids"
        self._queues_key = f"{self.prefix}:queues"
        self._meta_key = f"{self.prefix}:meta"
        self._scripts: dict[str, Script] = {
            name: self._client.register_script(getattr(scripts, name))
            for name in (
                *("ENQUEUE", "CLAIM", "ACK", "RELEASE", "DEAD_LETTER", "EXTEND"),
                *(
                    "SETTLE_AND_CLAIM",
                    "REQUEUE",
                    "PURGE",
                    "PURGE_SLICE",
                    "READ",
                    "STATS",
                    "NEXT_DUE",
                ),
                *("HEARTBEAT", "IMPORT"),
            )
        }
        self._waker = Waker(self._client)
        self.persistence = self._open(create, parsed.require_durability)
        self.clock: Clock = clock if clock is not None else ServerClock(self._server_time)

    # -- opening ---------------------------------------------------------------

    def _open(self, create: bool, require_durability: bool) -> Persistence:
        try:
            self._client.ping()
            persistence = read_persistence(self._client, self.where)
            check_durability(persistence, self.where, require_durability)
            version = self._client.hget(self._meta_key, "version")
            if version is None:
                if not create and not self._client.exists(self._ids_key):
                    raise StoreNotFound(
                        f"no localqueue store at {self.url} (no keys under prefix "
                        f"{self.prefix!r}); check the URL and its prefix= option"
                    )
                self._client.hsetnx(self._meta_key, "version", SCHEMA_VERSION)
            elif int(version) > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the Redis store at {self.url} has key layout version {int(version)}, newer "
                    f"than this localqueue-redis supports ({SCHEMA_VERSION}); upgrade "
                    "localqueue-redis",
                    found=int(version),
                    supported=SCHEMA_VERSION,
                )
            return persistence
        except redis.AuthenticationError as exc:
            self._client.close()
            raise StoreError(
                f"Redis at {self.where} refused the credentials ({first_line(exc)}); check the "
                "user and password in the store URL"
            ) from exc
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            self._client.close()
            raise StoreError(
                f"cannot connect to Redis at {self.where}: {first_line(exc)}; check the store "
                "URL and that the server is running and reachable"
            ) from exc
        except redis.RedisError as exc:
            self._client.close()
            raise StoreError(
                f"Redis at {self.where} refused to open the store: {first_line(exc)}"
            ) from exc
        except BaseException:
            self._client.close()
            raise

    # -- plumbing ------------------------------------------------------------

    def _keys(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}:"

    def _channel(self, queue: str) -> str:
        return f"{self.prefix}:wake:{{{queue}}}"

    def _now_arg(self) -> str:
        return "" if self._test_clock is None else repr(float(self._test_clock.now()))

    def _call(
        self,
        operation: str,
        name: str,
        queue: str,
        args: Sequence[str | int | float | bytes],
        *,
        read_only: bool = False,
        store_keys: bool = False,
    ) -> Any:
        keys = [self._keys(queue)]
        if store_keys:
            keys += [self._ids_key, self._queues_key]
        script = self._scripts[name]
        full = [self._now_arg(), self._channel(queue), *args]
        return self._runner.run(
            operation, lambda: script(keys=keys, args=full), read_only=read_only
        )

    def _server_time(self) -> float:
        def read() -> float:
            seconds, micros = self._client.time()
            return float(seconds) + float(micros) / 1_000_000

        return self._runner.run("reading the server clock", read, read_only=True)

    # -- protocol --------------------------------------------------------------

    def enqueue(self, queue: str, messages: Sequence[NewMessage]) -> EnqueueResult:
        if not messages:
            return EnqueueResult([], [])
        args: list[str | bytes] = [queue]
        for msg in messages:
            if not isinstance(msg.payload, bytes):
                raise ValueError(f"payload must be bytes, got {type(msg.payload).__name__}")
            args += [
                msg.payload,
                repr(float(msg.delay)),
                str(int(msg.priority)),
                enc.opt(msg.dedupe_key),
            ]
        now_text, out = self._call("put", "ENQUEUE", queue, args, store_keys=True)
        now = float(now_text)
        records: list[MessageRecord] = []
        added: list[bool] = []
        for msg, item in zip(messages, out, strict=True):
            if isinstance(item, bytes):
                available = now + float(msg.delay)
                state = State.DELAYED if available > now else State.READY
                records.append(
                    MessageRecord(
                        int(item),
                        queue,
                        msg.payload,
                        state,
                        msg.priority,
                        0,
                        now,
                        available,
                        None,
                        None,
                        None,
                        None,
                        None,
                        msg.dedupe_key,
                    )
                )
                added.append(True)
            else:
                records.append(enc.record(queue, item, now))
                added.append(False)
        return EnqueueResult(records, added)

    def _claim_args(
        self, worker_id: str, limit: int, lease_seconds: float, max_attempts: int | None
    ) -> list[str]:
        return [
            worker_id,
            str(int(limit)),
            repr(float(lease_seconds)),
            "" if max_attempts is None else str(int(max_attempts)),
            EXPIRED_ERROR_TYPE,
            enc.EXHAUSTED,
        ]

    @staticmethod
    def _claim_result(queue: str, now: float, leased: Any, dead: Any) -> ClaimResult:
        out = [enc.record(queue, row, now) for row in leased]
        if len(out) > 1:
            out.sort(key=batch_order)
        return ClaimResult(out, [enc.record(queue, row, now) for row in dead])

    def claim(
        self,
        queue: str,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_attempts: int | None = None,
    ) -> ClaimResult:
        check_positive_int("limit", limit)
        args = self._claim_args(worker_id, limit, lease_seconds, max_attempts)
        args += [new_receipt() for _ in range(limit)]
        now_text, leased, dead = self._call("claim", "CLAIM", queue, args)
        return self._claim_result(queue, float(now_text), leased, dead)

    def ack(self, queue: str, leases: Sequence[Lease]) -> list[Lease]:
        if not leases:
            return []
        args: list[str] = []
        for lease in leases:
            args += [enc.member(lease.id), lease.receipt]
        stale = self._call("ack", "ACK", queue, args)
        return [leases[int(position) - 1] for position in stale]

    def release(
        self, queue: str, lease: Lease, *, delay: float = 0.0, error: ErrorInfo | None = None
    ) -> bool:
        args = [enc.member(lease.id), lease.receipt, repr(float(delay)), *enc.error_args(error)]
        return bool(self._call("release", "RELEASE", queue, args))

    def dead_letter(self, queue: str, lease: Lease, *, error: ErrorInfo | None = None) -> bool:
        args = [enc.member(lease.id), lease.receipt, *enc.error_args(error)]
        return bool(self._call("dead_letter", "DEAD_LETTER", queue, args))

    def extend(self, queue: str, lease: Lease, seconds: float) -> float | None:
        args = [enc.member(lease.id), lease.receipt, repr(float(seconds))]
        end = self._call("extend", "EXTEND", queue, args)
        return None if end is None else float(end)

    def settle_and_claim(
        self,
        queue: str,
        settlements: Sequence[Settlement],
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_attempts: int | None = None,
    ) -> SettleResult:
        """Settle and claim in one script: nobody sees one half without the other."""
        check_positive_int("limit", limit)
        args = self._claim_args(worker_id, limit, lease_seconds, max_attempts)
        args.append(str(len(settlements)))
        for item in settlements:
            action = {SettleAction.ACK: "a", SettleAction.RELEASE: "r"}.get(item.action, "d")
            error = (
                enc.error_args(item.error)
                if item.action is not SettleAction.ACK
                else enc.error_args(None)
            )
            args += [
                action,
                enc.member(item.lease.id),
                item.lease.receipt,
                repr(float(item.delay)),
                *error,
            ]
        args += [new_receipt() for _ in range(limit)]
        now_text, stale, leased, dead = self._call(
            "settle_and_claim", "SETTLE_AND_CLAIM", queue, args
        )
        lost = [settlements[int(position) - 1].lease for position in stale]
        if lost:
            return SettleResult(lost, ClaimResult([], []))
        return SettleResult([], self._claim_result(queue, float(now_text), leased, dead))

    # -- reading ---------------------------------------------------------------

    def _page(
        self, queue: str, which: str, after: int, count: int, lite: bool
    ) -> tuple[float, list[MessageRecord]]:
        args = ["page", which, str(after), str(count), "lite" if lite else "full"]
        now_text, rows = self._call("list", "READ", queue, args, read_only=True)
        now = float(now_text)
        return now, [enc.record(queue, row, now) for row in rows]

    def _select(
        self,
        queue: str,
        state: State | None,
        flt: MessageFilter | None,
        after: int,
        limit: int | None,
        *,
        lite: bool = False,
    ) -> tuple[float | None, list[MessageRecord]]:
        """Matching records in id order, at most ``limit``, and the time last read.

        ``lite`` leaves the payloads out (empty), for callers that only select.
        """
        which = "dead" if state is State.DEAD else "all"
        out: list[MessageRecord] = []
        now: float | None = None
        if flt is not None and flt.ids is not None:
            wanted = sorted({int(i) for i in flt.ids if int(i) > after})
            for start in range(0, len(wanted), PAGE):
                chunk = [enc.member(i) for i in wanted[start : start + PAGE]]
                now_text, rows = self._call("list", "READ", queue, ["ids", *chunk], read_only=True)
                now = float(now_text)
                for row in rows:
                    record = enc.record(queue, row, now)
                    if (state is None or record.state is state) and matches(flt, record, now):
                        out.append(record)
                        if limit is not None and len(out) >= limit:
                            return now, out
            return now, out
        while True:
            now, page = self._page(queue, which, after, PAGE, lite)
            for record in page:
                if (state is None or record.state is state) and matches(flt, record, now):
                    out.append(record)
                    if limit is not None and len(out) >= limit:
                        return now, out
            if len(page) < PAGE:
                return now, out
            after = page[-1].id

    def get(self, queue: str, message_id: int) -> MessageRecord | None:
        now_text, rows = self._call(
            "get", "READ", queue, ["ids", enc.member(message_id)], read_only=True
        )
        return enc.record(queue, rows[0], float(now_text)) if rows else None

    def list_messages(
        self,
        queue: str,
        *,
        state: State | None = None,
        filter: MessageFilter | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[MessageRecord]:
        if limit is not None and limit <= 0:
            return []
        after = after_id if after_id is not None else 0
        return self._select(queue, state, filter, after, limit)[1]

    def requeue(
        self,
        queue: str,
        *,
        filter: MessageFilter | None = None,
        delay: float = 0.0,
        dry_run: bool = False,
        limit: int | None = None,
    ) -> list[int]:
        if limit is not None:
            check_positive_int("limit", limit)
        _, chosen = self._select(queue, State.DEAD, filter, 0, limit, lite=True)
        ids = [record.id for record in chosen]
        if dry_run or not ids:
            return ids
        moved: list[int] = []
        for start in range(0, len(ids), PAGE):
            chunk = [enc.member(i) for i in ids[start : start + PAGE]]
            done = self._call("requeue", "REQUEUE", queue, [repr(float(delay)), *chunk])
            moved += [int(m) for m in done]
        return moved

    def purge(
        self,
        queue: str,
        *,
        state: State | None = None,
        filter: MessageFilter | None = None,
        dry_run: bool = False,
    ) -> int:
        if filter is None:
            return self._purge_all(queue, state, dry_run)
        _, chosen = self._select(queue, state, filter, 0, None, lite=True)
        if dry_run or not chosen:
            return len(chosen)
        count = 0
        required = "" if state is None else state.value
        for start in range(0, len(chosen), PAGE):
            chunk = [enc.member(r.id) for r in chosen[start : start + PAGE]]
            count += int(self._call("purge", "PURGE", queue, [required, *chunk]))
        return count

    def _purge_all(self, queue: str, state: State | None, dry_run: bool) -> int:
        """Purge by state alone, on the server, a slice of SLICE messages per script."""
        which = "dead" if state is State.DEAD else "all"
        required = "" if state is None else state.value
        count, after = 0, "0"
        while True:
            matched, seen, after = self._call(
                "purge",
                "PURGE_SLICE",
                queue,
                [required, which, after, str(SLICE), "1" if dry_run else "0"],
                read_only=dry_run,
            )
            count += int(matched)
            if int(seen) < SLICE:
                return count

    def stats(self, queue: str) -> QueueStats:
        now_text, ready, live, inflight, dead, oldest, holders, workers = self._call(
            "stats", "STATS", queue, [], read_only=True
        )
        now = float(now_text)
        by_worker = {
            (enc.text(holders[i]) or ""): int(holders[i + 1]) for i in range(0, len(holders), 2)
        }
        beats = {
            (enc.text(workers[i]) or ""): float(workers[i + 1]) for i in range(0, len(workers), 2)
        }
        return QueueStats(
            queue=queue,
            ready=int(ready),
            delayed=int(live) - int(ready) - int(inflight),
            inflight=int(inflight),
            dead=int(dead),
            oldest_ready_age=None if oldest is None else max(0.0, now - float(oldest)),
            inflight_by_worker=by_worker,
            workers=beats,
        )

    def queues(self) -> list[str]:
        def read() -> list[str]:
            names = sorted(enc.text(m) or "" for m in self._client.smembers(self._queues_key))
            pipe = self._client.pipeline(transaction=False)
            for name in names:
                pipe.zcard(self._keys(name) + "all")
            counts = pipe.execute()
            return [name for name, count in zip(names, counts, strict=True) if int(count) > 0]

        return self._runner.run("list queues", read, read_only=True)

    def finished_counts(self) -> list[FinishedCounts]:
        def read() -> list[FinishedCounts]:
            names = sorted(enc.text(m) or "" for m in self._client.smembers(self._queues_key))
            pipe = self._client.pipeline(transaction=False)
            for name in names:
                pipe.hmget(self._keys(name) + "finished", "acked", "dead")
            totals = pipe.execute()
            return [
                FinishedCounts(name, int(acked or 0), int(dead or 0))
                for name, (acked, dead) in zip(names, totals, strict=True)
                if acked or dead
            ]

        return self._runner.run("finished counts", read, read_only=True)

    def record_heartbeat(self, queue: str, worker_id: str, *, stopped: bool = False) -> None:
        self._call(
            "record_heartbeat",
            "HEARTBEAT",
            queue,
            [worker_id, "1" if stopped else "0", repr(WORKER_FORGET_AFTER)],
        )

    # -- waiting ---------------------------------------------------------------

    def _next_due(self, queue: str) -> tuple[float | None, float]:
        now_text, due = self._call("wait", "NEXT_DUE", queue, [], read_only=True)
        return (None if due is None else float(due)), float(now_text)

    def wait(self, queue: str, timeout: float) -> None:
        if self._runner.closed:
            raise StoreError(f"the Redis store at {self.where} is closed; open a new one")
        self._waker.wait(self._channel(queue), timeout, lambda: self._next_due(queue))

    # -- health and info ---------------------------------------------------------

    def check(self) -> list[str]:
        problems: list[str] = []
        for queue in self.queues():
            for record in self._select(queue, None, None, 0, None, lite=True)[1]:
                if record.state is State.DEAD and record.failed_at is None:
                    problems.append(f"dead letter {record.id} of {queue!r} has no failure time")
                if record.state is State.INFLIGHT and record.receipt is None:
                    problems.append(
                        f"message {record.id} of {queue!r} is inflight without a receipt"
                    )
                if len(problems) >= 10:
                    return problems
        return problems

    def info(self) -> StoreInfo:
        def read() -> dict[str, Any]:
            return dict(self._client.info())

        server = self._runner.run("info", read, read_only=True)
        persistence = read_persistence(self._client, self.where)
        counts: dict[str, dict[str, int]] = {}
        for queue in self.queues():
            stats = self.stats(queue)
            counts[queue] = {
                "ready": stats.ready,
                "delayed": stats.delayed,
                "inflight": stats.inflight,
                "dead": stats.dead,
            }
        settings: dict[str, object] = {
            "redis_version": _plain(server.get("redis_version")),
            "persistence": persistence.describe(),
            "appendonly": persistence.appendonly,
            "appendfsync": persistence.appendfsync,
            "save": persistence.save,
            "maxmemory_policy": persistence.maxmemory_policy,
            "key_prefix": self.prefix,
        }
        sizes = {"used_memory": int(server.get("used_memory", 0))}
        return StoreInfo(self.url, "redis", SCHEMA_VERSION, SCHEMA_VERSION, settings, sizes, counts)

    # -- import (SupportsImport, for localqueue store copy) --------------------------

    def import_conflicts(self, records: Sequence[MessageRecord]) -> list[str]:
        def read() -> list[str]:
            pipe = self._client.pipeline(transaction=False)
            for r in records:
                pipe.exists(self._keys(r.queue) + "m:" + enc.member(r.id))
                pipe.hexists(self._keys(r.queue) + "keys", r.dedupe_key or "")
            answers = pipe.execute()
            problems = []
            for index, r in enumerate(records):
                if answers[2 * index]:
                    problems.append(f"message id {r.id} exists")
                elif r.dedupe_key is not None and answers[2 * index + 1]:
                    problems.append(f"dedupe key {r.dedupe_key!r} is live in queue {r.queue!r}")
            return problems

        return self._runner.run("import", read, read_only=True)

    def import_messages(self, records: Sequence[MessageRecord]) -> None:
        by_queue: dict[str, list[MessageRecord]] = {}
        for record in records:
            by_queue.setdefault(record.queue, []).append(record)
        for queue, group in by_queue.items():
            args: list[str | bytes] = [queue]
            for r in group:
                args += enc.import_args(r)
            ok, problem = self._call("import", "IMPORT", queue, args, store_keys=True)
            if not int(ok):
                raise StoreError(
                    f"cannot import into {self.url}: {enc.text(problem)} in queue {queue!r}"
                )

    def close(self) -> None:
        if self._runner.closed:
            return
        self._runner.closed = True
        self._waker.drop()
        self._client.close()


def _plain(value: object) -> object:
    return value.decode() if isinstance(value, bytes) else value
