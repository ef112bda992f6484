"""Delivery of the outbox in the SQL store: deliveries made from notifications, claimed
under a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), and
every attempt recorded."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from rectiflow.engine.types import Case, Contacts, Delivery, DeliveryAttempt, Notification
from rectiflow.store.reads import _IDS_PER_QUERY, NOTIFICATION_COLUMNS, SELECT_CASE, case_of
from rectiflow.store.tables import (
    actor_contact_t,
    case_t,
    delivery_attempt_t,
    delivery_t,
    notification_t,
)
from rectiflow.store.transactions import SqlTransactions

OPEN = ("pending", "retrying")


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What the dispatcher learned of one delivery's attempt."""

    delivery_id: int
    outcome: str  # delivered, retry, dead
    code: str | None
    detail: str
    next_attempt_at: dt.datetime | None  # for retry


class DeliveryRecords(SqlTransactions):
    """Mixed into SqlStore."""

    # --- contacts -------------------------------------------------------------------------

    def set_contacts(self, contacts: Contacts) -> None:
        values = {
            "actor": contacts.actor, "email": contacts.email, "mobile": contacts.mobile,
            "dingtalk_id": contacts.dingtalk_id, "wecom_id": contacts.wecom_id,
        }  # fmt: skip
        stmt = self._insert(actor_contact_t).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[actor_contact_t.c.actor],
            set_={k: v for k, v in values.items() if k != "actor"},
        )
        with self._write() as conn:
            conn.execute(stmt)

    def contacts_of(self, names: Sequence[str]) -> dict[str, Contacts]:
        c = actor_contact_t.c
        with self._read() as conn:
            rows = conn.execute(sa.select(actor_contact_t).where(c.actor.in_(list(names))))
            return {r.actor: Contacts(**r._mapping) for r in rows}

    # --- from notifications to deliveries -------------------------------------------------

    def unexpanded_notifications(self, limit: int) -> list[tuple[Notification, Case]]:
        """Notifications not yet made into deliveries, oldest first, with their cases."""
        n = notification_t.c
        stmt = (
            sa.select(*NOTIFICATION_COLUMNS)
            .where(n.expanded_at.is_(None), n.delivered_at.is_(None))
            .order_by(n.id)
            .limit(limit)
        )
        with self._read() as conn:
            notes = [Notification(**r._mapping) for r in conn.execute(stmt)]
            ids = sorted({x.case_id for x in notes})
            cases: dict[int, Case] = {}
            for i in range(0, len(ids), _IDS_PER_QUERY):
                rows = conn.execute(SELECT_CASE.where(case_t.c.id.in_(ids[i : i + _IDS_PER_QUERY])))
                cases.update((row.id, case_of(row)) for row in rows)
        return [(x, cases[x.case_id]) for x in notes]

    def add_deliveries(
        self,
        rows: Iterable[Mapping[str, Any]],
        notification_ids: Sequence[int],
        at: dt.datetime,
        *,
        unrouted: Sequence[int] = (),
    ) -> int:
        """Write deliveries (a key already there is skipped: one per notification, channel
        and person) and mark their notifications expanded, in one transaction; those of
        ``unrouted`` (no channel carries them: nothing to send) are delivered too."""
        values = [dict(r) for r in rows]
        n = notification_t.c
        with self._write() as conn:
            written = 0
            if values:
                stmt = self._insert(delivery_t).on_conflict_do_nothing().returning(delivery_t.c.id)
                written = len(conn.execute(stmt, values).all())
            for i in range(0, len(notification_ids), _IDS_PER_QUERY):
                chunk = list(notification_ids[i : i + _IDS_PER_QUERY])
                conn.execute(notification_t.update().where(n.id.in_(chunk)).values(expanded_at=at))
            for i in range(0, len(unrouted), _IDS_PER_QUERY):
                chunk = list(unrouted[i : i + _IDS_PER_QUERY])
                conn.execute(
                    notification_t.update()
                    .where(n.id.in_(chunk), n.delivered_at.is_(None))
                    .values(delivered_at=at)
                )
        return written

    # --- claims and attempts --------------------------------------------------------------

    def claim_deliveries(self, now: dt.datetime, limit: int, lease: dt.timedelta) -> list[Delivery]:
        """Due deliveries nobody holds, by channel and person (so a digest's come together),
        each leased to the caller until ``now + lease``: another dispatcher skips them, and a
        crashed one's come back when the lease ends (sent again: at least once)."""
        d = delivery_t.c
        due = (
            sa.select(d.id)
            .where(
                d.status.in_(OPEN), d.next_attempt_at <= now,
                sa.or_(d.claimed_until.is_(None), d.claimed_until < now),
            )
            .order_by(d.channel, d.recipient, d.id)
            .limit(limit)
        )  # fmt: skip
        if not self.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        with self._write() as conn:
            ids = [row[0] for row in conn.execute(due)]
            if not ids:
                return []
            conn.execute(delivery_t.update().where(d.id.in_(ids)).values(claimed_until=now + lease))
            rows = conn.execute(sa.select(delivery_t).where(d.id.in_(ids)).order_by(
                d.channel, d.recipient, d.id
            ))  # fmt: skip
            return [Delivery(**r._mapping) for r in rows]

    def renew_claims(self, ids: Sequence[int], until: dt.datetime) -> None:
        """Extend the lease of deliveries still held (a batch that is slow to send keeps
        them: another dispatcher must not take them while they are being sent)."""
        d = delivery_t.c
        with self._write() as conn:
            for i in range(0, len(ids), _IDS_PER_QUERY):
                chunk = list(ids[i : i + _IDS_PER_QUERY])
                conn.execute(
                    delivery_t.update()
                    .where(d.id.in_(chunk), d.claimed_until.is_not(None), d.status.in_(OPEN))
                    .values(claimed_until=until)
                )

    def record_attempts(self, records: Sequence[AttemptRecord], at: dt.datetime) -> None:
        """Each attempt's outcome: sent, retrying (with its next time) or dead; the lease
        released; a notification all of whose deliveries are sent is delivered."""
        if not records:
            return
        d, n = delivery_t.c, notification_t.c
        status = {"delivered": "sent", "retry": "retrying", "dead": "dead"}
        with self._write() as conn:
            conn.execute(delivery_attempt_t.insert(), [
                {"delivery_id": r.delivery_id, "at": at, "outcome": r.outcome, "code": r.code,
                 "detail": r.detail[:2000]}
                for r in records
            ])  # fmt: skip
            for r in records:
                values: dict[str, Any] = {
                    "status": status[r.outcome], "attempts": d.attempts + 1,
                    "claimed_until": None, "last_code": r.code, "last_error": None
                    if r.outcome == "delivered" else r.detail[:2000],
                }  # fmt: skip
                if r.outcome == "delivered":
                    values["sent_at"] = at
                if r.next_attempt_at is not None:
                    values["next_attempt_at"] = r.next_attempt_at
                conn.execute(delivery_t.update().where(d.id == r.delivery_id).values(values))
            ids = [r.delivery_id for r in records if r.outcome == "delivered"]
            if ids:
                owners = sa.select(d.notification_id).where(d.id.in_(ids))
                unsent = sa.select(d.id).where(d.notification_id == n.id, d.status != "sent")
                conn.execute(
                    notification_t.update()
                    .where(n.id.in_(owners), n.delivered_at.is_(None), ~sa.exists(unsent))
                    .values(delivered_at=at)
                )

    def notifications_of(self, ids: Sequence[int]) -> dict[int, tuple[Notification, Case]]:
        """Notifications by id, each with its case."""
        n = notification_t.c
        found: dict[int, tuple[Notification, Case]] = {}
        ids = sorted(set(ids))
        with self._read() as conn:
            for i in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[i : i + _IDS_PER_QUERY]
                notes = [
                    Notification(**r._mapping)
                    for r in conn.execute(
                        sa.select(*NOTIFICATION_COLUMNS)
                        .where(n.id.in_(chunk))
                    )
                ]  # fmt: skip
                case_ids = sorted({x.case_id for x in notes})
                rows = conn.execute(SELECT_CASE.where(case_t.c.id.in_(case_ids)))
                cases = {row.id: case_of(row) for row in rows}
                found.update((x.id, (x, cases[x.case_id])) for x in notes)
        return found

    # --- operators ------------------------------------------------------------------------

    def list_deliveries(
        self, *, status: str | None = None, recipient: str | None = None,
        level: str | None = None, limit: int | None = None,
    ) -> list[tuple[Delivery, Notification]]:  # fmt: skip
        d, n = delivery_t.c, notification_t.c
        stmt = (
            sa.select(
                delivery_t,
                n.case_id,
                n.kind,
                n.level,
                n.created_at.label("n_created_at"),
                n.key.label("nkey"),
            )
            .join(notification_t, n.id == d.notification_id)
            .order_by(d.id)
        )
        if status is not None:
            stmt = stmt.where(d.status == status)
        if recipient is not None:
            stmt = stmt.where(d.recipient == recipient)
        if level is not None:
            stmt = stmt.where(n.level == level)
        if limit is not None:
            stmt = stmt.limit(limit)
        found = []
        with self._read() as conn:
            for row in conn.execute(stmt):
                m = dict(row._mapping)
                note = Notification(
                    m["notification_id"], m.pop("case_id"), m.pop("kind"), m.pop("level"),
                    m["role"], m.pop("n_created_at"), m.pop("nkey"),
                )  # fmt: skip
                found.append((Delivery(**m), note))
        return found

    def deliveries_of(self, notification_ids: Sequence[int]) -> dict[int, list[Delivery]]:
        """The deliveries of each notification that has any, by delivery id."""
        found: dict[int, list[Delivery]] = {}
        ids = sorted(set(notification_ids))
        with self._read() as conn:
            for i in range(0, len(ids), _IDS_PER_QUERY):
                stmt = (
                    sa.select(delivery_t)
                    .where(delivery_t.c.notification_id.in_(ids[i : i + _IDS_PER_QUERY]))
                    .order_by(delivery_t.c.id)
                )
                for row in conn.execute(stmt):
                    d = Delivery(**row._mapping)
                    found.setdefault(d.notification_id, []).append(d)
        return found

    def get_delivery(self, delivery_id: int) -> tuple[Delivery, list[DeliveryAttempt]] | None:
        d, a = delivery_t.c, delivery_attempt_t.c
        with self._read() as conn:
            row = conn.execute(sa.select(delivery_t).where(d.id == delivery_id)).first()
            if row is None:
                return None
            attempts = conn.execute(
                sa.select(delivery_attempt_t).where(a.delivery_id == delivery_id).order_by(a.id)
            )
            return Delivery(**row._mapping), [DeliveryAttempt(**r._mapping) for r in attempts]

    def retry_deliveries(self, ids: Sequence[int] | None, now: dt.datetime) -> int:
        """Make deliveries due again now with a fresh retry schedule: those given, or
        (``ids`` None) every dead one. Returns how many."""
        d = delivery_t.c
        stmt = delivery_t.update().values(
            status="pending", attempts=0, next_attempt_at=now, claimed_until=None
        )
        stmt = stmt.where(d.status == "dead") if ids is None else stmt.where(
            d.id.in_(list(ids)), d.status != "sent"
        )  # fmt: skip
        with self._write() as conn:
            return int(conn.execute(stmt).rowcount)
