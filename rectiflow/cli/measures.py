"""``measure``: the measures (整改措施) of a case, added, done with their evidence, and
that evidence checked again later."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rectiflow.cli.cases import Actor, ExpectVersion
from rectiflow.cli.common import MAX_ID, parse_due, with_engine

if TYPE_CHECKING:
    from rectiflow.app import Engine

measure_app = typer.Typer(
    help="Measures (整改措施) of a case.", add_completion=False, rich_markup_mode=None
)


def register(app: typer.Typer) -> None:
    app.add_typer(measure_app, name="measure", rich_help_panel="Work the ledger")


@measure_app.command("add")
@with_engine
def measure_add(
    engine: Engine,
    case_id: Annotated[int, typer.Argument(metavar="CASE_ID", min=0, max=MAX_ID)],
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
    measure_id: Annotated[int, typer.Argument(metavar="MEASURE_ID", min=0, max=MAX_ID)],
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


@measure_app.command("verify-evidence")
@with_engine
def measure_verify_evidence(
    engine: Engine,
    measure_id: Annotated[int, typer.Argument(metavar="MEASURE_ID", min=0, max=MAX_ID)],
) -> None:
    """Hash a done measure's evidence file again and compare it with the stored sha256.

    Exit 7 if the file changed, 3 if it is gone, 2 if the measure has no evidence.

    Example: rectiflow measure verify-evidence 3
    """
    measure = engine.verify_evidence(measure_id)
    print(f"evidence of measure {measure_id} intact: {measure.evidence_path}")
