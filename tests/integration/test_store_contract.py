"""The contract suite: the engine and its store behave the same on every backend.

Each test runs on memory, a SQLite file and a real PostgreSQL (fixtures in conftest.py),
on the shared ledger (integration_support.setup_ledger). Times are passed explicitly;
March 2025 has no public holiday, so working days are Monday to Friday there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from integration_support import MONDAY, PINGPONG, SQL_BACKENDS, end_of_day, local, open_case

from rectiflow import (
    ConflictError,
    Engine,
    IntegrityError,
    NotFound,
    PermissionDenied,
    TransitionRejected,
    ValidationError,
)


def _footprint(engine: Engine, case_id: int) -> tuple[object, ...]:
    """Everything a refused call must leave untouched."""
    return (
        engine.get_case(case_id),
        engine.history(case_id),
        engine.measures(case_id),
        engine.notes(case_id),
    )


# --- schema, units, actors, workflows ------------------------------------------------------


def test_init__idempotent(engine: Engine) -> None:
    engine.add_unit("HQ", "Headquarters")
    shipped = [("rectification", 1), ("rectification", 2)]
    assert [(w.name, w.version) for w in engine.init()] == shipped
    engine.init()
    assert [(w.name, w.version) for w in engine.list_workflows()] == shipped
    assert [u.code for u in engine.list_units()] == ["HQ"]


def test_units__tree_with_paths(ledger: Engine) -> None:
    paths = {u.code: (u.parent, u.path) for u in ledger.list_units()}
    assert paths == {
        "PROV": (None, "/PROV/"),
        "CITY1": ("PROV", "/PROV/CITY1/"),
        "COUNTY1": ("CITY1", "/PROV/CITY1/COUNTY1/"),
        "CITY10": ("PROV", "/PROV/CITY10/"),
        "CITY2": ("PROV", "/PROV/CITY2/"),
    }
    with pytest.raises(ValidationError):
        ledger.add_unit("CITY1", "again", parent="PROV")
    with pytest.raises(NotFound):
        ledger.add_unit("TOWN", "Town", parent="NOWHERE")


def test_actors__roles_and_units(ledger: Engine) -> None:
    own = ledger.get_actor("own")
    assert (own.roles, own.units) == (("owner",), ("CITY1",))
    assert ledger.get_actor("sup").units == ()
    assert [a.name for a in ledger.list_actors()] == ["head", "own", "rep", "rev", "sup", "ver"]
    ledger.add_actor("multi", ["owner", "head"], ["CITY2", "CITY10"])
    multi = ledger.get_actor("multi")
    assert set(multi.roles) == {"owner", "head"}
    assert set(multi.units) == {"CITY2", "CITY10"}
    with pytest.raises(ValidationError):
        ledger.add_actor("x", ["astronaut"])
    with pytest.raises(NotFound):
        ledger.add_actor("y", ["owner"], ["NOWHERE"])
    with pytest.raises(ValidationError):
        ledger.add_actor("own", ["owner"])
    with pytest.raises(NotFound):
        ledger.get_actor("nobody")


def test_actor_scope__unit_and_descendants_only(ledger: Engine) -> None:
    in_county = open_case(ledger, "COUNTY1")
    in_city10 = open_case(ledger, "CITY10")
    ledger.add_measure(in_county, "own", "fix it", now=MONDAY)  # CITY1 covers COUNTY1
    with pytest.raises(PermissionDenied):
        ledger.add_measure(in_city10, "own", "fix it", now=MONDAY)
    with pytest.raises(PermissionDenied):  # a reporter of CITY1 cannot open in CITY2
        ledger.open_case("rep", unit="CITY2", title="t", now=MONDAY)
    assert ledger.open_case("rep", unit="COUNTY1", title="t", now=MONDAY).unit == "COUNTY1"


def test_register_workflow__same_content_accepted(engine: Engine) -> None:
    first = engine.register_workflow(PINGPONG, "pingpong.yaml")
    again = engine.register_workflow(PINGPONG, "pingpong.yaml")
    assert (again.name, again.version, again.digest) == (first.name, first.version, first.digest)
    records = [(w.name, w.version) for w in engine.list_workflows()]
    assert records == [("pingpong", 1), ("rectification", 1), ("rectification", 2)]


def test_register_workflow__changed_content_refused(engine: Engine) -> None:
    engine.register_workflow(PINGPONG, "pingpong.yaml")
    changed = PINGPONG.replace("title: {en: Ping-pong", "title: {en: Table tennis")
    with pytest.raises(ValidationError, match="immutable"):
        engine.register_workflow(changed, "pingpong.yaml")
    assert engine.workflow("pingpong", 1).title["en"] == "Ping-pong"
    bumped = engine.register_workflow(changed.replace("version: 1", "version: 2"), "v2.yaml")
    assert engine.workflow("pingpong").version == bumped.version == 2


# --- cases ----------------------------------------------------------------------------------


def test_open_case__initial_state_deadline_and_history(ledger: Engine) -> None:
    case = ledger.open_case(
        "rep", unit="CITY1", title="  slow approvals ", severity="high", category="service",
        source="audit", description="three weeks per permit", now=MONDAY,
    )  # fmt: skip
    assert (case.state, case.version, case.workflow, case.workflow_version) == (
        "identify", 1, "rectification", 2,
    )  # fmt: skip
    assert (case.title, case.severity, case.category, case.source) == (
        "slow approvals", "high", "service", "audit",
    )  # fmt: skip
    assert case.due_at == end_of_day(2025, 3, 10)  # 5 working days after Monday 3 March
    assert case.due_provisional is False
    assert case.next_escalation_at == end_of_day(2025, 3, 5)  # remind: 3 working days before
    assert ledger.get_case(case.id) == case
    [entry] = ledger.history(case.id)
    assert (entry.seq, entry.trigger, entry.source, entry.dest, entry.actor) == (
        1, "open", None, "identify", "rep",
    )  # fmt: skip


def test_open_case__refusals(ledger: Engine) -> None:
    with pytest.raises(PermissionDenied):
        ledger.open_case("own", unit="CITY1", title="t", now=MONDAY)
    with pytest.raises(PermissionDenied):
        ledger.open_case("nobody", unit="CITY1", title="t", now=MONDAY)
    with pytest.raises(NotFound):
        ledger.open_case("sup", unit="NOWHERE", title="t", now=MONDAY)
    with pytest.raises(ValidationError):
        ledger.open_case("sup", unit="CITY1", title="t", severity="urgent", now=MONDAY)
    with pytest.raises(NotFound):
        ledger.open_case("sup", unit="CITY1", title="t", workflow="nope", now=MONDAY)
    with pytest.raises(NotFound):
        ledger.get_case(12345)
    assert ledger.list_cases() == []


def test_lifecycle__identify_to_closed(ledger: Engine, tmp_path: Path) -> None:
    case_id = ledger.open_case("rep", unit="COUNTY1", title="queues", now=MONDAY).id
    confirmed = ledger.fire(case_id, "confirm", "sup", expect_version=1, now=local(2025, 3, 4))
    assert confirmed.state == "plan"
    with pytest.raises(TransitionRejected, match="no measure"):
        ledger.fire(case_id, "approve_plan", "rev", now=local(2025, 3, 5))
    first = ledger.add_measure(case_id, "own", "open a second window", due=dt.date(2025, 4, 30),
                               now=local(2025, 3, 5))  # fmt: skip
    second = ledger.add_measure(case_id, "own", "publish waiting times", now=local(2025, 3, 5))
    assert first.due == end_of_day(2025, 4, 30)
    assert ledger.fire(case_id, "approve_plan", "rev", now=local(2025, 3, 6)).state == "rectify"

    evidence = tmp_path / "window.jpg"
    evidence.write_bytes(b"\xff\xd8 photo of the new window")
    done = ledger.complete_measure(first.id, "own", evidence=evidence, now=local(2025, 3, 20))
    assert done.evidence_sha256 == hashlib.sha256(evidence.read_bytes()).hexdigest()
    assert done.evidence_path == str(evidence.resolve())
    assert done.done_at == local(2025, 3, 20)
    with pytest.raises(TransitionRejected, match=f"measure {second.id} is not done"):
        ledger.fire(case_id, "submit", "own", now=local(2025, 3, 21))
    ledger.complete_measure(second.id, "own", now=local(2025, 3, 21))
    assert ledger.fire(case_id, "submit", "own", now=local(2025, 3, 24)).state == "verify"
    with pytest.raises(TransitionRejected, match="comment"):
        ledger.fire(case_id, "reject", "ver", now=local(2025, 3, 25))
    rejected = ledger.fire(case_id, "reject", "ver", comment="queues still long",
                           now=local(2025, 3, 25))  # fmt: skip
    assert (rejected.state, rejected.visit) == ("rectify", 5)
    ledger.fire(case_id, "submit", "own", now=local(2025, 3, 27))
    closed = ledger.fire(case_id, "accept", "ver", now=local(2025, 3, 28))
    lookback = end_of_day(2025, 3, 28) + dt.timedelta(days=90)  # 回头看 (rectification@2)
    assert (closed.state, closed.due_at, closed.next_escalation_at) == ("closed", None, lookback)

    entries = ledger.history(case_id)
    assert [(e.seq, e.trigger, e.source, e.dest) for e in entries] == [
        (1, "open", None, "identify"),
        (2, "confirm", "identify", "plan"),
        (3, "measure_added", "plan", "plan"),
        (4, "measure_added", "plan", "plan"),
        (5, "approve_plan", "plan", "rectify"),
        (6, "measure_done", "rectify", "rectify"),
        (7, "measure_done", "rectify", "rectify"),
        (8, "submit", "rectify", "verify"),
        (9, "reject", "verify", "rectify"),
        (10, "submit", "rectify", "verify"),
        (11, "accept", "verify", "closed"),
    ]
    assert entries[8].comment == "queues still long"
    assert entries[5].data is not None
    assert entries[5].data["evidence_sha256"] == done.evidence_sha256
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    assert ledger.verify_history(case_id) == 11
    assert [m.done for m in ledger.measures(case_id)] == [True, True]
    assert [t.trigger for t in ledger.triggers(case_id, "sup")] == ["reopen", "relapse"]
    with pytest.raises(TransitionRejected):
        ledger.add_measure(case_id, "own", "too late", now=local(2025, 3, 29))
    view = ledger.case_view(case_id, now=local(2025, 3, 29))
    assert (view["state"], len(view["history"]), len(view["measures"])) == ("closed", 11, 2)


def test_triggers__by_state_role_unit_and_guard(ledger: Engine) -> None:
    case_id = open_case(ledger)
    assert [t.trigger for t in ledger.triggers(case_id)] == ["confirm", "dismiss"]
    assert [t.trigger for t in ledger.triggers(case_id, "sup")] == ["confirm", "dismiss"]
    assert ledger.triggers(case_id, "own") == []
    ledger.fire(case_id, "confirm", "sup", now=MONDAY)
    assert ledger.triggers(case_id, "rev") == []  # has_measures fails
    ledger.add_measure(case_id, "own", "m", now=MONDAY)
    assert [t.trigger for t in ledger.triggers(case_id, "rev")] == ["approve_plan"]


def test_list_cases__by_unit_with_descendants_and_by_state(ledger: Engine) -> None:
    ids = {
        unit: open_case(ledger, unit) for unit in ("PROV", "CITY1", "COUNTY1", "CITY10", "CITY2")
    }
    ledger.fire(ids["COUNTY1"], "confirm", "sup", now=MONDAY)
    ledger.fire(ids["CITY2"], "confirm", "sup", now=MONDAY)

    def listed(**kw: Any) -> list[int]:
        return [c.id for c in ledger.list_cases(now=MONDAY, **kw)]

    assert listed(unit="CITY1") == [ids["CITY1"], ids["COUNTY1"]]
    assert listed(unit="PROV") == sorted(ids.values())
    assert listed(unit="COUNTY1") == [ids["COUNTY1"]]
    assert listed(state="plan") == [ids["COUNTY1"], ids["CITY2"]]
    assert listed(unit="CITY1", state="plan") == [ids["COUNTY1"]]
    assert listed(unit="CITY1", state="closed") == []
    assert listed() == sorted(ids.values())
    with pytest.raises(NotFound):
        ledger.list_cases(unit="NOWHERE")


def test_verify_history__all_chains(ledger: Engine) -> None:
    first, second = open_case(ledger), open_case(ledger, "CITY2")
    ledger.fire(first, "confirm", "sup", now=MONDAY)
    ledger.fire(second, "dismiss", "sup", comment="duplicate of another case", now=MONDAY)
    assert ledger.verify_history() == 4
    assert ledger.verify_history(second) == 2
    with pytest.raises(NotFound):
        ledger.verify_history(999)


# --- refusals write nothing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("trigger", "actor", "comment", "error"),
    [
        ("approve_plan", "rev", None, TransitionRejected),  # not valid from identify
        ("dismiss", "sup", None, TransitionRejected),  # comment required
        ("dismiss", "sup", "   ", TransitionRejected),  # a blank comment is no comment
        ("confirm", "rev", None, PermissionDenied),  # lacks the role
        ("confirm", "nobody", None, PermissionDenied),  # unknown actor
        ("no_such_trigger", "sup", None, TransitionRejected),
    ],
)
def test_fire__refused_writes_nothing(
    ledger: Engine, trigger: str, actor: str, comment: str | None, error: type[Exception]
) -> None:
    case_id = open_case(ledger)
    before = _footprint(ledger, case_id)
    with pytest.raises(error):
        ledger.fire(case_id, trigger, actor, comment=comment, now=MONDAY)
    assert _footprint(ledger, case_id) == before


def test_fire__outside_actor_units_writes_nothing(ledger: Engine) -> None:
    ledger.add_actor("sup2", ["supervisor"], ["CITY2"])
    case_id = open_case(ledger, "CITY1")
    before = _footprint(ledger, case_id)
    with pytest.raises(PermissionDenied, match="outside"):
        ledger.fire(case_id, "confirm", "sup2", now=MONDAY)
    assert _footprint(ledger, case_id) == before


def test_fire__guard_refusal_writes_nothing(ledger: Engine) -> None:
    case_id = open_case(ledger)
    ledger.fire(case_id, "confirm", "sup", now=MONDAY)
    before = _footprint(ledger, case_id)
    with pytest.raises(TransitionRejected, match="no measure"):
        ledger.fire(case_id, "approve_plan", "rev", now=MONDAY)
    assert _footprint(ledger, case_id) == before


def test_fire__stale_expect_version_conflicts(ledger: Engine) -> None:
    case_id = open_case(ledger)
    ledger.add_measure(case_id, "own", "early measure", now=MONDAY)  # version 1 -> 2
    before = _footprint(ledger, case_id)
    with pytest.raises(ConflictError) as raised:
        ledger.fire(case_id, "confirm", "sup", expect_version=1, now=MONDAY)
    assert (raised.value.case_id, raised.value.expected, raised.value.actual) == (case_id, 1, 2)
    with pytest.raises(ConflictError):
        ledger.add_measure(case_id, "own", "another", expect_version=1, now=MONDAY)
    assert _footprint(ledger, case_id) == before
    assert ledger.fire(case_id, "confirm", "sup", expect_version=2, now=MONDAY).version == 3


def test_fire__unknown_case(ledger: Engine) -> None:
    with pytest.raises(NotFound):
        ledger.fire(4242, "confirm", "sup", now=MONDAY)


# --- escalations, pauses, notes ------------------------------------------------------------


def test_escalate_due__each_level_once(ledger: Engine) -> None:
    case_id = open_case(ledger)  # identify due Mon 10 March; remind Wed 5 March
    assert ledger.escalate_due(local(2025, 3, 5, 23, 0)).fired == 0
    first = ledger.escalate_due(local(2025, 3, 6))
    assert (first.cases, first.fired, first.by_level) == (1, 1, {"remind": 1})
    assert first.next_due_at == end_of_day(2025, 3, 10)
    assert ledger.escalate_due(local(2025, 3, 6)).fired == 0

    late = open_case(ledger, "CITY2")  # swept only once it is far overdue: levels in ladder order
    summary = ledger.escalate_due(local(2025, 3, 18))  # supervise at 10 March + 5wd = 17 March
    assert summary.by_level == {"remind": 1, "warn": 2, "supervise": 2}
    again = ledger.escalate_due(local(2025, 3, 18))
    assert (again.fired, again.by_level) == (0, {})

    escalations = ledger.escalations(case_id)
    assert [(e.visit, e.state, e.level, e.due_at) for e in escalations] == [
        (1, "identify", "remind", end_of_day(2025, 3, 5)),
        (1, "identify", "warn", end_of_day(2025, 3, 10)),
        (1, "identify", "supervise", end_of_day(2025, 3, 17)),
    ]
    assert [e.level for e in ledger.escalations(late)] == ["remind", "warn", "supervise"]
    outbox = ledger.store.list_notifications(case_id)
    assert [(n.kind, n.level, n.role) for n in outbox] == [
        ("escalation", "remind", "owner"),
        ("escalation", "warn", "owner"),
        ("escalation", "warn", "head"),
        ("escalation", "supervise", "supervisor"),
    ]
    assert len({n.key for n in ledger.store.list_notifications()}) == 8
    assert ledger.store.list_notifications(kind="dispatch") == []

    # A new stage is a new visit: its ladder starts again from the first level.
    moved = ledger.fire(case_id, "confirm", "sup", now=local(2025, 3, 18, 10))
    assert (moved.next_level, moved.visit) == (0, 2)
    assert ledger.escalate_due(local(2025, 3, 18, 11)).fired == 0
    assert ledger.get_case(late).next_level == 3


def test_pause_resume__stops_the_clock(ledger: Engine) -> None:
    case_id = open_case(ledger)  # due Mon 10 March
    with pytest.raises(TransitionRejected, match="comment"):
        ledger.pause(case_id, "sup", comment=" ", now=local(2025, 3, 4, 10))
    with pytest.raises(PermissionDenied):
        ledger.pause(case_id, "own", comment="waiting", now=local(2025, 3, 4, 10))
    with pytest.raises(TransitionRejected, match="not paused"):
        ledger.resume(case_id, "sup", now=local(2025, 3, 4, 10))
    paused = ledger.pause(
        case_id, "sup", comment="awaiting court ruling", now=local(2025, 3, 4, 10)
    )
    assert paused.paused_at == local(2025, 3, 4, 10)
    with pytest.raises(TransitionRejected, match="already paused"):
        ledger.pause(case_id, "sup", comment="again", now=local(2025, 3, 4, 11))
    with pytest.raises(TransitionRejected, match="paused"):
        ledger.fire(case_id, "confirm", "sup", now=local(2025, 3, 5))
    assert ledger.triggers(case_id, "sup") == []
    assert ledger.escalate_due(local(2025, 3, 6, 9)).fired == 0  # remind would be due

    resumed = ledger.resume(case_id, "sup", now=local(2025, 3, 6, 10))
    # Paused over Wed 5 and Thu 6 March: two working days are given back.
    assert resumed.paused_at is None
    assert resumed.due_at == end_of_day(2025, 3, 12)
    assert resumed.next_escalation_at == end_of_day(2025, 3, 7)
    assert resumed.state == "identify"
    assert ledger.escalate_due(local(2025, 3, 6, 11)).fired == 0
    assert ledger.escalate_due(local(2025, 3, 8)).by_level == {"remind": 1}
    entries = ledger.history(case_id)
    assert [(e.trigger, e.source, e.dest, e.comment) for e in entries[1:]] == [
        ("pause", "identify", "identify", "awaiting court ruling"),
        ("resume", "identify", "identify", None),
    ]
    assert ledger.verify_history(case_id) == 3


def test_notes_and_dispatch__once_per_month(ledger: Engine) -> None:
    noted, silent, dismissed = open_case(ledger), open_case(ledger), open_case(ledger)
    ledger.fire(dismissed, "dismiss", "sup", comment="not a problem", now=MONDAY)
    note = ledger.note(noted, "own", "  second window opened ", now=local(2025, 3, 15))
    assert (note.case_id, note.actor, note.text, note.at) == (
        noted, "own", "second window opened", local(2025, 3, 15),
    )  # fmt: skip
    assert ledger.notes(noted) == [note]
    with pytest.raises(ValidationError):
        ledger.note(noted, "own", "  ", now=local(2025, 3, 15))
    with pytest.raises(PermissionDenied):
        ledger.note(noted, "rev", "I looked", now=local(2025, 3, 15))
    with pytest.raises(TransitionRejected):
        ledger.note(dismissed, "sup", "closed already", now=local(2025, 3, 15))

    assert ledger.dispatch_reminders(local(2025, 3, 20)) == 1
    assert ledger.dispatch_reminders(local(2025, 3, 28)) == 0
    assert ledger.dispatch_reminders(local(2025, 4, 2)) == 2  # a new month, no note yet
    assert ledger.dispatch_reminders(local(2025, 4, 3)) == 0
    outbox = ledger.store.list_notifications(kind="dispatch")
    assert [(n.case_id, n.role, n.key) for n in outbox] == [
        (silent, "owner", f"dispatch:{silent}:2025-03:owner:own"),
        (noted, "owner", f"dispatch:{noted}:2025-04:owner:own"),
        (silent, "owner", f"dispatch:{silent}:2025-04:owner:own"),
    ]
    assert ledger.dispatch_reminders(local(2025, 4, 3), roles=("owner", "head")) == 2


def test_load_calendar__recomputes_provisional_2027(ledger: Engine, tmp_path: Path) -> None:
    settled = open_case(ledger)
    guessed = open_case(ledger, now=local(2027, 1, 4))  # a Monday of a year without holiday data
    before = ledger.get_case(guessed)
    assert (before.due_at, before.due_provisional) == (end_of_day(2027, 1, 11), True)
    table = tmp_path / "2027.csv"
    table.write_text("# date,kind\n2027-01-01,holiday\n2027-01-05,holiday\n2027-01-06,holiday\n")

    assert ledger.load_calendar(table, now=local(2027, 1, 4, 12), partial=True) == 1
    after = ledger.get_case(guessed)
    assert (after.due_at, after.due_provisional) == (end_of_day(2027, 1, 13), False)
    assert after.next_escalation_at == end_of_day(2027, 1, 8)  # 3 working days earlier
    assert after.version == before.version + 1
    # a marker in the history, no state change
    [_, marker] = ledger.history(guessed)
    moved = (marker.trigger, marker.source, marker.dest)
    assert moved == ("deadline_recomputed", "identify", "identify")
    assert marker.data == {"due_at": "2027-01-13T15:59:59.000000Z", "provisional": False}
    assert ledger.get_case(settled).due_at == end_of_day(2025, 3, 10)
    days = {day: (working, origin) for day, working, origin in ledger.calendar(2027)}
    assert days[dt.date(2027, 1, 5)] == (False, "loaded")
    assert days[dt.date(2027, 1, 7)] == (True, "weekday rule")
    assert ledger.load_calendar(table, now=local(2027, 1, 4, 13), partial=True) == 0


def test_datetimes__round_trip_as_aware_utc(ledger: Engine, tmp_path: Path) -> None:
    opened_at = dt.datetime(2025, 3, 3, 9, 30, 15, 123456, tzinfo=local(2025, 3, 3).tzinfo)
    case_id = open_case(ledger, now=opened_at)
    ledger.fire(case_id, "confirm", "sup", now=opened_at + dt.timedelta(hours=1))
    measure = ledger.add_measure(
        case_id, "own", "m", due=dt.date(2025, 4, 30), now=opened_at + dt.timedelta(hours=1)
    )
    ledger.complete_measure(measure.id, "own", now=opened_at + dt.timedelta(hours=2))
    ledger.note(case_id, "own", "n", now=opened_at + dt.timedelta(hours=3))
    ledger.escalate_due(local(2025, 3, 28))

    case = ledger.get_case(case_id)
    [measure] = ledger.measures(case_id)
    stamps = [
        case.created_at, case.stage_entered_at, case.due_at, case.next_escalation_at,
        measure.due, measure.done_at, ledger.notes(case_id)[0].at,
        *(e.at for e in ledger.history(case_id)),
        *(e.due_at for e in ledger.escalations(case_id)),
        *(e.fired_at for e in ledger.escalations(case_id)),
        *(n.created_at for n in ledger.store.list_notifications(case_id)),
    ]  # fmt: skip
    for stamp in stamps:
        assert stamp is not None
        assert stamp.tzinfo is not None
        assert stamp.utcoffset() == dt.timedelta(0)
    assert case.created_at == opened_at
    assert case.created_at.microsecond == 123456
    assert case.stage_entered_at == opened_at + dt.timedelta(hours=1)
    assert measure.done_at == opened_at + dt.timedelta(hours=2)

    naive = ledger.open_case(
        "sup", unit="CITY1", title="naive", now=dt.datetime(2025, 3, 3, 9, 0)
    )  # a naive time is local time
    assert ledger.get_case(naive.id).created_at == dt.datetime(2025, 3, 3, 1, 0, tzinfo=dt.UTC)


# --- tampering, seen from outside the engine (SQL backends only) --------------------------


@pytest.mark.parametrize(
    ("tamper", "seq", "reason"),
    [
        ("UPDATE history SET comment = 'nothing to see' WHERE seq = 2", 2, "altered"),
        ("UPDATE history SET actor = 'intruder' WHERE seq = 3", 3, "altered"),
        ("DELETE FROM history WHERE seq = 2", 2, "missing"),
    ],
)
@pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True)
def test_verify_history__names_the_first_broken_link(
    ledger: Engine, db_url: str, tamper: str, seq: int, reason: str
) -> None:
    case_id = open_case(ledger)
    ledger.pause(case_id, "sup", comment="waiting", now=MONDAY)
    ledger.resume(case_id, "sup", now=MONDAY)
    assert ledger.verify_history() == 3
    outside = sa.create_engine(db_url)
    with outside.begin() as conn:
        conn.execute(sa.text(tamper))
    outside.dispose()
    with Engine(db_url) as engine:
        with pytest.raises(IntegrityError, match=reason) as raised:
            engine.verify_history()
        assert (raised.value.case_id, raised.value.seq) == (case_id, seq)


# --- daemon heartbeats ---------------------------------------------------------------------


def _at(hour: int, minute: int = 0) -> dt.datetime:
    """3 March 2025 at ``hour``:``minute`` in Shanghai, in UTC (as the store takes times)."""
    return local(2025, 3, 3, hour, minute).astimezone(dt.UTC)


def test_daemon_beats__register_save_list_forget(engine: Engine) -> None:
    """Straight on the store, whose contract is UTC in, UTC out."""
    store = engine.store
    old = store.register_daemon("host-a", 101, _at(9))
    new = store.register_daemon("host-b", 202, _at(10))
    assert old.id != new.id
    assert (new.host, new.pid, new.started_at, new.beat_at) == (
        "host-b", 202, _at(10), _at(10),
    )  # fmt: skip
    swept = dataclasses.replace(
        new, beat_at=_at(11), sweep_started_at=_at(10, 59),
        sweep_ended_at=_at(11), levels_recorded=3, last_error="db gone",
        last_error_at=_at(10, 30), stopped_at=_at(11),
    )  # fmt: skip
    store.save_beat(swept)
    assert store.list_daemons(_at(9)) == [old, swept]  # oldest start first
    assert store.list_daemons(_at(10)) == [swept]
    assert store.forget_daemons(_at(10)) == 1
    assert store.list_daemons(_at(0)) == [swept]
