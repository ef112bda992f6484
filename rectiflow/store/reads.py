"""Reading cases and what hangs off them, for the SQL store: lists, pages, counts, and the
measures, escalations and notes of many cases at once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import bindparam
from sqlalchemy.engine import Row

from rectiflow.engine.types import (
    Case,
    Escalation,
    Extension,
    HistoryEntry,
    Measure,
    Note,
    Notification,
)
from rectiflow.store.fast import Prepared
from rectiflow.store.tables import (
    case_co_unit_t,
    case_t,
    escalation_t,
    extension_t,
    history_t,
    measure_t,
    note_t,
    notification_t,
    unit_t,
)
from rectiflow.store.transactions import SqlTransactions

# ref_key is the store's own (the unique form of source + ref), not a field of Case.
CASE_COLUMNS = [*(c for c in case_t.c if c.key != "ref_key"), unit_t.c.path.label("unit_path")]
SELECT_CASE = sa.select(*CASE_COLUMNS).join(unit_t, unit_t.c.code == case_t.c.unit)
# The same, its columns in the order of Case's fields: a row makes a Case with Case(*row).
_BY_KEY = {c.key: c for c in CASE_COLUMNS}
_SELECT_CASE_FIELDS = sa.select(*(_BY_KEY[f.name] for f in dataclasses.fields(Case))).join(
    unit_t, unit_t.c.code == case_t.c.unit
)
# An outbox row's columns, in the order of Notification's fields.
NOTIFICATION_COLUMNS = [
    notification_t.c[f.name] for f in dataclasses.fields(Notification)
]  # fmt: skip
CASE_BY_ID = SELECT_CASE.where(case_t.c.id == bindparam("id"))
MEASURES_OF_CASE = (
    sa.select(measure_t).where(measure_t.c.case_id == bindparam("case_id")).order_by(measure_t.c.id)
)
_R = TypeVar("_R")
_IDS_PER_QUERY = 900  # under SQLite's limit of bound parameters (999 before 3.32)


def case_of(row: Row[Any]) -> Case:
    return Case(**row._mapping)


def _measure(row: Row[Any]) -> Measure:
    return Measure(**row._mapping)


@functools.cache
def _of_cases_statement(table: sa.Table, record: Any) -> Any:
    """The rows of ``table`` whose case is one of 900 ids, in the order of its id, with the
    columns in the order of ``record``'s fields (so a row makes one with ``record(*row)``):
    built once (900 bind parameters take a while), so the fast path compiles it once per
    store. The slots share one type object, which the dialect adapts once, not 900 times."""
    columns = [table.c[f.name] for f in dataclasses.fields(record)]
    integer = sa.Integer()
    slots = [bindparam(f"id{i}", type_=integer) for i in range(_IDS_PER_QUERY)]
    return sa.select(*columns).where(table.c.case_id.in_(slots)).order_by(table.c.id)


@functools.cache
def _of_case_range_statement(table: sa.Table, record: Any) -> Any:
    """The same for the cases whose ids lie from ``low`` to ``high``: two bind parameters,
    where the 900 slots above take a program's start 15 ms to build and compile a table."""
    columns = [table.c[f.name] for f in dataclasses.fields(record)]
    between = table.c.case_id.between(
        bindparam("low", type_=sa.Integer()), bindparam("high", type_=sa.Integer())
    )
    return sa.select(*columns).where(between).order_by(table.c.id)


class _Memo(dict[Any, Any]):
    """A column's conversion, each distinct raw value converted once: a list's times repeat
    (a deadline's end of day, a batch's moment), and the conversions (e.g. an ISO-8601 text
    to an aware datetime, in Python) are pure functions of the raw value."""

    def __init__(self, process: Callable[[Any], Any]) -> None:
        super().__init__({None: None})
        self.process = process

    def __missing__(self, raw: Any) -> Any:
        done = self[raw] = self.process(raw)
        return done


def _records(
    prepared: Prepared, cursor: Any, values: dict[str, Any], record: Callable[..., _R]
) -> list[_R]:
    """Like ``prepared.rows``, each row made into ``record(*row)``; the rows are taken
    column by column (a ``map`` over each column in C, where a loop over the rows would
    run Python for every value), each column converted through a ``_Memo``."""
    raws = prepared.execute(cursor, values).fetchall()
    if not raws:
        return []
    columns: list[Any] = list(zip(*raws, strict=True))
    for i, process in prepared.convert:
        columns[i] = map(_Memo(process).__getitem__, columns[i])
    return list(map(record, *columns))


class CaseReads(SqlTransactions):
    """Mixed into SqlStore: the read queries over cases."""

    def list_cases(
        self, *, unit_paths: Sequence[str] | None = None, state: str | None = None,
        provisional_only: bool = False,
    ) -> list[Case]:  # fmt: skip
        stmt = SELECT_CASE.order_by(case_t.c.id)
        if unit_paths is not None:
            stmt = stmt.where(
                sa.or_(*(unit_t.c.path.startswith(p, autoescape=True) for p in unit_paths))
            )
        if state is not None:
            stmt = stmt.where(case_t.c.state == state)
        if provisional_only:
            stmt = stmt.where(case_t.c.due_at.is_not(None), case_t.c.due_provisional.is_(True))
        with self._read() as conn:
            return [case_of(r) for r in conn.execute(stmt)]

    def _case_filters(
        self, *, unit_paths: Sequence[str] | None = None, state: str | None = None,
        severity: str | None = None, source: str | None = None, category: str | None = None,
        text: str | None = None, opened_since: dt.datetime | None = None,
        opened_before: dt.datetime | None = None, overdue_at: dt.datetime | None = None,
        include_co: bool = False, supervised_by: str | None = None,
    ) -> list[Any]:  # fmt: skip
        c = case_t.c
        where: list[Any] = []
        if unit_paths is not None:
            under = [unit_t.c.path.startswith(p, autoescape=True) for p in unit_paths]
            if include_co:
                co_unit = unit_t.alias("co_unit")
                under.append(sa.exists(
                    sa.select(case_co_unit_t.c.case_id)
                    .join(co_unit, co_unit.c.code == case_co_unit_t.c.unit)
                    .where(case_co_unit_t.c.case_id == c.id, sa.or_(*(
                        co_unit.c.path.startswith(p, autoescape=True) for p in unit_paths
                    )))
                ))  # fmt: skip
            where.append(sa.or_(*under))
        for column, value in ((c.state, state), (c.severity, severity), (c.source, source),
                              (c.category, category)):  # fmt: skip
            if value is not None:
                where.append(column == value)
        if text is not None:
            where.append(
                sa.or_(c.title.icontains(text, autoescape=True),
                       c.description.icontains(text, autoescape=True))
            )  # fmt: skip
        if opened_since is not None:
            where.append(c.created_at >= opened_since)
        if opened_before is not None:
            where.append(c.created_at < opened_before)
        if overdue_at is not None:
            where += [
                c.due_at.is_not(None), c.paused_at.is_(None), c.exempt_until.is_(None),
                c.due_at < overdue_at,
            ]  # fmt: skip
        if supervised_by is not None:  # raised to it, or its own and never raised
            where.append(sa.func.coalesce(c.supervising_unit, c.unit) == supervised_by)
        return where

    def find_cases(
        self, *, limit: int | None = None, offset: int = 0, **filters: Any
    ) -> list[Case]:
        """Cases by id, filtered in SQL (see ``_case_filters``), one page of them."""
        stmt = _SELECT_CASE_FIELDS.where(*self._case_filters(**filters)).order_by(case_t.c.id)
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        with self._cursor(write=False) as cursor:  # a long list: rows straight off DB-API
            return _records(Prepared(stmt, self.engine.dialect, None), cursor, {}, Case)

    def count_cases(self, **filters: Any) -> int:
        """How many cases ``find_cases`` would list without a limit."""
        stmt = (
            sa.select(sa.func.count())
            .select_from(case_t.join(unit_t, unit_t.c.code == case_t.c.unit))
            .where(*self._case_filters(**filters))
        )
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    def list_extensions(self, case_id: int) -> list[Extension]:
        """The case's extension requests, oldest first."""
        stmt = sa.select(extension_t).where(extension_t.c.case_id == case_id)
        with self._read() as conn:
            return [Extension(**r._mapping) for r in conn.execute(stmt.order_by(extension_t.c.id))]

    def _of_cases(
        self, table: sa.Table, record: type[_R], case_ids: Sequence[int]
    ) -> dict[int, list[_R]]:
        """``record``s made of the rows of ``table`` for these cases, by case id, each case's
        in the order of the table's id. Ids that fill at least half of their range (a whole
        ledger, a page of it) are read in one query over the range, and the rows of the
        cases in between that were not asked for are dropped; others, one statement per
        900 ids (compiled once, the last id repeated to fill a short chunk). A case's rows
        all come from one statement. The rows come off the cursor as tuples, made into
        records by position (no dict per row)."""
        ids = sorted(set(case_ids))
        if not ids:
            return {}
        key = cast(Hashable, record)
        wanted: set[int] | None = None
        if ids[-1] - ids[0] < 2 * len(ids):
            statement = _of_case_range_statement(table, key)
            batches = [{"low": ids[0], "high": ids[-1]}]
            wanted = set(ids) if ids[-1] - ids[0] + 1 > len(ids) else None  # None: all
        else:
            statement = _of_cases_statement(table, key)
            batches = []
            for start in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[start : start + _IDS_PER_QUERY]
                chunk += [chunk[-1]] * (_IDS_PER_QUERY - len(chunk))
                batches.append({f"id{i}": v for i, v in enumerate(chunk)})
        found: dict[int, list[_R]] = {}
        with self._cursor(write=False) as cursor:
            prepared = self.statements(statement)
            for values in batches:
                for made in _records(prepared, cursor, values, record):
                    case_id = made.case_id  # type: ignore[attr-defined]
                    rows = found.get(case_id)
                    if rows is not None:
                        rows.append(made)
                    elif wanted is None or case_id in wanted:
                        found[case_id] = [made]
        return found

    def measures_of(self, case_ids: Sequence[int]) -> dict[int, list[Measure]]:
        """The measures of each case, by id (cases without any are left out)."""
        return self._of_cases(measure_t, Measure, case_ids)

    def escalations_of(self, case_ids: Sequence[int]) -> dict[int, list[Escalation]]:
        """The escalations of each case in the order recorded, by id."""
        return self._of_cases(escalation_t, Escalation, case_ids)

    def notes_of(self, case_ids: Sequence[int]) -> dict[int, list[Note]]:
        """The progress notes of each case by time, by id."""
        found = self._of_cases(note_t, Note, case_ids)
        for notes in found.values():
            notes.sort(key=lambda n: (n.at, n.id))
        return found

    def iter_case_ids(self) -> Iterator[int]:
        last = 0
        while True:
            with self._read() as conn:
                ids = (
                    conn.execute(
                        sa.select(case_t.c.id)
                        .where(case_t.c.id > last)
                        .order_by(case_t.c.id)
                        .limit(1000)
                    )
                    .scalars()
                    .all()
                )
            if not ids:
                return
            yield from ids
            last = ids[-1]

    def get_measure(self, measure_id: int) -> Measure | None:
        with self._read() as conn:
            row = conn.execute(sa.select(measure_t).where(measure_t.c.id == measure_id)).first()
        return _measure(row) if row else None

    def list_measures(self, case_id: int) -> list[Measure]:
        with self._read() as conn:
            return [_measure(r) for r in conn.execute(MEASURES_OF_CASE, {"case_id": case_id})]

    def list_history(self, case_id: int) -> list[HistoryEntry]:
        stmt = sa.select(history_t).where(history_t.c.case_id == case_id).order_by(history_t.c.seq)
        with self._read() as conn:
            return [HistoryEntry(**r._mapping) for r in conn.execute(stmt)]

    def list_notes(self, case_id: int) -> list[Note]:
        stmt = (
            sa.select(note_t).where(note_t.c.case_id == case_id).order_by(note_t.c.at, note_t.c.id)
        )
        with self._read() as conn:
            return [Note(**r._mapping) for r in conn.execute(stmt)]
