"""The Engine's corrections concern: ``edit`` fixes what a case says (its title, unit,
deadline, …) without moving it through the workflow, as one history entry that names
every field changed, old → new, so the row stays reproducible from its history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from loguru import logger

from rectiflow.app.cases import Cases
from rectiflow.engine import escalation, history
from rectiflow.engine import text as limits
from rectiflow.engine.errors import ValidationError
from rectiflow.engine.permissions import authorize
from rectiflow.engine.records import CaseChange
from rectiflow.engine.spec import SEVERITIES
from rectiflow.engine.types import Case

# Fields whose change moves the current deadline: the case starts a new visit of its state.
_DEADLINE_FIELDS = frozenset({"due", "severity", "long_term"})
_TEXT_FIELDS = ("title", "description", "category", "source", "ref", "target", "responsible")


class Corrections(Cases):
    """Correcting a case: supervisors, and the reporting roles while it is in its first state."""

    def edit_case(
        self,
        case_id: int,
        actor: str,
        *,
        title: str | None = None,
        description: str | None = None,
        category: str | None = None,
        source: str | None = None,
        ref: str | None = None,
        target: str | None = None,
        responsible: str | None = None,
        severity: str | None = None,
        unit: str | None = None,
        co_units: Sequence[str] | None = None,
        due: dt.date | dt.datetime | None = None,
        long_term: bool | None = None,
        comment: str | None = None,
        expect_version: int | None = None,
        now: dt.datetime | None = None,
    ) -> Case:
        """Correct a case. None leaves a field as it is; an empty text clears it (a title
        cannot be cleared). A new due date, severity or long-term flag recomputes the
        current deadline as a new visit of the state would. Refused on final cases."""
        now = self._now(now)
        wanted: dict[str, Any] = {
            name: (value.strip() or None)
            for name, value in (
                ("title", title), ("description", description), ("category", category),
                ("source", source), ("ref", ref), ("target", target),
                ("responsible", responsible),
            )
            if value is not None
        }  # fmt: skip
        if "title" in wanted and wanted["title"] is None:
            raise ValidationError("a case needs a title")
        for name, value in wanted.items():
            limits.check(name, value)
        limits.check("comment", comment)
        if severity is not None:
            if severity not in SEVERITIES:
                raise ValidationError(
                    f"unknown severity {severity!r} (use {', '.join(SEVERITIES)})"
                )
            wanted["severity"] = severity
        if unit is not None:
            wanted["unit"] = self.get_unit(unit).code
        if due is not None:
            wanted["due"] = self._end_of(due)
        if long_term is not None:
            wanted["long_term"] = long_term
        new_co = None if co_units is None else tuple(dict.fromkeys(co_units))
        for code in new_co or ():
            self.get_unit(code)

        with self.store.case_tx(case_id) as tx:
            case, spec = self._unfinished(tx, expect_version, "edit")
            who = tx.actor(actor)
            roles = set(spec.permissions.get("edit", ("supervisor",)))
            if case.state == spec.initial:  # still being identified: its reporter may fix it
                roles |= set(spec.permissions["open"])
            authorize(who, actor, sorted(roles), case.unit_path, f"edit case {case_id}")
            changes = {k: (getattr(case, k), v) for k, v in wanted.items() if getattr(case, k) != v}
            if "unit" in changes:
                target_path = self.get_unit(changes["unit"][1]).path
                authorize(who, actor, sorted(roles), target_path, f"move case {case_id}")
            old_co = tuple(self.store.co_units_of([case_id]).get(case_id, []))
            lead = wanted.get("unit", case.unit)
            if new_co is not None:
                if lead in new_co:
                    raise ValidationError(f"unit {lead} leads case {case_id}: not a co-unit")
                if sorted(new_co) != sorted(old_co):
                    changes["co_units"] = (old_co, new_co)
            if not changes:
                raise ValidationError(f"case {case_id}: nothing to change")
            change: dict[str, Any] = {
                k: new for k, (_old, new) in changes.items() if k != "co_units"
            }
            if _DEADLINE_FIELDS & changes.keys():
                change.update(self._new_visit(spec, case, change, now))
            data = {
                "changes": {
                    name: [history.value(old), history.value(new)]
                    for name, (old, new) in changes.items()
                }
            }
            entry = self._entry(
                tx, "edit", actor, now, _describe(changes, comment, self.tz), data=data
            )
            if "co_units" in changes:
                tx.set_co_units(changes["co_units"][1])
            updated = tx.update(CaseChange(**change), entry)  # type: ignore[typeddict-item]
        logger.bind(case_id=case_id, action="edit").info(
            "case {case_id} edited: {fields}", case_id=case_id, fields=", ".join(changes)
        )
        return updated

    def _new_visit(
        self, spec: Any, case: Case, change: dict[str, Any], now: dt.datetime
    ) -> dict[str, Any]:
        """The deadline and ladder of a fresh visit to the case's state, with the change."""
        edited = case.__class__(**{**_fields(case), **change, "visit": case.visit + 1})
        if change.get("due") is not None and case.state == spec.due_state:
            # a date set by hand holds even when it has passed: the case is then overdue
            due_at, provisional = change["due"], False
        else:
            due_at, provisional = self._stage_deadline(spec, edited, case.state, now)
        return {
            "stage_entered_at": now, "due_at": due_at, "due_provisional": provisional,
            "visit": case.visit + 1, "next_level": 0, "pause_credit": 0,
            "next_escalation_at": escalation.next_wake(self.rules, spec, edited, due_at, 0),
        }  # fmt: skip


def _fields(case: Case) -> dict[str, Any]:
    return {name: getattr(case, name) for name in case.__dataclass_fields__}


def _describe(changes: dict[str, tuple[object, object]], comment: str | None, tz: dt.tzinfo) -> str:
    def show(value: object) -> str:
        if value is None or value == ():
            return "—"
        if isinstance(value, dt.datetime):  # in local time, as people wrote it
            return value.astimezone(tz).isoformat(timespec="seconds")
        if isinstance(value, tuple):
            return "、".join(str(v) for v in value)
        return str(value)

    text = "; ".join(f"{name}: {show(old)} → {show(new)}" for name, (old, new) in changes.items())
    return f"{text} ({comment.strip()})" if comment and comment.strip() else text
