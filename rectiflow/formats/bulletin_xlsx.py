"""Draw a bulletin Report as an XLSX workbook (XlsxWriter): a sheet per table, native charts.

Every text cell is a typed string (never a formula, whatever it starts with); numbers are
numbers, shares are numbers shown as percentages, a missing figure is a blank cell so a
chart draws a gap there, not a zero.
"""

from __future__ import annotations

from typing import Any

import xlsxwriter

from rectiflow.formats.bulletin import LIGHTS, MISSING, Chart, Column, Report, Table, to_date
from rectiflow.formats.ledger_write import LIGHT_COLOURS

XLSX_MAX_TEXT = 32767  # Excel's limit for one cell
# A spreadsheet would evaluate these if the text were retyped: keep them text then too.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LINE_COLOURS = {"red": "#C00000", "yellow": "#FFC000", "green": "#00B050"}
_BAR_COLOURS = ("#2E75B6", "#9DC3E6", "#BDD7EE", "#A9D18E", "#D9D9D9", "#FFC000", "#C00000")


def write(report: Report, path: str) -> None:
    """Write ``report`` to ``path``; the first sheet also carries title, date and headline."""
    book = xlsxwriter.Workbook(
        path,
        {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False},
    )
    try:
        formats = _Formats(book)
        for index, table in enumerate(report.tables_for("xlsx")):
            sheet = book.add_worksheet(table.name[:31])
            top = _write_heading(sheet, formats, report, table) if index == 0 else 0
            _write_table(book, sheet, formats, table, top)
    finally:
        book.close()


class _Formats:
    def __init__(self, book: Any) -> None:
        cell = {"border": 1, "valign": "vcenter", "text_wrap": True}
        self.title = book.add_format(
            {"bold": True, "font_size": 16, "align": "center", "valign": "vcenter"}
        )
        self.line = book.add_format({"align": "center"})
        self.headline = book.add_format({"text_wrap": True, "valign": "top"})
        self.header = book.add_format(
            {**cell, "bold": True, "bg_color": "#D9E1F2", "align": "center"}
        )
        self.text = book.add_format(cell)
        self.quoted = book.add_format({**cell, "quote_prefix": True})
        self.count = book.add_format({**cell, "num_format": "0"})
        self.rate = book.add_format({**cell, "num_format": "0.0%"})
        self.score = book.add_format({**cell, "num_format": "0.00"})
        self.date = book.add_format({**cell, "num_format": "yyyy-mm-dd"})
        self.missing = book.add_format({**cell, "align": "center", "font_color": "#808080"})
        self.light = {
            key: book.add_format({**cell, "bg_color": fill, "font_color": font, "align": "center"})
            for (key, cn) in LIGHTS
            for (fill, font) in [LIGHT_COLOURS[cn]]
        }


def _width(table: Table) -> int:
    return sum(3 if c.kind == "lights" else 1 for c in table.columns)


def _write_heading(sheet: Any, formats: _Formats, report: Report, table: Table) -> int:
    """Title, date line and headline above the first table; return the table's first row."""
    last = max(_width(table) - 1, 3)
    sheet.set_row(0, 30)
    sheet.merge_range(0, 0, 0, last, "", formats.title)
    sheet.write_string(0, 0, _text(report.title), formats.title)
    row = 1
    if report.date_line:
        sheet.merge_range(row, 0, row, last, "", formats.line)
        sheet.write_string(row, 0, _text(report.date_line), formats.line)
        row += 1
    if report.headline:
        # wrapped text does not grow a merged row: give it room for the text
        sheet.set_row(row, 15 * max(2, len(report.headline) // 40 + 1))
        sheet.merge_range(row, 0, row, last, "", formats.headline)
        sheet.write_string(row, 0, _text(report.headline), formats.headline)
        row += 1
    for note in report.notes:
        sheet.merge_range(row, 0, row, last, "", formats.headline)
        sheet.write_string(row, 0, _text(note), formats.headline)
        row += 1
    return row + 1


def _write_table(book: Any, sheet: Any, formats: _Formats, table: Table, top: int) -> None:
    split = any(c.kind == "lights" for c in table.columns)  # month over 红/黄/绿
    header_rows = 2 if split else 1
    col = 0
    starts: list[int] = []
    for column in table.columns:
        starts.append(col)
        if column.kind == "lights":
            sheet.merge_range(top, col, top, col + 2, "", formats.header)
            sheet.write_string(top, col, _text(column.heading), formats.header)
            for offset, (_, cn) in enumerate(LIGHTS):
                sheet.write_string(top + 1, col + offset, cn, formats.header)
            sheet.set_column(col, col + 2, column.width)
            col += 3
            continue
        if split:
            sheet.merge_range(top, col, top + 1, col, "", formats.header)
        sheet.write_string(top, col, _text(column.heading), formats.header)
        sheet.set_column(col, col, column.width)
        col += 1
    first = top + header_rows
    sheet.freeze_panes(first, 1 if split else 0)
    for r, values in enumerate(table.rows):
        for column, start, value in zip(table.columns, starts, values, strict=True):
            _write_cell(sheet, formats, first + r, start, column, value)
    if not table.rows:
        sheet.write_string(first, 0, _text(table.empty), formats.text)
    elif not split:
        sheet.autofilter(top, 0, first + len(table.rows) - 1, col - 1)
    if table.chart is not None and table.rows:
        _insert_chart(book, sheet, table, top, first + len(table.rows) + 1)


def _write_cell(
    sheet: Any, formats: _Formats, row: int, col: int, column: Column, value: Any
) -> None:
    kind = column.kind
    if kind == "lights":
        for offset, (key, _) in enumerate(LIGHTS):
            if value is None:
                sheet.write_string(row, col + offset, MISSING, formats.missing)
            else:
                sheet.write_number(row, col + offset, value.get(key, 0), formats.count)
    elif value is None:
        if kind in {"text", "light"}:
            sheet.write_string(row, col, MISSING, formats.missing)
        else:
            sheet.write_blank(row, col, None, formats.text)
    elif kind == "light":
        fmt = formats.light.get(str(value), formats.text)
        sheet.write_string(row, col, dict(LIGHTS).get(str(value), _text(str(value))), fmt)
    elif kind == "date":
        sheet.write_datetime(row, col, to_date(value), formats.date)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        fmt = {"rate": formats.rate, "score": formats.score}.get(kind, formats.count)
        sheet.write_number(row, col, value, fmt)
    else:
        text = str(value)
        fmt = formats.quoted if text.lstrip("'").startswith(_FORMULA_START) else formats.text
        sheet.write_string(row, col, _text(text), fmt)


def _insert_chart(book: Any, sheet: Any, table: Table, top: int, at_row: int) -> None:
    spec: Chart = table.chart  # type: ignore[assignment]  # checked by the caller
    name = sheet.get_name()
    first = top + 1
    last = top + (spec.rows if spec.rows is not None else len(table.rows))
    labels = [name, first, spec.label, last, spec.label]
    if spec.kind == "stacked_bar":
        chart = book.add_chart({"type": "bar", "subtype": "stacked"})
        for i, col in enumerate(spec.series):
            colour = _BAR_COLOURS[i % len(_BAR_COLOURS)]
            chart.add_series(
                {
                    "name": [name, top, col],
                    "categories": labels,
                    "values": [name, first, col, last, col],
                    "fill": {"color": colour},
                    "border": {"color": "#FFFFFF"},
                }
            )
        chart.set_y_axis({"reverse": True})  # the first unit on top, as in the table
        height = max(320, 26 * (last - first + 1) + 140)
    else:
        chart = book.add_chart({"type": "line"})
        for col, (key, _) in zip(spec.series, LIGHTS, strict=False):
            colour = _LINE_COLOURS[key]
            chart.add_series(
                {
                    "name": [name, top, col],
                    "categories": labels,
                    "values": [name, first, col, last, col],
                    "line": {"color": colour, "width": 2.25},
                    "marker": {"type": "circle", "fill": {"color": colour}},
                }
            )
        chart.show_blanks_as("gap")  # a month without a snapshot is not a month of zeros
        height = 320
    chart.set_title({"name": spec.title})
    chart.set_legend({"position": "bottom"})
    chart.set_size({"width": 720, "height": height})
    sheet.insert_chart(at_row, 0, chart)


def _text(text: str) -> str:
    if len(text) > XLSX_MAX_TEXT:  # Excel cannot hold more; say so in the cell
        text = text[: XLSX_MAX_TEXT - 1] + "…"
    return text
