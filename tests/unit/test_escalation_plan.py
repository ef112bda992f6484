"""The escalation planner and the outbox keys, as pure functions: no store, no Engine."""

from __future__ import annotations

import dataclasses
import datetime as dt
from importlib import resources
from zoneinfo import ZoneInfo

import pytest

from rectiflow.engine import escalation, history
from rectiflow.engine.calendar import WorkCalendar, year_days
from rectiflow.engine.deadlines import TimeRules
from rectiflow.engine.spec import WorkflowSpec, parse_workflow
from rectiflow.engine.types import Case, Escalation

SH = ZoneInfo("Asia/Shanghai")
RULES = TimeRules(WorkCalendar(), SH)


def end_of(m: int, d: int) -> dt.datetime:
    return dt.datetime(2026, m, d, 23, 59, 59, tzinfo=SH).astimezone(dt.UTC)


#: The rectify deadline of the case below: Friday 13 March 2026. Its ladder: remind -3wd
#: (Tuesday 10 March), warn 0 (13 March), supervise +5wd (Friday 20 March), ...
DUE = end_of(3, 13)


@pytest.fixture(scope="module")
def spec() -> WorkflowSpec:
    text = resources.files("rectiflow.workflows").joinpath("rectification.yaml").read_text()
    return parse_workflow(text, "rectification.yaml")


def case(**changes: object) -> Case:
    opened = dt.datetime(2026, 2, 2, 1, 0, tzinfo=dt.UTC)
    base = Case(
        id=7, workflow="rectification", workflow_version=1, unit="DIST", unit_path="/DIST/",
        title="t", description=None, category=None, source=None, severity="high",
        state="rectify", version=4, created_at=opened, stage_entered_at=opened, due_at=DUE,
        due_provisional=False, due=None, visit=3, next_level=0, next_escalation_at=None,
        paused_at=None, pause_credit=0, history_seq=4, last_hash=history.GENESIS,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_plan__nothing_due_before_the_first_level(spec: WorkflowSpec) -> None:
    plan = escalation.plan(RULES, spec, case(), end_of(3, 10) - dt.timedelta(seconds=1))
    assert (list(plan.escalations), list(plan.notifications)) == ([], [])
    assert (plan.next_level, plan.next_escalation_at) == (0, end_of(3, 10))


def test_plan__every_due_level_in_ladder_order_with_a_key_per_role(spec: WorkflowSpec) -> None:
    now = DUE + dt.timedelta(seconds=1)
    plan = escalation.plan(RULES, spec, case(), now)
    assert list(plan.escalations) == [
        Escalation(7, 3, "rectify", "remind", end_of(3, 10), now),
        Escalation(7, 3, "rectify", "warn", DUE, now),
    ]
    # without a directory of people, one row per role naming nobody (an import's backfill)
    assert [(n.level, n.role, n.key, n.actor) for n in plan.notifications] == [
        ("remind", "owner", "esc:7:3:remind:owner", None),
        ("warn", "owner", "esc:7:3:warn:owner", None),
        ("warn", "head", "esc:7:3:warn:head", None),
    ]
    assert (plan.next_level, plan.next_escalation_at) == (2, end_of(3, 20))


def test_plan__starts_at_the_next_level_not_yet_recorded(spec: WorkflowSpec) -> None:
    plan = escalation.plan(RULES, spec, case(next_level=2), end_of(3, 20) + dt.timedelta(hours=1))
    assert [e.level for e in plan.escalations] == ["supervise"]
    assert [n.key for n in plan.notifications] == ["esc:7:3:supervise:supervisor"]
    assert plan.next_level == 3


def test_plan__the_last_level_leaves_nothing_pending(spec: WorkflowSpec) -> None:
    plan = escalation.plan(RULES, spec, case(next_level=4), dt.datetime(2026, 12, 1, tzinfo=SH))
    assert [e.level for e in plan.escalations] == ["accountability"]
    assert (plan.next_level, plan.next_escalation_at) == (5, None)


@pytest.mark.parametrize(
    "changes", [{"state": "closed", "due_at": None}, {"state": "closed"}, {"due_at": None}]
)
def test_plan__always_answers_for_a_case_it_cannot_escalate(
    spec: WorkflowSpec, changes: dict[str, object]
) -> None:
    plan = escalation.plan(RULES, spec, case(**changes), DUE + dt.timedelta(days=90))
    assert (list(plan.escalations), list(plan.notifications)) == ([], [])
    assert (plan.next_level, plan.next_escalation_at) == (len(spec.ladder), None)


def test_keys__one_per_visit_level_role_and_per_month() -> None:
    assert escalation.escalation_key(12, 2, "warn", "head") == "esc:12:2:warn:head"
    assert escalation.escalation_key(12, 2, "warn", "head", "李强") == (
        "esc:12:2:warn:head:%E6%9D%8E%E5%BC%BA"  # ASCII: keys travel in HTTP headers
    )
    assert escalation.dispatch_key(12, "2026-04", "owner") == "dispatch:12:2026-04:owner"
    assert escalation.lookback_key(12, 5, "verifier", "ver") == "lookback:12:5:verifier:ver"


def test_dispatch_month__is_the_local_month() -> None:
    # 31 March 17:00 UTC is already 1 April in Shanghai.
    start, period = escalation.dispatch_month(dt.datetime(2026, 3, 31, 17, tzinfo=dt.UTC), SH)
    assert period == "2026-04"
    assert start == dt.datetime(2026, 4, 1, tzinfo=SH).astimezone(dt.UTC)
    assert start.tzinfo is dt.UTC


def test_year_days__names_where_each_answer_came_from() -> None:
    loaded = WorkCalendar.from_rows([(dt.date(2099, 1, 1), False), (dt.date(2099, 1, 3), True)])
    days = year_days(loaded, 2099)
    assert len(days) == 365
    assert days[:4] == [
        (dt.date(2099, 1, 1), False, "loaded"),  # a Thursday, declared a holiday
        (dt.date(2099, 1, 2), True, "weekday rule"),
        (dt.date(2099, 1, 3), True, "loaded"),  # a Saturday, declared a working day
        (dt.date(2099, 1, 4), False, "weekday rule"),
    ]
    statutory = year_days(WorkCalendar(), 2026)
    assert (dt.date(2026, 10, 1), False, "statutory") in statutory  # National Day
    assert (dt.date(2026, 10, 10), True, "statutory") in statutory  # a make-up Saturday
    assert year_days(WorkCalendar(), 2098)[0][2] == "weekday rule"
