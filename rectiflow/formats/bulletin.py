"""Bulletins (情况通报), rankings (划档排序) and light histories as md, xlsx and docx.

Plain data in, files or text out: the input is the JSON the engine reports (``progress``,
``ranking``, ``lights``), nothing here imports the Engine or the store. Each kind is first
laid out as a ``Report`` (title, date line, headline, tables, an optional chart), then
drawn by ``bulletin_md``, ``bulletin_xlsx`` or ``bulletin_docx``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rectiflow.engine.errors import UsageError

KINDS = ("progress", "ranking", "lights")
FORMATS = ("md", "xlsx", "docx")
CATEGORY_LABELS = {
    "dismissed": "不予立项",
    "closed": "已销号",
    "exempted": "豁免/容错",
    "awaiting_acceptance": "已完成整改，待验收",
    "done_not_submitted": "已完成整改，未申请验收",
    "paused": "暂停",
    "long_term": "长期坚持",
    "overdue": "逾期未完成",
    "behind_schedule": "未达序时进度",
    "on_schedule": "序时推进",
}
# Not counted in totals, so neither a share of them nor a bar in the chart.
OUTSIDE_TOTALS = frozenset({"dismissed"})
LIGHTS = (("red", "红"), ("yellow", "黄"), ("green", "绿"))
#: The counts of the loop after the lifecycle (a tally's ``loop``), in the 概况 table.
LOOP_LABELS = {
    "lookbacks_due": "回头看到期未查",
    "lookbacks_done": "回头看已完成",
    "relapses": "问题反弹",
    "extensions_approved": "批准延期",
}
FIGURE_LABELS = {
    "completion_rate": "完成率",
    "overdue": "逾期未完成",
    "behind_schedule": "未达序时进度",
    "total": "问题总数",
    "completed": "已完成",
}
GROUP_HEADINGS = {"unit": "单位", "category": "类别", "source": "问题来源", "severity": "严重程度"}
MISSING = "—"
_CN_NUMBERS = "〇一二三四五六七八九"


@dataclass(frozen=True)
class Column:
    """A table column. ``kind`` says how a cell is shown.

    text: str; count: int; rate: a share 0..1 (shown as %); score: float; date: ISO str;
    light: "red"/"yellow"/"green"; lights: {"red": n, "yellow": n, "green": n}. None is
    always shown as missing ("—", or a blank xlsx cell).
    """

    heading: str
    kind: str = "text"
    width: int = 10


@dataclass(frozen=True)
class Chart:
    """A native xlsx chart over a table: ``series`` columns by the rows' ``label`` column."""

    kind: str  # "stacked_bar" | "line"
    title: str
    series: tuple[int, ...]
    label: int = 0
    rows: int | None = None  # the first rows only (a total row below stays out); None: all


@dataclass(frozen=True)
class Table:
    name: str  # the xlsx sheet, and the md/docx caption unless ``caption`` is given
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    formats: frozenset[str] = frozenset(FORMATS)
    chart: Chart | None = None
    empty: str = "无"  # said instead of an empty table
    caption: str = ""

    @property
    def title(self) -> str:
        return self.caption or self.name


@dataclass(frozen=True)
class Report:
    kind: str
    title: str
    date_line: str
    headline: str
    tables: tuple[Table, ...]
    notes: tuple[str, ...] = field(default=())

    def tables_for(self, fmt: str) -> list[Table]:
        return [t for t in self.tables if fmt in t.formats]


# -- public API ---------------------------------------------------------------------------


def render_markdown(kind: str, data: Mapping[str, Any]) -> str:
    """The report as a Markdown bulletin: title, date, headline, tables, notes."""
    # each format loads its own library only when asked for (and they import this module)
    from rectiflow.formats import bulletin_md

    return bulletin_md.render(build_report(kind, data))


def write_xlsx(kind: str, data: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the report as an XLSX workbook: one sheet per table, native charts.

    Text is written as typed strings, never formulas. The file appears whole or not at all.
    """
    from rectiflow.formats import bulletin_xlsx

    report = build_report(kind, data)
    _atomic(path, ".xlsx", lambda temp: bulletin_xlsx.write(report, temp))


def write_docx(kind: str, data: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write the report as an editable Word draft (情况通报).

    The file appears whole or not at all.
    """
    from rectiflow.formats import bulletin_docx

    report = build_report(kind, data)
    _atomic(path, ".docx", lambda temp: bulletin_docx.write(report, temp))


def write_report(
    kind: str, data: Mapping[str, Any], fmt: str, path: str | os.PathLike[str] | None = None
) -> str | None:
    """Render ``kind`` in ``fmt`` ("md", "xlsx", "docx") to ``path``.

    Markdown without a path is returned as a string; otherwise None is returned. xlsx and
    docx need a path (UsageError without one, or for an unknown kind or format).
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown report format {fmt!r}: use md, xlsx or docx")
    if kind not in KINDS:
        raise UsageError(f"unknown report kind {kind!r}: use {', '.join(KINDS)}")
    if fmt == "md":
        text = render_markdown(kind, data)
        if path is None:
            return text
        _atomic(path, ".md", lambda temp: Path(temp).write_text(text, encoding="utf-8"))
        return None
    if path is None:
        raise UsageError(f"a {fmt} report needs a file to write (--out)")
    (write_xlsx if fmt == "xlsx" else write_docx)(kind, data, path)
    return None


def build_report(kind: str, data: Mapping[str, Any]) -> Report:
    """Lay out ``data`` of ``kind`` as a Report (UsageError for an unknown kind)."""
    builders = {"progress": _progress, "ranking": _ranking, "lights": _lights}
    if kind not in builders:
        raise UsageError(f"unknown report kind {kind!r}: use {', '.join(KINDS)}")
    return builders[kind](data)


def _atomic(path: str | os.PathLike[str], suffix: str, write: Callable[[str], object]) -> None:
    target = Path(path)
    fd, temp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(temp)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


# -- dates --------------------------------------------------------------------------------


def to_date(value: Any) -> dt.date:
    """The date of an ISO date or datetime (its own offset's calendar day)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.datetime.fromisoformat(str(value)).date()


def cn_date(value: Any) -> str:
    day = to_date(value)
    return f"{day.year}年{day.month}月{day.day}日"


def cn_period(period: str) -> str:
    """2026-Q1 → 2026年第一季度, 2026-03 → 2026年3月, 2026 → 2026年; else as given."""
    if m := re.fullmatch(r"(\d{4})-Q([1-4])", period):
        return f"{m[1]}年第{_CN_NUMBERS[int(m[2])]}季度"
    if m := re.fullmatch(r"(\d{4})-(\d{2})", period):
        return f"{m[1]}年{int(m[2])}月"
    if re.fullmatch(r"\d{4}", period):
        return f"{period}年"
    return period


# -- progress -----------------------------------------------------------------------------


def _progress(data: Mapping[str, Any]) -> Report:
    scope = str(data.get("scope_name") or "")
    units: Sequence[Mapping[str, Any]] = data.get("units") or []
    categories = _ordered_keys(data.get("categories") or {}, *(u.get("categories") for u in units))
    labels = {**CATEGORY_LABELS, **(data.get("category_labels") or {})}
    levels = list(data.get("escalations") or {})
    level_labels = data.get("level_labels") or {}
    total = data.get("total") or 0

    summary: list[tuple[Any, ...]] = [
        ("问题总数", total, None),
        ("已完成整改", data.get("completed"), data.get("completion_rate")),
    ]
    for key in categories:
        n = (data.get("categories") or {}).get(key, 0)
        share = n / total if total and key not in OUTSIDE_TOTALS else None
        summary.append((labels.get(key, key), n, share))
    summary += [(f"{cn}灯", (data.get("lights") or {}).get(key, 0), None) for key, cn in LIGHTS]
    for level in levels:
        name = level_labels.get(level) or level_labels.get(str(level)) or f"督办等级{level}"
        summary.append((name, data["escalations"][level], None))
    loop = data.get("loop") or {}
    summary += [(label, loop[key], None) for key, label in LOOP_LABELS.items() if key in loop]

    group = GROUP_HEADINGS.get(str(data.get("by") or "unit"), "单位")
    columns = (
        Column(group, width=16),
        Column("问题总数", "count", 9),
        Column("已完成", "count", 8),
        Column("完成率", "rate", 8),
        *(Column(labels.get(key, key), "count", 11) for key in categories),
        *(Column(cn, "count", 5) for _, cn in LIGHTS),
    )

    def row(name: str, figures: Mapping[str, Any]) -> tuple[Any, ...]:
        cats = figures.get("categories") or {}
        lights = figures.get("lights") or {}
        return (
            name,
            figures.get("total", 0),
            figures.get("completed", 0),
            figures.get("completion_rate"),
            *(cats.get(key, 0) for key in categories),
            *(lights.get(key, 0) for key, _ in LIGHTS),
        )

    unit_rows = [row(str(u.get("name") or u.get("unit") or ""), u) for u in units]
    bars = tuple(4 + i for i, key in enumerate(categories) if key not in OUTSIDE_TOTALS)
    chart = Chart("stacked_bar", f"分{group}问题整改情况", bars, rows=len(unit_rows))
    overdue = [
        (i, c.get("id"), c.get("title"), c.get("unit_name"), c.get("due_at"))
        for i, c in enumerate(data.get("overdue_cases") or [], start=1)
    ]
    return Report(
        kind="progress",
        title=f"关于{scope}问题整改进展情况的通报",
        date_line=f"（截至{cn_date(data['as_of'])}）" if data.get("as_of") else "",
        headline=str(data.get("headline") or ""),
        tables=(
            Table(
                "概况",
                (Column("项目", width=24), Column("数量", "count"), Column("占比", "rate")),
                tuple(summary),
                formats=frozenset({"md", "xlsx"}),
            ),
            Table(
                f"分{group}",
                columns,
                (*unit_rows, row("合计", data)),
                chart=chart if unit_rows and bars else None,
                caption=f"分{group}整改进展情况",
            ),
            Table(
                "逾期清单",
                (
                    Column("序号", "count", 6),
                    Column("问题编号", "text", 9),
                    Column("问题", width=48),
                    Column("责任单位", width=16),
                    Column("整改时限", "date", 12),
                ),
                tuple(overdue),
                empty="无逾期未完成问题。",
                caption="逾期未完成问题清单",
            ),
        ),
    )


def _counts_of(unit: Mapping[str, Any]) -> Mapping[str, Any]:
    return unit.get("counts") or {}


def _ordered_keys(first: Mapping[str, Any], *more: Mapping[str, Any] | None) -> list[str]:
    """Keys of ``first`` in order, then keys only the others have (later categories)."""
    keys = list(first)
    for mapping in more:
        keys += [k for k in mapping or {} if k not in keys]
    return keys


# -- ranking ------------------------------------------------------------------------------


def _ranking(data: Mapping[str, Any]) -> Report:
    period = str(data.get("period") or "")
    units = sorted(data.get("units") or [], key=lambda u: (u.get("rank") or 0, str(u["unit"])))
    figures = _ordered_keys({}, *(u.get("figures") for u in units))
    labels = {**FIGURE_LABELS, **(data.get("figure_labels") or {})}

    def figure_kind(key: str) -> str:
        if key.endswith("rate"):
            return "rate"
        values = [u.get("figures", {}).get(key) for u in units]
        return "score" if any(isinstance(v, float) for v in values) else "count"

    rank_columns = (
        Column("名次", "count", 6),
        Column("单位", width=16),
        Column("得分", "score", 8),
        Column("档次", width=8),
        *(Column(labels.get(key, key), figure_kind(key), 11) for key in figures),
    )
    rank_rows = tuple(
        (
            u.get("rank"),
            u.get("name") or u["unit"],
            u.get("score"),
            u.get("tier"),
            *((u.get("figures") or {}).get(key) for key in figures),
        )
        for u in units
    )
    tiers: dict[str, list[str]] = {}
    for u in units:
        tiers.setdefault(str(u.get("tier")), []).append(str(u.get("name") or u["unit"]))
    headline = data.get("headline") or (
        f"按照划档排序方案，对{len(units)}个单位进行划档排序："
        + "；".join(f"{t}{len(names)}个（{'、'.join(names)}）" for t, names in tiers.items())
        + "。"
    )
    notes = [f"划档方案：{data['scheme']}。"] if data.get("scheme") else []
    if data.get("tie_note"):
        notes.append(str(data["tie_note"]))
    date_line = f"（统计时段：{cn_period(period)}"
    date_line += f"，截至{cn_date(data['as_of'])}）" if data.get("as_of") else "）"
    return Report(
        kind="ranking",
        title=f"{cn_period(period)}问题整改工作划档排序情况",
        date_line=date_line,
        headline=str(headline),
        tables=(
            # docx shows it as the tier table: 档次, 单位, 得分, 名次
            Table("排名", rank_columns, rank_rows, caption="划档排序情况"),
        ),
        notes=tuple(notes),
    )


# -- light history ------------------------------------------------------------------------


def scope_lights(data: Mapping[str, Any]) -> list[tuple[str, dict[str, int] | None]]:
    """Per month the red/yellow/green counts summed over the units; None for a missing month."""
    missing = set(data.get("missing") or [])
    result: list[tuple[str, dict[str, int] | None]] = []
    for month in data.get("months") or []:
        counts = [_counts_of(u).get(month) for u in data.get("units") or []]
        known = month not in missing and not (counts and all(c is None for c in counts))
        sums = {key: sum((c or {}).get(key, 0) for c in counts) for key, _ in LIGHTS}
        result.append((month, sums if known else None))
    return result


def _lights(data: Mapping[str, Any]) -> Report:
    months: list[str] = list(data.get("months") or [])
    missing = [m for m in months if m in set(data.get("missing") or [])]
    first, last = data.get("from") or (months[0] if months else ""), data.get("to") or ""
    last = last or (months[-1] if months else "")
    span = f"{cn_period(str(first))}至{cn_period(str(last))}"
    totals = scope_lights(data)
    units = data.get("units") or []
    cases = data.get("cases") or []

    headline = data.get("headline")
    if not headline:
        headline = f"{span}，{len(units)}个单位、{len(cases)}个问题纳入灯色统计。"
        present = [(m, c) for m, c in totals if c is not None]
        if present:
            month, counts = present[-1]
            headline += f"最近一期（{cn_period(month)}）" + "、".join(
                f"{cn}灯{counts[key]}个" for key, cn in LIGHTS
            )
            headline += "。"
    total_rows = tuple(
        (month, *(c.get(key) if c else None for key, _ in LIGHTS), "" if c else "无快照")
        for month, c in totals
    )
    month_columns = tuple(Column(m, "lights", 5) for m in months)
    return Report(
        kind="lights",
        title="问题整改灯色变化情况",
        date_line=f"（统计时段：{span}）",
        headline=str(headline),
        tables=(
            Table(
                "灯色",
                (
                    Column("月份", width=10),
                    *(Column(f"{cn}灯", "count", 8) for _, cn in LIGHTS),
                    Column("说明", width=10),
                ),
                total_rows,
                chart=Chart("line", "红黄绿灯数量变化", (1, 2, 3)) if total_rows else None,
            ),
            Table(
                "分单位灯色",
                (Column("单位", width=16), *month_columns),
                tuple(
                    (u.get("name") or u.get("unit"), *(_counts_of(u).get(m) for m in months))
                    for u in units
                ),
            ),
            Table(
                "问题灯色",
                (
                    Column("问题编号", width=9),
                    Column("问题", width=40),
                    *(Column(m, "light", 8) for m in months),
                ),
                tuple(
                    (c.get("id"), c.get("title"), *((c.get("lights") or {}).get(m) for m in months))
                    for c in cases
                ),
                formats=frozenset({"md", "xlsx"}),
            ),
        ),
        notes=tuple(f"{m} 无快照，表中以“{MISSING}”表示，不作推算。" for m in missing),
    )
