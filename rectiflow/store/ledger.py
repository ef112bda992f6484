"""Ledgers in the SQL store: external keys, co-units, and a whole import in one transaction."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from rectiflow.engine.errors import ValidationError
from rectiflow.engine.records import ImportedCase, NewCase, ref_key
from rectiflow.engine.types import Case
from rectiflow.store.reads import _IDS_PER_QUERY, SELECT_CASE, case_of
from rectiflow.store.tables import case_co_unit_t, case_t, escalation_t, history_t, measure_t
from rectiflow.store.transactions import SqlTransactions

_CASES_PER_CHUNK = 1000  # imported cases written per executemany

# The columns an import writes (the others, of the loop after the lifecycle, keep their
# defaults: an imported case was never raised, exempted or looked back at here).
_CASE_KEYS = [
    *(f.name for f in dataclasses.fields(NewCase) if f.name != "co_units"),
    "id", "ref_key", "history_seq", "last_hash",
]  # fmt: skip
_HISTORY_KEYS = [c.key for c in history_t.c if c.key != "id"]
_MEASURE_KEYS = ["case_id", "text", "owner", "due", "done_at"]
_ESCALATION_KEYS = ["case_id", "visit", "state", "level", "due_at", "fired_at", "backfilled"]
_INSERT_CASE = case_t.insert()
_INSERT_HISTORY = history_t.insert()
_INSERT_MEASURE = measure_t.insert()
_INSERT_CO_UNIT = case_co_unit_t.insert()
_INSERT_ESCALATION = escalation_t.insert()


class LedgerRecords(SqlTransactions):
    """Mixed into SqlStore."""

    def co_units_of(self, case_ids: Sequence[int]) -> dict[int, list[str]]:
        """Ids that fill at least half of their range (a whole ledger) are read in one query
        over the range, as ``_of_cases`` reads measures; others, 900 a statement."""
        ids = sorted(set(case_ids))
        c = case_co_unit_t.c
        if ids and ids[-1] - ids[0] < 2 * len(ids):
            conditions = [c.case_id.between(ids[0], ids[-1])]
        else:
            chunks = (ids[i : i + _IDS_PER_QUERY] for i in range(0, len(ids), _IDS_PER_QUERY))
            conditions = [c.case_id.in_(chunk) for chunk in chunks]
        wanted = set(ids)
        found: dict[int, list[str]] = {}
        with self._read() as conn:
            for condition in conditions:
                stmt = sa.select(c.case_id, c.unit).where(condition).order_by(c.case_id, c.unit)
                for case_id, unit in conn.execute(stmt):
                    if case_id in wanted:
                        found.setdefault(case_id, []).append(unit)
        return found

    def cases_by_ref(self, keys: Sequence[str]) -> dict[str, Case]:
        found: dict[str, Case] = {}
        with self._read() as conn:
            for i in range(0, len(keys), _IDS_PER_QUERY):
                chunk = list(keys[i : i + _IDS_PER_QUERY])
                stmt = SELECT_CASE.where(case_t.c.ref_key.in_(chunk))
                for row in conn.execute(stmt):
                    case = case_of(row)
                    key = ref_key(case.source, case.ref)
                    assert key is not None
                    found[key] = case
        return found

    def import_cases(
        self, count: int, build: Callable[[Sequence[int]], Iterable[ImportedCase]]
    ) -> list[int]:
        if count == 0:
            return []
        with self._cursor() as cursor:
            # Ids are reserved first because each history entry's hash covers its case id;
            # then every table takes its rows in one executemany.
            if self.is_sqlite:  # BEGIN IMMEDIATE holds the write lock: max(id) stays ours
                cursor.execute("SELECT coalesce(max(id), 0) FROM rcase")
                first = int(cursor.fetchone()[0]) + 1
                ids: list[int] = list(range(first, first + count))
            else:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence('rcase', 'id')) "
                    "FROM generate_series(1, %s)",
                    (count,),
                )
                ids = [int(r[0]) for r in cursor.fetchall()]
            # The cases are built as they are written, a chunk at a time: neither the built
            # cases (each with its entry's data) nor the rows bound for one executemany
            # pile up for a whole 50,000-row ledger; still one transaction.
            items = iter(build(ids))
            while chunk := list(itertools.islice(items, _CASES_PER_CHUNK)):
                self._insert_imported(cursor, chunk)
        return ids

    def _insert_imported(self, cursor: Any, items: Sequence[ImportedCase]) -> None:
        """Every table's rows of these imported cases, one executemany per table."""
        cases: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        measures: list[dict[str, Any]] = []
        co_units: list[dict[str, Any]] = []
        escalations: list[dict[str, Any]] = []
        for item in items:
            new, entry = item.case, item.entry
            cases.append({
                **new.columns(), "id": item.id, "ref_key": ref_key(new.source, new.ref),
                "history_seq": entry.seq, "last_hash": entry.hash,
            })  # fmt: skip
            history.append({k: getattr(entry, k) for k in _HISTORY_KEYS})
            measures.extend(
                {"case_id": item.id, "text": m.text, "owner": m.owner, "due": None,
                 "done_at": m.done_at}
                for m in item.measures
            )  # fmt: skip
            co_units.extend({"case_id": item.id, "unit": u} for u in new.co_units)
            escalations.extend(
                {"case_id": item.id, "visit": e.visit, "state": e.state, "level": e.level,
                 "due_at": e.due_at, "fired_at": e.fired_at, "backfilled": True}
                for e in item.backfilled
            )  # fmt: skip
        try:
            self.statements(_INSERT_CASE, _CASE_KEYS).executemany(cursor, cases)
        except self._dbapi_error as exc:
            if "ref_key" in str(exc) or "uq_rcase_ref_key" in str(exc):
                raise ValidationError(
                    "a case with one of these refs was imported meanwhile; run it again"
                ) from exc
            raise
        self.statements(_INSERT_HISTORY, _HISTORY_KEYS).executemany(cursor, history)
        for stmt, keys, rows in (
            (_INSERT_MEASURE, _MEASURE_KEYS, measures),
            (_INSERT_CO_UNIT, ["case_id", "unit"], co_units),
            (_INSERT_ESCALATION, _ESCALATION_KEYS, escalations),
        ):
            if rows:
                self.statements(stmt, keys).executemany(cursor, rows)
