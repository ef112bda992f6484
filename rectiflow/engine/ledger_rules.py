"""Rules that turn the cells of a Chinese rectification ledger (整改台账) row into values.

Pure functions: no I/O and no clock. Each raises ``ValueError`` with a short reason naming
what is wrong; the caller adds the row and the column.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass

__all__ = [
    "Deadline",
    "escape_formula_guard",
    "needs_formula_guard",
    "neutralise_formula",
    "parse_deadline",
    "parse_severity",
    "parse_status",
    "split_measures",
    "split_units",
    "strip_formula_guard",
]


@dataclass(frozen=True, slots=True)
class Deadline:
    day: dt.date | None  # the last day to finish, if the phrase names one
    immediate: bool = False  # 立行立改: due 5 working days after import (caller computes)
    long_term: bool = False  # 长期坚持 / 持续推进 / 常态化推进


# --- deadlines ---------------------------------------------------------------------------

_EXCEL_EPOCH = dt.date(1899, 12, 30)  # Excel's 1900 system, past its 1900-02-29 bug
_LAST_SERIAL = (dt.date.max - _EXCEL_EPOCH).days

_CN_DIGIT = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}

_CN_DATE = re.compile(
    r"""(?P<y>[0-9]{4})\s*年\s*(?:
        (?P<m>[0-9]{1,2})\s*月份?\s*(?:(?P<d>[0-9]{1,2})\s*[日号]|[底末])?
      | (?P<half>[上下])半年[底末]?
      | 第?\s*(?P<q>[一二三四1-4])\s*季度[底末]?
      | 年?[底末] | 年?内 | 度
    )?""",
    re.X,
)
_NUM_DATE = re.compile(
    r"""(?P<y>[0-9]{4})\s*(?P<sep>[-./])\s*(?P<m>[0-9]{1,2})
    (?: \s*(?P=sep)\s*(?P<d>[0-9]{1,2})
        (?:[ T][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?  # a datetime written as text
      | [底末]
    )?""",
    re.X,
)
_IMMEDIATE = re.compile(r"立行立改")
_LONG_TERM = re.compile(r"长期坚持|持续推进|常态化推进")
_DEADLINE_SEP = re.compile(r"(?:[\s、，,;；。]|并)*")
_DEADLINE_TAIL = re.compile(r"\s*(?:之前|以前|前)?\s*(?:完成整改|整改完成|整改到位|完成)?")


def parse_deadline(value: str | dt.date | dt.datetime | int | float | None) -> Deadline | None:
    """The deadline a ledger cell names; ``None`` for an empty cell.

    A phrase naming a month, half-year, quarter or year ends on its last day; ``立行立改``
    sets ``immediate`` and ``长期坚持`` / ``持续推进`` / ``常态化推进`` set ``long_term``,
    alone or together with a day.
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return Deadline(value.date())
    if isinstance(value, dt.date):
        return Deadline(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Deadline(_from_serial(value))
    if not isinstance(value, str):
        raise ValueError(f"deadline of unexpected type {type(value).__name__}")
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        return None
    day: dt.date | None = None
    immediate = long_term = False
    pos = _skip(_DEADLINE_SEP, text, 0)
    while pos < len(text):
        if match := _IMMEDIATE.match(text, pos):
            immediate = True
        elif match := _LONG_TERM.match(text, pos):
            long_term = True
        elif (match := _NUM_DATE.match(text, pos)) or (match := _CN_DATE.match(text, pos)):
            found = _date_of(match)
            if day is not None and found != day:
                raise ValueError(f"two different deadlines in {value!r}")
            day = found
        else:
            raise ValueError(f"unrecognised deadline {value!r}")
        pos = _skip(_DEADLINE_SEP, text, _skip(_DEADLINE_TAIL, text, match.end()))
    if day is None and not immediate and not long_term:
        raise ValueError(f"unrecognised deadline {value!r}")
    return Deadline(day, immediate=immediate, long_term=long_term)


def _skip(optional: re.Pattern[str], text: str, pos: int) -> int:
    match = optional.match(text, pos)
    return match.end() if match else pos


def _from_serial(serial: float) -> dt.date:
    if not math.isfinite(serial) or not 1 <= serial < _LAST_SERIAL + 1:
        raise ValueError(f"Excel date serial {serial!r} out of range")
    return _EXCEL_EPOCH + dt.timedelta(days=math.floor(serial))


def _date_of(match: re.Match[str]) -> dt.date:
    year = int(match["y"])
    if year < 1:
        raise ValueError(f"no year {match['y']} in a deadline")
    groups = match.groupdict()
    if groups.get("half"):
        return _month_end(year, 6 if groups["half"] == "上" else 12)
    if groups.get("q"):
        quarter = _CN_DIGIT.get(groups["q"]) or int(groups["q"])
        return _month_end(year, quarter * 3)
    if groups["m"] is None:
        return dt.date(year, 12, 31)
    month = int(groups["m"])
    if not 1 <= month <= 12:
        raise ValueError(f"no month {month} in a deadline")
    if groups["d"] is None:
        return _month_end(year, month)
    day = int(groups["d"])
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise ValueError(f"no day {year:04d}-{month:02d}-{day:02d}")
    return dt.date(year, month, day)


def _month_end(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


# --- measures ----------------------------------------------------------------------------

_CN_NUMBER = "一二三四五六七八九十"
_DIGITS = "0-9０-９"
# Plain numbers count only where a new item can begin: the start, a new line, a sentence
# end or the colon that introduces a list, so "第1.5倍" or "1.2亿元" mid-sentence stays
# whole; "（2）" and "②" are numbering wherever they stand.
_AT_START = r"(?:^|(?<=[\n\r。；;：:]))\s*"
_MARKERS = {
    "digit": re.compile(
        _AT_START + rf"(?:(?P<n>[{_DIGITS}]{{1,2}})\s*[.．、)）](?![{_DIGITS}])|(?P<c>[⒈-⒛]))"
    ),
    "paren": re.compile(rf"\s*(?:[(（]\s*(?P<n>[{_DIGITS}]{{1,2}})\s*[)）]|(?P<c>[⑴-⒇]))"),
    "circle": re.compile(r"\s*(?P<c>[①-⑳])"),
    "cn": re.compile(_AT_START + rf"(?P<n>[{_CN_NUMBER}]{{1,3}})\s*[、.．]"),
    "cnparen": re.compile(rf"\s*[(（]\s*(?P<n>[{_CN_NUMBER}]{{1,3}})\s*[)）]"),
    # "一是……，二是……" is written with commas between items as often as with semicolons
    "shi": re.compile(r"(?:^|(?<=[\n\r。；;：:，,]))\s*(?P<n>[" + _CN_NUMBER + r"]{1,3})是"),
}
_CHAR_BASE = {"digit": 0x2487, "paren": 0x2473, "circle": 0x245F}  # ⒈, ⑴, ① minus one
_ITEM_TRAIL = " \t\r\n\u3000；;，,、"


def split_measures(text: str | None) -> list[str]:
    """The measures of one cell, one per numbered item (or per line when unnumbered).

    Numbers and trailing separators are removed; text before the first number, such as a
    heading, becomes an item of its own, so no written word is lost.
    """
    if text is None or not text.strip():
        return []
    markers = _numbering(text)
    if not markers:
        pieces = re.split(r"\r\n|\r|\n", text)
    else:
        bounds = [m.start() + len(m[0]) - len(m[0].lstrip()) for m in markers]
        pieces = [text[: bounds[0]]]
        ends = [*bounds[1:], len(text)]
        pieces += [text[m.end() : end] for m, end in zip(markers, ends, strict=True)]
    items = (piece.strip().rstrip(_ITEM_TRAIL) for piece in pieces)
    return [item for item in items if item]


def _numbering(text: str) -> list[re.Match[str]]:
    """The markers of the list's own numbering: one style, counting 1, 2, 3 …"""
    found = [
        (m.start(), style, _marker_number(style, m), m)
        for style, regex in _MARKERS.items()
        for m in regex.finditer(text)
    ]
    found.sort(key=lambda f: f[0])
    first = next((f for f in found if f[2] == 1), None)
    if first is None:
        return []
    accepted: list[re.Match[str]] = []
    for _, style, number, match in found:
        if style == first[1] and number == len(accepted) + 1 and match.start() >= first[0]:
            accepted.append(match)
    return accepted


def _marker_number(style: str, match: re.Match[str]) -> int:
    if char := match.groupdict().get("c"):
        return ord(char) - _CHAR_BASE[style]
    written = match["n"]
    if style in ("digit", "paren"):
        return int(unicodedata.normalize("NFKC", written))
    return _cn_number(written)


def _cn_number(written: str) -> int:
    """一 … 九十九 as an int; 0 when it is not such a number."""
    tens, _, units = written.rpartition("十")
    if "十" not in written:
        return _CN_DIGIT.get(written, 0) if len(written) == 1 else 0
    high = 1 if tens == "" else _CN_DIGIT.get(tens, 0) if len(tens) == 1 else 0
    low = 0 if units == "" else _CN_DIGIT.get(units, 0) if len(units) == 1 else 0
    return high * 10 + low if high and (low or units == "") else 0


# --- units -------------------------------------------------------------------------------

_UNIT_SEP = re.compile(r"[、，,;；/／\s]+")
_UNIT_SEP_NO_SPACE = re.compile(r"[、，,;；/／]+")
_LEAD_WORDS = ("牵头", "负责")
_ROLE = r"牵头|负责|配合|协同|参与"
_ROLE_SUFFIX = re.compile(rf"(?:[(（]\s*)?(?P<role>{_ROLE})(?:单位|部门)?(?:\s*[)）])?$")
_ROLE_LABEL = re.compile(rf"^(?P<role>{_ROLE}|责任)(?:单位|部门)?\s*[:：]\s*")


def split_units(text: str | None, known: Collection[str] = ()) -> tuple[str, list[str]]:
    """The lead unit and the co-units of a cell, names or codes as written.

    Whitespace separates names too, except inside a name of ``known`` ("City 1").

    The unit marked 牵头 or 负责 leads wherever it stands, otherwise the first one does;
    a mark after a name covers the unmarked names just before it ("A、B配合"), a label
    before names ("配合单位：A、B") covers those after it.
    """
    names: list[str] = []
    roles: list[str | None] = []
    label_role: str | None = None
    for part in _unit_parts(text or "", known):
        if label := _ROLE_LABEL.match(part):
            label_role = _role_kind(label["role"])
            part = part[label.end() :]
        name, marks = part, []
        while suffix := _ROLE_SUFFIX.search(name):
            marks.append(suffix["role"])
            name = name[: suffix.start()]
        if not marks:
            if name:
                names.append(name)
                roles.append(label_role)
            continue
        role = "lead" if any(m in _LEAD_WORDS for m in marks) else "co"
        if name:
            names.append(name.removeprefix("由") or name)
            roles.append(None)
        elif not roles or roles[-1] is not None:  # a bare "牵头" before names labels them
            label_role = role
            continue
        label_role = None
        for i in range(len(roles) - 1, -1, -1):  # the mark covers the unmarked group before it
            if roles[i] is not None:
                break
            roles[i] = role
    if not names:
        raise ValueError("no unit")
    lead_at = next((i for i, role in enumerate(roles) if role == "lead"), 0)
    lead = names[lead_at]
    co = [name for name in dict.fromkeys(names) if name != lead]
    return lead, co


def _unit_parts(text: str, known: Collection[str]) -> list[str]:
    if not known:
        return _UNIT_SEP.split(text)
    parts: list[str] = []
    for part in _UNIT_SEP_NO_SPACE.split(text):
        part = part.strip()
        parts.extend([part] if part in known else _UNIT_SEP.split(part))
    return parts


def _role_kind(word: str) -> str | None:
    if word in _LEAD_WORDS:
        return "lead"
    return None if word == "责任" else "co"


# --- severity and status -----------------------------------------------------------------

_SEVERITY = {
    "高": "high",
    "重大": "high",
    "严重": "high",
    "中": "medium",
    "较大": "medium",
    "低": "low",
    "一般": "low",
    "high": "high",
    "medium": "medium",
    "low": "low",
}
_TRAILING_PUNCT = "。.;；,，、!！?？ \t\r\n"


def parse_severity(text: str | None) -> str:
    """``high`` / ``medium`` / ``low`` from 高·重大·严重 / 中·较大 / 低·一般 or English."""
    key = _clean(text).lower()
    if not key:
        return "medium"
    if key not in _SEVERITY:
        raise ValueError(f"unknown severity {text!r}")
    return _SEVERITY[key]


_STATUS = {
    **dict.fromkeys(["已完成", "已完成整改", "已整改", "已整改到位", "已销号", "完成"], "closed"),
    **dict.fromkeys(["基本完成", "已完成待验收", "待验收", "申请销号"], "verify"),
    **dict.fromkeys(
        ["正在整改", "整改中", "推进中", "序时推进", "持续推进", "未完成", "进行中"], "rectify"
    ),
    **dict.fromkeys(["未启动", "未开始"], "plan"),
}
_STATUS_SEP = "。.;；,，、!！:：(（[【-—－ \t\r\n\u3000"


def parse_status(text: str | None, state_labels: Mapping[str, str]) -> str:
    """The state a status cell names: a workflow label first, then the usual phrases.

    A longer cell counts when it starts with a label or phrase followed by a separator,
    as in "已完成。2026年5月已验收". A blank cell means the case is being rectified.
    """
    cleaned = _clean(text)
    if not cleaned:
        return "rectify"
    labels = {_compact(_clean(label)): state for label, state in state_labels.items()}
    labels.pop("", None)
    for table in (labels, _STATUS):
        if (state := table.get(_compact(cleaned))) is not None:
            return state
    for table in (labels, _STATUS):
        for phrase in sorted(table, key=len, reverse=True):
            after = cleaned[len(phrase) : len(phrase) + 1]
            if cleaned.startswith(phrase) and after and after in _STATUS_SEP:
                return table[phrase]
    raise ValueError(f"unknown status {text!r}")


def _clean(text: str | None) -> str:
    return unicodedata.normalize("NFKC", text or "").strip().rstrip(_TRAILING_PUNCT)


def _compact(text: str) -> str:
    return "".join(text.split())


# --- CSV formula guard -------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def needs_formula_guard(text: str) -> bool:
    """Whether a spreadsheet could read the text as a formula (possibly behind apostrophes)."""
    return text.lstrip("'").startswith(_FORMULA_START)


def neutralise_formula(text: str) -> str:
    """Prefix an apostrophe to a cell a spreadsheet would run as a formula (OWASP).

    A text whose apostrophes are followed by such a character gets one too, so that
    ``strip_formula_guard`` gives back exactly what was written.
    """
    return "'" + text if needs_formula_guard(text) else text


def escape_formula_guard(text: str) -> str:
    """``text`` with one more apostrophe only where ``strip_formula_guard`` would remove one.

    For typed string cells (XLSX), which are never formulas, so that an apostrophe the
    text really starts with survives the import.
    """
    return "'" + text if text.startswith("'") and needs_formula_guard(text) else text


def strip_formula_guard(text: str) -> str:
    """Undo ``neutralise_formula``: drop the one apostrophe it added."""
    guarded = text.startswith("'") and needs_formula_guard(text)
    return text[1:] if guarded else text
