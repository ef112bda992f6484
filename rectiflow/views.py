"""Cases as JSON-ready data: the shape the CLI prints with ``--json``.

Times are ISO-8601 in the engine's local time zone, with their offset.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from rectiflow.engine.types import (
    Case,
    Escalation,
    Extension,
    HistoryEntry,
    Light,
    Measure,
    Note,
)


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
    extensions: Sequence[Extension] = (),
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
        "supervising_unit": case.supervised_by,
        "relapses": case.relapses,
        "lookback": _lookback(case, engine),
        "exemption": _exemption(case, engine),
        "extensions": [
            {
                "requested_at": _local_iso(x.requested_at, engine),
                "requested_by": x.requested_by,
                "until": _local_iso(x.until, engine),
                "reason": x.reason,
                "status": x.status,
                "decided_by": x.decided_by,
                "decided_at": _local_iso(x.decided_at, engine),
                "comment": x.comment,
            }
            for x in extensions
        ],
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
                "raised_to": e.raised_to,
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


def _lookback(case: Case, engine: Reader) -> dict[str, Any] | None:
    """The look-back of the latest closing (None: none was scheduled)."""
    if case.lookback_due_at is None:
        return None
    return {
        "due": _local_iso(case.lookback_due_at, engine),
        "result": case.lookback_result,
        "at": _local_iso(case.lookback_at, engine),
        "actor": case.lookback_actor,
    }


def _exemption(case: Case, engine: Reader) -> dict[str, Any] | None:
    if case.exempt_until is None:
        return None
    return {
        "reason": case.exempt_reason,
        "since": _local_iso(case.exempted_at, engine),
        "until": _local_iso(case.exempt_until, engine),
    }
