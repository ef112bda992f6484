"""Reports on a real ledger (a SQLite file and PostgreSQL): the issue's breakdown of 52 items
(33 closed, 10 awaiting acceptance, 4 done but not submitted, 1 overdue, 4 behind schedule)
built through the Engine and read back from progress() and every bulletin format; each
category rule on its own; snapshots frozen once; the ranking from the snapshot alone; the
light history month by month."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import docx
import openpyxl
import pytest
import sqlalchemy as sa
from integration_support import SQL_BACKENDS, local, open_case

from rectiflow import Engine
from rectiflow.engine.errors import AlreadyTaken, NotFound, ValidationError
from rectiflow.engine.reports import parse_scheme
from rectiflow.formats.bulletin import write_report

pytestmark = pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True)

T0 = local(2026, 1, 5)  # a Monday: every case is opened then
NOW = local(2026, 3, 20, 10)  # the report's clock
LATE_DUE = dt.date(2026, 4, 30)  # the rectify deadline of the cases still at work
ZERO_LEVELS = {"remind": 0, "warn": 0, "supervise": 0, "notify_public": 0, "accountability": 0}
KEYS = [
    "dismissed", "closed", "exempted", "awaiting_acceptance", "done_not_submitted", "paused",
    "long_term", "overdue", "behind_schedule", "on_schedule",
]  # fmt: skip


def cats(**counts: int) -> dict[str, int]:
    return {key: counts.get(key, 0) for key in KEYS}


class Builder:
    """Cases through the Engine API, each at the stage its category needs."""

    def __init__(self, engine: Engine, root: str = "PROV") -> None:
        self.engine = engine
        engine.add_actor("owner", ["owner"], [root])

    def rectify(
        self, unit: str, *, due: dt.date = LATE_DUE, measures: tuple[dt.date | None, ...] = (None,),
        done: int = 0, category: str | None = None, at: dt.datetime = T0,
    ) -> int:  # fmt: skip
        """A case in rectify (entered at ``at`` + 1 h) with its measures, ``done`` of them
        completed."""
        e = self.engine
        case = open_case(e, unit, now=at, due=due, category=category)
        e.fire(case, "confirm", "sup", now=at)
        ids = [e.add_measure(case, "owner", f"措施{i}", due=d, now=at).id
               for i, d in enumerate(measures)]  # fmt: skip
        e.fire(case, "approve_plan", "rev", now=at + dt.timedelta(hours=1))
        for measure in ids[:done]:
            e.complete_measure(measure, "owner", now=at + dt.timedelta(hours=2))
        return case

    def verify(self, unit: str, submitted: dt.datetime, **kw: Any) -> int:
        case = self.rectify(unit, done=1, **kw)
        self.engine.fire(case, "submit", "owner", now=submitted)
        return case

    def closed(self, unit: str, **kw: Any) -> int:
        case = self.verify(unit, T0 + dt.timedelta(hours=3), **kw)
        self.engine.fire(case, "accept", "ver", now=T0 + dt.timedelta(hours=4))
        return case

    def dismissed(self, unit: str) -> int:
        case = open_case(self.engine, unit, now=T0)
        self.engine.fire(case, "dismiss", "sup", comment="不属实", now=T0)
        return case


def build_breakdown(engine: Engine) -> dict[str, list[int]]:
    """The issue's ledger: 52 counted cases in CITY1 (COUNTY1 under it), CITY10 and CITY2
    of PROV, plus two dismissed ones; the case ids by category."""
    b = Builder(engine)
    ids: dict[str, list[int]] = {key: [] for key in KEYS}
    water = {"category": "水环境"}
    # A case escalated in an earlier stage visit (rectify), closed since: its levels belong
    # to that visit and do not count.
    early = b.rectify("CITY1", due=dt.date(2026, 2, 10), done=1, **water)
    assert engine.escalate_due(local(2026, 2, 12, 10)).fired == 2  # remind, warn
    engine.fire(early, "submit", "owner", now=local(2026, 2, 12, 11))
    engine.fire(early, "accept", "ver", now=local(2026, 2, 12, 12))
    ids["closed"].append(early)
    for unit, n in (("CITY1", 7), ("COUNTY1", 4), ("CITY10", 11), ("CITY2", 10)):
        kind = water if unit in ("CITY1", "COUNTY1") else {}
        ids["closed"] += [b.closed(unit, **kind) for _ in range(n)]
    for unit, n in (("CITY1", 4), ("CITY10", 3), ("CITY2", 3)):
        ids["awaiting_acceptance"] += [b.verify(unit, local(2026, 3, 16)) for _ in range(n)]
    for unit, n in (("CITY1", 2), ("CITY10", 1), ("CITY2", 1)):
        ids["done_not_submitted"] += [
            b.rectify(unit, measures=(None, None), done=2) for _ in range(n)
        ]
    overdue = b.rectify("CITY1", due=dt.date(2026, 3, 10), measures=(None, None), done=1)
    ids["overdue"].append(overdue)
    late_measure = (None, dt.date(2026, 3, 1))  # the second, undone, is past its due date
    ids["behind_schedule"] += [
        b.rectify("COUNTY1", measures=late_measure, done=1),
        b.rectify("CITY10", measures=late_measure, done=1),
        # 0 of 2 done with 64 % of the window [5 Jan, 30 Apr] gone: floor(2 × 0.64) = 1
        b.rectify("CITY1", measures=(None, None), done=0),
        b.rectify("CITY2", measures=(None, None), done=0),
    ]
    ids["dismissed"] += [b.dismissed("COUNTY1"), b.dismissed("CITY2")]
    # the overdue case reaches remind (-3wd), warn (0) and supervise (+5wd) by NOW
    assert engine.escalate_due(NOW).fired == 3
    return ids


BREAKDOWN = cats(
    dismissed=2, closed=33, awaiting_acceptance=10, done_not_submitted=4, overdue=1,
    behind_schedule=4,
)  # fmt: skip
LEVELS_NOW = {**ZERO_LEVELS, "remind": 1, "warn": 1, "supervise": 1}
HEADLINE = (
    "Province共建立问题清单52项，已完成整改47项，完成率90.4%，其中已销号33项、已完成整改待验收10项、"
    "已完成整改未申请验收4项；逾期未完成1项，未达序时进度4项。"
)


@pytest.fixture
def breakdown(ledger: Engine) -> tuple[Engine, dict[str, list[int]]]:
    return ledger, build_breakdown(ledger)


def test_progress__the_issues_breakdown(breakdown: tuple[Engine, dict[str, list[int]]]) -> None:
    engine, ids = breakdown
    data = engine.progress(now=NOW)
    assert data["total"] == 52
    assert data["completed"] == 47
    assert data["completion_rate"] == round(47 / 52, 4)
    assert data["categories"] == BREAKDOWN
    assert list(data["categories"]) == KEYS
    # closed cases have no light; the 18 at work before their deadline are green
    assert data["lights"] == {"green": 18, "yellow": 0, "red": 1}
    assert data["escalations"] == LEVELS_NOW
    assert data["unit"] is None
    assert data["as_of"] == "2026-03-20T10:00:00+08:00"
    by_case = {c["id"]: c["category"] for c in data["cases"]}
    for key, cases in ids.items():
        assert {by_case[c] for c in cases} <= {key}, key
    assert len(data["cases"]) == 54
    assert [c["id"] for c in data["overdue_cases"]] == ids["overdue"]
    assert data["overdue_cases"][0]["unit_name"] == "City 1"

    rows = {u["unit"]: u for u in data["units"]}
    assert list(rows) == ["CITY1", "CITY10", "CITY2"]
    assert rows["CITY1"]["categories"] == cats(
        dismissed=1, closed=12, awaiting_acceptance=4, done_not_submitted=2, overdue=1,
        behind_schedule=2,
    )  # fmt: skip
    assert (rows["CITY1"]["total"], rows["CITY1"]["completed"]) == (21, 18)
    assert rows["CITY1"]["lights"] == {"green": 8, "yellow": 0, "red": 1}
    assert rows["CITY1"]["escalations"] == LEVELS_NOW
    assert rows["CITY10"]["categories"] == cats(
        closed=11, awaiting_acceptance=3, done_not_submitted=1, behind_schedule=1
    )
    assert (rows["CITY10"]["total"], rows["CITY10"]["completion_rate"]) == (16, 0.9375)
    assert rows["CITY2"]["categories"] == cats(
        dismissed=1, closed=10, awaiting_acceptance=3, done_not_submitted=1, behind_schedule=1
    )
    assert rows["CITY2"]["escalations"] == ZERO_LEVELS
    assert sum(u["total"] for u in data["units"]) == 52


def test_progress__depth_unit_and_grouping(breakdown: tuple[Engine, dict[str, list[int]]]) -> None:
    engine, _ = breakdown
    deep = engine.progress(now=NOW, depth=2)
    assert deep["total"] == 52  # the scope's figures do not depend on the rows
    assert [(u["unit"], u["total"], u["completed"]) for u in deep["units"]] == [("COUNTY1", 5, 4)]
    assert deep["units"][0]["categories"] == cats(dismissed=1, closed=4, behind_schedule=1)

    city = engine.progress(now=NOW, unit="CITY1")
    assert (city["unit"], city["total"], city["completed"]) == ("CITY1", 21, 18)
    assert [(u["unit"], u["total"]) for u in city["units"]] == [("COUNTY1", 5)]

    by = engine.progress(now=NOW, by="category")
    groups = {g["key"]: g for g in by["groups"]}
    assert sorted(groups) == ["水环境", "（未填）"]
    assert groups["水环境"]["categories"] == cats(closed=12)
    assert groups["水环境"]["total"] + groups["（未填）"]["total"] == 52
    assert "units" not in by


@pytest.mark.parametrize("fmt", ["md", "xlsx", "docx"])
def test_progress__every_format_says_the_same_numbers(
    breakdown: tuple[Engine, dict[str, list[int]]], fmt: str, tmp_path: Path
) -> None:
    engine, _ = breakdown
    data = engine.progress(now=NOW)
    assert data["headline"] == HEADLINE
    out = tmp_path / f"report.{fmt}"
    text = write_report("progress", data, fmt, None if fmt == "md" else out)
    if fmt == "md":
        assert isinstance(text, str)
        assert HEADLINE in text
        lines = text.splitlines()
        total = next(line for line in lines if line.startswith("| 合计 |"))
        cells = [c.strip() for c in total.strip("|").split("|")]
        assert cells[:4] == ["合计", "52", "47", "90.4%"]
        assert cells[4:14] == ["2", "33", "0", "10", "4", "0", "0", "1", "4", "0"]
        assert "| 问题总数 | 52 |" in text
        assert any(line.startswith("| City 1 | 21 | 18 | 85.7% |") for line in lines)
    elif fmt == "xlsx":
        book = openpyxl.load_workbook(out)
        assert book.sheetnames == ["概况", "分单位", "逾期清单"]
        sheet = book["分单位"]
        header = [c.value for c in sheet[1]]
        rows = {r[0].value: [c.value for c in r] for r in sheet.iter_rows(min_row=2)}
        assert list(rows) == ["City 1", "City 10", "City 2", "合计"]
        total = dict(zip(header, rows["合计"], strict=True))
        assert (total["问题总数"], total["已完成"]) == (52, 47)
        assert total["完成率"] == pytest.approx(47 / 52, abs=1e-4)
        assert [total[k] for k in ("已销号", "已完成整改，待验收", "已完成整改，未申请验收")] == [
            33, 10, 4,
        ]  # fmt: skip
        assert (total["逾期未完成"], total["未达序时进度"], total["红"], total["绿"]) == (
            1,
            4,
            1,
            18,
        )
        (chart,) = sheet._charts
        assert (chart.tagname, chart.grouping) == ("barChart", "stacked")
        assert len(chart.series) == 9
        summary = {r[0].value: r[1].value for r in book["概况"].iter_rows() if r[0].value}
        assert (summary["问题总数"], summary["已完成整改"], summary["已销号"]) == (52, 47, 33)
        assert summary["督办"] == 1
        overdue = [[c.value for c in r] for r in book["逾期清单"].iter_rows(min_row=2)]
        assert overdue[0][3] == "City 1"
    else:
        document = docx.Document(str(out))
        texts = [p.text for p in document.paragraphs]
        assert texts[0] == "关于Province问题整改进展情况的通报"
        assert texts[1] == "（截至2026年3月20日）"
        assert HEADLINE in texts
        units, overdue = document.tables
        header = [c.text for c in units.rows[0].cells]
        total = dict(zip(header, [c.text for c in units.rows[-1].cells], strict=True))
        assert (total["单位"], total["问题总数"], total["已完成"], total["完成率"]) == (
            "合计", "52", "47", "90.4%",
        )  # fmt: skip
        assert (total["已销号"], total["逾期未完成"], total["未达序时进度"]) == ("33", "1", "4")
        assert [c.text for c in overdue.rows[1].cells][3] == "City 1"


# --- each rule on its own ------------------------------------------------------------------


def category_of(engine: Engine, case: int, now: dt.datetime) -> str:
    found = {c["id"]: c["category"] for c in engine.progress(now=now)["cases"]}
    return found[case]


def test_rules__each_category_alone(ledger: Engine) -> None:
    b = Builder(ledger)
    paused = b.rectify("CITY2", done=0)
    ledger.pause(paused, "sup", comment="等待上级答复", now=T0 + dt.timedelta(days=1))
    long_term = open_case(ledger, "CITY2", now=T0, long_term=True)
    ledger.fire(long_term, "confirm", "sup", now=T0)
    ledger.add_measure(long_term, "owner", "长效机制", now=T0)
    ledger.fire(long_term, "approve_plan", "rev", now=T0)
    on_schedule = b.rectify("CITY2", measures=(None, None), done=1)
    in_plan = open_case(ledger, "CITY2", now=T0)
    ledger.fire(in_plan, "confirm", "sup", now=T0)
    identify_late = open_case(ledger, "CITY2", now=T0)
    none_done = b.rectify("CITY2", measures=(None, None, None), done=0)

    assert ledger.get_case(long_term).due_at is None
    assert category_of(ledger, paused, NOW) == "paused"
    assert category_of(ledger, long_term, NOW) == "long_term"
    assert category_of(ledger, on_schedule, NOW) == "on_schedule"
    assert category_of(ledger, identify_late, NOW) == "overdue"  # any stage's deadline
    assert category_of(ledger, in_plan, NOW) == "overdue"
    # two days into the window nothing is due yet: floor(3 × 0.02) = 0; by NOW
    # floor(3 × 0.64) = 1 measure should be done
    assert category_of(ledger, none_done, T0 + dt.timedelta(days=2)) == "on_schedule"
    assert category_of(ledger, none_done, NOW) == "behind_schedule"
    data = ledger.progress(now=NOW)
    assert data["categories"] == cats(
        paused=1, long_term=1, on_schedule=1, overdue=2, behind_schedule=1
    )
    assert data["completed"] == 0
    assert data["lights"]["green"] == 3  # paused has no light; long-term without deadline: green


def test_progress__no_per_case_queries(ledger: Engine) -> None:
    b = Builder(ledger)
    for _ in range(4):
        b.rectify("CITY2", measures=(None, dt.date(2026, 3, 1)), done=1)
    ledger.escalate_due(NOW)

    def statements(run: Any) -> int:
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(args[2])

        sa.event.listen(ledger.store.engine, "before_cursor_execute", count)
        try:
            run()
        finally:
            sa.event.remove(ledger.store.engine, "before_cursor_execute", count)
        return len(seen)

    few = statements(lambda: ledger.progress(now=NOW))
    for i in range(196):
        open_case(ledger, ("CITY1", "CITY10", "CITY2", "COUNTY1")[i % 4], now=T0)
    many = statements(lambda: ledger.progress(now=NOW))
    assert ledger.progress(now=NOW)["total"] == 200
    assert many == few
    assert many <= 12
    snap = statements(lambda: ledger.snapshot("2026-03", now=NOW))
    assert snap <= 20


# --- snapshots and ranking ------------------------------------------------------------------


def test_snapshot__frozen_once(breakdown: tuple[Engine, dict[str, list[int]]]) -> None:
    engine, ids = breakdown
    info = engine.snapshot("2026-03", now=NOW)
    assert (info.period, info.kind, info.taken_by) == ("2026-03", "month", "operator")
    assert info.as_of == NOW
    cases = engine.store.snapshot_cases("2026-03")
    units = engine.store.snapshot_units("2026-03")
    assert Counter(c.category for c in cases) == {k: n for k, n in BREAKDOWN.items() if n}
    assert units["PROV"]["total"] == 52
    assert units["PROV"]["categories"] == BREAKDOWN
    assert units["CITY1"]["completed"] == 18
    assert units["COUNTY1"]["total"] == 5
    overdue = next(c for c in cases if c.case_id == ids["overdue"][0])
    assert (overdue.light, overdue.state, overdue.level) == ("red", "rectify", "supervise")

    later = local(2026, 3, 25)
    with pytest.raises(AlreadyTaken) as refused:
        engine.snapshot("2026-03", now=later)
    assert refused.value.exit_code == 5
    assert engine.store.snapshot_cases("2026-03") == cases
    assert engine.store.snapshot_units("2026-03") == units
    assert [s.as_of for s in engine.snapshots()] == [NOW]

    quarter = engine.snapshot("2026-Q1", from_period="2026-03", now=later)
    assert (quarter.kind, quarter.as_of) == ("quarter", NOW)
    assert [(c.case_id, c.category, c.light) for c in engine.store.snapshot_cases("2026-Q1")] == [
        (c.case_id, c.category, c.light) for c in cases
    ]
    assert engine.store.snapshot_units("2026-Q1") == units
    assert [s.period for s in engine.snapshots()] == ["2026-03", "2026-Q1"]
    with pytest.raises(AlreadyTaken):
        engine.snapshot("2026-Q1", from_period="2026-03", now=later)
    with pytest.raises(NotFound):
        engine.snapshot("2026-Q2", from_period="2026-06", now=later)
    # a period is frozen under its one spelling: 2026-q2 is 2026-Q2
    assert engine.snapshot("2026-q2", from_period="2026-Q1", now=later).period == "2026-Q2"
    assert engine.ranking("2026-q2")["period"] == "2026-Q2"
    with pytest.raises(AlreadyTaken):
        engine.snapshot("2026-Q2", now=later)
    with pytest.raises(ValidationError):
        engine.ranking("March")
    with pytest.raises(ValidationError):
        engine.snapshot("2026-13", now=later)


def test_ranking__from_the_snapshot_alone(breakdown: tuple[Engine, dict[str, list[int]]]) -> None:
    engine, ids = breakdown
    engine.snapshot("2026-03", now=NOW)
    before = engine.ranking("2026-03")
    assert [(u["unit"], u["rank"]) for u in before["units"]] == [
        ("CITY10", 1), ("CITY2", 2), ("CITY1", 3),
    ]  # fmt: skip
    city1 = before["units"][2]["figures"]
    assert city1["completion_rate"] == pytest.approx(18 / 21)
    assert city1["overdue_rate"] == pytest.approx(1 / 21)
    assert city1["supervise_rate"] == pytest.approx(1 / 21)
    # after the snapshot: the overdue case is done and submitted, two more are closed
    later = local(2026, 3, 26)
    overdue = ids["overdue"][0]
    undone = [m for m in engine.measures(overdue) if not m.done]
    for m in undone:
        engine.complete_measure(m.id, "owner", now=later)
    engine.fire(overdue, "submit", "owner", now=later)
    for case in ids["awaiting_acceptance"][:2]:
        engine.fire(case, "accept", "ver", now=later)
    assert engine.progress(now=later)["categories"]["overdue"] == 0
    assert engine.ranking("2026-03") == before
    with pytest.raises(NotFound):
        engine.ranking("2026-04")


def ten_units(engine: Engine) -> None:
    """Under R: U01..U10 with one outcome each; a score by the default weights beside it."""
    engine.add_unit("R", "Root")
    engine.add_actor("sup", ["supervisor"])
    engine.add_actor("rev", ["reviewer"])
    engine.add_actor("ver", ["verifier"])
    for i in range(1, 11):
        engine.add_unit(f"U{i:02d}", f"单位{i}", parent="R")
    b = Builder(engine, "R")
    for unit in ("U01", "U02", "U06"):
        b.closed(unit)  # 100
    b.verify("U10", local(2026, 3, 16))  # 100: awaiting acceptance is completed
    b.closed("U07")
    open_case(engine, "U07", now=local(2026, 3, 19))  # 50
    open_case(engine, "U03", now=local(2026, 3, 19))  # 0: on schedule
    for unit in ("U05", "U09"):
        open_case(engine, unit, now=T0)  # -40: overdue (identify's 5 working days)
    # U04 and U08 have no case: 0


def test_ranking__default_tiers_and_ties_by_code(engine: Engine, tmp_path: Path) -> None:
    ten_units(engine)
    engine.snapshot("2026-03", now=NOW)
    ranked = engine.ranking("2026-03")
    assert ranked["scheme"] == "默认方案"
    rows = [(u["unit"], u["score"], u["rank"], u["tier"]) for u in ranked["units"]]
    assert rows == [
        ("U01", 100.0, 1, "第一档"), ("U02", 100.0, 2, "第一档"), ("U06", 100.0, 3, "第一档"),
        ("U10", 100.0, 4, "第二档"), ("U07", 50.0, 5, "第二档"), ("U03", 0.0, 6, "第二档"),
        ("U04", 0.0, 7, "第二档"), ("U08", 0.0, 8, "第二档"), ("U05", -40.0, 9, "第三档"),
        ("U09", -40.0, 10, "第三档"),
    ]  # fmt: skip
    assert "unit code" in ranked["tie_note"]

    scheme = tmp_path / "scheme.yaml"
    scheme.write_text(
        "name: 按分数\nweights: {completion_rate: 100, overdue_rate: -40}\n"
        "tiers:\n  - {name: 优秀, min_score: 90}\n  - {name: 良好, min_score: 0}\n"
        "  - {name: 较差}\n",
        "utf-8",
    )
    custom = engine.ranking("2026-03", scheme=parse_scheme(scheme.read_text("utf-8")))
    assert custom["scheme"] == "按分数"
    tiers = {u["unit"]: u["tier"] for u in custom["units"]}
    assert tiers == {
        "U01": "优秀", "U02": "优秀", "U06": "优秀", "U10": "优秀", "U07": "良好",
        "U03": "良好", "U04": "良好", "U08": "良好", "U05": "较差", "U09": "较差",
    }  # fmt: skip
    sub = engine.ranking("2026-03", unit="U07")
    assert sub["units"] == []  # U07 has no units below it


# --- light history ------------------------------------------------------------------------


def month_end(month: int) -> dt.datetime:
    return local(2026, month, {1: 31, 2: 28, 3: 31, 4: 30}[month], 23, 59)


def test_light_history__month_by_month(ledger: Engine) -> None:
    b = Builder(ledger)
    ledger.snapshot("2026-01", now=month_end(1))  # before any case
    # red at March's end (identify, 5 working days from 2 March); in April it moves on to
    # rectify, due 4 May: yellow at April's end (past the reminder, not the deadline)
    changing = open_case(ledger, "CITY1", now=local(2026, 3, 2), due=dt.date(2026, 5, 4))
    steady = b.rectify("CITY2", due=dt.date(2026, 6, 30), done=1, at=local(2026, 3, 2))
    ledger.snapshot("2026-03", now=month_end(3))
    ledger.fire(changing, "confirm", "sup", now=local(2026, 4, 8))
    ledger.add_measure(changing, "owner", "措施", now=local(2026, 4, 8))
    ledger.fire(changing, "approve_plan", "rev", now=local(2026, 4, 9))
    ledger.snapshot("2026-04", now=month_end(4))

    history = ledger.light_history("2026-01", "2026-04")
    assert history["months"] == ["2026-01", "2026-02", "2026-03", "2026-04"]
    assert history["missing"] == ["2026-02"]
    lights = {c["id"]: c["lights"] for c in history["cases"]}
    assert lights[changing] == {"2026-01": None, "2026-02": None, "2026-03": "red",
                                "2026-04": "yellow"}  # fmt: skip
    assert lights[steady] == {"2026-01": None, "2026-02": None, "2026-03": "green",
                              "2026-04": "green"}  # fmt: skip
    units = {u["unit"]: u["counts"] for u in history["units"]}
    assert list(units) == ["CITY1", "CITY10", "CITY2"]
    assert units["CITY1"] == {
        "2026-01": {"red": 0, "yellow": 0, "green": 0}, "2026-02": None,
        "2026-03": {"red": 1, "yellow": 0, "green": 0},
        "2026-04": {"red": 0, "yellow": 1, "green": 0},
    }  # fmt: skip
    assert units["CITY2"]["2026-04"] == {"red": 0, "yellow": 0, "green": 1}
    city = ledger.light_history("2026-03", "2026-04", unit="CITY1")
    assert [u["unit"] for u in city["units"]] == ["COUNTY1"]
    assert [c["id"] for c in city["cases"]] == [changing]
    with pytest.raises(ValidationError):
        ledger.light_history("2026-04", "2026-03")
