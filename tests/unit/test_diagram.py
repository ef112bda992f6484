"""Mermaid stateDiagram-v2 text for a registered workflow, zh or en labels."""

from __future__ import annotations

import pytest

from rectiflow import Engine, UsageError

EDGES = """\
    [*] --> identify
    identify --> plan: confirm
    identify --> dismissed: dismiss
    plan --> rectify: approve_plan [has_measures]
    rectify --> verify: submit [all_measures_done]
    verify --> closed: accept
    verify --> rectify: reject
    closed --> rectify: reopen
    closed --> [*]
    dismissed --> [*]
"""


def test_diagram__zh(engine: Engine) -> None:
    assert engine.diagram("rectification") == engine.diagram("rectification", 2, lang="zh")
    assert engine.diagram("rectification", 1, lang="zh") == (
        "stateDiagram-v2\n"
        "    %% rectification@1: 问题整改\n"
        '    state "问题识别" as identify\n'
        '    state "制定方案" as plan\n'
        '    state "整改落实" as rectify\n'
        '    state "验收核查" as verify\n'
        '    state "已销号" as closed\n'
        '    state "不予立项" as dismissed\n' + EDGES
    )


def test_diagram__en(engine: Engine) -> None:
    assert engine.diagram("rectification", 1, lang="en") == (
        "stateDiagram-v2\n"
        "    %% rectification@1: Rectification of a listed problem\n"
        '    state "Identify" as identify\n'
        '    state "Plan" as plan\n'
        '    state "Rectify" as rectify\n'
        '    state "Verify" as verify\n'
        '    state "Closed" as closed\n'
        '    state "Dismissed" as dismissed\n' + EDGES
    )


def test_diagram__of_a_registered_workflow(engine: Engine) -> None:
    engine.register_workflow(
        "name: tiny\nversion: 2\ntitle: {en: Tiny, zh: 小}\ninitial: a\nroles: [r]\n"
        "states:\n  a: {en: Start, zh: 开始}\n  b: {en: End, zh: 结束, final: true}\n"
        "transitions:\n  - {trigger: go, source: a, dest: b, roles: [r]}\n",
        "tiny.yaml",
    )
    assert engine.diagram("tiny", lang="en").splitlines() == [
        "stateDiagram-v2",
        "    %% tiny@2: Tiny",
        '    state "Start" as a',
        '    state "End" as b',
        "    [*] --> a",
        "    a --> b: go",
        "    b --> [*]",
    ]


def test_diagram__unknown_language(engine: Engine) -> None:
    with pytest.raises(UsageError, match="unknown language 'fr'"):
        engine.diagram("rectification", lang="fr")
