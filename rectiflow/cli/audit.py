"""``audit verify`` and ``audit checkpoint``: the tamper-evident history checked, and the
heads of its chains written out to keep outside the database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rectiflow.cli.common import MAX_ID, JsonOption, print_json, read_text, say, with_engine
from rectiflow.engine.errors import UsageError

if TYPE_CHECKING:
    from rectiflow.app import Engine

audit_app = typer.Typer(help="Check the tamper-evident history.", rich_markup_mode=None)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit", rich_help_panel="Run and check")


@audit_app.command("verify")
@with_engine
def audit_verify(
    engine: Engine,
    case: Annotated[
        int | None, typer.Option(metavar="ID", help="Only this case.", min=0, max=MAX_ID)
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="A checkpoint: prove nothing up to it changed."),
    ] = None,
    require_key: Annotated[
        bool,
        typer.Option(
            "--require-key",
            help="Every entry must carry the audit key (a ledger keyed from its start).",
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Check every case against its history; exit 7 naming the first difference.

    The hash chains (HMAC with RECTIFLOW_AUDIT_KEY), each case row against its history
    (state, version, the editable fields), its measures (evidence hashes) and notes, and
    with --against the heads of a checkpoint. With --json, a difference still exits 7 with
    the error on stderr, and prints nothing.

    Example: rectiflow audit verify --against checkpoint-2026-03.json
    """
    import json as json_module

    from rectiflow.engine.audit import read_checkpoint

    heads = None
    if against is not None:
        try:
            heads = read_checkpoint(json_module.loads(read_text(against, "checkpoint file")))
        except ValueError:  # not JSON
            raise UsageError(f"{against}: not a checkpoint file (JSON)") from None
    report = engine.audit(case, against=heads, require_key=require_key)
    if json:
        print_json({
            "intact": True, "case": case, "cases": report.cases, "entries": report.entries,
            "not_checked": report.unchecked, "without_key": report.unkeyed,
            "partly_verified": list(report.partial), "against": str(against) if against else None,
        })  # fmt: skip
        return
    print(f"history intact: {report.entries} entries of {report.cases} cases verified")
    if against is not None:
        print(f"nothing changed up to the checkpoint {against}")
    if report.unchecked:
        say(f"warning: {report.unchecked} keyed entries not checked: key not given "
            "(set RECTIFLOW_AUDIT_KEY)")  # fmt: skip
    if report.unkeyed and engine.audit_key is not None:
        say(f"note: {report.unkeyed} entries carry no audit key (written before the key was "
            "set, or rewritten without it: compare with a checkpoint)")  # fmt: skip
    if report.partial:
        shown = ", ".join(str(c) for c in report.partial[:10])
        say(f"note: {len(report.partial)} cases partly verified (history from before schema "
            f"0007 has no data to replay): {shown}")  # fmt: skip


@audit_app.command("checkpoint")
@with_engine
def audit_checkpoint(
    engine: Engine,
    out: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write it here (default: stdout).")
    ] = None,
) -> None:
    """Verify the ledger, then write the head of every case's chain with a time and a digest
    (JSON), to keep outside the database; `audit verify --against FILE` checks it.

    Example: rectiflow audit checkpoint --out checkpoint-2026-03.json
    """
    import json as json_module

    kept = engine.checkpoint()
    text = json_module.dumps(kept, ensure_ascii=False, indent=1) + "\n"
    if out is None:
        print(text, end="")
        return
    try:
        out.write_text(text, "utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    print(f"checkpoint of {len(kept['cases'])} cases written to {out} (digest {kept['digest']})")
