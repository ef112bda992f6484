"""Setting a ledger up and keeping it: init, units, workflows, calendar, the schema, the
sweep and the demo. The audit's commands are cli/audit.py."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rectiflow.cli.common import (
    FIRST_YEAR,
    LAST_YEAR,
    AdminOption,
    JsonOption,
    case_table,
    escalation_table,
    masked_url,
    parse_time,
    print_json,
    read_text,
    say,
    setup_logging,
    split_version,
    stamp,
    table,
    with_engine,
)
from rectiflow.engine.errors import UsageError

if TYPE_CHECKING:
    from rectiflow.app import Engine
    from rectiflow.engine.spec import StateSpec

unit_app = typer.Typer(
    help="Units (单位): the province, its cities, departments.", rich_markup_mode=None
)
workflow_app = typer.Typer(help="Workflow definitions (YAML, versioned).", rich_markup_mode=None)
calendar_app = typer.Typer(
    help="The working calendar (holidays and 调休 make-up days).", rich_markup_mode=None
)
db_app = typer.Typer(
    help="The database schema (migrations run by `rectiflow init`).", rich_markup_mode=None
)

FileArg = Annotated[Path, typer.Argument(metavar="FILE")]
WorkflowRef = Annotated[str, typer.Argument(metavar="NAME[@VERSION]")]


SETUP, RUN = "Set up a ledger", "Run and check"


def register(app: typer.Typer) -> None:
    app.command("demo", rich_help_panel="Try it")(demo)
    app.command("init", rich_help_panel=SETUP)(init)
    app.add_typer(unit_app, name="unit", rich_help_panel=SETUP)
    app.add_typer(workflow_app, name="workflow", rich_help_panel=SETUP)
    app.add_typer(calendar_app, name="calendar", rich_help_panel=SETUP)
    app.add_typer(db_app, name="db", rich_help_panel=SETUP)
    app.command("escalate", rich_help_panel=RUN)(escalate)


@with_engine(create=True)
def init(
    engine: Engine,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Add the ledger's tables to a database that holds other tables."
        ),
    ] = False,
) -> None:
    """Create or upgrade the database and register the shipped workflows (idempotent).

    A database with another program's tables is refused unless --force.

    Example: rectiflow --db ledger.db init
    """
    records = engine.init(force=force)
    names = ", ".join(f"{r.name}@{r.version}" for r in records)
    print(f"database ready: {masked_url(engine.url)} (workflows: {names})")
    if not any("admin" in a.roles for a in engine.list_actors()):
        print(
            "no admin yet: anyone may change units, actors, workflows and the calendar; "
            "create the first admin with `rectiflow actor add NAME --role admin`"
        )


@db_app.command("status")
@with_engine
def db_status(engine: Engine) -> None:
    """Show the database's schema revision and the newest one this version knows.

    Example: rectiflow --db postgresql+psycopg://rectiflow@127.0.0.1/ledger db status
    """
    current, head = engine.schema_revision()
    state = "up to date" if current == head else "behind: run `rectiflow init` to upgrade"
    print(f"schema revision {current or 'none'} (newest {head}): {state}")


# --- units and actors -----------------------------------------------------------------------


@unit_app.command("add")
@with_engine
def unit_add(
    engine: Engine,
    code: Annotated[str, typer.Argument(metavar="CODE", help="Letters, digits, - and _.")],
    name: Annotated[str, typer.Argument(metavar="NAME", help="Full name, e.g. 哈尔滨市.")],
    parent: Annotated[str | None, typer.Option(metavar="CODE", help="The parent unit.")] = None,
    actor: AdminOption = None,
) -> None:
    """Add a unit, optionally below a parent unit.

    Example: rectiflow unit add HRB 哈尔滨市 --parent HLJ
    """
    unit = engine.add_unit(code, name, parent, actor=actor)
    print(f"unit {unit.code} added ({unit.path})")


@unit_app.command("list")
@with_engine
def unit_list(engine: Engine, json: JsonOption = False) -> None:
    """All units, as a tree by path.

    Example: rectiflow unit list --json
    """
    units = engine.list_units()
    if json:
        print_json([
            {"code": u.code, "name": u.name, "parent": u.parent, "path": u.path} for u in units
        ])  # fmt: skip
        return
    if not units:
        print("no units")
        return
    result = table("code", "name", "parent", "path")
    for unit in units:
        result.add_row(unit.code, unit.name, unit.parent, unit.path)
    result.print()


# --- workflows ------------------------------------------------------------------------------


@workflow_app.command("list")
@with_engine
def workflow_list(engine: Engine, json: JsonOption = False) -> None:
    """The registered workflows and versions.

    Example: rectiflow workflow list --json
    """
    records = engine.list_workflows()
    if json:
        print_json([
            {"name": r.name, "version": r.version,
             "title": engine.workflow(r.name, r.version).title, "sha256": r.digest,
             "registered_at": stamp(r.registered_at, engine)}
            for r in records
        ])  # fmt: skip
        return
    if not records:
        print("no workflows: run `rectiflow init`")
        return
    result = table("name", "version", "title", "sha256", "registered")
    for record in records:
        spec = engine.workflow(record.name, record.version)
        result.add_row(
            record.name, record.version, " / ".join(spec.title.values()), record.digest[:12],
            stamp(record.registered_at, engine),
        )  # fmt: skip
    result.print()


@workflow_app.command("show")
@with_engine
def workflow_show(engine: Engine, ref: WorkflowRef) -> None:
    """States, transitions, escalation ladder and permissions of a workflow.

    Example: rectiflow workflow show rectification@1
    """
    spec = engine.workflow(*split_version(ref))
    say(f"{spec.name}@{spec.version}: {' / '.join(spec.title.values())}", style="bold")
    states = table("state", "zh", "en", "sla", "final", title="states")
    for state in spec.states.values():
        initial = " (initial)" if state.name == spec.initial else ""
        states.add_row(
            state.name + initial, state.labels.get("zh"), state.labels.get("en"), _sla(state),
            "final" if state.final else "",
        )  # fmt: skip
    states.print()
    moves = table("trigger", "from → to", "roles", "guards", "requires", title="transitions")
    for t in spec.transitions:
        moves.add_row(
            t.trigger, f"{t.source} → {t.dest}", ", ".join(t.roles), ", ".join(t.guards),
            ", ".join(t.requires),
        )  # fmt: skip
    moves.print()
    ladder = table("level", "offset from the deadline", "notify", title="escalation ladder")
    for level in spec.ladder:
        ladder.add_row(level.level, str(level.offset), ", ".join(level.notify))
    ladder.print()
    grants = table("action", "roles", title="permissions")
    for action, roles in spec.permissions.items():
        grants.add_row(action, ", ".join(roles))
    grants.print()


def _sla(state: StateSpec) -> str | None:
    if state.sla is None:
        return None
    slas = {severity: str(d).lstrip("+") for severity, d in state.sla.items()}
    if len(set(slas.values())) == 1:
        return next(iter(slas.values()))
    return ", ".join(f"{severity} {d}" for severity, d in slas.items())


@workflow_app.command("validate")
def workflow_validate(file: FileArg) -> None:
    """Check a workflow definition without registering it (no database needed).

    Example: rectiflow workflow validate review.yaml
    """
    from rectiflow.engine.spec import parse_workflow

    spec = parse_workflow(read_text(file, "workflow file"), str(file))
    print(
        f"{file}: ok: {spec.name}@{spec.version}, {len(spec.states)} states, "
        f"{len(spec.transitions)} transitions, {len(spec.ladder)} escalation levels"
    )


@workflow_app.command("add")
@with_engine
def workflow_add(engine: Engine, file: FileArg, actor: AdminOption = None) -> None:
    """Validate and register a workflow definition; a registered version is immutable.

    Example: rectiflow workflow add review.yaml
    """
    spec = engine.register_workflow(read_text(file, "workflow file"), str(file), actor=actor)
    print(f"workflow {spec.name}@{spec.version} registered")


@workflow_app.command("diagram")
@with_engine
def workflow_diagram(
    engine: Engine,
    ref: WorkflowRef,
    lang: Annotated[str, typer.Option(help="Labels in zh or en.")] = "zh",
) -> None:
    """Print the workflow as a Mermaid state diagram.

    Example: rectiflow workflow diagram rectification --lang en > lifecycle.mmd
    """
    print(engine.diagram(*split_version(ref), lang=lang))


# --- calendar and the sweep -----------------------------------------------------------------


@calendar_app.command("load")
@with_engine
def calendar_load(
    engine: Engine,
    file: FileArg,
    partial: Annotated[
        bool,
        typer.Option("--partial", help="Accept a year with fewer than 7 weekday holidays."),
    ] = False,
    actor: AdminOption = None,
) -> None:
    """Load holidays and make-up working days from CSV or YAML (date, holiday|workday).

    UTF-8 (with or without a BOM) or GB18030. A year must be whole (at least 7 holidays on
    weekdays) unless --partial. Recomputes the provisional deadlines of open cases.

    Example: rectiflow calendar load 2027.csv
    """
    recomputed = engine.load_calendar(file, partial=partial, actor=actor)
    print(f"calendar loaded from {file}; {recomputed} provisional deadlines recomputed")


@calendar_app.command("show")
@with_engine
def calendar_show(
    engine: Engine,
    year: Annotated[int, typer.Argument(metavar="YEAR", min=FIRST_YEAR, max=LAST_YEAR)],
    all_days: Annotated[bool, typer.Option("--all", help="List every day of the year.")] = False,
    json: JsonOption = False,
) -> None:
    """The working days of a year: the exceptions to Monday–Friday, and where they come from.

    Example: rectiflow calendar show 2026 --json
    """
    if not 1900 <= year <= 9999:
        raise UsageError(f"year out of range: {year}")
    days = engine.calendar(year)
    origins = sorted({origin for _, _, origin in days})
    working = sum(1 for _, is_working, _ in days if is_working)
    shown = [
        (day, is_working, origin)
        for day, is_working, origin in days
        if all_days or is_working != (day.weekday() < 5)
    ]
    if json:
        print_json({
            "year": year, "working_days": working, "sources": origins,
            "provisional": origins == ["weekday rule"],
            "days": [
                {"date": day.isoformat(), "weekday": f"{day:%a}",
                 "day": "workday" if is_working else "holiday", "source": origin}
                for day, is_working, origin in shown
            ],
        })  # fmt: skip
        return
    say(f"{year}: {working} working days ({', '.join(origins)})")
    if origins == ["weekday rule"]:
        say(
            f"no calendar data for {year}: Monday–Friday, deadlines provisional "
            "(load it with `rectiflow calendar load FILE`)"
        )
    result = table("date", "weekday", "day", "source")
    for day, is_working, origin in shown:
        result.add_row(day.isoformat(), f"{day:%a}", "workday" if is_working else "holiday", origin)
    if result:
        result.print()


@with_engine
def escalate(
    engine: Engine,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what is due, record nothing.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """Run one escalation sweep at --now: record every ladder level that is due, once each.

    Example: rectiflow --now 2026-10-12T09:00 escalate --dry-run
    """
    summary = engine.escalate_due(dry_run=dry_run)
    if json:
        print_json({
            "at": stamp(engine.clock(), engine), "dry_run": dry_run, "cases": summary.cases,
            "fired": summary.fired, "by_level": summary.by_level,
            "next_due_at": summary.next_due_at and stamp(summary.next_due_at, engine),
        })  # fmt: skip
        return
    verb = "would record" if dry_run else "recorded"
    levels = ", ".join(f"{level} {n}" for level, n in summary.by_level.items())
    print(
        f"swept {summary.cases} cases at {stamp(engine.clock(), engine)}: {verb} "
        f"{summary.fired} escalations{f' ({levels})' if levels else ''}; "
        f"next due {stamp(summary.next_due_at, engine)}"
    )


def demo(
    ctx: typer.Context,
    db: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="A new SQLite file (default: in a temporary folder)."),
    ] = None,
) -> None:
    """Build a sample provincial ledger and drive it through a simulated spring.

    A province with its cities and departments, a dozen cases in Chinese, a rejection, a
    dismissal, a pause, progress notes and overdue cases escalating; then the ledger and
    the escalations are printed. Nothing to configure.

    Example: rectiflow demo
    """
    if db is None:
        db = Path(tempfile.mkdtemp(prefix="rectiflow-demo-")) / "demo.db"
    elif db.exists():
        raise UsageError(f"{db} exists: the demo builds a fresh ledger, give a new file")
    db = db.resolve()
    if not db.parent.is_dir():
        raise UsageError(f"no folder {db.parent} for the demo ledger")
    from rectiflow import demo as demo_story
    from rectiflow.app import Engine

    start = demo_story.START
    settings = ctx.obj
    setup_logging(settings.debug)
    with Engine(f"sqlite:///{db}") as engine:
        if settings.now is not None:
            start = parse_time(settings.now, engine, "--now")
        end = demo_story.run(engine, start)
        engine.clock = lambda: end
        _print_demo(engine, db, start, end)


def _print_demo(engine: Engine, db: Path, start: dt.datetime, end: dt.datetime) -> None:
    cases = engine.list_cases()
    states: dict[str, int] = {}
    for case in cases:
        states[case.state] = states.get(case.state, 0) + 1
    say(f"demo ledger: {db}", style="bold")
    say(
        f"simulated clock: {stamp(start, engine)} → {stamp(end, engine)}; "
        + ", ".join(f"{n} {state}" for state, n in states.items())
    )
    case_table(engine, cases, title="ledger (问题清单台账)").print()
    escalation_table(
        engine, cases, engine.store.list_escalations(),
        title="escalations (提醒 → 预警 → 督办 → 通报 → 问责)",
    ).print()  # fmt: skip
    say(
        f"explore it: rectiflow --db {db} --now {end.astimezone(engine.tz):%Y-%m-%dT%H:%M} "
        "case show 2"
    )
