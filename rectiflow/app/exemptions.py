"""The Engine's exemptions concern (容错免责): a supervisor excuses a case's delay for a
while, with a reason and an end date. While exempted no ladder level fires, the case has
no light and reports count it apart; at the end its deadline moves later by the exempted
time, as after a pause. The sweep ends an exemption at its ``until`` by itself."""

from __future__ import annotations

import datetime as dt

from loguru import logger

from rectiflow.app.cases import Cases
from rectiflow.engine import escalation, history
from rectiflow.engine import text as limits
from rectiflow.engine.errors import TransitionRejected
from rectiflow.engine.permissions import authorize
from rectiflow.engine.types import Case


class Exemptions(Cases):
    """Start an exemption and end it by hand (the sweep ends it at its date)."""

    def exempt(
        self, case_id: int, actor: str, *, reason: str, until: dt.date | dt.datetime,
        now: dt.datetime | None = None,
    ) -> Case:  # fmt: skip
        """Exempt the case until ``until`` (a date: the end of that day). Refused for a
        case that is paused (a pause and an exemption are not merged), already exempted, or
        in a final state."""
        now = self._now(now)
        reason = limits.required("reason", reason, "an exemption needs a reason")
        until_at = self._end_of(until)
        with self.store.case_tx(case_id) as tx:
            case, spec = self._unfinished(tx, None, "exempt")
            authorize(
                tx.actor(actor), actor, spec.permissions["exempt"], case.unit_path,
                f"exempt case {case_id}",
            )  # fmt: skip

            def refuse(why: str) -> TransitionRejected:
                return TransitionRejected(case_id, "exempt", case.state, why)

            if case.paused_at is not None:
                raise refuse("the case is paused: resume it first")
            if case.exempt_until is not None:
                until_now = self._local(case.exempt_until)
                raise refuse(f"the case is exempted already (until {until_now})")
            if until_at <= now:
                raise refuse(f"{self._local(until_at)} is not in the future")
            data = {"until": history.value(until_at)}
            entry = self._entry(tx, "exempt", actor, now, reason, data=data)
            updated = tx.update({
                "exempted_at": now, "exempt_until": until_at, "exempt_reason": reason,
                "next_escalation_at": until_at,
            }, entry)  # fmt: skip
        logger.bind(case_id=case_id, action="exempt").info(
            "case {case_id} exempted until {until}", case_id=case_id, until=self._local(until_at)
        )
        return updated

    def unexempt(self, case_id: int, actor: str, *, now: dt.datetime | None = None) -> Case:
        """End the case's exemption now; its deadline moves later by the exempted time."""
        now = self._now(now)
        with self.store.case_tx(case_id) as tx:
            case, spec = self._unfinished(tx, None, "unexempt")
            authorize(
                tx.actor(actor), actor, spec.permissions["exempt"], case.unit_path,
                f"end the exemption of case {case_id}",
            )  # fmt: skip
            if case.exempt_until is None:
                raise TransitionRejected(
                    case_id, "unexempt", case.state, "the case is not exempted"
                )
            change, data = escalation.end_exemption(
                self.rules, spec, case, min(now, case.exempt_until)
            )
            entry = self._entry(tx, "unexempt", actor, now, None, data=data)
            updated = tx.update(change, entry)  # type: ignore[arg-type]
        logger.bind(case_id=case_id, action="exempt").info(
            "case {case_id}: exemption ended by {actor}", case_id=case_id, actor=actor
        )
        return updated
