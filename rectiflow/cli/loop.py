"""``case lookback``, ``case extend``, ``case extension``, ``case exempt`` and ``case
unexempt``: the loop after the lifecycle (回头看, 申请延期, 容错免责)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from rectiflow.cli.cases import Actor, CaseId, case_app
from rectiflow.cli.common import parse_due, stamp, with_engine
from rectiflow.engine.errors import UsageError

if TYPE_CHECKING:
    import datetime as dt

    from rectiflow.app import Engine

Comment = Annotated[str | None, typer.Option(help="What was found, or why.")]
Until = Annotated[
    str, typer.Option(metavar="DATE", help="YYYY-MM-DD (the end of that day) or an ISO time.")
]
Reason = Annotated[str, typer.Option(help="Why (kept in the history).")]


def register(app: typer.Typer) -> None:
    """Nothing to add to the root: the commands join ``case`` as this module is imported
    (as ``case edit`` does from cli/ledger.py), once per process."""


def _until(value: str, engine: Engine) -> dt.date | dt.datetime:
    parsed = parse_due(value, engine, "--until")
    assert parsed is not None
    return parsed


@case_app.command("lookback")
@with_engine
def case_lookback(
    engine: Engine,
    case_id: CaseId,
    actor: Actor,
    result: Annotated[str, typer.Option(metavar="held|relapsed", help="What the look-back found.")],
    comment: Comment = None,
) -> None:
    """Record the look-back (回头看) of a closed case: held, or relapsed (a comment says
    what came back; the case goes back to rectify with a fresh deadline).

    Example: rectiflow case lookback 12 --result relapsed --actor 王芳 --comment "问题反弹"
    """
    if result not in ("held", "relapsed"):
        raise UsageError(f"--result {result}: use held or relapsed")
    case = engine.record_lookback(case_id, actor, result, comment=comment)
    if result == "held":
        print(f"case {case_id}: look-back recorded, the problem held")
    else:
        print(
            f"case {case_id}: relapsed ({case.relapses} so far), back in {case.state}, "
            f"due {stamp(case.due_at, engine)}"
        )


@case_app.command("extend")
@with_engine
def case_extend(
    engine: Engine, case_id: CaseId, actor: Actor, until: Until, reason: Reason
) -> None:
    """Ask for more time (申请延期, owner): one pending request at a time, to a date later
    than the current deadline.

    Example: rectiflow case extend 12 --until 2026-06-30 --reason "需上级审批" --actor 李强
    """
    extension = engine.request_extension(case_id, actor, until=_until(until, engine), reason=reason)
    print(f"case {case_id}: extension to {stamp(extension.until, engine)} requested")


@case_app.command("extension")
@with_engine
def case_extension(
    engine: Engine,
    case_id: CaseId,
    decision: Annotated[str, typer.Argument(metavar="approve|reject")],
    actor: Actor,
    comment: Comment = None,
) -> None:
    """Approve or reject the pending extension request (supervisor; a rejection says why).

    Example: rectiflow case extension 12 approve --actor 赵敏
    """
    if decision not in ("approve", "reject"):
        raise UsageError(f"{decision!r}: use approve or reject")
    extension = engine.decide_extension(
        case_id, actor, approve=decision == "approve", comment=comment
    )
    print(f"case {case_id}: extension to {stamp(extension.until, engine)} {extension.status}")


@case_app.command("exempt")
@with_engine
def case_exempt(
    engine: Engine, case_id: CaseId, actor: Actor, until: Until, reason: Reason
) -> None:
    """Exempt a case (容错免责, supervisor): no escalation, no light, no ranking penalty
    until the date; then its deadline moves later by the exempted time.

    Example: rectiflow case exempt 12 --until 2026-05-31 --reason "汛期停工" --actor 赵敏
    """
    case = engine.exempt(case_id, actor, reason=reason, until=_until(until, engine))
    print(f"case {case_id} exempted until {stamp(case.exempt_until, engine)}")


@case_app.command("unexempt")
@with_engine
def case_unexempt(engine: Engine, case_id: CaseId, actor: Actor) -> None:
    """End a case's exemption now; its deadline moves later by the exempted time.

    Example: rectiflow case unexempt 12 --actor 赵敏
    """
    case = engine.unexempt(case_id, actor)
    print(f"case {case_id}: exemption ended, due {stamp(case.due_at, engine)}")
