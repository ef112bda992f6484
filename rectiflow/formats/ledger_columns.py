"""Ledger column headings (问题清单台账) and the fields they name.

Headings are matched after NFKC normalisation, with whitespace and newlines removed, a
leading or trailing ``*`` (a "required" mark in templates) dropped and a trailing note in
brackets dropped: ``"整改时限\\n（年月日）"`` is ``整改时限``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from rectiflow.engine.errors import UsageError

# Fields an import reads, in the order a ledger usually lists them.
IMPORT_FIELDS: tuple[str, ...] = (
    "ref",
    "title",
    "category",
    "source",
    "target",
    "measures",
    "unit",
    "co_units",
    "responsible",
    "deadline",
    "severity",
    "status",
)
# Columns only an export writes; an import recognises them and leaves them alone.
EXPORT_ONLY_FIELDS: tuple[str, ...] = ("light", "level", "progress", "closed_at")
FIELDS: tuple[str, ...] = IMPORT_FIELDS + EXPORT_ONLY_FIELDS

# ``--map 'HEADING=-'`` drops a column (to settle two columns that name one field).
IGNORE = "-"

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "ref": ("序号", "编号"),
    "title": ("问题", "存在问题", "问题描述", "问题表现", "反馈问题", "督察反馈问题", "问题清单"),
    "category": ("问题类别", "问题类型"),
    "source": ("问题来源",),
    "target": ("整改目标",),
    "measures": ("整改措施",),
    "unit": ("责任单位", "整改责任单位", "牵头单位"),
    "co_units": ("配合单位", "协同单位"),
    "responsible": ("责任人",),
    "deadline": ("整改时限", "完成时限"),
    "severity": ("严重程度", "问题等级"),
    "status": ("整改进展", "完成情况", "整改情况", "当前状态"),
    "light": ("灯色",),
    "level": ("督办等级",),
    "progress": ("最新进展",),
    "closed_at": ("销号时间",),
}

EXPORT_HEADINGS: list[str] = [
    "序号",
    "编号",
    "问题类别",
    "存在问题",
    "问题来源",
    "整改目标",
    "整改措施",
    "责任单位",
    "配合单位",
    "责任人",
    "整改时限",
    "严重程度",
    "当前状态",
    "灯色",
    "督办等级",
    "最新进展",
    "销号时间",
]

# When both are present, 编号 (the case's own number) is the ref and 序号 (a row count) is not.
WEAK_REF = "序号"

_SPACE = re.compile(r"\s+")
_NOTE = re.compile(r"\([^()]*\)$")


def normalise_heading(heading: object) -> str:
    """The heading as matched: NFKC, no whitespace, no ``*`` mark, no trailing (note)."""
    text = _SPACE.sub("", unicodedata.normalize("NFKC", str(heading)))
    text = text.strip("*")
    stripped = _NOTE.sub("", text)
    return (stripped or text).strip("*")


_BY_HEADING: dict[str, str] = {
    normalise_heading(h): field for field, headings in _SYNONYMS.items() for h in headings
}


def parse_mapping(specs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["HEADING=field", ...]`` from ``--map`` as a dict, validated."""
    mapping: dict[str, str] = {}
    for spec in specs:
        heading, sep, field = spec.partition("=")
        if not sep or not heading.strip():
            raise UsageError(f"--map {spec!r}: expected HEADING=field")
        mapping[heading] = field.strip()
    check_mapping(mapping)
    return mapping


def check_mapping(extra: Mapping[str, str]) -> None:
    """Raise UsageError unless every value of ``extra`` is a field name (or ``-``)."""
    for heading, field in extra.items():
        if field != IGNORE and field not in FIELDS:
            raise UsageError(
                f"--map {heading}={field}: unknown field {field!r}; "
                f"fields are {', '.join(FIELDS)} (or - to ignore the column)"
            )


def field_of(heading: object, extra: Mapping[str, str]) -> str | None:
    """The field a column heading names, or None when it is not recognised.

    ``extra`` (from ``--map 'HEADING=field'``) wins over the built-in synonyms; a field of
    ``-`` returns ``"-"``, a column to drop. Raises UsageError for an unknown field name.
    """
    check_mapping(extra)
    key = normalise_heading(heading)
    if not key:
        return None
    for name, field in extra.items():
        if normalise_heading(name) == key:
            return field
    return _BY_HEADING.get(key)
