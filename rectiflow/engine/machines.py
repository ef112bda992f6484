"""One cached transitions.Machine per workflow version, fired on a light token.

Cases are never attached to a machine (``add_model`` cost grows with attached models):
each fire builds a token carrying the case's state, triggers the event on it, and reads the
new state back. ``auto_transitions=False`` because the ``to_<state>`` helpers skip guards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rectiflow.engine import guards
from rectiflow.engine.errors import TransitionRejected
from rectiflow.engine.guards import GuardContext
from rectiflow.engine.permissions import authorize
from rectiflow.engine.spec import TransitionSpec, WorkflowSpec
from rectiflow.engine.types import Actor, Case

if TYPE_CHECKING:
    from transitions import Machine

# transitions is imported when a machine is first built or fired: reading cases needs none.
_CACHE: dict[tuple[str, int, str], Machine] = {}


class _Token:
    """The light object a machine fires on: only the state attribute."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


def _condition(name: str) -> Any:
    check = guards.REGISTRY[name]

    def condition(event_data: Any) -> bool:
        ctx: GuardContext = event_data.kwargs["ctx"]
        reason = check(ctx)
        if reason is not None:
            ctx.refusal = reason
            return False
        return True

    condition.__name__ = name
    return condition


def machine_for(spec: WorkflowSpec) -> Machine:
    """The machine of a workflow version, built once (a version is immutable)."""
    key = (spec.name, spec.version, spec.digest)
    machine = _CACHE.get(key)
    if machine is None:
        from transitions import Machine, State

        machine = Machine(
            model=None,
            states=[State(name, final=state.final) for name, state in spec.states.items()],
            initial=spec.initial,
            auto_transitions=False,
            send_event=True,
            ignore_invalid_triggers=False,
        )
        for t in spec.transitions:
            machine.add_transition(
                t.trigger, t.source, t.dest, conditions=[_condition(g) for g in t.guards]
            )
        _CACHE[key] = machine
    return machine


def admit(
    spec: WorkflowSpec, case: Case, trigger: str, actor: Actor | None, name: str
) -> TransitionSpec:
    """The checks before the data and the guards: ``trigger`` leaves the case's state, the
    actor holds one of its roles and covers the case's unit, the case is not paused.
    Returns the transition; raises TransitionRejected or PermissionDenied."""
    transition = spec.transition(trigger, case.state)
    if transition is None:
        raise refusal(spec, case, trigger)
    authorize(actor, name, transition.roles, case.unit_path, f"{trigger} case {case.id}")
    if case.paused_at is not None:
        reason = "the case is paused; resume it first"
        raise TransitionRejected(case.id, trigger, case.state, reason)
    return transition


def fire(spec: WorkflowSpec, trigger: str, ctx: GuardContext) -> str:
    """Fire ``trigger`` from the case's state; return the destination state."""
    from transitions import MachineError

    case = ctx.case
    event = machine_for(spec).events.get(trigger)
    if event is None:
        raise refusal(spec, case, trigger)
    token = _Token(case.state)
    try:
        moved = event.trigger(token, ctx=ctx)
    except MachineError:
        raise refusal(spec, case, trigger) from None
    if not moved:
        raise TransitionRejected(case.id, trigger, case.state, ctx.refusal or "a guard refused")
    return token.state


def refusal(spec: WorkflowSpec, case: Case, trigger: str) -> TransitionRejected:
    """Why ``trigger`` cannot fire from the case's state at all."""
    if trigger not in spec.triggers:
        reason = f"workflow {spec.name}@{spec.version} has no trigger {trigger!r}"
    else:
        valid = valid_triggers(spec, case.state)
        hint = f" (valid now: {', '.join(valid)})" if valid else " (it is a final state)"
        reason = f"not valid from state {case.state}{hint}"
    return TransitionRejected(case.id, trigger, case.state, reason)


def valid_triggers(spec: WorkflowSpec, state: str) -> list[str]:
    return [t.trigger for t in spec.transitions if t.source == state]
