"""The SQL the SQLite store runs, kept apart from the code that runs it.

Every statement that touches ``lq_messages`` on the hot path is here, with
the reasoning behind its shape (the claim's skip scan, the fence); store.py
binds parameters and turns rows into records.
"""

from __future__ import annotations

from typing import Any

from localqueue.store import (
    EXPIRED_ERROR_TYPE,
    ErrorInfo,
    MessageFilter,
    SettleAction,
    Settlement,
    State,
)

COLUMNS = (
    "id, queue, payload, state, priority, attempts, created_at, available_at, leased_by, "
    "receipt, error_type, error_message, error_traceback, error_at, failed_at, dedupe_key"
)

HIGH_WATER_SQL = (
    "max(coalesce((SELECT max(id) FROM lq_messages), 0), "
    "coalesce((SELECT value FROM lq_meta WHERE key = 'max_id'), 0))"
)
INSERT_SQL = (
    "INSERT INTO lq_messages (id, queue, payload, state, priority, attempts, created_at, "
    f"available_at, dedupe_key) VALUES ({HIGH_WATER_SQL} + 1, ?, ?, 0, ?, 0, ?, ?, ?)"
)

INSERT_WITH_ID_SQL = (
    "INSERT INTO lq_messages (id, queue, payload, state, priority, attempts, created_at, "
    "available_at, dedupe_key) VALUES (?, ?, ?, 0, ?, 0, ?, ?, ?)"
)

# One statement: pick the next n in delivery order through lq_messages_claim
# and lease them. A message whose lease expired after its last allowed
# attempt is dead-lettered by the same statement instead of being handed out.
# RETURNING sees only new values, so a row that was inflight (its lease
# expired) and is leased again tells so from the SET clause, which sees the
# old ones: lq_reclaimed(id) notes its id for MessageRecord.reclaimed. Fresh,
# released and requeued rows never call it.
CLAIM_SQL = f"""
WITH RECURSIVE levels(p) AS (
    SELECT (SELECT priority FROM lq_messages INDEXED BY lq_messages_claim
            WHERE queue = :queue AND state < 2 AND priority <= :max_priority
            ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT priority FROM lq_messages INDEXED BY lq_messages_claim
            WHERE queue = :queue AND state < 2 AND priority < levels.p
            ORDER BY priority DESC LIMIT 1)
    FROM levels WHERE levels.p IS NOT NULL
),
due_level(p) AS (
    SELECT p FROM levels WHERE p IS NOT NULL AND EXISTS (
        SELECT 1 FROM lq_messages INDEXED BY lq_messages_claim
        WHERE queue = :queue AND state < 2 AND priority = levels.p AND available_at <= :now
    ) LIMIT 1
)
UPDATE lq_messages SET
    state = CASE WHEN state = 1 AND attempts >= :max THEN 2
        WHEN state = 1 THEN lq_reclaimed(id) ELSE 1 END,
    attempts = CASE WHEN state = 1 AND attempts >= :max THEN attempts ELSE attempts + 1 END,
    available_at = CASE WHEN state = 1 AND attempts >= :max THEN :now ELSE :until END,
    failed_at = CASE WHEN state = 1 AND attempts >= :max THEN :now ELSE failed_at END,
    error_type = CASE WHEN state = 1 AND attempts >= :max THEN '{EXPIRED_ERROR_TYPE}'
        ELSE error_type END,
    error_message = CASE WHEN state = 1 AND attempts >= :max
        THEN 'lease expired on attempt ' || attempts || '; no attempts left'
        ELSE error_message END,
    error_traceback = CASE WHEN state = 1 AND attempts >= :max THEN NULL ELSE error_traceback END,
    error_at = CASE WHEN state = 1 AND attempts >= :max THEN :now ELSE error_at END,
    leased_by = CASE WHEN state = 1 AND attempts >= :max THEN NULL ELSE :worker END,
    receipt = CASE WHEN state = 1 AND attempts >= :max THEN NULL
        ELSE lower(hex(randomblob(16))) END
WHERE id IN (
    SELECT id FROM lq_messages INDEXED BY lq_messages_claim
    WHERE queue = :queue AND state < 2 AND priority = (SELECT p FROM due_level)
        AND available_at <= :now
    ORDER BY available_at, id
    LIMIT :limit
)
RETURNING {COLUMNS}
"""

FENCE = "id = ? AND queue = ? AND receipt = ? AND state = 1 AND available_at > ?"
ACK_SQL = f"DELETE FROM lq_messages WHERE {FENCE}"
RELEASE_SQL = f"""
UPDATE lq_messages SET state = 0, available_at = ?, leased_by = NULL, receipt = NULL,
    error_type = coalesce(?, error_type), error_message = CASE WHEN ? IS NULL
        THEN error_message ELSE ? END,
    error_traceback = CASE WHEN ? IS NULL THEN error_traceback ELSE ? END,
    error_at = CASE WHEN ? IS NULL THEN error_at ELSE ? END
WHERE {FENCE}
"""
DEAD_LETTER_SQL = f"""
UPDATE lq_messages SET state = 2, available_at = ?, failed_at = ?, leased_by = NULL,
    receipt = NULL,
    error_type = coalesce(?, error_type), error_message = CASE WHEN ? IS NULL
        THEN error_message ELSE ? END,
    error_traceback = CASE WHEN ? IS NULL THEN error_traceback ELSE ? END,
    error_at = CASE WHEN ? IS NULL THEN error_at ELSE ? END
WHERE {FENCE}
"""
EXTEND_SQL = f"UPDATE lq_messages SET available_at = ? WHERE {FENCE}"

STATS_SQL = """
SELECT state, available_at <= ?, count(*) FROM lq_messages INDEXED BY lq_messages_claim
WHERE queue = ? AND state < 2 GROUP BY 1, 2
"""
DEAD_COUNT_SQL = (
    "SELECT count(*) FROM lq_messages INDEXED BY lq_messages_dead WHERE queue = ? AND state = 2"
)
OLDEST_READY_SQL = """
SELECT min(available_at) FROM lq_messages INDEXED BY lq_messages_claim
WHERE queue = ? AND state < 2 AND available_at <= ?
"""
INFLIGHT_BY_WORKER_SQL = """
SELECT leased_by, count(*) FROM lq_messages INDEXED BY lq_messages_claim
WHERE queue = ? AND state < 2 AND state = 1 AND available_at > ? GROUP BY leased_by
"""

# The earliest available_at among non-dead messages of a queue: one index
# seek per distinct priority (a "skip scan" written out), so waiting on a
# queue with a large delayed backlog costs O(priorities * log n), not O(n).
NEXT_DUE_SQL = """
WITH RECURSIVE groups(p) AS (
    SELECT (SELECT priority FROM lq_messages INDEXED BY lq_messages_claim
            WHERE queue = :queue AND state < 2 ORDER BY priority DESC LIMIT 1)
    UNION ALL
    SELECT (SELECT priority FROM lq_messages INDEXED BY lq_messages_claim
            WHERE queue = :queue AND state < 2 AND priority < groups.p
            ORDER BY priority DESC LIMIT 1)
    FROM groups WHERE groups.p IS NOT NULL
)
SELECT min((SELECT available_at FROM lq_messages INDEXED BY lq_messages_claim
            WHERE queue = :queue AND state < 2 AND priority = groups.p
            ORDER BY available_at LIMIT 1))
FROM groups WHERE groups.p IS NOT NULL
"""

QUEUES_SQL = """
WITH RECURSIVE names(name) AS (
    SELECT lq_least(
        (SELECT min(queue) FROM lq_messages INDEXED BY lq_messages_claim WHERE state < 2),
        (SELECT min(queue) FROM lq_messages INDEXED BY lq_messages_dead WHERE state = 2))
    UNION ALL
    SELECT lq_least(
        (SELECT min(queue) FROM lq_messages INDEXED BY lq_messages_claim
         WHERE state < 2 AND queue > names.name),
        (SELECT min(queue) FROM lq_messages INDEXED BY lq_messages_dead
         WHERE state = 2 AND queue > names.name))
    FROM names WHERE names.name IS NOT NULL
)
SELECT name FROM names WHERE name IS NOT NULL
"""

# How each user-visible state reads in SQL (:now is the store clock).
STATE_SQL = {
    State.READY: "state < 2 AND available_at <= :now",
    State.DELAYED: "state = 0 AND available_at > :now",
    State.INFLIGHT: "state = 1 AND available_at > :now",
    State.DEAD: "state = 2",
}

# lq_fold is Python's str.casefold, registered on every connection: SQLite's
# own lower() folds ASCII only, and filters must match the memory store.
ERROR_TEXT_SQL = (
    "lq_fold(CASE WHEN error_type IS NULL THEN '' ELSE error_type || ': ' || "
    "coalesce(error_message, '') END)"
)
# Age for filters: dead letters age from failure, others from creation.
AGE_REF_SQL = "(CASE WHEN state = 2 AND failed_at IS NOT NULL THEN failed_at ELSE created_at END)"


def error_params(error: ErrorInfo | None) -> list[Any]:
    if error is None:
        return [None] * 7
    return [
        error.type,
        error.type,
        error.message,
        error.type,
        error.traceback,
        error.type,
        error.at,
    ]


def settle_statement(queue: str, settlement: Settlement, now: float) -> tuple[str, list[Any]]:
    """The fenced statement (and its parameters) that applies ``settlement``:
    ack, release or dead-letter, as one call or inside settle_and_claim."""
    lease = settlement.lease
    fence = [lease.id, queue, lease.receipt, now]
    if settlement.action is SettleAction.ACK:
        return ACK_SQL, fence
    if settlement.action is SettleAction.RELEASE:
        return RELEASE_SQL, [now + settlement.delay, *error_params(settlement.error), *fence]
    return DEAD_LETTER_SQL, [now, now, *error_params(settlement.error), *fence]


def filter_sql(flt: MessageFilter | None, params: dict[str, Any]) -> str:
    """SQL for a MessageFilter; mirrors localqueue.store.helpers.matches."""
    if flt is None:
        return ""
    parts = []
    if flt.ids is not None:
        ids = [int(i) for i in flt.ids]
        params["ids_json"] = "[" + ",".join(str(i) for i in ids) + "]"
        parts.append("id IN (SELECT value FROM json_each(:ids_json))")
    if flt.error_contains is not None:
        params["error_contains"] = flt.error_contains.casefold()
        parts.append(f"instr({ERROR_TEXT_SQL}, :error_contains) > 0")
    if flt.error_type is not None:
        params["error_type"] = flt.error_type
        parts.append("error_type = :error_type")
    if flt.min_attempts is not None:
        params["min_attempts"] = flt.min_attempts
        parts.append("attempts >= :min_attempts")
    if flt.failed_after is not None:
        params["failed_after"] = flt.failed_after
        parts.append("failed_at >= :failed_after")
    if flt.older_than is not None:
        params["older_than"] = flt.older_than
        parts.append(f":now - {AGE_REF_SQL} >= :older_than")
    return "".join(f" AND {part}" for part in parts)
