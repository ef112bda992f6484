"""Bulletins as md, xlsx and docx, from the plain data the engine reports; read back."""

from __future__ import annotations

import copy
import zipfile
from pathlib import Path
from typing import Any

import docx
import openpyxl
import pytest
from docx.oxml.ns import qn

from rectiflow.engine.errors import UsageError
from rectiflow.formats.bulletin import (
    render_markdown,
    write_docx,
    write_report,
    write_xlsx,
)

CATEGORY_LABELS = {
    "dismissed": "不予立项",
    "closed": "已销号",
    "awaiting_acceptance": "已完成整改，待验收",
    "done_not_submitted": "已完成整改，未申请验收",
    "paused": "暂停",
    "long_term": "长期坚持",
    "overdue": "逾期未完成",
    "behind_schedule": "未达序时进度",
    "on_schedule": "序时推进",
}
HEADLINE = (
    "全省共建立问题清单52项，已完成整改47项，完成率90.4%，其中已销号33项、已完成整改待验收10项、"
    "已完成整改未申请验收4项；逾期未完成1项，未达序时进度4项。"
)
FORMULA = "=1+1"


def _categories(closed: int, awaiting: int, done: int, overdue: int, behind: int) -> dict:
    counts = dict.fromkeys(CATEGORY_LABELS, 0)
    counts.update(
        closed=closed,
        awaiting_acceptance=awaiting,
        done_not_submitted=done,
        overdue=overdue,
        behind_schedule=behind,
    )
    return counts


def _unit(code: str, name: str, cats: dict, lights: tuple[int, int, int], esc: dict) -> dict:
    total = sum(n for key, n in cats.items() if key != "dismissed")
    completed = cats["closed"] + cats["awaiting_acceptance"] + cats["done_not_submitted"]
    return {
        "unit": code,
        "name": name,
        "total": total,
        "completed": completed,
        "completion_rate": completed / total,
        "categories": cats,
        "lights": dict(zip(("red", "yellow", "green"), lights, strict=True)),
        "escalations": esc,
    }


# The provincial year-end breakdown: 52 items, 47 completed (33 / 10 / 4), 1 overdue, 4 behind.
UNITS = [
    _unit("HRB", "哈尔滨市", _categories(15, 4, 2, 1, 2), (1, 2, 21), {"1": 2, "2": 1}),
    _unit("QQHR", "齐齐哈尔市", _categories(10, 3, 1, 0, 1), (0, 1, 14), {"1": 1, "2": 0}),
    _unit("X", FORMULA, _categories(8, 3, 1, 0, 1), (0, 1, 12), {"1": 0, "2": 0}),
]
PROGRESS: dict[str, Any] = {
    "as_of": "2026-12-31T23:59:59+08:00",
    "unit": None,
    "scope_name": "黑龙江省",
    "headline": HEADLINE,
    "total": 52,
    "completed": 47,
    "completion_rate": 47 / 52,
    "categories": _categories(33, 10, 4, 1, 4),
    "category_labels": CATEGORY_LABELS,
    "lights": {"green": 47, "yellow": 4, "red": 1},
    "escalations": {"1": 3, "2": 1},
    "level_labels": {"1": "提醒", "2": "预警"},
    "units": UNITS,
    "overdue_cases": [
        {
            "id": 17,
            "title": "城区黑臭水体治理不到位",
            "unit_name": "哈尔滨市",
            "due_at": "2026-11-30T23:59:59+08:00",
        }
    ],
    "by": "unit",
}
RANKING: dict[str, Any] = {
    "period": "2026-Q1",
    "scheme": "默认方案",
    "units": [
        {"unit": "QQHR", "name": "齐齐哈尔市", "score": 93.25, "rank": 2, "tier": "第一档",
         "figures": {"completion_rate": 14 / 15, "overdue": 0}},
        {"unit": "HRB", "name": "哈尔滨市", "score": 95.5, "rank": 1, "tier": "第一档",
         "figures": {"completion_rate": 21 / 24, "overdue": 1}},
        {"unit": "X", "name": FORMULA, "score": 80.0, "rank": 3, "tier": "第二档",
         "figures": {"completion_rate": 12 / 13, "overdue": 0}},
    ],
    "tie_note": "得分相同的单位按单位代码排序。",
}  # fmt: skip
LIGHTS: dict[str, Any] = {
    "from": "2026-01",
    "to": "2026-03",
    "months": ["2026-01", "2026-02", "2026-03"],
    "missing": ["2026-02"],
    "units": [
        {"unit": "HRB", "name": "哈尔滨市", "counts": {
            "2026-01": {"red": 3, "yellow": 2, "green": 5}, "2026-02": None,
            "2026-03": {"red": 1, "yellow": 4, "green": 6}}},
        {"unit": "QQHR", "name": "齐齐哈尔市", "counts": {
            "2026-01": {"red": 0, "yellow": 1, "green": 2}, "2026-02": None,
            "2026-03": {"red": 0, "yellow": 0, "green": 3}}},
    ],
    "cases": [
        {"id": 5, "title": "审批环节多", "lights": {"2026-01": "red", "2026-02": None,
                                               "2026-03": "yellow"}},
    ],
}  # fmt: skip


# -- md -----------------------------------------------------------------------------------


def test_markdown__progress_has_the_figures() -> None:
    text = render_markdown("progress", PROGRESS)
    assert text.startswith("# 关于黑龙江省问题整改进展情况的通报\n")
    assert "截至2026年12月31日" in text
    assert HEADLINE in text
    heading = "| 单位 | 问题总数 | 已完成 | 完成率 | " + " | ".join(CATEGORY_LABELS.values())
    assert heading + " | 红 | 黄 | 绿 |" in text
    assert (
        "| 哈尔滨市 | 24 | 21 | 87.5% | 0 | 15 | 4 | 2 | 0 | 0 | 1 | 2 | 0 | 1 | 2 | 21 |" in text
    )
    assert "| 合计 | 52 | 47 | 90.4% | 0 | 33 | 10 | 4 | 0 | 0 | 1 | 4 | 0 | 1 | 4 | 47 |" in text
    assert "| 已完成整改 | 47 | 90.4% |" in text
    assert "| 提醒 | 3 | — |" in text
    assert "## 逾期未完成问题清单" in text
    assert "| 1 | 17 | 城区黑臭水体治理不到位 | 哈尔滨市 | 2026-11-30 |" in text


def test_markdown__pipes_and_line_breaks_stay_in_their_cell() -> None:
    data = copy.deepcopy(PROGRESS)
    data["units"][0]["name"] = "哈尔滨|市\n道里区"
    text = render_markdown("progress", data)
    assert "| 哈尔滨\\|市 道里区 | 24 |" in text


def test_markdown__no_overdue_cases_is_said() -> None:
    text = render_markdown("progress", {**PROGRESS, "overdue_cases": []})
    assert "无逾期未完成问题。" in text


def test_markdown__ranking_in_rank_order_with_tie_note() -> None:
    text = render_markdown("ranking", RANKING)
    assert text.startswith("# 2026年第一季度问题整改工作划档排序情况\n")
    assert "| 名次 | 单位 | 得分 | 档次 | 完成率 | 逾期未完成 |" in text
    first = text.index("| 1 | 哈尔滨市 | 95.50 | 第一档 | 87.5% | 1 |")
    assert first < text.index("| 2 | 齐齐哈尔市 | 93.25 | 第一档 |")
    assert "第一档2个（哈尔滨市、齐齐哈尔市）" in text
    assert "得分相同的单位按单位代码排序。" in text


def test_markdown__lights_show_missing_months_never_guessed() -> None:
    text = render_markdown("lights", LIGHTS)
    assert "2026-02 无快照" in text
    assert "| 2026-01 | 3 | 3 | 7 |  |" in text  # whole scope: the units summed
    assert "| 2026-02 | — | — | — | 无快照 |" in text
    assert "| 哈尔滨市 | 红3 黄2 绿5 | — | 红1 黄4 绿6 |" in text
    assert "| 5 | 审批环节多 | 红 | — | 黄 |" in text


# -- xlsx ---------------------------------------------------------------------------------


def test_xlsx__progress_sheets_chart_and_typed_text(tmp_path: Path) -> None:
    path = tmp_path / "通报.xlsx"
    write_xlsx("progress", PROGRESS, path)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["概况", "分单位", "逾期清单"]
    assert book["概况"]["A1"].value == "关于黑龙江省问题整改进展情况的通报"
    sheet = book["分单位"]
    assert sheet.freeze_panes == "A2"
    header = [c.value for c in sheet[1]]
    assert header[:4] == ["单位", "问题总数", "已完成", "完成率"]
    rows = {r[0].value: r for r in sheet.iter_rows(min_row=2)}
    evil = next(r for r in sheet.iter_rows(min_row=2) if r[0].value == FORMULA)
    assert evil[0].data_type == "s"
    assert [c.value for c in rows["合计"][1:4]] == [52, 47, pytest.approx(47 / 52)]
    assert rows["合计"][3].number_format == "0.0%"
    assert rows["合计"][header.index("已销号")].value == 33
    (chart,) = sheet._charts
    assert chart.tagname == "barChart"
    assert chart.grouping == "stacked"
    assert len(chart.series) == 8  # every category but 不予立项, which is outside the totals
    overdue = book["逾期清单"]
    assert [c.value for c in overdue[2]][2:4] == ["城区黑臭水体治理不到位", "哈尔滨市"]


def test_xlsx__ranking_sheet(tmp_path: Path) -> None:
    path = tmp_path / "排名.xlsx"
    write_xlsx("ranking", RANKING, path)
    sheet = openpyxl.load_workbook(path)["排名"]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    header_at = next(i for i, row in enumerate(values) if row[0] == "名次")
    assert values[header_at + 1][:4] == [1, "哈尔滨市", 95.5, "第一档"]
    evil = sheet.cell(header_at + 4, 2)
    assert (evil.value, evil.data_type) == (FORMULA, "s")


def test_xlsx__lights_line_chart_with_gaps(tmp_path: Path) -> None:
    path = tmp_path / "灯色.xlsx"
    write_xlsx("lights", LIGHTS, path)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["灯色", "分单位灯色", "问题灯色"]
    sheet = book["灯色"]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    header_at = next(i for i, row in enumerate(values) if row[0] == "月份")
    assert values[header_at + 1][:4] == ["2026-01", 3, 3, 7]
    assert values[header_at + 2][:5] == ["2026-02", None, None, None, "无快照"]
    (chart,) = sheet._charts
    assert chart.tagname == "lineChart"
    assert len(chart.series) == 3
    units = book["分单位灯色"]
    assert [c.value for c in units[3]] == ["哈尔滨市", 3, 2, 5, "—", "—", "—", 1, 4, 6]


# -- docx ---------------------------------------------------------------------------------


def _east_asian(run: Any) -> str | None:
    return run._element.rPr.rFonts.get(qn("w:eastAsia"))


def test_docx__progress_reads_as_a_bulletin(tmp_path: Path) -> None:
    path = tmp_path / "通报.docx"
    write_docx("progress", PROGRESS, path)
    document = docx.Document(str(path))
    texts = [p.text for p in document.paragraphs]
    assert texts[0] == "关于黑龙江省问题整改进展情况的通报"
    assert texts[1] == "（截至2026年12月31日）"
    assert HEADLINE in texts
    assert texts[3:5] == ["一、分单位整改进展情况", "二、逾期未完成问题清单"]
    units, overdue = document.tables
    header = [c.text for c in units.rows[0].cells]
    assert header[:4] == ["单位", "问题总数", "已完成", "完成率"]
    assert "已销号" in header
    assert "不予立项" not in header  # 0 everywhere: left out of the printed table
    harbin = [c.text for c in units.rows[1].cells]
    assert harbin[:4] == ["哈尔滨市", "24", "21", "87.5%"]
    assert units.rows[3].cells[0].text == FORMULA
    assert [c.text for c in units.rows[4].cells][:4] == ["合计", "52", "47", "90.4%"]
    assert [c.text for c in overdue.rows[1].cells][2:4] == ["城区黑臭水体治理不到位", "哈尔滨市"]
    title_run = document.paragraphs[0].runs[0]
    assert _east_asian(title_run) == "方正小标宋简体"
    headline = next(p for p in document.paragraphs if p.text == HEADLINE)
    assert {_east_asian(r) for r in headline.runs} == {"仿宋_GB2312"}
    assert headline.runs[0].font.size.pt == 16
    cell_run = units.rows[1].cells[0].paragraphs[0].runs[0]
    assert _east_asian(cell_run) == "仿宋_GB2312"


def test_docx__ranking_tier_table(tmp_path: Path) -> None:
    path = tmp_path / "排名.docx"
    write_docx("ranking", RANKING, path)
    document = docx.Document(str(path))
    assert document.paragraphs[0].text == "2026年第一季度问题整改工作划档排序情况"
    (table,) = document.tables
    rows = [[c.text for c in row.cells] for row in table.rows]
    assert rows[0] == ["档次", "单位", "得分", "名次"]
    assert rows[1:] == [
        ["第一档", "哈尔滨市", "95.50", "1"],
        ["第一档", "齐齐哈尔市", "93.25", "2"],
        ["第二档", FORMULA, "80.00", "3"],
    ]
    assert table.rows[1].cells[0]._tc is table.rows[2].cells[0]._tc  # one merged tier cell


def test_docx__light_history(tmp_path: Path) -> None:
    path = tmp_path / "灯色.docx"
    write_docx("lights", LIGHTS, path)
    document = docx.Document(str(path))
    texts = [p.text for p in document.paragraphs]
    assert texts[0] == "问题整改灯色变化情况"
    assert any("2026-02 无快照" in t for t in texts)
    totals, units = document.tables
    assert [c.text for c in totals.rows[2].cells] == ["2026-02", "—", "—", "—", "无快照"]
    assert [c.text for c in units.rows[1].cells] == ["哈尔滨市", "红3 黄2 绿5", "—", "红1 黄4 绿6"]


# -- write_report -------------------------------------------------------------------------


def test_write_report__md_to_string_or_file(tmp_path: Path) -> None:
    text = write_report("progress", PROGRESS, "md")
    assert text is not None
    assert "| 合计 | 52 | 47 |" in text
    path = tmp_path / "通报.md"
    assert write_report("progress", PROGRESS, "md", path) is None
    assert path.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("fmt", ["xlsx", "docx"])
def test_write_report__files_need_a_path(fmt: str) -> None:
    with pytest.raises(UsageError):
        write_report("progress", PROGRESS, fmt)


@pytest.mark.parametrize(("kind", "fmt"), [("summary", "md"), ("progress", "pdf")])
def test_write_report__unknown_kind_or_format(kind: str, fmt: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        write_report(kind, PROGRESS, fmt, tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["xlsx", "docx"])
def test_write_report__empty_scope(fmt: str, tmp_path: Path) -> None:
    empty = {**PROGRESS, "total": 0, "completed": 0, "completion_rate": None, "units": []}
    write_report("progress", {**empty, "overdue_cases": []}, fmt, tmp_path / f"x.{fmt}")
    assert (tmp_path / f"x.{fmt}").stat().st_size > 0


def test_docx__font_table_names_fallbacks(tmp_path: Path) -> None:
    path = tmp_path / "通报.docx"
    write_docx("progress", PROGRESS, path)
    with zipfile.ZipFile(path) as package:
        fonts = package.read("word/fontTable.xml").decode("utf-8")
    assert '<w:font w:name="仿宋_GB2312"><w:altName w:val="仿宋"/>' in fonts
    assert '<w:font w:name="方正小标宋简体"><w:altName w:val="宋体"/>' in fonts
