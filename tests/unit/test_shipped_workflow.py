"""The shipped workflow `rectification` v1 is exactly the one the ledger rules prescribe;
v2 is v1 with the loop after the lifecycle (look-back, relapse, raising levels)."""

from __future__ import annotations

from rectiflow import Engine
from rectiflow.engine.durations import Duration, Unit
from rectiflow.engine.spec import TransitionSpec


def wd(n: int) -> Duration:
    return Duration(n, Unit.WORKDAYS)


def test_shipped__registered_at_init(engine: Engine) -> None:
    records = engine.list_workflows()
    assert [(r.name, r.version) for r in records] == [("rectification", 1), ("rectification", 2)]
    assert [r.digest for r in engine.init()] == [r.digest for r in records]  # nothing changes
    assert len(engine.list_workflows()) == 2


def test_shipped__states_labels_and_slas(engine: Engine) -> None:
    spec = engine.workflow("rectification", 1)
    assert spec.initial == "identify"
    assert spec.title == {"en": "Rectification of a listed problem", "zh": "问题整改"}
    states = {
        name: (s.labels["zh"], s.final, None if s.sla is None else dict(s.sla))
        for name, s in spec.states.items()
    }
    assert states == {
        "identify": ("问题识别", False, {"high": wd(5), "medium": wd(5), "low": wd(5)}),
        "plan": ("制定方案", False, {"high": wd(10), "medium": wd(10), "low": wd(10)}),
        "rectify": ("整改落实", False, {"high": wd(20), "medium": wd(40), "low": wd(60)}),
        "verify": ("验收核查", False, {"high": wd(10), "medium": wd(10), "low": wd(10)}),
        "closed": ("已销号", True, None),
        "dismissed": ("不予立项", True, None),
    }
    assert list(states) == ["identify", "plan", "rectify", "verify", "closed", "dismissed"]
    assert spec.final_states == ("closed", "dismissed")


def test_shipped__transitions(engine: Engine) -> None:
    spec = engine.workflow("rectification", 1)
    assert spec.transitions == (
        TransitionSpec("confirm", "identify", "plan", ("supervisor",)),
        TransitionSpec("dismiss", "identify", "dismissed", ("supervisor",), (), ("comment",)),
        TransitionSpec("approve_plan", "plan", "rectify", ("reviewer",), ("has_measures",)),
        TransitionSpec("submit", "rectify", "verify", ("owner",), ("all_measures_done",)),
        TransitionSpec("accept", "verify", "closed", ("verifier",)),
        TransitionSpec("reject", "verify", "rectify", ("verifier",), (), ("comment",)),
        TransitionSpec("reopen", "closed", "rectify", ("supervisor",), (), ("comment",)),
    )


def test_shipped__escalation_ladder(engine: Engine) -> None:
    ladder = engine.workflow("rectification", 1).ladder
    assert [(lv.level, lv.offset, lv.notify) for lv in ladder] == [
        ("remind", wd(-3), ("owner",)),
        ("warn", Duration(0, Unit.SECONDS), ("owner", "head")),
        ("supervise", wd(5), ("supervisor",)),
        ("notify_public", wd(15), ("supervisor",)),
        ("accountability", wd(30), ("supervisor",)),
    ]


def test_shipped__roles_and_permissions(engine: Engine) -> None:
    spec = engine.workflow("rectification", 1)
    assert spec.roles == ("reporter", "owner", "head", "reviewer", "verifier", "supervisor")
    assert dict(spec.permissions) == {
        "open": ("reporter", "supervisor"),
        "add_measure": ("owner",),
        "complete_measure": ("owner",),
        "pause": ("supervisor",),
        "note": ("owner", "head", "supervisor"),
        # the actions of the loop after the lifecycle, by their defaults
        "lookback": ("verifier", "supervisor"),
        "extend": ("owner",),
        "decide_extension": ("supervisor",),
        "exempt": ("supervisor",),
    }
    assert spec.lookback is None
    assert not any(level.raises for level in spec.ladder)


def test_shipped__latest_version_is_the_default(engine: Engine) -> None:
    assert engine.workflow("rectification") == engine.workflow("rectification", 2)


def test_shipped__v2_is_v1_and_the_loop(engine: Engine) -> None:
    v1, v2 = engine.workflow("rectification", 1), engine.workflow("rectification", 2)
    assert (v2.states, v2.roles, v2.initial, v2.due_state) == (
        v1.states,
        v1.roles,
        v1.initial,
        v1.due_state,
    )
    assert v2.lookback is not None
    assert (v2.lookback.after, v2.lookback.notify) == (Duration(90, Unit.DAYS), ("verifier",))
    assert (v2.lookback.state, v2.lookback.relapse) == ("closed", "relapse")
    assert v2.transition("relapse", "closed") == TransitionSpec(
        "relapse", "closed", "rectify", ("verifier", "supervisor"), (), ("comment",)
    )
    accept = v2.transition("accept", "verify")
    assert accept is not None
    assert accept.distinct_from == ("submit",)
    assert [(lv.level, lv.offset, lv.raises) for lv in v2.ladder] == [
        (lv.level, lv.offset, lv.level in ("supervise", "notify_public")) for lv in v1.ladder
    ]
    assert v2.permissions["lookback"] == ("verifier", "supervisor")
    assert sorted(v2.extendable_states) == ["identify", "plan", "rectify"]
