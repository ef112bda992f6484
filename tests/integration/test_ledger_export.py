"""Engine.export_ledger read back with openpyxl and csv: the sheet's shape, typed cells,
the formula guard, --unit's subtree, and the round trip into an empty database."""

from __future__ import annotations

import codecs
import csv
import datetime as dt
from pathlib import Path

import openpyxl
import pytest
from integration_support import SQL_BACKENDS, local, setup_ledger
from ledger_samples import setup_units

from rectiflow import Engine
from rectiflow.formats import EXPORT_HEADINGS

pytestmark = pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True)

NOW = local(2026, 4, 29)
LATER = local(2026, 7, 8)  # the case due on 30 June is red by then
INJECTIONS = ['=HYPERLINK("http://x","点此")', "+1", "-1+2", "@SUM(A1)", "\tx"]


def _ledger(engine: Engine) -> dict[str, int]:
    """Cases in every state, with everything a ledger row can say."""
    e, ids = engine, {}

    def open_(ref: str, unit: str = "HRB", **kw: object) -> int:
        case = e.open_case(
            "sup", unit=unit, title=kw.pop("title", f"问题{ref}"), ref=ref, now=NOW,
            source="省委巡视反馈", category="营商环境", **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        ids[ref] = case.id
        return case.id

    def to_rectify(case_id: int, *measures: str) -> list[int]:
        e.fire(case_id, "confirm", "sup", now=NOW)
        made = [e.add_measure(case_id, "hrb_own", m, now=NOW).id for m in measures]
        e.fire(case_id, "approve_plan", "rev", now=NOW)
        return made

    open_("A-1", target="审批压缩到3个环节", responsible="李明", severity="high",
          co_units=["QQHR", "CZT"])  # fmt: skip
    open_("A-2", due=dt.date(2026, 6, 30))
    done, _ = to_rectify(ids["A-2"], "梳理清单", "压缩环节")
    e.complete_measure(done, "hrb_own", now=NOW)
    open_("A-3", due=dt.date(2026, 9, 30), long_term=True, severity="low")
    to_rectify(ids["A-3"], "常态化督导")
    open_("A-4", long_term=True)
    to_rectify(ids["A-4"], "建立长效机制")
    open_("A-5", due=dt.date(2026, 8, 31))
    for m in to_rectify(ids["A-5"], "整改一", "整改二"):
        e.complete_measure(m, "hrb_own", now=NOW)
    e.fire(ids["A-5"], "submit", "hrb_own", now=NOW)  # verify
    open_("A-6", due=dt.date(2026, 8, 31))
    for m in to_rectify(ids["A-6"], "整改完毕"):
        e.complete_measure(m, "hrb_own", now=NOW)
    e.fire(ids["A-6"], "submit", "hrb_own", now=NOW)
    e.fire(ids["A-6"], "accept", "ver", now=NOW)  # closed
    open_("A-7")
    e.fire(ids["A-7"], "confirm", "sup", now=NOW)  # plan
    open_("A-8", unit="CITY1")  # identify, another subtree
    for n, title in enumerate(INJECTIONS, 1):
        open_(f"X-{n}", title=title, unit="QQHR")
    e.edit_case(ids["X-1"], "sup", category="=1+1", now=NOW)
    return ids


def ids_of(engine: Engine) -> dict[str | None, int]:
    return {c.ref: c.id for c in engine.store.find_cases()}


@pytest.fixture
def full(ledger: Engine) -> Engine:
    setup_units(ledger)
    _ledger(ledger)
    return ledger


def test_export_xlsx__shape_and_typed_cells(full: Engine, tmp_path: Path) -> None:
    path = tmp_path / "out.xlsx"
    count = full.export_ledger(path, now=LATER)
    assert count == len(list(full.store.iter_case_ids()))

    book = openpyxl.load_workbook(path)
    sheet = book.worksheets[0]
    assert [str(r) for r in sheet.merged_cells.ranges] == ["A1:Q1"]
    assert "台账" in str(sheet.cell(1, 1).value)
    assert [c.value for c in sheet[2]] == EXPORT_HEADINGS
    assert sheet.freeze_panes == "A3"
    assert str(sheet.auto_filter.ref).startswith("A2:Q")
    col = {h: i for i, h in enumerate(EXPORT_HEADINGS)}
    rows = {r[col["编号"]].value: r for r in sheet.iter_rows(min_row=3)}
    assert len(rows) == count
    for row in rows.values():
        for cell in row:
            assert cell.data_type != "f"
        light = row[col["灯色"]]
        if light.value:
            assert light.value in ("红", "黄", "绿")
            assert light.fill.fgColor.rgb.endswith(
                {"红": "FFC7CE", "黄": "FFEB9C", "绿": "C6EFCE"}[light.value]
            )
    due = rows["A-2"][col["整改时限"]]
    assert due.is_date
    assert due.value.date() == dt.date(2026, 6, 30)
    assert rows["A-2"][col["灯色"]].value == "红"
    assert rows["A-4"][col["灯色"]].value == "绿"
    assert rows["A-4"][col["整改时限"]].value == "长期坚持"
    assert rows["A-6"][col["销号时间"]].is_date
    assert rows["A-2"][col["整改措施"]].value == "1.梳理清单（已完成）\n2.压缩环节"
    assert rows["A-1"][col["配合单位"]].value in ("齐齐哈尔市、省财政厅", "省财政厅、齐齐哈尔市")
    titles = {rows[f"X-{n}"][col["存在问题"]] for n in range(1, len(INJECTIONS) + 1)}
    assert {c.value for c in titles} == {t.strip() for t in INJECTIONS}  # open_case strips
    assert rows["X-1"][col["问题类别"]].value == "=1+1"
    assert rows["X-1"][col["问题类别"]].data_type == "s"
    assert {c.data_type for c in titles} == {"s"}


def test_export_csv__bom_and_formula_guard(full: Engine, tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    full.export_ledger(path, now=LATER)
    raw = path.read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)
    records = list(csv.reader(raw.decode("utf-8-sig").splitlines(keepends=True)))
    assert records[1] == EXPORT_HEADINGS
    title = EXPORT_HEADINGS.index("存在问题")
    written = {r[EXPORT_HEADINGS.index("编号")]: r[title] for r in records[2:]}
    for n in range(1, len(INJECTIONS) + 1):
        stored = full.get_case(ids_of(full)[f"X-{n}"]).title
        assert written[f"X-{n}"] == ("'" + stored if stored != "x" else "x")
    category = EXPORT_HEADINGS.index("问题类别")
    assert [r[category] for r in records[2:] if r[1] == "X-1"] == ["'=1+1"]
    assert written["A-1"] == "问题A-1"


def test_export__unit_takes_its_subtree_and_filters(full: Engine, tmp_path: Path) -> None:
    path = tmp_path / "prov.csv"
    everything = full.export_ledger(path, now=LATER)
    assert full.export_ledger(path, unit="PROV", now=LATER) == everything
    assert full.export_ledger(path, unit="CITY1", now=LATER) == 1
    assert full.export_ledger(path, unit="HRB", now=LATER) == 7
    assert full.export_ledger(path, states=["rectify"], now=LATER) == 3
    assert full.export_ledger(path, open_only=True, now=LATER) == everything - 1
    full.export_ledger(path, unit="CITY1", now=LATER)
    rows = list(csv.reader(path.read_text("utf-8-sig").splitlines()))
    assert [r[1] for r in rows[2:]] == ["A-8"]


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_round_trip__into_an_empty_database(full: Engine, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"ledger{suffix}"
    full.export_ledger(path, now=LATER)
    # exported from this backend, imported into an empty SQLite file
    with Engine(f"sqlite:///{tmp_path}/empty.db") as empty:
        empty.init()
        setup_ledger(empty)
        setup_units(empty)
        report = empty.import_ledger(path, "sup", now=LATER)
        assert report.errors == []
        before = {c.ref: c for c in full.store.find_cases()}
        after = {c.ref: c for c in empty.store.find_cases()}
        assert set(after) == set(before)
        co_before = full.store.co_units_of([c.id for c in before.values()])
        co_after = empty.store.co_units_of([c.id for c in after.values()])
        for ref, old in before.items():
            new = after[ref]
            fields = ("title", "ref", "category", "source", "target", "unit", "responsible",
                      "long_term", "severity", "state")  # fmt: skip
            assert {f: getattr(new, f) for f in fields} == {f: getattr(old, f) for f in fields}
            old_due = old.due or (old.due_at if old.state == "rectify" else None)
            assert new.due == old_due, ref
            assert sorted(co_after.get(new.id, [])) == sorted(co_before.get(old.id, [])), ref
            assert [(m.text, m.done) for m in empty.measures(new.id)] == [
                (m.text, m.done) for m in full.measures(old.id)
            ], ref
