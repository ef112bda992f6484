"""The compiled fast path (rectiflow/store/fast.py) on a SQLite file and on PostgreSQL:
statements compiled once per store and keyed by the statement object, typed parameters
converted both ways as Core would."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from integration_support import MONDAY, PINGPONG, SQL_BACKENDS

from rectiflow import Engine
from rectiflow.store import fast
from rectiflow.store.sql import SqlStore
from rectiflow.store.tables import calendar_t, case_t

pytestmark = pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True)

_CASE_TIMES = sa.select(case_t.c.id, case_t.c.due_at, case_t.c.due_provisional).where(
    case_t.c.id == sa.bindparam("id")
)
_SET_CASE_TIMES = case_t.update().where(case_t.c.id == sa.bindparam("where_id"))
_DUE_BEFORE = (
    sa.select(case_t.c.id)
    .where(case_t.c.due_at < sa.bindparam("now"), case_t.c.due_provisional.is_(True))
    .order_by(case_t.c.id)
)


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL of every statement the fast path compiles from now on."""
    seen: list[str] = []

    class Counted(fast.Prepared):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            seen.append(self.sql)

    monkeypatch.setattr(fast, "Prepared", Counted)
    return seen


def _store(engine: Engine) -> SqlStore:
    assert isinstance(engine.store, SqlStore)
    return engine.store


def _run(store: SqlStore, stmt: Any, values: dict[str, Any], keys: Any = None) -> Any:
    with store._cursor() as cursor:
        prepared = store.statements(stmt, keys)
        return (
            prepared.dicts(cursor, values)
            if stmt.is_select
            else prepared.execute(cursor, values).rowcount
        )


def test_statement__compiled_once_and_reused(ledger: Engine, compiles: list[str]) -> None:
    store = _store(ledger)
    case_id = ledger.open_case("sup", unit="CITY1", title="t", now=MONDAY).id
    before = len(compiles)
    first = store.statements(_CASE_TIMES)
    assert store.statements(_CASE_TIMES) is first
    assert compiles[before:] == [first.sql]
    for _ in range(3):
        assert [row["id"] for row in _run(store, _CASE_TIMES, {"id": case_id})] == [case_id]
    assert len(compiles) == before + 1

    # A change to a case compiles its statements on the first fire and never again.
    ledger.register_workflow(PINGPONG, "pingpong.yaml")
    ledger.add_actor("mover", ["mover"])
    moving = ledger.open_case("mover", unit="PROV", title="p", workflow="pingpong").id
    ledger.fire(moving, "go", "mover")
    after_first_fire = len(store.statements)
    compiled = len(compiles)
    for trigger in ["back", "go", "back"]:
        ledger.fire(moving, trigger, "mover")
    assert len(store.statements) == after_first_fire
    assert len(compiles) == compiled
    assert [e.dest for e in ledger.store.list_history(moving)] == ["a", "b", "a", "b", "a"]


def test_sweep__one_claim_statement_for_every_batch_size(
    ledger: Engine, compiles: list[str]
) -> None:
    """The claim's LIMIT is a bound parameter, not a new statement per batch size."""
    for unit in ["CITY1", "CITY2", "CITY10"]:
        ledger.open_case("sup", unit=unit, title=unit, now=MONDAY)
    first = ledger.escalate_due(MONDAY + dt.timedelta(days=3), batch_size=1)
    assert first.cases == 3
    compiled = len(compiles)
    # warn, not yet supervise (which raises the case: an update of its own, compiled once)
    later = ledger.escalate_due(MONDAY + dt.timedelta(days=10), batch_size=2)
    assert later.cases == 3
    assert later.fired > 0
    assert ledger.escalate_due(MONDAY + dt.timedelta(days=10), batch_size=500).fired == 0
    assert len(compiles) == compiled


def test_statement__same_text_twice_is_two_entries(ledger: Engine, compiles: list[str]) -> None:
    store = _store(ledger)
    twin = sa.select(calendar_t.c.day).order_by(calendar_t.c.day)
    other = sa.select(calendar_t.c.day).order_by(calendar_t.c.day)
    assert str(twin) == str(other)
    before = len(store.statements)
    a, b = store.statements(twin), store.statements(other)
    assert a is not b
    assert a.sql == b.sql
    assert store.statements(twin) is a
    assert store.statements(other) is b
    assert len(store.statements) == before + 2
    assert len(compiles) == 2


def test_update__keyed_by_statement_and_columns(ledger: Engine) -> None:
    store = _store(ledger)
    case_id = ledger.open_case("sup", unit="CITY1", title="t", now=MONDAY).id
    where = {"where_id": case_id}
    due = store.statements(_SET_CASE_TIMES, ["due_at"])
    both = store.statements(_SET_CASE_TIMES, ["due_at", "due_provisional"])
    assert due is not both
    assert store.statements(_SET_CASE_TIMES, ("due_at",)) is due  # a list or a tuple
    assert _run(store, _SET_CASE_TIMES, {"due_at": None, **where}, ["due_at"]) == 1
    assert _run(store, _CASE_TIMES, {"id": case_id})[0]["due_at"] is None


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai", "America/St_Johns"])
def test_typed_parameters__round_trip(ledger: Engine, zone: str) -> None:
    store = _store(ledger)
    ids = [ledger.open_case("sup", unit="CITY1", title=f"t{i}", now=MONDAY).id for i in (0, 1)]
    due = dt.datetime(2025, 3, 5, 23, 59, 59, 123456, tzinfo=ZoneInfo(zone))
    keys = ["due_at", "due_provisional"]
    for case_id, provisional in zip(ids, [True, False], strict=True):
        values = {"due_at": due, "due_provisional": provisional, "where_id": case_id}
        assert _run(store, _SET_CASE_TIMES, values, keys) == 1

    rows = [_run(store, _CASE_TIMES, {"id": case_id})[0] for case_id in ids]
    assert [row["due_at"] for row in rows] == [due, due]  # the same instant ...
    assert all(row["due_at"].utcoffset() == dt.timedelta(0) for row in rows)  # ... in UTC
    assert [row["due_provisional"] for row in rows] == [True, False]
    assert all(type(row["due_provisional"]) is bool for row in rows)

    # An aware datetime as a bound parameter compares as the instant, in any zone.
    later = (due + dt.timedelta(seconds=1)).astimezone(ZoneInfo("Pacific/Kiritimati"))
    assert _run(store, _DUE_BEFORE, {"now": later}) == [{"id": ids[0]}]
    assert _run(store, _DUE_BEFORE, {"now": due}) == []
    # The store's own reads (Core, not the fast path) see what the fast path wrote.
    case = store.get_case(ids[0])
    assert case is not None
    assert case.due_at == due
    assert case.due_provisional is True


def test_typed_parameters__naive_datetime_refused(ledger: Engine) -> None:
    store = _store(ledger)
    with pytest.raises(ValueError, match="naive datetime"):
        _run(store, _DUE_BEFORE, {"now": dt.datetime(2025, 3, 5)})
