"""The history of a case is a hash chain; altering any stored entry breaks it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import pytest

from rectiflow import Engine, IntegrityError
from rectiflow.engine import history
from rectiflow.store.memory import MemoryStore

NOW = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)


@pytest.fixture
def closed_case(engine: Engine) -> int:
    case = engine.open_case("sup", unit="DIST", title="Permits issued late", now=NOW)
    engine.fire(case.id, "confirm", "sup", now=NOW)
    measure = engine.add_measure(case.id, "own", "Publish the timetable", now=NOW)
    engine.fire(case.id, "approve_plan", "rev", now=NOW)
    engine.complete_measure(measure.id, "own", now=NOW)
    engine.fire(case.id, "submit", "own", now=NOW)
    engine.fire(case.id, "reject", "ver", comment="no evidence", now=NOW)
    engine.fire(case.id, "submit", "own", now=NOW)
    engine.fire(case.id, "accept", "ver", now=NOW)
    return case.id


def tamper(engine: Engine, case_id: int, seq: int, **changes: object) -> None:
    store = engine.store
    assert isinstance(store, MemoryStore)
    entries = store._history[case_id]
    entries[seq - 1] = dataclasses.replace(entries[seq - 1], **changes)


def test_history__chain_verifies(engine: Engine, closed_case: int) -> None:
    entries = engine.history(closed_case)
    # the measure added (3) and completed (5) are entries of the chain too
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert [e.trigger for e in entries][2:5] == ["measure_added", "approve_plan", "measure_done"]
    assert entries[0].prev_hash == history.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert engine.verify_history(closed_case) == 9
    other = engine.open_case("sup", unit="OTHER", title="Second", now=NOW)
    engine.pause(other.id, "sup", comment="waiting for the court", now=NOW)
    assert engine.verify_history() == 11  # every case


@pytest.mark.parametrize(
    "change",
    [
        {"comment": "evidence was fine"},
        {"actor": "sup"},
        {"dest": "closed"},
        {"at": NOW + dt.timedelta(seconds=1)},
    ],
)
def test_history__altered_entry_is_named(
    engine: Engine, closed_case: int, change: dict[str, object]
) -> None:
    tamper(engine, closed_case, 5, **change)
    with pytest.raises(IntegrityError) as info:
        engine.verify_history(closed_case)
    assert (info.value.case_id, info.value.seq) == (closed_case, 5)
    assert str(info.value) == (
        f"history of case {closed_case} is broken at seq 5: the entry was altered (hash mismatch)"
    )
    with pytest.raises(IntegrityError):
        engine.verify_history()


def test_history__rehashed_entry_breaks_the_next_link(engine: Engine, closed_case: int) -> None:
    old = engine.history(closed_case)[2]
    forged = history.make_entry(
        old.case_id, old.seq, old.trigger, old.source, old.dest, "sup", old.at, old.comment,
        old.prev_hash, old.data,
    )  # fmt: skip
    tamper(engine, closed_case, 3, actor=forged.actor, hash=forged.hash)
    with pytest.raises(IntegrityError, match="broken at seq 4: prev_hash does not match"):
        engine.verify_history(closed_case)


def test_history__missing_entry_is_named(engine: Engine, closed_case: int) -> None:
    store = engine.store
    assert isinstance(store, MemoryStore)
    del store._history[closed_case][3]
    with pytest.raises(IntegrityError, match=f"case {closed_case} is broken at seq 4: entry 4"):
        engine.verify_history(closed_case)
