"""The Engine's cases concern: opening a case, firing its triggers, pausing and resuming
its clock, progress notes, and checking its history chain."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from loguru import logger

from rectiflow.app.base import TransitionHook
from rectiflow.app.calendar import Calendar
from rectiflow.engine import audit, deadlines, escalation, history, machines
from rectiflow.engine import text as limits
from rectiflow.engine.audit import EDITABLE
from rectiflow.engine.errors import (
    ConflictError,
    NotFound,
    PermissionDenied,
    TransitionRejected,
    ValidationError,
)
from rectiflow.engine.guards import GuardContext
from rectiflow.engine.permissions import authorize
from rectiflow.engine.records import CaseChange, NewCase
from rectiflow.engine.spec import SEVERITIES, TransitionSpec, WorkflowSpec
from rectiflow.engine.storage import CaseTx
from rectiflow.engine.types import Actor, Case, HistoryEntry, Note, Unit


class Cases(Calendar):
    """A case's life: open, fire, pause, resume, note; each change one transaction."""

    def on_transition(self, hook: TransitionHook) -> None:
        """Call ``hook(case, trigger, source)`` after every committed transition."""
        self._hooks.append(hook)

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
        ref: str | None = None,
        target: str | None = None,
        responsible: str | None = None,
        co_units: Sequence[str] = (),
        long_term: bool = False,
        now: dt.datetime | None = None,
    ) -> Case:
        """Put a problem on the ledger; it starts in the workflow's initial state.

        ``ref`` is its number in the office's own ledger (unique with ``source``);
        ``co_units`` are units that work on it beside ``unit`` (配合单位); a ``long_term``
        item (长期坚持) without ``due`` has no deadline in the rectify stage."""
        now = self._now(now)
        if not title.strip():
            raise ValidationError("a case needs a title")
        for name, value in (
            ("title", title.strip()), ("description", description), ("category", category),
            ("source", source), ("ref", ref), ("target", target), ("responsible", responsible),
        ):  # fmt: skip
            limits.check(name, value)
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
        co = tuple(dict.fromkeys(c for c in co_units if c != unit))
        for code in co:
            if self.store.get_unit(code) is None:
                raise NotFound("unit", code)
        due_at = self._end_of(due) if due is not None else None
        if due_at is not None and due_at <= now:
            raise ValidationError(f"due date {due} is not in the future")
        draft = dataclasses.replace(
            _draft_case(spec, unit_row, severity, now, due_at), long_term=long_term
        )
        stage_due, provisional = self._stage_deadline(spec, draft, spec.initial, now)
        new = NewCase(
            workflow=spec.name, workflow_version=spec.version, unit=unit, title=title.strip(),
            description=description, category=category, source=source, severity=severity,
            state=spec.initial, created_at=now, stage_entered_at=now, due_at=stage_due,
            due_provisional=provisional, due=due_at,
            next_escalation_at=deadlines.next_escalation(self.rules, spec, stage_due, 0),
            ref=_text(ref), target=_text(target), responsible=_text(responsible),
            long_term=long_term, co_units=co,
        )  # fmt: skip

        # The fields the case is opened with: an audit replays its edits from them.
        fields = {name: history.value(getattr(new, name)) for name in EDITABLE}

        def first_entry(case_id: int) -> HistoryEntry:
            return history.make_entry(
                case_id, 1, "open", None, spec.initial, actor, now, None, history.GENESIS,
                {"fields": fields}, self.audit_key,
            )  # fmt: skip

        case = self.store.open_case(new, first_entry)
        logger.bind(case_id=case.id, action="open").info(
            "case {case_id} opened in {unit}: {title}", case_id=case.id, unit=unit, title=title
        )
        return case

    def get_case(self, case_id: int) -> Case:
        case = self.store.get_case(case_id)
        if case is None:
            raise NotFound("case", case_id)
        return case

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
        comment = limits.check("comment", comment.strip() if comment and comment.strip() else None)
        with self.store.case_tx(case_id) as tx:
            case = _expect(tx.case, expect_version)
            spec = self.workflow(case.workflow, case.workflow_version)
            updated = self._transition(spec, tx, trigger, tx.actor(actor), actor, comment, now)
        logger.bind(case_id=case_id, trigger=trigger, action="fire").info(
            "case {case_id}: {trigger} {source} -> {dest} by {actor}",
            case_id=case_id, trigger=trigger, source=case.state, dest=updated.state, actor=actor,
        )  # fmt: skip
        for hook in self._hooks:
            hook(updated, trigger, case.state)
        return updated

    def _transition(
        self, spec: WorkflowSpec, tx: CaseTx, trigger: str, who: Actor | None, actor: str,
        comment: str | None, now: dt.datetime,
    ) -> Case:  # fmt: skip
        """Fire ``trigger`` on the held case: its checks (roles and units, a required
        comment, separation of duties, guards), then the new visit and its history entry."""
        case = tx.case
        transition = machines.admit(spec, case, trigger, who, actor)
        if "comment" in transition.requires and comment is None:
            raise TransitionRejected(case.id, trigger, case.state, "a comment is required")
        if transition.distinct_from:
            self._distinct(case, transition, actor)
        dest = machines.fire(spec, trigger, GuardContext(case, tx.measures, comment))
        change, entry = self._enter(spec, tx, dest, now, trigger, actor, comment)
        return tx.update(change, entry)

    def _enter(
        self, spec: WorkflowSpec, tx: CaseTx, dest: str, now: dt.datetime, trigger: str,
        actor: str, comment: str | None,
    ) -> tuple[CaseChange, HistoryEntry]:  # fmt: skip
        """The change and the history entry of a new visit to ``dest``: a fresh deadline
        and ladder, and no pause. Entering the look-back's state (closed) schedules a
        look-back; a relapse from it counts; a final state ends an exemption."""
        case = tx.case
        due_at, provisional = self._stage_deadline(spec, case, dest, now)
        data: dict[str, Any] | None = None
        change = CaseChange(
            state=dest, stage_entered_at=now, due_at=due_at, due_provisional=provisional,
            visit=case.visit + 1, next_level=0,
            next_escalation_at=escalation.next_wake(self.rules, spec, case, due_at, 0),
            paused_at=None, pause_credit=0,
        )  # fmt: skip
        look = spec.lookback
        if spec.states[dest].final and case.exempt_until is not None:
            change.update(CaseChange(exempted_at=None, exempt_until=None, exempt_reason=None))
            change["next_escalation_at"] = None
            data = {"exemption_ended": True}
        if look is not None and dest == look.state:
            lookback_due = self.rules.add(now, look.after)[0]
            change.update(CaseChange(
                lookback_due_at=lookback_due, lookback_result=None, lookback_at=None,
                lookback_actor=None, next_escalation_at=lookback_due,
            ))  # fmt: skip
        if look is not None and trigger == look.relapse and case.state == look.state:
            change.update(CaseChange(
                relapses=case.relapses + 1, lookback_result="relapsed", lookback_at=now,
                lookback_actor=actor,
            ))  # fmt: skip
        entry = self._entry(tx, trigger, actor, now, comment, dest=dest, data=data)
        return change, entry

    def triggers(self, case_id: int, actor: str | None = None) -> list[TransitionSpec]:
        """The transitions that can fire now (for ``actor``: its roles, units and the guards,
        checked as ``fire`` checks them; the data a trigger requires is not asked for)."""
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
        ctx = GuardContext(case, lambda: self.store.list_measures(case_id))
        allowed = []
        for t in candidates:
            try:
                machines.admit(spec, case, t.trigger, who, actor)
                if t.distinct_from:
                    self._distinct(case, t, actor)
                machines.fire(spec, t.trigger, ctx)
            except (TransitionRejected, PermissionDenied):
                continue
            allowed.append(t)
        return allowed

    def _unfinished(
        self, tx: CaseTx, expect_version: int | None, action: str
    ) -> tuple[Case, WorkflowSpec]:
        """The held case and its workflow, refused if it is in a final state."""
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
        limits.check("comment", comment.strip())
        with self.store.case_tx(case_id) as tx:
            case, spec = self._unfinished(tx, None, "pause")
            authorize(
                tx.actor(actor), actor, spec.permissions["pause"], case.unit_path,
                f"pause case {case_id}",
            )  # fmt: skip
            if case.paused_at is not None:
                raise TransitionRejected(case_id, "pause", case.state, "the case is already paused")
            if case.exempt_until is not None:
                raise TransitionRejected(
                    case_id, "pause", case.state,
                    "the case is exempted: end the exemption first (case unexempt)",
                )  # fmt: skip
            entry = self._entry(tx, "pause", actor, now, comment.strip())
            updated = tx.update({"paused_at": now}, entry)
        logger.bind(case_id=case_id, action="pause").info("case {case_id} paused", case_id=case_id)
        return updated

    def resume(self, case_id: int, actor: str, *, now: dt.datetime | None = None) -> Case:
        """Restart the clock; the deadline moves later by the paused time, counted in the
        unit of the stage's SLA."""
        now = self._now(now)
        with self.store.case_tx(case_id) as tx:
            case, spec = self._unfinished(tx, None, "resume")
            authorize(
                tx.actor(actor), actor, spec.permissions["pause"], case.unit_path,
                f"resume case {case_id}",
            )  # fmt: skip
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
            }, self._entry(tx, "resume", actor, now, None))  # fmt: skip
        logger.bind(case_id=case_id, action="resume").info(
            "case {case_id} resumed, due {due}", case_id=case_id, due=due_at
        )
        return updated

    def note(self, case_id: int, actor: str, text: str, *, now: dt.datetime | None = None) -> Note:
        """A progress note (每月调度): what was done this month."""
        now = self._now(now)
        if not text.strip():
            raise ValidationError("a note needs a text")
        limits.check("note", text.strip())
        with self.store.case_tx(case_id) as tx:
            case, spec = self._unfinished(tx, None, "note")
            who = tx.actor(actor)
            # The actors of a co-unit (配合单位) may note progress too.
            where = case.unit_path
            if who is not None and not who.covers(where):
                co = self.store.co_units_of([case_id]).get(case_id, [])
                paths = [u.path for code in co if (u := self.store.get_unit(code)) is not None]
                where = next((p for p in paths if who.covers(p)), where)
            authorize(who, actor, spec.permissions["note"], where, f"note on case {case_id}")
            note = tx.add_note(actor, now, text.strip())
            data = {"note": note.id, "text": note.text}
            tx.update({}, self._entry(tx, "note", actor, now, None, data=data))
            return note

    def _distinct(self, case: Case, transition: TransitionSpec, actor: str) -> None:
        """Separation of duties: refuse ``actor`` if it fired one of the transition's
        ``distinct_from`` triggers in the case's current visit of its state (from the entry
        that moved the case into it on)."""
        for entry in reversed(self.store.list_history(case.id)):
            if entry.trigger in transition.distinct_from and entry.actor == actor:
                raise TransitionRejected(
                    case.id, transition.trigger, case.state,
                    f"{actor} fired {entry.trigger} in this visit: {transition.trigger} needs "
                    "someone else (separation of duties)",
                )  # fmt: skip
            if entry.source != entry.dest:  # the entry that began the visit
                break

    def _entry(
        self, tx: CaseTx, trigger: str, actor: str, now: dt.datetime, comment: str | None,
        *, dest: str | None = None, data: dict[str, Any] | None = None,
    ) -> HistoryEntry:  # fmt: skip
        """The next history entry of the held case (``dest`` None: a marker that leaves
        the state as it is), signed with the audit key when there is one.

        Every change to a case passes here, so this is where time is kept moving forward:
        a change dated before the case's last entry is refused."""
        case = tx.case
        last = tx.last_entry_at()
        if last is not None and now < last:
            raise TransitionRejected(
                case.id, trigger, case.state,
                f"time only moves forward: {self._local(now)} is before the case's last "
                f"history entry at {self._local(last)}",
            )  # fmt: skip
        return history.make_entry(
            case.id, case.history_seq + 1, trigger, case.state,
            case.state if dest is None else dest, actor, now, comment, case.last_hash, data,
            self.audit_key,
        )  # fmt: skip

    def _local(self, at: dt.datetime) -> str:
        return at.astimezone(self.tz).isoformat(timespec="seconds")

    def verify_history(self, case_id: int | None = None) -> int:
        """Audit every case (or one): its hash chain, and its row, measures and notes
        against its history (``engine.audit``'s rules); raise IntegrityError at the first
        difference. Returns the number of entries verified."""
        return self.audit(case_id).entries

    def audit(
        self, case_id: int | None = None, *, against: Mapping[int, tuple[int, str]] | None = None,
        require_key: bool = False,
    ) -> audit.AuditReport:  # fmt: skip
        """``verify_history`` with the details: keyed entries checked or not (no key given),
        cases verified only partly (history written before entries had data). ``against``
        is a checkpoint's heads (``audit.read_checkpoint``): each case's entry at the
        checkpoint's seq must still have the checkpoint's hash. ``require_key``: an entry
        without the audit key is a broken link (a ledger keyed from its start)."""
        ids: Iterator[int] = (
            iter([self.get_case(case_id).id]) if case_id is not None else self.store.iter_case_ids()
        )
        report = audit.AuditReport()
        seen: set[int] = set()
        for cid in ids:
            case = self.get_case(cid)
            entries = self.store.list_history(cid)
            checked = audit.check_case(
                case, entries, self.store.list_measures(cid), self.store.list_notes(cid),
                self.store.co_units_of([cid]).get(cid, []), self.audit_keys,
                require_key=require_key,
            )  # fmt: skip
            if against is not None and cid in against:
                audit.check_against(cid, entries, against[cid])
            seen.add(cid)
            report = report.add(cid, checked)
        if against is not None and case_id is None and (gone := sorted(set(against) - seen)):
            raise audit.CheckpointMismatch(f"case {gone[0]} is gone", gone[0])
        return report

    def checkpoint(self, *, now: dt.datetime | None = None) -> dict[str, Any]:
        """The heads of every case's chain (after auditing them), with a time and a digest
        over them: JSON to keep outside the database (``audit(against=...)`` checks it)."""
        self.audit()
        heads = {}
        for cid in self.store.iter_case_ids():
            case = self.get_case(cid)
            heads[cid] = (case.history_seq, case.last_hash)
        return audit.checkpoint(heads, self._now(now))


def _text(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def _expect(case: Case, expect_version: int | None) -> Case:
    if expect_version is not None and case.version != expect_version:
        raise ConflictError(case.id, expect_version, case.version)
    return case


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
