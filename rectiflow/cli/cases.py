"""``case`` and ``measure``: the life of a case on the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rectiflow import views
from rectiflow.app import Engine
from rectiflow.cli.common import (
    JsonOption,
    case_table,
    cell,
    console,
    light_text,
    parse_due,
    print_json,
    split_version,
    stamp,
    state_label,
    table,
    with_engine,
)
from rectiflow.engine.spec import TransitionSpec

case_app = typer.Typer(help="Open, inspect and move cases (问题).", add_completion=False)
measure_app = typer.Typer(help="Measures (整改措施) of a case.", add_completion=False)

Actor = Annotated[str, typer.Option("--actor", "-a", help="Who does it (an actor name).")]
CaseId = Annotated[int, typer.Argument(metavar="ID", help="The case id.")]
ExpectVersion = Annotated[
    int | None,
    typer.Option(help="Refuse (exit 5) unless the case is at this version."),
]


def register(app: typer.Typer) -> None:
    app.add_typer(case_app, name="case", rich_help_panel="Work the ledger")
    app.add_typer(measure_app, name="measure", rich_help_panel="Work the ledger")


@case_app.command("open")
@with_engine
def case_open(
    engine: Engine,
    unit: Annotated[str, typer.Option(help="Code of the unit the problem belongs to.")],
    title: Annotated[str, typer.Option(help="What the problem is, in one line.")],
    actor: Actor,
    workflow: Annotated[str, typer.Option(metavar="NAME[@VERSION]")] = "rectification",
    severity: Annotated[str, typer.Option(help="high, medium or low.")] = "medium",
    category: Annotated[str | None, typer.Option()] = None,
    source: Annotated[str | None, typer.Option(help="Where it was found.")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    due: Annotated[
        str | None,
        typer.Option(metavar="DATE", help="Fix the rectification deadline (YYYY-MM-DD)."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Put a problem on the ledger; prints the new case id.

    Example: rectiflow case open --unit HRB --title "审批效率低" --actor 赵敏 --severity high
    """
    name, version = split_version(workflow)
    case = engine.open_case(
        actor, unit=unit, title=title, workflow=name, workflow_version=version,
        severity=severity, category=category, source=source, description=description,
        due=parse_due(due, engine),
    )  # fmt: skip
    if json:
        print_json(engine.case_view(case.id))
    else:
        print(case.id)


@case_app.command("show")
@with_engine
def case_show(engine: Engine, case_id: CaseId, json: JsonOption = False) -> None:
    """The case with its measures, notes, history, escalations, deadline and light.

    Example: rectiflow case show 12 --json
    """
    data = engine.case_view(case_id)
    if json:
        print_json(data)
        return
    units = {u.code: u.name for u in engine.list_units()}
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    due = stamp(data["due_at"], engine) + (" (provisional)" if data["due_provisional"] else "")
    for key, value in (
        ("unit", f"{data['unit']} {units.get(data['unit'], '')}"),
        ("workflow", f"{data['workflow']}@{data['workflow_version']}"),
        ("state", f"{state_label(engine, data)}  (version {data['version']})"),
        ("severity", data["severity"]),
        ("category", data["category"]),
        ("source", data["source"]),
        ("opened", stamp(data["created_at"], engine)),
        ("stage since", stamp(data["stage_entered_at"], engine)),
        ("stage due", due),
        ("case due", stamp(data["due"], engine) if data["due"] else None),
        ("description", data["description"]),
    ):
        if value is not None:
            facts.add_row(cell(key), cell(value))
    facts.add_row(cell("light"), light_text(data["light"], data["paused"]))
    console.print(f"case {data['id']}: {data['title']}", style="bold")
    console.print(facts)
    _print_rows(
        "measures", ("id", "text", "owner", "due", "done at", "evidence"),
        [(m["id"], m["text"], m["owner"], stamp(m["due"], engine) if m["due"] else None,
          stamp(m["done_at"], engine) if m["done"] else "not done",
          f"{m['evidence_path']} sha256:{m['evidence_sha256'][:12]}"
          if m["evidence_path"] else None) for m in data["measures"]],
    )  # fmt: skip
    _print_rows(
        "progress notes",
        ("at", "actor", "text"),
        [(stamp(n["at"], engine), n["actor"], n["text"]) for n in data["notes"]],
    )
    _print_rows(
        "history", ("seq", "at", "trigger", "from → to", "actor", "comment"),
        [(h["seq"], stamp(h["at"], engine), h["trigger"],
          f"{h['source'] or '∅'} → {h['dest']}", h["actor"], h["comment"])
         for h in data["history"]],
    )  # fmt: skip
    _print_rows(
        "escalations", ("level", "stage", "visit", "due at", "fired at"),
        [(e["level"], e["state"], e["visit"], stamp(e["due_at"], engine), stamp(e["at"], engine))
         for e in data["escalations"]],
    )  # fmt: skip
    nexts = engine.triggers(case_id)
    if nexts:
        console.print("next: " + "; ".join(_describe(t) for t in nexts))


def _print_rows(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    result = table(*columns, title=title)
    for row in rows:
        result.add_row(*(cell(v) for v in row))
    console.print(result)


def _describe(t: TransitionSpec) -> str:
    needs = [f"guard {g}" for g in t.guards] + [f"--{r}" for r in t.requires]
    extra = f", needs {', '.join(needs)}" if needs else ""
    return f"{t.trigger} → {t.dest} ({'/'.join(t.roles)}{extra})"


@case_app.command("list")
@with_engine
def case_list(
    engine: Engine,
    unit: Annotated[
        str | None, typer.Option(help="Cases of this unit and the units below.")
    ] = None,
    state: Annotated[str | None, typer.Option()] = None,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only cases past their stage deadline.")
    ] = False,
    light: Annotated[str | None, typer.Option(help="green, yellow or red.")] = None,
    json: JsonOption = False,
) -> None:
    """The ledger: cases, optionally by unit, state, light or overdue.

    Example: rectiflow case list --unit HLJ --light red
    """
    if light is not None and light not in ("green", "yellow", "red"):
        raise typer.BadParameter(f"{light!r}: use green, yellow or red", param_hint="--light")
    cases = engine.list_cases(unit=unit, state=state, overdue=overdue, light=light)
    if json:
        now = engine.clock()
        print_json([
            views.case_dict(
                c, engine, now=now, measures=engine.measures(c.id),
                escalations=engine.escalations(c.id), notes=engine.notes(c.id),
            )
            for c in cases
        ])  # fmt: skip
    else:
        console.print(case_table(engine, cases))


@case_app.command("fire")
@with_engine
def case_fire(
    engine: Engine,
    case_id: CaseId,
    trigger: Annotated[
        str, typer.Argument(metavar="TRIGGER", help="confirm, approve_plan, submit, accept, ...")
    ],
    actor: Actor,
    comment: Annotated[str | None, typer.Option(help="Why (required by reject, dismiss).")] = None,
    expect_version: ExpectVersion = None,
    json: JsonOption = False,
) -> None:
    """Fire a trigger: move the case to its next state.

    Example: rectiflow case fire 12 reject --actor 孙丽 --comment "佐证材料不充分"
    """
    before = engine.get_case(case_id)
    case = engine.fire(case_id, trigger, actor, comment=comment, expect_version=expect_version)
    if json:
        print_json(engine.case_view(case_id))
        return
    due = f", due {stamp(case.due_at, engine)}" if case.due_at else ""
    print(f"case {case_id}: {trigger} {before.state} → {case.state} (version {case.version}{due})")


@case_app.command("triggers")
@with_engine
def case_triggers(
    engine: Engine,
    case_id: CaseId,
    actor: Annotated[
        str | None, typer.Option("--actor", "-a", help="Only what this actor may fire.")
    ] = None,
    json: JsonOption = False,
) -> None:
    """The triggers that can fire now (for an actor: its roles, units and the guards).

    Example: rectiflow case triggers 12 --actor 李强
    """
    found = engine.triggers(case_id, actor)
    if json:
        print_json([
            {"trigger": t.trigger, "source": t.source, "dest": t.dest, "roles": list(t.roles),
             "guards": list(t.guards), "requires": list(t.requires)}
            for t in found
        ])  # fmt: skip
        return
    result = table("trigger", "from → to", "roles", "guards", "requires")
    for t in found:
        result.add_row(
            cell(t.trigger), cell(f"{t.source} → {t.dest}"), cell(", ".join(t.roles)),
            cell(", ".join(t.guards)), cell(", ".join(t.requires)),
        )  # fmt: skip
    console.print(result)


@case_app.command("pause")
@with_engine
def case_pause(
    engine: Engine,
    case_id: CaseId,
    actor: Actor,
    comment: Annotated[str, typer.Option(help="Why the clock stops.")],
) -> None:
    """Stop the clock of a case (supervisor); no escalation fires while paused.

    Example: rectiflow case pause 12 --actor 赵敏 --comment "等待省级统一部署"
    """
    engine.pause(case_id, actor, comment=comment)
    print(f"case {case_id} paused")


@case_app.command("resume")
@with_engine
def case_resume(engine: Engine, case_id: CaseId, actor: Actor) -> None:
    """Restart the clock; the deadline moves later by the paused time.

    Example: rectiflow case resume 12 --actor 赵敏
    """
    case = engine.resume(case_id, actor)
    print(f"case {case_id} resumed, due {stamp(case.due_at, engine)}")


@case_app.command("note")
@with_engine
def case_note(
    engine: Engine,
    case_id: CaseId,
    actor: Actor,
    text: Annotated[str, typer.Option(help="What was done (每月调度).")],
) -> None:
    """Add a progress note to an open case.

    Example: rectiflow case note 12 --actor 李强 --text "已压缩审批时限至5个工作日"
    """
    note = engine.note(case_id, actor, text)
    print(f"case {case_id}: note {note.id} added")


@measure_app.command("add")
@with_engine
def measure_add(
    engine: Engine,
    case_id: Annotated[int, typer.Argument(metavar="CASE_ID")],
    text: Annotated[str, typer.Option(help="What will be done.")],
    actor: Actor,
    due: Annotated[str | None, typer.Option(metavar="DATE", help="YYYY-MM-DD.")] = None,
    expect_version: ExpectVersion = None,
) -> None:
    """Add a measure to a case (owner); prints the measure id.

    Example: rectiflow measure add 12 --text "梳理审批事项清单" --actor 李强 --due 2026-06-30
    """
    measure = engine.add_measure(
        case_id, actor, text, due=parse_due(due, engine), expect_version=expect_version
    )
    print(measure.id)


@measure_app.command("done")
@with_engine
def measure_done(
    engine: Engine,
    measure_id: Annotated[int, typer.Argument(metavar="MEASURE_ID")],
    actor: Actor,
    evidence: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="A file proving it; its path and sha256 are stored."),
    ] = None,
) -> None:
    """Mark a measure done (owner), optionally with an evidence file.

    Example: rectiflow measure done 3 --actor 李强 --evidence 整改报告.pdf
    """
    measure = engine.complete_measure(measure_id, actor, evidence=evidence)
    proof = f", evidence sha256 {measure.evidence_sha256}" if measure.evidence_sha256 else ""
    print(f"measure {measure_id} of case {measure.case_id} done{proof}")
