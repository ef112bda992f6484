"""Unit tests run the Engine on the in-memory store, with every time passed in.

The ledger used throughout: a unit tree HQ > CITY > DIST, a sibling CITY2 (whose code
starts like CITY, to catch prefix matching) and an unrelated root OTHER; one actor per role.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest

from rectiflow import Engine

SH = ZoneInfo("Asia/Shanghai")
#: Monday 2 March 2026, 09:00 in Shanghai: an ordinary working day.
MONDAY = dt.datetime(2026, 3, 2, 9, 0, tzinfo=SH)


@pytest.fixture
def engine() -> Iterator[Engine]:
    with Engine("memory://", tz="Asia/Shanghai", clock=lambda: MONDAY.astimezone(dt.UTC)) as eng:
        eng.init()
        eng.add_unit("HQ", "Headquarters")
        eng.add_unit("CITY", "City bureau", "HQ")
        eng.add_unit("DIST", "District office", "CITY")
        eng.add_unit("CITY2", "Second city bureau", "HQ")
        eng.add_unit("OTHER", "Another province")
        eng.add_actor("sup", ["supervisor"])  # no unit: acts everywhere
        eng.add_actor("city_sup", ["supervisor"], ["CITY"])
        eng.add_actor("rep", ["reporter"], ["CITY"])
        eng.add_actor("own", ["owner"], ["DIST"])
        eng.add_actor("other_own", ["owner"], ["OTHER"])
        eng.add_actor("head", ["head"])
        eng.add_actor("rev", ["reviewer"])
        eng.add_actor("ver", ["verifier"])
        yield eng
