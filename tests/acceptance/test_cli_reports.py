"""`rectiflow report` as a subprocess: the bulletin in JSON, md, xlsx and docx; a snapshot
taken once (a second exits 5); the snapshots, the ranking and the light history in JSON;
a bad period refused in one line (exit 2)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import docx
import openpyxl
from cli_support import OTHER_OWNER, OWNER, REVIEWER, SUPERVISOR, VERIFIER, Cli

from rectiflow import Engine

MARCH_END = "2026-03-31T23:59:00+08:00"
OPENED = dt.datetime.fromisoformat("2026-03-02T10:00:00+08:00")


def build(cli: Cli) -> dict[str, int]:
    """HRB: one case closed, one in verify, one overdue in identify; QQHR: one on schedule
    in rectify, one dismissed. Built through the Engine on the CLI's file."""
    hour = dt.timedelta(hours=1)
    with Engine(f"sqlite:///{cli.db}") as engine:

        def to_rectify(unit: str, owner: str, done: bool) -> int:
            case = engine.open_case(
                SUPERVISOR, unit=unit, title=f"{unit}问题", now=OPENED, due=dt.date(2026, 6, 30)
            ).id
            engine.fire(case, "confirm", SUPERVISOR, now=OPENED)
            measure = engine.add_measure(case, owner, "整改措施", now=OPENED).id
            engine.fire(case, "approve_plan", REVIEWER, now=OPENED + hour)
            if done:
                engine.complete_measure(measure, owner, now=OPENED + 2 * hour)
            return case

        closed = to_rectify("HRB", OWNER, True)
        engine.fire(closed, "submit", OWNER, now=OPENED + 3 * hour)
        engine.fire(closed, "accept", VERIFIER, now=OPENED + 4 * hour)
        verify = to_rectify("HRB", OWNER, True)
        engine.fire(verify, "submit", OWNER, now=dt.datetime(2026, 3, 27, 9, tzinfo=dt.UTC))
        overdue = engine.open_case(SUPERVISOR, unit="HRB", title="逾期问题", now=OPENED).id
        at_work = to_rectify("QQHR", OTHER_OWNER, False)
        dismissed = engine.open_case(SUPERVISOR, unit="QQHR", title="不实", now=OPENED).id
        engine.fire(dismissed, "dismiss", SUPERVISOR, comment="不属实", now=OPENED)
    return {"closed": closed, "verify": verify, "overdue": overdue, "at_work": at_work}


def test_report_progress__json_md_xlsx_docx(ledger: Cli, tmp_path: Path) -> None:
    build(ledger)
    data = ledger.json("report", "progress", now=MARCH_END)
    assert (data["total"], data["completed"], data["completion_rate"]) == (4, 2, 0.5)
    assert data["categories"]["closed"] == 1
    assert data["categories"]["awaiting_acceptance"] == 1
    assert data["categories"]["overdue"] == 1
    assert data["categories"]["on_schedule"] == 1
    assert data["categories"]["dismissed"] == 1
    assert data["lights"] == {"green": 2, "yellow": 0, "red": 1}
    assert [(u["unit"], u["total"], u["completed"]) for u in data["units"]] == [
        ("HRB", 3, 2), ("QQHR", 1, 0),
    ]  # fmt: skip
    assert data["as_of"] == MARCH_END

    md = ledger.run("report", "progress", "--format", "md", now=MARCH_END).stdout
    assert md.startswith("# 关于全省问题整改进展情况的通报")
    assert (
        "全省共建立问题清单4项，已完成整改2项，完成率50.0%，其中已销号1项、已完成整改待验收1项"
        in md
    )
    assert "| 合计 | 4 | 2 | 50.0% |" in md

    xlsx = tmp_path / "通报.xlsx"
    done = ledger.run("report", "progress", "--out", str(xlsx), now=MARCH_END)
    assert done.stdout.strip() == f"wrote {xlsx}"
    sheet = openpyxl.load_workbook(xlsx)["分单位"]
    rows = {r[0].value: [c.value for c in r] for r in sheet.iter_rows(min_row=2)}
    assert rows["合计"][:3] == ["合计", 4, 2]
    assert len(sheet._charts) == 1

    out = tmp_path / "通报.docx"
    ledger.run("report", "progress", "--out", str(out), now=MARCH_END)
    document = docx.Document(str(out))
    texts = [p.text for p in document.paragraphs]
    assert texts[0] == "关于全省问题整改进展情况的通报"
    assert any(t.startswith("全省共建立问题清单4项，已完成整改2项") for t in texts)
    units, overdue = document.tables
    assert [c.text for c in units.rows[-1].cells][:4] == ["合计", "4", "2", "50.0%"]
    assert [c.text for c in overdue.rows[1].cells][2:4] == ["逾期问题", "哈尔滨市"]


def test_report_snapshot_ranking_lights(ledger: Cli) -> None:
    ids = build(ledger)
    taken = ledger.run("report", "snapshot", "--period", "2026-03", now=MARCH_END)
    assert taken.stdout.startswith("snapshot 2026-03 taken")
    again = ledger.fails(5, "report", "snapshot", "--period", "2026-03", now="2026-04-02T10:00")
    assert "2026-03" in again
    snapshots = ledger.json("report", "snapshots")
    assert snapshots == [
        {"period": "2026-03", "kind": "month", "as_of": MARCH_END, "taken_at": MARCH_END,
         "taken_by": "operator"},
    ]  # fmt: skip

    ranking = ledger.json("report", "ranking", "--period", "2026-03")
    assert ranking["scheme"] == "默认方案"
    assert [(u["unit"], u["rank"], u["tier"]) for u in ranking["units"]] == [
        ("HRB", 1, "第一档"), ("QQHR", 2, "第二档"),
    ]  # fmt: skip
    assert ranking["units"][0]["figures"]["completion_rate"] == 2 / 3

    lights = ledger.json("report", "lights", "--from", "2026-01", "--to", "2026-03")
    assert lights["months"] == ["2026-01", "2026-02", "2026-03"]
    assert lights["missing"] == ["2026-01", "2026-02"]
    by_case = {c["id"]: c["lights"] for c in lights["cases"]}
    assert by_case[ids["overdue"]] == {"2026-01": None, "2026-02": None, "2026-03": "red"}
    assert by_case[ids["closed"]]["2026-03"] is None
    units = {u["unit"]: u["counts"] for u in lights["units"]}
    assert units["HRB"] == {
        "2026-01": None, "2026-02": None, "2026-03": {"red": 1, "yellow": 0, "green": 1},
    }  # fmt: skip


def test_report__bad_period_and_usage(ledger: Cli) -> None:
    results = ledger.batch(
        (2, "report", "snapshot", "--period", "2026-13"),
        (2, "report", "ranking", "--period", "March"),
        (2, "report", "lights", "--from", "2026-04", "--to", "2026-01"),
        (3, "report", "ranking", "--period", "2026-03"),
        (3, "report", "ranking", "--period", "2026-q1"),
        (2, "report", "progress", "--format", "docx"),
        (2, "report", "progress", "--by", "colour"),
    )
    assert "2026-13" in results[0].error
    assert "March" in results[1].error
    assert ledger.json("report", "snapshots") == []
