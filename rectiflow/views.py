"""Cases as JSON-ready data: the shape the CLI prints with ``--json``.

Times are ISO-8601 in the engine's local time zone, with their offset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
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


class _LocalIso(dict[dt.datetime | None, str | None]):
    """Times as ISO-8601 text in ``tz`` (None stays None), each distinct time converted
    once: a list repeats its times (the end of a deadline's day, the moment a batch was
    opened). Equal times (the same instant) read the same in ``tz``, whatever zone they
    came in. One per call or list, so that nothing grows for the life of a process."""

    def __init__(self, tz: dt.tzinfo) -> None:
        super().__init__({None: None})
        self.tz = tz

    def __missing__(self, at: dt.datetime) -> str:
        text = self[at] = at.astimezone(self.tz).isoformat()
        return text


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
    iso = _LocalIso(engine.tz)
    light = engine.light(case, now)
    data = _case_dict(case, light, iso, measures, escalations, notes, co_units)
    data["extensions"] = [
        {
            "requested_at": iso[x.requested_at],
            "requested_by": x.requested_by,
            "until": iso[x.until],
            "reason": x.reason,
            "status": x.status,
            "decided_by": x.decided_by,
            "decided_at": iso[x.decided_at],
            "comment": x.comment,
        }
        for x in extensions
    ]
    if history is not None:
        data["history"] = [
            {
                "seq": h.seq,
                "trigger": h.trigger,
                "source": h.source,
                "dest": h.dest,
                "actor": h.actor,
                "at": iso[h.at],
                "comment": h.comment,
            }
            for h in history
        ]
    return data


def case_dicts(
    cases: Sequence[Case],
    engine: Reader,
    *,
    now: dt.datetime,
    measures: Mapping[int, Sequence[Measure]],
    escalations: Mapping[int, Sequence[Escalation]],
    notes: Mapping[int, Sequence[Note]],
    co_units: Mapping[int, Sequence[str]],
) -> list[dict[str, Any]]:
    """``case_dict`` of each case (without history and extension requests), its records
    looked up by case id: the cases share one conversion of their times."""
    iso = _LocalIso(engine.tz)
    out = []
    for c in cases:
        light, key = engine.light(c, now), c.id
        out.append(_case_dict(
            c, light, iso, measures.get(key, ()), escalations.get(key, ()),
            notes.get(key, ()), co_units.get(key, ()),
        ))  # fmt: skip
    return out


def _case_dict(
    case: Case,
    light: Light | None,
    iso: _LocalIso,
    measures: Sequence[Measure],
    escalations: Sequence[Escalation],
    notes: Sequence[Note],
    co_units: Sequence[str],
) -> dict[str, Any]:
    return {
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
        "created_at": iso[case.created_at],
        "stage_entered_at": iso[case.stage_entered_at],
        "due_at": iso[case.due_at],
        "due_provisional": case.due_provisional,
        "due": iso[case.due],
        "paused": case.paused_at is not None,
        "light": light.value if light else None,
        "supervising_unit": case.supervised_by,
        "relapses": case.relapses,
        "lookback": None
        if case.lookback_due_at is None
        else {
            "due": iso[case.lookback_due_at],
            "result": case.lookback_result,
            "at": iso[case.lookback_at],
            "actor": case.lookback_actor,
        },
        "exemption": None
        if case.exempt_until is None
        else {
            "reason": case.exempt_reason,
            "since": iso[case.exempted_at],
            "until": iso[case.exempt_until],
        },
        "measures": [
            {
                "id": m.id,
                "text": m.text,
                "owner": m.owner,
                "due": iso[m.due],
                "done": m.done,
                "done_at": iso[m.done_at],
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
                "due_at": iso[e.due_at],
                "at": iso[e.fired_at],
                "backfilled": e.backfilled,
                "raised_to": e.raised_to,
            }
            for e in escalations
        ],
        "notes": [{"actor": n.actor, "at": iso[n.at], "text": n.text} for n in notes],
    }
