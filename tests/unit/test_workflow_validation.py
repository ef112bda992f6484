"""Every refusal of a workflow definition names the file, the line and the key."""

from __future__ import annotations

import pytest

from rectiflow import Engine, ValidationError

# A small valid workflow; each test breaks one line of it. Line numbers in the expected
# messages refer to this text (after the edit).
BASE = """\
name: review
version: 1
title: {en: Review, zh: 审查}
initial: draft
roles: [author, reviewer]
states:
  draft:
    en: Draft
    zh: 草稿
    sla: 5wd
  verify:
    en: Verify
    zh: 核查
    sla: {high: 1d, medium: 2d, low: 3d}
  done:
    en: Done
    zh: 完成
    final: true
transitions:
  - trigger: send
    source: draft
    dest: verify
    roles: [author]
  - trigger: back
    source: verify
    dest: draft
    roles: [reviewer]
    requires: [comment]
  - trigger: finish
    source: verify
    dest: done
    roles: [reviewer]
    guards: [has_measures]
escalation:
  - level: remind
    offset: -1wd
    notify: [author]
  - level: warn
    offset: 0
    notify: [reviewer]
"""


def edit(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"{old!r} must occur once in BASE"
    return BASE.replace(old, new)


def refusal(engine: Engine, text: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        engine.register_workflow(text, "bad.yaml")
    assert engine.store.get_workflow("review") is None, "a refused workflow is not registered"
    return info.value


def test_workflow__base_definition_is_valid(engine: Engine) -> None:
    spec = engine.register_workflow(BASE, "good.yaml")
    assert (spec.name, spec.version, spec.initial) == ("review", 1, "draft")
    assert spec.final_states == ("done",)


def test_workflow__unknown_dest_state(engine: Engine) -> None:
    error = refusal(engine, edit("    dest: done\n", "    dest: verfy\n"))
    assert str(error) == "bad.yaml:31: transitions[2].dest: unknown state 'verfy'"
    assert (error.where, error.key) == ("bad.yaml:31", "transitions[2].dest")


def test_workflow__unknown_source_state(engine: Engine) -> None:
    error = refusal(engine, edit("    source: draft\n", "    source: drat\n"))
    assert str(error) == "bad.yaml:21: transitions[0].source: unknown state 'drat'"


def test_workflow__unknown_state_in_a_source_list(engine: Engine) -> None:
    error = refusal(
        engine, edit("    source: draft\n", "    source:\n      - draft\n      - vrfy\n")
    )
    assert str(error) == "bad.yaml:23: transitions[0].source[1]: unknown state 'vrfy'"


def test_workflow__missing_initial_state(engine: Engine) -> None:
    error = refusal(engine, edit("initial: draft\n", ""))
    assert str(error) == "bad.yaml:1: missing initial state (key 'initial')"


def test_workflow__initial_state_not_defined(engine: Engine) -> None:
    error = refusal(engine, edit("initial: draft\n", "initial: drft\n"))
    assert str(error) == "bad.yaml:4: initial: unknown state 'drft'"


def test_workflow__no_final_state(engine: Engine) -> None:
    error = refusal(engine, edit("    final: true\n", ""))
    assert (
        str(error) == "bad.yaml:6: states: no final state (mark at least one state `final: true`)"
    )


def test_workflow__unreachable_state(engine: Engine) -> None:
    text = edit("  done:\n", "  orphan: {en: Orphan, zh: 孤立, sla: 1d}\n  done:\n").replace(
        "escalation:\n",
        "  - {trigger: leave, source: orphan, dest: done, roles: [author]}\nescalation:\n",
    )
    error = refusal(engine, text)
    assert str(error) == "bad.yaml:15: states.orphan: state 'orphan' is unreachable from 'draft'"


def test_workflow__state_that_cannot_reach_a_final_state(engine: Engine) -> None:
    text = edit("  done:\n", "  limbo: {en: Limbo, zh: 搁置, sla: 1d}\n  done:\n").replace(
        "escalation:\n",
        "  - {trigger: park, source: draft, dest: limbo, roles: [author]}\nescalation:\n",
    )
    error = refusal(engine, text)
    assert str(error) == "bad.yaml:15: states.limbo: no final state can be reached from 'limbo'"


def test_workflow__trigger_defined_twice_from_one_source(engine: Engine) -> None:
    text = edit(
        "    roles: [author]\n",
        "    roles: [author]\n  - {trigger: send, source: draft, dest: done, roles: [author]}\n",
    )
    error = refusal(engine, text)
    assert str(error) == (
        "bad.yaml:24: transitions[1].trigger: trigger 'send' from state 'draft' "
        "already defined at line 20"
    )


def test_workflow__same_trigger_from_two_sources_is_allowed(engine: Engine) -> None:
    text = edit(
        "    roles: [author]\n",
        "    roles: [author]\n  - {trigger: send, source: verify, dest: done, roles: [author]}\n",
    )
    assert len(engine.register_workflow(text, "ok.yaml").transitions) == 4


def test_workflow__unknown_guard(engine: Engine) -> None:
    error = refusal(engine, edit("    guards: [has_measures]\n", "    guards: [has_measure]\n"))
    assert str(error) == (
        "bad.yaml:33: transitions[2].guards[0]: unknown guard 'has_measure' "
        "(known: all_measures_done, has_measures)"
    )


def test_workflow__unknown_role_in_a_transition(engine: Engine) -> None:
    text = edit("    roles: [reviewer]\n    requires", "    roles: [reviewr]\n    requires")
    error = refusal(engine, text)
    assert str(error) == "bad.yaml:27: transitions[1].roles[0]: unknown role 'reviewr'"


def test_workflow__unknown_role_in_the_ladder(engine: Engine) -> None:
    error = refusal(engine, edit("    notify: [reviewer]\n", "    notify: [reviewer, boss]\n"))
    assert str(error) == "bad.yaml:40: escalation[1].notify[1]: unknown role 'boss'"


def test_workflow__unknown_role_in_permissions(engine: Engine) -> None:
    text = edit(
        "roles: [author, reviewer]\n",
        "roles: [author, reviewer]\npermissions:\n  open: [auditor]\n",
    )
    error = refusal(engine, text)
    assert str(error) == "bad.yaml:7: permissions.open[0]: unknown role 'auditor'"


def test_workflow__malformed_sla(engine: Engine) -> None:
    error = refusal(engine, edit("    sla: 5wd\n", "    sla: 5 wd\n"))
    assert str(error).startswith("bad.yaml:10: states.draft.sla: malformed duration '5 wd'")


def test_workflow__signed_sla(engine: Engine) -> None:
    error = refusal(engine, edit("    sla: 5wd\n", "    sla: -5wd\n"))
    assert str(error) == (
        "bad.yaml:10: states.draft.sla: malformed duration '-5wd': a stage SLA takes no sign"
    )


def test_workflow__zero_sla(engine: Engine) -> None:
    error = refusal(engine, edit("    sla: 5wd\n", "    sla: 0wd\n"))
    assert str(error) == (
        "bad.yaml:10: states.draft.sla: malformed duration '0wd': an SLA must be positive"
    )


def test_workflow__malformed_sla_of_one_severity(engine: Engine) -> None:
    error = refusal(engine, edit("medium: 2d", "medium: 2x"))
    assert str(error).startswith("bad.yaml:14: states.verify.sla.medium: malformed duration '2x'")


def test_workflow__sla_missing_a_severity(engine: Engine) -> None:
    error = refusal(engine, edit(", low: 3d}", "}"))
    assert str(error) == "bad.yaml:14: states.verify.sla: missing severities: low"


def test_workflow__malformed_ladder_offset(engine: Engine) -> None:
    error = refusal(engine, edit("    offset: -1wd\n", "    offset: -1wdx\n"))
    assert str(error) == (
        "bad.yaml:36: escalation[0].offset: malformed duration '-1wdx', "
        "expected a form like '-3wd', '0' or '+5wd'"
    )


def test_workflow__fractional_ladder_offset(engine: Engine) -> None:
    error = refusal(engine, edit("    offset: -1wd\n", "    offset: 1.5wd\n"))
    assert str(error).startswith("bad.yaml:36: escalation[0].offset: malformed duration '1.5wd'")


def test_workflow__unknown_top_level_key(engine: Engine) -> None:
    error = refusal(engine, edit("version: 1\n", "version: 1\ncolour: red\n"))
    assert str(error).startswith("bad.yaml:3: colour: unknown key 'colour' (allowed: due_state,")
    assert error.key == "colour"


def test_workflow__unknown_state_key(engine: Engine) -> None:
    error = refusal(engine, edit("    sla: 5wd\n", "    sla: 5wd\n    deadline: 5wd\n"))
    assert str(error) == (
        "bad.yaml:11: states.draft.deadline: unknown key 'deadline' (allowed: en, final, sla, zh)"
    )


def test_workflow__unknown_transition_key(engine: Engine) -> None:
    error = refusal(engine, edit("    guards: [has_measures]\n", "    guard: [has_measures]\n"))
    assert str(error) == (
        "bad.yaml:33: transitions[2].guard: unknown key 'guard' "
        "(allowed: dest, distinct_from, guards, requires, roles, source, trigger)"
    )


def test_workflow__unknown_level_key(engine: Engine) -> None:
    error = refusal(engine, edit("    offset: 0\n", "    offset: 0\n    notfy: [author]\n"))
    assert str(error) == (
        "bad.yaml:40: escalation[1].notfy: unknown key 'notfy' "
        "(allowed: level, notify, offset, raise)"
    )


def test_workflow__key_given_twice(engine: Engine) -> None:
    error = refusal(engine, edit("    dest: draft\n", "    dest: draft\n    dest: done\n"))
    assert str(error) == "bad.yaml:27: transitions[1].dest: key 'dest' given twice"


def test_workflow__yaml_that_does_not_parse(engine: Engine) -> None:
    error = refusal(engine, edit("    dest: verify\n", "   dest: verify\n"))
    assert str(error).startswith("bad.yaml:22: YAML does not parse: ")


def test_workflow__empty_file(engine: Engine) -> None:
    assert str(refusal(engine, "")) == "bad.yaml:1: the file is empty"


def test_workflow__registered_version_is_immutable(engine: Engine) -> None:
    engine.register_workflow(BASE, "review.yaml")
    engine.register_workflow(BASE, "review.yaml")  # the same content again: a no-op
    with pytest.raises(ValidationError, match="already registered with different content"):
        engine.register_workflow(BASE.replace("sla: 5wd", "sla: 6wd"), "review.yaml")
    assert engine.workflow("review", 1).states["draft"].sla_for("low").amount == 5
