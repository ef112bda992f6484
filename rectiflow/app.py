"""The Engine: the one object that host apps, the CLI and the daemon hold.

It wires the pure lifecycle logic in engine/ to a store in store/ and, on request, to the
scheduler. Every time-dependent call takes ``now`` (aware datetime; default: the clock).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from loguru import logger

from rectiflow.engine import deadlines, history, machines
from rectiflow.engine.calendar import WorkCalendar, parse_calendar_file
from rectiflow.engine.deadlines import TimeRules
from rectiflow.engine.diagram import mermaid
from rectiflow.engine.errors import (
    ConflictError,
    NotFound,
    PermissionDenied,
    TransitionRejected,
    UsageError,
    ValidationError,
)
from rectiflow.engine.guards import REGISTRY as GUARDS
from rectiflow.engine.guards import GuardContext
from rectiflow.engine.permissions import authorize
from rectiflow.engine.spec import SEVERITIES, TransitionSpec, WorkflowSpec, parse_workflow
from rectiflow.engine.storage import CaseTx, EscalationPlan, Store
from rectiflow.engine.types import (
    Actor,
    Case,
    Escalation,
    Health,
    HistoryEntry,
    Light,
    Measure,
    Note,
    SweepSummary,
    Unit,
    WorkflowRecord,
)
from rectiflow.store import open_store

if TYPE_CHECKING:
    from rectiflow.scheduler import Scheduler

DEFAULT_URL = "sqlite:///rectiflow.db"
DEFAULT_TZ = "Asia/Shanghai"
SHIPPED_WORKFLOWS = ("rectification.yaml",)
CALENDAR_RECHECK_SECONDS = 60.0

TransitionHook = Callable[[Case, str, str], None]  # (case after, trigger, source state)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Engine:
    """Runs a problem-list ledger. Instantiate one per database and use it as a context
    manager::

        with Engine("sqlite:///ledger.db") as engine:
            engine.init()
            case = engine.open_case("alice", unit="HRB", title="...")
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        tz: str | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        store: Store | None = None,
    ) -> None:
        self.url = url
        self.store: Store = store if store is not None else open_store(url)
        self.tz = ZoneInfo(tz or os.environ.get("RECTIFLOW_TZ") or DEFAULT_TZ)
        self.clock = clock
        self._specs: dict[tuple[str, int], WorkflowSpec] = {}
        self._rules: TimeRules | None = None
        self._calendar_read_at = -CALENDAR_RECHECK_SECONDS
        self._hooks: list[TransitionHook] = []
        self._scheduler: Scheduler | None = None

    # --- lifecycle of the engine itself ---------------------------------------------------

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop_scheduler()
        self.store.close()

    def init(self) -> list[WorkflowRecord]:
        """Create (or upgrade) the schema and register the shipped workflows. Idempotent."""
        self.store.create_schema()
        registered = []
        for filename in SHIPPED_WORKFLOWS:
            text = resources.files("rectiflow.workflows").joinpath(filename).read_text("utf-8")
            spec = self.register_workflow(text, filename)
            registered.append(self._record(spec))
        return registered

    def schema_revision(self) -> tuple[str | None, str]:
        """(the database's schema revision or None, the newest revision this code knows)."""
        return self.store.schema_revision()

    def now(self) -> dt.datetime:
        """The engine's clock, as an aware UTC time."""
        return self._now(None)

    def _now(self, now: dt.datetime | None) -> dt.datetime:
        if now is None:
            now = self.clock()
        if now.tzinfo is None:  # a naive time is local time
            now = now.replace(tzinfo=self.tz)
        return now.astimezone(dt.UTC)

    @property
    def rules(self) -> TimeRules:
        if self._rules is None:
            self._refresh_calendar()
        assert self._rules is not None
        return self._rules

    def _calendar_may_have_changed(self) -> bool:
        """At most one re-read a minute: until a year is loaded, every deadline that
        reaches into it is provisional, and a re-read per transition would cost more than
        the transition."""
        now = time.monotonic()
        if now - self._calendar_read_at < CALENDAR_RECHECK_SECONDS:
            return False
        self._calendar_read_at = now
        return True

    def _refresh_calendar(self) -> bool:
        """Re-read the loaded calendar table; rebuild the rules only if it changed (the
        rules cache working-day shifts). Returns whether it changed."""
        rows = self.store.calendar_days()
        self._calendar_read_at = time.monotonic()
        if self._rules is not None and dict(rows) == self._rules.calendar.overrides:
            return False
        self._rules = TimeRules(WorkCalendar.from_rows(rows), self.tz)
        return True

    def _stage_deadline(
        self, spec: WorkflowSpec, case: Case, state: str, entered_at: dt.datetime,
        pause_credit: int = 0,
    ) -> tuple[dt.datetime | None, bool]:  # fmt: skip
        """A stage deadline; when it comes out provisional, another process may have loaded
        the year meanwhile, so look once more before settling for it."""
        args = (spec, case, state, entered_at, pause_credit)
        due_at, provisional = deadlines.stage_deadline(self.rules, *args)
        if provisional and self._calendar_may_have_changed() and self._refresh_calendar():
            due_at, provisional = deadlines.stage_deadline(self.rules, *args)
        return due_at, provisional

    def on_transition(self, hook: TransitionHook) -> None:
        """Call ``hook(case, trigger, source)`` after every committed transition."""
        self._hooks.append(hook)

    # --- units and actors -----------------------------------------------------------------

    def add_unit(self, code: str, name: str, parent: str | None = None) -> Unit:
        _check_code(code, "unit code")
        return self.store.add_unit(code, name, parent)

    def list_units(self) -> list[Unit]:
        return self.store.list_units()

    def add_actor(self, name: str, roles: Sequence[str], units: Sequence[str] = ()) -> Actor:
        if not name.strip():
            raise ValidationError("an actor needs a name")
        if not roles:
            raise ValidationError(f"actor {name} needs at least one role")
        known = {role for record in self.list_workflows() for role in self._spec_of(record).roles}
        for role in roles:
            if known and role not in known:
                listed = ", ".join(sorted(known))
                raise ValidationError(
                    f"unknown role {role!r} (roles of the registered workflows: {listed})"
                )
        return self.store.add_actor(name, list(dict.fromkeys(roles)), list(units))

    def get_actor(self, name: str) -> Actor:
        actor = self.store.get_actor(name)
        if actor is None:
            raise NotFound("actor", name)
        return actor

    def list_actors(self) -> list[Actor]:
        return self.store.list_actors()

    # --- workflows ------------------------------------------------------------------------

    def register_workflow(self, text: str, filename: str = "<workflow>") -> WorkflowSpec:
        """Validate and register a definition (a registered name+version is immutable)."""
        spec = parse_workflow(text, filename)
        self.store.register_workflow(self._record(spec))
        self._specs[spec.name, spec.version] = spec
        return spec

    def _record(self, spec: WorkflowSpec) -> WorkflowRecord:
        return WorkflowRecord(spec.name, spec.version, spec.digest, spec.source_text, self.clock())

    def _spec_of(self, record: WorkflowRecord) -> WorkflowSpec:
        key = (record.name, record.version)
        if key not in self._specs:
            self._specs[key] = parse_workflow(record.source_text, f"{record.name}@{record.version}")
        return self._specs[key]

    def workflow(self, name: str, version: int | None = None) -> WorkflowSpec:
        """A registered workflow (the latest version when none is given)."""
        if version is not None and (name, version) in self._specs:
            return self._specs[name, version]
        record = self.store.get_workflow(name, version)
        if record is None:
            raise NotFound("workflow", name if version is None else f"{name}@{version}")
        return self._spec_of(record)

    def list_workflows(self) -> list[WorkflowRecord]:
        return self.store.list_workflows()

    def diagram(self, name: str, version: int | None = None, lang: str = "zh") -> str:
        if lang not in ("zh", "en"):
            raise UsageError(f"unknown language {lang!r}: use zh or en")
        return mermaid(self.workflow(name, version), lang)

    # --- cases ----------------------------------------------------------------------------

    def open_case(
        self,
        actor: str,
        *,
        unit: str,
        title: str,
        workflow: str = "rectification",
        workflow_version: int | None = None,
        severity: str = "medium",
        category: str | None = None,
        source: str | None = None,
        description: str | None = None,
        due: dt.date | dt.datetime | None = None,
        now: dt.datetime | None = None,
    ) -> Case:
        """Put a problem on the ledger; it starts in the workflow's initial state."""
        now = self._now(now)
        if not title.strip():
            raise ValidationError("a case needs a title")
        if severity not in SEVERITIES:
            raise ValidationError(f"unknown severity {severity!r} (use {', '.join(SEVERITIES)})")
        spec = self.workflow(workflow, workflow_version)
        unit_row = self.store.get_unit(unit)
        if unit_row is None:
            raise NotFound("unit", unit)
        authorize(
            self.store.get_actor(actor), actor, spec.permissions["open"], unit_row.path,
            f"open a case in unit {unit}",
        )  # fmt: skip
        due_at = self._end_of(due) if due is not None else None
        if due_at is not None and due_at <= now:
            raise ValidationError(f"due date {due} is not in the future")
        draft = _draft_case(spec, unit_row, severity, now, due_at)
        stage_due, provisional = self._stage_deadline(spec, draft, spec.initial, now)
        values = {
            "workflow": spec.name, "workflow_version": spec.version, "unit": unit,
            "title": title.strip(), "description": description, "category": category,
            "source": source, "severity": severity, "state": spec.initial, "version": 1,
            "created_at": now, "stage_entered_at": now, "due_at": stage_due,
            "due_provisional": provisional, "due": due_at, "visit": 1, "next_level": 0,
            "next_escalation_at": deadlines.next_escalation(self.rules, spec, stage_due, 0),
            "paused_at": None, "pause_credit": 0, "history_seq": 1, "last_hash": history.GENESIS,
        }  # fmt: skip

        def first_entry(case_id: int) -> HistoryEntry:
            return history.make_entry(
                case_id, 1, "open", None, spec.initial, actor, now, None, history.GENESIS
            )

        case = self.store.open_case(values, first_entry)
        logger.bind(case_id=case.id, action="open").info(
            "case {case_id} opened in {unit}: {title}", case_id=case.id, unit=unit, title=title
        )
        return case

    def _end_of(self, day: dt.date | dt.datetime) -> dt.datetime:
        if isinstance(day, dt.datetime):
            return self._now(day)
        return self.rules.end_of_day(day)

    def get_case(self, case_id: int) -> Case:
        case = self.store.get_case(case_id)
        if case is None:
            raise NotFound("case", case_id)
        return case

    def list_cases(
        self,
        *,
        unit: str | None = None,
        state: str | None = None,
        overdue: bool = False,
        light: Light | str | None = None,
        now: dt.datetime | None = None,
    ) -> list[Case]:
        """Cases of a unit (and the units below it), optionally by state, light or overdue."""
        now = self._now(now)
        paths = None
        if unit is not None:
            unit_row = self.store.get_unit(unit)
            if unit_row is None:
                raise NotFound("unit", unit)
            paths = [unit_row.path]
        cases = self.store.list_cases(unit_paths=paths, state=state)
        if overdue:
            cases = [
                c for c in cases if c.due_at is not None and c.paused_at is None and now > c.due_at
            ]
        if light is not None:
            wanted = Light(light)
            cases = [c for c in cases if self.light(c, now) is wanted]
        return cases

    def light(self, case: Case, now: dt.datetime | None = None) -> Light | None:
        spec = self.workflow(case.workflow, case.workflow_version)
        return deadlines.light(self.rules, spec, case, self._now(now))

    def measures(self, case_id: int) -> list[Measure]:
        return self.store.list_measures(case_id)

    def history(self, case_id: int) -> list[HistoryEntry]:
        return self.store.list_history(case_id)

    def escalations(self, case_id: int) -> list[Escalation]:
        return self.store.list_escalations(case_id)

    def notes(self, case_id: int) -> list[Note]:
        return self.store.list_notes(case_id)

    def case_view(self, case_id: int, now: dt.datetime | None = None) -> dict[str, Any]:
        """A case with its measures, history, notes and escalations, as JSON-ready data."""
        from rectiflow import views

        case = self.get_case(case_id)
        return views.case_dict(
            case, self, now=self._now(now), measures=self.measures(case_id),
            history=self.history(case_id), escalations=self.escalations(case_id),
            notes=self.notes(case_id),
        )  # fmt: skip

    # --- changes to a case ----------------------------------------------------------------

    def fire(
        self,
        case_id: int,
        trigger: str,
        actor: str,
        *,
        comment: str | None = None,
        expect_version: int | None = None,
        now: dt.datetime | None = None,
    ) -> Case:
        """Fire a trigger: check it, move the case, write history and the new deadline in
        one transaction; raise TransitionRejected, PermissionDenied or ConflictError."""
        now = self._now(now)
        comment = comment.strip() if comment and comment.strip() else None
        with self.store.case_tx(case_id) as tx:
            case = _expect(tx.case, expect_version)
            spec = self.workflow(case.workflow, case.workflow_version)
            transition = spec.transition(trigger, case.state)
            if transition is None:
                raise machines.refusal(spec, case, trigger)
            authorize(
                tx.actor(actor),
                actor,
                transition.roles,
                case.unit_path,
                f"{trigger} case {case_id}",
            )
            if case.paused_at is not None:
                raise TransitionRejected(
                    case_id, trigger, case.state, "the case is paused; resume it first"
                )
            if "comment" in transition.requires and comment is None:
                raise TransitionRejected(case_id, trigger, case.state, "a comment is required")
            dest = machines.fire(spec, trigger, GuardContext(case, tx.measures, comment))
            values, entry = self._enter(spec, case, dest, now, trigger, actor, comment)
            updated = tx.update(values, entry)
        logger.bind(case_id=case_id, trigger=trigger, action="fire").info(
            "case {case_id}: {trigger} {source} -> {dest} by {actor}",
            case_id=case_id, trigger=trigger, source=case.state, dest=dest, actor=actor,
        )  # fmt: skip
        for hook in self._hooks:
            hook(updated, trigger, case.state)
        return updated

    def _enter(
        self, spec: WorkflowSpec, case: Case, dest: str, now: dt.datetime, trigger: str,
        actor: str, comment: str | None,
    ) -> tuple[dict[str, Any], HistoryEntry]:  # fmt: skip
        """The row values and the history entry of a new visit to ``dest``."""
        due_at, provisional = self._stage_deadline(spec, case, dest, now)
        entry = history.make_entry(
            case.id, case.history_seq + 1, trigger, case.state, dest, actor, now, comment,
            case.last_hash,
        )  # fmt: skip
        return {
            "state": dest, "stage_entered_at": now, "due_at": due_at,
            "due_provisional": provisional, "visit": case.visit + 1, "next_level": 0,
            "next_escalation_at": deadlines.next_escalation(self.rules, spec, due_at, 0),
            "paused_at": None, "pause_credit": 0,
        }, entry  # fmt: skip

    def add_measure(
        self,
        case_id: int,
        actor: str,
        text: str,
        *,
        due: dt.date | dt.datetime | None = None,
        expect_version: int | None = None,
        now: dt.datetime | None = None,
    ) -> Measure:
        """Add a measure to an open case (role from the workflow's ``add_measure``)."""
        self._now(now)
        if not text.strip():
            raise ValidationError("a measure needs a text")
        due_at = self._end_of(due) if due is not None else None
        with self.store.case_tx(case_id) as tx:
            case, spec = self._open_case_in(tx, expect_version, "add_measure")
            authorize(tx.actor(actor), actor, spec.permissions["add_measure"], case.unit_path,
                      f"add a measure to case {case_id}")  # fmt: skip
            measure = tx.add_measure(text.strip(), actor, due_at)
        logger.bind(case_id=case_id, action="measure").info(
            "case {case_id}: measure {measure} added", case_id=case_id, measure=measure.id
        )
        return measure

    def complete_measure(
        self,
        measure_id: int,
        actor: str,
        *,
        evidence: str | os.PathLike[str] | None = None,
        now: dt.datetime | None = None,
    ) -> Measure:
        """Mark a measure done; evidence is stored as its path and sha256."""
        now = self._now(now)
        found = self.store.get_measure(measure_id)
        if found is None:
            raise NotFound("measure", measure_id)
        path, digest = (None, None) if evidence is None else _evidence(evidence)
        with self.store.case_tx(found.case_id) as tx:
            case, spec = self._open_case_in(tx, None, "complete_measure")
            authorize(tx.actor(actor), actor, spec.permissions["complete_measure"], case.unit_path,
                      f"complete measure {measure_id}")  # fmt: skip
            if any(m.id == measure_id and m.done for m in tx.measures()):
                # Measures sit outside the hash chain: completing twice would lose the
                # first evidence hash without a trace.
                raise TransitionRejected(
                    case.id, "complete_measure", case.state, f"measure {measure_id} is already done"
                )
            measure = tx.complete_measure(measure_id, now, path, digest)
        logger.bind(case_id=found.case_id, action="measure").info(
            "measure {measure} done", measure=measure_id
        )
        return measure

    def _open_case_in(
        self, tx: CaseTx, expect_version: int | None, action: str
    ) -> tuple[Case, WorkflowSpec]:
        case = _expect(tx.case, expect_version)
        spec = self.workflow(case.workflow, case.workflow_version)
        if spec.states[case.state].final:
            raise TransitionRejected(case.id, action, case.state, f"{case.state} is a final state")
        return case, spec

    def pause(
        self, case_id: int, actor: str, *, comment: str, now: dt.datetime | None = None
    ) -> Case:
        """Stop the clock: no level fires while paused; resume moves the deadline later."""
        now = self._now(now)
        if not comment or not comment.strip():
            raise TransitionRejected(case_id, "pause", None, "a comment is required")
        with self.store.case_tx(case_id) as tx:
            case, spec = self._open_case_in(tx, None, "pause")
            authorize(
                tx.actor(actor),
                actor,
                spec.permissions["pause"],
                case.unit_path,
                f"pause case {case_id}",
            )
            if case.paused_at is not None:
                raise TransitionRejected(case_id, "pause", case.state, "the case is already paused")
            entry = self._marker(case, "pause", actor, now, comment.strip())
            updated = tx.update({"paused_at": now}, entry)
        logger.bind(case_id=case_id, action="pause").info("case {case_id} paused", case_id=case_id)
        return updated

    def resume(self, case_id: int, actor: str, *, now: dt.datetime | None = None) -> Case:
        now = self._now(now)
        with self.store.case_tx(case_id) as tx:
            case, spec = self._open_case_in(tx, None, "resume")
            authorize(
                tx.actor(actor),
                actor,
                spec.permissions["pause"],
                case.unit_path,
                f"resume case {case_id}",
            )
            if case.paused_at is None:
                raise TransitionRejected(case_id, "resume", case.state, "the case is not paused")
            unit = deadlines.credit_unit(spec, case, case.state)
            credit = case.pause_credit + deadlines.pause_credit(
                self.rules, unit, case.paused_at, now
            )
            due_at, provisional = self._stage_deadline(
                spec, case, case.state, case.stage_entered_at, credit
            )
            updated = tx.update({
                "paused_at": None, "pause_credit": credit, "due_at": due_at,
                "due_provisional": provisional,
                "next_escalation_at": deadlines.next_escalation(
                    self.rules, spec, due_at, case.next_level
                ),
            }, self._marker(case, "resume", actor, now, None))  # fmt: skip
        logger.bind(case_id=case_id, action="resume").info(
            "case {case_id} resumed, due {due}", case_id=case_id, due=due_at
        )
        return updated

    def _marker(
        self, case: Case, trigger: str, actor: str, now: dt.datetime, comment: str | None
    ) -> HistoryEntry:
        """A history entry that records an event without a change of state."""
        return history.make_entry(
            case.id, case.history_seq + 1, trigger, case.state, case.state, actor, now, comment,
            case.last_hash,
        )  # fmt: skip

    def note(self, case_id: int, actor: str, text: str, *, now: dt.datetime | None = None) -> Note:
        """A progress note (每月调度): what was done this month."""
        now = self._now(now)
        if not text.strip():
            raise ValidationError("a note needs a text")
        with self.store.case_tx(case_id) as tx:
            case, spec = self._open_case_in(tx, None, "note")
            authorize(
                tx.actor(actor),
                actor,
                spec.permissions["note"],
                case.unit_path,
                f"note on case {case_id}",
            )
            return tx.add_note(actor, now, text.strip())

    def triggers(self, case_id: int, actor: str | None = None) -> list[TransitionSpec]:
        """The transitions that can fire now (for ``actor``: its roles, units and the guards)."""
        case = self.get_case(case_id)
        spec = self.workflow(case.workflow, case.workflow_version)
        if case.paused_at is not None:
            return []
        candidates = [t for t in spec.transitions if t.source == case.state]
        if actor is None:
            return candidates
        who = self.store.get_actor(actor)
        if who is None:
            raise PermissionDenied(actor, f"see the triggers of case {case_id}: no such actor")
        if not who.covers(case.unit_path):
            return []
        ctx = GuardContext(case, lambda: self.store.list_measures(case_id))
        return [
            t for t in candidates
            if set(t.roles) & set(who.roles) and all(GUARDS[g](ctx) is None for g in t.guards)
        ]  # fmt: skip

    # --- integrity ------------------------------------------------------------------------

    def verify_history(self, case_id: int | None = None) -> int:
        """Recompute hash chains; raise IntegrityError at the first broken link.
        Returns the number of entries verified."""
        ids: Iterator[int] = (
            iter([self.get_case(case_id).id]) if case_id is not None else self.store.iter_case_ids()
        )
        total = 0
        for cid in ids:
            case = self.get_case(cid)
            # The case row holds the head of its chain, so a removed last entry shows too.
            total += history.verify_chain(
                cid, self.store.list_history(cid), head=(case.history_seq, case.last_hash)
            )
        return total

    # --- deadlines, escalations and the calendar -----------------------------------------

    def escalate_due(
        self,
        now: dt.datetime | None = None,
        *,
        batch_size: int = 500,
        dry_run: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> SweepSummary:
        """Record every ladder level that is due at ``now``, once each, in ladder order.

        Works in batches of ``batch_size`` cases, each its own transaction; ``should_stop``
        is asked between batches (a daemon told to stop finishes the batch in hand)."""
        now = self._now(now)
        # Everything the planning needs, read before the batches hold their locks: another
        # process may have loaded calendar data or registered a workflow.
        self._refresh_calendar()
        for record in self.store.list_workflows():
            self._spec_of(record)
        by_level: dict[str, int] = {}
        cases = fired = 0

        def plan(case: Case) -> EscalationPlan:
            return self._plan(case, now)

        if dry_run:
            after = 0
            while batch := self.store.due_cases(now, after, batch_size):
                for case in batch:
                    for esc in plan(case).escalations:
                        by_level[esc.level] = by_level.get(esc.level, 0) + 1
                        fired += 1
                cases += len(batch)
                after = batch[-1].id
            return SweepSummary(cases, fired, by_level, self.store.next_escalation_at())

        while True:
            claimed, recorded = self.store.escalate_batch(now, batch_size, plan)
            cases += claimed
            for esc in recorded:
                fired += 1
                by_level[esc.level] = by_level.get(esc.level, 0) + 1
                logger.bind(case_id=esc.case_id, action="escalate", level=esc.level).info(
                    "case {case_id}: escalation {level} (due {due})",
                    case_id=esc.case_id, level=esc.level, due=esc.due_at.isoformat(),
                )  # fmt: skip
            if claimed < batch_size or should_stop():
                break
        return SweepSummary(cases, fired, by_level, self.store.next_escalation_at())

    def _plan(self, case: Case, now: dt.datetime) -> EscalationPlan:
        spec = self.workflow(case.workflow, case.workflow_version)
        ladder = spec.ladder
        if case.due_at is None or spec.states[case.state].final:
            return EscalationPlan((), (), len(ladder), None)
        escalations: list[Escalation] = []
        notifications: list[tuple[str, str, str]] = []
        index = case.next_level
        while index < len(ladder):
            at = deadlines.level_time(self.rules, spec, case.due_at, index)
            if at > now:
                break
            level = ladder[index]
            escalations.append(Escalation(case.id, case.visit, case.state, level.level, at, now))
            notifications.extend(
                (level.level, role, f"esc:{case.id}:{case.visit}:{level.level}:{role}")
                for role in level.notify
            )
            index += 1
        next_at = deadlines.next_escalation(self.rules, spec, case.due_at, index)
        return EscalationPlan(escalations, notifications, index, next_at)

    def next_due_at(self) -> dt.datetime | None:
        """When the next ladder level of any case comes due."""
        return self.store.next_escalation_at()

    def health(self, now: dt.datetime | None = None, *, seen_within_days: int = 7) -> Health:
        """How the sweep is keeping up: the daemons seen lately and their last sweep, the
        lag of the oldest due level not yet recorded, the oldest undelivered notification."""
        now = self._now(now)
        daemons = self.store.list_daemons(now - dt.timedelta(days=seen_within_days))
        due = self.store.next_escalation_at()
        lag = max(now - due, dt.timedelta(0)) if due is not None else dt.timedelta(0)
        ends = [d.sweep_ended_at for d in daemons if d.sweep_ended_at and d.stopped_at is None]
        oldest, undelivered = self.store.undelivered()
        return Health(
            as_of=now, daemons=daemons, oldest_due_at=due, lag=lag,
            swept_ago=now - max(ends) if ends else None,
            oldest_undelivered_at=oldest, undelivered=undelivered,
        )  # fmt: skip

    def dispatch_reminders(
        self,
        now: dt.datetime | None = None,
        *,
        roles: Sequence[str] = ("owner",),
        batch_size: int = 1000,
    ) -> int:
        """Monthly dispatch: open cases without a progress note this month get a notification
        per role. Keyed by month, so running it twice (or on two daemons) writes it once."""
        now = self._now(now)
        local = now.astimezone(self.tz)
        month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        period = f"{local:%Y-%m}"
        written = after = 0
        while batch := self.store.cases_without_note_since(
            month_start.astimezone(dt.UTC), after, batch_size
        ):
            rows = [
                (case.id, "dispatch", None, role, f"dispatch:{case.id}:{period}:{role}")
                for case in batch for role in roles
            ]  # fmt: skip
            written += self.store.add_notifications(rows, now)
            after = batch[-1].id
        logger.bind(action="dispatch").info(
            "monthly dispatch {period}: {n} reminders", period=period, n=written
        )
        return written

    def load_calendar(self, path: str | os.PathLike[str], *, now: dt.datetime | None = None) -> int:
        """Load holiday/workday rows from CSV or YAML, then recompute provisional deadlines.
        Returns the number of deadlines recomputed."""
        now = self._now(now)
        file = Path(path)
        try:
            text = file.read_text("utf-8")
        except OSError as exc:
            raise ValidationError(
                f"cannot read calendar file: {exc.strerror}", where=str(file)
            ) from None
        days = parse_calendar_file(text, str(file))
        self.store.load_calendar(days)
        self._refresh_calendar()
        recomputed = 0
        for case in self.store.list_cases(provisional_only=True):
            with self.store.case_tx(case.id) as tx:
                current = tx.case
                spec = self.workflow(current.workflow, current.workflow_version)
                due_at, provisional = deadlines.stage_deadline(
                    self.rules, spec, current, current.state, current.stage_entered_at,
                    current.pause_credit,
                )  # fmt: skip
                tx.update({
                    "due_at": due_at, "due_provisional": provisional,
                    "next_escalation_at": deadlines.next_escalation(
                        self.rules, spec, due_at, current.next_level
                    ),
                })  # fmt: skip
            recomputed += 1
        logger.bind(action="calendar").info(
            "calendar: {n} days loaded, {m} deadlines recomputed", n=len(days), m=recomputed
        )
        return recomputed

    def calendar(self, year: int) -> list[tuple[dt.date, bool, str]]:
        """Every day of ``year``: (date, is working day, where the answer came from)."""
        cal = self.rules.calendar
        day = dt.date(year, 1, 1)
        rows = []
        while day.year == year:
            working, _ = cal.is_workday(day)
            if day in cal.overrides:
                origin = "loaded"
            elif cal.has_statutory(day.year):
                origin = "statutory"
            else:
                origin = "weekday rule"
            rows.append((day, working, origin))
            day += dt.timedelta(days=1)
        return rows

    # --- the scheduler, embedded ----------------------------------------------------------

    def start_scheduler(self, **options: Any) -> Scheduler:
        """Run the sweep and the cron jobs in a background thread of this process."""
        from rectiflow.scheduler import Scheduler

        if self._scheduler is None:
            self._scheduler = Scheduler(self, **options)
            self._scheduler.start_background()
        return self._scheduler

    def stop_scheduler(self) -> None:
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None


def _expect(case: Case, expect_version: int | None) -> Case:
    if expect_version is not None and case.version != expect_version:
        raise ConflictError(case.id, expect_version, case.version)
    return case


def _check_code(code: str, what: str) -> None:
    plain = code.replace("-", "").replace("_", "")
    if not plain or not plain.isascii() or not plain.isalnum() or len(code) > 64:
        raise ValidationError(f"bad {what} {code!r}: letters, digits, - and _ only, at most 64")


def _evidence(path: str | os.PathLike[str]) -> tuple[str, str]:
    file = Path(path)
    digest = hashlib.sha256()
    try:
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ValidationError(f"cannot read evidence file {file}: {exc.strerror}") from None
    return str(file.resolve()), digest.hexdigest()


def _draft_case(
    spec: WorkflowSpec, unit: Unit, severity: str, now: dt.datetime, due: dt.datetime | None
) -> Case:
    """A case before it has an id: what the deadline rules need to know of it."""
    return Case(
        id=0, workflow=spec.name, workflow_version=spec.version, unit=unit.code,
        unit_path=unit.path, title="", description=None, category=None, source=None,
        severity=severity, state=spec.initial, version=0, created_at=now, stage_entered_at=now,
        due_at=None, due_provisional=False, due=due, visit=1, next_level=0,
        next_escalation_at=None, paused_at=None, pause_credit=0, history_seq=0,
        last_hash=history.GENESIS,
    )  # fmt: skip
