"""The Engine's deadlines concern: the sweep that records due ladder levels, the monthly
dispatch, and how well both keep up. (The scheduler that runs them is handed the whole
Engine, so ``start_scheduler`` lives on the Engine itself, in app/engine.py.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from loguru import logger

from rectiflow.app.calendar import Calendar
from rectiflow.engine import escalation
from rectiflow.engine.escalation import EscalationPlan
from rectiflow.engine.types import Case, Health, Notification, SweepSummary


class Deadlines(Calendar):
    """The sweep (escalate_due), the monthly dispatch, and their health."""

    def escalate_due(
        self,
        now: dt.datetime | None = None,
        *,
        batch_size: int = 500,
        dry_run: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> SweepSummary:
        """Record every ladder level that is due at ``now``, once each, in ladder order.

        Works in batches of ``batch_size`` cases, each its own transaction; ``should_stop``
        is asked between batches (a daemon told to stop finishes the batch in hand)."""
        now = self._now(now)
        # Everything the planning needs, read before the batches hold their locks: another
        # process may have loaded calendar data or registered a workflow.
        self._refresh_calendar()
        for record in self.store.list_workflows():
            self._spec_of(record)
        rules = self.rules
        directory = self._directory()
        by_level: dict[str, int] = {}
        cases = fired = 0

        def plan(case: Case, co_units: Sequence[str]) -> EscalationPlan:
            spec = self.workflow(case.workflow, case.workflow_version)
            return escalation.plan(rules, spec, case, now, directory, co_units, self.audit_key)

        if dry_run:
            after = 0
            while batch := self.store.due_cases(now, after, batch_size):
                co_units = self.store.co_units_of([c.id for c in batch])
                for case in batch:
                    for esc in plan(case, co_units.get(case.id, [])).escalations:
                        by_level[esc.level] = by_level.get(esc.level, 0) + 1
                        fired += 1
                cases += len(batch)
                after = batch[-1].id
            return SweepSummary(cases, fired, by_level, self.store.next_escalation_at())

        while True:
            claimed, recorded = self.store.escalate_batch(now, batch_size, plan)
            cases += claimed
            for esc in recorded:
                fired += 1
                by_level[esc.level] = by_level.get(esc.level, 0) + 1
                logger.bind(case_id=esc.case_id, action="escalate", level=esc.level).info(
                    "case {case_id}: escalation {level} (due {due})",
                    case_id=esc.case_id, level=esc.level, due=esc.due_at.isoformat(),
                )  # fmt: skip
            if claimed < batch_size or should_stop():
                break
        return SweepSummary(cases, fired, by_level, self.store.next_escalation_at())

    def _directory(self) -> escalation.Directory:
        """The units and actors the sweep finds recipients among: read once per sweep."""
        return escalation.Directory(
            {u.code: u for u in self.store.list_units()}, self.store.list_actors()
        )

    def list_notifications(
        self, *, case_id: int | None = None, actor: str | None = None, level: str | None = None,
        kind: str | None = None, limit: int | None = None,
    ) -> list[Notification]:  # fmt: skip
        """The outbox: one row per person told of a level, a look-back or the monthly
        dispatch (``actor`` None: nobody held the role), by id."""
        return self.store.list_notifications(case_id, kind, actor=actor, level=level, limit=limit)

    def next_due_at(self) -> dt.datetime | None:
        """When the next ladder level of any case comes due."""
        return self.store.next_escalation_at()

    def health(self, now: dt.datetime | None = None, *, seen_within_days: int = 7) -> Health:
        """How the sweep is keeping up: the daemons seen lately and their last sweep, the
        lag of the oldest due level not yet recorded, the oldest undelivered notification."""
        now = self._now(now)
        daemons = self.store.list_daemons(now - dt.timedelta(days=seen_within_days))
        due = self.store.next_escalation_at()
        lag = max(now - due, dt.timedelta(0)) if due is not None else dt.timedelta(0)
        ends = [d.sweep_ended_at for d in daemons if d.sweep_ended_at and d.stopped_at is None]
        oldest, undelivered = self.store.undelivered()
        return Health(
            as_of=now, daemons=daemons, oldest_due_at=due, lag=lag,
            swept_ago=now - max(ends) if ends else None,
            oldest_undelivered_at=oldest, undelivered=undelivered,
        )  # fmt: skip

    def dispatch_reminders(
        self,
        now: dt.datetime | None = None,
        *,
        roles: Sequence[str] = ("owner",),
        batch_size: int = 1000,
    ) -> int:
        """Monthly dispatch: open cases without a progress note this month get a notification
        per person in each role (found as a ladder level's are). Keyed by month, so running
        it twice (or on two daemons) writes it once."""
        now = self._now(now)
        month_start, period = escalation.dispatch_month(now, self.tz)
        directory = self._directory()
        written = after = 0
        while batch := self.store.cases_without_note_since(month_start, after, batch_size):
            rows = []
            for case in batch:
                spec = self.workflow(case.workflow, case.workflow_version)
                if spec.states[case.state].final:
                    continue
                for role in roles:
                    for person in escalation.people_for(spec, case, role, directory):
                        key = escalation.dispatch_key(case.id, period, role, person)
                        rows.append((case.id, "dispatch", None, role, key, person))
            written += self.store.add_notifications(rows, now)
            after = batch[-1].id
        logger.bind(action="dispatch").info(
            "monthly dispatch {period}: {n} reminders", period=period, n=written
        )
        return written
