"""Reports in the SQL store: where every case stands, in one aggregate query, and the
frozen snapshots of each period."""

from __future__ import annotations

import datetime as dt
import json
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from rectiflow.engine.errors import AlreadyTaken
from rectiflow.engine.escalation import LOOKBACK_LEVEL
from rectiflow.engine.types import CaseStanding, SnapshotCase, SnapshotInfo
from rectiflow.store.fast import Prepared
from rectiflow.store.tables import (
    UTCDateTime,
    case_t,
    escalation_t,
    extension_t,
    measure_t,
    snapshot_case_t,
    snapshot_t,
    snapshot_unit_t,
    unit_t,
)
from rectiflow.store.transactions import SqlTransactions

_FETCH = 5000  # rows taken off the cursor at a time: a report streams, it does not hold
_INSERT_SNAPSHOT = snapshot_t.insert()
_SNAPSHOT_KEYS = ["period", "kind", "as_of", "taken_at", "taken_by"]
_INSERT_SNAPSHOT_CASE = snapshot_case_t.insert()
_INSERT_SNAPSHOT_UNIT = snapshot_unit_t.insert()
_SNAPSHOT_UNIT_KEYS = ["period", "unit", "figures"]


class ReportRecords(SqlTransactions):
    """Mixed into SqlStore."""

    def _standings_statement(self, unit_paths: Sequence[str] | None) -> Any:
        c, m, e = case_t.c, measure_t.c, escalation_t.c
        now = sa.bindparam("now", type_=UTCDateTime())
        counted = (
            sa.select(
                m.case_id,
                sa.func.count().label("n"),
                sa.func.count(m.done_at).label("done"),
                sa.func.sum(sa.case((sa.and_(m.done_at.is_(None), m.due < now), 1), else_=0)).label(
                    "late"
                ),
            )
            .group_by(m.case_id)
            .subquery("m")
        )
        concat = sa.func.group_concat if self.is_sqlite else sa.func.string_agg
        reached = (  # the ladder's levels: a look-back is recorded beside them
            sa.select(e.case_id, concat(e.level, ",").label("levels"))
            .select_from(escalation_t.join(case_t, sa.and_(c.id == e.case_id, c.visit == e.visit)))
            .where(e.level != LOOKBACK_LEVEL)
            .group_by(e.case_id)
            .subquery("e")
        )
        x = extension_t.c
        approved = (
            sa.select(x.case_id, sa.func.count().label("n"))
            .where(x.status == "approved")
            .group_by(x.case_id)
            .subquery("x")
        )
        stmt = (
            sa.select(
                c.id, c.workflow, c.workflow_version, c.unit, unit_t.c.path, c.category,
                c.source, c.severity, c.state, c.paused_at.is_not(None), c.long_term,
                c.due_at, c.stage_entered_at, c.visit,
                sa.func.coalesce(counted.c.n, 0), sa.func.coalesce(counted.c.done, 0),
                sa.func.coalesce(counted.c.late, 0), reached.c.levels, c.title,
                c.exempt_until.is_not(None), c.relapses, c.lookback_due_at, c.lookback_result,
                sa.func.coalesce(approved.c.n, 0),
            )
            .select_from(
                case_t.join(unit_t, unit_t.c.code == c.unit)
                .outerjoin(counted, counted.c.case_id == c.id)
                .outerjoin(reached, reached.c.case_id == c.id)
                .outerjoin(approved, approved.c.case_id == c.id)
            )
            .order_by(c.id)
        )  # fmt: skip
        if unit_paths is not None:
            stmt = stmt.where(
                sa.or_(*(unit_t.c.path.startswith(p, autoescape=True) for p in unit_paths))
            )
        return stmt

    def case_standings(
        self, now: dt.datetime, unit_paths: Sequence[str] | None = None
    ) -> Iterator[CaseStanding]:
        prepared = Prepared(self._standings_statement(unit_paths), self.engine.dialect, None)
        to_time, dialect = UTCDateTime().process_result_value, self.engine.dialect
        iso = dt.datetime.fromisoformat if self.is_sqlite else None  # SQLite: UTCDateTime's text
        due_at: dt.datetime | None
        entered: Any
        with self._cursor(write=False) as cursor:
            prepared.execute(cursor, {"now": now})
            while rows := cursor.fetchmany(_FETCH):
                for r in rows:
                    if iso is not None:  # parsed as UTCDateTime parses it, without the call
                        due_at, entered = iso(r[11]) if r[11] is not None else None, iso(r[12])
                        lookback = iso(r[21]) if r[21] is not None else None
                    else:
                        due_at, entered = to_time(r[11], dialect), to_time(r[12], dialect)
                        lookback = to_time(r[21], dialect)
                    yield CaseStanding(
                        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], bool(r[9]),
                        bool(r[10]), due_at, entered,
                        r[13], int(r[14]), int(r[15]), int(r[16]),
                        tuple(r[17].split(",")) if r[17] else (), r[18], bool(r[19]),
                        int(r[20]), lookback, r[22], int(r[23]),
                    )  # fmt: skip

    def save_snapshot(
        self, info: SnapshotInfo, cases: Iterable[SnapshotCase], units: Mapping[str, Any]
    ) -> None:
        # On the DB-API cursor (fast.Prepared): Core's set-up per row cost more than the rest
        # of a snapshot. Still one transaction; the cases go in batches to bound the memory.
        keys = [col.key for col in snapshot_case_t.c]
        try:
            with self._cursor() as cursor:
                self.statements(_INSERT_SNAPSHOT, _SNAPSHOT_KEYS).execute(cursor, {
                    "period": info.period, "kind": info.kind, "as_of": info.as_of,
                    "taken_at": info.taken_at, "taken_by": info.taken_by,
                })  # fmt: skip
                insert_case = self.statements(_INSERT_SNAPSHOT_CASE, keys)
                # every column is given: the bound row is the case's fields in the
                # statement's order (in C), their types' conversions applied, no dict a row
                assert insert_case.positional
                assert not insert_case.defaults
                values, convert = operator.attrgetter(*insert_case.names), insert_case.bind_convert
                batch: list[list[Any]] = []
                for case in cases:
                    row = list(values(case))
                    for i, process in convert:
                        if row[i] is not None:
                            row[i] = process(row[i])
                    batch.append(row)
                    if len(batch) == _FETCH:
                        cursor.executemany(insert_case.sql, batch)
                        batch = []
                if batch:
                    cursor.executemany(insert_case.sql, batch)
                rows = [
                    {"period": info.period, "unit": code, "figures": json.dumps(figures)}
                    for code, figures in units.items()
                ]
                if rows:
                    self.statements(_INSERT_SNAPSHOT_UNIT, _SNAPSHOT_UNIT_KEYS).executemany(
                        cursor, rows
                    )
        except sa.exc.IntegrityError as exc:
            if self.get_snapshot(info.period) is not None:
                raise AlreadyTaken(info.period) from exc
            raise

    def get_snapshot(self, period: str) -> SnapshotInfo | None:
        with self._read() as conn:
            row = conn.execute(sa.select(snapshot_t).where(snapshot_t.c.period == period)).first()
        return SnapshotInfo(**row._mapping) if row is not None else None

    def list_snapshots(self) -> list[SnapshotInfo]:
        with self._read() as conn:
            rows = conn.execute(sa.select(snapshot_t).order_by(snapshot_t.c.period))
            return [SnapshotInfo(**r._mapping) for r in rows]

    def snapshot_cases(
        self, period: str, unit_paths: Sequence[str] | None = None
    ) -> list[SnapshotCase]:
        s = snapshot_case_t.c
        stmt = sa.select(snapshot_case_t).where(s.period == period).order_by(s.case_id)
        if unit_paths is not None:
            stmt = stmt.where(
                sa.or_(*(s.unit_path.startswith(p, autoescape=True) for p in unit_paths))
            )
        with self._read() as conn:
            return [SnapshotCase(**r._mapping) for r in conn.execute(stmt)]

    def snapshot_units(self, period: str) -> dict[str, Any]:
        s = snapshot_unit_t.c
        stmt = sa.select(s.unit, s.figures).where(s.period == period).order_by(s.unit)
        with self._read() as conn:
            return {unit: json.loads(figures) for unit, figures in conn.execute(stmt)}
