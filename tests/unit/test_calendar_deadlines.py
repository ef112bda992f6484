"""Deadlines on the Chinese working calendar: holidays, make-up days, years without data."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from rectiflow import Engine
from rectiflow.engine import deadlines
from rectiflow.engine.calendar import WorkCalendar
from rectiflow.engine.deadlines import TimeRules
from rectiflow.engine.durations import parse_duration
from rectiflow.engine.spec import parse_workflow

SH = ZoneInfo("Asia/Shanghai")
RULES = TimeRules(WorkCalendar(), SH)
SHIPPED = parse_workflow(
    resources.files("rectiflow.workflows").joinpath("rectification.yaml").read_text("utf-8")
)


def local(y: int, m: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, s, tzinfo=SH)


def end_of(y: int, m: int, d: int) -> dt.datetime:
    return local(y, m, d, 23, 59, 59).astimezone(dt.UTC)


def add(rules: TimeRules, start: dt.datetime, text: str) -> tuple[dt.datetime, bool]:
    return rules.add(start, parse_duration(text, signed=True))


def test_deadline__5wd_across_national_day() -> None:
    due, provisional = add(RULES, local(2026, 9, 28, 10), "5wd")
    # 29 and 30 September, then 8, 9 and the make-up Saturday 10 October
    assert due == end_of(2026, 10, 10)
    assert due.astimezone(SH).isoformat() == "2026-10-10T23:59:59+08:00"
    assert not provisional


@pytest.mark.parametrize(
    "day",
    [dt.date(2026, 2, 14), dt.date(2026, 2, 28), dt.date(2026, 9, 20), dt.date(2026, 10, 10)],
)
def test_calendar__make_up_weekend_days_are_working_days(day: dt.date) -> None:
    assert day.weekday() >= 5
    assert RULES.calendar.is_workday(day) == (True, False)


@pytest.mark.parametrize("day", [dt.date(2026, 10, d) for d in range(1, 8)])
def test_calendar__national_day_week_is_not_working(day: dt.date) -> None:
    assert RULES.calendar.is_workday(day) == (False, False)


def test_calendar__ordinary_days() -> None:
    assert RULES.calendar.is_workday(dt.date(2026, 3, 6)) == (True, False)  # Friday
    assert RULES.calendar.is_workday(dt.date(2026, 3, 7)) == (False, False)  # Saturday
    assert RULES.calendar.is_workday(dt.date(2026, 2, 17)) == (False, False)  # Spring Festival


def test_calendar__workdays_between() -> None:
    cal = RULES.calendar
    assert cal.workdays_between(dt.date(2026, 9, 28), dt.date(2026, 10, 10)) == 5
    assert cal.workdays_between(dt.date(2026, 3, 6), dt.date(2026, 3, 9)) == 1
    assert cal.workdays_between(dt.date(2026, 3, 9), dt.date(2026, 3, 9)) == 0


@pytest.mark.parametrize(
    ("sla", "expected"),
    [
        ("30s", local(2026, 3, 2, 9, 0, 30)),
        ("15m", local(2026, 3, 2, 9, 15)),
        ("4h", local(2026, 3, 2, 13, 0)),
        ("10d", local(2026, 3, 12, 23, 59, 59)),  # calendar days: weekends count
        ("1wd", local(2026, 3, 3, 23, 59, 59)),
    ],
)
def test_deadline__every_sla_unit(sla: str, expected: dt.datetime) -> None:
    assert add(RULES, local(2026, 3, 2, 9, 0), sla) == (expected.astimezone(dt.UTC), False)


def test_deadline__days_count_from_the_local_date() -> None:
    start = local(2026, 3, 2, 23, 30)
    assert add(RULES, start, "1d")[0] == end_of(2026, 3, 3)
    early = local(2026, 3, 3, 0, 30)  # 16:30 UTC on 2 March, but 3 March in Shanghai
    assert add(RULES, early, "1wd")[0] == end_of(2026, 3, 4)
    assert RULES.end_of_day(dt.date(2026, 3, 2)) == dt.datetime(
        2026, 3, 2, 15, 59, 59, tzinfo=dt.UTC
    )


def test_ladder__offsets_from_a_deadline() -> None:
    due = end_of(2026, 10, 10)
    times = [deadlines.level_time(RULES, SHIPPED, due, i) for i in range(len(SHIPPED.ladder))]
    assert times == [
        end_of(2026, 9, 30),  # remind -3wd: 9 and 8 October, then back over the holiday
        due,  # warn at 0
        end_of(2026, 10, 16),  # supervise +5wd
        end_of(2026, 10, 30),  # notify_public +15wd
        end_of(2026, 11, 20),  # accountability +30wd
    ]
    assert deadlines.next_escalation(RULES, SHIPPED, due, 5) is None
    assert deadlines.next_escalation(RULES, SHIPPED, None, 0) is None


def test_deadline__2027_without_data_is_provisional_monday_to_friday() -> None:
    rules = TimeRules(WorkCalendar(), SH)
    due, provisional = add(rules, local(2026, 12, 28, 10), "5wd")
    # 29, 30, 31 December, then Friday 1 January 2027 (a weekday, no holiday known), Monday 4
    assert due == end_of(2027, 1, 4)
    assert provisional
    assert rules.calendar.is_workday(dt.date(2027, 1, 1)) == (True, True)
    assert not rules.calendar.has_data(2027)
    assert add(rules, local(2026, 12, 21, 10), "5wd") == (end_of(2026, 12, 28), False)


def test_deadline__2027_with_a_loaded_table() -> None:
    rows = [(dt.date(2027, 1, 1), False), (dt.date(2027, 1, 4), False), (dt.date(2027, 1, 9), True)]
    rules = TimeRules(WorkCalendar.from_rows(rows), SH)
    assert rules.calendar.has_data(2027)
    due, provisional = add(rules, local(2026, 12, 28, 10), "5wd")
    assert due == end_of(2027, 1, 6)  # 29, 30, 31 December, 5 and 6 January
    assert not provisional
    assert rules.calendar.is_workday(dt.date(2027, 1, 9)) == (True, False)  # loaded make-up day
    assert rules.calendar.is_workday(dt.date(2027, 3, 6)) == (False, False)  # other days: Mon-Fri
    assert rules.calendar.is_workday(dt.date(2026, 10, 10)) == (True, False)  # 2026: statutory


def test_deadline__engine_recomputes_provisional_deadlines_on_load(
    engine: Engine, tmp_path: Path
) -> None:
    case = engine.open_case("sup", unit="DIST", title="t", now=local(2026, 12, 28, 10))
    assert (case.due_at, case.due_provisional) == (end_of(2027, 1, 4), True)
    assert engine.list_cases() == [case]
    table = tmp_path / "2027.csv"
    table.write_text("date,kind\n2027-01-01,holiday\n2027-01-04,holiday\n", "utf-8")
    assert engine.load_calendar(table, now=local(2026, 12, 28, 11), partial=True) == 1
    reloaded = engine.get_case(case.id)
    assert (reloaded.due_at, reloaded.due_provisional) == (end_of(2027, 1, 6), False)
    assert reloaded.next_escalation_at == end_of(2026, 12, 30)  # remind: 5 Jan, 31 and 30 Dec


def test_deadline__a_case_due_date_replaces_the_rectify_sla(engine: Engine) -> None:
    now = local(2026, 3, 2, 9)
    case = engine.open_case("sup", unit="DIST", title="t", due=dt.date(2026, 6, 30), now=now)
    assert case.due == end_of(2026, 6, 30)
    engine.fire(case.id, "confirm", "sup", now=now)
    engine.add_measure(case.id, "own", "m", now=now)
    assert engine.fire(case.id, "approve_plan", "rev", now=now).due_at == end_of(2026, 6, 30)
