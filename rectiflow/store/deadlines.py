"""Deadlines, escalations, notifications and the working-day calendar, for the SQL store.

The sweep claims due cases with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite's write
lock serializes it) and records each batch on the fast path.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import bindparam

from rectiflow.engine.storage import EscalationPlan
from rectiflow.engine.types import Case, Escalation, Notification
from rectiflow.store.reads import SELECT_CASE, case_of
from rectiflow.store.tables import calendar_t, case_t, escalation_t, note_t, notification_t
from rectiflow.store.transactions import SqlTransactions

_CLAIM = (
    SELECT_CASE.where(
        case_t.c.next_escalation_at <= bindparam("now"),
        case_t.c.paused_at.is_(None),
    )
    .order_by(case_t.c.next_escalation_at, case_t.c.id)
    .limit(bindparam("limit", type_=sa.Integer))
)
_CLAIM_SKIP_LOCKED = _CLAIM.with_for_update(of=case_t, skip_locked=True)
_NEXT_LEVEL = case_t.update().where(
    case_t.c.id == bindparam("where_id"), case_t.c.visit == bindparam("where_visit")
)
_ESCALATION_KEYS = ["case_id", "visit", "state", "level", "due_at", "fired_at"]
_NOTIFICATION_KEYS = ["case_id", "kind", "level", "role", "created_at", "key"]
_CALENDAR_DAYS = sa.select(calendar_t.c.day, calendar_t.c.workday).order_by(calendar_t.c.day)


class DeadlineRecords(SqlTransactions):
    """Mixed into SqlStore: the sweep's claims and records, and the calendar."""

    @functools.cached_property
    def _insert_escalation(self) -> Any:  # the dialect's INSERT, so built once per store
        return self._insert(escalation_t).on_conflict_do_nothing().inline()

    @functools.cached_property
    def _insert_notification(self) -> Any:
        return self._insert(notification_t).on_conflict_do_nothing().inline()

    def escalate_batch(
        self, now: dt.datetime, limit: int, plan: Callable[[Case], EscalationPlan]
    ) -> tuple[int, list[Escalation]]:
        """Claim up to ``limit`` due cases, record their due levels, commit. Returns
        (cases claimed, escalations newly recorded)."""
        recorded: list[Escalation] = []
        with self._cursor() as cursor:
            claim = self.statements(_CLAIM if self.is_sqlite else _CLAIM_SKIP_LOCKED)
            cases = [Case(**row) for row in claim.dicts(cursor, {"now": now, "limit": limit})]
            insert_escalation = self.statements(self._insert_escalation, _ESCALATION_KEYS)
            insert_notification = self.statements(self._insert_notification, _NOTIFICATION_KEYS)
            next_level = self.statements(_NEXT_LEVEL, ["next_level", "next_escalation_at"])
            for case in cases:
                decided = plan(case)
                for esc in decided.escalations:
                    inserted = insert_escalation.execute(cursor, {
                        "case_id": esc.case_id, "visit": esc.visit, "state": esc.state,
                        "level": esc.level, "due_at": esc.due_at, "fired_at": esc.fired_at,
                    }).rowcount  # fmt: skip
                    if inserted:
                        recorded.append(esc)
                if decided.notifications:
                    insert_notification.executemany(cursor, [
                        {"case_id": case.id, "kind": "escalation", "level": level,
                         "role": role, "created_at": now, "key": key}
                        for level, role, key in decided.notifications
                    ])  # fmt: skip
                next_level.execute(cursor, {
                    "next_level": decided.next_level,
                    "next_escalation_at": decided.next_escalation_at,
                    "where_id": case.id, "where_visit": case.visit,
                })  # fmt: skip
        return len(cases), recorded

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
        ).order_by(escalation_t.c.id)  # fmt: skip
        if case_id is not None:
            stmt = stmt.where(escalation_t.c.case_id == case_id)
        with self._read() as conn:
            return [Escalation(**r._mapping) for r in conn.execute(stmt)]

    def add_notifications(
        self, rows: Iterable[tuple[int, str, str | None, str, str]], at: dt.datetime
    ) -> int:
        values = [
            {"case_id": c, "kind": kind, "level": level, "role": role, "key": key, "created_at": at}
            for c, kind, level, role, key in rows
        ]
        if not values:
            return 0
        # Count the rows RETURNING gives back: psycopg reports rowcount -1 for executemany.
        stmt = self._insert(notification_t).on_conflict_do_nothing().returning(notification_t.c.id)
        with self._write() as conn:
            return len(conn.execute(stmt, values).all())

    def list_notifications(
        self, case_id: int | None = None, kind: str | None = None
    ) -> list[Notification]:
        stmt = sa.select(
            notification_t.c.id, notification_t.c.case_id, notification_t.c.kind,
            notification_t.c.level, notification_t.c.role, notification_t.c.created_at,
            notification_t.c.key,
        ).order_by(notification_t.c.id)  # fmt: skip
        if case_id is not None:
            stmt = stmt.where(notification_t.c.case_id == case_id)
        if kind is not None:
            stmt = stmt.where(notification_t.c.kind == kind)
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
