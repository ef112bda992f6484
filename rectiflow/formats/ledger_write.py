"""Write a ledger (问题清单台账) as XLSX (XlsxWriter) or CSV (UTF-8 with BOM).

Text is always written as text: typed string cells in XLSX, never formulas, and a leading
apostrophe in CSV before anything a spreadsheet would evaluate. Rows are streamed: XLSX in
XlsxWriter's constant-memory mode, so every format is made before the first row.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import xlsxwriter

from rectiflow.engine.errors import UsageError
from rectiflow.engine.ledger_rules import (
    escape_formula_guard,
    needs_formula_guard,
    neutralise_formula,
)
from rectiflow.formats.ledger_columns import EXPORT_HEADINGS

XLSX_MAX_TEXT = 32767  # Excel's limit for one cell
_WIDTHS = {
    "序号": 6,
    "编号": 14,
    "存在问题": 48,
    "整改目标": 30,
    "整改措施": 48,
    "最新进展": 40,
    "责任单位": 18,
    "配合单位": 18,
    "整改时限": 12,
    "销号时间": 12,
    "灯色": 6,
    "督办等级": 10,
}
_DEFAULT_WIDTH = 12
_DATE_FORMAT = "yyyy-mm-dd"
# Light name -> (fill, font): Excel's own red/yellow/green cell styles.
LIGHT_COLOURS = {
    "红": ("#FFC7CE", "#9C0006"),
    "黄": ("#FFEB9C", "#9C5700"),
    "绿": ("#C6EFCE", "#006100"),
}
_LIGHT = "灯色"


def write_ledger(
    path: str | os.PathLike[str], title: str, rows: Iterable[Mapping[str, object]]
) -> int:
    """Write ``title``, the EXPORT_HEADINGS header and ``rows``; return the rows written.

    ``rows`` are keyed by EXPORT_HEADINGS (a missing key is a blank cell, another key a
    ValueError); values are str, int, ``date``/``datetime`` (its date part) or None. The
    format follows the extension, ``.xlsx`` or ``.csv`` (else UsageError). The file appears
    whole or not at all: it is written beside the target and renamed over it.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".xlsx":
        write = _write_xlsx
    elif suffix == ".csv":
        write = _write_csv
    else:
        raise UsageError(f"cannot write {os.fspath(path)}: use .xlsx or .csv")
    fd, temp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    try:
        count = write(temp, title, _checked(rows))
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return count


def _checked(rows: Iterable[Mapping[str, object]]) -> Iterator[list[object]]:
    known = frozenset(EXPORT_HEADINGS)
    for row in rows:
        if not known.issuperset(row):
            unknown = ", ".join(sorted(str(k) for k in row if k not in known))
            raise ValueError(f"ledger row has columns the export does not know: {unknown}")
        yield [row.get(heading) for heading in EXPORT_HEADINGS]


def _date_of(value: dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


# -- CSV ----------------------------------------------------------------------------------


def _write_csv(path: str, title: str, rows: Iterator[list[object]]) -> int:
    count = 0
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        out.writerow([neutralise_formula(title)])
        out.writerow(EXPORT_HEADINGS)
        for values in rows:
            out.writerow([_csv_cell(v) for v in values])
            count += 1
    return count


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return _date_of(value).isoformat()
    return neutralise_formula(str(value))


# -- XLSX ---------------------------------------------------------------------------------


def _write_xlsx(path: str, title: str, rows: Iterator[list[object]]) -> int:
    book = xlsxwriter.Workbook(
        path,
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )
    try:
        sheet = book.add_worksheet("台账")
        formats = _Formats(book)
        last_col = len(EXPORT_HEADINGS) - 1
        for col, heading in enumerate(EXPORT_HEADINGS):
            sheet.set_column(col, col, _WIDTHS.get(heading, _DEFAULT_WIDTH))
        sheet.set_row(0, 30)
        sheet.merge_range(0, 0, 0, last_col, "", formats.title)
        sheet.write_string(0, 0, _xlsx_text(title), formats.title)
        for col, heading in enumerate(EXPORT_HEADINGS):
            sheet.write_string(1, col, heading, formats.header)
        sheet.freeze_panes(2, 0)
        light_col = EXPORT_HEADINGS.index(_LIGHT)
        row = 2
        for values in rows:
            for col, value in enumerate(values):
                _write_cell(sheet, formats, row, col, value, col == light_col)
            row += 1
        sheet.autofilter(1, 0, max(row - 1, 1), last_col)
    finally:
        book.close()
    return row - 2


class _Formats:
    """Every cell format, made up front (constant-memory mode writes rows in order)."""

    def __init__(self, book: Any) -> None:
        cell = {"text_wrap": True, "valign": "top", "border": 1}
        self.title = book.add_format(
            {"bold": True, "font_size": 16, "align": "center", "valign": "vcenter"}
        )
        self.header = book.add_format(
            {
                "bold": True,
                "bg_color": "#D9E1F2",
                "text_wrap": True,
                "border": 1,
                "align": "center",
                "valign": "vcenter",
            }
        )
        self.text = book.add_format(cell)
        # quote_prefix: Excel keeps a retyped "=..." as text too
        self.quoted = book.add_format({**cell, "quote_prefix": True})
        self.date = book.add_format({**cell, "num_format": _DATE_FORMAT})
        self.light = {
            name: book.add_format({**cell, "bg_color": fill, "font_color": font, "align": "center"})
            for name, (fill, font) in LIGHT_COLOURS.items()
        }


def _write_cell(
    sheet: Any, formats: _Formats, row: int, col: int, value: object, light: bool
) -> None:
    if value is None or value == "":
        sheet.write_blank(row, col, None, formats.text)
    elif isinstance(value, dt.date):
        sheet.write_datetime(row, col, _date_of(value), formats.date)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        sheet.write_number(row, col, value, formats.text)
    else:
        text = str(value)
        fmt = formats.light.get(text, formats.text) if light else formats.text
        if needs_formula_guard(text):
            fmt = formats.quoted
        sheet.write_string(row, col, _xlsx_text(text), fmt)


def _xlsx_text(text: str) -> str:
    text = escape_formula_guard(text)
    if len(text) > XLSX_MAX_TEXT:  # Excel cannot hold more; say so in the cell
        text = text[: XLSX_MAX_TEXT - 1] + "…"
    return text
