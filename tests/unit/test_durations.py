"""Durations of the workflow language: units, signs, zero and malformed forms."""

from __future__ import annotations

import pytest

from rectiflow.engine.durations import ZERO, Duration, Unit, parse_duration


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [
        ("30s", 30, Unit.SECONDS),
        ("15m", 15, Unit.MINUTES),
        ("4h", 4, Unit.HOURS),
        ("10d", 10, Unit.DAYS),
        ("5wd", 5, Unit.WORKDAYS),
        (" 7wd ", 7, Unit.WORKDAYS),
        ("999999s", 999999, Unit.SECONDS),
    ],
)
def test_duration__every_unit(text: str, amount: int, unit: Unit) -> None:
    assert parse_duration(text) == Duration(amount, unit)


def test_duration__seconds_of_clock_units() -> None:
    assert parse_duration("30s").seconds == 30
    assert parse_duration("15m").seconds == 900
    assert parse_duration("4h").seconds == 14400
    assert parse_duration("-2h", signed=True).seconds == -7200


def test_duration__day_units_are_day_units() -> None:
    assert all(u.is_day for u in (Unit.DAYS, Unit.WORKDAYS))
    assert not any(u.is_day for u in (Unit.SECONDS, Unit.MINUTES, Unit.HOURS))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-3wd", Duration(-3, Unit.WORKDAYS)),
        ("+5wd", Duration(5, Unit.WORKDAYS)),
        ("5wd", Duration(5, Unit.WORKDAYS)),
        ("+15wd", Duration(15, Unit.WORKDAYS)),
        ("-1d", Duration(-1, Unit.DAYS)),
        ("-30m", Duration(-30, Unit.MINUTES)),
        ("+4h", Duration(4, Unit.HOURS)),
    ],
)
def test_duration__signed_offsets(text: str, expected: Duration) -> None:
    assert parse_duration(text, signed=True) == expected


@pytest.mark.parametrize("zero", ["0", "+0", "-0", 0])
def test_duration__zero_offset(zero: object) -> None:
    assert parse_duration(zero, signed=True) == ZERO
    assert str(ZERO) == "0"


@pytest.mark.parametrize("zero", ["0", 0, "0wd", "0s", "0d"])
def test_duration__zero_sla_is_refused(zero: object) -> None:
    with pytest.raises(ValueError, match="malformed duration"):
        parse_duration(zero)


@pytest.mark.parametrize("signed_text", ["-3wd", "+5wd"])
def test_duration__sign_on_an_sla_is_refused(signed_text: str) -> None:
    with pytest.raises(ValueError, match="a stage SLA takes no sign"):
        parse_duration(signed_text)


@pytest.mark.parametrize(
    "bad",
    ["", "wd", "5", 5, "5 wd", "5w", "5WD", "1.5h", "5dw", "--3wd", "+-3wd", "3wd-", "1234567s",
     "five days", None, 1.5, True, ["5wd"]],
)  # fmt: skip
def test_duration__malformed(bad: object) -> None:
    for signed in (False, True):
        with pytest.raises(ValueError, match="malformed duration"):
            parse_duration(bad, signed=signed)


def test_duration__renders_with_its_sign() -> None:
    assert [str(parse_duration(t, signed=True)) for t in ("-3wd", "0", "5wd", "+2h")] == [
        "-3wd", "0", "+5wd", "+2h",
    ]  # fmt: skip
