"""The tamper-evident history chain: each entry stores its predecessor's hash.

An entry's hash covers its fields, its predecessor's hash and its ``data`` (a JSON object:
the fields a case was opened with, the changes of an edit, a measure's text and evidence
hash, …), so a changed row, a removed entry or a changed payload breaks the chain.

With an audit key (``ChainKey``) an entry's hash is an HMAC-SHA256 under that key instead
of a plain SHA-256, and its data names the key by id (``{"key": "<8 hex>"}``): someone who
can write the database but lacks the key cannot recompute a valid chain. The key id in the
data is how a rotation is recorded: from the first entry that names a new id on, that key
applies. An entry without a key after a keyed one in the same chain is a rewrite.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from typing import Any

from rectiflow.engine.errors import IntegrityError
from rectiflow.engine.types import HistoryEntry

GENESIS = "0" * 64


@dataclasses.dataclass(frozen=True, slots=True)
class ChainKey:
    """A secret that signs history entries; known by its id, the first 8 hex digits of
    its SHA-256 (the id is stored, the secret never is)."""

    secret: bytes = dataclasses.field(repr=False)

    @classmethod
    def of(cls, value: str | bytes) -> ChainKey:
        secret = value.encode() if isinstance(value, str) else bytes(value)
        if not secret.strip():
            raise ValueError("an audit key may not be empty")
        return cls(secret.strip())

    @property
    def id(self) -> str:
        return hashlib.sha256(self.secret).hexdigest()[:8]


@dataclasses.dataclass(frozen=True, slots=True)
class ChainCheck:
    """What ``check_chain`` found: entries verified, keyed entries it could not check (no
    key given), entries written without a key."""

    entries: int = 0
    unchecked: int = 0
    unkeyed: int = 0

    def __add__(self, other: ChainCheck) -> ChainCheck:
        return ChainCheck(
            self.entries + other.entries, self.unchecked + other.unchecked,
            self.unkeyed + other.unkeyed,
        )  # fmt: skip


def canonical(data: Mapping[str, Any]) -> str:
    """The one JSON rendering of an entry's data that its hash covers (and the store keeps)."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def value(item: object) -> Any:
    """A field's value as entry data holds it: times as UTC stamps, tuples as lists."""
    if isinstance(item, dt.datetime):
        return _stamp(item)
    if isinstance(item, tuple | list):
        return [value(v) for v in item]
    return item


def entry_hash(
    case_id: int, seq: int, trigger: str, source: str | None, dest: str, actor: str,
    at: dt.datetime, comment: str | None, prev_hash: str,
    data: Mapping[str, Any] | None = None, key: bytes | None = None,
) -> str:  # fmt: skip
    fields: list[Any] = [
        case_id, seq, trigger, source, dest, actor, _stamp(at), comment, prev_hash
    ]  # fmt: skip
    if data is not None:  # entries before data existed keep their hashes
        fields.append(canonical(data))
    payload = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
    if key is not None:
        return hmac.new(key, payload, hashlib.sha256).hexdigest()
    return hashlib.sha256(payload).hexdigest()


def _stamp(at: dt.datetime) -> str:
    # One canonical rendering, so the hash does not depend on how a backend returns times.
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_entry(
    case_id: int, seq: int, trigger: str, source: str | None, dest: str, actor: str,
    at: dt.datetime, comment: str | None, prev_hash: str,
    data: Mapping[str, Any] | None = None, key: ChainKey | None = None,
) -> HistoryEntry:  # fmt: skip
    if key is not None:
        data = {**(data or {}), "key": key.id}
    payload = None if data is None else json.loads(canonical(data))  # as it will be read back
    digest = entry_hash(
        case_id, seq, trigger, source, dest, actor, at, comment, prev_hash, payload,
        key.secret if key is not None else None,
    )  # fmt: skip
    return HistoryEntry(
        case_id, seq, trigger, source, dest, actor, at, comment, prev_hash, digest, payload
    )


def key_of(entry: HistoryEntry) -> str | None:
    """The id of the key the entry was signed with (None: a plain SHA-256)."""
    kid = entry.data.get("key") if entry.data else None
    return kid if isinstance(kid, str) else None


def check_chain(
    case_id: int, entries: Iterable[HistoryEntry], head: tuple[int, str] | None = None,
    keys: Iterable[ChainKey] = (), *, require_key: bool = False,
) -> ChainCheck:  # fmt: skip
    """Raise IntegrityError at the first broken link; say what was checked.

    ``head`` is (seq, hash) of the newest entry as the case row records it: checking the
    chain's end against it catches removed trailing entries. ``keys`` are the audit keys
    (current and former): a keyed entry is checked with the key it names; without any key
    it is counted as unchecked (its links are still checked), and naming a key that is not
    among those given (a wrong key) is a broken link. ``require_key``: an entry without a
    key is a broken link too (for a ledger keyed from its start: a forger without the key
    can only write unkeyed entries)."""
    by_id = {k.id: k for k in keys}
    prev = GENESIS
    expected_seq = 1
    unchecked = unkeyed = 0
    keyed_before = False
    for entry in entries:
        if entry.seq != expected_seq:
            raise IntegrityError(case_id, expected_seq, f"entry {expected_seq} is missing")
        if entry.prev_hash != prev:
            raise IntegrityError(case_id, entry.seq, "prev_hash does not match the entry before")
        kid = key_of(entry)
        secret: bytes | None = None
        if kid is None:
            if keyed_before or require_key:
                after = " after keyed entries" if keyed_before else ""
                raise IntegrityError(case_id, entry.seq, f"an entry without the audit key{after}")
            unkeyed += 1
        elif kid in by_id:
            secret = by_id[kid].secret
        elif by_id:
            raise IntegrityError(
                case_id, entry.seq,
                f"signed with audit key {kid}, not with the key given ({', '.join(by_id)})",
            )  # fmt: skip
        keyed_before = keyed_before or kid is not None
        if kid is not None and secret is None:
            unchecked += 1  # no key given: the links are checked, the hash cannot be
        else:
            recomputed = entry_hash(
                case_id, entry.seq, entry.trigger, entry.source, entry.dest, entry.actor,
                entry.at, entry.comment, entry.prev_hash, entry.data, secret,
            )  # fmt: skip
            if not hmac.compare_digest(recomputed, entry.hash):
                raise IntegrityError(case_id, entry.seq, "the entry was altered (hash mismatch)")
        prev = entry.hash
        expected_seq += 1
    count = expected_seq - 1
    if head is not None and (count, prev) != head:
        if count < head[0]:
            raise IntegrityError(case_id, count + 1, f"entry {count + 1} is missing")
        raise IntegrityError(case_id, count, "the case row does not point at this entry")
    return ChainCheck(count, unchecked, unkeyed)


def verify_chain(
    case_id: int, entries: Iterable[HistoryEntry], head: tuple[int, str] | None = None,
    keys: Iterable[ChainKey] = (),
) -> int:  # fmt: skip
    """``check_chain``, returning the number of entries."""
    return check_chain(case_id, entries, head, keys).entries
