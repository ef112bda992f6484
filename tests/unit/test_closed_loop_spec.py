"""Issue 12's workflow keys: `lookback`, a level's `raise`, the new permissions, and the
shipped `rectification` v2 that uses them, field by field, beside an unchanged v1.

Every refusal names the file, the line and the key, as for the older keys
(test_workflow_validation.py).
"""

from __future__ import annotations

import pytest

from rectiflow import Engine, ValidationError, parse_workflow
from rectiflow.engine.durations import Duration, Unit
from rectiflow.engine.spec import TransitionSpec, WorkflowSpec

# A small closed loop; each test breaks one line of it. Line numbers in the expected
# messages refer to this text (after the edit).
BASE = """\
name: loop
version: 1
title: {en: Loop, zh: 闭环}
initial: fix
roles: [owner, verifier, supervisor]
permissions:
  exempt: [supervisor]
  extend: [owner]
states:
  fix: {en: Fix, zh: 整改, sla: 5wd}
  check: {en: Check, zh: 核查, sla: 2wd}
  closed: {en: Closed, zh: 已销号, final: true}
transitions:
  - {trigger: submit, source: fix, dest: check, roles: [owner]}
  - {trigger: accept, source: check, dest: closed, roles: [verifier], distinct_from: [submit]}
  - {trigger: relapse, source: closed, dest: fix, roles: [verifier], requires: [comment]}
lookback:
  after: 90d
  notify: [verifier]
escalation:
  - {level: remind, offset: -1wd, notify: [owner]}
  - level: supervise
    offset: +2wd
    notify: [supervisor]
    raise: true
"""

#: The actions issue 12 adds, and the roles they default to in any workflow.
NEW_DEFAULTS = {
    "lookback": ("verifier", "supervisor"),
    "extend": ("owner",),
    "decide_extension": ("supervisor",),
    "exempt": ("supervisor",),
}
V1_PERMISSIONS = {
    "open": ("reporter", "supervisor"),
    "add_measure": ("owner",),
    "complete_measure": ("owner",),
    "pause": ("supervisor",),
    "note": ("owner", "head", "supervisor"),
}


def wd(n: int) -> Duration:
    return Duration(n, Unit.WORKDAYS)


def edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"{old!r} must occur once in BASE"
    return BASE.replace(old, new)


def refusal(text: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        parse_workflow(text, "bad.yaml")
    return info.value


def raises(spec: WorkflowSpec) -> list[tuple[str, bool]]:
    return [(level.level, level.raises) for level in spec.ladder]


# --- the keys ---------------------------------------------------------------------------------


def test_spec__base_closed_loop_is_valid() -> None:
    spec = parse_workflow(BASE, "good.yaml")
    assert spec.lookback is not None
    assert (spec.lookback.after, spec.lookback.notify) == (Duration(90, Unit.DAYS), ("verifier",))
    assert raises(spec) == [("remind", False), ("supervise", True)]
    assert spec.transition("accept", "check") == TransitionSpec(
        "accept", "check", "closed", ("verifier",), distinct_from=("submit",)
    )
    assert spec.transition("relapse", "closed") == TransitionSpec(
        "relapse", "closed", "fix", ("verifier",), requires=("comment",)
    )


def test_spec__no_lookback_key_no_lookback() -> None:
    text = edit("lookback:\n  after: 90d\n  notify: [verifier]\n", "")
    spec = parse_workflow(text, "good.yaml")
    assert spec.lookback is None
    # a workflow without a look-back may well have a relapse transition
    assert spec.transition("relapse", "closed") is not None


def test_spec__raise_false_and_absent_are_the_same() -> None:
    spec = parse_workflow(edit("    raise: true\n", "    raise: false\n"), "good.yaml")
    assert raises(spec) == [("remind", False), ("supervise", False)]
    spec = parse_workflow(edit("    raise: true\n", ""), "good.yaml")
    assert raises(spec) == [("remind", False), ("supervise", False)]


@pytest.mark.parametrize("after", ["90x", "90 d", "ninety", "1.5d"])
def test_spec__lookback_after_a_bad_duration(after: str) -> None:
    error = refusal(edit("  after: 90d\n", f"  after: {after}\n"))
    assert (error.where, error.key) == ("bad.yaml:18", "lookback.after")
    assert str(error).startswith(f"bad.yaml:18: lookback.after: malformed duration '{after}'")


def test_spec__lookback_notify_an_unknown_role() -> None:
    error = refusal(edit("  notify: [verifier]\n", "  notify: [auditor]\n"))
    assert str(error) == "bad.yaml:19: lookback.notify[0]: unknown role 'auditor'"
    assert (error.where, error.key) == ("bad.yaml:19", "lookback.notify[0]")


def test_spec__lookback_notify_second_role_unknown() -> None:
    error = refusal(edit("  notify: [verifier]\n", "  notify: [verifier, boss]\n"))
    assert str(error) == "bad.yaml:19: lookback.notify[1]: unknown role 'boss'"


def test_spec__lookback_unknown_key() -> None:
    error = refusal(edit("  notify: [verifier]\n", "  notify: [verifier]\n  remind: 80d\n"))
    assert (error.where, error.key) == ("bad.yaml:20", "lookback.remind")
    assert str(error).startswith("bad.yaml:20: lookback.remind: unknown key 'remind' (allowed: ")
    assert "after" in str(error)
    assert "notify" in str(error)


def test_spec__lookback_not_a_mapping() -> None:
    error = refusal(edit("lookback:\n  after: 90d\n  notify: [verifier]\n", "lookback: 90d\n"))
    assert (error.where, error.key) == ("bad.yaml:17", "lookback")


@pytest.mark.parametrize("value", ["up", "1", "'true'", "[true]"])
def test_spec__raise_not_a_boolean(value: str) -> None:
    error = refusal(edit("    raise: true\n", f"    raise: {value}\n"))
    assert (error.where, error.key) == ("bad.yaml:25", "escalation[1].raise")
    assert str(error).startswith("bad.yaml:25: escalation[1].raise: ")


def test_spec__raise_in_flow_style_level() -> None:
    text = edit(
        "  - {level: remind, offset: -1wd, notify: [owner]}\n",
        "  - {level: remind, offset: -1wd, notify: [owner], raise: maybe}\n",
    )
    error = refusal(text)
    assert (error.where, error.key) == ("bad.yaml:21", "escalation[0].raise")


def test_spec__lookback_without_a_relapse_transition() -> None:
    relapse = "  - {trigger: relapse, source: closed, dest: fix, roles: [verifier], "
    text = edit(relapse + "requires: [comment]}\n", "")
    error = refusal(text)
    assert (error.where, error.key) == ("bad.yaml:16", "lookback")
    assert str(error).startswith("bad.yaml:16: lookback: ")
    assert "relapse" in str(error)


def test_spec__permissions_exempt_an_unknown_role() -> None:
    error = refusal(edit("  exempt: [supervisor]\n", "  exempt: [boss]\n"))
    assert str(error) == "bad.yaml:7: permissions.exempt[0]: unknown role 'boss'"
    assert (error.where, error.key) == ("bad.yaml:7", "permissions.exempt[0]")


@pytest.mark.parametrize("action", ["lookback", "extend", "decide_extension"])
def test_spec__the_other_new_permissions_check_their_roles(action: str) -> None:
    text = edit("  extend: [owner]\n", f"  {action}: [nobody]\n")
    error = refusal(text)
    assert str(error) == f"bad.yaml:8: permissions.{action}[0]: unknown role 'nobody'"


def test_spec__unexempt_is_not_an_action_of_its_own() -> None:
    error = refusal(edit("  extend: [owner]\n", "  unexempt: [supervisor]\n"))
    assert (error.where, error.key) == ("bad.yaml:8", "permissions.unexempt")
    assert "unknown key 'unexempt'" in str(error)


def test_spec__permissions_given_and_defaulted() -> None:
    spec = parse_workflow(BASE, "good.yaml")
    assert spec.permissions["exempt"] == ("supervisor",)
    assert spec.permissions["extend"] == ("owner",)
    assert spec.permissions["lookback"] == ("verifier", "supervisor")
    assert spec.permissions["decide_extension"] == ("supervisor",)
    given = parse_workflow(edit("  extend: [owner]\n", "  extend: [verifier]\n"), "good.yaml")
    assert given.permissions["extend"] == ("verifier",)


def test_spec__defaults_only_name_roles_the_workflow_has() -> None:
    text = edit("roles: [owner, verifier, supervisor]\n", "roles: [owner, verifier, boss]\n")
    text = text.replace("notify: [supervisor]", "notify: [boss]")
    text = text.replace("  exempt: [supervisor]\n", "  exempt: [boss]\n")
    spec = parse_workflow(text, "good.yaml")
    assert spec.permissions["lookback"] == ("verifier",)
    assert spec.permissions["decide_extension"] == ()


# --- the shipped workflows ----------------------------------------------------------------------


def test_shipped__both_versions_registered_at_init(engine: Engine) -> None:
    records = engine.list_workflows()
    assert [(r.name, r.version) for r in records] == [("rectification", 1), ("rectification", 2)]
    assert [r.digest for r in engine.init()] == [r.digest for r in records]  # init again
    assert len(engine.list_workflows()) == 2
    assert engine.workflow("rectification") == engine.workflow("rectification", 2)


def test_shipped__new_cases_take_v2_unless_asked_for_v1(engine: Engine) -> None:
    new = engine.open_case("sup", unit="DIST", title="t")
    old = engine.open_case("sup", unit="DIST", title="t", workflow_version=1)
    assert (new.workflow, new.workflow_version) == ("rectification", 2)
    assert (old.workflow, old.workflow_version) == ("rectification", 1)


def test_shipped_v2__states_are_v1s(engine: Engine) -> None:
    v1, v2 = engine.workflow("rectification", 1), engine.workflow("rectification", 2)
    assert dict(v2.states) == dict(v1.states)
    assert (v2.initial, v2.roles, v2.due_state, v2.title) == (
        v1.initial, v1.roles, v1.due_state, v1.title,
    )  # fmt: skip


def test_shipped_v2__lookback_90_days_to_the_verifier(engine: Engine) -> None:
    lookback = engine.workflow("rectification", 2).lookback
    assert lookback is not None
    assert (lookback.after, lookback.notify) == (Duration(90, Unit.DAYS), ("verifier",))


def test_shipped_v2__transitions(engine: Engine) -> None:
    v1, v2 = engine.workflow("rectification", 1), engine.workflow("rectification", 2)
    by_key = {(t.trigger, t.source): t for t in v2.transitions}
    assert by_key.pop(("relapse", "closed")) == TransitionSpec(
        "relapse", "closed", "rectify", ("verifier", "supervisor"), (), ("comment",)
    )
    assert by_key.pop(("accept", "verify")) == TransitionSpec(
        "accept", "verify", "closed", ("verifier",), distinct_from=("submit",)
    )
    assert by_key.pop(("reject", "verify")) == TransitionSpec(
        "reject", "verify", "rectify", ("verifier",), (), ("comment",), ("submit",)
    )
    unchanged = {
        (t.trigger, t.source): t for t in v1.transitions if t.trigger not in ("accept", "reject")
    }
    assert by_key == unchanged  # confirm, dismiss, approve_plan, submit, reopen
    assert len(v2.transitions) == len(v1.transitions) + 1


def test_shipped_v2__ladder_raises_at_supervise_and_notify_public(engine: Engine) -> None:
    v1, v2 = engine.workflow("rectification", 1), engine.workflow("rectification", 2)
    assert [(lv.level, lv.offset, lv.notify) for lv in v2.ladder] == [
        (lv.level, lv.offset, lv.notify) for lv in v1.ladder
    ]
    assert raises(v2) == [
        ("remind", False), ("warn", False), ("supervise", True), ("notify_public", True),
        ("accountability", False),
    ]  # fmt: skip


def test_shipped_v2__permissions(engine: Engine) -> None:
    assert dict(engine.workflow("rectification", 2).permissions) == {
        **V1_PERMISSIONS, **NEW_DEFAULTS,
    }  # fmt: skip


def test_shipped_v1__unchanged_but_for_the_default_permissions(engine: Engine) -> None:
    v1 = engine.workflow("rectification", 1)
    assert v1.lookback is None
    assert not any(lv.raises for lv in v1.ladder)
    assert v1.transition("relapse", "closed") is None
    accept = v1.transition("accept", "verify")
    assert accept is not None
    assert accept.distinct_from == ()
    assert dict(v1.permissions) == {**V1_PERMISSIONS, **NEW_DEFAULTS}


def test_shipped_v2__the_file_validates_on_its_own() -> None:
    from importlib import resources

    text = (
        resources.files("rectiflow.workflows").joinpath("rectification-v2.yaml").read_text("utf-8")
    )
    spec = parse_workflow(text, "rectification-v2.yaml")
    assert (spec.name, spec.version) == ("rectification", 2)
