"""Every transition of the default workflow, and every refusal, on the in-memory store."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from rectiflow import (
    Case,
    ConflictError,
    Engine,
    NotFound,
    PermissionDenied,
    RectiflowError,
    TransitionRejected,
    ValidationError,
)

SH = ZoneInfo("Asia/Shanghai")
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=SH)  # Monday
T1 = dt.datetime(2026, 3, 3, 14, 30, tzinfo=SH)  # Tuesday
ACTOR = {
    "confirm": "sup", "dismiss": "sup", "approve_plan": "rev", "submit": "own",
    "accept": "ver", "reject": "ver", "reopen": "sup",
}  # fmt: skip
PATH = {
    "identify": [],
    "plan": ["confirm"],
    "rectify": ["confirm", "approve_plan"],
    "verify": ["confirm", "approve_plan", "submit"],
    "closed": ["confirm", "approve_plan", "submit", "accept"],
    "dismissed": ["dismiss"],
}


def end_of_day(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime(y, m, d, 23, 59, 59, tzinfo=SH).astimezone(dt.UTC)


def at_state(engine: Engine, state: str, unit: str = "DIST", **kw: Any) -> Case:
    """A case driven to ``state`` at T0, with one measure once it has passed `plan`."""
    case = engine.open_case("sup", unit=unit, title="Permits issued late", now=T0, **kw)
    for trigger in PATH[state]:
        if trigger == "approve_plan":
            engine.add_measure(case.id, "own", "Publish the permit timetable", now=T0)
        if trigger == "submit":
            for measure in engine.measures(case.id):
                engine.complete_measure(measure.id, "own", now=T0)
        case = engine.fire(case.id, trigger, ACTOR[trigger], comment="as decided", now=T0)
    assert case.state == state
    return case


def snapshot(engine: Engine, case_id: int) -> tuple[Any, ...]:
    return (
        engine.get_case(case_id), engine.history(case_id), engine.measures(case_id),
        engine.notes(case_id), engine.escalations(case_id),
    )  # fmt: skip


def refused(
    engine: Engine, case_id: int, error: type[RectiflowError], call: Callable[[], object]
) -> Any:
    """Run a call that must be refused; the case must be exactly as it was."""
    before = snapshot(engine, case_id)
    with pytest.raises(error) as info:
        call()
    assert snapshot(engine, case_id) == before
    return info.value


# --- opening a case ------------------------------------------------------------------------


def test_open__starts_in_identify_with_its_deadline(engine: Engine) -> None:
    case = engine.open_case("rep", unit="DIST", title="  Permits issued late ", now=T0)
    assert (case.id, case.state, case.version, case.visit) == (1, "identify", 1, 1)
    assert (case.unit, case.unit_path, case.title) == (
        "DIST",
        "/HQ/CITY/DIST/",
        "Permits issued late",
    )
    assert case.due_at == end_of_day(2026, 3, 9)  # 5 working days
    assert case.next_escalation_at == end_of_day(2026, 3, 4)  # remind at -3wd
    [entry] = engine.history(case.id)
    assert (entry.seq, entry.trigger, entry.source, entry.dest, entry.actor) == (
        1, "open", None, "identify", "rep",
    )  # fmt: skip
    assert case.last_hash == entry.hash


@pytest.mark.parametrize(("actor", "unit"), [("sup", "OTHER"), ("rep", "CITY"), ("rep", "DIST")])
def test_open__reporter_or_supervisor_in_scope(engine: Engine, actor: str, unit: str) -> None:
    assert engine.open_case(actor, unit=unit, title="t", now=T0).unit == unit


@pytest.mark.parametrize(
    ("actor", "unit", "reason"),
    [
        ("own", "DIST", "needs role reporter or supervisor, has owner"),
        ("rev", "DIST", "needs role reporter or supervisor, has reviewer"),
        ("rep", "OTHER", "unit OTHER is outside the actor's units (CITY)"),
        ("rep", "HQ", "unit HQ is outside the actor's units (CITY)"),
        ("rep", "CITY2", "unit CITY2 is outside the actor's units (CITY)"),
        ("ghost", "DIST", "no such actor"),
    ],
)
def test_open__refused(engine: Engine, actor: str, unit: str, reason: str) -> None:
    with pytest.raises(PermissionDenied) as info:
        engine.open_case(actor, unit=unit, title="t", now=T0)
    assert str(info.value) == f"{actor} may not open a case in unit {unit}: {reason}"
    assert engine.list_cases() == []


def test_open__bad_input(engine: Engine) -> None:
    with pytest.raises(NotFound, match="no unit NOWHERE"):
        engine.open_case("sup", unit="NOWHERE", title="t", now=T0)
    with pytest.raises(ValidationError, match="unknown severity 'urgent'"):
        engine.open_case("sup", unit="DIST", title="t", severity="urgent", now=T0)
    with pytest.raises(ValidationError, match="needs a title"):
        engine.open_case("sup", unit="DIST", title="  ", now=T0)
    with pytest.raises(NotFound, match="no workflow nosuch"):
        engine.open_case("sup", unit="DIST", title="t", workflow="nosuch", now=T0)
    assert engine.list_cases() == []


# --- every transition ----------------------------------------------------------------------


def assert_moved(engine: Engine, before: Case, after: Case, trigger: str, actor: str) -> None:
    assert after.version == before.version + 1
    assert after.visit == before.visit + 1
    assert after.stage_entered_at == T1.astimezone(dt.UTC)
    assert after.next_level == 0
    entry = engine.history(after.id)[-1]
    assert (entry.seq, entry.trigger, entry.source, entry.dest, entry.actor, entry.at) == (
        before.history_seq + 1, trigger, before.state, after.state, actor, T1.astimezone(dt.UTC),
    )  # fmt: skip
    assert entry.prev_hash == before.last_hash
    assert after.last_hash == entry.hash
    assert engine.verify_history(after.id) == after.history_seq


def test_fire__confirm(engine: Engine) -> None:
    case = at_state(engine, "identify")
    moved = engine.fire(case.id, "confirm", "sup", now=T1)
    assert moved.state == "plan"
    assert moved.due_at == end_of_day(2026, 3, 17)  # 10 working days after Tuesday 3 March
    assert_moved(engine, case, moved, "confirm", "sup")
    assert engine.get_case(case.id) == moved


def test_fire__dismiss(engine: Engine) -> None:
    case = at_state(engine, "identify")
    moved = engine.fire(case.id, "dismiss", "sup", comment=" not a problem ", now=T1)
    assert moved.state == "dismissed"
    assert (moved.due_at, moved.next_escalation_at) == (None, None)
    assert_moved(engine, case, moved, "dismiss", "sup")
    assert engine.history(case.id)[-1].comment == "not a problem"


def test_fire__approve_plan(engine: Engine) -> None:
    case = at_state(engine, "plan", severity="high")
    engine.add_measure(case.id, "own", "Publish the permit timetable", now=T0)
    case = engine.get_case(case.id)
    moved = engine.fire(case.id, "approve_plan", "rev", now=T1)
    assert moved.state == "rectify"
    assert moved.due_at == end_of_day(2026, 3, 31)  # high: 20 working days
    assert_moved(engine, case, moved, "approve_plan", "rev")


def test_fire__submit(engine: Engine) -> None:
    case = at_state(engine, "rectify")
    for measure in engine.measures(case.id):
        engine.complete_measure(measure.id, "own", now=T0)
    case = engine.get_case(case.id)
    moved = engine.fire(case.id, "submit", "own", now=T1)
    assert moved.state == "verify"
    assert moved.due_at == end_of_day(2026, 3, 17)
    assert_moved(engine, case, moved, "submit", "own")


def test_fire__accept(engine: Engine) -> None:
    case = at_state(engine, "verify")
    moved = engine.fire(case.id, "accept", "ver", now=T1)
    assert moved.state == "closed"
    # no deadline; the sweep's next work is the look-back, 90 days on (rectification@2)
    lookback = end_of_day(2026, 3, 3) + dt.timedelta(days=90)
    assert (moved.due_at, moved.lookback_due_at, moved.next_escalation_at) == (
        None,
        lookback,
        lookback,
    )
    assert_moved(engine, case, moved, "accept", "ver")


def test_fire__reject(engine: Engine) -> None:
    case = at_state(engine, "verify", severity="high")
    moved = engine.fire(case.id, "reject", "ver", comment="evidence is missing", now=T1)
    assert moved.state == "rectify"
    assert moved.due_at == end_of_day(2026, 3, 31)  # a fresh 20 working days from the rejection
    assert_moved(engine, case, moved, "reject", "ver")
    assert engine.history(case.id)[-1].comment == "evidence is missing"


def test_fire__reopen(engine: Engine) -> None:
    case = at_state(engine, "closed", severity="high")
    moved = engine.fire(case.id, "reopen", "sup", comment="the problem came back", now=T1)
    assert moved.state == "rectify"
    assert moved.due_at == end_of_day(2026, 3, 31)
    assert_moved(engine, case, moved, "reopen", "sup")


def test_fire__whole_lifecycle_versions_and_history(engine: Engine) -> None:
    case = at_state(engine, "closed")
    # open, confirm, +measure, approve, measure done, submit, accept
    assert case.version == 7
    assert [(e.trigger, e.source, e.dest) for e in engine.history(case.id)] == [
        ("open", None, "identify"), ("confirm", "identify", "plan"),
        ("measure_added", "plan", "plan"), ("approve_plan", "plan", "rectify"),
        ("measure_done", "rectify", "rectify"), ("submit", "rectify", "verify"),
        ("accept", "verify", "closed"),
    ]  # fmt: skip
    assert engine.verify_history() == 7  # one entry per version


def test_fire__matching_expect_version(engine: Engine) -> None:
    case = at_state(engine, "identify")
    assert engine.fire(case.id, "confirm", "sup", expect_version=1, now=T1).version == 2


# --- refusals ------------------------------------------------------------------------------


def test_refusal__trigger_not_valid_from_the_state(engine: Engine) -> None:
    case = at_state(engine, "identify")
    error = refused(
        engine, case.id, TransitionRejected, lambda: engine.fire(case.id, "accept", "ver", now=T1)
    )
    assert str(error) == (
        "cannot accept case 1 in state identify: not valid from state identify "
        "(valid now: confirm, dismiss)"
    )
    assert (error.case_id, error.trigger, error.state) == (1, "accept", "identify")


@pytest.mark.parametrize(
    ("state", "hint"),
    [("closed", "(valid now: reopen, relapse)"), ("dismissed", "(it is a final state)")],
)
def test_refusal__trigger_from_a_final_state(engine: Engine, state: str, hint: str) -> None:
    case = at_state(engine, state)
    error = refused(
        engine, case.id, TransitionRejected, lambda: engine.fire(case.id, "confirm", "sup", now=T1)
    )
    assert str(error).endswith(f"not valid from state {state} {hint}")


def test_refusal__unknown_trigger(engine: Engine) -> None:
    case = at_state(engine, "plan")
    error = refused(
        engine, case.id, TransitionRejected, lambda: engine.fire(case.id, "approve", "rev", now=T1)
    )
    assert str(error) == (
        "cannot approve case 1 in state plan: workflow rectification@2 has no trigger 'approve'"
    )


def test_refusal__guard_no_measure(engine: Engine) -> None:
    case = at_state(engine, "plan")
    error = refused(
        engine, case.id, TransitionRejected,
        lambda: engine.fire(case.id, "approve_plan", "rev", now=T1),
    )  # fmt: skip
    assert str(error) == "cannot approve_plan case 1 in state plan: the plan has no measure"


def test_refusal__guard_measure_not_done(engine: Engine) -> None:
    case = at_state(engine, "rectify")
    second = engine.add_measure(case.id, "own", "Train the clerks", now=T0)
    first = engine.measures(case.id)[0]
    engine.complete_measure(first.id, "own", now=T0)
    error = refused(
        engine, case.id, TransitionRejected, lambda: engine.fire(case.id, "submit", "own", now=T1)
    )
    assert str(error) == f"cannot submit case 1 in state rectify: measure {second.id} is not done"


@pytest.mark.parametrize(
    ("state", "trigger"), [("identify", "dismiss"), ("verify", "reject"), ("closed", "reopen")]
)
@pytest.mark.parametrize("comment", [None, "", "   "])
def test_refusal__missing_required_comment(
    engine: Engine, state: str, trigger: str, comment: str | None
) -> None:
    case = at_state(engine, state)
    error = refused(
        engine, case.id, TransitionRejected,
        lambda: engine.fire(case.id, trigger, ACTOR[trigger], comment=comment, now=T1),
    )  # fmt: skip
    assert str(error) == f"cannot {trigger} case 1 in state {state}: a comment is required"


def test_refusal__unknown_actor(engine: Engine) -> None:
    case = at_state(engine, "identify")
    error = refused(
        engine, case.id, PermissionDenied, lambda: engine.fire(case.id, "confirm", "ghost", now=T1)
    )
    assert str(error) == "ghost may not confirm case 1: no such actor"


def test_refusal__actor_without_the_role(engine: Engine) -> None:
    case = at_state(engine, "identify")
    error = refused(
        engine, case.id, PermissionDenied, lambda: engine.fire(case.id, "confirm", "rev", now=T1)
    )
    assert str(error) == "rev may not confirm case 1: needs role supervisor, has reviewer"


@pytest.mark.parametrize("unit", ["OTHER", "CITY2", "HQ"])
def test_refusal__case_outside_the_actors_units(engine: Engine, unit: str) -> None:
    case = at_state(engine, "identify", unit=unit)
    error = refused(
        engine, case.id, PermissionDenied,
        lambda: engine.fire(case.id, "confirm", "city_sup", now=T1),
    )  # fmt: skip
    assert str(error) == (
        f"city_sup may not confirm case 1: unit {unit} is outside the actor's units (CITY)"
    )


@pytest.mark.parametrize("unit", ["CITY", "DIST"])
def test_permission__unit_and_its_descendants(engine: Engine, unit: str) -> None:
    case = at_state(engine, "identify", unit=unit)
    assert engine.fire(case.id, "confirm", "city_sup", now=T1).state == "plan"


def test_permission__actor_bound_to_a_child_unit_cannot_act_on_the_parent(engine: Engine) -> None:
    case = at_state(engine, "plan", unit="CITY")
    error = refused(
        engine, case.id, PermissionDenied,
        lambda: engine.add_measure(case.id, "own", "Fix it", now=T1),
    )  # fmt: skip
    assert "unit CITY is outside the actor's units (DIST)" in str(error)


def test_refusal__stale_expect_version(engine: Engine) -> None:
    case = at_state(engine, "plan")
    error = refused(
        engine, case.id, ConflictError,
        lambda: engine.fire(case.id, "confirm", "sup", expect_version=1, now=T1),
    )  # fmt: skip
    assert str(error) == "case 1 changed: expected version 1, it is at version 2"
    assert (error.expected, error.actual) == (1, 2)


# --- measures ------------------------------------------------------------------------------


def test_measure__owner_adds_and_completes(engine: Engine, tmp_path: Any) -> None:
    case = at_state(engine, "plan")
    measure = engine.add_measure(
        case.id, "own", " Publish the timetable ", due=dt.date(2026, 4, 30)
    )
    assert (measure.case_id, measure.text, measure.owner) == (
        case.id,
        "Publish the timetable",
        "own",
    )
    assert measure.due == end_of_day(2026, 4, 30)
    assert not measure.done
    assert engine.get_case(case.id).version == case.version + 1
    evidence = tmp_path / "timetable.pdf"
    evidence.write_bytes(b"%PDF timetable")
    done = engine.complete_measure(measure.id, "own", evidence=evidence, now=T1)
    assert done.done_at == T1.astimezone(dt.UTC)
    assert done.evidence_path == str(evidence.resolve())
    assert done.evidence_sha256 == hashlib.sha256(b"%PDF timetable").hexdigest()
    assert engine.measures(case.id) == [done]


@pytest.mark.parametrize(
    ("actor", "reason"),
    [
        ("rev", "needs role owner, has reviewer"),
        ("other_own", "unit DIST is outside the actor's units (OTHER)"),
        ("ghost", "no such actor"),
    ],
)
def test_measure__needs_an_owner_in_scope(engine: Engine, actor: str, reason: str) -> None:
    case = at_state(engine, "rectify")
    [measure] = engine.measures(case.id)
    error = refused(
        engine, case.id, PermissionDenied, lambda: engine.add_measure(case.id, actor, "x", now=T1)
    )
    assert str(error) == f"{actor} may not add a measure to case 1: {reason}"
    error = refused(
        engine, case.id, PermissionDenied,
        lambda: engine.complete_measure(measure.id, actor, now=T1),
    )  # fmt: skip
    assert str(error) == f"{actor} may not complete measure {measure.id}: {reason}"


def test_measure__refusals(engine: Engine) -> None:
    closed = at_state(engine, "closed")
    refused(
        engine, closed.id, TransitionRejected, lambda: engine.add_measure(closed.id, "own", "x")
    )
    [measure] = engine.measures(closed.id)
    refused(
        engine, closed.id, TransitionRejected, lambda: engine.complete_measure(measure.id, "own")
    )
    case = at_state(engine, "plan")
    refused(engine, case.id, ValidationError, lambda: engine.add_measure(case.id, "own", "  "))
    refused(
        engine, case.id, ConflictError,
        lambda: engine.add_measure(case.id, "own", "x", expect_version=1),
    )  # fmt: skip
    with pytest.raises(NotFound, match="no measure 999"):
        engine.complete_measure(999, "own")


# --- the triggers an actor may fire now ----------------------------------------------------


def names(engine: Engine, case_id: int, actor: str | None = None) -> list[str]:
    return [t.trigger for t in engine.triggers(case_id, actor)]


def test_triggers__by_state_and_role(engine: Engine) -> None:
    identify = at_state(engine, "identify")
    assert names(engine, identify.id) == ["confirm", "dismiss"]
    assert names(engine, identify.id, "sup") == ["confirm", "dismiss"]
    assert names(engine, identify.id, "city_sup") == ["confirm", "dismiss"]
    assert names(engine, identify.id, "rev") == []
    closed = at_state(engine, "closed")
    assert names(engine, closed.id, "sup") == ["reopen", "relapse"]
    assert names(engine, closed.id, "ver") == ["relapse"]
    verify = at_state(engine, "verify")
    assert names(engine, verify.id, "ver") == ["accept", "reject"]
    dismissed = at_state(engine, "dismissed")
    assert names(engine, dismissed.id) == []
    assert names(engine, dismissed.id, "sup") == []


def test_triggers__guards_decide(engine: Engine) -> None:
    case = at_state(engine, "plan")
    assert names(engine, case.id) == ["approve_plan"]  # without an actor: what the state allows
    assert names(engine, case.id, "rev") == []  # no measure yet
    engine.add_measure(case.id, "own", "Publish the timetable")
    assert names(engine, case.id, "rev") == ["approve_plan"]
    engine.fire(case.id, "approve_plan", "rev")
    assert names(engine, case.id, "own") == []  # the measure is not done
    engine.complete_measure(engine.measures(case.id)[0].id, "own")
    assert names(engine, case.id, "own") == ["submit"]


def test_triggers__outside_the_actors_units(engine: Engine) -> None:
    case = at_state(engine, "identify", unit="OTHER")
    assert names(engine, case.id, "city_sup") == []
    assert names(engine, case.id, "sup") == ["confirm", "dismiss"]
    with pytest.raises(PermissionDenied, match="ghost may not see the triggers of case 1"):
        engine.triggers(case.id, "ghost")


def test_triggers__lists_exactly_what_fires(engine: Engine) -> None:
    triggers = engine.workflow("rectification").triggers
    for state in PATH:
        for actor in ("sup", "city_sup", "rep", "own", "other_own", "head", "rev", "ver"):
            listed = names(engine, at_state(engine, state).id, actor)
            for trigger in triggers:
                case = at_state(engine, state)
                try:
                    engine.fire(case.id, trigger, actor, comment="ok", now=T1)
                except (TransitionRejected, PermissionDenied):
                    assert trigger not in listed, (state, actor, trigger)
                else:
                    assert trigger in listed, (state, actor, trigger)


# --- actors --------------------------------------------------------------------------------


def test_actor__roles_must_exist_in_a_registered_workflow(engine: Engine) -> None:
    with pytest.raises(ValidationError, match="unknown role 'boss'"):
        engine.add_actor("zoe", ["owner", "boss"], ["DIST"])
    with pytest.raises(ValidationError, match="actor zoe needs at least one role"):
        engine.add_actor("zoe", [])
    with pytest.raises(NotFound, match="no unit NOWHERE"):
        engine.add_actor("zoe", ["owner"], ["NOWHERE"])
    with pytest.raises(ValidationError, match="actor own already exists"):
        engine.add_actor("own", ["owner"])
    assert engine.add_actor("zoe", ["owner", "head"], ["DIST"]).unit_paths == ("/HQ/CITY/DIST/",)
