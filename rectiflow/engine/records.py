"""What the engine hands the store to write: a new case's row, its measures, a case placed
by a ledger import, the columns a change may set, and the external key's unique form.

``types.py`` has the records the store gives back (``Case``, ``Measure``, ...); these are
their counterparts on the way in. Apart from ``storage.py`` so that the ``Store`` protocol
there is the contract alone; it re-exports the ones its methods take.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, TypedDict

from rectiflow.engine.types import Escalation, HistoryEntry

__all__ = ["CaseChange", "ImportedCase", "NewCase", "NewMeasure", "ref_key"]


@dataclasses.dataclass(frozen=True, slots=True)
class NewCase:
    """The row of a case being opened: every column but the ones the store fills in (the
    id, the unit's path, and the head of the history chain, from the first entry)."""

    workflow: str
    workflow_version: int
    unit: str
    title: str
    severity: str
    state: str
    created_at: dt.datetime
    stage_entered_at: dt.datetime
    description: str | None = None
    category: str | None = None
    source: str | None = None
    version: int = 1
    due_at: dt.datetime | None = None
    due_provisional: bool = False
    due: dt.datetime | None = None
    visit: int = 1
    next_level: int = 0
    next_escalation_at: dt.datetime | None = None
    paused_at: dt.datetime | None = None
    pause_credit: int = 0
    ref: str | None = None
    target: str | None = None
    responsible: str | None = None
    long_term: bool = False
    co_units: tuple[str, ...] = ()  # not a column: rows of their own

    def columns(self) -> dict[str, Any]:
        """The values by column name (``co_units`` are rows of their own)."""
        return {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "co_units"
        }


def ref_key(source: str | None, ref: str | None) -> str | None:
    """The unique form of a case's external key (source, ref); None without a ref."""
    return None if ref is None else f"{source or ''}\x1f{ref}"


@dataclasses.dataclass(frozen=True, slots=True)
class NewMeasure:
    text: str
    owner: str
    done_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ImportedCase:
    """A case placed straight in its state by a ledger import, with its id reserved: the
    row, the one history entry (``import``, the chain's head), co-units, measures, and the
    ladder levels it had already reached (recorded as backfilled, nobody notified)."""

    id: int
    case: NewCase
    entry: HistoryEntry
    measures: tuple[NewMeasure, ...] = ()
    backfilled: tuple[Escalation, ...] = ()


class CaseChange(TypedDict, total=False):
    """The columns a change to a held case may set; the ones left out keep their value.
    The store itself bumps ``version`` and, with a history entry, moves the chain's head."""

    state: str
    stage_entered_at: dt.datetime
    due_at: dt.datetime | None
    due_provisional: bool
    visit: int
    next_level: int
    next_escalation_at: dt.datetime | None
    paused_at: dt.datetime | None
    pause_credit: int
    # the fields a correction (``edit``) may change
    title: str
    description: str | None
    category: str | None
    source: str | None
    severity: str
    unit: str
    due: dt.datetime | None
    ref: str | None
    target: str | None
    responsible: str | None
    long_term: bool
    # the loop after the lifecycle
    supervising_unit: str | None
    relapses: int
    lookback_due_at: dt.datetime | None
    lookback_result: str | None
    lookback_at: dt.datetime | None
    lookback_actor: str | None
    exempted_at: dt.datetime | None
    exempt_until: dt.datetime | None
    exempt_reason: str | None
