"""The Engine's views concern: reading cases back, alone or as lists, with their light."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rectiflow import views
from rectiflow.app.cases import Cases
from rectiflow.engine import deadlines
from rectiflow.engine.errors import NotFound
from rectiflow.engine.types import Case, Escalation, HistoryEntry, Light, Measure, Note


class Views(Cases):
    """What a case looks like now: the ledger lists, the light, a case and its records."""

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

    def find_cases(
        self, *, limit: int | None = None, offset: int = 0, **filters: Any
    ) -> list[Case]:
        """One page of the cases that pass every filter given, by id: ``unit_paths``,
        ``state``, ``severity``, ``source``, ``category``, ``text``, ``opened_since``,
        ``opened_before``, ``overdue_at``, ``include_co``, ``supervised_by`` (the unit a
        case was raised to, or its own): see ``Store.find_cases``."""
        return self.store.find_cases(limit=limit, offset=offset, **filters)

    def light(self, case: Case, now: dt.datetime | None = None) -> Light | None:
        """green, yellow or red at ``now``; None for a final or paused case."""
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
        case = self.get_case(case_id)
        return views.case_dict(
            case, self, now=self._now(now), measures=self.measures(case_id),
            history=self.history(case_id), escalations=self.escalations(case_id),
            notes=self.notes(case_id),
            co_units=self.store.co_units_of([case_id]).get(case_id, ()),
            extensions=self.store.list_extensions(case_id),
        )  # fmt: skip
