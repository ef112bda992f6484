"""The Engine's ledger concern: a problem-list ledger (问题清单台账) read in from XLSX/CSV and
written out again.

An import is checked whole before anything is written: every row becomes a case placed
straight in its state, with one ``import`` history entry, or a row error; with errors,
nothing is written (unless ``skip_errors``). The external key (source, 编号) makes a second
import of the same file create nothing. How one row is checked and built into its case is
``ledger_rows.py``; here are the steps of an import and the export.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from loguru import logger

from rectiflow.app.corrections import Corrections
from rectiflow.app.ledger_rows import DONE_MARK, RowError, _differences, _Row, _RowReader
from rectiflow.engine import deadlines
from rectiflow.engine.errors import PermissionDenied, ValidationError
from rectiflow.engine.spec import WorkflowSpec
from rectiflow.engine.types import Actor, Case, Escalation

SEVERITY_ZH = {"high": "高", "medium": "中", "low": "低"}
LIGHT_ZH = {"red": "红", "yellow": "黄", "green": "绿"}
LEVEL_ZH = {
    "remind": "提醒", "warn": "预警", "supervise": "督办", "notify_public": "通报",
    "accountability": "问责",
}  # fmt: skip
_PAGE = 1000  # cases an export reads at a time


@dataclass
class ImportReport:
    created: int = 0
    unchanged: int = 0
    changed: int = 0  # the key exists, the content differs, left alone (no ``update``)
    updated: int = 0
    skipped: int = 0  # rows with errors left out (``skip_errors``)
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    changes: dict[int, dict[str, tuple[object, object]]] = field(default_factory=dict)
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created, "unchanged": self.unchanged, "changed": self.changed,
            "updated": self.updated, "skipped": self.skipped,
            "errors": [dataclasses.asdict(e) for e in self.errors],
            "ignored_columns": self.ignored_columns, "dry_run": self.dry_run,
        }  # fmt: skip


class LedgerImportError(ValidationError):
    """Rows of the ledger are wrong: nothing was written. ``report.errors`` lists them."""

    def __init__(self, report: ImportReport, file: str) -> None:
        first = report.errors[0]
        super().__init__(
            f"{file}: {len(report.errors)} row error(s), nothing imported; first: row "
            f"{first.row}, {first.column or 'row'}: {first.reason}"
        )
        self.report = report


class Ledger(Corrections):
    """Ledger files in and out."""

    def import_ledger(
        self,
        file: str | os.PathLike[str] | BinaryIO,
        actor: str,
        *,
        sheet: str | None = None,
        source: str | None = None,
        workflow: str = "rectification",
        workflow_version: int | None = None,
        mapping: Mapping[str, str] | None = None,
        create_units_under: str | None = None,
        skip_errors: bool = False,
        dry_run: bool = False,
        update: bool = False,
        progress: Callable[[int], None] | None = None,
        now: dt.datetime | None = None,
    ) -> ImportReport:
        """Import a ledger file (xlsx, xls, ods or CSV): one case per row, in its state.

        Raises LedgerImportError (a ValidationError) listing every row error when any row
        is wrong, unless ``skip_errors``; ``dry_run`` checks and counts without writing;
        ``update`` applies a changed row to its case as one ``edit`` history entry."""
        from rectiflow.formats.ledger_read import read_ledger

        now = self._now(now)
        spec = self.workflow(workflow, workflow_version)
        who = self.store.get_actor(actor)
        if who is None or not set(who.roles) & set(spec.permissions["open"]):
            raise PermissionDenied(
                actor, f"import a ledger: needs one of {spec.permissions['open']}"
            )
        sheet_read = read_ledger(file, sheet=sheet, mapping=mapping or {})
        report = ImportReport(ignored_columns=sheet_read.ignored_columns, dry_run=dry_run)
        reader = _RowReader(self, spec, who, source, create_units_under, now)
        rows: list[_Row] = []
        seen: dict[str, int] = {}
        for n, ledger_row in enumerate(sheet_read.rows, 1):
            row = reader.read(ledger_row.number, ledger_row.cells, report.errors)
            key = row.key if row is not None else None
            if row is not None and key is not None and key in seen:
                ref = row.values["ref"]
                report.errors.append(RowError(
                    row.number, sheet_read.fields.get("ref", ""), str(ref),
                    f"ref {ref} is also on row {seen[key]}",
                ))  # fmt: skip
            elif row is not None:
                if key is not None:
                    seen[key] = row.number
                rows.append(row)
            if progress is not None:
                progress(n)
        # The rows whose key exists are compared before the all-or-nothing check, so that
        # a change ``update`` may not apply is a row error like any other.
        refused = {e.row for e in report.errors}
        candidates = [r for r in rows if r.number not in refused]
        existing = self.store.cases_by_ref([r.key for r in candidates if r.key is not None])
        co_units = self.store.co_units_of([c.id for c in existing.values()])
        fresh: list[_Row] = []
        compared: list[tuple[_Row, Case, dict[str, tuple[object, object]]]] = []
        for row in candidates:
            case = existing.get(row.key) if row.key is not None else None
            if case is None:
                fresh.append(row)
                continue
            changes = _differences(case, co_units.get(case.id, []), row.values)
            if changes and update and (reason := self._not_editable(case, who, row.values)):
                report.errors.append(
                    RowError(row.number, sheet_read.fields.get("ref", ""), str(case.ref), reason)
                )
                continue
            compared.append((row, case, changes))
        failed = {e.row for e in report.errors}
        if failed and not skip_errors:
            raise LedgerImportError(report, _name(file))
        report.skipped = len(failed)
        fresh = [r for r in fresh if r.number not in failed]
        for _row, case, changes in compared:
            if not changes:
                report.unchanged += 1
            elif update:
                report.updated += 1
                report.changes[case.id] = changes
            else:
                report.changed += 1
                report.changes[case.id] = changes
        report.created = len(fresh)
        if dry_run:
            return report
        # --create-units: only now, when writing, and only units a written row names
        named = {
            code
            for row in [*fresh, *(r for r, _c, changes in compared if changes and update)]
            for code in (row.values["unit"], *row.values["co_units"])
        }
        for unit in reader.to_create.values():
            if unit.code in named:
                self.add_unit(unit.code, unit.name, parent=unit.parent)
        self.store.import_cases(
            len(fresh),
            lambda ids: (reader.build(i, row, actor) for i, row in zip(ids, fresh, strict=True)),
        )
        if update:
            for case_id, changes in report.changes.items():
                # None leaves a field as it is in an edit; an empty text clears it
                fields: dict[str, Any] = {
                    name: "" if new is None else new for name, (_old, new) in changes.items()
                }
                self.edit_case(case_id, actor, now=now, comment=f"ledger {_name(file)}", **fields)
        logger.bind(action="import").info(
            "ledger {file}: {created} created, {unchanged} unchanged, {changed} changed, "
            "{updated} updated, {skipped} skipped",
            file=_name(file), created=report.created, unchanged=report.unchanged,
            changed=report.changed, updated=report.updated, skipped=report.skipped,
        )  # fmt: skip
        return report

    def _not_editable(self, case: Case, who: Actor, values: Mapping[str, Any]) -> str | None:
        """Why ``update`` could not apply a row to its case (as ``edit_case`` would refuse
        it), checked before anything is written; None when it can."""
        spec = self.workflow(case.workflow, case.workflow_version)
        if spec.states[case.state].final:
            return f"case {case.id} is {case.state} (a final state): it cannot be updated"
        roles = set(spec.permissions.get("edit", ("supervisor",)))
        if case.state == spec.initial:
            roles |= set(spec.permissions["open"])
        paths = [case.unit_path]
        if values.get("unit") not in (None, case.unit):
            paths.append(self.get_unit(values["unit"]).path)
        if not set(who.roles) & roles or not all(who.covers(p) for p in paths):
            return f"{who.name} may not edit case {case.id}"
        return None

    def ledger_rows(
        self,
        *,
        unit: str | None = None,
        states: Sequence[str] = (),
        open_only: bool = False,
        now: dt.datetime | None = None,
    ) -> Iterator[dict[str, object]]:
        """The ledger as the rows of an export (keys: the export's Chinese headings), a
        page of cases at a time, each table read once a page."""
        now = self._now(now)
        unit_paths = None
        if unit is not None:
            unit_paths = [self.get_unit(unit).path]
        names = {u.code: u.name for u in self.list_units()}
        number = offset = 0
        while True:
            page = self.store.find_cases(limit=_PAGE, offset=offset, unit_paths=unit_paths)
            if not page:
                return
            offset += len(page)
            ids = [c.id for c in page]
            measures = self.store.measures_of(ids)
            escalations = self.store.escalations_of(ids)
            notes = self.store.notes_of(ids)
            co_units = self.store.co_units_of(ids)
            for case in page:
                spec = self.workflow(case.workflow, case.workflow_version)
                final = spec.states[case.state].final
                if (states and case.state not in states) or (open_only and final):
                    continue
                number += 1
                yield _export_row(
                    self, spec, case, number, names, now,
                    measures.get(case.id, []), escalations.get(case.id, []),
                    notes.get(case.id, []), co_units.get(case.id, []),
                )  # fmt: skip

    def export_ledger(
        self,
        path: str | os.PathLike[str],
        *,
        unit: str | None = None,
        states: Sequence[str] = (),
        open_only: bool = False,
        title: str | None = None,
        now: dt.datetime | None = None,
    ) -> int:
        """Write the ledger to ``path`` (.xlsx or .csv); returns the number of cases."""
        from rectiflow.formats.ledger_write import write_ledger

        now = self._now(now)
        local = now.astimezone(self.tz)
        if title is None:
            scope = self.get_unit(unit).name if unit is not None else ""
            title = f"{scope}问题整改台账（截至{local:%Y年%m月%d日}）"
        rows = self.ledger_rows(unit=unit, states=states, open_only=open_only, now=now)
        return write_ledger(path, title, rows)


def _export_row(
    engine: Ledger, spec: WorkflowSpec, case: Case, number: int, names: Mapping[str, str],
    now: dt.datetime, measures: Sequence[Any], escalations: Sequence[Escalation],
    notes: Sequence[Any], co_units: Sequence[str],
) -> dict[str, object]:  # fmt: skip
    local = engine.tz
    due = case.due or (case.due_at if case.state == spec.due_state else None)
    deadline: object = due.astimezone(local).date() if due is not None else None
    if case.long_term:
        deadline = f"{deadline:%Y-%m-%d}，长期坚持" if deadline is not None else "长期坚持"
    light = deadlines.light(engine.rules, spec, case, now)
    reached = [e.level for e in escalations if e.visit == case.visit]
    closed = spec.states[case.state].final and case.state != "dismissed"
    return {
        "序号": number,
        "编号": case.ref if case.ref is not None else str(case.id),
        "问题类别": case.category,
        "存在问题": case.title,
        "问题来源": case.source,
        "整改目标": case.target,
        "整改措施": "\n".join(
            f"{i}.{m.text}{DONE_MARK if m.done else ''}" for i, m in enumerate(measures, 1)
        ),
        "责任单位": names.get(case.unit, case.unit),
        "配合单位": "、".join(names.get(u, u) for u in co_units),
        "责任人": case.responsible,
        "整改时限": deadline,
        "严重程度": SEVERITY_ZH.get(case.severity, case.severity),
        "当前状态": spec.states[case.state].labels.get("zh", case.state),
        "灯色": LIGHT_ZH.get(str(light), "") if light is not None else "",
        "督办等级": LEVEL_ZH.get(reached[-1], reached[-1]) if reached else "",
        "最新进展": notes[-1].text if notes else "",
        "销号时间": case.stage_entered_at.astimezone(local).date() if closed else None,
    }


def _name(file: object) -> str:
    if isinstance(file, (str, os.PathLike)):
        return os.fspath(file)
    return str(getattr(file, "name", "<ledger>"))
