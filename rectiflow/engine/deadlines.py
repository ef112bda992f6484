"""Stage deadlines, the escalation ladder's times and the traffic light. Pure functions.

Rule: a stage entered at local time T with SLA ``Nwd`` is due at the end (23:59:59 local)
of the N-th working day after T's date; ``Nd`` at the end of the N-th calendar day after;
``Ns``/``Nm``/``Nh`` exactly that long after T. Ladder offsets count the same way from the
deadline.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from rectiflow.engine.calendar import WorkCalendar
from rectiflow.engine.durations import Duration, Unit
from rectiflow.engine.spec import WorkflowSpec
from rectiflow.engine.types import Case, Light

_END_OF_DAY = dt.time(23, 59, 59)


@dataclass
class TimeRules:
    """The calendar and the local time zone that deadlines are counted in."""

    calendar: WorkCalendar
    tz: ZoneInfo

    def local_date(self, at: dt.datetime) -> dt.date:
        return at.astimezone(self.tz).date()

    def end_of_day(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, _END_OF_DAY, self.tz).astimezone(dt.UTC)

    def add(self, start: dt.datetime, duration: Duration) -> tuple[dt.datetime, bool]:
        """start + duration under the rule above; returns (UTC time, provisional)."""
        if not duration.unit.is_day:
            return start + dt.timedelta(seconds=duration.seconds), False
        day = self.local_date(start)
        if duration.unit is Unit.DAYS:
            return self.end_of_day(day + dt.timedelta(days=duration.amount)), False
        if duration.amount == 0:
            return self.end_of_day(day), False
        shifted, provisional = self.calendar.shift_workdays(day, duration.amount)
        return self.end_of_day(shifted), provisional


def fixed_due(
    spec: WorkflowSpec, case: Case, state: str, entered_at: dt.datetime
) -> dt.datetime | None:
    """The case's own due date when it replaces this stage's SLA: while it lies ahead, so
    that a visit after it passed (a reopened case) gets a deadline and a fresh ladder; and
    throughout a case's first visit when that is to the due state, which only an imported
    case makes (placed there by its ledger, its date may have passed already: it is overdue
    from the start)."""
    if state != spec.due_state or case.due is None:
        return None
    if case.due > entered_at or (case.visit == 1 and case.state == state):
        return case.due
    return None


def credit_unit(spec: WorkflowSpec, case: Case, state: str) -> Unit:
    """The unit in which paused time is given back for this stage."""
    if fixed_due(spec, case, state, case.stage_entered_at) is not None:
        return Unit.SECONDS
    sla = spec.states[state].sla_for(case.severity)
    if sla is None or not sla.unit.is_day:
        return Unit.SECONDS
    return sla.unit


def stage_deadline(
    rules: TimeRules, spec: WorkflowSpec, case: Case, state: str, entered_at: dt.datetime,
    pause_credit: int = 0,
) -> tuple[dt.datetime | None, bool]:  # fmt: skip
    """The deadline of a visit to ``state`` entered at ``entered_at``: (UTC, provisional)."""
    if spec.states[state].final:
        return None, False
    due = fixed_due(spec, case, state, entered_at)
    if due is not None:
        provisional = False
    elif case.long_term and state == spec.due_state:
        return None, False  # 长期坚持 without a date: no deadline, no ladder
    else:
        sla = spec.states[state].sla_for(case.severity)
        if sla is None:
            return None, False
        due, provisional = rules.add(entered_at, sla)
    if pause_credit:
        extended, guessed = rules.add(due, Duration(pause_credit, credit_unit(spec, case, state)))
        due, provisional = extended, provisional or guessed
    return due, provisional


def pause_credit(
    rules: TimeRules, unit: Unit, paused_at: dt.datetime, resumed_at: dt.datetime
) -> int:
    """How much a pause from paused_at to resumed_at moves the deadline, in ``unit``."""
    if unit is Unit.WORKDAYS:
        return rules.calendar.workdays_between(
            rules.local_date(paused_at), rules.local_date(resumed_at)
        )
    if unit is Unit.DAYS:
        return (rules.local_date(resumed_at) - rules.local_date(paused_at)).days
    return max(0, int((resumed_at - paused_at).total_seconds()))


def level_time(
    rules: TimeRules, spec: WorkflowSpec, due_at: dt.datetime, index: int
) -> dt.datetime:
    return rules.add(due_at, spec.ladder[index].offset)[0]


def next_escalation(
    rules: TimeRules, spec: WorkflowSpec, due_at: dt.datetime | None, index: int
) -> dt.datetime | None:
    """When ladder level ``index`` of this visit comes due (None: no more levels)."""
    if due_at is None or index >= len(spec.ladder):
        return None
    return level_time(rules, spec, due_at, index)


def light(rules: TimeRules, spec: WorkflowSpec, case: Case, now: dt.datetime) -> Light | None:
    """green before the first level is due, yellow until the deadline, red after it; none
    while the clock stands (paused or exempted)."""
    stopped = case.paused_at is not None or case.exempt_until is not None
    return light_of(rules, spec, case.state, case.due_at, stopped, case.long_term, now)


def light_of(
    rules: TimeRules, spec: WorkflowSpec, state: str, due_at: dt.datetime | None, paused: bool,
    long_term: bool, now: dt.datetime,
) -> Light | None:  # fmt: skip
    """The light from the figures it depends on (a report has those, not whole cases)."""
    if paused or spec.states[state].final:
        return None
    if due_at is None:
        return Light.GREEN if long_term else None
    if now > due_at:
        return Light.RED
    if spec.ladder and now >= level_time(rules, spec, due_at, 0):
        return Light.YELLOW
    return Light.GREEN
