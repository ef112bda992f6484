"""The tamper-evident history chain: each entry stores its predecessor's hash."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable

from rectiflow.engine.errors import IntegrityError
from rectiflow.engine.types import HistoryEntry

GENESIS = "0" * 64


def entry_hash(
    case_id: int, seq: int, trigger: str, source: str | None, dest: str, actor: str,
    at: dt.datetime, comment: str | None, prev_hash: str,
) -> str:  # fmt: skip
    payload = json.dumps(
        [case_id, seq, trigger, source, dest, actor, _stamp(at), comment, prev_hash],
        ensure_ascii=False, separators=(",", ":"),
    )  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()


def _stamp(at: dt.datetime) -> str:
    # One canonical rendering, so the hash does not depend on how a backend returns times.
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_entry(
    case_id: int, seq: int, trigger: str, source: str | None, dest: str, actor: str,
    at: dt.datetime, comment: str | None, prev_hash: str,
) -> HistoryEntry:  # fmt: skip
    digest = entry_hash(case_id, seq, trigger, source, dest, actor, at, comment, prev_hash)
    return HistoryEntry(case_id, seq, trigger, source, dest, actor, at, comment, prev_hash, digest)


def verify_chain(
    case_id: int, entries: Iterable[HistoryEntry], head: tuple[int, str] | None = None
) -> int:
    """Raise IntegrityError at the first broken link; return the number of entries.

    ``head`` is (seq, hash) of the newest entry as the case row records it: checking the
    chain's end against it catches removed trailing entries."""
    prev = GENESIS
    expected_seq = 1
    for entry in entries:
        if entry.seq != expected_seq:
            raise IntegrityError(case_id, expected_seq, f"entry {expected_seq} is missing")
        if entry.prev_hash != prev:
            raise IntegrityError(case_id, entry.seq, "prev_hash does not match the entry before")
        recomputed = entry_hash(
            case_id, entry.seq, entry.trigger, entry.source, entry.dest, entry.actor,
            entry.at, entry.comment, entry.prev_hash,
        )  # fmt: skip
        if recomputed != entry.hash:
            raise IntegrityError(case_id, entry.seq, "the entry was altered (hash mismatch)")
        prev = entry.hash
        expected_seq += 1
    count = expected_seq - 1
    if head is not None and (count, prev) != head:
        if count < head[0]:
            raise IntegrityError(case_id, count + 1, f"entry {count + 1} is missing")
        raise IntegrityError(case_id, count, "the case row does not point at this entry")
    return count
