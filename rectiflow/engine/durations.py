"""Durations of the workflow language: ``30s``, ``15m``, ``4h``, ``10d``, ``5wd``.

``d`` counts calendar days and ``wd`` working days; both end at the end of a local day.
Offsets of the escalation ladder carry a sign (``-3wd``, ``0``, ``+5wd``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Unit(StrEnum):
    SECONDS = "s"
    MINUTES = "m"
    HOURS = "h"
    DAYS = "d"
    WORKDAYS = "wd"

    @property
    def is_day(self) -> bool:
        return self in (Unit.DAYS, Unit.WORKDAYS)


_SECONDS = {Unit.SECONDS: 1, Unit.MINUTES: 60, Unit.HOURS: 3600}
_PATTERN = re.compile(r"^([+-]?)(\d{1,6})(s|m|h|d|wd)$")


@dataclass(frozen=True, slots=True)
class Duration:
    amount: int  # signed
    unit: Unit

    @property
    def seconds(self) -> int:
        """Length in seconds; only for s/m/h durations."""
        return self.amount * _SECONDS[self.unit]

    def __str__(self) -> str:
        if self.amount == 0:
            return "0"
        sign = "+" if self.amount > 0 else "-"
        return f"{sign}{abs(self.amount)}{self.unit.value}"


ZERO = Duration(0, Unit.SECONDS)


def parse_duration(text: object, *, signed: bool = False) -> Duration:
    """Parse a duration; raise ValueError with a readable reason."""
    raw = str(text).strip() if isinstance(text, str | int) else None
    if raw in ("0", "+0", "-0") and signed:
        return ZERO
    match = _PATTERN.match(raw) if raw is not None else None
    if match is None:
        example = "'-3wd', '0' or '+5wd'" if signed else "'30s', '15m', '4h', '10d' or '5wd'"
        raise ValueError(f"malformed duration {text!r}, expected a form like {example}")
    sign, amount, unit = match.groups()
    if sign and not signed:
        raise ValueError(f"malformed duration {text!r}: a stage SLA takes no sign")
    value = int(amount) * (-1 if sign == "-" else 1)
    if not signed and value <= 0:
        raise ValueError(f"malformed duration {text!r}: an SLA must be positive")
    return Duration(value, Unit(unit))
