"""``case fire``, ``case triggers``, ``case pause``, ``case resume`` and ``case note``: an
open case moved along its workflow, its clock stopped and restarted, its progress noted.

Apart from cli/cases.py (putting a case on the ledger, showing it, listing the ledger) to
keep each module to one concern; the commands join ``case`` as this module is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from rectiflow.cli.cases import Actor, CaseId, ExpectVersion, case_app
from rectiflow.cli.common import JsonOption, print_json, stamp, table, with_engine

if TYPE_CHECKING:
    from rectiflow.app import Engine


def register(app: typer.Typer) -> None:
    """Nothing to add to the root: the commands join ``case`` as this module is imported
    (as cli/loop.py's do), once per process."""


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
    if not found:
        print(f"case {case_id}: nothing can fire now" + (f" for {actor}" if actor else ""))
        return
    result = table("trigger", "from → to", "roles", "guards", "requires")
    for t in found:
        result.add_row(
            t.trigger, f"{t.source} → {t.dest}", ", ".join(t.roles), ", ".join(t.guards),
            ", ".join(t.requires),
        )  # fmt: skip
    result.print()


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
