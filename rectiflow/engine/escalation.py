"""The sweep's planner, who hears of a case, and the outbox keys. Pure functions: time
comes in as ``now``.

What one sweep does to one due case, in this order: ends an exemption whose ``until`` has
passed (the deadline moves later by the exempted time, as after a pause); records the
ladder levels now due (a raising level moves the case up to the parent of the unit that
supervises it: 提级督办); records a look-back that came due after closing (回头看).

Notifications go to people: a role's recipients are the actors holding it bound to the
unit the search starts from, nearest first (see ``Directory.recipients``). A notification's
key is unique in the outbox, so the key decides what "once" means: once per (case, stage
visit, level, role, person) for an escalation, once per (case, month, role, person) for the
monthly dispatch. Several sweeps or daemons may compute the same key; the store writes it
once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from rectiflow.engine import deadlines, history
from rectiflow.engine.deadlines import TimeRules
from rectiflow.engine.history import ChainKey
from rectiflow.engine.spec import WorkflowSpec
from rectiflow.engine.types import Actor, Case, Escalation, HistoryEntry, Unit

#: Who records what the sweep does by itself (an exemption's end) in a case's history.
SWEEP_ACTOR = "daemon"
#: The level a look-back is recorded under, beside the ladder's.
LOOKBACK_LEVEL = "lookback"
#: The roles of the people who work on a case: a co-unit's are told of its deadline too.
WORKING_ROLES = ("owner", "head")
#: The ladder levels a co-unit hears of (its owners and heads).
CO_UNIT_LEVELS = ("remind", "warn")


class Notice(NamedTuple):
    """One outbox row: a level's (or look-back's) notice to one person for one role."""

    level: str
    role: str
    key: str
    actor: str | None = None  # None: nobody holds the role anywhere
    kind: str = "escalation"


@dataclass(frozen=True)
class EscalationPlan:
    """What one sweep does to one case: the levels to record, the notices, where the ladder
    stands after them, and the other columns the sweep sets (``change``: the supervising
    unit, an exemption's end) with the history entry that goes with them."""

    escalations: Sequence[Escalation]
    notifications: Sequence[Notice]
    next_level: int
    next_escalation_at: dt.datetime | None
    change: Mapping[str, Any] = field(default_factory=dict)
    entry: HistoryEntry | None = None


@dataclass(frozen=True)
class Directory:
    """The units and actors a sweep finds recipients among (read before it holds locks)."""

    units: Mapping[str, Unit]
    actors: Sequence[Actor]
    # (role, unit) → its people: a sweep asks the same few pairs for thousands of cases
    _found: dict[tuple[str, str], list[str]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def recipients(self, role: str, unit: str) -> list[str]:
        """The people holding ``role`` nearest ``unit``: those bound to it; if none, to its
        parent; and so on up the tree; if none at all, those bound to no unit."""
        people = self._found.get((role, unit))
        if people is None:
            found = self.units.get(unit)
            path = found.path if found else f"/{unit}/"
            people = self._found[role, unit] = recipients(self.actors, role, path)
        return list(people)

    def bound_to(self, role: str, unit: str) -> list[str]:
        """The people holding ``role`` bound to ``unit`` itself (a co-unit's)."""
        found = self.units.get(unit)
        if found is None:
            return []
        return [a.name for a in self.actors if role in a.roles and found.path in a.unit_paths]

    def parent(self, unit: str) -> str | None:
        found = self.units.get(unit)
        return found.parent if found else None


def recipients(actors: Iterable[Actor], role: str, unit_path: str) -> list[str]:
    """The people a role's notification goes to, nearest first: the actors holding the role
    bound to the unit of ``unit_path``; if none, to its parent; and so on up the tree; if
    none at all, those bound to no unit."""
    holders = [a for a in actors if role in a.roles]
    parts = unit_path.strip("/").split("/")
    for i in range(len(parts), 0, -1):
        level = "/" + "/".join(parts[:i]) + "/"
        found = [a.name for a in holders if level in a.unit_paths]
        if found:
            return found
    return [a.name for a in holders if not a.unit_paths]


def escalation_key(
    case_id: int, visit: int, level: str, role: str, actor: str | None = None
) -> str:
    """The outbox key of one ladder level's notice to one person (or to nobody) in a role."""
    return _with_person(f"esc:{case_id}:{visit}:{level}:{role}", actor)


def lookback_key(case_id: int, visit: int, role: str, actor: str | None = None) -> str:
    """The outbox key of one look-back notice (once per closing, per person)."""
    return _with_person(f"lookback:{case_id}:{visit}:{role}", actor)


def dispatch_key(case_id: int, period: str, role: str, actor: str | None = None) -> str:
    """The outbox key of one monthly reminder (``period`` is ``YYYY-MM``) to one person."""
    return _with_person(f"dispatch:{case_id}:{period}:{role}", actor)


def _with_person(key: str, actor: str | None) -> str:
    # ASCII: a key travels in HTTP headers (Idempotency-Key) and mail headers, and a name
    # is mostly Chinese; percent-encoding keeps it unique and readable back.
    return key if actor is None else f"{key}:{urllib.parse.quote(actor, safe='')}"


def dispatch_month(now: dt.datetime, tz: ZoneInfo) -> tuple[dt.datetime, str]:
    """(start of the local month of ``now`` in UTC, the month as ``YYYY-MM``)."""
    local = now.astimezone(tz)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.astimezone(dt.UTC), f"{local:%Y-%m}"


def next_wake(
    rules: TimeRules, spec: WorkflowSpec, case: Case, due_at: dt.datetime | None, index: int
) -> dt.datetime | None:
    """When the sweep next has work on the case (its ``next_escalation_at``): the end of its
    exemption while it is exempted (no level fires before), else ladder level ``index``."""
    if case.exempt_until is not None:
        return case.exempt_until
    return deadlines.next_escalation(rules, spec, due_at, index)


def people_for(
    spec: WorkflowSpec, case: Case, role: str, directory: Directory | None,
    supervising_unit: str | None = None,
) -> list[str | None]:  # fmt: skip
    """Who hears of the case in ``role``: people, nearest first; ``[None]`` when nobody
    holds the role (the outbox row then says so) or no directory was given."""
    if directory is None:
        return [None]
    start = case.unit
    if role in spec.supervising_roles:
        start = supervising_unit or case.supervising_unit or case.unit
    return list(directory.recipients(role, start)) or [None]


def plan(
    rules: TimeRules, spec: WorkflowSpec, case: Case, now: dt.datetime,
    directory: Directory | None = None, co_units: Sequence[str] = (),
    audit_key: ChainKey | None = None,
) -> EscalationPlan:  # fmt: skip
    """Everything due on the case at ``now`` (see the module docstring), and where the case
    stands after it. It always answers: a case with nothing more to come (no deadline, a
    final state with no look-back pending) gets the end of the ladder, so it stops being
    due. Without a ``directory`` the notices name roles only (an import's backfill)."""
    change: dict[str, Any] = {}
    entry = None
    if case.exempt_until is not None:
        if case.exempt_until > now:  # exempted: nothing fires until it ends
            return EscalationPlan((), (), case.next_level, case.exempt_until)
        change, data = end_exemption(rules, spec, case, case.exempt_until)
        entry = history.make_entry(
            case.id, case.history_seq + 1, "exemption_ended", case.state, case.state,
            SWEEP_ACTOR, now, None, case.last_hash, data, audit_key,
        )  # fmt: skip
        case = dataclasses.replace(case, **change, history_seq=entry.seq, last_hash=entry.hash)
    if spec.states[case.state].final:
        return _lookback(spec, case, now, directory, change, entry)
    ladder = spec.ladder
    if case.due_at is None:
        return EscalationPlan((), (), len(ladder), None, change, entry)
    escalations: list[Escalation] = []
    notices: list[Notice] = []
    supervising = case.supervising_unit
    index = case.next_level
    while index < len(ladder):
        at = deadlines.level_time(rules, spec, case.due_at, index)
        if at > now:
            break
        level = ladder[index]
        raised_to = None
        if level.raises and directory is not None:
            parent = directory.parent(supervising or case.unit)
            if parent is not None:
                supervising = raised_to = parent
        escalations.append(
            Escalation(case.id, case.visit, case.state, level.level, at, now, raised_to=raised_to)
        )
        for role in level.notify:
            for person in people_for(spec, case, role, directory, supervising):
                key = escalation_key(case.id, case.visit, level.level, role, person)
                notices.append(Notice(level.level, role, key, person))
            if role in WORKING_ROLES and level.level in CO_UNIT_LEVELS and directory is not None:
                for unit in co_units:
                    for person in directory.bound_to(role, unit):
                        key = escalation_key(case.id, case.visit, level.level, role, person)
                        notices.append(Notice(level.level, role, key, person))
        index += 1
    if supervising != case.supervising_unit:
        change["supervising_unit"] = supervising
    next_at = deadlines.next_escalation(rules, spec, case.due_at, index)
    return EscalationPlan(escalations, _unique(notices), index, next_at, change, entry)


def _lookback(
    spec: WorkflowSpec, case: Case, now: dt.datetime, directory: Directory | None,
    change: dict[str, Any], entry: HistoryEntry | None,
) -> EscalationPlan:  # fmt: skip
    """A closed case: its look-back, once, when it is due and nothing was recorded yet."""
    end = len(spec.ladder)
    look = spec.lookback
    due = case.lookback_due_at
    if look is None or case.state != look.state or due is None or case.lookback_result:
        return EscalationPlan((), (), end, None, change, entry)
    if due > now:
        return EscalationPlan((), (), end, due, change, entry)
    notices = [
        Notice(LOOKBACK_LEVEL, role, lookback_key(case.id, case.visit, role, person), person,
               LOOKBACK_LEVEL)
        for role in look.notify
        for person in people_for(spec, case, role, directory)
    ]  # fmt: skip
    recorded = Escalation(case.id, case.visit, case.state, LOOKBACK_LEVEL, due, now)
    return EscalationPlan((recorded,), _unique(notices), end, None, change, entry)


def end_exemption(
    rules: TimeRules, spec: WorkflowSpec, case: Case, at: dt.datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The change that ends the case's exemption at ``at`` (its ``until``, or earlier when
    lifted by hand), and the data of the history entry that records it: the stage deadline
    moves later by the exempted time of this visit, counted as a pause's is."""
    assert case.exempted_at is not None
    start = max(case.exempted_at, case.stage_entered_at)
    change: dict[str, Any] = {"exempted_at": None, "exempt_until": None, "exempt_reason": None}
    data: dict[str, Any] = {"from": history.value(case.exempted_at), "until": history.value(at)}
    if not spec.states[case.state].final and at > start:
        unit = deadlines.credit_unit(spec, case, case.state)
        credit = case.pause_credit + deadlines.pause_credit(rules, unit, start, at)
        due_at, provisional = deadlines.stage_deadline(
            rules, spec, case, case.state, case.stage_entered_at, credit
        )
        change.update(pause_credit=credit, due_at=due_at, due_provisional=provisional)
        change["next_escalation_at"] = deadlines.next_escalation(
            rules, spec, due_at, case.next_level
        )
        data["due_at"] = history.value(due_at)
    return change, data


def _unique(notices: list[Notice]) -> list[Notice]:
    """One notice per key (a person holding a role in two places is told once)."""
    return list({n.key: n for n in notices}.values())
