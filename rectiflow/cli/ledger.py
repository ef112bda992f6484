"""``ledger import/export`` (the ledger as the XLSX/CSV file offices keep) and ``case edit``
(a case corrected, as an import's ``--update`` corrects it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rectiflow.cli.cases import Actor, CaseId, ExpectVersion, case_app
from rectiflow.cli.common import JsonOption, parse_due, print_json, split_version, with_engine

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager

    from rectiflow.app import Engine
    from rectiflow.app.ledger import ImportReport

ledger_app = typer.Typer(
    help="The ledger as a file (问题清单台账): import and export XLSX and CSV.",
    add_completion=False, rich_markup_mode=None,
)  # fmt: skip

FileArg = Annotated[Path, typer.Argument(metavar="FILE")]
PROGRESS_AFTER = 300  # rows read before a progress line appears on a terminal


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger", rich_help_panel="Work the ledger")


@ledger_app.command("import")
@with_engine
def ledger_import(
    engine: Engine,
    file: FileArg,
    actor: Actor,
    sheet: Annotated[str | None, typer.Option(help="The worksheet (default: the first).")] = None,
    source: Annotated[
        str | None,
        typer.Option(help="The ledger's source (问题来源) for every row: part of each row's key."),
    ] = None,
    workflow: Annotated[str, typer.Option(metavar="NAME[@VERSION]")] = "rectification",
    map_: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="HEADING=FIELD",
            help="Read a column as a field: ref, title, category, source, target, measures, "
            "unit, co_units, responsible, deadline, severity, status ('-': ignore it).",
        ),
    ] = None,
    create_units: Annotated[
        str | None,
        typer.Option(metavar="PARENT", help="Create unknown units under PARENT."),
    ] = None,
    skip_errors: Annotated[
        bool, typer.Option("--skip-errors", help="Import the good rows, list the bad ones.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and count; write nothing.")
    ] = False,
    update: Annotated[
        bool, typer.Option("--update", help="Apply changed rows to their cases (an edit each).")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Read a ledger (xlsx, xls, ods or CSV in UTF-8 or GBK): one case per row, placed in
    the state its status names.

    All or nothing: with any bad row nothing is written, every error is listed (row as
    Excel numbers it, column, cell, reason) and the exit code is 2. Importing the same
    file again creates nothing: a row's key is (source, 编号).

    Example: rectiflow ledger import 巡视整改台账.xlsx --actor 督办员 --source 2026年省委巡视
    """
    from rectiflow.app.ledger import LedgerImportError
    from rectiflow.formats.ledger_columns import parse_mapping

    name, version = split_version(workflow)
    mapping = parse_mapping(map_ or [])
    with _progress() as progress:
        try:
            report = engine.import_ledger(
                file, actor, sheet=sheet, source=source, workflow=name,
                workflow_version=version, mapping=mapping, create_units_under=create_units,
                skip_errors=skip_errors, dry_run=dry_run, update=update, progress=progress,
            )  # fmt: skip
        except LedgerImportError as exc:
            _print_report(exc.report, json)
            raise
    _print_report(report, json)


@ledger_app.command("export")
@with_engine
def ledger_export(
    engine: Engine,
    file: FileArg,
    unit: Annotated[str | None, typer.Option(help="This unit and the units below it.")] = None,
    state: Annotated[
        list[str] | None, typer.Option(help="Only cases in this state (repeatable).")
    ] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only cases not closed.")] = False,
    json: JsonOption = False,
) -> None:
    """Write the ledger as people read it: .xlsx (a title, frozen headings, a filter, lights
    in colour) or .csv (UTF-8 with BOM, which Excel opens as it is).

    Example: rectiflow ledger export 台账.xlsx --unit HRB --open
    """
    count = engine.export_ledger(file, unit=unit, states=state or (), open_only=open_only)
    if json:
        print_json({"file": str(file), "cases": count})
    else:
        print(f"wrote {count} cases to {file}")


@case_app.command("edit")
@with_engine
def case_edit(
    engine: Engine,
    case_id: CaseId,
    actor: Actor,
    title: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    category: Annotated[str | None, typer.Option()] = None,
    source: Annotated[str | None, typer.Option()] = None,
    ref: Annotated[str | None, typer.Option(help="Its number in your own ledger (编号).")] = None,
    severity: Annotated[str | None, typer.Option(help="high, medium or low.")] = None,
    target: Annotated[str | None, typer.Option(help="整改目标.")] = None,
    responsible: Annotated[str | None, typer.Option(help="责任人.")] = None,
    unit: Annotated[str | None, typer.Option(help="Move the case to this unit.")] = None,
    co_unit: Annotated[
        list[str] | None,
        typer.Option("--co-unit", metavar="CODE", help="The co-units, all of them (repeatable)."),
    ] = None,
    no_co_units: Annotated[
        bool, typer.Option("--no-co-units", help="Remove every co-unit.")
    ] = False,
    due: Annotated[
        str | None, typer.Option(metavar="DATE", help="The case's own deadline.")
    ] = None,
    long_term: Annotated[
        bool | None, typer.Option("--long-term/--no-long-term", help="长期坚持.")
    ] = None,
    comment: Annotated[str | None, typer.Option(help="Why.")] = None,
    expect_version: ExpectVersion = None,
    json: JsonOption = False,
) -> None:
    """Correct a case (supervisor; the reporter while it is in identify): one history entry
    `edit` names each field changed, old → new. A new --due or --severity recomputes the
    current deadline as a new visit would. An empty text ('') clears a field.

    Example: rectiflow case edit 12 --actor 督办员 --due 2026-12-31 --comment "延至年底"
    """
    if co_unit and no_co_units:
        raise typer.BadParameter("--co-unit and --no-co-units exclude each other")
    co_units = () if no_co_units else co_unit
    case = engine.edit_case(
        case_id, actor, title=title, description=description, category=category,
        source=source, ref=ref, severity=severity, target=target, responsible=responsible,
        unit=unit, co_units=co_units, due=parse_due(due, engine), long_term=long_term,
        comment=comment, expect_version=expect_version,
    )  # fmt: skip
    if json:
        print_json(engine.case_view(case.id))
    else:
        print(f"case {case.id} edited: {engine.history(case.id)[-1].comment}")


def _print_report(report: ImportReport, as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict())
        return
    verb = "would create" if report.dry_run else "created"
    print(
        f"{verb} {report.created}, unchanged {report.unchanged}, changed {report.changed}, "
        f"updated {report.updated}, skipped {report.skipped}"
    )
    for case_id, changes in sorted(report.changes.items()):
        fields = ", ".join(changes)
        print(f"case {case_id} {'updated' if report.updated else 'differs'}: {fields}")
    if report.ignored_columns:
        print("ignored columns: " + "、".join(report.ignored_columns))
    for e in report.errors:
        column = f", {e.column}" if e.column else ""
        cell = f" {e.value!r}" if e.value else ""
        print(f"row {e.row}{column}{cell}: {e.reason}")


def _progress() -> AbstractContextManager[Callable[[int], None] | None]:
    """A row counter on stderr when it is a terminal and the file is long."""
    from contextlib import contextmanager

    @contextmanager
    def counter() -> Iterator[Callable[[int], None] | None]:
        if not sys.stderr.isatty():
            yield None
            return
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn

        bar: dict[str, Any] = {}
        with Progress(
            SpinnerColumn(), TextColumn("{task.completed} rows read"),
            console=Console(stderr=True), transient=True,
        ) as progress:  # fmt: skip

            def advance(rows: int) -> None:
                if rows >= PROGRESS_AFTER:
                    if "task" not in bar:
                        bar["task"] = progress.add_task("import", total=None)
                    progress.update(bar["task"], completed=rows)

            yield advance

    return counter()
