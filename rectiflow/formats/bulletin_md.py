"""Draw a bulletin Report as Markdown: for the terminal and for chat."""

from __future__ import annotations

from typing import Any

from rectiflow.formats.bulletin import LIGHTS, MISSING, Report, Table, to_date

_RIGHT = frozenset({"count", "rate", "score"})


def render(report: Report) -> str:
    """The report as Markdown text, ending with a newline."""
    lines = [f"# {_inline(report.title)}", ""]
    if report.date_line:
        lines += [_inline(report.date_line), ""]
    if report.headline:
        lines += [_inline(report.headline), ""]
    for table in report.tables_for("md"):
        lines += [f"## {_inline(table.title)}", ""]
        lines += _table(table) if table.rows else [_inline(table.empty)]
        lines.append("")
    if report.notes:
        lines += [f"> {_inline(note)}" for note in report.notes]
        lines.append("")
    return "\n".join(lines)


def cell_text(kind: str, value: Any) -> str:
    """A cell as text: in Markdown, and in docx tables."""
    if value is None:
        return MISSING
    if kind == "rate":
        return f"{float(value) * 100:.1f}%"
    if kind == "score":
        return f"{float(value):.2f}"
    if kind == "date":
        return to_date(value).isoformat()
    if kind == "light":
        return dict(LIGHTS).get(str(value), str(value))
    if kind == "lights":
        return " ".join(f"{cn}{value.get(key, 0)}" for key, cn in LIGHTS)
    return str(value)


def _table(table: Table) -> list[str]:
    headings = [_inline(c.heading) for c in table.columns]
    rule = ["---:" if c.kind in _RIGHT else "---" for c in table.columns]
    lines = [_row(headings), _row(rule)]
    for row in table.rows:
        lines.append(
            _row([_inline(cell_text(c.kind, v)) for c, v in zip(table.columns, row, strict=True)])
        )
    return lines


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _inline(text: str) -> str:
    """One line of Markdown text: no line breaks, pipes escaped so a cell stays one cell."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")
