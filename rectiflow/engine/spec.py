"""Workflow definitions as data: the YAML schema, parsed and validated when loaded.

Every refusal names the file, the line and the key, e.g.
``review.yaml:14: transitions[2].dest: unknown state 'verfy'``. Reading the YAML itself
(line numbers, limits, the plain data kept on disk) is ``yaml_source.py``, and the checks
that turn its plain data into these specs are ``spec_parser.py``.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from rectiflow.engine.durations import Duration
from rectiflow.engine.errors import ValidationError
from rectiflow.engine.types import Severity
from rectiflow.engine.yaml_source import (
    _as_json,
    _Located,
    _plain_cache,
    _read_plain,
    _write_plain,
    compose_yaml,
)

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
    def supervising_roles(self) -> frozenset[str]:
        """The roles told by raising levels: their people are found from the unit that
        supervises a case (raised or not); every other role's from the case's own unit."""
        return frozenset(role for level in self.ladder if level.raises for role in level.notify)

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


# --- parsing -------------------------------------------------------------------------------


def parse_workflow(text: str, filename: str = "<workflow>") -> WorkflowSpec:
    """Parse and validate a workflow definition; raise ValidationError naming file:line."""
    from rectiflow.engine.spec_parser import _Parser  # imports this module: loaded on use

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


def _closure(start: str, edges: Mapping[str, set[str]]) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in edges[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen
