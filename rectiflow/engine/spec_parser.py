"""The workflow YAML's checks: plain data in, a validated ``WorkflowSpec`` out.

``parse_workflow`` (in ``spec.py``) reads the YAML and hands its plain data here; every
refusal names the file, the line and the key path. Apart from the specs themselves because
the rules of a definition (known states, roles, guards; levels in order; every state
reachable and able to finish) are long, and a reader of the specs does not need them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rectiflow.engine import guards
from rectiflow.engine.durations import Duration, parse_duration
from rectiflow.engine.spec import (
    _ACTION_DEFAULTS,
    _REQUIREMENTS,
    _RESERVED_TRIGGERS,
    ACTIONS,
    SEVERITIES,
    LevelSpec,
    LookbackSpec,
    StateSpec,
    TransitionSpec,
    WorkflowSpec,
    _closure,
)
from rectiflow.engine.yaml_source import LocatedChecks, _Located

_TOP_KEYS = {
    "name", "version", "title", "initial", "roles", "permissions", "states", "transitions",
    "escalation", "due_state", "lookback",
}  # fmt: skip
_STATE_KEYS = {"en", "zh", "final", "sla"}
_TRANSITION_KEYS = {
    "trigger", "source", "dest", "roles", "guards", "requires", "distinct_from"
}  # fmt: skip
_LEVEL_KEYS = {"level", "offset", "notify", "raise"}
_LOOKBACK_KEYS = {"after", "notify", "state", "relapse"}


class _Parser(LocatedChecks):
    def __init__(self, loc: _Located, text: str) -> None:
        self.loc = loc
        self.text = text

    def required(self, data: dict[str, Any], key: str, path: str) -> Any:
        if key not in data or data[key] is None:
            raise self.fail(path, f"missing required key {key!r}")
        return data[key]

    def name(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.isidentifier():
            raise self.fail(path, f"expected a name (letters, digits, _), got {value!r}")
        return value

    def names(self, value: Any, path: str) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        return tuple(self.name(item, f"{path}[{i}]") for i, item in enumerate(items))

    def duration(self, value: Any, path: str, *, signed: bool = False) -> Duration:
        try:
            return parse_duration(value, signed=signed)
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None

    def workflow(self, data: Any) -> WorkflowSpec:
        data = self.mapping(data, "", _TOP_KEYS)
        name = self.name(self.required(data, "name", ""), "name")
        version = self.required(data, "version", "")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self.fail("version", f"expected a positive integer, got {version!r}")
        title = self.labels(self.required(data, "title", ""), "title")
        roles = self.names(self.required(data, "roles", ""), "roles")
        states = self.states(self.required(data, "states", ""))
        if "initial" not in data or data["initial"] is None:
            raise self.fail("", "missing initial state (key 'initial')")
        initial = self.name(data["initial"], "initial")
        if initial not in states:
            raise self.fail("initial", f"unknown state {initial!r}")
        transitions = self.transitions(self.required(data, "transitions", ""), states, roles)
        ladder = self.ladder(data.get("escalation") or [], roles)
        permissions = self.permissions(data.get("permissions") or {}, roles)
        due_state = data.get("due_state")
        if due_state is not None and self.name(due_state, "due_state") not in states:
            raise self.fail("due_state", f"unknown state {due_state!r}")
        lookback = None
        if data.get("lookback") is not None:
            lookback = self.lookback(data["lookback"], states, transitions, roles)
        spec = WorkflowSpec(
            name=name, version=version, title=title, initial=initial, roles=roles,
            states=states, transitions=transitions, ladder=ladder, permissions=permissions,
            due_state=due_state, lookback=lookback, source_text=self.text,
        )  # fmt: skip
        self.check_graph(spec)
        return spec

    def labels(self, value: Any, path: str) -> dict[str, str]:
        value = self.mapping(value, path, {"en", "zh"})
        for lang in ("en", "zh"):
            if not isinstance(value.get(lang), str) or not value[lang].strip():
                raise self.fail(
                    f"{path}.{lang}" if lang in value else path, f"missing {lang} label"
                )
        return {lang: value[lang] for lang in ("en", "zh")}

    def states(self, value: Any) -> dict[str, StateSpec]:
        if not isinstance(value, dict) or not value:
            raise self.fail("states", "expected a mapping of state names")
        states: dict[str, StateSpec] = {}
        for name, body in value.items():
            path = f"states.{name}"
            self.name(name, path)
            body = self.mapping(body, path, _STATE_KEYS)
            labels = self.labels({k: body.get(k) for k in ("en", "zh") if k in body}, path)
            final = body.get("final", False)
            if not isinstance(final, bool):
                raise self.fail(f"{path}.final", f"expected true or false, got {final!r}")
            sla = None
            if body.get("sla") is not None:
                if final:
                    raise self.fail(f"{path}.sla", "a final state has no SLA")
                sla = self.sla(body["sla"], f"{path}.sla")
            states[name] = StateSpec(name=name, labels=labels, final=final, sla=sla)
        if not any(s.final for s in states.values()):
            raise self.fail("states", "no final state (mark at least one state `final: true`)")
        return states

    def sla(self, value: Any, path: str) -> dict[str, Duration]:
        if isinstance(value, dict):
            value = self.mapping(value, path, set(SEVERITIES))
            missing = [s for s in SEVERITIES if s not in value]
            if missing:
                raise self.fail(path, f"missing severities: {', '.join(missing)}")
            return {s: self.duration(value[s], f"{path}.{s}") for s in SEVERITIES}
        duration = self.duration(value, path)
        return dict.fromkeys(SEVERITIES, duration)

    def transitions(
        self, value: Any, states: Mapping[str, StateSpec], roles: tuple[str, ...]
    ) -> tuple[TransitionSpec, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("transitions", "expected a list of transitions")
        result: list[TransitionSpec] = []
        seen: dict[tuple[str, str], str] = {}
        distinct: list[tuple[str, tuple[str, ...]]] = []  # (path, trigger names), checked last
        for i, body in enumerate(value):
            path = f"transitions[{i}]"
            body = self.mapping(body, path, _TRANSITION_KEYS)
            trigger = self.name(self.required(body, "trigger", path), f"{path}.trigger")
            if trigger in _RESERVED_TRIGGERS or trigger.startswith("to_"):
                raise self.fail(f"{path}.trigger", f"trigger name {trigger!r} is reserved")
            sources = self.names(self.required(body, "source", path), f"{path}.source")
            dest = self.name(self.required(body, "dest", path), f"{path}.dest")
            if dest not in states:
                raise self.fail(f"{path}.dest", f"unknown state {dest!r}")
            allowed = self.names(self.required(body, "roles", path), f"{path}.roles")
            for j, role in enumerate(allowed):
                if role not in roles:
                    raise self.fail(f"{path}.roles[{j}]", f"unknown role {role!r}")
            guard_names = self.names(body.get("guards") or [], f"{path}.guards")
            for j, guard in enumerate(guard_names):
                if guard not in guards.REGISTRY:
                    known = ", ".join(sorted(guards.REGISTRY))
                    raise self.fail(
                        f"{path}.guards[{j}]", f"unknown guard {guard!r} (known: {known})"
                    )
            requires = self.names(body.get("requires") or [], f"{path}.requires")
            for j, req in enumerate(requires):
                if req not in _REQUIREMENTS:
                    raise self.fail(f"{path}.requires[{j}]", f"unknown requirement {req!r}")
            others = self.names(body.get("distinct_from") or [], f"{path}.distinct_from")
            distinct.append((f"{path}.distinct_from", others))
            for j, source in enumerate(sources):
                source_path = f"{path}.source" if len(sources) == 1 else f"{path}.source[{j}]"
                if source not in states:
                    raise self.fail(source_path, f"unknown state {source!r}")
                if (trigger, source) in seen:
                    first = seen[trigger, source]
                    raise self.fail(
                        f"{path}.trigger",
                        f"trigger {trigger!r} from state {source!r} already defined at {first}",
                    )
                seen[trigger, source] = f"line {self.loc.line(path)}"
                result.append(
                    TransitionSpec(trigger, source, dest, allowed, guard_names, requires, others)
                )
        triggers = {t.trigger for t in result}
        for path, others in distinct:
            for j, other in enumerate(others):
                if other not in triggers:
                    raise self.fail(f"{path}[{j}]", f"unknown trigger {other!r}")
        return tuple(result)

    def ladder(self, value: Any, roles: tuple[str, ...]) -> tuple[LevelSpec, ...]:
        if not isinstance(value, list):
            raise self.fail("escalation", "expected a list of levels")
        levels: list[LevelSpec] = []
        for i, body in enumerate(value):
            path = f"escalation[{i}]"
            body = self.mapping(body, path, _LEVEL_KEYS)
            level = self.name(self.required(body, "level", path), f"{path}.level")
            if any(existing.level == level for existing in levels):
                raise self.fail(f"{path}.level", f"level {level!r} defined twice")
            if "offset" not in body:
                raise self.fail(path, "missing required key 'offset'")
            offset = self.duration(body["offset"], f"{path}.offset", signed=True)
            notify = self.names(self.required(body, "notify", path), f"{path}.notify")
            for j, role in enumerate(notify):
                if role not in roles:
                    raise self.fail(f"{path}.notify[{j}]", f"unknown role {role!r}")
            if levels and _rough_seconds(offset) < _rough_seconds(levels[-1].offset):
                raise self.fail(
                    f"{path}.offset",
                    f"level {level!r} ({offset}) comes before {levels[-1].level!r} "
                    f"({levels[-1].offset}): list the levels in the order they fire",
                )
            raises = body.get("raise", False)
            if not isinstance(raises, bool):
                raise self.fail(f"{path}.raise", f"expected true or false, got {raises!r}")
            levels.append(LevelSpec(level, offset, notify, raises))
        return tuple(levels)

    def lookback(
        self, value: Any, states: Mapping[str, StateSpec],
        transitions: tuple[TransitionSpec, ...], roles: tuple[str, ...],
    ) -> LookbackSpec:  # fmt: skip
        body = self.mapping(value, "lookback", _LOOKBACK_KEYS)
        if "after" not in body:
            raise self.fail("lookback", "missing required key 'after'")
        after = self.duration(body["after"], "lookback.after")
        notify = self.names(self.required(body, "notify", "lookback"), "lookback.notify")
        for j, role in enumerate(notify):
            if role not in roles:
                raise self.fail(f"lookback.notify[{j}]", f"unknown role {role!r}")
        state = self.name(body.get("state", "closed"), "lookback.state")
        if state not in states or not states[state].final:
            raise self.fail(
                "lookback.state" if "state" in body else "lookback",
                f"the look-back follows a final state: {state!r} is not one",
            )
        relapse = self.name(body.get("relapse", "relapse"), "lookback.relapse")
        back = [t for t in transitions if t.trigger == relapse and t.source == state]
        if not back or states[back[0].dest].final:
            raise self.fail(
                "lookback.relapse" if "relapse" in body else "lookback",
                f"a look-back needs a transition {relapse!r} from {state!r} back to an open "
                "state (what a relapse fires)",
            )
        return LookbackSpec(after, notify, state, relapse)

    def permissions(self, value: Any, roles: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
        value = self.mapping(value, "permissions", set(ACTIONS))
        result: dict[str, tuple[str, ...]] = {}
        for action in ACTIONS:
            path = f"permissions.{action}"
            if action in value:
                granted = self.names(value[action], path)
            else:
                granted = tuple(r for r in _ACTION_DEFAULTS[action] if r in roles)
            for j, role in enumerate(granted):
                if role not in roles:
                    raise self.fail(f"{path}[{j}]", f"unknown role {role!r}")
            result[action] = granted
        return result

    def check_graph(self, spec: WorkflowSpec) -> None:
        edges: dict[str, set[str]] = {name: set() for name in spec.states}
        reverse: dict[str, set[str]] = {name: set() for name in spec.states}
        for t in spec.transitions:
            edges[t.source].add(t.dest)
            reverse[t.dest].add(t.source)
        reachable = _closure(spec.initial, edges)
        for name in spec.states:
            if name not in reachable:
                raise self.fail(
                    f"states.{name}", f"state {name!r} is unreachable from {spec.initial!r}"
                )
        finishing: set[str] = set()
        for final in spec.final_states:
            finishing |= _closure(final, reverse)
        for name in spec.states:
            if name not in finishing:
                raise self.fail(f"states.{name}", f"no final state can be reached from {name!r}")


def _rough_seconds(offset: Duration) -> int:
    """An offset's length for ordering levels: a working day counts as at least a day."""
    if offset.unit.is_day:
        return offset.amount * 86400
    return offset.seconds
