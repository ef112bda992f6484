"""Report periods: months (``2026-03``) and quarters (``2026-Q1``), and the month ends.

A snapshot is taken per month at 23:59 local time on its last day, and a quarter's figures
are frozen with its last month; ``periods_between`` lists the months a range covers. Apart
from ``reports.py`` because these are calendar arithmetic, not rules about cases.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from rectiflow.engine.errors import ValidationError


@dataclass(frozen=True, slots=True)
class Period:
    key: str  # "2026-03" or "2026-Q1"
    kind: Literal["month", "quarter"]
    first_day: dt.date
    last_day: dt.date

    @property
    def months(self) -> tuple[str, ...]:
        """The month keys the period covers, in order."""
        first = self.first_day.month
        return tuple(
            f"{self.first_day.year:04d}-{m:02d}" for m in range(first, self.last_day.month + 1)
        )


_MONTH = re.compile(r"(\d{4})-(\d{2})\Z")
_QUARTER = re.compile(r"(\d{4})-[Qq]([1-4])\Z")


def parse_period(text: str) -> Period:
    """A month ``2026-03`` or a quarter ``2026-Q1``."""
    value = text.strip()
    if match := _MONTH.match(value):
        year, month = int(match[1]), int(match[2])
        if 1 <= year and 1 <= month <= 12:
            last = calendar.monthrange(year, month)[1]
            return Period(
                f"{year:04d}-{month:02d}", "month", dt.date(year, month, 1),
                dt.date(year, month, last),
            )  # fmt: skip
    elif match := _QUARTER.match(value):
        year, quarter = int(match[1]), int(match[2])
        if year >= 1:
            end = quarter * 3
            return Period(
                f"{year:04d}-Q{quarter}", "quarter", dt.date(year, end - 2, 1),
                dt.date(year, end, calendar.monthrange(year, end)[1]),
            )  # fmt: skip
    raise ValidationError(
        f"bad period {text!r}: expected a month like 2026-03 or a quarter like 2026-Q1",
        key="period",
    )


def month_end_moment(year: int, month: int, tz: dt.tzinfo) -> dt.datetime:
    """23:59 local time on the month's last day: when the month's snapshot is taken."""
    last = calendar.monthrange(year, month)[1]
    return dt.datetime(year, month, last, 23, 59, tzinfo=tz)


def periods_between(first: str, last: str) -> list[str]:
    """The month keys from ``first`` to ``last``, both included; a quarter stands for its
    months ("2026-Q1" to "2026-Q2" is six months)."""
    start, end = parse_period(first), parse_period(last)
    if start.first_day > end.last_day:
        raise ValidationError(f"the period {first} comes after {last}", key="period")
    months = []
    year, month = start.first_day.year, start.first_day.month
    while (year, month) <= (end.last_day.year, end.last_day.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _month(month_key: str) -> Period:
    period = parse_period(month_key)
    if period.kind != "month":
        raise ValidationError(f"expected a month like 2026-03, got {month_key!r}", key="period")
    return period


def quarter_of(month_key: str) -> str:
    """The quarter a month lies in: "2026-03" → "2026-Q1"."""
    day = _month(month_key).first_day
    return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"


def is_quarter_end(month_key: str) -> bool:
    """True for March, June, September and December: the quarter's figures are frozen then."""
    return _month(month_key).first_day.month % 3 == 0
