"""The statements that write a case row and its history entries: shared by the case
transactions (``sql.SqlCaseTx``) and the sweep (``deadlines``), both on the fast path."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam

from rectiflow.engine.types import HistoryEntry
from rectiflow.store.tables import case_t, history_t

# An update where the case is still at the version held (else it changes no row).
UPDATE_CASE = case_t.update().where(
    case_t.c.id == bindparam("where_id"), case_t.c.version == bindparam("where_version")
)
INSERT_HISTORY = history_t.insert()
HISTORY_KEYS = [c.key for c in history_t.c]


def entry_values(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "case_id": entry.case_id, "seq": entry.seq, "trigger": entry.trigger,
        "source": entry.source, "dest": entry.dest, "actor": entry.actor, "at": entry.at,
        "comment": entry.comment, "prev_hash": entry.prev_hash, "hash": entry.hash,
        "data": entry.data,
    }  # fmt: skip
