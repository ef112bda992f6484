"""Who is acting (issue 14, section 2): the admin role, separation of duties declared by a
workflow (``distinct_from``), actors bound to operating-system logins."""

from __future__ import annotations

from pathlib import Path

import pytest
from integration_support import MONDAY, SQL_BACKENDS, local

from rectiflow import Engine, PermissionDenied, TransitionRejected, ValidationError
from rectiflow.engine.spec import parse_workflow

SQL_ONLY = pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True)  # contacts: SQL only

FOUR_EYES = """\
name: four_eyes
version: 1
title: {en: Four eyes, zh: 双人复核}
initial: draft
roles: [clerk]
permissions:
  open: [clerk]
states:
  draft: {en: Draft, zh: 草稿}
  check: {en: Check, zh: 复核}
  done: {en: Done, zh: 完成, final: true}
transitions:
  - {trigger: submit, source: draft, dest: check, roles: [clerk]}
  - {trigger: reject, source: check, dest: draft, roles: [clerk], distinct_from: [submit]}
  - {trigger: accept, source: check, dest: done, roles: [clerk], distinct_from: [submit]}
"""


# --- the admin role --------------------------------------------------------------------------


@SQL_ONLY
def test_admin__a_ledger_without_an_admin_works_as_before(ledger: Engine, tmp_path: Path) -> None:
    ledger.add_unit("CITY3", "City 3", parent="PROV")
    ledger.add_actor("clerk", ["owner"], ["CITY3"])
    ledger.register_workflow(FOUR_EYES, "four-eyes.yaml")
    ledger.set_contacts("clerk", email="clerk@example.cn")


@SQL_ONLY
def test_admin__once_there_is_one_changes_need_an_admin(ledger: Engine, tmp_path: Path) -> None:
    ledger.add_actor("root", ["admin"])  # `admin` is accepted though no workflow lists it
    table = tmp_path / "2027.csv"
    table.write_text("2027-01-01,holiday\n", "utf-8")
    changes = {
        "add unit CITY3": lambda who: ledger.add_unit("CITY3", "City 3", "PROV", actor=who),
        "add actor clerk": lambda who: ledger.add_actor("clerk", ["owner"], actor=who),
        "edit actor own": lambda who: ledger.set_contacts("own", email="a@b.cn", actor=who),
        "edit actor own ": lambda who: ledger.set_os_user("own", "own", actor=who),
        "add workflow four_eyes@1": lambda who: ledger.register_workflow(
            FOUR_EYES, "four-eyes.yaml", actor=who
        ),
        "load the calendar": lambda who: ledger.load_calendar(table, actor=who, partial=True),
    }
    for what, change in changes.items():
        with pytest.raises(PermissionDenied, match=f"{what.strip()}: this ledger has an admin"):
            change(None)
        with pytest.raises(PermissionDenied, match=f"sup may not {what.strip()}: only an admin"):
            change("sup")
        change("root")
    assert ledger.get_actor("own").os_user == "own"
    ledger.init()  # the shipped workflows are registered again without an admin


# --- separation of duties ------------------------------------------------------------------------


@pytest.fixture
def four_eyes(ledger: Engine) -> Engine:
    ledger.register_workflow(FOUR_EYES, "four-eyes.yaml")
    ledger.add_actor("ann", ["clerk"])
    ledger.add_actor("ben", ["clerk"])
    return ledger


def test_distinct_from__the_submitter_may_not_accept(four_eyes: Engine) -> None:
    case_id = four_eyes.open_case(
        "ann", unit="CITY1", title="t", workflow="four_eyes", now=MONDAY
    ).id
    four_eyes.fire(case_id, "submit", "ann", now=MONDAY)
    with pytest.raises(TransitionRejected, match="ann fired submit in this visit: accept needs"):
        four_eyes.fire(case_id, "accept", "ann", now=MONDAY)
    assert [t.trigger for t in four_eyes.triggers(case_id, "ann")] == []
    four_eyes.fire(case_id, "reject", "ben", now=local(2025, 3, 4))
    four_eyes.fire(case_id, "submit", "ben", now=local(2025, 3, 5))  # a new visit
    with pytest.raises(TransitionRejected, match="separation of duties"):
        four_eyes.fire(case_id, "accept", "ben", now=local(2025, 3, 5))
    assert four_eyes.fire(case_id, "accept", "ann", now=local(2025, 3, 6)).state == "done"


def test_distinct_from__unknown_trigger_is_refused_with_its_line() -> None:
    text = FOUR_EYES.replace("distinct_from: [submit]}\n  - {trigger: accept", (
        "distinct_from: [sbmit]}\n  - {trigger: accept"))  # fmt: skip
    with pytest.raises(
        ValidationError, match=r"wf.yaml:14: transitions\[1\].distinct_from\[0\]: unknown trigger"
    ):
        parse_workflow(text, "wf.yaml")
    spec = parse_workflow(FOUR_EYES, "wf.yaml")
    assert [t.distinct_from for t in spec.transitions] == [(), ("submit",), ("submit",)]
