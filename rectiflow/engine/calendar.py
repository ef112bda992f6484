"""The working-day calendar: Chinese statutory holidays and make-up working days (调休).

``chinesecalendar`` covers 2004-2026. Years it does not cover come from a table that an
administrator loads (``rectiflow calendar load``); a year with neither falls back to
Monday-Friday, and deadlines counted through it are marked provisional.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import chinese_calendar
from loguru import logger

_WARNED_YEARS: set[int] = set()
_SHIFT_CACHE_SIZE = 65536  # (date, count) answers kept per calendar


@lru_cache(maxsize=8192)
def _statutory(day: dt.date) -> bool | None:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:  # year outside the package's data
        return None


@dataclass
class WorkCalendar:
    """Answers "is this a working day?" from the statutory data plus loaded overrides.

    ``overrides`` maps a date to True (workday) or False (holiday); ``loaded_years`` are the
    years whose table was loaded, so their other dates follow Monday-Friday without being
    provisional.
    """

    overrides: Mapping[dt.date, bool] = field(default_factory=dict)
    loaded_years: frozenset[int] = frozenset()
    _shifts: dict[tuple[dt.date, int], tuple[dt.date, bool]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def is_workday(self, day: dt.date) -> tuple[bool, bool]:
        """Return (is working day, provisional)."""
        if day in self.overrides:
            return self.overrides[day], False
        statutory = _statutory(day)
        if statutory is not None:
            return statutory, False
        if day.year in self.loaded_years:  # the loaded table lists the exceptions only
            return day.weekday() < 5, False
        if day.year not in _WARNED_YEARS:  # once per process, not once per sweep
            _WARNED_YEARS.add(day.year)
            logger.warning(
                "no holiday data for {year}: counting Monday-Friday, deadlines provisional; "
                "load the year with `rectiflow calendar load`",
                year=day.year,
            )
        return day.weekday() < 5, True

    def has_data(self, year: int) -> bool:
        return year in self.loaded_years or self.has_statutory(year)

    @staticmethod
    def has_statutory(year: int) -> bool:
        return _statutory(dt.date(year, 6, 1)) is not None

    def shift_workdays(self, day: dt.date, count: int) -> tuple[dt.date, bool]:
        """The count-th working day after (count > 0) or before (count < 0) ``day``."""
        # Every transition and every ladder level asks this, mostly for the same few
        # (today, SLA) pairs, and a 60wd walk costs more than the rest of a transition.
        # The answers are fixed for this calendar's data (loading data builds a new one).
        key = (day, count)
        found = self._shifts.get(key)
        if found is None:
            if len(self._shifts) >= _SHIFT_CACHE_SIZE:
                self._shifts.clear()
            found = self._shifts[key] = self._walk_workdays(day, count)
        return found

    def _walk_workdays(self, day: dt.date, count: int) -> tuple[dt.date, bool]:
        step = dt.timedelta(days=1 if count > 0 else -1)
        provisional = False
        remaining = abs(count)
        while remaining:
            day += step
            working, guessed = self.is_workday(day)
            provisional |= guessed
            remaining -= working
        return day, provisional

    def workdays_between(self, start: dt.date, end: dt.date) -> int:
        """Working days in (start, end]."""
        count = 0
        day = start
        while day < end:
            day += dt.timedelta(days=1)
            count += self.is_workday(day)[0]
        return count

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[dt.date, bool]]) -> WorkCalendar:
        overrides = dict(rows)
        return cls(overrides=overrides, loaded_years=frozenset(d.year for d in overrides))


def year_days(calendar: WorkCalendar, year: int) -> list[tuple[dt.date, bool, str]]:
    """Every day of ``year``: (date, is working day, where the answer came from: ``loaded``,
    ``statutory`` or ``weekday rule``)."""
    statutory = calendar.has_statutory(year)
    rows = []
    day = dt.date(year, 1, 1)
    while day.year == year:
        working, _ = calendar.is_workday(day)
        if day in calendar.overrides:
            origin = "loaded"
        elif statutory:
            origin = "statutory"
        else:
            origin = "weekday rule"
        rows.append((day, working, origin))
        day += dt.timedelta(days=1)
    return rows


#: A calendar file covers years in this range, at most ``MAX_CALENDAR_YEARS`` of them.
CALENDAR_YEARS = (1990, 2199)
MAX_CALENDAR_YEARS = 10
#: A year is complete when it has at least this many holidays on weekdays: China's seven
#: statutory holidays (元旦, 春节, 清明, 劳动节, 端午, 中秋, 国庆) give more than that in
#: any year (春节 and 国庆 alone give about six).
MIN_WEEKDAY_HOLIDAYS = 7


def decode_calendar(data: bytes, filename: str) -> str:
    """A calendar file's text: UTF-8 (with or without a BOM), else GB18030/GBK, which is what
    Excel on a Chinese Windows writes."""
    from rectiflow.engine.errors import ValidationError

    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValidationError("not UTF-8 or GB18030 text", where=filename)  # pragma: no cover


def parse_calendar_file(text: str, filename: str) -> list[tuple[dt.date, bool]]:
    """Parse a calendar table: CSV lines ``date,kind`` or YAML (a list of {date, kind} or a
    mapping date: kind), kind being ``holiday`` or ``workday``. A date given twice with two
    kinds, dates outside ``CALENDAR_YEARS`` and files spanning more than
    ``MAX_CALENDAR_YEARS`` years are refused."""
    from rectiflow.engine.errors import ValidationError

    text = text.removeprefix("\ufeff")
    rows: list[tuple[int, object, object]] = []
    if filename.lower().endswith((".yaml", ".yml")):
        import yaml

        from rectiflow.engine.yaml_source import compose_yaml

        compose_yaml(text, filename)  # no aliases, not too deep, not too big
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ValidationError(
                "YAML does not parse", where=f"{filename}:{mark.line + 1 if mark else 1}"
            ) from None
        if isinstance(data, dict):
            data = [{"date": k, "kind": v} for k, v in data.items()]
        if not isinstance(data, list):
            raise ValidationError(
                "expected a list of {date, kind} or a mapping date: kind", where=filename
            )
        for i, item in enumerate(data, 1):
            if not isinstance(item, dict) or "date" not in item or "kind" not in item:
                raise ValidationError(f"entry {i}: expected keys date and kind", where=filename)
            rows.append((i, item["date"], item["kind"]))
    else:
        import csv
        import io

        reader = csv.reader(io.StringIO(text))
        try:
            for fields in reader:
                lineno = reader.line_num
                if not fields or not "".join(fields).strip() or fields[0].strip().startswith("#"):
                    continue
                if not rows and fields[0].strip().lower() == "date":
                    continue  # the header (after comment lines, if any)
                if len(fields) < 2:
                    raise ValidationError("expected `date,kind`", where=f"{filename}:{lineno}")
                rows.append((lineno, fields[0].strip(), fields[1].strip()))
        except csv.Error as exc:
            at = f"{filename}:{reader.line_num}"
            raise ValidationError(f"not CSV: {exc}", where=at) from None
    days: dict[dt.date, tuple[bool, str]] = {}
    first, last = CALENDAR_YEARS
    for where, raw_day, raw_kind in rows:
        loc = f"{filename}:{where}"
        try:
            if isinstance(raw_day, dt.datetime):
                raise ValueError(raw_day)
            day = raw_day if isinstance(raw_day, dt.date) else dt.date.fromisoformat(str(raw_day))
        except ValueError:
            raise ValidationError(f"bad date {raw_day!r} (use YYYY-MM-DD)", where=loc) from None
        if not first <= day.year <= last:
            raise ValidationError(f"date {day} is outside the years {first}–{last}", where=loc)
        kind = str(raw_kind).strip().lower()
        if kind not in ("holiday", "workday"):
            raise ValidationError(f"bad kind {raw_kind!r} (use holiday or workday)", where=loc)
        working = kind == "workday"
        if day in days and days[day][0] != working:
            raise ValidationError(
                f"{day} is given as {kind} here and as the other kind at {days[day][1]}",
                where=loc,
            )
        days.setdefault(day, (working, loc))
    if not days:
        raise ValidationError("no dates in the file", where=filename)
    years = sorted({day.year for day in days})
    if years[-1] - years[0] + 1 > MAX_CALENDAR_YEARS:
        raise ValidationError(
            f"the dates span {years[0]}–{years[-1]}: at most {MAX_CALENDAR_YEARS} years a file",
            where=filename,
        )
    return [(day, working) for day, (working, _) in days.items()]


def incomplete_years(days: Iterable[tuple[dt.date, bool]]) -> list[int]:
    """The years of ``days`` with fewer than ``MIN_WEEKDAY_HOLIDAYS`` distinct holidays on
    weekdays (Monday to Friday): a year whose schedule was only partly typed in."""
    holidays: dict[int, set[dt.date]] = {}
    for day, working in days:
        holidays.setdefault(day.year, set())
        if not working and day.weekday() < 5:
            holidays[day.year].add(day)
    return sorted(y for y, found in holidays.items() if len(found) < MIN_WEEKDAY_HOLIDAYS)
