"""The errors rectiflow raises: one root, each carrying the data a caller needs.

The CLI maps each class to an exit code (``exit_code``); the message is one line that
says what was refused and why.
"""

from __future__ import annotations


class RectiflowError(Exception):
    """Something rectiflow refused or could not do."""

    exit_code = 1

    def __init__(self, message: str | None = None, **data: object) -> None:
        self.data = data
        super().__init__(message or (self.__doc__ or type(self).__name__).strip())


class UsageError(RectiflowError):
    """Bad arguments."""

    exit_code = 2


class ValidationError(RectiflowError):
    """Bad input: a workflow definition, a calendar file, a value out of range.

    ``where`` names the file and line when the input came from a file.
    """

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, key: str | None = None) -> None:
        self.where = where
        self.key = key
        super().__init__(f"{where}: {message}" if where else message, where=where, key=key)


class NotFound(RectiflowError):
    """No such case, unit, actor, workflow or measure."""

    exit_code = 3

    def __init__(self, kind: str, ident: object) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"no {kind} {ident!s}", kind=kind, ident=ident)


class TransitionRejected(RectiflowError):
    """The trigger cannot fire: not valid from this state, a guard failed, data is missing."""

    exit_code = 4

    def __init__(self, case_id: int | None, trigger: str, state: str | None, reason: str) -> None:
        self.case_id = case_id
        self.trigger = trigger
        self.state = state
        self.reason = reason
        what = f"cannot {trigger} case {case_id}" if case_id is not None else f"cannot {trigger}"
        if state is not None:
            what += f" in state {state}"
        super().__init__(f"{what}: {reason}", case_id=case_id, trigger=trigger, state=state)


class ConflictError(RectiflowError):
    """The case changed since it was read (stale expect_version or a concurrent change)."""

    exit_code = 5

    def __init__(self, case_id: int, expected: int | None, actual: int | None) -> None:
        self.case_id = case_id
        self.expected = expected
        self.actual = actual
        if actual is None:
            detail = "it was changed concurrently"
        else:
            detail = f"expected version {expected}, it is at version {actual}"
        super().__init__(f"case {case_id} changed: {detail}", case_id=case_id)


class AlreadyTaken(ConflictError):
    """A period's snapshot exists: it is frozen, and taking it again changes nothing."""

    def __init__(self, period: str) -> None:
        self.period = period
        RectiflowError.__init__(self, f"the snapshot of {period} was taken already: it is frozen")


class PermissionDenied(RectiflowError):
    """The actor is unknown, lacks the role, or the case is outside the actor's units."""

    exit_code = 6

    def __init__(self, actor: str, reason: str) -> None:
        self.actor = actor
        self.reason = reason
        super().__init__(f"{actor} may not {reason}", actor=actor)


class IntegrityError(RectiflowError):
    """A history chain does not verify."""

    exit_code = 7

    def __init__(self, case_id: int, seq: int, reason: str) -> None:
        self.case_id = case_id
        self.seq = seq
        super().__init__(
            f"history of case {case_id} is broken at seq {seq}: {reason}", case_id=case_id, seq=seq
        )


class EvidenceChanged(IntegrityError):
    """A measure's evidence file no longer has the sha256 stored when it was completed."""

    def __init__(self, measure: object, actual: str) -> None:
        self.measure_id = getattr(measure, "id", None)
        self.case_id = getattr(measure, "case_id", 0)
        self.seq = 0
        RectiflowError.__init__(
            self,
            f"evidence of measure {self.measure_id} (case {self.case_id}) changed: "
            f"{getattr(measure, 'evidence_path', '?')} has sha256 {actual}, "
            f"{getattr(measure, 'evidence_sha256', '?')} was stored",
            case_id=self.case_id,
        )


class Unhealthy(RectiflowError):
    """``health`` found the sweep behind or no daemon sweeping."""

    exit_code = 8


class StoreUnavailable(RectiflowError):
    """The database cannot be opened or used: unreachable, refused, not a database, not a
    rectiflow ledger, read-only. Raised by the store in place of the driver's errors, so that
    callers need not know SQLAlchemy's exceptions."""

    exit_code = 9


class StoreBusy(StoreUnavailable):
    """The database stayed locked by another process longer than the busy timeout."""

    exit_code = 5

    def __init__(self, message: str = "database is busy, try again") -> None:
        super().__init__(message)
