"""What the integration tests share: the ledger they run on, the time helpers, and the
worker functions of the processes they spawn.

Worker functions live here, not in a test module, so that a process started with the
"spawn" method can import them by name; each writes its results as JSON to a file.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from rectiflow import Engine
from rectiflow.engine.errors import ConflictError, TransitionRejected

SHANGHAI = ZoneInfo("Asia/Shanghai")

# The backends of conftest.py's db_url and sql_url; a test narrows ``ledger`` to the SQL ones
# with @pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True).
SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
ALL_BACKENDS = ["memory", *SQL_BACKENDS]

# A workflow whose two states cycle for ever and have no deadline: every fire is a real
# transition, so a stress test can fire as often as it likes.
PINGPONG = """\
name: pingpong
version: 1
title: {en: Ping-pong, zh: 往返}
initial: a
roles: [mover]
permissions:
  open: [mover]
states:
  a: {en: A, zh: 甲}
  b: {en: B, zh: 乙}
  done: {en: Done, zh: 完成, final: true}
transitions:
  - {trigger: go, source: a, dest: b, roles: [mover]}
  - {trigger: back, source: b, dest: a, roles: [mover]}
  - {trigger: finish, source: a, dest: done, roles: [mover]}
"""

BARRIER_TIMEOUT = 120


# --- time ------------------------------------------------------------------------------


def local(year: int, month: int, day: int, hour: int = 9, minute: int = 0) -> dt.datetime:
    """A moment in Asia/Shanghai, the engine's default time zone."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def end_of_day(year: int, month: int, day: int) -> dt.datetime:
    """Where a working-day deadline falls: 23:59:59 local, as UTC."""
    return dt.datetime(year, month, day, 23, 59, 59, tzinfo=SHANGHAI).astimezone(dt.UTC)


#: Monday 3 March 2025, 09:00 in Shanghai. March 2025 has no public holiday, so working
#: days are Monday to Friday around it.
MONDAY = local(2025, 3, 3)


# --- the ledger ---------------------------------------------------------------------------


def setup_ledger(engine: Engine) -> Engine:
    """Give an initialised engine a unit tree and one actor per role; return it.

    PROV ─┬─ CITY1 ── COUNTY1
          ├─ CITY10        (a sibling whose code starts like CITY1's)
          └─ CITY2
    """
    engine.add_unit("PROV", "Province")
    engine.add_unit("CITY1", "City 1", parent="PROV")
    engine.add_unit("COUNTY1", "County 1", parent="CITY1")
    engine.add_unit("CITY10", "City 10", parent="PROV")
    engine.add_unit("CITY2", "City 2", parent="PROV")
    engine.add_actor("sup", ["supervisor"])  # no unit: acts everywhere
    engine.add_actor("rep", ["reporter"], ["CITY1"])
    engine.add_actor("own", ["owner"], ["CITY1"])
    engine.add_actor("head", ["head"], ["CITY1"])
    engine.add_actor("rev", ["reviewer"])
    engine.add_actor("ver", ["verifier"])
    return engine


def open_case(engine: Engine, unit: str = "CITY1", *, now: dt.datetime = MONDAY, **kw: Any) -> int:
    """Open a case as the supervisor; return its id."""
    return engine.open_case("sup", unit=unit, title=f"problem in {unit}", now=now, **kw).id


# --- worker processes ---------------------------------------------------------------------


def _write(out: str, data: dict[str, Any]) -> None:
    Path(out).write_text(json.dumps(data), "utf-8")


def race_confirm(url: str, actor: str, case_ids: list[int], barrier: Any, out: str) -> None:
    """For each case: read its version, wait for the other process, then confirm it with
    that version. Records "won" or "conflict" per case."""
    results: list[str] = []
    with Engine(url) as engine:
        for case_id in case_ids:
            version = engine.get_case(case_id).version
            barrier.wait(BARRIER_TIMEOUT)
            try:
                engine.fire(case_id, "confirm", actor, expect_version=version)
            except ConflictError:
                results.append("conflict")
            else:
                results.append("won")
    _write(out, {"results": results})


def stress_fire(
    url: str, index: int, case_ids: list[int], fires: int, barrier: Any, out: str
) -> None:
    """Fire go/back at random shared cases. Half the fires carry the version just read
    (a stale one ends in ConflictError); the other half none (a stale state ends in
    TransitionRejected). Every accepted fire is recorded with its comment and history seq."""
    rng = random.Random(index)
    actor = f"w{index}"
    accepted: list[tuple[int, int, str]] = []
    conflicts = rejected = 0
    errors: list[str] = []
    with Engine(url) as engine:
        barrier.wait(BARRIER_TIMEOUT)
        for n in range(fires):
            case_id = rng.choice(case_ids)
            seen = engine.get_case(case_id)
            trigger = "go" if seen.state == "a" else "back"
            comment = f"{actor}#{n}"
            try:
                after = engine.fire(
                    case_id, trigger, actor, comment=comment,
                    expect_version=seen.version if n % 2 == 0 else None,
                )  # fmt: skip
            except ConflictError:
                conflicts += 1
            except TransitionRejected:
                rejected += 1
            except Exception as exc:  # anything else is a bug the test must show
                errors.append(repr(exc))
            else:
                accepted.append((case_id, after.history_seq, comment))
    _write(
        out,
        {"accepted": accepted, "conflicts": conflicts, "rejected": rejected, "errors": errors},
    )


def init_database(url: str, barrier: Any, out: str) -> None:
    """Run `init` (migrations + shipped workflows) at the same moment as the others."""
    barrier.wait(BARRIER_TIMEOUT)
    try:
        with Engine(url) as engine:
            engine.init()
    except Exception as exc:
        _write(out, {"error": f"{type(exc).__name__}: {exc}"})
    else:
        _write(out, {"error": None})
