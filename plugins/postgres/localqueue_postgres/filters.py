"""MessageFilter as SQL for the PostgreSQL store.

Mirrors ``localqueue.store.helpers.matches``. ``error_contains`` is the one
part left to Python: it must fold case exactly as ``str.casefold`` does on
every store, which no PostgreSQL function matches for all of Unicode.
"""

from __future__ import annotations

from typing import Any

from localqueue.store import MessageFilter, State
from localqueue_postgres.sql import NOW, STATE_SQL

# Age for filters: dead letters age from failure, others from creation.
AGE_REF = "(CASE WHEN state = 2 AND failed_at IS NOT NULL THEN failed_at ELSE created_at END)"


def where_sql(
    state: State | None, flt: MessageFilter | None, params: dict[str, Any], *, now: str = NOW
) -> str:
    """The WHERE clause (after ``queue = %(queue)s``) for a state and a filter."""
    parts: list[str] = []
    if state is not None:
        parts.append(STATE_SQL[state.value].format(now=now))
    if flt is not None:
        if flt.ids is not None:
            params["f_ids"] = [int(i) for i in flt.ids]
            parts.append("id = ANY(%(f_ids)s::bigint[])")
        if flt.error_type is not None:
            params["f_error_type"] = flt.error_type
            parts.append("error_type = %(f_error_type)s")
        if flt.min_attempts is not None:
            params["f_min_attempts"] = flt.min_attempts
            parts.append("attempts >= %(f_min_attempts)s")
        if flt.failed_after is not None:
            params["f_failed_after"] = flt.failed_after
            parts.append("failed_at >= %(f_failed_after)s::float8")
        if flt.older_than is not None:
            params["f_older_than"] = flt.older_than
            parts.append(f"{now} - {AGE_REF} >= %(f_older_than)s::float8")
    return "".join(f" AND {part}" for part in parts)


def needs_python(flt: MessageFilter | None) -> bool:
    return flt is not None and flt.error_contains is not None
