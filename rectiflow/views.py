"""Cases as JSON-ready data: the shape the CLI prints with ``--json``.

Times are ISO-8601 in the engine's local time zone, with their offset.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from rectiflow.engine.types import Case, Escalation, HistoryEntry, Light, Measure, Note


class Reader(Protocol):
    """What a view needs of the Engine: its time zone and the light of a case."""

    tz: ZoneInfo

    def light(self, case: Case, now: dt.datetime | None = None) -> Light | None: ...


@functools.lru_cache(maxsize=8192)
def _iso_in(at: dt.datetime, tz: dt.tzinfo) -> str:
    # A list repeats its times (the end of a deadline's day, the moment a batch was
    # opened): each distinct one is converted once. Equal times (the same instant)
    # read the same in ``tz``, whatever zone they came in.
    return at.astimezone(tz).isoformat()


def _local_iso(at: dt.datetime | None, engine: Reader) -> str | None:
    return None if at is None else _iso_in(at, engine.tz)


def case_dict(
    case: Case,
    engine: Reader,
    *,
    now: dt.datetime,
    measures: Sequence[Measure],
    history: Sequence[HistoryEntry] | None = None,
    escalations: Sequence[Escalation] = (),
    notes: Sequence[Note] = (),
    co_units: Sequence[str] = (),
) -> dict[str, Any]:
    light = engine.light(case, now)
    data: dict[str, Any] = {
        "id": case.id,
        "workflow": case.workflow,
        "workflow_version": case.workflow_version,
        "unit": case.unit,
        "title": case.title,
        "description": case.description,
        "category": case.category,
        "source": case.source,
        "severity": case.severity,
        "ref": case.ref,
        "target": case.target,
        "responsible": case.responsible,
        "co_units": list(co_units),
        "long_term": case.long_term,
        "state": case.state,
        "version": case.version,
        "created_at": _local_iso(case.created_at, engine),
        "stage_entered_at": _local_iso(case.stage_entered_at, engine),
        "due_at": _local_iso(case.due_at, engine),
        "due_provisional": case.due_provisional,
        "due": _local_iso(case.due, engine),
        "paused": case.paused_at is not None,
        "light": light.value if light else None,
        "measures": [
            {
                "id": m.id,
                "text": m.text,
                "owner": m.owner,
                "due": _local_iso(m.due, engine),
                "done": m.done,
                "done_at": _local_iso(m.done_at, engine),
                "evidence_path": m.evidence_path,
                "evidence_sha256": m.evidence_sha256,
            }
            for m in measures
        ],
        "escalations": [
            {
                "level": e.level,
                "state": e.state,
                "visit": e.visit,
                "due_at": _local_iso(e.due_at, engine),
                "at": _local_iso(e.fired_at, engine),
                "backfilled": e.backfilled,
            }
            for e in escalations
        ],
        "notes": [
            {"actor": n.actor, "at": _local_iso(n.at, engine), "text": n.text} for n in notes
        ],
    }
    if history is not None:
        data["history"] = [
            {
                "seq": h.seq,
                "trigger": h.trigger,
                "source": h.source,
                "dest": h.dest,
                "actor": h.actor,
                "at": _local_iso(h.at, engine),
                "comment": h.comment,
            }
            for h in history
        ]
    return data
