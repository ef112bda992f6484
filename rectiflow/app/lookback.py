"""The Engine's look-back concern (回头看): after a case closes, the office goes back to see
whether the problem came back, and records what it found."""

from __future__ import annotations

import datetime as dt

from loguru import logger

from rectiflow.app.cases import Cases
from rectiflow.engine import history
from rectiflow.engine import text as limits
from rectiflow.engine.errors import TransitionRejected, ValidationError
from rectiflow.engine.permissions import authorize
from rectiflow.engine.types import Case

LOOKBACK_RESULTS = ("held", "relapsed")


class Lookback(Cases):
    """Record a look-back's finding; a relapse sends the case back into the lifecycle."""

    def record_lookback(
        self, case_id: int, actor: str, result: str, *, comment: str | None = None,
        now: dt.datetime | None = None,
    ) -> Case:  # fmt: skip
        """Record the look-back of the case's latest closing: ``held`` (the problem stayed
        solved) or ``relapsed`` (it came back: a comment says how, and the workflow's relapse
        transition fires in the same transaction, a new visit with a fresh deadline).
        It may be recorded before it is due; once per closing."""
        now = self._now(now)
        if result not in LOOKBACK_RESULTS:
            raise ValidationError(f"unknown result {result!r} (use {', '.join(LOOKBACK_RESULTS)})")
        comment = limits.check("comment", comment.strip() if comment and comment.strip() else None)
        with self.store.case_tx(case_id) as tx:
            case = tx.case
            spec = self.workflow(case.workflow, case.workflow_version)
            look = spec.lookback
            who = tx.actor(actor)
            if look is None:
                raise TransitionRejected(
                    case_id, "lookback", case.state,
                    f"workflow {spec.name}@{spec.version} has no look-back",
                )  # fmt: skip
            authorize(
                who, actor, spec.permissions["lookback"], case.unit_path,
                f"record the look-back of case {case_id}",
            )  # fmt: skip
            if case.state != look.state or case.lookback_due_at is None:
                raise TransitionRejected(
                    case_id, "lookback", case.state, f"a look-back follows {look.state}"
                )
            if case.lookback_result is not None:
                raise TransitionRejected(
                    case_id, "lookback", case.state,
                    f"this closing's look-back was recorded already ({case.lookback_result})",
                )  # fmt: skip
            if result == "held":
                data = {"result": result, "due": history.value(case.lookback_due_at)}
                entry = self._entry(tx, "lookback", actor, now, comment, data=data)
                updated = tx.update({
                    "lookback_result": result, "lookback_at": now, "lookback_actor": actor,
                    "next_escalation_at": None,
                }, entry)  # fmt: skip
            else:
                if comment is None:
                    raise TransitionRejected(
                        case_id, "lookback", case.state, "a relapse needs a comment: what came back"
                    )
                updated = self._transition(spec, tx, look.relapse, who, actor, comment, now)
        logger.bind(case_id=case_id, action="lookback").info(
            "case {case_id}: look-back {result} by {actor}",
            case_id=case_id, result=result, actor=actor,
        )  # fmt: skip
        if result == "relapsed":
            for hook in self._hooks:
                hook(updated, look.relapse, case.state)
        return updated
