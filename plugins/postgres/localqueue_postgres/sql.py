"""The PostgreSQL store's statements. ``{s}`` is the schema, ``NOW`` the time.

Every statement reads the time once, on the server: ``NOW`` is the injected
test clock when one is given (the ``now`` parameter) and otherwise the
server's ``now()``, so workers on many hosts agree on when a lease ends
without trusting their own clocks.
"""

from __future__ import annotations

NOW = "coalesce(%(now)s::float8, extract(epoch FROM now())::float8)"


def storable(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL: write it as the four characters \\x00.

    Applied to what other code hands the store as text - error messages and
    tracebacks (a handler's exception may carry any bytes) and worker ids -
    so that a NUL can never make a release or a claim fail where SQLite
    would have stored it.
    """
    return text.replace("\x00", "\\x00") if text is not None and "\x00" in text else text


COLUMNS = (
    "id, queue, payload, state, priority, attempts, created_at, available_at, leased_by, "
    "receipt, error_type, error_message, error_traceback, error_at, failed_at, dedupe_key"
)
M_COLUMNS = ", ".join(f"m.{c.strip()}" for c in COLUMNS.split(","))

# 122 random bits from the server: a fencing token that is never reused.
NEW_RECEIPT = "replace(gen_random_uuid()::text, '-', '')"

ENQUEUE_ONE = f"""
WITH t AS (SELECT {NOW} AS now),
ins AS (
    INSERT INTO {{s}}.lq_messages
        (queue, payload, state, priority, attempts, created_at, available_at, dedupe_key)
    SELECT %(queue)s, %(payload)s, 0, %(priority)s, 0, t.now, t.now + %(delay)s::float8, NULL
    FROM t
    RETURNING id, created_at, available_at
)
SELECT ins.id, ins.created_at, ins.available_at, pg_notify(%(channel)s, %(queue)s)::text
FROM ins
"""

# Rows are inserted in input order (ORDER BY ord), so identity values rise
# with it: the caller maps sorted ids back onto its inputs.
ENQUEUE_MANY = f"""
WITH t AS (SELECT {NOW} AS now),
ins AS (
    INSERT INTO {{s}}.lq_messages
        (queue, payload, state, priority, attempts, created_at, available_at, dedupe_key)
    SELECT %(queue)s, u.payload, 0, u.priority, 0, t.now, t.now + u.delay, u.key
    FROM t, unnest(%(payloads)b::bytea[], %(priorities)b::int[], %(delays)b::float8[],
                   %(keys)b::text[]) WITH ORDINALITY AS u(payload, priority, delay, key, ord)
    ORDER BY u.ord
    ON CONFLICT (queue, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING id, created_at, available_at, dedupe_key
)
SELECT ins.id, ins.created_at, ins.available_at, ins.dedupe_key FROM ins
"""

# A batch without dedupe keys cannot conflict: one statement in autocommit,
# the notify folded in (the one-row subquery runs once), one round trip
# where the general path takes four (BEGIN, INSERT, NOTIFY, COMMIT). The
# arrays go in binary (%b): psycopg's text format escapes every element of
# a bytea array through a regex, which cost more than the insert.
ENQUEUE_PLAIN = f"""
WITH t AS (SELECT {NOW} AS now),
ins AS (
    INSERT INTO {{s}}.lq_messages
        (queue, payload, state, priority, attempts, created_at, available_at, dedupe_key)
    SELECT %(queue)s, u.payload, 0, u.priority, 0, t.now, t.now + u.delay, NULL
    FROM t, unnest(%(payloads)b::bytea[], %(priorities)b::int[], %(delays)b::float8[])
        WITH ORDINALITY AS u(payload, priority, delay, ord)
    ORDER BY u.ord
    RETURNING id, created_at, available_at
)
SELECT ins.id, ins.created_at, ins.available_at
FROM ins, (SELECT pg_notify(%(channel)s, %(queue)s)) AS notified
"""

# The commonest batch of all - plain values, no delay, default priority -
# sends its payloads alone: two fewer arrays to encode and unnest (about a
# tenth of the statement) and one time per row back instead of two.
ENQUEUE_NOW = f"""
WITH t AS (SELECT {NOW} AS now),
ins AS (
    INSERT INTO {{s}}.lq_messages
        (queue, payload, state, priority, attempts, created_at, available_at, dedupe_key)
    SELECT %(queue)s, u.payload, 0, 0, 0, t.now, t.now, NULL
    FROM t, unnest(%(payloads)b::bytea[]) WITH ORDINALITY AS u(payload, ord)
    ORDER BY u.ord
    RETURNING id, created_at
)
SELECT ins.id, ins.created_at
FROM ins, (SELECT pg_notify(%(channel)s, %(queue)s)) AS notified
"""

NOTIFY = "SELECT pg_notify(%(channel)s, %(queue)s)"

BY_KEYS = f"""
SELECT {COLUMNS}, {NOW} FROM {{s}}.lq_messages
WHERE queue = %(queue)s AND dedupe_key = ANY(%(keys)s::text[])
"""

# One statement: lock the next n in delivery order, skipping rows another
# claim holds, and lease them. "id = ANY(ARRAY(...))" rather than a join or
# IN: it makes the update a primary-key lookup per picked row, where a join
# lets the planner choose a hash join over the whole table. The LIMIT is
# written into the text ({limit}, one prepared statement per batch size):
# as a parameter, the prepared statement's generic plan cannot know it and
# the claim of one message took half as long again. A message whose lease
# expired after its last allowed attempt is dead-lettered by the same
# statement instead. The last column says whether a row was inflight before
# (an expired lease taken over: MessageRecord.reclaimed); RETURNING sees the
# new values, so it is read from the locked rows' copy in "picked" - as one
# array of the taken-over ids, computed once per statement (a subquery per
# row made a claim of 100 a third slower).
_EXHAUSTED = "m.state = 1 AND m.attempts >= %(max)s::int"
CLAIM = f"""
WITH t AS (SELECT {NOW} AS now),
picked AS (
    SELECT c.id, c.state AS was FROM {{s}}.lq_messages c
    WHERE c.queue = %(queue)s AND c.state < 2 AND c.available_at <= (SELECT now FROM t)
    ORDER BY c.priority DESC, c.available_at, c.id
    LIMIT {{{{limit}}}}
    FOR UPDATE SKIP LOCKED
)
UPDATE {{s}}.lq_messages m SET
    state = CASE WHEN {_EXHAUSTED} THEN 2 ELSE 1 END,
    attempts = CASE WHEN {_EXHAUSTED} THEN m.attempts ELSE m.attempts + 1 END,
    available_at = CASE WHEN {_EXHAUSTED} THEN t.now ELSE t.now + %(lease)s::float8 END,
    failed_at = CASE WHEN {_EXHAUSTED} THEN t.now ELSE m.failed_at END,
    error_type = CASE WHEN {_EXHAUSTED} THEN %(expired)s ELSE m.error_type END,
    error_message = CASE WHEN {_EXHAUSTED}
        THEN 'lease expired on attempt ' || m.attempts || '; no attempts left'
        ELSE m.error_message END,
    error_traceback = CASE WHEN {_EXHAUSTED} THEN NULL ELSE m.error_traceback END,
    error_at = CASE WHEN {_EXHAUSTED} THEN t.now ELSE m.error_at END,
    leased_by = CASE WHEN {_EXHAUSTED} THEN NULL ELSE %(worker)s END,
    receipt = CASE WHEN {_EXHAUSTED} THEN NULL ELSE {NEW_RECEIPT} END
FROM t
WHERE m.id = ANY(ARRAY(SELECT id FROM picked))
RETURNING {M_COLUMNS}, t.now, m.id = ANY(ARRAY(SELECT id FROM picked WHERE was = 1))
"""

FENCE = (
    "id = %(id)s AND queue = %(queue)s AND receipt = %(receipt)s AND state = 1 "
    f"AND available_at > {NOW}"
)
ACK_ONE = f"DELETE FROM {{s}}.lq_messages WHERE {FENCE}"
ACK_MANY = f"""
DELETE FROM {{s}}.lq_messages
WHERE queue = %(queue)s AND state = 1 AND available_at > {NOW}
    AND (id, receipt) IN (SELECT * FROM unnest(%(ids)b::bigint[], %(receipts)b::text[]))
RETURNING id, receipt
"""

_KEEP_OR_SET_ERROR = """
    error_type = coalesce(%(etype)s, error_type),
    error_message = CASE WHEN %(etype)s::text IS NULL THEN error_message ELSE %(emessage)s END,
    error_traceback = CASE WHEN %(etype)s::text IS NULL THEN error_traceback ELSE %(etrace)s END,
    error_at = CASE WHEN %(etype)s::text IS NULL THEN error_at ELSE %(eat)s::float8 END
"""
RELEASE = f"""
UPDATE {{s}}.lq_messages SET state = 0, available_at = {NOW} + %(delay)s::float8,
    leased_by = NULL, receipt = NULL, {_KEEP_OR_SET_ERROR}
WHERE {FENCE}
RETURNING pg_notify(%(channel)s, %(queue)s)::text
"""
DEAD_LETTER = f"""
UPDATE {{s}}.lq_messages SET state = 2, available_at = {NOW}, failed_at = {NOW},
    leased_by = NULL, receipt = NULL, {_KEEP_OR_SET_ERROR}
WHERE {FENCE}
"""
EXTEND = f"""
UPDATE {{s}}.lq_messages SET available_at = {NOW} + %(seconds)s::float8
WHERE {FENCE}
RETURNING available_at
"""

REQUEUE = f"""
UPDATE {{s}}.lq_messages SET state = 0, attempts = 0, available_at = {NOW} + %(delay)s::float8,
    failed_at = NULL
WHERE queue = %(queue)s AND state = 2 AND id = ANY(%(ids)s::bigint[])
"""

# The earliest available_at among a queue's queued and leased messages: one
# index seek per distinct priority (a skip scan written out), so waiting on
# a queue with a large delayed backlog does not read the backlog.
NEXT_DUE = f"""
WITH RECURSIVE levels(p) AS (
    SELECT (SELECT priority FROM {{s}}.lq_messages
            WHERE queue = %(queue)s AND state < 2 ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT priority FROM {{s}}.lq_messages
            WHERE queue = %(queue)s AND state < 2 AND priority < levels.p
            ORDER BY priority DESC LIMIT 1)
    FROM levels WHERE levels.p IS NOT NULL
)
SELECT min((SELECT available_at FROM {{s}}.lq_messages
            WHERE queue = %(queue)s AND state < 2 AND priority = levels.p
            ORDER BY priority DESC, available_at LIMIT 1)),
       {NOW}
FROM levels WHERE levels.p IS NOT NULL
"""

# Queue names without reading the messages: jump from one name to the next
# through the two partial indexes that together hold every message.
QUEUES = """
WITH RECURSIVE names(name) AS (
    SELECT least((SELECT min(queue) FROM {s}.lq_messages WHERE state < 2),
                 (SELECT min(queue) FROM {s}.lq_messages WHERE state = 2))
    UNION ALL
    SELECT least((SELECT min(queue) FROM {s}.lq_messages WHERE state < 2 AND queue > names.name),
                 (SELECT min(queue) FROM {s}.lq_messages WHERE state = 2 AND queue > names.name))
    FROM names WHERE names.name IS NOT NULL
)
SELECT name FROM names WHERE name IS NOT NULL
"""

HEARTBEAT = f"""
WITH t AS (SELECT {NOW} AS now),
forget AS (
    DELETE FROM {{s}}.lq_workers
    WHERE queue = %(queue)s AND last_seen < (SELECT now FROM t) - %(forget)s::float8
)
INSERT INTO {{s}}.lq_workers (queue, worker_id, started_at, last_seen)
SELECT %(queue)s, %(worker)s, t.now, t.now FROM t
ON CONFLICT (queue, worker_id) DO UPDATE SET last_seen = excluded.last_seen
"""
WORKER_STOPPED = "DELETE FROM {s}.lq_workers WHERE queue = %(queue)s AND worker_id = %(worker)s"

SERVER_TIME = "SELECT extract(epoch FROM clock_timestamp())::float8"

# How each user-visible state reads in SQL (t.now is the statement's time).
STATE_SQL = {
    "ready": "state < 2 AND available_at <= {now}",
    "delayed": "state = 0 AND available_at > {now}",
    "inflight": "state = 1 AND available_at > {now}",
    "dead": "state = 2",
}
