"""The dispatcher: the outbox's notifications made into deliveries to people, sent on their
channels, retried with backoff, and every attempt recorded.

At least once: a delivery is leased while it is sent and recorded after; a dispatcher that
dies in between leaves the lease to run out, and the delivery is sent again with the same
idempotency key (``X-Rectiflow-Delivery``, the mail's Message-ID), which a receiver uses to
drop the repeat. Several dispatchers never hold the same delivery at once.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loguru import logger

from rectiflow.engine.errors import UsageError
from rectiflow.engine.escalation import recipients
from rectiflow.engine.types import Actor, Case, Contacts, Delivery, Notification
from rectiflow.notify.message import Channel, Event, Message, Recipient, SendResult

if TYPE_CHECKING:
    from rectiflow.app import Engine
    from rectiflow.notify.config import NotifyConfig
    from rectiflow.store.delivery import AttemptRecord

LEVEL_ZH = {
    "remind": "提醒", "warn": "预警", "supervise": "督办", "notify_public": "通报",
    "accountability": "问责",
}  # fmt: skip
NEXT_STEP = {
    "identify": "请尽快核实确认问题。",
    "plan": "请尽快制定整改方案并报审。",
    "rectify": "请加快落实整改措施，完成后提交验收。",
    "verify": "请尽快组织验收。",
}
DISPATCH_STEP = "请于月底前报送本月整改进展。"


@dataclass
class DeliverySummary:
    expanded: int = 0  # deliveries made from notifications
    delivered: int = 0
    retrying: int = 0
    dead: int = 0


class Dispatcher:
    """Runs beside the sweep (its own job): ``run_once(now)`` makes deliveries of the new
    notifications and sends what is due."""

    def __init__(
        self,
        engine: Engine,
        config: NotifyConfig,
        *,
        channels: Mapping[str, Channel] | None = None,
        batch_size: int = 100,
        lease: dt.timedelta = dt.timedelta(minutes=5),
        rng: Callable[[], float] = random.random,
    ) -> None:
        from rectiflow.notify.channels import build_channel

        if not hasattr(engine.store, "claim_deliveries"):
            raise UsageError("delivery needs a SQL database (SQLite or PostgreSQL)")
        self.engine, self.config = engine, config
        self.store: Any = engine.store
        self.batch_size, self.lease, self.rng = batch_size, lease, rng
        self.routes = {c.name: c for c in config.channels}
        self.channels: Mapping[str, Channel] = channels or {
            c.name: build_channel(
                c.name, c.type, c.options, timeout=float(c.options.get("timeout", 10.0))
            )
            for c in config.channels
        }

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()

    def run_once(self, now: dt.datetime | None = None) -> DeliverySummary:
        now = self.engine._now(now)
        summary = DeliverySummary(expanded=self.expand(now))
        while batch := self.store.claim_deliveries(now, self.batch_size, self.lease):
            self._send(batch, now, summary)
            if len(batch) < self.batch_size:
                break
        return summary

    # --- notifications into deliveries ----------------------------------------------------

    def expand(self, now: dt.datetime) -> int:
        """One delivery per (notification, routed channel, the person it names), save
        on a mail channel to a person without an email address. A notification that no
        channel routes is delivered at once (the config says nobody hears of it); one
        routed to nobody reachable stays undelivered, and says so in the log."""
        written = 0
        actors = self.engine.list_actors()
        while pending := self.store.unexpanded_notifications(self.batch_size):
            rows: list[dict[str, Any]] = []
            unrouted: list[int] = []
            # An outbox row names its person; rows written before they did name a role.
            people_of = {
                note.id: [note.actor]
                if note.actor
                else recipients(actors, note.role, case.unit_path)
                for note, case in pending
            }
            contacts: dict[str, Contacts] = self.store.contacts_of(
                sorted({name for names in people_of.values() for name in names})
            )
            for note, case in pending:
                routes = [
                    route for route in self.config.channels if route.takes(note.kind, note.level)
                ]
                if not routes:
                    unrouted.append(note.id)
                    continue
                made = len(rows)
                for route in routes:
                    people = people_of[note.id]
                    if route.type == "smtp":  # mail needs an address: the others are not sent
                        people = [p for p in people if (c := contacts.get(p)) and c.email]
                    when = _next_digest(route.digest, now, self.engine.tz) if route.digest else now
                    rows.extend(
                        {"notification_id": note.id, "channel": route.name, "recipient": name,
                         "role": note.role, "key": delivery_key(note.key, route.name, name),
                         "status": "pending", "attempts": 0, "next_attempt_at": when,
                         "digest": route.digest is not None, "created_at": now}
                        for name in people
                    )  # fmt: skip
                if len(rows) == made:
                    logger.bind(action="deliver", case_id=case.id).warning(
                        "notification {key}: nobody holding {role} can be reached on "
                        "{channels}", key=note.key, role=note.role,
                        channels=", ".join(route.name for route in routes),
                    )  # fmt: skip
            written += self.store.add_deliveries(
                rows, [note.id for note, _ in pending], now, unrouted=unrouted
            )
        return written

    # --- sending --------------------------------------------------------------------------

    def _send(self, batch: Sequence[Delivery], now: dt.datetime, summary: DeliverySummary) -> None:
        from rectiflow.notify.templates import render
        from rectiflow.store.delivery import AttemptRecord

        started = time.monotonic()
        notes = self.store.notifications_of([d.notification_id for d in batch])
        contacts: dict[str, Contacts] = self.store.contacts_of(sorted({d.recipient for d in batch}))
        records: list[AttemptRecord] = []
        units = {u.code: u.name for u in self.engine.list_units()}  # once a batch, not an event
        groups = _groups(batch)
        renewed = started
        for group in groups:
            if time.monotonic() - renewed > self.lease.total_seconds() / 3:
                # A slow batch (endpoints timing out one after the other) keeps its
                # deliveries, sent or not, until it records them: its lease ending mid-batch
                # would let another dispatcher send them again at the same time.
                renewed = time.monotonic()
                until = now + dt.timedelta(seconds=renewed - started) + self.lease
                self.store.renew_claims([d.id for d in batch], until)
            first = group[0]
            channel = self.channels.get(first.channel)
            if channel is None:  # the channel left the config: nothing can send it
                records += [
                    AttemptRecord(d.id, "dead", None, f"no channel {d.channel} configured", None)
                    for d in group
                ]  # fmt: skip
                continue
            person = _recipient(first, contacts.get(first.recipient))
            found: list[tuple[Notification, Case]] = [notes[d.notification_id] for d in group]
            events = tuple(self._event(note, case, now, units) for note, case in found)
            subject, body = render(
                events, person, digest=first.digest, overrides=self.config.templates
            )
            key = (
                first.key
                if len(group) == 1
                else f"digest:{first.channel}:{_ascii(first.recipient)}:{first.id}"
            )
            message = Message(key, first.channel, person, events, subject, body, now)
            try:
                result = channel.send(message)
            except Exception as exc:  # a channel bug must not stop the others
                result = SendResult("retry", None, f"{type(exc).__name__}: {exc}")
            result = SendResult(result.outcome, result.code, self._mask(result.detail))
            for d in group:
                records.append(self._record(d, result, now))
        self.store.record_attempts(records, now)
        for r in records:
            if r.outcome == "delivered":
                summary.delivered += 1
            elif r.outcome == "retry":
                summary.retrying += 1
            else:
                summary.dead += 1
        logger.bind(action="deliver").info(
            "delivery: {d} delivered, {r} to retry, {x} dead",
            d=summary.delivered, r=summary.retrying, x=summary.dead,
        )  # fmt: skip

    def _record(self, d: Delivery, result: SendResult, now: dt.datetime) -> AttemptRecord:
        from rectiflow.notify.channels import parse_retry_after
        from rectiflow.store.delivery import AttemptRecord

        if result.outcome != "retry":
            return AttemptRecord(d.id, result.outcome, result.code, result.detail, None)
        schedule = self.config.retry
        if d.attempts >= len(schedule):  # this was the last try the schedule allows
            detail = f"{result.detail}; gave up after {d.attempts + 1} attempts"
            return AttemptRecord(d.id, "dead", result.code, detail, None)
        delay = schedule[d.attempts] * (0.8 + 0.4 * self.rng())  # jitter: no thundering herd
        delay = max(delay, parse_retry_after(result.detail) or 0.0)
        return AttemptRecord(
            d.id, "retry", result.code, result.detail, now + dt.timedelta(seconds=delay)
        )

    def _mask(self, text: str) -> str:
        from rectiflow.notify.config import mask

        return mask(text, self.config)

    def _event(
        self, note: Notification, case: Case, now: dt.datetime, units: Mapping[str, str]
    ) -> Event:
        engine = self.engine
        spec = engine.workflow(case.workflow, case.workflow_version)
        light = engine.light(case, now)
        overdue = 0
        if case.due_at is not None and now > case.due_at:
            overdue = engine.rules.calendar.workdays_between(
                engine.rules.local_date(case.due_at), engine.rules.local_date(now)
            )
        step = (
            DISPATCH_STEP if note.kind == "dispatch" else NEXT_STEP.get(case.state, "请及时处理。")
        )
        return Event(
            event=note.kind, level=note.level,
            level_label=LEVEL_ZH.get(note.level, note.level) if note.level else None,
            case_id=case.id, title=case.title, unit=case.unit,
            unit_name=units.get(case.unit, case.unit), state=case.state,
            state_label=spec.states[case.state].labels.get("zh", case.state),
            due_at=case.due_at.astimezone(engine.tz) if case.due_at else None,
            light=light.value if light else None, overdue_workdays=overdue, next_step=step,
            at=note.created_at.astimezone(engine.tz),
        )  # fmt: skip

    def test(self, channel_name: str, actor: str, now: dt.datetime | None = None) -> SendResult:
        """Send one test message on a channel to an actor (`notify test`)."""
        now = self.engine._now(now)
        channel = self.channels.get(channel_name)
        if channel is None:
            raise UsageError(f"no channel {channel_name!r} in the config")
        who = self.engine.get_actor(actor)
        person = _recipient_of(who, self.store.contacts_of([actor]).get(actor), "test")
        event = Event(
            event="test", level=None, level_label="测试", case_id=0, title="测试消息",
            unit="", unit_name="", state="", state_label="", due_at=None, light=None,
            overdue_workdays=0, next_step="收到此消息说明通道配置正确，无需处理。",
            at=now.astimezone(self.engine.tz),
        )  # fmt: skip
        from rectiflow.notify.templates import render

        subject, body = render((event,), person, digest=False, overrides=self.config.templates)
        key = f"test:{channel_name}:{_ascii(actor)}:{int(now.timestamp())}"
        result = channel.send(Message(key, channel_name, person, (event,), subject, body, now))
        return SendResult(result.outcome, result.code, self._mask(result.detail))


def delivery_key(notification_key: str, channel: str, person: str) -> str:
    """The idempotency key of a delivery: stable across resends, ASCII (it travels in an
    HTTP header), the person's name percent-encoded."""
    return f"{notification_key}:{channel}:{_ascii(person)}"


def _ascii(person: str) -> str:
    """A person's name as it goes into a key (an HTTP header): percent-encoded UTF-8."""
    return urllib.parse.quote(person, safe="")


def _next_digest(at: dt.time, now: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    local = now.astimezone(tz)
    moment = dt.datetime.combine(local.date(), at, tz)
    if moment <= local:
        moment += dt.timedelta(days=1)
    return moment.astimezone(dt.UTC)


def _groups(batch: Sequence[Delivery]) -> list[list[Delivery]]:
    """One message per delivery; a digest's deliveries to one person on one channel go as
    one message."""
    groups: list[list[Delivery]] = []
    digests: dict[tuple[str, str], list[Delivery]] = {}
    for d in batch:
        if d.digest:
            key = (d.channel, d.recipient)
            if key not in digests:
                digests[key] = []
                groups.append(digests[key])
            digests[key].append(d)
        else:
            groups.append([d])
    return groups


def _recipient(d: Delivery, contacts: Contacts | None) -> Recipient:
    c = contacts or Contacts(d.recipient)
    return Recipient(d.recipient, d.role, c.email, c.mobile, c.dingtalk_id, c.wecom_id)


def _recipient_of(actor: Actor, contacts: Contacts | None, role: str) -> Recipient:
    c = contacts or Contacts(actor.name)
    return Recipient(actor.name, role, c.email, c.mobile, c.dingtalk_id, c.wecom_id)
