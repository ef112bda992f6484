"""Engine.edit_case, the ledger fields of open_case, co-units and long-term items."""

from __future__ import annotations

import datetime as dt

import pytest
from integration_support import MONDAY, SQL_BACKENDS, end_of_day, local, open_case
from ledger_samples import setup_units

from rectiflow import (
    Engine,
    Light,
    NotFound,
    PermissionDenied,
    TransitionRejected,
    ValidationError,
)

pytestmark = pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True)


@pytest.fixture
def hlj(ledger: Engine) -> Engine:
    return setup_units(ledger)


def _to_rectify(engine: Engine, case_id: int, now: dt.datetime = MONDAY) -> None:
    engine.fire(case_id, "confirm", "sup", now=now)
    engine.add_measure(case_id, "own", "fix it", now=now)
    engine.fire(case_id, "approve_plan", "rev", now=now)


def test_edit__supervisor_one_entry_old_to_new(hlj: Engine) -> None:
    case_id = open_case(hlj, category="营商环境")
    edited = hlj.edit_case(
        case_id, "sup", title="新标题", category="", target="三个环节", responsible="李明",
        comment="核实后更正", now=local(2025, 3, 4),
    )  # fmt: skip
    assert (edited.title, edited.category, edited.target, edited.responsible) == (
        "新标题", None, "三个环节", "李明",
    )  # fmt: skip
    entries = hlj.history(case_id)
    assert [h.trigger for h in entries] == ["open", "edit"]
    comment = entries[-1].comment or ""
    assert "title: problem in CITY1 → 新标题" in comment
    assert "category: 营商环境 → —" in comment
    assert "核实后更正" in comment
    assert entries[-1].source == entries[-1].dest == "identify"
    hlj.verify_history(case_id)
    with pytest.raises(ValidationError):
        hlj.edit_case(case_id, "sup", title="新标题", now=local(2025, 3, 4))  # nothing to change
    with pytest.raises(ValidationError):
        hlj.edit_case(case_id, "sup", title="  ", now=local(2025, 3, 4))


def test_edit__reporter_only_while_identifying(hlj: Engine) -> None:
    case_id = hlj.open_case("rep", unit="CITY1", title="t", now=MONDAY).id
    hlj.edit_case(case_id, "rep", title="t2", now=MONDAY)
    hlj.fire(case_id, "confirm", "sup", now=MONDAY)
    version = hlj.get_case(case_id).version
    with pytest.raises(PermissionDenied):
        hlj.edit_case(case_id, "rep", title="t3", now=MONDAY)
    with pytest.raises(PermissionDenied):
        hlj.edit_case(case_id, "own", title="t3", now=MONDAY)
    assert hlj.get_case(case_id).version == version


def test_edit__refused_on_final_cases(hlj: Engine) -> None:
    case_id = open_case(hlj)
    hlj.fire(case_id, "dismiss", "sup", comment="不予立项", now=MONDAY)
    with pytest.raises(TransitionRejected):
        hlj.edit_case(case_id, "sup", title="x", now=MONDAY)
    assert [h.trigger for h in hlj.history(case_id)] == ["open", "dismiss"]


def test_edit__due_and_severity_recompute_the_deadline(hlj: Engine) -> None:
    case_id = open_case(hlj)
    _to_rectify(hlj, case_id)
    before = hlj.get_case(case_id)
    later = local(2025, 3, 10)

    moved = hlj.edit_case(case_id, "sup", due=dt.date(2025, 6, 30), now=later)
    assert (moved.due, moved.due_at) == (end_of_day(2025, 6, 30), end_of_day(2025, 6, 30))
    assert (moved.visit, moved.stage_entered_at, moved.next_level) == (before.visit + 1, later, 0)
    assert "due: " in (hlj.history(case_id)[-1].comment or "")

    other = open_case(hlj)
    _to_rectify(hlj, other)
    medium = hlj.get_case(other)
    high = hlj.edit_case(other, "sup", severity="high", now=later)
    assert high.due_at is not None
    assert medium.due_at is not None
    assert high.due_at < medium.due_at + dt.timedelta(days=7)  # 20wd from later, not 40wd
    assert high.visit == medium.visit + 1


def test_edit__units_checked(hlj: Engine) -> None:
    case_id = open_case(hlj)
    with pytest.raises(NotFound):
        hlj.edit_case(case_id, "sup", unit="NOPE", now=MONDAY)
    with pytest.raises(NotFound):
        hlj.edit_case(case_id, "sup", co_units=["NOPE"], now=MONDAY)
    with pytest.raises(ValidationError):
        hlj.edit_case(case_id, "sup", co_units=["CITY1"], now=MONDAY)  # the lead itself
    rep_case = hlj.open_case("rep", unit="CITY1", title="t", now=MONDAY).id
    with pytest.raises(PermissionDenied):  # rep may not move its case out of CITY1
        hlj.edit_case(rep_case, "rep", unit="CITY2", now=MONDAY)
    edited = hlj.edit_case(case_id, "sup", unit="CITY2", co_units=["HRB", "CITY1"], now=MONDAY)
    assert edited.unit == "CITY2"
    assert hlj.store.co_units_of([case_id]) == {case_id: ["CITY1", "HRB"]}
    assert "co_units: — → HRB、CITY1" in (hlj.history(case_id)[-1].comment or "")
    hlj.verify_history(case_id)


def test_open_case__ledger_fields_and_duplicate_ref(hlj: Engine) -> None:
    case = hlj.open_case(
        "sup", unit="HRB", title="t", ref=" 1-1 ", target="目标", responsible="张伟",
        co_units=["QQHR", "HRB"], long_term=True, source="巡视", now=MONDAY,
    )  # fmt: skip
    assert (case.ref, case.target, case.responsible, case.long_term) == (
        "1-1",
        "目标",
        "张伟",
        True,
    )
    assert hlj.store.co_units_of([case.id]) == {case.id: ["QQHR"]}
    with pytest.raises(ValidationError):
        hlj.open_case("sup", unit="HRB", title="again", ref="1-1", source="巡视", now=MONDAY)
    other = hlj.open_case("sup", unit="HRB", title="t", ref="1-1", source="审计", now=MONDAY)
    assert other.ref == "1-1"
    assert len(list(hlj.store.iter_case_ids())) == 2


def test_co_units__note_but_not_fire_and_listed_with_include_co(hlj: Engine) -> None:
    case = hlj.open_case("sup", unit="HRB", title="t", co_units=["QQHR"], now=MONDAY)
    _to_hrb_rectify(hlj, case.id)
    note = hlj.note(case.id, "co_own", "配合单位已完成调研", now=MONDAY)
    assert note.actor == "co_own"
    hlj.complete_measure(hlj.measures(case.id)[0].id, "hrb_own", now=MONDAY)
    with pytest.raises(PermissionDenied):
        hlj.fire(case.id, "submit", "co_own", now=MONDAY)
    qqhr = hlj.get_unit("QQHR").path
    assert hlj.store.find_cases(unit_paths=[qqhr]) == []
    assert [c.id for c in hlj.store.find_cases(unit_paths=[qqhr], include_co=True)] == [case.id]
    assert hlj.store.count_cases(unit_paths=[qqhr], include_co=True) == 1
    with pytest.raises(PermissionDenied):  # a unit neither leading nor co-working
        hlj.note(case.id, "own", "x", now=MONDAY)


def _to_hrb_rectify(engine: Engine, case_id: int) -> None:
    engine.fire(case_id, "confirm", "sup", now=MONDAY)
    engine.add_measure(case_id, "hrb_own", "调研", now=MONDAY)
    engine.fire(case_id, "approve_plan", "rev", now=MONDAY)


def test_long_term__no_deadline_green_and_monthly_dispatch(hlj: Engine) -> None:
    case_id = open_case(hlj, long_term=True)
    _to_rectify(hlj, case_id)
    case = hlj.get_case(case_id)
    assert (case.state, case.due_at, case.next_escalation_at) == ("rectify", None, None)
    far = local(2026, 3, 2)
    assert hlj.light(case, far) is Light.GREEN
    assert hlj.escalate_due(far).fired == 0
    assert hlj.dispatch_reminders(far) >= 1
    reminders = hlj.store.list_notifications(case_id, kind="dispatch")
    assert [n.role for n in reminders] == ["owner"]
