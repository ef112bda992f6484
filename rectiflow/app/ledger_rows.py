"""A ledger's rows read into cases: each row checked, its units found, its case built.

``Engine.import_ledger`` (in ``ledger.py``) hands every row to ``_RowReader``, which turns
it into a case's values or row errors (all of them, so one import lists every mistake),
then builds each new case with its reserved id, placed straight in its state with its
deadline, the ladder levels it has passed and its ``import`` history entry; ``_differences``
compares a row with the case its key already names. Apart from ``ledger.py`` because these
are the rules of one row, and the Engine's methods are the order they run in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rectiflow.engine import deadlines, escalation, history, ledger_rules
from rectiflow.engine import text as limits
from rectiflow.engine.audit import EDITABLE
from rectiflow.engine.durations import Duration
from rectiflow.engine.durations import Unit as DurationUnit
from rectiflow.engine.errors import ValidationError
from rectiflow.engine.records import ImportedCase, NewCase, NewMeasure, ref_key
from rectiflow.engine.spec import WorkflowSpec
from rectiflow.engine.types import Actor, Case, Escalation, Unit

if TYPE_CHECKING:
    from rectiflow.app.ledger import Ledger

DONE_MARK = "（已完成）"  # after a measure's text in an exported 整改措施 cell
IMMEDIATE = Duration(5, DurationUnit.WORKDAYS)  # 立行立改: counted like a 5wd SLA


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # as Excel numbers it
    column: str  # the heading as written ("" for the row as a whole)
    value: str
    reason: str


@dataclass
class _Row:
    """A ledger row turned into a case's values."""

    number: int
    key: str | None
    values: dict[str, Any]  # the NewCase fields a ledger sets
    state: str
    status: str | None
    measures: list[tuple[str, bool]]  # (text, marked done)
    immediate: bool


class _RowReader:
    """Turns ledger rows into case values, collecting row errors."""

    def __init__(
        self, engine: Ledger, spec: WorkflowSpec, actor: Actor, source: str | None,
        create_units_under: str | None, now: dt.datetime,
    ) -> None:  # fmt: skip
        self.engine, self.spec, self.actor, self.source, self.now = engine, spec, actor, source, now
        self.parent = engine.get_unit(create_units_under) if create_units_under else None
        units = engine.list_units()
        self.by_code = {u.code: u for u in units}
        self.by_name = {u.name: u for u in units}
        self.names = frozenset(u.name for u in units if any(c.isspace() for c in u.name))
        self.labels = {
            label: name for name, state in spec.states.items()
            if (label := state.labels.get("zh"))
        }  # fmt: skip
        self.to_create: dict[str, Unit] = {}

    def read(
        self, number: int, cells: Mapping[str, tuple[str, object]], errors: list[RowError]
    ) -> _Row | None:
        before = len(errors)

        def fail(name: str, reason: str) -> None:
            heading, value = cells.get(name, ("", None))
            errors.append(RowError(number, heading, "" if value is None else str(value), reason))

        def text(name: str) -> str | None:
            value = cells.get(name, ("", None))[1]
            if value is None:
                return None
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # 序号 1 read from a spreadsheet as 1.0
            written = str(value).strip()
            return written or None

        title = text("title")
        if title is None:
            fail("title", "a problem (问题) is required")
        ref = text("ref")
        source = self.source or text("source")
        values: dict[str, Any] = {
            "title": title, "ref": ref, "source": source, "category": text("category"),
            "target": text("target"), "responsible": text("responsible"),
        }  # fmt: skip
        for name, value in values.items():  # a title of 501 characters is a row error
            try:
                limits.check(name, value)
            except ValidationError as exc:
                fail(name, str(exc))
        try:
            values["severity"] = ledger_rules.parse_severity(text("severity"))
        except ValueError as exc:
            fail("severity", str(exc))
        status = text("status")
        state = self.spec.initial
        try:
            state = ledger_rules.parse_status(status, self.labels)
        except ValueError as exc:
            fail("status", str(exc))
        if state not in self.spec.states:
            fail("status", f"workflow {self.spec.name} has no state {state!r}")
        immediate = False
        values["due"], values["long_term"] = None, False
        try:
            cell = cells.get("deadline", ("", None))[1]
            if cell is not None and not isinstance(cell, (str, dt.date, int, float)):
                raise ValueError(f"not a date or a deadline phrase: {cell!r}")
            deadline = ledger_rules.parse_deadline(cell)
        except ValueError as exc:
            fail("deadline", str(exc))
        else:
            if deadline is not None:
                immediate, values["long_term"] = deadline.immediate, deadline.long_term
                if deadline.day is not None:
                    values["due"] = self.engine.rules.end_of_day(deadline.day)
        self._units(text("unit"), text("co_units"), values, fail)
        measures: list[tuple[str, bool]] = []
        for item in ledger_rules.split_measures(text("measures")):
            done = item.endswith(DONE_MARK)
            measures.append((item.removesuffix(DONE_MARK).strip(), done))
            try:
                limits.check("measure", measures[-1][0])
            except ValidationError as exc:
                fail("measures", str(exc))
        if len(errors) > before:
            return None
        return _Row(number, ref_key(source, ref), values, state, status, measures, immediate)

    def _units(
        self, lead_text: str | None, co_text: str | None, values: dict[str, Any],
        fail: Callable[[str, str], None],
    ) -> None:  # fmt: skip
        try:
            lead, co = ledger_rules.split_units(lead_text, self.names)
        except ValueError as exc:
            fail("unit", str(exc))
            return
        if co_text:
            try:
                first, more = ledger_rules.split_units(co_text, self.names)
                co = [*co, first, *more]
            except ValueError as exc:
                fail("co_units", str(exc))
        resolved = []
        for name in [lead, *co]:
            unit = self._unit(name)
            if unit is None:
                fail("unit" if name == lead else "co_units", f"unknown unit {name}")
                return
            if unit.code not in resolved:
                resolved.append(unit.code)
        values["unit"] = resolved[0]
        values["co_units"] = tuple(resolved[1:])
        if not self.actor.covers(self.by_code[resolved[0]].path):
            fail("unit", f"{self.actor.name} may not open cases in unit {resolved[0]}")

    def _unit(self, name: str) -> Unit | None:
        found = self.by_code.get(name) or self.by_name.get(name)
        if found is not None or self.parent is None:
            return found
        # --create-units PARENT: a unit named in the ledger and unknown here is created
        # under PARENT (when the import writes), with an ASCII code derived from its name.
        code = "U" + hashlib.sha256(name.encode()).hexdigest()[:8].upper()
        unit = Unit(code, name, self.parent.code, f"{self.parent.path}{code}/")
        self.by_code[code] = self.by_name[name] = self.to_create[code] = unit
        return unit

    def build(self, case_id: int, row: _Row, actor: str) -> ImportedCase:
        """The case of ``row`` with its reserved id, placed in its state at ``now``."""
        spec, now, rules = self.spec, self.now, self.engine.rules
        values = dict(row.values)
        if row.immediate and values["due"] is None:
            values["due"] = rules.end_of_day(rules.local_date(rules.add(now, IMMEDIATE)[0]))
        co_units = values.pop("co_units")
        draft = Case(
            id=case_id, workflow=spec.name, workflow_version=spec.version, unit=values["unit"],
            unit_path=self.by_code[values["unit"]].path, title=values["title"],
            description=None, category=values["category"], source=values["source"],
            severity=values["severity"], state=row.state, version=1, created_at=now,
            stage_entered_at=now, due_at=None, due_provisional=False, due=values["due"],
            visit=1, next_level=0, next_escalation_at=None, paused_at=None, pause_credit=0,
            history_seq=1, last_hash="", ref=values["ref"], target=values["target"],
            responsible=values["responsible"], long_term=values["long_term"],
        )  # fmt: skip
        due_at, provisional = deadlines.stage_deadline(rules, spec, draft, row.state, now)
        draft = dataclasses.replace(draft, due_at=due_at)
        plan = escalation.plan(rules, spec, draft, now)
        backfilled = tuple(
            Escalation(e.case_id, e.visit, e.state, e.level, e.due_at, e.fired_at, True)
            for e in plan.escalations
        )
        done = row.state in ("verify", "closed") or spec.states[row.state].final
        new = NewCase(
            workflow=spec.name, workflow_version=spec.version, state=row.state,
            created_at=now, stage_entered_at=now, due_at=due_at, due_provisional=provisional,
            next_level=plan.next_level, next_escalation_at=plan.next_escalation_at,
            co_units=co_units, **values,
        )  # fmt: skip
        measures = tuple(
            NewMeasure(text, actor, now if (done or marked) else None)
            for text, marked in row.measures
        )
        # The entry records the fields and measures the case starts with: an audit
        # replays the case's edits from them.
        data = {
            "fields": {name: history.value(getattr(new, name)) for name in EDITABLE},
            "measures": [[m.text, history.value(m.done_at)] for m in measures],
        }
        entry = history.make_entry(
            case_id, 1, "import", None, row.state, actor, now, row.status, history.GENESIS,
            data, self.engine.audit_key,
        )  # fmt: skip
        return ImportedCase(case_id, new, entry, measures, backfilled)


_COMPARED = ("title", "category", "source", "target", "responsible", "severity", "unit", "due",
             "long_term")  # fmt: skip


def _differences(
    case: Case, co_units: list[str], values: Mapping[str, Any]
) -> dict[str, tuple[object, object]]:
    """The fields a row would change on its case: name -> (old, new). State and measures
    move through the workflow, not through a correction, so they are not compared."""
    changes: dict[str, tuple[object, object]] = {}
    for name in _COMPARED:
        old, new = getattr(case, name), values.get(name)
        if name == "due" and values.get("due") is None and case.due is not None:
            continue  # 立行立改 was counted from the first import's day
        if old != new:
            changes[name] = (old, new)
    if sorted(co_units) != sorted(values.get("co_units", ())):
        changes["co_units"] = (tuple(co_units), tuple(values.get("co_units", ())))
    return changes
