"""Pausing stops the clock; resuming moves the deadline by the paused working days.
The light: green before the first ladder level, yellow until the deadline, red after it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from rectiflow import Engine, Light, PermissionDenied, TransitionRejected

SH = ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=SH)  # Monday; identify is due 9 March 23:59:59


def local(m: int, d: int, h: int = 10, mi: int = 0, s: int = 0, y: int = 2026) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, s, tzinfo=SH)


def end_of(m: int, d: int, y: int = 2026) -> dt.datetime:
    return local(m, d, 23, 59, 59, y=y).astimezone(dt.UTC)


@pytest.fixture
def case_id(engine: Engine) -> int:
    return engine.open_case("sup", unit="DIST", title="Permits issued late", now=T0).id


def test_pause__resume_moves_the_deadline_by_paused_working_days(
    engine: Engine, case_id: int
) -> None:
    paused = engine.pause(case_id, "sup", comment=" waiting for the court ", now=local(3, 3))
    assert (paused.paused_at, paused.version, paused.due_at) == (
        local(3, 3).astimezone(dt.UTC), 2, end_of(3, 9),
    )  # fmt: skip
    resumed = engine.resume(case_id, "sup", now=local(3, 5))  # 4 and 5 March were paused
    assert (resumed.paused_at, resumed.pause_credit, resumed.version) == (None, 2, 3)
    assert resumed.due_at == end_of(3, 11)
    assert resumed.next_escalation_at == end_of(3, 6)  # remind: 3 working days before
    assert resumed.state == "identify"
    history = engine.history(case_id)
    assert [(e.trigger, e.source, e.dest, e.comment) for e in history[1:]] == [
        ("pause", "identify", "identify", "waiting for the court"),
        ("resume", "identify", "identify", None),
    ]
    assert engine.verify_history(case_id) == 3


def test_pause__over_a_weekend_counts_working_days_only(engine: Engine, case_id: int) -> None:
    engine.pause(case_id, "sup", comment="c", now=local(3, 6))  # Friday
    resumed = engine.resume(case_id, "sup", now=local(3, 9))  # Monday
    assert (resumed.pause_credit, resumed.due_at) == (1, end_of(3, 10))


def test_pause__over_national_day(engine: Engine) -> None:
    case = engine.open_case("sup", unit="DIST", title="t", now=local(9, 28))
    assert case.due_at == end_of(10, 10)
    engine.pause(case.id, "sup", comment="c", now=local(9, 30))
    resumed = engine.resume(case.id, "sup", now=local(10, 9))  # paused: 8 and 9 October
    assert (resumed.pause_credit, resumed.due_at) == (2, end_of(10, 13))


def test_pause__credits_add_up_and_reset_on_the_next_stage(engine: Engine, case_id: int) -> None:
    engine.pause(case_id, "sup", comment="c", now=local(3, 3))
    engine.resume(case_id, "sup", now=local(3, 4))
    engine.pause(case_id, "sup", comment="c", now=local(3, 5))
    resumed = engine.resume(case_id, "sup", now=local(3, 6))
    assert (resumed.pause_credit, resumed.due_at) == (2, end_of(3, 11))
    moved = engine.fire(case_id, "confirm", "sup", now=local(3, 6))
    assert (moved.pause_credit, moved.due_at) == (0, end_of(3, 20))


def test_pause__clock_sla_moves_by_the_paused_seconds(engine: Engine) -> None:
    engine.register_workflow(
        "name: hotline\nversion: 1\ntitle: {en: Hotline, zh: 热线}\ninitial: answer\n"
        "roles: [reporter, supervisor]\n"
        "states:\n  answer: {en: Answer, zh: 答复, sla: 4h}\n"
        "  done: {en: Done, zh: 完成, final: true}\n"
        "transitions:\n  - {trigger: reply, source: answer, dest: done, roles: [supervisor]}\n",
        "hotline.yaml",
    )
    case = engine.open_case("sup", unit="DIST", title="t", workflow="hotline", now=T0)
    assert case.due_at == local(3, 2, 13).astimezone(dt.UTC)
    engine.pause(case.id, "sup", comment="c", now=local(3, 2, 10))
    resumed = engine.resume(case.id, "sup", now=local(3, 2, 11, 30))
    assert (resumed.pause_credit, resumed.due_at) == (5400, local(3, 2, 14, 30).astimezone(dt.UTC))


def test_pause__refusals_leave_the_case_unchanged(engine: Engine, case_id: int) -> None:
    before = engine.get_case(case_id)
    with pytest.raises(TransitionRejected, match="a comment is required"):
        engine.pause(case_id, "sup", comment="  ", now=local(3, 3))
    with pytest.raises(PermissionDenied, match="own may not pause case 1: needs role supervisor"):
        engine.pause(case_id, "own", comment="c", now=local(3, 3))
    with pytest.raises(TransitionRejected, match="the case is not paused"):
        engine.resume(case_id, "sup", now=local(3, 3))
    assert engine.get_case(case_id) == before
    paused = engine.pause(case_id, "sup", comment="c", now=local(3, 3))
    with pytest.raises(TransitionRejected, match="the case is already paused"):
        engine.pause(case_id, "sup", comment="c", now=local(3, 4))
    with pytest.raises(TransitionRejected, match="the case is paused; resume it first"):
        engine.fire(case_id, "confirm", "sup", now=local(3, 4))
    with pytest.raises(PermissionDenied, match="needs role supervisor"):
        engine.resume(case_id, "rev", now=local(3, 4))
    assert engine.get_case(case_id) == paused
    assert len(engine.history(case_id)) == 2
    assert engine.triggers(case_id, "sup") == []


def test_pause__not_in_a_final_state(engine: Engine, case_id: int) -> None:
    engine.fire(case_id, "dismiss", "sup", comment="not ours", now=local(3, 3))
    with pytest.raises(TransitionRejected, match="dismissed is a final state"):
        engine.pause(case_id, "sup", comment="c", now=local(3, 4))


@pytest.mark.parametrize(
    ("now", "light"),
    [
        (local(3, 2, 9), Light.GREEN),
        (local(3, 4, 23, 59, 58), Light.GREEN),
        (local(3, 4, 23, 59, 59), Light.YELLOW),  # remind (-3wd) is due
        (local(3, 9, 23, 59, 59), Light.YELLOW),  # the deadline itself
        (local(3, 10, 0), Light.RED),
    ],
)
def test_light__green_yellow_red(
    engine: Engine, case_id: int, now: dt.datetime, light: Light
) -> None:
    assert engine.light(engine.get_case(case_id), now) is light
    assert engine.list_cases(light=light, now=now) == [engine.get_case(case_id)]
    assert engine.list_cases(overdue=True, now=now) == (
        [engine.get_case(case_id)] if light is Light.RED else []
    )


def test_light__none_while_paused_or_closed(engine: Engine, case_id: int) -> None:
    engine.pause(case_id, "sup", comment="c", now=local(3, 3))
    assert engine.light(engine.get_case(case_id), local(3, 20)) is None
    assert engine.list_cases(overdue=True, now=local(3, 20)) == []
    engine.resume(case_id, "sup", now=local(3, 3, 11))
    engine.fire(case_id, "dismiss", "sup", comment="c", now=local(3, 3, 12))
    assert engine.light(engine.get_case(case_id), local(3, 20)) is None
