"""``report``: what the office reports — the bulletin (情况通报), the frozen figures of each
period, the quarterly ranking (划档排序) and the lights month by month."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rectiflow.cli.common import JsonOption, print_json, read_text, stamp, with_engine
from rectiflow.engine.errors import UsageError

if TYPE_CHECKING:
    from rectiflow.app import Engine

report_app = typer.Typer(
    help="Bulletins and rankings (情况通报, 划档排序) computed from the ledger.",
    add_completion=False, rich_markup_mode=None,
)  # fmt: skip

FORMATS = ("md", "xlsx", "docx")
Format = Annotated[
    str | None,
    typer.Option("--format", help="md (the default on screen), xlsx or docx (needs --out)."),
]
Out = Annotated[Path | None, typer.Option("--out", metavar="FILE", help="Write it to FILE.")]
Unit = Annotated[str | None, typer.Option(help="The unit whose subtree is reported.")]
Period = Annotated[
    str, typer.Option(metavar="PERIOD", help="A month (2026-03) or a quarter (2026-Q1).")
]


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report", rich_help_panel="Work the ledger")


@report_app.command("progress")
@with_engine
def report_progress(
    engine: Engine,
    unit: Unit = None,
    by: Annotated[str, typer.Option(help="unit, category, source or severity.")] = "unit",
    depth: Annotated[
        int,
        typer.Option(min=1, max=100, help="Units this many levels below the scope (1: children)."),
    ] = 1,
    fmt: Format = None,
    out: Out = None,
    json: JsonOption = False,
) -> None:
    """The bulletin as of --now: totals, completion rate, the categories (已销号, 待验收, 逾期,
    未达序时进度, …), lights and escalation levels, per unit or per category.

    Example: rectiflow report progress --unit HLJ --format docx --out 通报.docx
    """
    data = engine.progress(unit=unit, by=by, depth=depth)
    _emit("progress", data, fmt, out, json)


@report_app.command("snapshot")
@with_engine
def report_snapshot(engine: Engine, period: Period, json: JsonOption = False) -> None:
    """Freeze the figures of a period as of now, per case and per unit. A period is frozen
    once: taking it again exits 5 and changes nothing. (The daemon takes each month's at
    23:59 on its last day, and the quarter's with it.)

    Example: rectiflow report snapshot --period 2026-Q1
    """
    info = engine.snapshot(period, taken_by="operator")
    if json:
        print_json(_snapshot_json(info, engine))
    else:
        print(f"snapshot {info.period} taken, as of {stamp(info.as_of, engine)}")


@report_app.command("snapshots")
@with_engine
def report_snapshots(engine: Engine, json: JsonOption = False) -> None:
    """The frozen periods.

    Example: rectiflow report snapshots --json
    """
    found = engine.snapshots()
    if json:
        print_json([_snapshot_json(info, engine) for info in found])
    elif not found:
        print("no snapshots")
    else:
        for info in found:
            print(f"{info.period}\t{info.kind}\tas of {stamp(info.as_of, engine)}\t{info.taken_by}")


@report_app.command("ranking")
@with_engine
def report_ranking(
    engine: Engine,
    period: Period,
    scheme: Annotated[
        Path | None, typer.Option(metavar="FILE", help="A ranking scheme (YAML); see README.")
    ] = None,
    unit: Annotated[
        str | None, typer.Option(help="Rank the units one level below this one.")
    ] = None,
    fmt: Format = None,
    out: Out = None,
    json: JsonOption = False,
) -> None:
    """Rank the units into tiers from the period's frozen snapshot alone: what changed
    after it does not move a past period's ranking.

    Example: rectiflow report ranking --period 2026-Q1 --format xlsx --out 排名.xlsx
    """
    from rectiflow.engine.ranking import parse_scheme

    chosen = parse_scheme(read_text(scheme, "scheme"), str(scheme)) if scheme else None
    _emit("ranking", engine.ranking(period, scheme=chosen, unit=unit), fmt, out, json)


@report_app.command("lights")
@with_engine
def report_lights(
    engine: Engine,
    first: Annotated[str, typer.Option("--from", metavar="MONTH", help="e.g. 2026-01")],
    last: Annotated[str, typer.Option("--to", metavar="MONTH", help="e.g. 2026-06")],
    unit: Unit = None,
    fmt: Format = None,
    out: Out = None,
    json: JsonOption = False,
) -> None:
    """Each case's light at each month's end, and each unit's red, yellow and green, read
    from the monthly snapshots; a month without one is shown as missing.

    Example: rectiflow report lights --from 2026-01 --to 2026-06 --unit HLJ
    """
    _emit("lights", engine.light_history(first, last, unit=unit), fmt, out, json)


def _emit(kind: str, data: dict[str, Any], fmt: str | None, out: Path | None, json: bool) -> None:
    if json:
        print_json(data)
        return
    from rectiflow.formats.bulletin import write_report

    if fmt is None:
        fmt = out.suffix.lstrip(".") if out is not None and out.suffix else "md"
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: use md, xlsx or docx")
    if fmt != "md" and out is None:
        raise UsageError(f"--format {fmt} writes a file: give --out FILE")
    text = write_report(kind, data, fmt, out)  # type: ignore[arg-type]
    if out is None:
        print(text, end="")
    else:
        print(f"wrote {out}")


def _snapshot_json(info: Any, engine: Engine) -> dict[str, Any]:
    return {
        "period": info.period, "kind": info.kind, "as_of": stamp(info.as_of, engine),
        "taken_at": stamp(info.taken_at, engine), "taken_by": info.taken_by,
    }  # fmt: skip
