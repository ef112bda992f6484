"""Workflow definitions as data: the YAML schema, parsed and validated when loaded.

Every refusal names the file, the line and the key, e.g.
``review.yaml:14: transitions[2].dest: unknown state 'verfy'``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rectiflow.engine import guards
from rectiflow.engine.durations import Duration, parse_duration
from rectiflow.engine.errors import ValidationError
from rectiflow.engine.types import Severity

if TYPE_CHECKING:
    import yaml

SEVERITIES = tuple(severity.value for severity in Severity)  # high, medium, low
#: The non-transition actions a workflow grants to roles.
ACTIONS = (
    "open", "add_measure", "complete_measure", "pause", "note", "lookback", "extend",
    "decide_extension", "exempt",
)  # fmt: skip
_ACTION_DEFAULTS = {
    "open": ["reporter", "supervisor"],
    "add_measure": ["owner"],
    "complete_measure": ["owner"],
    "pause": ["supervisor"],
    "note": ["owner", "head", "supervisor"],
    "lookback": ["verifier", "supervisor"],  # 回头看: record whether the problem came back
    "extend": ["owner"],  # 申请延期: ask for more time
    "decide_extension": ["supervisor"],
    "exempt": ["supervisor"],  # 容错免责: start and end an exemption
}
_REQUIREMENTS = ("comment",)
#: History entries that are not transitions: a workflow's trigger may not take their names.
_RESERVED_TRIGGERS = (
    "open", "pause", "resume", "note", "lookback", "exempt", "unexempt", "exemption_ended",
    "extension_requested", "extension_approved", "extension_rejected",
)  # fmt: skip


@dataclass(frozen=True)
class StateSpec:
    name: str
    labels: Mapping[str, str]  # lang -> label
    final: bool = False
    sla: Mapping[str, Duration] | None = None  # severity -> duration; None = no deadline

    def sla_for(self, severity: str) -> Duration | None:
        return None if self.sla is None else self.sla[severity]


@dataclass(frozen=True)
class TransitionSpec:
    trigger: str
    source: str
    dest: str
    roles: tuple[str, ...]
    guards: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    # separation of duties: the actor may not be the one who fired one of these triggers
    # in the same visit of the source state
    distinct_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class LevelSpec:
    level: str
    offset: Duration
    notify: tuple[str, ...]
    raises: bool = False  # 提级督办: recording it raises the case one unit up the tree


@dataclass(frozen=True)
class LookbackSpec:
    """回头看: every entry into ``state`` schedules a look-back due ``after`` later; what it
    finds is recorded, and a relapse fires ``relapse`` (back into the lifecycle)."""

    after: Duration
    notify: tuple[str, ...]
    state: str = "closed"
    relapse: str = "relapse"


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    version: int
    title: Mapping[str, str]
    initial: str
    roles: tuple[str, ...]
    states: Mapping[str, StateSpec]
    transitions: tuple[TransitionSpec, ...]
    ladder: tuple[LevelSpec, ...]
    permissions: Mapping[str, tuple[str, ...]]
    due_state: str | None  # the state whose deadline a case's own `due` replaces
    lookback: LookbackSpec | None = None
    source_text: str = field(repr=False, compare=False, default="")

    @cached_property
    def digest(self) -> str:  # the machine cache's key: computed once, asked on every fire
        return hashlib.sha256(self.source_text.encode()).hexdigest()

    @property
    def final_states(self) -> tuple[str, ...]:
        return tuple(name for name, state in self.states.items() if state.final)

    def transition(self, trigger: str, source: str) -> TransitionSpec | None:
        for t in self.transitions:
            if t.trigger == trigger and t.source == source:
                return t
        return None

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.trigger for t in self.transitions))

    @cached_property
    def extendable_states(self) -> frozenset[str]:
        """Where an owner may ask for more time (申请延期): the due state and the states
        on the way to it from the initial one (identify, plan, rectify), not those after."""
        if self.due_state is None:
            return frozenset()
        edges: dict[str, set[str]] = {name: set() for name in self.states}
        for t in self.transitions:
            if t.source != self.due_state:
                edges[t.source].add(t.dest)
        before = _closure(self.initial, edges)
        return frozenset(s for s in before if not self.states[s].final and s != self.due_state) | {
            self.due_state
        }


# --- YAML with line numbers --------------------------------------------------------------


class _Located:
    """Plain Python data from YAML plus the line of every key path."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.lines: dict[str, int] = {}

    def build(self, node: yaml.Node, path: str) -> Any:
        import yaml

        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                self.lines[child] = key_node.start_mark.line + 1
                if key in result:
                    raise self.error(child, f"key {key!r} given twice")
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        try:
            return _scalar(node)
        except (yaml.YAMLError, LookupError, ValueError, TypeError, ArithmeticError) as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise self.error(path, f"bad value {node.value!r}: {problem}") from None

    def line(self, path: str) -> int:
        while path and path not in self.lines:
            path = path.rsplit(".", 1)[0] if "." in path else path.rsplit("[", 1)[0]
        return self.lines.get(path, 1)

    def error(self, path: str, message: str) -> ValidationError:
        return ValidationError(
            f"{path}: {message}" if path else message,
            where=f"{self.filename}:{self.line(path)}",
            key=path,
        )


@functools.cache
def _scalars() -> Any:
    import yaml

    return yaml.SafeLoader("")


def _composer() -> type[Any]:
    # libyaml's parser when PyYAML was built with it: the nodes keep their marks, so the
    # lines of the errors are the same, and rectification.yaml composes in 0.4 ms, not 7 ms.
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # type: ignore[no-any-return]


#: The largest YAML file rectiflow reads (a workflow, a ranking scheme), and how deep its
#: mappings and lists may nest: checked before anything is built from it.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 50


def compose_yaml(text: str, filename: str) -> yaml.Node | None:
    """The YAML node tree of ``text``, refused (ValidationError naming the file and line) when
    it is over ``MAX_YAML_BYTES``, nests deeper than ``MAX_YAML_DEPTH`` or has anchors and
    aliases: an alias can expand ten lines into gigabytes (billion laughs), and a definition
    has no need of them. Checked on the parser's event stream, before a node is made."""
    import yaml

    size = len(text.encode("utf-8", "replace"))
    if size > MAX_YAML_BYTES:
        raise ValidationError(
            f"the file is {size:,} bytes: at most {MAX_YAML_BYTES:,}", where=f"{filename}:1"
        )
    loader = _composer()
    try:
        depth = 0
        for event in yaml.parse(text, Loader=loader):
            line = event.start_mark.line + 1 if event.start_mark is not None else 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ValidationError(
                    "anchors and aliases (&name, *name) are not allowed: write the value out",
                    where=f"{filename}:{line}",
                )
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise ValidationError(
                        f"nested more than {MAX_YAML_DEPTH} levels deep", where=f"{filename}:{line}"
                    )
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
        return yaml.compose(text, Loader=loader)  # type: ignore[no-any-return]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "nesting depth" in problem:  # PyYAML 6.0.4 and later stop deep nesting themselves
            raise ValidationError(
                f"nested more than {MAX_YAML_DEPTH} levels deep", where=f"{filename}:{line}"
            ) from None
        raise ValidationError(
            f"YAML does not parse: {problem}", where=f"{filename}:{line}"
        ) from None


def _scalar(node: yaml.Node) -> Any:
    # Resolve the scalar with SafeLoader's rules (ints, bools, null) without its object graph.
    return _scalars().construct_object(node, deep=True)


# --- the plain data of a definition, kept on disk ---------------------------------------------
# A command reads a registered definition back in every process: the YAML's plain data
# (what ``_Located`` builds: mappings, lists and scalars, and the line of each key path) is
# kept as JSON by the SHA-256 of the text, once the definition has validated, so the next
# process validates it again without importing PyYAML and composing the text. The validation
# itself (``_Parser``) always runs. RECTIFLOW_CACHE_DIR sets the folder ("" or "-": none).

_PLAIN_FORMAT = 1  # bump when what _Located builds from the same text changes


def _plain_cache(text: str) -> Path | None:
    folder = os.environ.get("RECTIFLOW_CACHE_DIR")
    if folder is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "rectiflow")
    if folder in ("", "-"):
        return None
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Path(folder) / f"workflow-{_PLAIN_FORMAT}-{digest}.json"


def _read_plain(path: Path | None) -> tuple[Any, dict[str, int]] | None:
    if path is None:
        return None
    try:
        data, lines = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, TypeError):
        return None
    return (data, lines) if isinstance(lines, dict) else None


def _write_plain(path: Path | None, saved: str | None) -> None:
    if path is None or saved is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{os.getpid()}.part")
        part.write_text(saved, "utf-8")
        os.replace(part, path)  # whole or not at all, for a process reading it meanwhile
    except OSError:
        pass


# --- parsing -------------------------------------------------------------------------------

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


def parse_workflow(text: str, filename: str = "<workflow>") -> WorkflowSpec:
    """Parse and validate a workflow definition; raise ValidationError naming file:line."""
    loc = _Located(filename)
    cache = _plain_cache(text)
    found = _read_plain(cache)
    if found is not None:
        data, loc.lines = found
        return _Parser(loc, text).workflow(data)
    root = compose_yaml(text, filename)
    if root is None:
        raise ValidationError("the file is empty", where=f"{filename}:1")
    data = loc.build(root, "")
    saved = _as_json(data, loc.lines) if cache is not None else None  # before _Parser runs
    spec = _Parser(loc, text).workflow(data)
    _write_plain(cache, saved)  # only a definition that validated
    return spec


def _as_json(data: Any, lines: dict[str, int]) -> str | None:
    """The plain data as JSON, if JSON gives it back exactly (else it is not kept)."""
    try:
        saved = json.dumps([data, lines], ensure_ascii=False)
    except (TypeError, ValueError):
        return None
    return saved if json.loads(saved) == [data, lines] else None


class _Parser:
    def __init__(self, loc: _Located, text: str) -> None:
        self.loc = loc
        self.text = text

    def fail(self, path: str, message: str) -> ValidationError:
        return self.loc.error(path, message)

    def mapping(self, value: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "expected a mapping")
        for key in value:
            if key not in allowed:
                child = f"{path}.{key}" if path else key
                raise self.fail(
                    child, f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})"
                )
        return value

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


def _closure(start: str, edges: Mapping[str, set[str]]) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in edges[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen
