"""Engine.on_transition: ``hook(case, trigger, source)`` after every committed transition,
with the case as it is after it; never for a fire that was refused."""

from __future__ import annotations

import pytest
from integration_support import MONDAY, SQL_BACKENDS, local, open_case

from rectiflow import (
    Case,
    ConflictError,
    Engine,
    NotFound,
    PermissionDenied,
    TransitionRejected,
)

Call = tuple[Case, str, str]


def _recorder(engine: Engine) -> list[Call]:
    calls: list[Call] = []
    engine.on_transition(lambda case, trigger, source: calls.append((case, trigger, source)))
    return calls


def test_on_transition__case_after_trigger_and_source(ledger: Engine) -> None:
    case_id = open_case(ledger)
    calls = _recorder(ledger)
    confirmed = ledger.fire(case_id, "confirm", "sup", now=local(2025, 3, 4))
    ledger.add_measure(case_id, "own", "fix it", now=local(2025, 3, 4))  # not a transition
    planned = ledger.fire(case_id, "approve_plan", "rev", now=local(2025, 3, 5))

    assert [(trigger, source, case.state) for case, trigger, source in calls] == [
        ("confirm", "identify", "plan"),
        ("approve_plan", "plan", "rectify"),
    ]
    # the case after the transition: what fire returns, and what the store now holds
    assert [case for case, _, _ in calls] == [confirmed, planned]
    assert calls[-1][0] == ledger.get_case(case_id)
    assert [case.history_seq for case, _, _ in calls] == [2, 4]  # 3: the measure added


def test_on_transition__every_hook_in_the_order_added(ledger: Engine) -> None:
    case_id = open_case(ledger)
    order: list[str] = []
    ledger.on_transition(lambda case, trigger, source: order.append(f"first {trigger}"))
    ledger.on_transition(lambda case, trigger, source: order.append(f"second {trigger}"))
    ledger.fire(case_id, "dismiss", "sup", comment="not a problem", now=MONDAY)
    assert order == ["first dismiss", "second dismiss"]


@pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True)
def test_on_transition__runs_after_the_commit(ledger: Engine, db_url: str) -> None:
    """Another connection already sees the new state and its history row when the hook
    runs: the hook is not inside the transaction."""
    case_id = open_case(ledger)
    seen: list[tuple[str, int, list[str]]] = []

    def look_from_outside(case: Case, trigger: str, source: str) -> None:
        with Engine(db_url) as other:
            stored = other.get_case(case.id)
            seen.append((stored.state, stored.version, [e.trigger for e in other.history(case.id)]))

    ledger.on_transition(look_from_outside)
    after = ledger.fire(case_id, "confirm", "sup", now=MONDAY)
    assert seen == [("plan", after.version, ["open", "confirm"])]


def test_on_transition__not_called_for_a_refused_fire(ledger: Engine) -> None:
    case_id = open_case(ledger)
    calls = _recorder(ledger)
    with pytest.raises(TransitionRejected):  # not a trigger from identify
        ledger.fire(case_id, "approve_plan", "rev", now=MONDAY)
    with pytest.raises(TransitionRejected):  # dismiss needs a comment
        ledger.fire(case_id, "dismiss", "sup", now=MONDAY)
    with pytest.raises(PermissionDenied):  # a reviewer cannot confirm
        ledger.fire(case_id, "confirm", "rev", now=MONDAY)
    with pytest.raises(ConflictError):  # the case is at version 1
        ledger.fire(case_id, "confirm", "sup", expect_version=7, now=MONDAY)
    with pytest.raises(NotFound):
        ledger.fire(4242, "confirm", "sup", now=MONDAY)
    ledger.fire(case_id, "confirm", "sup", now=MONDAY)
    with pytest.raises(TransitionRejected):  # approve_plan needs a measure
        ledger.fire(case_id, "approve_plan", "rev", now=MONDAY)
    assert [(trigger, source) for _, trigger, source in calls] == [("confirm", "identify")]
