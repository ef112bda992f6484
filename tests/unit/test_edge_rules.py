"""Rules at the edges: partial calendar tables, a fixed due date that has passed, the head
of the history chain, the ladder's order, a measure completed twice, naive clocks, the time zone."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from rectiflow import Engine, IntegrityError, TransitionRejected, ValidationError
from rectiflow.engine.calendar import WorkCalendar
from rectiflow.engine.deadlines import TimeRules
from rectiflow.engine.durations import Duration, Unit

SH = ZoneInfo("Asia/Shanghai")
MONDAY = dt.datetime(2026, 3, 2, 9, 0, tzinfo=SH)  # the unit fixture's clock
SHIPPED = (
    Path(__file__).resolve().parents[2] / "rectiflow/workflows/rectification.yaml"
).read_text("utf-8")


def test_calendar__a_loaded_row_keeps_the_statutory_rest_of_its_year() -> None:
    calendar = WorkCalendar.from_rows([(dt.date(2026, 12, 31), False)])
    rules = TimeRules(calendar, SH)
    assert calendar.is_workday(dt.date(2026, 12, 31)) == (False, False)
    assert calendar.is_workday(dt.date(2026, 10, 1)) == (False, False)  # National Day
    assert calendar.is_workday(dt.date(2026, 10, 10)) == (True, False)  # make-up Saturday
    due, provisional = rules.add(
        dt.datetime(2026, 9, 28, 10, tzinfo=SH), Duration(5, Unit.WORKDAYS)
    )
    assert due == dt.datetime(2026, 10, 10, 23, 59, 59, tzinfo=SH)
    assert not provisional


def test_due__a_passed_due_date_does_not_replace_the_sla_on_a_later_visit(engine: Engine) -> None:
    case = engine.open_case("rep", unit="DIST", title="t", due=dt.date(2026, 4, 30), now=MONDAY)
    engine.fire(case.id, "confirm", "sup", now=MONDAY)
    engine.add_measure(case.id, "own", "m", now=MONDAY)
    in_rectify = engine.fire(case.id, "approve_plan", "rev", now=MONDAY)
    assert in_rectify.due_at == dt.datetime(2026, 4, 30, 23, 59, 59, tzinfo=SH)  # the case's own

    engine.complete_measure(engine.measures(case.id)[0].id, "own", now=MONDAY)
    engine.fire(case.id, "submit", "own", now=MONDAY)
    engine.fire(case.id, "accept", "ver", now=MONDAY)
    september = dt.datetime(2026, 9, 1, 10, tzinfo=SH)
    reopened = engine.fire(case.id, "reopen", "sup", comment="反弹", now=september)
    # medium severity: 40 working days from 1 September, past National Day
    assert reopened.due_at is not None
    assert reopened.due_at > september
    assert engine.light(reopened, september).value == "green"
    summary = engine.escalate_due(september)
    assert summary.fired == 0


def test_history__a_removed_last_entry_is_named(engine: Engine) -> None:
    case = engine.open_case("rep", unit="DIST", title="t", now=MONDAY)
    engine.fire(case.id, "dismiss", "sup", comment="不属实", now=MONDAY)
    entries = engine.store._history[case.id]  # type: ignore[attr-defined]
    entries.pop()
    with pytest.raises(IntegrityError, match=r"case 1 is broken at seq 2: entry 2 is missing"):
        engine.verify_history()


def test_history__a_replaced_last_entry_is_named(engine: Engine) -> None:
    case = engine.open_case("rep", unit="DIST", title="t", now=MONDAY)
    engine.fire(case.id, "confirm", "sup", now=MONDAY)
    entries = engine.store._history[case.id]  # type: ignore[attr-defined]
    # a forger rebuilds a consistent chain that ends elsewhere than the case row says
    forged = dataclasses.replace(entries[-1], hash="f" * 64)
    entries[-1] = forged
    with pytest.raises(IntegrityError, match="seq 2"):
        engine.verify_history()


def test_workflow__ladder_levels_out_of_order_are_refused() -> None:
    remind = "  - {level: remind, offset: -3wd, notify: [owner]}\n"
    warn = "  - {level: warn, offset: 0, notify: [owner, head]}\n"
    text = SHIPPED.replace(remind + warn, warn + remind)
    with Engine("memory://") as engine, pytest.raises(ValidationError) as info:
        engine.register_workflow(text, "order.yaml")
    assert "order.yaml:" in str(info.value)
    assert "escalation[1].offset: level 'remind' (-3wd) comes before 'warn' (0)" in str(info.value)


def test_measure__completed_twice_is_refused_and_keeps_its_evidence(
    engine: Engine, tmp_path: Path
) -> None:
    proof = tmp_path / "proof.txt"
    proof.write_text("整改报告", "utf-8")
    case = engine.open_case("rep", unit="DIST", title="t", now=MONDAY)
    engine.fire(case.id, "confirm", "sup", now=MONDAY)
    measure = engine.add_measure(case.id, "own", "m", now=MONDAY)
    done = engine.complete_measure(measure.id, "own", evidence=proof, now=MONDAY)
    version = engine.get_case(case.id).version
    with pytest.raises(TransitionRejected, match=f"measure {measure.id} is already done"):
        engine.complete_measure(measure.id, "own", now=MONDAY + dt.timedelta(days=1))
    assert engine.measures(case.id) == [done]
    assert engine.get_case(case.id).version == version


def test_clock__a_naive_clock_is_local_time() -> None:
    naive = dt.datetime(2026, 3, 2, 9, 0)
    with Engine("memory://", clock=lambda: naive) as engine:
        assert engine.now() == dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)


def test_time_zone__the_library_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECTIFLOW_TZ", "Europe/Paris")  # for the CLI, which passes it as tz
    with Engine("memory://") as engine:
        assert engine.tz == SH
    with Engine("memory://", tz="Europe/Paris") as engine:
        assert engine.tz == ZoneInfo("Europe/Paris")
