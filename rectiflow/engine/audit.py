"""What ``audit verify`` checks beyond the chain's links: that the case row is the one its
history describes, that its measures and notes are the ones the history recorded, and that
nothing changed up to a checkpoint kept outside the database. Pure rules: no store.

The rules, per case:

- The chain verifies (``history.check_chain``), keyed entries with their key.
- ``state`` is the last entry's ``dest``; ``history_seq``/``last_hash`` point at the last
  entry.
- ``version``: every change of a case row is one history entry (fire, pause, resume, edit,
  measure added or done, note, a deadline recomputed by a calendar load), so a case whose
  entries all carry data has ``version`` = its number of entries. Before schema 0007,
  measures moved the version outside the chain: for such a case ``version`` >= entries.
- The editable fields (``EDITABLE``) are the ``open``/``import`` entry's ``fields`` with
  every ``edit`` entry's ``changes`` applied, in order (an ``extension_approved`` entry
  carries its change of ``due`` the same way).
- Each measure and note is the one its ``measure_added``/``measure_done``/``note`` entry
  (or the ``import`` entry's ``measures``) recorded: text, done time, evidence path and
  SHA-256.

A case whose history began before data existed (schema 0007) is verified as far as the data
goes; the report names it as partly verified.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from rectiflow.engine import history
from rectiflow.engine.errors import IntegrityError, RectiflowError
from rectiflow.engine.history import ChainCheck, ChainKey
from rectiflow.engine.types import Case, HistoryEntry, Measure, Note

#: The fields of a case that only ``open``/``import`` set and only ``edit`` changes.
EDITABLE = (
    "title", "description", "unit", "severity", "due", "category", "source", "ref", "target",
    "responsible", "long_term", "co_units",
)  # fmt: skip


class CheckpointMismatch(IntegrityError):
    """A checkpoint file that was altered, or a history that changed since a checkpoint."""

    def __init__(self, reason: str, case_id: int | None = None) -> None:
        self.case_id = case_id or 0
        self.seq = 0
        RectiflowError.__init__(self, f"checkpoint: {reason}", case_id=case_id)


@dataclasses.dataclass(frozen=True, slots=True)
class CaseAudit:
    chain: ChainCheck
    complete: bool  # False: entries before schema 0007 left part of the row unverified


@dataclasses.dataclass(frozen=True, slots=True)
class AuditReport:
    """The result of an audit that found nothing broken."""

    cases: int = 0
    entries: int = 0
    unchecked: int = 0  # keyed entries whose hashes were not checked: no key given
    unkeyed: int = 0  # entries written without an audit key
    partial: tuple[int, ...] = ()  # cases verified only as far as their data goes

    def add(self, case_id: int, audit: CaseAudit) -> AuditReport:
        return AuditReport(
            self.cases + 1, self.entries + audit.chain.entries,
            self.unchecked + audit.chain.unchecked, self.unkeyed + audit.chain.unkeyed,
            self.partial if audit.complete else (*self.partial, case_id),
        )  # fmt: skip


def check_case(
    case: Case, entries: Sequence[HistoryEntry], measures: Sequence[Measure],
    notes: Sequence[Note], co_units: Sequence[str], keys: Sequence[ChainKey] = (),
    *, require_key: bool = False,
) -> CaseAudit:  # fmt: skip
    """Raise IntegrityError (naming the case, the entry and the field) for the first
    difference between the case's row and its history; see the module's rules."""
    head = (case.history_seq, case.last_hash)
    chain = history.check_chain(case.id, entries, head, keys, require_key=require_key)
    if not entries:
        return CaseAudit(chain, False)
    last = entries[-1]

    def broken(seq: int, reason: str) -> IntegrityError:
        return IntegrityError(case.id, seq, reason)

    if case.state != last.dest:
        raise broken(last.seq, f"field state is {case.state!r} in the case row, "
                               f"{last.dest!r} in its history")  # fmt: skip
    complete = entries[0].data is not None  # opened or imported since schema 0007
    if complete and case.version != len(entries):
        raise broken(last.seq, f"field version is {case.version} in the case row, but the "
                               f"history has {len(entries)} entries")  # fmt: skip
    if case.version < len(entries):
        raise broken(last.seq, f"field version is {case.version} in the case row, below the "
                               f"{len(entries)} entries of its history")  # fmt: skip
    complete = _check_fields(case, entries, co_units) and complete
    complete = _check_measures(case, entries, measures) and complete
    complete = _check_notes(case, entries, notes) and complete
    return CaseAudit(chain, complete)


def _check_fields(case: Case, entries: Sequence[HistoryEntry], co_units: Sequence[str]) -> bool:
    first = entries[0]
    if first.data is None or "fields" not in first.data:
        return False  # opened before entries had data
    fields: dict[str, Any] = dict(first.data["fields"])
    seq = first.seq
    for entry in entries[1:]:
        # An edit changes fields; so does an approved extension (the due date), in the same
        # form ("changes": {field: [old, new]}).
        if entry.trigger != "edit" and not (entry.data and "changes" in entry.data):
            continue
        if entry.data is None or "changes" not in entry.data:
            return False  # an edit before entries had data: its values cannot be replayed
        for name, (_old, new) in entry.data["changes"].items():
            fields[name] = new
        seq = entry.seq
    row = {name: history.value(getattr(case, name)) for name in EDITABLE if name != "co_units"}
    row["co_units"] = sorted(co_units)
    fields["co_units"] = sorted(fields.get("co_units") or [])
    for name in EDITABLE:
        if name in fields and fields[name] != row[name]:
            raise IntegrityError(
                case.id, seq,
                f"field {name} is {_show(row[name])} in the case row, "
                f"{_show(fields[name])} in its history",
            )  # fmt: skip
    return True


def _check_measures(
    case: Case, entries: Sequence[HistoryEntry], measures: Sequence[Measure]
) -> bool:
    added: dict[int, tuple[int, Mapping[str, Any]]] = {}
    done: dict[int, tuple[int, Mapping[str, Any]]] = {}
    imported: list[Any] | None = None
    for entry in entries:
        data = entry.data or {}
        if entry.trigger == "measure_added" and "measure" in data:
            added[data["measure"]] = (entry.seq, data)
        elif entry.trigger == "measure_done" and "measure" in data:
            done[data["measure"]] = (entry.seq, data)
        elif entry.trigger == "import" and "measures" in data:
            imported = list(data["measures"])
    complete = entries[0].data is not None
    by_id = {m.id: m for m in measures}
    for measure_id, (seq, fields) in added.items():
        measure = by_id.get(measure_id)
        if measure is None:
            raise IntegrityError(case.id, seq, f"measure {measure_id} is missing")
        _same(case.id, seq, measure_id, "text", measure.text, fields.get("text"))
        _same(case.id, seq, measure_id, "due", history.value(measure.due), fields.get("due"))
    for measure_id, (seq, fields) in done.items():
        measure = by_id.get(measure_id)
        if measure is None:
            raise IntegrityError(case.id, seq, f"measure {measure_id} is missing")
        for name in ("evidence_sha256", "evidence_path"):
            _same(case.id, seq, measure_id, name, getattr(measure, name), fields.get(name))
        recorded = fields.get("done_at")
        _same(case.id, seq, measure_id, "done_at", history.value(measure.done_at), recorded)
    others = [m for m in measures if m.id not in added]
    if imported is not None:
        seq = entries[0].seq
        if len(others) < len(imported):
            raise IntegrityError(case.id, seq, "a measure of the import is missing")
        for measure, (text, done_at) in zip(others, imported, strict=False):
            _same(case.id, seq, measure.id, "text", measure.text, text)
            if measure.id not in done:
                _same(case.id, seq, measure.id, "done_at", history.value(measure.done_at), done_at)
        others = others[len(imported) :]
    if not complete:
        return not others and all(not m.done or m.id in done for m in measures)
    for measure in others:
        raise IntegrityError(
            case.id, case.history_seq, f"measure {measure.id} is not in the history"
        )
    for measure in measures:
        if measure.done and measure.id not in done and measure.id in added:
            raise IntegrityError(
                case.id, case.history_seq, f"measure {measure.id} was completed outside the history"
            )
    return True


def _check_notes(case: Case, entries: Sequence[HistoryEntry], notes: Sequence[Note]) -> bool:
    recorded = {
        e.data["note"]: (e.seq, e.data) for e in entries if e.trigger == "note" and e.data
    }  # fmt: skip
    for note in notes:
        found = recorded.pop(note.id, None)
        if found is None:
            if entries[0].data is None:
                continue  # notes before schema 0007 were outside the chain
            raise IntegrityError(case.id, case.history_seq, f"note {note.id} is not in the history")
        seq, data = found
        if note.text != data.get("text"):
            raise IntegrityError(
                case.id, seq, f"note {note.id}: field text differs from its history"
            )
    if recorded:
        note_id, (seq, _data) = next(iter(recorded.items()))
        raise IntegrityError(case.id, seq, f"note {note_id} is missing")
    return entries[0].data is not None or not notes


def _same(case_id: int, seq: int, measure_id: int, name: str, row: object, chained: object) -> None:
    if row != chained:
        raise IntegrityError(
            case_id, seq,
            f"measure {measure_id}: field {name} is {_show(row)} in the database, "
            f"{_show(chained)} in the history",
        )  # fmt: skip


def _show(value: object) -> str:
    return "—" if value is None else json.dumps(value, ensure_ascii=False)


# --- checkpoints ----------------------------------------------------------------------------


def checkpoint(heads: Mapping[int, tuple[int, str]], at: dt.datetime) -> dict[str, Any]:
    """The checkpoint of the chain heads (case id -> (seq, hash)) at ``at``: JSON-ready."""
    cases = {str(cid): [seq, digest] for cid, (seq, digest) in sorted(heads.items())}
    return {"at": history.value(at), "cases": cases, "digest": heads_digest(cases)}


def heads_digest(cases: Mapping[str, Sequence[Any]]) -> str:
    """SHA-256 over the heads, sorted by case id."""
    ordered = sorted(((int(cid), list(head)) for cid, head in cases.items()))
    return hashlib.sha256(history.canonical({"heads": ordered}).encode()).hexdigest()


def read_checkpoint(data: object) -> dict[int, tuple[int, str]]:
    """The heads of a checkpoint read from its JSON; CheckpointMismatch if its digest does
    not match its heads (the file was altered) or it is not a checkpoint."""
    try:
        assert isinstance(data, dict)
        cases = data["cases"]
        heads = {int(cid): (int(seq), str(digest)) for cid, (seq, digest) in cases.items()}
        given = data["digest"]
    except (AssertionError, KeyError, TypeError, ValueError, AttributeError):
        raise CheckpointMismatch("not a checkpoint file (at, cases, digest)") from None
    if heads_digest(cases) != given:
        raise CheckpointMismatch("the file was altered: its digest does not match its heads")
    return heads


def check_against(case_id: int, entries: Sequence[HistoryEntry], head: tuple[int, str]) -> None:
    """The case's entry at the checkpoint's seq still has the checkpoint's hash (the chain
    up to it is checked by ``check_chain``)."""
    seq, digest = head
    found = next((e for e in entries if e.seq == seq), None)
    if found is None:
        raise CheckpointMismatch(f"case {case_id}: entry {seq} is gone", case_id)
    if found.hash != digest:
        raise CheckpointMismatch(
            f"case {case_id}: entry {seq} changed since the checkpoint", case_id
        )
