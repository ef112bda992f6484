"""The Engine's extensions concern (申请延期): an owner asks for more time, a supervisor
approves or rejects; an approval moves the case's due date, and in the due state its
deadline and the rest of its ladder."""

from __future__ import annotations

import datetime as dt

from loguru import logger

from rectiflow.app.cases import Cases
from rectiflow.engine import escalation, history
from rectiflow.engine import text as limits
from rectiflow.engine.errors import TransitionRejected
from rectiflow.engine.permissions import authorize
from rectiflow.engine.records import CaseChange
from rectiflow.engine.types import Extension


class Extensions(Cases):
    """Extension requests: one pending at a time per case, each step a history entry."""

    def extensions(self, case_id: int) -> list[Extension]:
        """The case's extension requests, oldest first."""
        self.get_case(case_id)
        return self.store.list_extensions(case_id)

    def request_extension(
        self, case_id: int, actor: str, *, until: dt.date | dt.datetime, reason: str,
        now: dt.datetime | None = None,
    ) -> Extension:  # fmt: skip
        """Ask for the case's deadline to move to ``until`` (a date: the end of that day).
        Refused while another request is pending, outside the states before and at the
        due state (identify, plan, rectify), or when ``until`` is not later than the
        current deadline."""
        now = self._now(now)
        reason = limits.required("reason", reason, "an extension request needs a reason")
        until_at = self._end_of(until)
        with self.store.case_tx(case_id) as tx:
            case = tx.case
            spec = self.workflow(case.workflow, case.workflow_version)
            authorize(
                tx.actor(actor), actor, spec.permissions["extend"], case.unit_path,
                f"ask for more time on case {case_id}",
            )  # fmt: skip

            def refuse(why: str) -> TransitionRejected:
                return TransitionRejected(case_id, "extend", case.state, why)

            if case.state not in spec.extendable_states:
                states = ", ".join(s for s in spec.states if s in spec.extendable_states)
                raise refuse(f"more time can be asked for in {states} only")
            if case.due_at is None:
                raise refuse("the case has no deadline to extend")
            if until_at <= case.due_at:
                raise refuse(
                    f"{self._local(until_at)} is not later than the current deadline "
                    f"{self._local(case.due_at)}"
                )
            if any(e.status == "pending" for e in tx.extensions()):
                raise refuse("a request is pending already: it is decided first")
            extension = tx.add_extension(now, actor, until_at, reason)
            data = {"extension": extension.id, "until": history.value(until_at)}
            entry = self._entry(tx, "extension_requested", actor, now, reason, data=data)
            tx.update({}, entry)
        logger.bind(case_id=case_id, action="extend").info(
            "case {case_id}: {actor} asks for time until {until}",
            case_id=case_id, actor=actor, until=self._local(until_at),
        )  # fmt: skip
        return extension

    def decide_extension(
        self, case_id: int, actor: str, *, approve: bool, comment: str | None = None,
        now: dt.datetime | None = None,
    ) -> Extension:  # fmt: skip
        """Approve or reject the case's pending request (a rejection says why). Approval
        sets the case's own due date to the requested one; in the due state the deadline
        moves there and the ladder's next level is counted from it (levels recorded before
        stay recorded)."""
        now = self._now(now)
        comment = limits.check("comment", comment.strip() if comment and comment.strip() else None)
        action = "approve" if approve else "reject"
        with self.store.case_tx(case_id) as tx:
            case = tx.case
            spec = self.workflow(case.workflow, case.workflow_version)
            authorize(
                tx.actor(actor), actor, spec.permissions["decide_extension"], case.unit_path,
                f"decide on an extension of case {case_id}",
            )  # fmt: skip
            pending = next((e for e in tx.extensions() if e.status == "pending"), None)
            if pending is None:
                raise TransitionRejected(case_id, action, case.state, "no request is pending")
            if not approve and comment is None:
                raise TransitionRejected(case_id, action, case.state, "a rejection needs a comment")
            status = "approved" if approve else "rejected"
            decided = tx.decide_extension(pending.id, status, actor, now, comment)
            data: dict[str, object] = {"extension": pending.id}
            change = CaseChange()
            if approve:
                # The entry carries the change of `due` as an edit does: an audit replays it.
                data["changes"] = {"due": [history.value(case.due), history.value(pending.until)]}
                change["due"] = pending.until
                if case.state == spec.due_state:
                    change.update(CaseChange(
                        due_at=pending.until, due_provisional=False, pause_credit=0,
                        next_escalation_at=escalation.next_wake(
                            self.rules, spec, case, pending.until, case.next_level
                        ),
                    ))  # fmt: skip
            entry = self._entry(tx, f"extension_{status}", actor, now, comment, data=data)
            tx.update(change, entry)
        logger.bind(case_id=case_id, action="extend").info(
            "case {case_id}: extension {status} by {actor}",
            case_id=case_id, status=status, actor=actor,
        )  # fmt: skip
        return decided
