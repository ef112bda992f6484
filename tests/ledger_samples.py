"""Ledgers as offices keep them (问题清单台账), written as real files for the import tests.

Two title rows merged across the sheet, Chinese headings with synonyms and a column the
import does not know, multi-unit cells, numbered measures in every style, every deadline
phrase and status phrase of the issue, and the same rows as a GB18030 CSV. Each sample
row carries what the import should make of it.

Importable from any test folder: pytest puts tests/ on sys.path for tests/conftest.py.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import xlsxwriter

from rectiflow import Engine

TITLE = "黑龙江省XX整改台账（2026年）"
SUBTITLE = "填报单位：黑龙江省XX办公室    填报时间：2026年4月28日"
SOURCE = "省委巡视反馈"
UNKNOWN_COLUMN = "备注"

# The units a sample ledger names: code -> name, all under setup_ledger's PROV.
UNITS = {
    "FGW": "省发展改革委",
    "CZT": "省财政厅",
    "RST": "省人社厅",
    "HRB": "哈尔滨市",
    "QQHR": "齐齐哈尔市",
}

# field -> the heading a sample ledger writes (synonyms of the export's own headings)
HEADINGS = {
    "seq": "序号",
    "ref": "编号",
    "title": "问题描述",
    "category": "问题类型",
    "source": "问题来源",
    "target": "整改目标",
    "measures": "整改措施",
    "unit": "整改责任单位",
    "co_units": "协同单位",
    "responsible": "责任人",
    "deadline": "完成时限",
    "severity": "问题等级",
    "status": "整改情况",
    "remark": UNKNOWN_COLUMN,
}

IMMEDIATE = "立行立改"  # the ``due`` of a row whose deadline is counted from the import


@dataclass(frozen=True)
class Sample:
    """One ledger row and what the import makes of it."""

    ref: str
    title: str
    deadline: object  # the cell: a phrase, or a date (an Excel date cell)
    due: dt.date | str | None  # the day, IMMEDIATE, or None (long-term only)
    long_term: bool
    status: str | None
    state: str
    unit_cell: str
    lead: str
    co: tuple[str, ...]
    measures_cell: str
    measures: tuple[str, ...]
    severity_cell: str | None
    severity: str
    co_cell: str | None = None
    category: str | None = "营商环境"
    target: str | None = "问题整改到位"
    responsible: str | None = "张伟"
    extra: dict[str, object] = field(default_factory=dict)

    def cells(self, number: int) -> dict[str, object]:
        return {
            "seq": number,
            "ref": self.ref,
            "title": self.title,
            "category": self.category,
            "source": SOURCE,
            "target": self.target,
            "measures": self.measures_cell,
            "unit": self.unit_cell,
            "co_units": self.co_cell,
            "responsible": self.responsible,
            "deadline": self.deadline,
            "severity": self.severity_cell,
            "status": self.status,
            "remark": "无",
            **self.extra,
        }


# (cell, due, long_term)
DEADLINES: list[tuple[object, dt.date | str | None, bool]] = [
    ("2026年6月底前", dt.date(2026, 6, 30), False),
    ("2026年6月前", dt.date(2026, 6, 30), False),
    ("2026年6月", dt.date(2026, 6, 30), False),
    ("2026年底前", dt.date(2026, 12, 31), False),
    ("2026年年底", dt.date(2026, 12, 31), False),
    ("2026年", dt.date(2026, 12, 31), False),
    ("2026年6月30日前", dt.date(2026, 6, 30), False),
    ("2026-06-30", dt.date(2026, 6, 30), False),
    ("2026.6.30", dt.date(2026, 6, 30), False),
    ("2026/6/30", dt.date(2026, 6, 30), False),
    (dt.date(2026, 7, 15), dt.date(2026, 7, 15), False),  # an Excel date cell
    ("2026年上半年", dt.date(2026, 6, 30), False),
    ("2026年下半年", dt.date(2026, 12, 31), False),
    ("2026年第三季度", dt.date(2026, 9, 30), False),
    ("2026年三季度", dt.date(2026, 9, 30), False),
    ("2026年三季度末", dt.date(2026, 9, 30), False),
    ("立行立改", IMMEDIATE, False),
    ("长期坚持", None, True),
    ("持续推进", None, True),
    ("常态化推进", None, True),
    ("立行立改、长期坚持", IMMEDIATE, True),
    ("2026年6月底前完成，长期坚持", dt.date(2026, 6, 30), True),
]

# (cell, state)
STATUSES: list[tuple[str | None, str]] = [
    *((s, "closed") for s in ("已完成", "已完成整改", "已整改", "已整改到位", "已销号", "完成")),
    *((s, "verify") for s in ("基本完成", "已完成待验收", "待验收", "申请销号")),
    *(
        (s, "rectify")
        for s in ("正在整改", "整改中", "推进中", "序时推进", "持续推进", "未完成", "进行中", None)
    ),
    *((s, "plan") for s in ("未启动", "未开始")),
    *((s, state) for s, state in (("问题识别", "identify"), ("制定方案", "plan"))),
    *((s, state) for s, state in (("整改落实", "rectify"), ("验收核查", "verify"))),
]

# (cell, measures)
MEASURES: list[tuple[str, tuple[str, ...]]] = [
    ("1.梳理审批事项清单\n2.压缩审批环节至3个", ("梳理审批事项清单", "压缩审批环节至3个")),
    ("（1）建立台账；（2）逐项销号", ("建立台账", "逐项销号")),
    ("①开展专项检查②完善制度③加强督导", ("开展专项检查", "完善制度", "加强督导")),
    ("一是压实责任，二是强化考核。", ("压实责任", "强化考核。")),
]

# (unit cell, co-unit cell, lead, co-units)
UNIT_CELLS: list[tuple[str, str | None, str, tuple[str, ...]]] = [
    ("省发展改革委牵头，省财政厅、省人社厅配合", None, "FGW", ("CZT", "RST")),
    ("哈尔滨市、齐齐哈尔市", None, "HRB", ("QQHR",)),
    ("省财政厅", "省人社厅", "CZT", ("RST",)),
    ("HRB", None, "HRB", ()),  # a unit by its code
]

# (cell, severity)
SEVERITIES: list[tuple[str | None, str]] = [
    ("高", "high"), ("重大", "high"), ("严重", "high"), ("中", "medium"), ("较大", "medium"),
    ("低", "low"), ("一般", "low"), (None, "medium"),
]  # fmt: skip


def sample_rows() -> list[Sample]:
    """One row per deadline phrase and per status phrase (whichever list is longer), the
    measures, unit and severity cells cycling beside them."""
    rows = []
    count = max(len(DEADLINES), len(STATUSES))
    for i in range(count):
        cell, due, long_term = DEADLINES[i % len(DEADLINES)]
        status, state = STATUSES[i % len(STATUSES)]
        measures_cell, measures = MEASURES[i % len(MEASURES)]
        unit_cell, co_cell, lead, co = UNIT_CELLS[i % len(UNIT_CELLS)]
        severity_cell, severity = SEVERITIES[i % len(SEVERITIES)]
        rows.append(
            Sample(
                ref=f"XS-{i + 1:03d}",
                title=f"第{i + 1}个问题：企业开办审批环节多、时限长",
                deadline=cell,
                due=due,
                long_term=long_term,
                status=status,
                state=state,
                unit_cell=unit_cell,
                lead=lead,
                co=co,
                co_cell=co_cell,
                measures_cell=measures_cell,
                measures=measures,
                severity_cell=severity_cell,
                severity=severity,
            )
        )
    return rows


@dataclass(frozen=True)
class BadRow:
    """A row the import must refuse: the cells it changes and the error it expects."""

    changes: dict[str, object]
    field: str  # the field whose heading the error names
    value: str  # the cell text the error quotes


BAD_ROWS: list[BadRow] = [
    BadRow({"deadline": "尽快"}, "deadline", "尽快"),
    BadRow({"deadline": "2026年13月"}, "deadline", "2026年13月"),
    BadRow({"deadline": "2026-02-30"}, "deadline", "2026-02-30"),
    BadRow({"unit": "省外星事务局"}, "unit", "省外星事务局"),
    BadRow({"status": "看情况再说"}, "status", "看情况再说"),
    BadRow({"title": None}, "title", ""),
    BadRow({"ref": "XS-001"}, "ref", "XS-001"),  # a duplicate 编号 (the first good row's)
]


def bad_ledger_rows(good: list[Sample]) -> tuple[list[dict[str, object]], list[int]]:
    """The cells of ``good`` followed by one row per BAD_ROWS entry, and the Excel row
    numbers of the bad rows (title rows 1-2, header row 3)."""
    rows = [s.cells(n) for n, s in enumerate(good, 1)]
    template = good[1]
    numbers = []
    for i, bad in enumerate(BAD_ROWS):
        cells = {**template.cells(len(rows) + 1), "ref": f"BAD-{i + 1}", **bad.changes}
        rows.append(cells)
        numbers.append(len(rows) + 3)
    return rows, numbers


def write_xlsx(path: Path, rows: list[dict[str, object]]) -> Path:
    """A workbook as offices send it: merged title rows, then the header, then ``rows``."""
    fields = list(HEADINGS)
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("整改台账")
    bold = book.add_format({"bold": True, "align": "center"})
    wrap = book.add_format({"text_wrap": True})
    date = book.add_format({"num_format": "yyyy年m月d日"})
    last = len(fields) - 1
    sheet.merge_range(0, 0, 0, last, TITLE, bold)
    sheet.merge_range(1, 0, 1, last, SUBTITLE)
    for col, name in enumerate(fields):
        sheet.write_string(2, col, HEADINGS[name], bold)
    for r, cells in enumerate(rows, 3):
        for col, name in enumerate(fields):
            value = cells.get(name)
            if value is None:
                continue
            if isinstance(value, dt.date):
                sheet.write_datetime(r, col, value, date)
            elif isinstance(value, int):
                sheet.write_number(r, col, value)
            else:
                sheet.write_string(r, col, str(value), wrap)
    book.close()
    return path


def write_csv(path: Path, rows: list[dict[str, object]], encoding: str = "gb18030") -> Path:
    """The same sheet as CSV (what Excel on a Chinese Windows writes: GB18030/GBK)."""
    fields = list(HEADINGS)
    blank = [""] * (len(fields) - 1)
    with open(path, "w", encoding=encoding, newline="") as f:
        out = csv.writer(f)
        out.writerow([TITLE, *blank])
        out.writerow([SUBTITLE, *blank])
        out.writerow([HEADINGS[name] for name in fields])
        for cells in rows:
            out.writerow([_csv_text(cells.get(name)) for name in fields])
    return path


def _csv_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return f"{value.year}/{value.month}/{value.day}"
    return str(value)


def sample_ledger(path: Path, kind: str = "xlsx") -> tuple[Path, list[Sample]]:
    """Write the sample ledger as ``kind`` (xlsx, csv-gbk, csv-utf8, csv-bom)."""
    samples = sample_rows()
    rows = [s.cells(n) for n, s in enumerate(samples, 1)]
    if kind == "xlsx":
        return write_xlsx(path.with_suffix(".xlsx"), rows), samples
    encoding = {"csv-gbk": "gb18030", "csv-utf8": "utf-8", "csv-bom": "utf-8-sig"}[kind]
    return write_csv(path.with_suffix(".csv"), rows, encoding), samples


def setup_units(engine: Engine) -> Engine:
    """The units a sample ledger names, under setup_ledger's PROV, and an actor of HRB."""
    for code, name in UNITS.items():
        engine.add_unit(code, name, parent="PROV")
    engine.add_actor("hrb_rep", ["reporter"], ["HRB"])
    engine.add_actor("hrb_own", ["owner"], ["HRB"])
    engine.add_actor("co_own", ["owner"], ["QQHR"])
    return engine
