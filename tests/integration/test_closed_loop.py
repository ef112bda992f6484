"""Issue 12, the closed loop, through the Engine on every backend: the look-back after a case
is closed (held, or relapsed back into rectify), deadline extensions asked by the owner and
decided by a supervisor, exemptions that stop the ladder until a date, notifications to
people (nearest unit first), the raise of a supervise/notify_public level to the unit above,
and the sweep of due look-backs, once, even when two processes sweep at the same moment.

The ledger is integration_support.setup_ledger's: PROV > CITY1 > COUNTY1, CITY10, CITY2;
sup (supervisor, no unit), rep/own/head (CITY1), rev and ver (no unit). A test adds the
actors it needs beside them. Every time is passed in; March 2025 has no public holiday.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from integration_support import (
    BARRIER_TIMEOUT,
    MONDAY,
    SQL_BACKENDS,
    end_of_day,
    local,
    open_case,
)

from rectiflow import Engine, PermissionDenied, TransitionRejected, ValidationError
from rectiflow.engine.types import Case, Extension

SPAWN = multiprocessing.get_context("spawn")
JOIN_TIMEOUT = 150

#: Where the look-back of a case closed on MONDAY (3 March 2025) falls: 90 calendar days on.
LOOKBACK_OF_MONDAY = end_of_day(2025, 6, 1)


# --- helpers ------------------------------------------------------------------------------


def to_rectify(engine: Engine, case_id: int, now: dt.datetime = MONDAY) -> int:
    """Confirm, add a measure and approve the plan; return the measure's id."""
    engine.fire(case_id, "confirm", "sup", now=now)
    measure = engine.add_measure(case_id, "own", "fix it", now=now)
    engine.fire(case_id, "approve_plan", "rev", now=now)
    return measure.id


def close(engine: Engine, case_id: int, now: dt.datetime = MONDAY) -> Case:
    """From rectify: every measure done, submitted by the owner, accepted by the verifier."""
    for measure in engine.measures(case_id):
        if not measure.done:
            engine.complete_measure(measure.id, "own", now=now)
    engine.fire(case_id, "submit", "own", now=now)
    return engine.fire(case_id, "accept", "ver", now=now)


def closed_case(
    engine: Engine, unit: str = "CITY1", *, now: dt.datetime = MONDAY, **kw: Any
) -> int:
    """A case opened, rectified and closed at ``now``; return its id."""
    case_id = open_case(engine, unit, now=now, **kw)
    to_rectify(engine, case_id, now)
    close(engine, case_id, now)
    return case_id


def rectifying(engine: Engine, unit: str = "CITY1", **kw: Any) -> int:
    """A case in rectify since MONDAY; return its id."""
    case_id = open_case(engine, unit, **kw)
    to_rectify(engine, case_id)
    return case_id


def triggers(engine: Engine, case_id: int) -> list[str]:
    return [h.trigger for h in engine.history(case_id)]


def recipients(engine: Engine, case_id: int, level: str | None = None) -> set[tuple[Any, ...]]:
    """(level, role, actor) of every outbox row of the case (of one level)."""
    return {
        (n.level, n.role, n.actor)
        for n in engine.list_notifications(case_id=case_id)
        if level is None or n.level == level
    }


def levels(engine: Engine, case_id: int) -> list[str]:
    return [e.level for e in engine.escalations(case_id)]


def supervised_by(engine: Engine, unit: str) -> list[Case]:
    """The cases a unit supervises (raised to it, or its own and never raised), through the
    store's filter: `case list --supervised-by` reads the same. (Engine.find_cases, which
    issue 12 names, is checked by test_find_cases__on_the_engine.)"""
    return engine.store.find_cases(supervised_by=unit)


# --- the look-back ------------------------------------------------------------------------


def test_lookback__scheduled_90_days_after_closing(ledger: Engine) -> None:
    case_id = closed_case(ledger)
    case = ledger.get_case(case_id)
    assert (case.state, case.workflow_version) == ("closed", 2)
    assert case.lookback_due_at == LOOKBACK_OF_MONDAY  # 23:59:59 local on 1 June
    assert (case.lookback_result, case.lookback_at, case.lookback_actor) == (None, None, None)
    assert case.relapses == 0
    ledger.verify_history(case_id)


def test_lookback__due_recorded_once_by_the_sweep(ledger: Engine) -> None:
    case_id = closed_case(ledger)
    ledger.add_actor("ver2", ["verifier"])
    assert ledger.escalate_due(local(2025, 6, 1, 23)).fired == 0  # not due yet
    assert "lookback" not in levels(ledger, case_id)

    first = ledger.escalate_due(local(2025, 6, 2))
    assert first.by_level.get("lookback") == 1
    second = ledger.escalate_due(local(2025, 6, 3))
    assert second.by_level.get("lookback") is None

    rows = [e for e in ledger.escalations(case_id) if e.level == "lookback"]
    assert len(rows) == 1
    assert (rows[0].state, rows[0].due_at) == ("closed", LOOKBACK_OF_MONDAY)
    assert rows[0].fired_at == local(2025, 6, 2)
    notices = [n for n in ledger.list_notifications(case_id=case_id) if n.kind == "lookback"]
    assert sorted((n.level, n.role, n.actor) for n in notices) == [
        ("lookback", "verifier", "ver"),
        ("lookback", "verifier", "ver2"),
    ]
    case = ledger.get_case(case_id)
    assert case.lookback_due_at == LOOKBACK_OF_MONDAY  # stays as it was
    assert (case.state, case.lookback_result) == ("closed", None)
    ledger.verify_history(case_id)


def test_lookback__held_before_it_is_due(ledger: Engine) -> None:
    case_id = closed_case(ledger)
    at = local(2025, 3, 10)
    held = ledger.record_lookback(case_id, "ver", "held", comment="整改成效巩固", now=at)
    assert (held.state, held.lookback_result, held.lookback_actor) == ("closed", "held", "ver")
    assert held.lookback_at == at
    assert held.lookback_due_at == LOOKBACK_OF_MONDAY
    assert held.relapses == 0
    assert triggers(ledger, case_id)[-1] == "lookback"
    assert ledger.history(case_id)[-1].dest == "closed"

    # Once recorded, nobody is told to look back any more.
    ledger.escalate_due(local(2025, 6, 5))
    assert "lookback" not in levels(ledger, case_id)
    assert not [n for n in ledger.list_notifications(case_id=case_id) if n.kind == "lookback"]
    with pytest.raises(TransitionRejected):  # one result per closing
        ledger.record_lookback(case_id, "ver", "held", now=local(2025, 6, 5))
    with pytest.raises(TransitionRejected):
        ledger.record_lookback(case_id, "ver", "relapsed", comment="x", now=local(2025, 6, 5))
    assert ledger.get_case(case_id).lookback_result == "held"
    ledger.verify_history(case_id)


def test_lookback__by_a_supervisor_after_the_sweep(ledger: Engine) -> None:
    case_id = closed_case(ledger)
    ledger.escalate_due(local(2025, 6, 2))
    held = ledger.record_lookback(case_id, "sup", "held", now=local(2025, 6, 3))
    assert (held.lookback_result, held.lookback_actor) == ("held", "sup")
    assert ledger.escalate_due(local(2025, 6, 9)).fired == 0
    assert levels(ledger, case_id).count("lookback") == 1
    ledger.verify_history(case_id)


def test_lookback__relapsed_goes_back_to_rectify_with_a_fresh_deadline(ledger: Engine) -> None:
    case_id = closed_case(ledger, severity="high")
    closed = ledger.get_case(case_id)
    at = local(2025, 3, 10)
    back = ledger.record_lookback(case_id, "ver", "relapsed", comment="问题反弹", now=at)
    assert (back.state, back.visit, back.relapses) == ("rectify", closed.visit + 1, 1)
    assert back.stage_entered_at == at
    assert back.due_at == end_of_day(2025, 4, 8)  # 20 working days from 10 March (清明 4 April)
    assert (back.next_level, back.next_escalation_at) == (0, end_of_day(2025, 4, 2))
    assert (back.lookback_result, back.lookback_actor, back.lookback_at) == ("relapsed", "ver", at)
    last = ledger.history(case_id)[-1]
    assert (last.trigger, last.source, last.dest, last.comment) == (
        "relapse", "closed", "rectify", "问题反弹",
    )  # fmt: skip

    # Closed again: a new look-back, 90 days after the new closing, without a result.
    ledger.fire(case_id, "submit", "own", now=local(2025, 3, 12))
    again = ledger.fire(case_id, "accept", "ver", now=local(2025, 3, 12))
    assert again.state == "closed"
    assert (again.lookback_due_at, again.lookback_result) == (end_of_day(2025, 6, 10), None)
    assert again.relapses == 1
    held = ledger.record_lookback(case_id, "ver", "held", now=local(2025, 6, 11))
    assert (held.lookback_result, held.relapses) == ("held", 1)
    ledger.verify_history(case_id)


def test_lookback__relapsed_needs_a_comment_and_changes_nothing_without(ledger: Engine) -> None:
    case_id = closed_case(ledger)
    before = ledger.get_case(case_id)
    for comment in (None, "   "):
        with pytest.raises(TransitionRejected):
            ledger.record_lookback(
                case_id, "ver", "relapsed", comment=comment, now=local(2025, 3, 5)
            )
    assert ledger.get_case(case_id) == before
    assert len(ledger.history(case_id)) == before.history_seq


def test_lookback__refusals(ledger: Engine) -> None:
    in_rectify = rectifying(ledger)
    before = ledger.get_case(in_rectify)
    with pytest.raises(TransitionRejected):  # not closed
        ledger.record_lookback(in_rectify, "ver", "held", now=local(2025, 3, 5))
    assert ledger.get_case(in_rectify) == before

    case_id = closed_case(ledger)
    closed = ledger.get_case(case_id)
    with pytest.raises(PermissionDenied):  # lookback: verifier, supervisor
        ledger.record_lookback(case_id, "own", "held", now=local(2025, 3, 5))
    with pytest.raises(PermissionDenied):
        ledger.record_lookback(case_id, "head", "held", now=local(2025, 3, 5))
    with pytest.raises(ValidationError):
        ledger.record_lookback(case_id, "ver", "maybe", now=local(2025, 3, 5))
    assert ledger.get_case(case_id) == closed

    dismissed = open_case(ledger)
    ledger.fire(dismissed, "dismiss", "sup", comment="不予立项", now=MONDAY)
    with pytest.raises(TransitionRejected):  # final, but no look-back was scheduled
        ledger.record_lookback(dismissed, "ver", "held", now=local(2025, 3, 5))


def test_relapse__fired_directly_counts_too(ledger: Engine) -> None:
    case_id = closed_case(ledger)
    with pytest.raises(TransitionRejected):
        ledger.fire(case_id, "relapse", "ver", now=local(2025, 3, 5))  # comment required
    with pytest.raises(PermissionDenied):
        ledger.fire(case_id, "relapse", "own", comment="x", now=local(2025, 3, 5))
    back = ledger.fire(case_id, "relapse", "ver", comment="群众反映问题复发", now=local(2025, 3, 5))
    assert (back.state, back.relapses) == ("rectify", 1)
    close(ledger, case_id, local(2025, 3, 6))
    twice = ledger.fire(case_id, "relapse", "sup", comment="再次反弹", now=local(2025, 3, 7))
    assert (twice.state, twice.relapses) == ("rectify", 2)
    assert triggers(ledger, case_id).count("relapse") == 2
    ledger.verify_history(case_id)


def test_reopen__is_not_a_relapse(ledger: Engine) -> None:
    case_id = closed_case(ledger)
    reopened = ledger.fire(case_id, "reopen", "sup", comment="补充整改", now=local(2025, 3, 5))
    assert (reopened.state, reopened.relapses) == ("rectify", 0)


def test_accept__needs_someone_other_than_the_submitter(ledger: Engine) -> None:
    ledger.add_actor("both", ["owner", "verifier"], ["CITY1"])
    case_id = rectifying(ledger)
    for measure in ledger.measures(case_id):
        ledger.complete_measure(measure.id, "both", now=MONDAY)
    ledger.fire(case_id, "submit", "both", now=MONDAY)
    with pytest.raises(TransitionRejected, match="separation of duties"):
        ledger.fire(case_id, "accept", "both", now=MONDAY)
    with pytest.raises(TransitionRejected, match="separation of duties"):
        ledger.fire(case_id, "reject", "both", comment="x", now=MONDAY)
    assert ledger.fire(case_id, "accept", "ver", now=MONDAY).state == "closed"


# --- extensions -----------------------------------------------------------------------------


def test_extension__approved_moves_the_deadline_and_the_ladder(ledger: Engine) -> None:
    # Rectify is due 14 March (the case's own date): remind on 11 March, warn on the 14th.
    case_id = rectifying(ledger, due=dt.date(2025, 3, 14))
    assert ledger.get_case(case_id).due_at == end_of_day(2025, 3, 14)
    ledger.escalate_due(local(2025, 3, 12))
    assert levels(ledger, case_id) == ["remind"]

    asked_at = local(2025, 3, 12, 11)
    asked = ledger.request_extension(
        case_id, "own", until=dt.date(2025, 3, 28), reason="需协调省级部门", now=asked_at
    )
    assert isinstance(asked, Extension)
    assert (asked.case_id, asked.requested_by, asked.status) == (case_id, "own", "pending")
    assert (asked.until, asked.reason, asked.requested_at) == (
        end_of_day(2025, 3, 28), "需协调省级部门", asked_at,
    )  # fmt: skip
    assert (asked.decided_by, asked.decided_at, asked.comment) == (None, None, None)
    assert ledger.get_case(case_id).due_at == end_of_day(2025, 3, 14)  # nothing moves yet

    decided_at = local(2025, 3, 12, 15)
    approved = ledger.decide_extension(case_id, "sup", approve=True, now=decided_at)
    assert (approved.id, approved.status, approved.decided_by) == (asked.id, "approved", "sup")
    assert approved.decided_at == decided_at
    case = ledger.get_case(case_id)
    assert (case.due, case.due_at) == (end_of_day(2025, 3, 28), end_of_day(2025, 3, 28))
    # remind stays recorded; the next level is warn, counted from the new date
    assert (case.next_level, case.next_escalation_at) == (1, end_of_day(2025, 3, 28))
    assert levels(ledger, case_id) == ["remind"]

    assert ledger.escalate_due(local(2025, 3, 17)).fired == 0  # the old warn date is gone
    ledger.escalate_due(local(2025, 3, 29))
    rows = ledger.escalations(case_id)
    assert [(e.level, e.due_at) for e in rows] == [
        ("remind", end_of_day(2025, 3, 11)),
        ("warn", end_of_day(2025, 3, 28)),
    ]
    assert [e.status for e in ledger.extensions(case_id)] == ["approved"]
    assert triggers(ledger, case_id)[-2:] == ["extension_requested", "extension_approved"]
    ledger.verify_history(case_id)


def test_extension__before_any_level_the_whole_ladder_moves(ledger: Engine) -> None:
    case_id = rectifying(ledger, due=dt.date(2025, 3, 14))
    ledger.request_extension(
        case_id, "own", until=dt.date(2025, 3, 28), reason="r", now=local(2025, 3, 4)
    )
    decided = ledger.decide_extension(case_id, "sup", approve=True, now=local(2025, 3, 4))
    assert isinstance(decided, Extension)
    moved = ledger.get_case(case_id)
    assert (moved.next_level, moved.next_escalation_at) == (0, end_of_day(2025, 3, 25))
    assert ledger.escalate_due(local(2025, 3, 12)).fired == 0  # the old remind date
    ledger.verify_history(case_id)


def test_extension__in_plan_changes_the_case_due_used_on_entering_rectify(
    ledger: Engine,
) -> None:
    case_id = open_case(ledger, severity="high")
    ledger.fire(case_id, "confirm", "sup", now=MONDAY)
    in_plan = ledger.get_case(case_id)
    assert in_plan.due_at == end_of_day(2025, 3, 17)  # plan: 10 working days
    ledger.request_extension(
        case_id, "own", until=dt.date(2025, 5, 30), reason="方案需论证", now=local(2025, 3, 4)
    )
    ledger.decide_extension(case_id, "sup", approve=True, comment="同意", now=local(2025, 3, 5))
    after = ledger.get_case(case_id)
    assert (after.due, after.due_at, after.state) == (
        end_of_day(2025, 5, 30),
        in_plan.due_at,
        "plan",
    )
    ledger.add_measure(case_id, "own", "m", now=local(2025, 3, 6))
    rectify = ledger.fire(case_id, "approve_plan", "rev", now=local(2025, 3, 6))
    assert (rectify.state, rectify.due_at) == ("rectify", end_of_day(2025, 5, 30))
    ledger.verify_history(case_id)


def test_extension__rejected_with_a_comment_changes_no_deadline(ledger: Engine) -> None:
    case_id = rectifying(ledger, due=dt.date(2025, 3, 14))
    before = ledger.get_case(case_id)
    ledger.request_extension(case_id, "own", until=dt.date(2025, 3, 28), reason="r", now=MONDAY)
    with pytest.raises(TransitionRejected):  # a rejection needs its reason
        ledger.decide_extension(case_id, "sup", approve=False, now=MONDAY)
    with pytest.raises(TransitionRejected):
        ledger.decide_extension(case_id, "sup", approve=False, comment="  ", now=MONDAY)
    rejected = ledger.decide_extension(
        case_id, "sup", approve=False, comment="理由不充分", now=local(2025, 3, 4)
    )
    assert (rejected.status, rejected.comment, rejected.decided_by) == (
        "rejected", "理由不充分", "sup",
    )  # fmt: skip
    after = ledger.get_case(case_id)
    assert (after.due, after.due_at, after.next_escalation_at) == (
        before.due, before.due_at, before.next_escalation_at,
    )  # fmt: skip
    assert triggers(ledger, case_id)[-2:] == ["extension_requested", "extension_rejected"]

    # After a decision the owner may ask again; both requests are kept, in order.
    ledger.request_extension(
        case_id, "own", until=dt.date(2025, 3, 21), reason="r2", now=local(2025, 3, 5)
    )
    assert [(x.status, x.reason) for x in ledger.extensions(case_id)] == [
        ("rejected", "r"), ("pending", "r2"),
    ]  # fmt: skip
    ledger.verify_history(case_id)


def test_extension__refusals_leave_the_case_unchanged(ledger: Engine) -> None:
    case_id = rectifying(ledger, due=dt.date(2025, 3, 14))
    before = ledger.get_case(case_id)
    at = local(2025, 3, 4)
    until = dt.date(2025, 3, 28)
    with pytest.raises(PermissionDenied):  # extend: owner
        ledger.request_extension(case_id, "sup", until=until, reason="r", now=at)
    with pytest.raises(PermissionDenied):
        ledger.request_extension(case_id, "head", until=until, reason="r", now=at)
    with pytest.raises(ValidationError):
        ledger.request_extension(case_id, "own", until=until, reason="  ", now=at)
    for not_later in (dt.date(2025, 3, 14), dt.date(2025, 3, 10)):
        with pytest.raises(TransitionRejected):
            ledger.request_extension(case_id, "own", until=not_later, reason="r", now=at)
    with pytest.raises(TransitionRejected):  # nothing pending
        ledger.decide_extension(case_id, "sup", approve=True, now=at)
    assert ledger.get_case(case_id) == before
    assert ledger.extensions(case_id) == []

    ledger.request_extension(case_id, "own", until=until, reason="r", now=at)
    pending = ledger.get_case(case_id)
    with pytest.raises(TransitionRejected):  # one pending request at a time
        ledger.request_extension(case_id, "own", until=dt.date(2025, 4, 30), reason="r", now=at)
    with pytest.raises(PermissionDenied):  # decide_extension: supervisor
        ledger.decide_extension(case_id, "own", approve=True, now=at)
    with pytest.raises(PermissionDenied):
        ledger.decide_extension(case_id, "ver", approve=True, now=at)
    assert ledger.get_case(case_id) == pending
    assert [x.status for x in ledger.extensions(case_id)] == ["pending"]


def test_extension__only_while_a_deadline_runs(ledger: Engine) -> None:
    until = dt.date(2025, 6, 30)
    in_verify = rectifying(ledger)
    for measure in ledger.measures(in_verify):
        ledger.complete_measure(measure.id, "own", now=MONDAY)
    ledger.fire(in_verify, "submit", "own", now=MONDAY)
    with pytest.raises(TransitionRejected):
        ledger.request_extension(in_verify, "own", until=until, reason="r", now=MONDAY)
    closed = closed_case(ledger)
    with pytest.raises(TransitionRejected):
        ledger.request_extension(closed, "own", until=until, reason="r", now=MONDAY)
    long_term = rectifying(ledger, long_term=True)  # rectify without a deadline
    assert ledger.get_case(long_term).due_at is None
    with pytest.raises(TransitionRejected):
        ledger.request_extension(long_term, "own", until=until, reason="r", now=MONDAY)
    for case_id in (in_verify, closed, long_term):
        assert ledger.extensions(case_id) == []


# --- exemptions -----------------------------------------------------------------------------


def test_exempt__no_level_no_light_counted_as_exempted(ledger: Engine) -> None:
    case_id = open_case(ledger)  # identify: due 10 March
    at = local(2025, 3, 4)
    exempted = ledger.exempt(
        case_id, "sup", reason="上级统一部署", until=dt.date(2025, 3, 28), now=at
    )
    assert (exempted.exempted_at, exempted.exempt_until) == (at, end_of_day(2025, 3, 28))
    assert exempted.exempt_reason == "上级统一部署"
    assert exempted.due_at == end_of_day(2025, 3, 10)
    assert triggers(ledger, case_id)[-1] == "exempt"

    late = local(2025, 3, 20)  # past the deadline and three ladder levels
    assert ledger.light(ledger.get_case(case_id), late) is None
    ledger.escalate_due(late)
    assert ledger.escalations(case_id) == []
    assert ledger.list_notifications(case_id=case_id) == []
    figures = ledger.progress(now=late)
    assert figures["categories"]["exempted"] == 1
    assert figures["categories"]["overdue"] == 0
    assert ledger.get_case(case_id).exempted_at == at  # still exempted
    ledger.verify_history(case_id)


def test_exempt__ends_at_until_like_a_pause_of_the_same_span(ledger: Engine) -> None:
    exempted, paused = open_case(ledger), open_case(ledger)
    start, until = local(2025, 3, 4), dt.date(2025, 3, 6)
    ledger.exempt(exempted, "sup", reason="r", until=until, now=start)
    ledger.pause(paused, "sup", comment="c", now=start)
    resumed = ledger.resume(paused, "sup", now=end_of_day(2025, 3, 6))
    assert resumed.due_at == end_of_day(2025, 3, 12)  # 5 and 6 March given back

    ledger.escalate_due(local(2025, 3, 6, 23))  # before until: still exempted
    assert ledger.get_case(exempted).exempted_at == start
    ledger.escalate_due(local(2025, 3, 7))
    ended = ledger.get_case(exempted)
    assert (ended.exempted_at, ended.exempt_until) == (None, None)
    assert ended.due_at == resumed.due_at
    assert ledger.escalations(exempted) == []  # the old remind (5 March) never fires
    assert ended.next_escalation_at == resumed.next_escalation_at
    last = ledger.history(exempted)[-1]
    assert (last.trigger, last.source, last.dest) == ("exemption_ended", "identify", "identify")
    ledger.verify_history(exempted)


def test_exempt__a_sweep_days_after_until_ends_it_as_of_until(ledger: Engine) -> None:
    exempted, paused = open_case(ledger), open_case(ledger)
    start = local(2025, 3, 4)
    ledger.exempt(exempted, "sup", reason="r", until=dt.date(2025, 3, 14), now=start)
    ledger.pause(paused, "sup", comment="c", now=start)
    reference = ledger.resume(paused, "sup", now=end_of_day(2025, 3, 14))
    assert reference.due_at == end_of_day(2025, 3, 20)  # 8 working days given back

    ledger.escalate_due(local(2025, 3, 27))  # the daemon was down for twelve days
    ended = ledger.get_case(exempted)
    assert (ended.exempted_at, ended.exempt_until) == (None, None)
    assert ended.due_at == reference.due_at  # not 27 March's 17 working days
    assert "exemption_ended" in triggers(ledger, exempted)
    # the levels of the moved deadline that are due by 27 March, counted from 20 March
    assert [(e.level, e.due_at) for e in ledger.escalations(exempted)] == [
        ("remind", end_of_day(2025, 3, 17)), ("warn", end_of_day(2025, 3, 20)),
    ]  # fmt: skip
    ledger.verify_history()


def test_unexempt__ends_it_now_like_a_resume(ledger: Engine) -> None:
    exempted, paused = open_case(ledger), open_case(ledger)
    start, end = local(2025, 3, 4), local(2025, 3, 6, 15)
    ledger.exempt(exempted, "sup", reason="r", until=dt.date(2025, 3, 28), now=start)
    ledger.pause(paused, "sup", comment="c", now=start)
    with pytest.raises(PermissionDenied):
        ledger.unexempt(exempted, "own", now=end)
    ended = ledger.unexempt(exempted, "sup", now=end)
    resumed = ledger.resume(paused, "sup", now=end)
    assert (ended.exempted_at, ended.exempt_until) == (None, None)
    assert ended.due_at == resumed.due_at == end_of_day(2025, 3, 12)
    assert triggers(ledger, exempted)[-2:] == ["exempt", "unexempt"]
    # nothing left for the sweep to end
    ledger.escalate_due(local(2025, 3, 29))
    assert "exemption_ended" not in triggers(ledger, exempted)
    ledger.verify_history(exempted)


def test_exempt__refusals_leave_the_case_unchanged(ledger: Engine) -> None:
    at, until = local(2025, 3, 4), dt.date(2025, 3, 28)
    case_id = open_case(ledger)
    before = ledger.get_case(case_id)
    with pytest.raises(PermissionDenied):  # exempt: supervisor
        ledger.exempt(case_id, "own", reason="r", until=until, now=at)
    with pytest.raises(TransitionRejected):  # until not in the future
        ledger.exempt(case_id, "sup", reason="r", until=dt.date(2025, 3, 3), now=at)
    with pytest.raises(TransitionRejected):
        ledger.exempt(case_id, "sup", reason="r", until=at, now=at)
    with pytest.raises(TransitionRejected):  # not exempted
        ledger.unexempt(case_id, "sup", now=at)
    assert ledger.get_case(case_id) == before

    exempted = ledger.exempt(case_id, "sup", reason="r", until=until, now=at)
    with pytest.raises(TransitionRejected):  # already exempted
        ledger.exempt(case_id, "sup", reason="r", until=dt.date(2025, 4, 30), now=at)
    with pytest.raises(TransitionRejected):  # a pause would stop a stopped clock
        ledger.pause(case_id, "sup", comment="c", now=at)
    assert ledger.get_case(case_id) == exempted

    paused = open_case(ledger)
    ledger.pause(paused, "sup", comment="c", now=at)
    held = ledger.get_case(paused)
    with pytest.raises(TransitionRejected):
        ledger.exempt(paused, "sup", reason="r", until=until, now=at)
    assert ledger.get_case(paused) == held

    dismissed = open_case(ledger)
    ledger.fire(dismissed, "dismiss", "sup", comment="c", now=at)
    with pytest.raises(TransitionRejected):
        ledger.exempt(dismissed, "sup", reason="r", until=until, now=at)
    closed = closed_case(ledger)
    with pytest.raises(TransitionRejected):
        ledger.exempt(closed, "sup", reason="r", until=until, now=at)
    ledger.verify_history()


# --- recipients are people ---------------------------------------------------------------------


def test_recipients__the_nearest_unit_first(ledger: Engine) -> None:
    ledger.add_actor("cown", ["owner"], ["COUNTY1"])
    ledger.add_actor("gown", ["owner"])  # bound to no unit: the last resort
    in_county = open_case(ledger, "COUNTY1")  # its own unit has an owner
    in_city = open_case(ledger, "CITY1")
    in_city2 = open_case(ledger, "CITY2")  # no owner in CITY2 nor PROV: the unbound one
    ledger.escalate_due(local(2025, 3, 6))  # remind (owner)
    assert recipients(ledger, in_county) == {("remind", "owner", "cown")}
    assert recipients(ledger, in_city) == {("remind", "owner", "own")}
    assert recipients(ledger, in_city2) == {("remind", "owner", "gown")}

    # warn: the owners as above; heads from COUNTY1 up: head of CITY1 (the parent)
    ledger.escalate_due(local(2025, 3, 11))
    assert recipients(ledger, in_county, "warn") == {
        ("warn", "owner", "cown"), ("warn", "head", "head"),
    }  # fmt: skip
    # nobody holds `head` in CITY2, in PROV or unbound: one row says so, naming nobody
    assert recipients(ledger, in_city2, "warn") == {
        ("warn", "owner", "gown"), ("warn", "head", None),
    }  # fmt: skip
    assert {n.actor for n in ledger.list_notifications(actor="cown")} == {"cown"}
    assert {n.case_id for n in ledger.list_notifications(actor="cown")} == {in_county}
    assert {n.level for n in ledger.list_notifications(level="warn")} == {"warn"}


def test_recipients__parent_when_the_unit_has_nobody(ledger: Engine) -> None:
    case_id = open_case(ledger, "COUNTY1")
    ledger.escalate_due(local(2025, 3, 11))
    assert recipients(ledger, case_id) == {
        ("remind", "owner", "own"), ("warn", "owner", "own"), ("warn", "head", "head"),
    }  # fmt: skip


def test_recipients__co_units_owners_and_heads_get_remind_and_warn(ledger: Engine) -> None:
    ledger.add_actor("c2own", ["owner"], ["CITY2"])
    ledger.add_actor("c2head", ["head"], ["CITY2"])
    case_id = open_case(ledger, "CITY1", co_units=["CITY2"])
    ledger.escalate_due(local(2025, 3, 18))  # remind, warn, supervise
    assert recipients(ledger, case_id) == {
        ("remind", "owner", "own"), ("remind", "owner", "c2own"),
        ("warn", "owner", "own"), ("warn", "owner", "c2own"),
        ("warn", "head", "head"), ("warn", "head", "c2head"),
        ("supervise", "supervisor", "sup"),
    }  # fmt: skip
    notes = ledger.list_notifications(case_id=case_id)
    assert len(notes) == 7  # one row per person and level


def test_raise__supervise_and_notify_public_move_up_one_unit_each(ledger: Engine) -> None:
    ledger.add_actor("csup", ["supervisor"], ["CITY1"])
    ledger.add_actor("psup", ["supervisor"], ["PROV"])
    case_id = open_case(ledger, "COUNTY1")
    assert ledger.get_case(case_id).supervising_unit is None
    assert [c.id for c in supervised_by(ledger, "COUNTY1")] == [case_id]

    ledger.escalate_due(local(2025, 3, 18))  # remind, warn, supervise (17 March)
    raised = ledger.get_case(case_id)
    assert raised.supervising_unit == "CITY1"
    assert [(e.level, e.raised_to) for e in ledger.escalations(case_id)] == [
        ("remind", None), ("warn", None), ("supervise", "CITY1"),
    ]  # fmt: skip
    assert recipients(ledger, case_id, "supervise") == {("supervise", "supervisor", "csup")}
    assert [c.id for c in supervised_by(ledger, "CITY1")] == [case_id]
    assert supervised_by(ledger, "COUNTY1") == []

    ledger.escalate_due(local(2025, 4, 1))  # notify_public (31 March)
    assert ledger.get_case(case_id).supervising_unit == "PROV"
    assert ledger.escalations(case_id)[-1].raised_to == "PROV"
    assert recipients(ledger, case_id, "notify_public") == {("notify_public", "supervisor", "psup")}
    ledger.escalate_due(local(2025, 6, 1))  # accountability: no raise, told from PROV
    assert (ledger.escalations(case_id)[-1].level, ledger.escalations(case_id)[-1].raised_to) == (
        "accountability", None,
    )  # fmt: skip
    assert recipients(ledger, case_id, "accountability") == {
        ("accountability", "supervisor", "psup")
    }
    assert ledger.get_case(case_id).supervising_unit == "PROV"
    assert [c.id for c in supervised_by(ledger, "PROV")] == [case_id]
    assert supervised_by(ledger, "CITY1") == []
    ledger.verify_history(case_id)


def test_raise__unbound_supervisors_when_no_unit_above_has_one(ledger: Engine) -> None:
    case_id = open_case(ledger, "CITY1")
    ledger.escalate_due(local(2025, 4, 1))  # up to notify_public
    assert ledger.get_case(case_id).supervising_unit == "PROV"
    assert recipients(ledger, case_id, "supervise") == {("supervise", "supervisor", "sup")}
    assert recipients(ledger, case_id, "notify_public") == {("notify_public", "supervisor", "sup")}


def test_raise__stops_at_the_root(ledger: Engine) -> None:
    ledger.add_actor("psup", ["supervisor"], ["PROV"])
    in_prov = open_case(ledger, "PROV")
    in_city = open_case(ledger, "CITY2")
    ledger.escalate_due(local(2025, 4, 1))  # supervise and notify_public
    assert [(e.level, e.raised_to) for e in ledger.escalations(in_prov)][2:] == [
        ("supervise", None), ("notify_public", None),
    ]  # fmt: skip
    assert ledger.get_case(in_prov).supervising_unit is None
    assert [(e.level, e.raised_to) for e in ledger.escalations(in_city)][2:] == [
        ("supervise", "PROV"), ("notify_public", None),
    ]  # fmt: skip
    assert ledger.get_case(in_city).supervising_unit == "PROV"
    assert [c.id for c in supervised_by(ledger, "PROV")] == [in_prov, in_city]
    assert recipients(ledger, in_prov, "notify_public") == {("notify_public", "supervisor", "psup")}
    ledger.verify_history()


def test_find_cases__on_the_engine(ledger: Engine) -> None:
    """Issue 12 names ``engine.find_cases(supervised_by=...)`` for host apps."""
    in_county = open_case(ledger, "COUNTY1")
    open_case(ledger, "CITY2")
    ledger.escalate_due(local(2025, 3, 18))  # supervise: COUNTY1 raised to CITY1
    assert [c.id for c in ledger.find_cases(supervised_by="CITY1")] == [in_county]
    assert ledger.find_cases(supervised_by="COUNTY1") == []


def test_v1__no_lookback_no_raise(ledger: Engine) -> None:
    ledger.add_actor("csup", ["supervisor"], ["CITY1"])
    old = open_case(ledger, "COUNTY1", workflow_version=1)
    assert ledger.get_case(old).workflow_version == 1
    ledger.escalate_due(local(2025, 6, 1))  # the whole ladder
    assert [e.raised_to for e in ledger.escalations(old)] == [None] * 5
    case = ledger.get_case(old)
    assert case.supervising_unit is None
    # told from its own unit up: COUNTY1 has no supervisor, CITY1 has csup
    assert recipients(ledger, old, "notify_public") == {("notify_public", "supervisor", "csup")}
    assert [c.id for c in supervised_by(ledger, "COUNTY1")] == [old]

    closed = closed_case(ledger, workflow_version=1)
    after = ledger.get_case(closed)
    assert (after.state, after.lookback_due_at, after.lookback_result) == ("closed", None, None)
    with pytest.raises(TransitionRejected):
        ledger.record_lookback(closed, "ver", "held", now=local(2025, 3, 5))
    with pytest.raises(TransitionRejected):  # v1 has no relapse transition
        ledger.fire(closed, "relapse", "ver", comment="x", now=local(2025, 3, 5))
    ledger.escalate_due(local(2025, 12, 1))
    assert "lookback" not in levels(ledger, closed)
    ledger.verify_history()


def test_v1__extensions_and_exemptions_work_with_the_default_roles(ledger: Engine) -> None:
    case_id = rectifying(ledger, workflow_version=1, due=dt.date(2025, 3, 14))
    ledger.request_extension(
        case_id, "own", until=dt.date(2025, 3, 28), reason="r", now=local(2025, 3, 4)
    )
    ledger.decide_extension(case_id, "sup", approve=True, now=local(2025, 3, 4))
    assert ledger.get_case(case_id).due_at == end_of_day(2025, 3, 28)
    exempted = ledger.exempt(
        case_id, "sup", reason="r", until=dt.date(2025, 3, 6), now=local(2025, 3, 4)
    )
    assert exempted.exempt_until == end_of_day(2025, 3, 6)
    ledger.verify_history(case_id)


# --- reports --------------------------------------------------------------------------------


def test_progress__closed_loop_figures(ledger: Engine) -> None:
    held = closed_case(ledger)
    ledger.record_lookback(held, "ver", "held", now=local(2025, 3, 5))
    relapsed = closed_case(ledger)
    ledger.record_lookback(relapsed, "ver", "relapsed", comment="反弹", now=local(2025, 3, 5))
    closed_case(ledger)  # its look-back comes due on 1 June, unrecorded
    extended = rectifying(ledger, due=dt.date(2025, 3, 14))
    ledger.request_extension(
        extended, "own", until=dt.date(2025, 3, 28), reason="r", now=local(2025, 3, 5)
    )
    ledger.decide_extension(extended, "sup", approve=True, now=local(2025, 3, 5))
    exempted = open_case(ledger)
    ledger.exempt(exempted, "sup", reason="r", until=dt.date(2025, 12, 31), now=local(2025, 3, 5))

    figures = ledger.progress(now=local(2025, 6, 2))
    assert figures["categories"]["exempted"] == 1
    assert figures["loop"] == {
        "relapses": 1,
        "lookbacks_due": 1,  # the third case's, due on 1 June
        "lookbacks_done": 1,  # the held one (the relapsed case is open again)
        "extensions_approved": 1,
    }
    before = ledger.progress(now=local(2025, 5, 31))["loop"]
    assert before["lookbacks_due"] == 0


# --- two processes sweep the same due look-backs -------------------------------------------


def race_sweep(url: str, now: str, barrier: Any, out: str) -> None:
    """Connect, wait for the other process, then sweep at ``now``; write what it recorded."""
    with Engine(url) as engine:
        engine.store.list_units()  # connect before the race starts
        barrier.wait(BARRIER_TIMEOUT)
        summary = engine.escalate_due(dt.datetime.fromisoformat(now))
    Path(out).write_text(json.dumps({"by_level": summary.by_level}), "utf-8")


@pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True)
def test_lookback__two_processes_sweeping_record_it_once(
    ledger: Engine, db_url: str, tmp_path: Path
) -> None:
    ledger.add_actor("ver2", ["verifier"])
    cases = [closed_case(ledger) for _ in range(6)]
    barrier = SPAWN.Barrier(2)
    now = local(2025, 6, 2).isoformat()
    outs = [tmp_path / f"sweep{i}.json" for i in range(2)]
    procs = [
        SPAWN.Process(target=race_sweep, args=(db_url, now, barrier, str(out)), daemon=True)
        for out in outs
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(JOIN_TIMEOUT)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert [p.exitcode for p in procs] == [0, 0], "a sweeper died or hung"
    results = [json.loads(out.read_text("utf-8")) for out in outs]
    assert sum(r["by_level"].get("lookback", 0) for r in results) == len(cases)

    with Engine(db_url) as engine:
        for case_id in cases:
            assert [e.level for e in engine.escalations(case_id)].count("lookback") == 1
        notices = engine.list_notifications(level="lookback")
        assert Counter((n.case_id, n.actor) for n in notices) == {
            (case_id, actor): 1 for case_id in cases for actor in ("ver", "ver2")
        }
        assert {n.kind for n in notices} == {"lookback"}
        assert engine.verify_history() > 0
