"""The in-memory store keeps the store contract. The same tests run on a SQLite file as the
reference: what the memory store does, the SQL store does."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from rectiflow import ConflictError, NotFound, ValidationError
from rectiflow.engine import history
from rectiflow.engine.escalation import Notice
from rectiflow.engine.records import NewCase
from rectiflow.engine.storage import EscalationPlan, Store
from rectiflow.engine.types import Case, Escalation, WorkflowRecord
from rectiflow.store import open_store
from rectiflow.store.memory import MemoryStore

NOW = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
RECORD = WorkflowRecord("wf", 1, "d1", "source", NOW)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    store.create_schema()
    store.register_workflow(RECORD)
    store.add_unit("A", "Province", None)
    store.add_unit("B", "City", "A")
    store.add_unit("AB", "Sibling", None)
    yield store
    store.close()


def open_case(store: Store, unit: str = "B", *, hours: int = 0, **values: Any) -> Case:
    at = NOW + dt.timedelta(hours=hours)
    row = {
        "workflow": "wf", "workflow_version": 1, "unit": unit, "title": "t", "severity": "low",
        "state": "s1", "created_at": at, "stage_entered_at": at,
        "due_at": at + dt.timedelta(days=5), "next_escalation_at": at + dt.timedelta(days=2),
        **values,
    }  # fmt: skip
    return store.open_case(
        NewCase(**row),
        lambda cid: history.make_entry(cid, 1, "open", None, "s1", "x", at, None, history.GENESIS),
    )


def test_store__memory_url_opens_the_memory_store() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)


def test_store__units_form_a_tree(store: Store) -> None:
    assert store.add_unit("C", "District", "B").path == "/A/B/C/"
    assert [(u.code, u.path) for u in store.list_units()] == [
        ("A", "/A/"), ("B", "/A/B/"), ("C", "/A/B/C/"), ("AB", "/AB/"),
    ]  # fmt: skip
    assert store.get_unit("B") == store.list_units()[1]
    assert store.get_unit("Z") is None
    with pytest.raises(ValidationError, match="unit B already exists"):
        store.add_unit("B", "again", None)
    with pytest.raises(NotFound, match="no unit Z"):
        store.add_unit("D", "orphan", "Z")
    assert len(store.list_units()) == 4


def test_store__actors(store: Store) -> None:
    actor = store.add_actor("zoe", ["owner", "head"], ["B", "B"])
    assert (actor.roles, actor.units, actor.unit_paths) == (("owner", "head"), ("B",), ("/A/B/",))
    assert actor.covers("/A/B/C/")
    assert not actor.covers("/A/")
    assert store.add_actor("adam", ["supervisor"], []).unit_paths == ()
    assert [a.name for a in store.list_actors()] == ["adam", "zoe"]
    assert store.get_actor("zoe") == actor
    assert store.get_actor("nobody") is None
    with pytest.raises(ValidationError, match="actor zoe already exists"):
        store.add_actor("zoe", ["owner"], [])
    with pytest.raises(NotFound, match="no unit Z"):
        store.add_actor("eve", ["owner"], ["Z"])
    assert store.get_actor("eve") is None


def test_store__workflows_are_immutable(store: Store) -> None:
    assert store.register_workflow(RECORD) is False
    with pytest.raises(ValidationError, match="wf@1 is already registered with different content"):
        store.register_workflow(dataclasses.replace(RECORD, digest="d2"))
    assert store.register_workflow(dataclasses.replace(RECORD, version=3, digest="d3"))
    assert store.register_workflow(dataclasses.replace(RECORD, name="aa", digest="d4"))
    assert [(r.name, r.version) for r in store.list_workflows()] == [
        ("aa", 1), ("wf", 1), ("wf", 3),
    ]  # fmt: skip
    assert store.get_workflow("wf") == dataclasses.replace(RECORD, version=3, digest="d3")
    assert store.get_workflow("wf", 1) == RECORD
    assert store.get_workflow("wf", 2) is None
    assert store.get_workflow("none") is None


def test_store__open_case(store: Store) -> None:
    case = open_case(store)
    [entry] = store.list_history(case.id)
    assert (case.id, case.unit_path, case.history_seq, case.last_hash) == (
        1,
        "/A/B/",
        1,
        entry.hash,
    )
    assert (case.visit, case.next_level, case.pause_credit, case.paused_at) == (1, 0, 0, None)
    assert store.get_case(case.id) == case
    assert store.get_case(99) is None
    assert open_case(store).id == 2
    assert list(store.iter_case_ids()) == [1, 2]


def test_store__case_tx_updates_and_appends_history(store: Store) -> None:
    case = open_case(store)
    entry = history.make_entry(case.id, 2, "go", "s1", "s2", "x", NOW, "c", case.last_hash)
    with store.case_tx(case.id) as tx:
        assert tx.case == case
        updated = tx.update({"state": "s2", "visit": 2}, entry)
    assert (updated.state, updated.visit, updated.version) == ("s2", 2, 2)
    assert (updated.history_seq, updated.last_hash) == (2, entry.hash)
    assert store.get_case(case.id) == updated
    assert store.list_history(case.id)[-1] == entry
    with pytest.raises(NotFound, match="no case 99"), store.case_tx(99):
        pass


def test_store__update_on_a_stale_version_conflicts(store: Store) -> None:
    case = open_case(store)
    with store.case_tx(case.id) as tx:
        tx.update({"state": "changed"})
    with pytest.raises(ConflictError, match="case 1 changed: it was changed concurrently"):  # noqa: PT012
        with store.case_tx(case.id) as tx:
            tx.case = case  # as read before the change above
            tx.update({"state": "lost update"})
    assert (store.get_case(case.id).state, store.get_case(case.id).version) == ("changed", 2)


def test_store__case_tx_rolls_back_everything_on_error(store: Store) -> None:
    case = open_case(store)
    other = open_case(store)
    with store.case_tx(case.id) as tx:
        first = tx.add_measure("first", "own", None)
    with store.case_tx(other.id) as tx:
        foreign = tx.add_measure("other case", "own", None)
    before = (
        store.get_case(case.id), store.list_history(case.id), store.list_measures(case.id),
        store.list_notes(case.id),
    )  # fmt: skip
    case = before[0]
    entry = history.make_entry(case.id, 2, "go", "s1", "s2", "x", NOW, None, case.last_hash)
    with pytest.raises(RuntimeError, match="boom"), store.case_tx(case.id) as tx:  # noqa: PT012
        tx.update({"state": "s2"}, entry)
        tx.add_measure("second", "own", NOW)
        tx.complete_measure(first.id, NOW, "/evidence", "ab" * 32)
        tx.add_note("own", NOW, "a note")
        assert [m.text for m in tx.measures()] == ["first", "second"]
        raise RuntimeError("boom")
    after = (
        store.get_case(case.id), store.list_history(case.id), store.list_measures(case.id),
        store.list_notes(case.id),
    )  # fmt: skip
    assert after == before
    assert store.get_measure(foreign.id) == foreign
    with pytest.raises(NotFound, match=f"no measure {foreign.id}"), store.case_tx(case.id) as tx:
        tx.complete_measure(foreign.id, NOW, None, None)  # a measure of another case
    assert store.get_case(case.id) == before[0]


def test_store__measures_and_notes(store: Store) -> None:
    case = open_case(store)
    with store.case_tx(case.id) as tx:
        m1 = tx.add_measure("first", "own", NOW)
        m2 = tx.add_measure("second", "own", None)
        done = tx.complete_measure(m1.id, NOW, "/e.pdf", "ab" * 32)
        late = tx.add_note("own", NOW + dt.timedelta(hours=1), "later")
        early = tx.add_note("head", NOW, "earlier")
        # the version moves with the update (and history entry) that goes with a change
        assert tx.case.version == 1
    assert (m1.id, m2.id, done.done_at, done.evidence_path) == (1, 2, NOW, "/e.pdf")
    assert store.list_measures(case.id) == [done, m2]
    assert store.get_measure(m2.id) == m2
    assert store.get_measure(99) is None
    assert store.list_notes(case.id) == [early, late]


def test_store__list_cases(store: Store) -> None:
    a = open_case(store, "A")
    b = open_case(store, "B", state="s2", due_provisional=True)
    sibling = open_case(store, "AB")
    closed = open_case(store, "B", state="end", due_at=None, next_escalation_at=None)
    assert store.list_cases() == [a, b, sibling, closed]
    assert store.list_cases(unit_paths=["/A/"]) == [a, b, closed]  # not /AB/
    assert store.list_cases(unit_paths=["/A/B/", "/AB/"]) == [b, sibling, closed]
    assert store.list_cases(state="s2") == [b]
    assert store.list_cases(provisional_only=True) == [b]


def plan_all(level: str = "remind", next_at: dt.datetime | None = None) -> Any:
    def plan(case: Case, co_units: Sequence[str] = ()) -> EscalationPlan:
        esc = Escalation(case.id, case.visit, case.state, level, NOW, NOW)
        key = f"esc:{case.id}:{case.visit}:{level}:owner"
        return EscalationPlan([esc], [Notice(level, "owner", key, "own")], 1, next_at)

    return plan


def test_store__escalate_batch_records_each_level_once(store: Store) -> None:
    later = open_case(store, hours=2)
    first = open_case(store)
    paused = open_case(store, paused_at=NOW)
    not_due = open_case(store, next_escalation_at=NOW + dt.timedelta(days=30))
    now = NOW + dt.timedelta(days=3)
    assert store.next_escalation_at() == first.next_escalation_at
    assert [c.id for c in store.due_cases(now, 0, 10)] == [later.id, first.id]
    assert [c.id for c in store.due_cases(now, later.id, 10)] == [first.id]
    claimed, recorded = store.escalate_batch(now, 1, plan_all())  # the earliest due first
    assert (claimed, [e.case_id for e in recorded]) == (1, [first.id])
    assert store.get_case(first.id).next_escalation_at is None
    assert store.get_case(first.id).next_level == 1
    # A repeated claim (a crash before the case row moved on) records nothing twice.
    with store.case_tx(first.id) as tx:
        tx.update({"next_level": 0, "next_escalation_at": NOW})
    claimed, recorded = store.escalate_batch(now, 10, plan_all(next_at=now))
    assert (claimed, [e.case_id for e in recorded]) == (2, [later.id])
    assert [(e.case_id, e.level) for e in store.list_escalations()] == [
        (first.id, "remind"), (later.id, "remind"),
    ]  # fmt: skip
    assert [n.key for n in store.list_notifications()] == [
        f"esc:{first.id}:1:remind:owner", f"esc:{later.id}:1:remind:owner",
    ]  # fmt: skip
    assert store.list_escalations(later.id) == [Escalation(later.id, 1, "s1", "remind", NOW, NOW)]
    assert store.list_escalations(paused.id) == store.list_escalations(not_due.id) == []
    assert store.next_escalation_at() == now  # the paused case does not count


def test_store__escalate_batch_writes_nothing_when_planning_fails(store: Store) -> None:
    open_case(store)
    open_case(store)

    def plan(case: Case, co_units: Sequence[str]) -> EscalationPlan:
        if case.id == 2:
            raise RuntimeError("no plan")
        return plan_all()(case, co_units)  # type: ignore[no-any-return]

    with pytest.raises(RuntimeError, match="no plan"):
        store.escalate_batch(NOW + dt.timedelta(days=3), 10, plan)
    assert store.list_escalations() == []
    assert store.list_notifications() == []
    assert store.get_case(1).next_level == 0


def test_store__notifications_are_written_once_per_key(store: Store) -> None:
    a, b = open_case(store), open_case(store)
    rows = [
        (a.id, "dispatch", None, "owner", "k1", "own"), (b.id, "dispatch", None, "head", "k2", None)
    ]  # fmt: skip
    assert store.add_notifications(rows, NOW) == 2
    assert (
        store.add_notifications([*rows, (a.id, "dispatch", None, "owner", "k3", "own")], NOW) == 1
    )
    assert store.add_notifications([], NOW) == 0
    assert [(n.key, n.actor) for n in store.list_notifications()] == [
        ("k1", "own"),
        ("k2", None),
        ("k3", "own"),
    ]
    assert [n.key for n in store.list_notifications(actor="own")] == ["k1", "k3"]
    assert [n.key for n in store.list_notifications()] == ["k1", "k2", "k3"]
    assert [n.key for n in store.list_notifications(case_id=a.id)] == ["k1", "k3"]
    assert store.list_notifications(kind="escalation") == []
    assert store.list_notifications(b.id, "dispatch")[0].role == "head"


def test_store__cases_without_note_since(store: Store) -> None:
    noted, quiet, old_note = open_case(store), open_case(store), open_case(store)
    open_case(store, due_at=None)  # closed: no reminder
    with store.case_tx(noted.id) as tx:
        tx.add_note("own", NOW, "done this month")
    with store.case_tx(old_note.id) as tx:
        tx.add_note("own", NOW - dt.timedelta(days=40), "last month")
    found = store.cases_without_note_since(NOW - dt.timedelta(days=1), 0, 10)
    assert [c.id for c in found] == [quiet.id, old_note.id]
    assert [c.id for c in store.cases_without_note_since(NOW, quiet.id, 10)] == [old_note.id]
    assert [c.id for c in store.cases_without_note_since(NOW, 0, 1)] == [quiet.id]


def test_store__calendar_rows_are_upserted(store: Store) -> None:
    assert store.calendar_days() == []
    days = [(dt.date(2027, 1, 2), True), (dt.date(2027, 1, 1), False)]
    assert store.load_calendar(days) == 2
    assert store.load_calendar([(dt.date(2027, 1, 2), False)]) == 1
    assert store.load_calendar([]) == 0
    assert store.calendar_days() == [(dt.date(2027, 1, 1), False), (dt.date(2027, 1, 2), False)]


def test_memory_store__case_tx_holds_the_lock() -> None:
    store = MemoryStore()
    store.register_workflow(RECORD)
    store.add_unit("B", "City", None)
    case = open_case(store)
    acquired: list[bool] = []

    def try_lock() -> None:
        acquired.append(store._lock.acquire(blocking=False))
        if acquired[-1]:
            store._lock.release()

    with store.case_tx(case.id):
        thread = threading.Thread(target=try_lock)
        thread.start()
        thread.join()
    thread = threading.Thread(target=try_lock)
    thread.start()
    thread.join()
    assert acquired == [False, True]
