"""The escalation planner and the outbox keys. Pure functions: time comes in as ``now``.

A notification's key is unique in the outbox, so the key decides what "once" means: once
per (case, stage visit, level, role) for an escalation, once per (case, month, role) for
the monthly dispatch. Several sweeps or daemons may compute the same key; the store writes
it once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from rectiflow.engine import deadlines
from rectiflow.engine.deadlines import TimeRules
from rectiflow.engine.spec import WorkflowSpec
from rectiflow.engine.types import Case, Escalation


@dataclass(frozen=True)
class EscalationPlan:
    """What one sweep does to one case: the levels to record and the case's next level."""

    escalations: Sequence[Escalation]
    notifications: Sequence[tuple[str, str, str]]  # (level, role, unique key)
    next_level: int
    next_escalation_at: dt.datetime | None


def escalation_key(case_id: int, visit: int, level: str, role: str) -> str:
    """The outbox key of one ladder level's notice to one role."""
    return f"esc:{case_id}:{visit}:{level}:{role}"


def dispatch_key(case_id: int, period: str, role: str) -> str:
    """The outbox key of one monthly reminder (``period`` is ``YYYY-MM``) to one role."""
    return f"dispatch:{case_id}:{period}:{role}"


def dispatch_month(now: dt.datetime, tz: ZoneInfo) -> tuple[dt.datetime, str]:
    """(start of the local month of ``now`` in UTC, the month as ``YYYY-MM``)."""
    local = now.astimezone(tz)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(dt.UTC), f"{local:%Y-%m}"


def plan(rules: TimeRules, spec: WorkflowSpec, case: Case, now: dt.datetime) -> EscalationPlan:
    """Every ladder level of the case's current visit that is due at ``now`` and not yet
    recorded, in ladder order, with one notification per role; and where the ladder
    stands after them. It always answers: a case it cannot escalate (no deadline, a final
    state) gets the end of the ladder, so it stops being due."""
    ladder = spec.ladder
    if case.due_at is None or spec.states[case.state].final:
        return EscalationPlan((), (), len(ladder), None)
    escalations: list[Escalation] = []
    notifications: list[tuple[str, str, str]] = []
    index = case.next_level
    while index < len(ladder):
        at = deadlines.level_time(rules, spec, case.due_at, index)
        if at > now:
            break
        level = ladder[index]
        escalations.append(Escalation(case.id, case.visit, case.state, level.level, at, now))
        notifications.extend(
            (level.level, role, escalation_key(case.id, case.visit, level.level, role))
            for role in level.notify
        )
        index += 1
    next_at = deadlines.next_escalation(rules, spec, case.due_at, index)
    return EscalationPlan(escalations, notifications, index, next_at)
