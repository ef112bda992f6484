"""The Engine's reports concern: what the office reports (情况通报), frozen per period
(snapshots), ranked into tiers (划档排序) and followed month by month (light history).

Every figure comes from the engine's own state: the store aggregates each case's standing
in one query, and the rules of engine/reports.py sort it into its category.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from loguru import logger

from rectiflow.app.calendar import Calendar
from rectiflow.engine import deadlines, reports
from rectiflow.engine.errors import NotFound, UsageError, ValidationError
from rectiflow.engine.periods import (
    Period,
    is_quarter_end,
    parse_period,
    periods_between,
    quarter_of,
)
from rectiflow.engine.ranking import Scheme, default_scheme, rank, unit_figures
from rectiflow.engine.reports import CaseFacts, Tally
from rectiflow.engine.spec import WorkflowSpec
from rectiflow.engine.types import CaseStanding, SnapshotCase, SnapshotInfo, Unit

GROUPINGS = ("unit", "category", "source", "severity")
LEVEL_ZH = {
    "remind": "提醒", "warn": "预警", "supervise": "督办", "notify_public": "通报",
    "accountability": "问责",
}  # fmt: skip


class Reports(Calendar):
    """Progress, snapshots, ranking and light history, as plain data."""

    # --- where each case stands -------------------------------------------------------

    def case_facts(
        self, now: dt.datetime | None = None, *, unit: str | None = None
    ) -> Iterator[CaseFacts]:
        """Every case (of ``unit``'s subtree) with what the report rules need, by id."""
        for _standing, facts in self._standings(now, unit=unit):
            yield facts

    def _standings(
        self, now: dt.datetime | None = None, *, unit: str | None = None
    ) -> Iterator[tuple[CaseStanding, CaseFacts]]:
        now = self._now(now)
        paths = [self.get_unit(unit).path] if unit is not None else None
        specs: dict[tuple[str, int], tuple[WorkflowSpec, dict[str, int]]] = {}
        lights: dict[tuple[Any, ...], str | None] = {}  # cases share deadlines: light once each
        for standing in self.store.case_standings(now, paths):
            key = (standing.workflow, standing.workflow_version)
            if key not in specs:
                spec = self.workflow(*key)
                specs[key] = (spec, {lv.level: i for i, lv in enumerate(spec.ladder)})
            spec, order = specs[key]
            yield standing, _facts(self, spec, order, standing, now, lights)

    def _scope(self, unit: str | None) -> tuple[str, str, str]:
        """(root path, scope name for prose, unit code or "") of a report."""
        if unit is not None:
            found = self.get_unit(unit)
            return found.path, found.name, found.code
        roots = [u for u in self.store.list_units() if u.parent is None]
        if len(roots) == 1:
            name = roots[0].name
            prose = f"全{name[-1]}" if name[-1:] in ("省", "市", "区", "县") else name
            return roots[0].path, prose, ""
        return "/", "全部", ""

    # --- progress -----------------------------------------------------------------------

    def progress(
        self,
        *,
        unit: str | None = None,
        by: str = "unit",
        depth: int = 1,
        now: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """The bulletin's figures as of ``now``: totals, categories, lights, levels; per unit
        (each unit ``depth`` levels below the scope, its subtree rolled up) or per
        category, source or severity; and each case's category and light."""
        if by not in GROUPINGS:
            raise UsageError(f"--by {by}: use one of {', '.join(GROUPINGS)}")
        if depth < 1:
            raise UsageError(f"--depth {depth}: must be 1 or more")
        now = self._now(now)
        root, scope_name, code = self._scope(unit)
        ladder = self._ladder()
        groups: dict[str, Tally] = {}
        rest = Tally(ladder=ladder)  # the cases of no group (by unit: the scope's own)
        cases: list[dict[str, Any]] = []
        units = {u.path: u for u in self.store.list_units()}
        if by == "unit":  # every unit at that depth has its row, with cases or without
            for path in units:
                if reports.roll_up(path, root, depth) == path:
                    groups[path] = Tally(ladder=ladder)
        rolled: dict[str, str | None] = {}  # unit path -> its group, rolled up once per unit
        overdue: list[dict[str, Any]] = []
        for standing, facts in self._standings(now, unit=unit):
            if not facts.unit_path.startswith(root):
                continue
            category = reports.categorize(facts, now)
            if category == "overdue":
                overdue.append(_overdue(standing, units, self.tz))
            if by != "unit":
                key = _group_key(facts, by, root, depth)
            elif facts.unit_path in rolled:
                key = rolled[facts.unit_path]
            else:
                key = rolled[facts.unit_path] = _group_key(facts, by, root, depth)
            if key is not None:
                group = groups.get(key)
                if group is None:  # a Tally per group, not one made and dropped per case
                    group = groups[key] = Tally(ladder=ladder)
                group.add(facts, category)
            else:
                rest.add(facts, category)
            cases.append(
                {"id": facts.case_id, "unit": facts.unit, "category": category,
                 "light": facts.light}
            )  # fmt: skip
        total = _summed([*groups.values(), rest], ladder)  # each case counted once, then summed
        rows = []
        for key in sorted(groups):
            name = units[key].name if by == "unit" and key in units else key
            label = units[key].code if by == "unit" and key in units else key
            rows.append({"unit" if by == "unit" else "key": label, "name": name,
                         **groups[key].as_dict()})  # fmt: skip
        return {
            "as_of": now.astimezone(self.tz).isoformat(timespec="seconds"),
            "unit": code or None,
            "scope_name": scope_name,
            "by": by,
            **total.as_dict(),
            "headline": reports.headline(scope_name, total),
            "category_labels": {c.key: c.zh for c in reports.CATEGORIES},
            "level_labels": {level: LEVEL_ZH.get(level, level) for level in ladder},
            "units" if by == "unit" else "groups": rows,
            "overdue_cases": overdue,
            "cases": cases,
        }

    def _ladder(self) -> list[str]:
        levels: dict[str, None] = {}
        for record in self.store.list_workflows():
            for level in self._spec_of(record).ladder:
                levels.setdefault(level.level)
        return list(levels)

    # --- snapshots ----------------------------------------------------------------------

    def snapshot(
        self,
        period: str,
        *,
        taken_by: str = "operator",
        now: dt.datetime | None = None,
        from_period: str | None = None,
    ) -> SnapshotInfo:
        """Freeze the figures of ``period`` (2026-03, 2026-Q1) as of ``now``, per case and
        per unit; or, with ``from_period``, the figures already frozen for it (a quarter
        from its last month). A period is frozen once: again, ``AlreadyTaken`` (exit 5)."""
        now = self._now(now)
        parsed = _period(period)
        period, kind = parsed.key, parsed.kind  # 2026-q1 is frozen as 2026-Q1
        if from_period is not None:
            from_period = _period(from_period).key
            source = self.store.get_snapshot(from_period)
            if source is None:
                raise NotFound("snapshot", from_period)
            info = SnapshotInfo(period, kind, source.as_of, now, taken_by)
            cases = [
                SnapshotCase(period, c.case_id, c.unit, c.unit_path, c.category, c.light,
                             c.state, c.due_at, c.level)
                for c in self.store.snapshot_cases(from_period)
            ]  # fmt: skip
            self.store.save_snapshot(info, cases, self.store.snapshot_units(from_period))
            return info
        ladder = self._ladder()
        units = self.store.list_units()
        # each case is counted in its own unit's tally; a unit's figures are those of its
        # subtree, summed once at the end (not each case added to every ancestor's tally)
        own = {u.path: Tally(ladder=ladder) for u in units}
        frozen: list[SnapshotCase] = []
        for facts in self.case_facts(now):
            category = reports.categorize(facts, now)
            frozen.append(SnapshotCase(
                period, facts.case_id, facts.unit, facts.unit_path, category, facts.light,
                facts.state, facts.due_at, facts.level,
            ))  # fmt: skip
            if facts.unit_path in own:
                own[facts.unit_path].add(facts, category)
        tallies = {
            u.path: _summed([t for p, t in own.items() if p.startswith(u.path)], ladder)
            for u in units
        }
        figures = {
            u.code: {**tallies[u.path].as_dict(), "figures": unit_figures(tallies[u.path])}
            for u in units
        }
        info = SnapshotInfo(period, kind, now, now, taken_by)
        self.store.save_snapshot(info, frozen, figures)
        logger.bind(action="snapshot").info(
            "snapshot {period}: {n} cases frozen", period=period, n=len(frozen)
        )
        return info

    def snapshots(self) -> list[SnapshotInfo]:
        return self.store.list_snapshots()

    # --- ranking ------------------------------------------------------------------------

    def ranking(
        self, period: str, *, scheme: Scheme | None = None, unit: str | None = None
    ) -> dict[str, Any]:
        """The units one level below ``unit`` (default: the root's children) ranked from
        ``period``'s snapshot alone: later changes do not move a past period's ranking."""
        scheme = scheme or default_scheme()
        period = _period(period).key  # a bad period is refused as such, not as not found
        if self.store.get_snapshot(period) is None:
            raise NotFound("snapshot", period)
        root, _name, _code = self._scope(unit)
        frozen = self.store.snapshot_units(period)
        ranked = [
            (u.code, u.name, frozen[u.code]["figures"])
            for u in self.store.list_units()
            if _is_child(u, root) and u.code in frozen
        ]
        return {
            "period": period,
            "scheme": scheme.name,
            "units": rank(ranked, scheme),
            "figure_labels": {
                "total": "问题总数",
                "completed": "已完成",
                "completion_rate": "完成率",
                **{f"{c.key}_rate": f"{c.zh}率" for c in reports.CATEGORIES if c.counted},
                **{f"{level}_rate": f"{zh}率" for level, zh in LEVEL_ZH.items()},
            },
            "tie_note": "同分者按单位代码排序（equal scores are ordered by unit code）",
        }

    # --- light history ------------------------------------------------------------------

    def light_history(self, first: str, last: str, *, unit: str | None = None) -> dict[str, Any]:
        """Month by month from the monthly snapshots: each case's light at the month's end
        and each unit's count of red, yellow and green; a month without a snapshot is
        missing, never guessed."""
        try:
            months = periods_between(first, last)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        root, _name, code = self._scope(unit)
        children = [u for u in self.store.list_units() if _is_child(u, root)]
        missing = [m for m in months if self.store.get_snapshot(m) is None]
        per_case: dict[int, dict[str, str | None]] = {}
        per_unit: dict[str, dict[str, dict[str, int] | None]] = {u.code: {} for u in children}
        titles: dict[int, str] = {}
        for month in months:
            if month in missing:
                for counts in per_unit.values():
                    counts[month] = None
                continue
            for counts in per_unit.values():
                counts[month] = {"red": 0, "yellow": 0, "green": 0}
            for case in self.store.snapshot_cases(month, [root] if root != "/" else None):
                per_case.setdefault(case.case_id, {})[month] = case.light
                child = next((u for u in children if case.unit_path.startswith(u.path)), None)
                month_counts = per_unit[child.code][month] if child is not None else None
                if month_counts is not None and case.light in month_counts:
                    month_counts[case.light] += 1
        if per_case:  # one read of the cases' titles, not one per case
            paths = [root] if root != "/" else None
            titles = {c.id: c.title for c in self.store.find_cases(unit_paths=paths)}
        return {
            "from": first, "to": last, "unit": code or None, "months": months,
            "missing": missing,
            "units": [
                {"unit": u.code, "name": u.name, "counts": per_unit[u.code]} for u in children
            ],
            "cases": [
                {"id": case_id, "title": titles.get(case_id, ""),
                 "lights": {m: lights.get(m) for m in months}}
                for case_id, lights in sorted(per_case.items())
            ],
        }  # fmt: skip


def _facts(
    engine: Calendar, spec: WorkflowSpec, order: dict[str, int], s: CaseStanding,
    now: dt.datetime, lights: dict[tuple[Any, ...], str | None],
) -> CaseFacts:  # fmt: skip
    # the light depends on these alone for one ``now``; ``lights`` keeps it per call
    args = (s.state, s.due_at, s.paused or s.exempted, s.long_term)
    key = (spec.name, spec.version, *args)
    if key in lights:
        light = lights[key]
    else:
        found = deadlines.light_of(engine.rules, spec, *args, now)
        light = lights[key] = found.value if found is not None else None
    # positional, in the order of CaseFacts' fields: keywords cost twice as much a case
    return CaseFacts(
        s.id, s.unit, s.unit_path, s.category, s.source, s.severity, s.state,
        spec.states[s.state].final, s.state == "dismissed", s.state == spec.due_state,
        s.state == "verify", s.paused, s.long_term, s.due_at, s.stage_entered_at, s.measures,
        s.measures_done, s.measures_late,
        tuple(sorted(s.levels, key=lambda lv: order.get(lv, len(order)))) if s.levels else (),
        light, s.exempted, s.relapses,
        s.lookback_result is None and s.lookback_due_at is not None and s.lookback_due_at <= now
        and spec.states[s.state].final,
        s.lookback_result is not None and spec.states[s.state].final, s.extensions_approved,
    )  # fmt: skip


def _summed(parts: Sequence[Tally], ladder: Sequence[str]) -> Tally:
    """One tally of the cases counted in ``parts``."""
    out = Tally(ladder=ladder)
    for part in parts:
        out.total += part.total
        out.completed += part.completed
        for into, counts in (
            (out.categories, part.categories), (out.lights, part.lights),
            (out.escalations, part.escalations), (out.loop, part.loop),
        ):  # fmt: skip
            for key, n in counts.items():
                into[key] = into.get(key, 0) + n
    return out


def _overdue(case: CaseStanding, units: dict[str, Unit], tz: dt.tzinfo) -> dict[str, Any]:
    unit = units.get(case.unit_path)
    due = case.due_at.astimezone(tz).isoformat(timespec="seconds") if case.due_at else None
    return {
        "id": case.id, "title": case.title, "unit_name": unit.name if unit else case.unit,
        "due_at": due,
    }  # fmt: skip


def _group_key(facts: CaseFacts, by: str, root: str, depth: int) -> str | None:
    if by == "unit":
        return reports.roll_up(facts.unit_path, root, depth)
    value = getattr(facts, by)
    return value if value is not None else "（未填）"


def _is_child(unit: Unit, root: str) -> bool:
    if root == "/":
        return unit.parent is None
    return unit.path.startswith(root) and unit.path.count("/") == root.count("/") + 1


def _period(text: str) -> Period:
    try:
        return parse_period(text)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def quarter_snapshots(month: str) -> Sequence[str]:
    """The quarter a month's snapshot also freezes, when the month ends a quarter."""
    return [quarter_of(month)] if is_quarter_end(month) else []
