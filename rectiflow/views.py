"""Cases as JSON-ready data: the shape the CLI prints with ``--json``.

Times are ISO-8601 in the engine's local time zone, with their offset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rectiflow.engine.types import Case, Escalation, HistoryEntry, Measure, Note

if TYPE_CHECKING:
    from rectiflow.app import Engine


def stamp(at: dt.datetime | None, engine: Engine) -> str | None:
    return None if at is None else at.astimezone(engine.tz).isoformat()


def case_dict(
    case: Case,
    engine: Engine,
    *,
    now: dt.datetime,
    measures: Sequence[Measure],
    history: Sequence[HistoryEntry] | None = None,
    escalations: Sequence[Escalation] = (),
    notes: Sequence[Note] = (),
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
        "state": case.state,
        "version": case.version,
        "created_at": stamp(case.created_at, engine),
        "stage_entered_at": stamp(case.stage_entered_at, engine),
        "due_at": stamp(case.due_at, engine),
        "due_provisional": case.due_provisional,
        "due": stamp(case.due, engine),
        "paused": case.paused_at is not None,
        "light": light.value if light else None,
        "measures": [
            {
                "id": m.id,
                "text": m.text,
                "owner": m.owner,
                "due": stamp(m.due, engine),
                "done": m.done,
                "done_at": stamp(m.done_at, engine),
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
                "due_at": stamp(e.due_at, engine),
                "at": stamp(e.fired_at, engine),
            }
            for e in escalations
        ],
        "notes": [{"actor": n.actor, "at": stamp(n.at, engine), "text": n.text} for n in notes],
    }
    if history is not None:
        data["history"] = [
            {
                "seq": h.seq,
                "trigger": h.trigger,
                "source": h.source,
                "dest": h.dest,
                "actor": h.actor,
                "at": stamp(h.at, engine),
                "comment": h.comment,
            }
            for h in history
        ]
    return data
