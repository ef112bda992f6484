"""Deadlines, escalations, notifications and the working-day calendar, for the SQL store.

The sweep claims due cases with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite's write
lock serializes it) and records each batch on the fast path.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam

from rectiflow.engine.errors import ConflictError
from rectiflow.engine.storage import EscalationPlan
from rectiflow.engine.types import Case, Escalation, Notification
from rectiflow.store.case_writes import HISTORY_KEYS, INSERT_HISTORY, UPDATE_CASE, entry_values
from rectiflow.store.reads import NOTIFICATION_COLUMNS, SELECT_CASE, case_of
from rectiflow.store.tables import (
    calendar_t,
    case_co_unit_t,
    case_t,
    escalation_t,
    note_t,
    notification_t,
)
from rectiflow.store.transactions import SqlTransactions

_CLAIM_WHERE = (case_t.c.next_escalation_at <= bindparam("now"), case_t.c.paused_at.is_(None))
_NEXT_LEVEL = case_t.update().where(
    case_t.c.id == bindparam("where_id"), case_t.c.visit == bindparam("where_visit")
)
_ESCALATION_KEYS = ["case_id", "visit", "state", "level", "due_at", "fired_at", "raised_to"]
_NOTIFICATION_KEYS = ["case_id", "kind", "level", "role", "actor", "created_at", "key"]
_CALENDAR_DAYS = sa.select(calendar_t.c.day, calendar_t.c.workday).order_by(calendar_t.c.day)


class DeadlineRecords(SqlTransactions):
    """Mixed into SqlStore: the sweep's claims and records, and the calendar."""

    @functools.cached_property
    def _claim(self) -> Any:
        """Due cases, oldest due first, each with its co-units (unit codes joined by commas,
        which a code never holds): their people hear of remind and warn. Held with
        ``SKIP LOCKED`` on PostgreSQL, so that two sweeps claim different cases."""
        concat = sa.func.group_concat if self.is_sqlite else sa.func.string_agg
        co_units = (
            sa.select(concat(case_co_unit_t.c.unit, sa.literal_column("','")))
            .where(case_co_unit_t.c.case_id == case_t.c.id)
            .scalar_subquery()
            .label("co_units")
        )
        claim = (
            SELECT_CASE.add_columns(co_units)
            .where(*_CLAIM_WHERE)
            .order_by(case_t.c.next_escalation_at, case_t.c.id)
            .limit(bindparam("limit", type_=sa.Integer))
        )
        return claim if self.is_sqlite else claim.with_for_update(of=case_t, skip_locked=True)

    @functools.cached_property
    def _insert_escalation(self) -> Any:  # the dialect's INSERT, so built once per store
        return self._insert(escalation_t).on_conflict_do_nothing().inline()

    @functools.cached_property
    def _insert_notification(self) -> Any:
        return self._insert(notification_t).on_conflict_do_nothing().inline()

    def escalate_batch(
        self, now: dt.datetime, limit: int,
        plan: Callable[[Case, Sequence[str]], EscalationPlan],
    ) -> tuple[int, list[Escalation]]:  # fmt: skip
        """Claim up to ``limit`` due cases, record their due levels, commit. Returns
        (cases claimed, escalations newly recorded)."""
        recorded: list[Escalation] = []
        with self._cursor() as cursor:
            claim = self.statements(self._claim)
            claimed = []
            for row in claim.dicts(cursor, {"now": now, "limit": limit}):
                co_units = row.pop("co_units")
                claimed.append((Case(**row), co_units.split(",") if co_units else []))
            insert_escalation = self.statements(self._insert_escalation, _ESCALATION_KEYS)
            insert_notification = self.statements(self._insert_notification, _NOTIFICATION_KEYS)
            next_level = self.statements(_NEXT_LEVEL, ["next_level", "next_escalation_at"])
            for case, co_units in claimed:
                decided = plan(case, co_units)
                for esc in decided.escalations:
                    inserted = insert_escalation.execute(cursor, {
                        "case_id": esc.case_id, "visit": esc.visit, "state": esc.state,
                        "level": esc.level, "due_at": esc.due_at, "fired_at": esc.fired_at,
                        "raised_to": esc.raised_to,
                    }).rowcount  # fmt: skip
                    if inserted:
                        recorded.append(esc)
                if decided.notifications:
                    insert_notification.executemany(cursor, [
                        {"case_id": case.id, "kind": n.kind, "level": n.level, "role": n.role,
                         "actor": n.actor, "created_at": now, "key": n.key}
                        for n in decided.notifications
                    ])  # fmt: skip
                if decided.change or decided.entry is not None:
                    self._sweep_change(cursor, case, decided)
                    continue
                next_level.execute(cursor, {
                    "next_level": decided.next_level,
                    "next_escalation_at": decided.next_escalation_at,
                    "where_id": case.id, "where_visit": case.visit,
                })  # fmt: skip
        return len(claimed), recorded

    def _sweep_change(self, cursor: Any, case: Case, decided: EscalationPlan) -> None:
        """Write what the sweep changes beyond the ladder's place (a raise, an exemption's
        end with its history entry) on the held case."""
        values: dict[str, Any] = {
            **decided.change, "next_level": decided.next_level,
            "next_escalation_at": decided.next_escalation_at,
        }  # fmt: skip
        entry = decided.entry
        if entry is not None:
            values.update(version=case.version + 1, history_seq=entry.seq, last_hash=entry.hash)
        update = self.statements(UPDATE_CASE, tuple(values))
        where = {"where_id": case.id, "where_version": case.version}
        if update.execute(cursor, {**values, **where}).rowcount != 1:
            raise ConflictError(case.id, case.version, None)  # held: cannot happen
        if entry is not None:
            self.statements(INSERT_HISTORY, HISTORY_KEYS).execute(cursor, entry_values(entry))

    def due_cases(self, now: dt.datetime, after_id: int, limit: int) -> list[Case]:
        stmt = (
            SELECT_CASE.where(
                case_t.c.next_escalation_at <= now,
                case_t.c.paused_at.is_(None),
                case_t.c.id > after_id,
            )
            .order_by(case_t.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [case_of(r) for r in conn.execute(stmt)]

    def next_escalation_at(self) -> dt.datetime | None:
        stmt = sa.select(sa.func.min(case_t.c.next_escalation_at)).where(
            case_t.c.paused_at.is_(None)
        )
        with self._read() as conn:
            value = conn.execute(stmt).scalar()
        if isinstance(value, str):  # min() over the text column bypasses the type decorator
            return dt.datetime.fromisoformat(value)
        return value

    def list_escalations(self, case_id: int | None = None) -> list[Escalation]:
        c = escalation_t.c
        stmt = sa.select(
            c.case_id, c.visit, c.state, c.level, c.due_at, c.fired_at, c.backfilled,
            c.raised_to,
        ).order_by(escalation_t.c.id)  # fmt: skip
        if case_id is not None:
            stmt = stmt.where(escalation_t.c.case_id == case_id)
        with self._read() as conn:
            return [Escalation(**r._mapping) for r in conn.execute(stmt)]

    def add_notifications(
        self, rows: Iterable[tuple[int, str, str | None, str, str, str | None]], at: dt.datetime
    ) -> int:
        values = [
            {"case_id": c, "kind": kind, "level": level, "role": role, "key": key,
             "actor": actor, "created_at": at}
            for c, kind, level, role, key, actor in rows
        ]  # fmt: skip
        if not values:
            return 0
        # Count the rows RETURNING gives back: psycopg reports rowcount -1 for executemany.
        stmt = self._insert(notification_t).on_conflict_do_nothing().returning(notification_t.c.id)
        with self._write() as conn:
            return len(conn.execute(stmt, values).all())

    def list_notifications(
        self, case_id: int | None = None, kind: str | None = None, *,
        actor: str | None = None, level: str | None = None, limit: int | None = None,
    ) -> list[Notification]:  # fmt: skip
        n = notification_t.c
        stmt = sa.select(*NOTIFICATION_COLUMNS).order_by(n.id)
        for column, value in ((n.case_id, case_id), (n.kind, kind), (n.actor, actor),
                              (n.level, level)):  # fmt: skip
            if value is not None:
                stmt = stmt.where(column == value)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            return [Notification(**r._mapping) for r in conn.execute(stmt)]

    def cases_without_note_since(self, since: dt.datetime, after_id: int, limit: int) -> list[Case]:
        noted = sa.select(note_t.c.id).where(note_t.c.case_id == case_t.c.id, note_t.c.at >= since)
        stmt = (
            SELECT_CASE.where(
                # open: a stage deadline runs, or a long-term item (no deadline; the caller
                # leaves out those in a final state)
                sa.or_(case_t.c.due_at.is_not(None), case_t.c.long_term),
                case_t.c.id > after_id,
                ~sa.exists(noted),
            )
            .order_by(case_t.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [case_of(r) for r in conn.execute(stmt)]

    # --- calendar -------------------------------------------------------------------------

    def load_calendar(self, days: Iterable[tuple[dt.date, bool]]) -> int:
        values = [{"day": d, "workday": w} for d, w in days]
        if not values:
            return 0
        with self._write() as conn:
            stmt = self._insert(calendar_t)
            stmt = stmt.on_conflict_do_update(
                index_elements=[calendar_t.c.day], set_={"workday": stmt.excluded.workday}
            )
            conn.execute(stmt, values)
        return len(values)

    def calendar_days(self) -> list[tuple[dt.date, bool]]:
        # Asked again whenever a deadline comes out provisional, in the middle of a
        # transition: the lean read path.
        with self._cursor(write=False) as cursor:
            rows = self.statements(_CALENDAR_DAYS).rows(cursor, {})
        return [(day, bool(workday)) for day, workday in rows]
