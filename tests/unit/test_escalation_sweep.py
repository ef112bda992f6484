"""escalate_due on the in-memory store: each ladder level once per stage visit, in order."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from rectiflow import Engine

SH = ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=SH)  # Monday; identify is due 9 March 23:59:59
LADDER = ["remind", "warn", "supervise", "notify_public", "accountability"]


def local(m: int, d: int, h: int = 10, y: int = 2026) -> dt.datetime:
    return dt.datetime(y, m, d, h, tzinfo=SH)


def end_of(m: int, d: int) -> dt.datetime:
    return dt.datetime(2026, m, d, 23, 59, 59, tzinfo=SH).astimezone(dt.UTC)


def levels(engine: Engine, case_id: int) -> list[tuple[str, int, str]]:
    return [(e.state, e.visit, e.level) for e in engine.escalations(case_id)]


@pytest.fixture
def case_id(engine: Engine) -> int:
    return engine.open_case("sup", unit="DIST", title="Permits issued late", now=T0).id


def test_escalate__levels_fire_in_ladder_order(engine: Engine, case_id: int) -> None:
    assert engine.next_due_at() == end_of(3, 4)
    assert engine.escalate_due(local(3, 4, 12)).fired == 0
    first = engine.escalate_due(local(3, 5, 0))
    assert (first.cases, first.fired, first.by_level) == (1, 1, {"remind": 1})
    assert first.next_due_at == end_of(3, 9)
    engine.escalate_due(local(3, 10, 0))
    engine.escalate_due(local(3, 17, 0))
    rows = engine.escalations(case_id)
    assert [(e.level, e.due_at, e.fired_at) for e in rows] == [
        ("remind", end_of(3, 4), local(3, 5, 0).astimezone(dt.UTC)),
        ("warn", end_of(3, 9), local(3, 10, 0).astimezone(dt.UTC)),
        ("supervise", end_of(3, 16), local(3, 17, 0).astimezone(dt.UTC)),
    ]
    assert {(e.state, e.visit) for e in rows} == {("identify", 1)}
    case = engine.get_case(case_id)
    assert (case.next_level, case.next_escalation_at) == (3, end_of(3, 30))
    # One outbox row per person, found nearest the case's unit (DIST); supervise raises the
    # case to CITY (rectification@2), whose supervisor hears of it.
    assert [e.raised_to for e in rows] == [None, None, "CITY"]
    assert case.supervising_unit == "CITY"
    assert [
        (n.level, n.role, n.actor, n.key) for n in engine.store.list_notifications(case_id)
    ] == [
        ("remind", "owner", "own", f"esc:{case_id}:1:remind:owner:own"),
        ("warn", "owner", "own", f"esc:{case_id}:1:warn:owner:own"),
        ("warn", "head", "head", f"esc:{case_id}:1:warn:head:head"),
        ("supervise", "supervisor", "city_sup", f"esc:{case_id}:1:supervise:supervisor:city_sup"),
    ]


def test_escalate__once_only(engine: Engine, case_id: int) -> None:
    engine.escalate_due(local(3, 10, 0))
    before = (engine.escalations(case_id), engine.store.list_notifications(case_id))
    again = engine.escalate_due(local(3, 10, 0))
    assert (again.cases, again.fired, again.by_level) == (0, 0, {})
    later = engine.escalate_due(local(3, 12, 0))  # later, but before the next level
    assert later.fired == 0
    assert (engine.escalations(case_id), engine.store.list_notifications(case_id)) == before
    assert levels(engine, case_id) == [("identify", 1, "remind"), ("identify", 1, "warn")]


def test_escalate__catch_up_after_downtime(engine: Engine, case_id: int) -> None:
    summary = engine.escalate_due(local(6, 1))
    assert (summary.cases, summary.fired) == (1, 5)
    assert summary.by_level == dict.fromkeys(LADDER, 1)
    assert summary.next_due_at is None
    assert [e.level for e in engine.escalations(case_id)] == LADDER
    assert [e.due_at for e in engine.escalations(case_id)] == [
        end_of(3, 4), end_of(3, 9), end_of(3, 16), end_of(3, 30), end_of(4, 21),
    ]  # fmt: skip
    assert len(engine.store.list_notifications(case_id)) == 6
    assert engine.escalate_due(local(7, 1)).fired == 0


def test_escalate__dry_run_counts_and_writes_nothing(engine: Engine, case_id: int) -> None:
    summary = engine.escalate_due(local(6, 1), dry_run=True)
    assert (summary.cases, summary.fired) == (1, 5)
    assert engine.escalations(case_id) == []
    assert engine.get_case(case_id).next_level == 0


def test_escalate__many_cases_in_small_batches(engine: Engine) -> None:
    ids = [engine.open_case("sup", unit="DIST", title=f"case {i}", now=T0).id for i in range(5)]
    summary = engine.escalate_due(local(3, 10, 0), batch_size=2)
    assert (summary.cases, summary.fired) == (5, 10)
    for case_id in ids:
        assert [e.level for e in engine.escalations(case_id)] == ["remind", "warn"]


def test_escalate__cancelled_on_leaving_a_state(engine: Engine, case_id: int) -> None:
    engine.escalate_due(local(3, 5, 0))
    moved = engine.fire(case_id, "confirm", "sup", now=local(3, 5))  # plan: due 19 March
    assert (moved.visit, moved.next_level, moved.next_escalation_at) == (2, 0, end_of(3, 16))
    assert engine.escalate_due(local(3, 12, 0)).fired == 0  # identify's warn (9 March) is gone
    engine.escalate_due(local(3, 17, 0))
    assert levels(engine, case_id) == [("identify", 1, "remind"), ("plan", 2, "remind")]


def test_escalate__fresh_ladder_on_reentry(engine: Engine) -> None:
    case = engine.open_case("sup", unit="DIST", title="t", severity="high", now=T0)
    engine.fire(case.id, "confirm", "sup", now=T0)
    measure = engine.add_measure(case.id, "own", "m", now=T0)
    engine.fire(case.id, "approve_plan", "rev", now=T0)  # rectify (visit 3): due 30 March
    engine.escalate_due(local(3, 26, 0))  # remind of rectify, 25 March
    engine.complete_measure(measure.id, "own", now=local(3, 26))
    engine.fire(case.id, "submit", "own", now=local(3, 26))  # verify (visit 4)
    back = engine.fire(case.id, "reject", "ver", comment="no evidence", now=local(3, 27))
    assert (back.state, back.visit, back.next_level) == ("rectify", 5, 0)
    assert back.due_at == end_of(4, 27)
    engine.escalate_due(local(12, 1))
    assert levels(engine, case.id) == [("rectify", 3, "remind")] + [
        ("rectify", 5, level) for level in LADDER
    ]


def test_escalate__nothing_fires_while_paused(engine: Engine, case_id: int) -> None:
    engine.pause(case_id, "sup", comment="waiting for the court", now=local(3, 3))
    assert engine.next_due_at() is None
    summary = engine.escalate_due(local(6, 1))
    assert (summary.cases, summary.fired) == (0, 0)
    resumed = engine.resume(case_id, "sup", now=local(6, 1))
    assert resumed.due_at == end_of(6, 5)  # the 4 working days left on 3 March
    assert engine.next_due_at() == end_of(6, 2)
    assert engine.escalate_due(local(6, 1, 11)).fired == 0
    engine.escalate_due(local(6, 6))
    assert [(e.level, e.due_at) for e in engine.escalations(case_id)] == [
        ("remind", end_of(6, 2)), ("warn", end_of(6, 5)),
    ]  # fmt: skip


def test_escalate__final_states_never_escalate(engine: Engine, case_id: int) -> None:
    engine.fire(case_id, "dismiss", "sup", comment="not ours", now=local(3, 3))
    assert engine.next_due_at() is None
    assert engine.escalate_due(local(12, 1)).fired == 0
    assert engine.escalations(case_id) == []
