"""Draw a bulletin Report as a Word draft (python-docx) that the office edits and issues.

Laid out after the usual 公文 page (GB/T 9704): A4, title in 方正小标宋简体 二号, body in
仿宋_GB2312 三号, headings in 黑体. Chinese fonts must be named in ``w:eastAsia``: Word uses
``w:ascii`` only for Latin text. Each font also gets an alternative in the font table, so a
machine without 仿宋_GB2312 or 方正小标宋简体 shows 仿宋 or 宋体 instead of a default font.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import docx
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.shared import Cm, Pt
from lxml import etree

from rectiflow.formats.bulletin import LIGHTS, Report, Table
from rectiflow.formats.bulletin_md import cell_text

BODY_FONT = "仿宋_GB2312"
TITLE_FONT = "方正小标宋简体"
HEADING_FONT = "黑体"
# Word's font table: the font to use where the named one is not installed.
FALLBACKS = {BODY_FONT: "仿宋", TITLE_FONT: "宋体", HEADING_FONT: "SimHei"}
BODY_SIZE = Pt(16)  # 三号
TITLE_SIZE = Pt(22)  # 二号
TABLE_SIZE = Pt(10.5)  # 五号
_ORDINALS = "一二三四五六七八九十"
_COUNTS = frozenset({"count", "rate", "score"})


def write(report: Report, path: str) -> None:
    """Write ``report`` to ``path`` as a .docx draft."""
    document = docx.Document()
    _page(document)
    _fonts(document)
    title = _paragraph(document, report.title, TITLE_FONT, TITLE_SIZE, WD_ALIGN_PARAGRAPH.CENTER)
    title.paragraph_format.space_after = Pt(12)
    if report.date_line:
        _paragraph(document, report.date_line, BODY_FONT, BODY_SIZE, WD_ALIGN_PARAGRAPH.CENTER)
    if report.headline:
        _body(document, report.headline)
    for number, table in enumerate(report.tables_for("docx")):
        heading = f"{_ORDINALS[number % len(_ORDINALS)]}、{table.title}"
        paragraph = _paragraph(document, heading, HEADING_FONT, BODY_SIZE)
        paragraph.paragraph_format.first_line_indent = Pt(32)
        if table.rows and report.kind == "ranking":
            _table(document, _tiers(table), merge_first=True)
        elif table.rows:
            _table(document, _readable(table, report.kind))
        else:
            _body(document, table.empty)
    for note in report.notes:
        _body(document, note)
    document.save(path)


def _page(document: Any) -> None:
    for section in document.sections:
        section.page_width, section.page_height = Cm(21), Cm(29.7)
        section.top_margin, section.bottom_margin = Cm(3.7), Cm(3.5)
        section.left_margin, section.right_margin = Cm(2.8), Cm(2.6)


def _fonts(document: Any) -> None:
    """Body font in the Normal style (so typed additions match); fallbacks in the font table."""
    normal = document.styles["Normal"]
    normal.font.size = BODY_SIZE
    set_font(normal.element.get_or_add_rPr(), BODY_FONT)
    part = next(
        (r.target_part for r in document.part.rels.values() if r.reltype.endswith("/fontTable")),
        None,
    )
    if part is None or not hasattr(part, "_blob"):  # python-docx keeps this part as bytes
        return
    root = parse_xml(part.blob)
    known = {f.get(qn("w:name")) for f in root.findall(qn("w:font"))}
    for name, alternative in FALLBACKS.items():
        if name not in known:
            root.append(
                parse_xml(
                    f'<w:font {nsdecls("w")} w:name="{name}"><w:altName w:val="{alternative}"/>'
                    '<w:charset w:val="86"/><w:family w:val="modern"/>'
                    '<w:pitch w:val="fixed"/></w:font>'
                )
            )
    part._blob = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def set_font(rpr: Any, name: str) -> None:
    """Name ``name`` for every script in a ``w:rPr``: East Asian text reads ``w:eastAsia``."""
    fonts = rpr.get_or_add_rFonts()
    for attribute in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts.set(qn(attribute), name)


def _run(paragraph: Any, text: str, font: str, size: Any, bold: bool = False) -> Any:
    run = paragraph.add_run(text)
    run.font.size = size
    run.font.bold = bold or None
    set_font(run._element.get_or_add_rPr(), font)
    return run


def _paragraph(
    document: Any, text: str, font: str, size: Any, align: Any = None, bold: bool = False
) -> Any:
    paragraph = document.add_paragraph()
    if align is not None:
        paragraph.alignment = align
    _run(paragraph, text, font, size, bold)
    return paragraph


def _body(document: Any, text: str) -> Any:
    paragraph = _paragraph(document, text, BODY_FONT, BODY_SIZE, WD_ALIGN_PARAGRAPH.JUSTIFY)
    paragraph.paragraph_format.first_line_indent = Pt(32)  # two characters
    paragraph.paragraph_format.line_spacing = Pt(28)
    return paragraph


def _readable(table: Table, kind: str) -> Table:
    """In print, category columns where every figure is 0 only crowd the page: leave them out."""
    if kind != "progress" or not table.rows:
        return table
    lights = {cn for _, cn in LIGHTS}
    keep = [
        i
        for i, column in enumerate(table.columns)
        if i < 4 or column.heading in lights or any(row[i] for row in table.rows)
    ]
    return dataclasses.replace(
        table,
        columns=tuple(table.columns[i] for i in keep),
        rows=tuple(tuple(row[i] for i in keep) for row in table.rows),
    )


def _tiers(table: Table) -> Table:
    """The ranking as the tier table: 档次, 单位, 得分, 名次 (the ranking's first four)."""
    order = (3, 1, 2, 0)
    return dataclasses.replace(
        table,
        columns=tuple(table.columns[i] for i in order),
        rows=tuple(tuple(row[i] for i in order) for row in table.rows),
    )


def _table(document: Any, table: Table, merge_first: bool = False) -> None:
    grid = document.add_table(rows=1 + len(table.rows), cols=len(table.columns))
    grid.style = "Table Grid"
    grid.alignment = WD_TABLE_ALIGNMENT.CENTER
    for col, column in enumerate(table.columns):
        _cell(grid.cell(0, col), column.heading, bold=True)
    for r, row in enumerate(table.rows, start=1):
        for col, (column, value) in enumerate(zip(table.columns, row, strict=True)):
            align = WD_ALIGN_PARAGRAPH.CENTER if column.kind in _COUNTS | {"light"} else None
            _cell(grid.cell(r, col), cell_text(column.kind, value), align=align)
    _repeat_header(grid.rows[0])
    if merge_first:  # a tier over its units
        _merge_runs(grid, len(table.rows))


def _cell(cell: Any, text: str, bold: bool = False, align: Any = None) -> None:
    paragraph = cell.paragraphs[0]
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER if bold else align
    _run(paragraph, text, HEADING_FONT if bold else BODY_FONT, TABLE_SIZE)


def _repeat_header(row: Any) -> None:
    """The header row repeats on every page the table runs over."""
    properties = row._tr.get_or_add_trPr()
    properties.append(parse_xml(f'<w:tblHeader {nsdecls("w")} w:val="true"/>'))


def _merge_runs(grid: Any, count: int) -> None:
    """Merge equal neighbours of the first column (a tier over its units), keeping one text."""
    start = 1
    for r in range(2, count + 2):
        if r <= count and grid.cell(r, 0).text == grid.cell(start, 0).text:
            continue
        if r - 1 > start:
            text = grid.cell(start, 0).text
            merged = grid.cell(start, 0).merge(grid.cell(r - 1, 0))
            for paragraph in merged.paragraphs[1:]:
                paragraph._element.getparent().remove(paragraph._element)
            merged.paragraphs[0].clear()
            _run(merged.paragraphs[0], text, BODY_FONT, TABLE_SIZE)
            merged.paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.CENTER
        start = r
