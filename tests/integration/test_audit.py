"""A system of record: time only moves forward per case, and ``audit`` finds every forgery
made with plain SQL by someone who can write the database (issue 14, section 1)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from integration_support import MONDAY, SQL_BACKENDS, local, open_case, setup_ledger

from rectiflow import Engine, IntegrityError, TransitionRejected
from rectiflow.engine import audit, history
from rectiflow.engine.types import HistoryEntry

pytestmark = pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True)

KEY, OTHER_KEY = "s3cret-key-of-the-office", "the-next-key"


def sql(engine: Engine, statement: str, **params: Any) -> None:
    """A change made behind the engine's back, as someone with the database's password."""
    raw = sa.create_engine(engine.url)
    try:
        with raw.begin() as conn:
            conn.execute(sa.text(statement), params)
    finally:
        raw.dispose()


def rewrite_chain(
    engine: Engine, case_id: int, change: Callable[[HistoryEntry], HistoryEntry]
) -> None:
    """Alter entries and recompute the whole chain with plain SHA-256 (what a forger
    without the audit key can do), the case row's head included."""
    prev = history.GENESIS
    rows = []
    for old in engine.history(case_id):
        new = change(old)
        data = dict(new.data) if new.data else None
        if data is not None:
            data.pop("key", None)
        entry = history.make_entry(
            new.case_id, new.seq, new.trigger, new.source, new.dest, new.actor, new.at,
            new.comment, prev, data or None,
        )  # fmt: skip
        rows.append(entry)
        prev = entry.hash
    for entry in rows:
        sql(
            engine, "UPDATE history SET comment = :comment, actor = :actor, data = :data, "
            "prev_hash = :prev, hash = :hash WHERE case_id = :case AND seq = :seq",
            comment=entry.comment, actor=entry.actor, prev=entry.prev_hash, hash=entry.hash,
            data=None if entry.data is None else history.canonical(entry.data),
            case=case_id, seq=entry.seq,
        )  # fmt: skip
    sql(engine, "UPDATE rcase SET last_hash = :h WHERE id = :id", h=prev, id=case_id)


@pytest.fixture
def keyed(db_url: str) -> Iterator[Engine]:
    with Engine(db_url, audit_key=KEY) as engine:
        engine.init()
        yield setup_ledger(engine)


def in_rectify(engine: Engine, now: dt.datetime = MONDAY) -> tuple[int, int]:
    """A case in rectify with one measure; (case id, measure id)."""
    case_id = open_case(engine, now=now, co_units=["CITY2"], due=dt.date(2025, 6, 30))
    engine.fire(case_id, "confirm", "sup", now=now)
    measure = engine.add_measure(case_id, "own", "open a second window", now=now)
    engine.fire(case_id, "approve_plan", "rev", now=now)
    return case_id, measure.id


# --- time only moves forward ------------------------------------------------------------------

EARLIER = MONDAY - dt.timedelta(hours=1)
CHANGES: dict[str, Callable[[Engine, int, int], object]] = {
    "fire": lambda e, c, m: e.fire(c, "submit", "own", now=EARLIER),
    "pause": lambda e, c, m: e.pause(c, "sup", comment="court", now=EARLIER),
    "note": lambda e, c, m: e.note(c, "own", "done a bit", now=EARLIER),
    "measure_added": lambda e, c, m: e.add_measure(c, "own", "another", now=EARLIER),
    "measure_done": lambda e, c, m: e.complete_measure(m, "own", now=EARLIER),
    "edit": lambda e, c, m: e.edit_case(c, "sup", title="new title", now=EARLIER),
}


@pytest.mark.parametrize("action", CHANGES)
def test_time__a_change_before_the_last_entry_is_refused(ledger: Engine, action: str) -> None:
    case_id, measure_id = in_rectify(ledger)
    if action == "fire":  # submit needs its measures done
        ledger.complete_measure(measure_id, "own", now=MONDAY)
    before = (ledger.get_case(case_id), ledger.history(case_id), ledger.measures(case_id))
    with pytest.raises(TransitionRejected) as info:
        CHANGES[action](ledger, case_id, measure_id)
    assert "time only moves forward: 2025-03-03T08:00:00+08:00 is before the case's last " \
        "history entry at 2025-03-03T09:00:00+08:00" in str(info.value)  # fmt: skip
    assert info.value.exit_code == 4
    assert (ledger.get_case(case_id), ledger.history(case_id), ledger.measures(case_id)) == before


def test_time__resume_before_the_pause_is_refused(ledger: Engine) -> None:
    case_id, _ = in_rectify(ledger)
    ledger.pause(case_id, "sup", comment="court", now=local(2025, 3, 5))
    with pytest.raises(TransitionRejected, match="time only moves forward"):
        ledger.resume(case_id, "sup", now=local(2025, 3, 4))
    assert ledger.resume(case_id, "sup", now=local(2025, 3, 5)).paused_at is None  # same time: ok


# --- the case row against its history ---------------------------------------------------------


def test_audit__an_untouched_ledger_verifies_completely(ledger: Engine, tmp_path: Path) -> None:
    case_id, measure_id = in_rectify(ledger)
    evidence = tmp_path / "photo.jpg"
    evidence.write_bytes(b"photo")
    ledger.complete_measure(measure_id, "own", evidence=evidence, now=local(2025, 3, 4))
    ledger.note(case_id, "own", "second window open", now=local(2025, 3, 4))
    ledger.edit_case(case_id, "sup", title="queues", unit="CITY10", co_units=[], due=dt.date(
        2025, 7, 31), target="none", now=local(2025, 3, 5))  # fmt: skip
    ledger.edit_case(case_id, "sup", severity="high", long_term=True, now=local(2025, 3, 6))
    report = ledger.audit()
    assert (report.cases, report.entries, report.partial) == (1, 8, ())
    assert ledger.get_case(case_id).version == 8  # one version per entry
    [*_, done, note, edit, _] = ledger.history(case_id)
    assert done.data is not None
    assert done.data["evidence_sha256"] == hashlib.sha256(b"photo").hexdigest()
    assert note.data == {"note": 1, "text": "second window open"}
    assert edit.data is not None
    assert edit.data["changes"]["unit"] == ["CITY1", "CITY10"]


@pytest.mark.parametrize(
    ("statement", "field"),
    [
        ("UPDATE rcase SET state = 'closed' WHERE id = :id", "state"),
        ("UPDATE rcase SET title = 'nothing to see' WHERE id = :id", "title"),
        ("UPDATE rcase SET unit = 'CITY2' WHERE id = :id", "unit"),
        ("UPDATE rcase SET severity = 'low' WHERE id = :id", "severity"),
        ("UPDATE rcase SET due = NULL WHERE id = :id", "due"),
        ("UPDATE rcase SET responsible = 'nobody' WHERE id = :id", "responsible"),
        ("UPDATE rcase SET long_term = TRUE WHERE id = :id", "long_term"),
        ("DELETE FROM case_co_unit WHERE case_id = :id", "co_units"),
        ("UPDATE rcase SET version = version + 1 WHERE id = :id", "version"),
    ],
)
def test_audit__a_field_changed_with_sql_is_named(
    ledger: Engine, statement: str, field: str
) -> None:
    case_id, _ = in_rectify(ledger)
    ledger.verify_history()
    sql(ledger, statement, id=case_id)
    with pytest.raises(IntegrityError, match=f"case {case_id} .*field {field} ") as info:
        ledger.verify_history()
    assert info.value.exit_code == 7


def test_audit__an_edit_is_replayed_and_a_forged_one_found(ledger: Engine) -> None:
    case_id, _ = in_rectify(ledger)
    ledger.edit_case(case_id, "sup", title="renamed", now=local(2025, 3, 4))
    ledger.verify_history()
    sql(ledger, "UPDATE rcase SET title = 'problem in CITY1' WHERE id = :id", id=case_id)
    with pytest.raises(IntegrityError, match="field title is \"problem in CITY1\" in the case "
                       "row, \"renamed\" in its history"):  # fmt: skip
        ledger.verify_history(case_id)


# --- measures, notes and evidence in the chain --------------------------------------------------


def test_audit__a_replaced_evidence_hash_is_named(ledger: Engine, tmp_path: Path) -> None:
    case_id, measure_id = in_rectify(ledger)
    evidence = tmp_path / "report.pdf"
    evidence.write_bytes(b"the real report")
    ledger.complete_measure(measure_id, "own", evidence=evidence, now=local(2025, 3, 4))
    ledger.verify_history()
    sql(ledger, "UPDATE measure SET evidence_sha256 = :h WHERE id = :id", h="0" * 64, id=measure_id)
    with pytest.raises(
        IntegrityError, match=f"case {case_id} .*measure {measure_id}: field evidence_sha256"
    ):
        ledger.verify_history()


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("UPDATE measure SET text = 'something else' WHERE id = :m", "field text"),
        ("UPDATE measure SET done_at = created WHERE id = :m", "completed outside the history"),
        ("INSERT INTO measure (case_id, text, owner) VALUES (:c, 'late', 'own')",
         "is not in the history"),
        ("UPDATE note SET text = 'all done' WHERE case_id = :c", "note 1: field text"),
        ("DELETE FROM note WHERE case_id = :c", "note 1 is missing"),
    ],
)  # fmt: skip
def test_audit__measures_and_notes_changed_with_sql(
    ledger: Engine, statement: str, message: str
) -> None:
    case_id, measure_id = in_rectify(ledger)
    ledger.note(case_id, "own", "started", now=local(2025, 3, 4))
    ledger.verify_history()
    statement = statement.replace("created", ":t")
    sql(ledger, statement, c=case_id, m=measure_id, t=MONDAY)
    with pytest.raises(IntegrityError, match=message):
        ledger.verify_history()


# --- a keyed chain ------------------------------------------------------------------------------


def test_key__a_chain_rewritten_without_the_key_is_found(keyed: Engine) -> None:
    case_id, _ = in_rectify(keyed)
    assert all(history.key_of(e) == history.ChainKey.of(KEY).id for e in keyed.history(case_id))
    assert keyed.audit().unchecked == 0
    # the forger rewrites who confirmed, and recomputes every hash: without the key, plain SHA-256
    rewrite_chain(keyed, case_id, lambda e: dataclasses.replace(e, actor="rep")
                  if e.trigger == "confirm" else e)  # fmt: skip
    with Engine(keyed.url) as unkeyed:  # an auditor without the key cannot tell
        assert unkeyed.audit().entries == 4
    # with the key: every entry shows as written without it, and a ledger keyed from its
    # start requires the key of every entry
    assert keyed.audit().unkeyed == 4
    with pytest.raises(IntegrityError, match="seq 1: an entry without the audit key"):
        keyed.audit(require_key=True)


def test_key__a_forged_entry_after_keyed_ones_is_found(keyed: Engine) -> None:
    case_id, _ = in_rectify(keyed)
    entries = keyed.history(case_id)
    last = entries[-1]
    forged = history.make_entry(
        case_id, last.seq + 1, "accept", last.dest, "closed", "ver", last.at, None, last.hash
    )
    sql(keyed, "INSERT INTO history (case_id, seq, trigger, source, dest, actor, at, prev_hash, "
        "hash) VALUES (:c, :s, 'accept', :src, 'closed', 'ver', :at, :p, :h)", c=case_id,
        s=forged.seq, src=last.dest, at=last.at, p=last.hash, h=forged.hash)  # fmt: skip
    sql(keyed, "UPDATE rcase SET state = 'closed', history_seq = :s, last_hash = :h, "
        "version = version + 1 WHERE id = :c", s=forged.seq, h=forged.hash, c=case_id)  # fmt: skip
    with pytest.raises(IntegrityError, match="without the audit key after keyed entries"):
        keyed.verify_history()
    with Engine(keyed.url) as unkeyed, pytest.raises(IntegrityError):
        unkeyed.verify_history()


def test_key__without_the_key_entries_are_not_checked_and_a_wrong_key_is_refused(
    keyed: Engine,
) -> None:
    in_rectify(keyed)
    with Engine(keyed.url) as unkeyed:
        report = unkeyed.audit()
    assert (report.entries, report.unchecked, report.unkeyed) == (4, 4, 0)
    with (
        Engine(keyed.url, audit_key="a guess") as wrong,
        pytest.raises(IntegrityError, match=r"signed with audit key .* not with the key given"),
    ):
        wrong.verify_history()


def test_key__rotation(keyed: Engine) -> None:
    case_id, _ = in_rectify(keyed)
    with Engine(keyed.url, audit_key=OTHER_KEY, former_audit_keys=[KEY]) as rotated:
        rotated.note(case_id, "own", "after the rotation", now=local(2025, 3, 4))
        assert rotated.audit().unchecked == 0
        [*old, new] = rotated.history(case_id)
    assert history.key_of(new) == history.ChainKey.of(OTHER_KEY).id
    assert {history.key_of(e) for e in old} == {history.ChainKey.of(KEY).id}
    with (
        Engine(keyed.url, audit_key=OTHER_KEY) as forgetful,
        pytest.raises(IntegrityError, match="signed with audit key"),
    ):
        forgetful.verify_history()


# --- checkpoints --------------------------------------------------------------------------------


def test_checkpoint__later_changes_pass_and_a_rewrite_before_it_is_found(ledger: Engine) -> None:
    case_id, _ = in_rectify(ledger)
    second = open_case(ledger)
    kept = ledger.checkpoint(now=local(2025, 3, 31))
    assert kept["at"] == "2025-03-31T01:00:00.000000Z"
    assert kept["cases"] == {str(c.id): [c.history_seq, c.last_hash] for c in ledger.list_cases()}
    heads = audit.read_checkpoint(kept)
    ledger.fire(second, "confirm", "sup", now=local(2025, 4, 1))  # after the checkpoint: fine
    assert ledger.audit(against=heads).entries == 6
    # a whole chain rewritten consistently (no key): only the checkpoint can tell
    rewrite_chain(ledger, case_id, lambda e: dataclasses.replace(e, actor="sup"))
    ledger.verify_history()
    with pytest.raises(IntegrityError, match=f"checkpoint: case {case_id}: entry 4 changed"):
        ledger.audit(against=heads)


def test_checkpoint__an_altered_file_is_refused(ledger: Engine) -> None:
    case_id, _ = in_rectify(ledger)
    kept = ledger.checkpoint()
    kept["cases"][str(case_id)] = [3, kept["cases"][str(case_id)][1]]
    with pytest.raises(IntegrityError, match="the file was altered"):
        audit.read_checkpoint(kept)
    with pytest.raises(IntegrityError, match="not a checkpoint"):
        audit.read_checkpoint({"cases": []})


def test_checkpoint__a_deleted_case_is_found(ledger: Engine) -> None:
    in_rectify(ledger)
    doomed = open_case(ledger)
    heads = audit.read_checkpoint(ledger.checkpoint())
    for table in ("history", "case_co_unit", "rcase"):
        column = "id" if table == "rcase" else "case_id"
        sql(ledger, f"DELETE FROM {table} WHERE {column} = :id", id=doomed)
    with pytest.raises(IntegrityError, match=f"case {doomed} is gone"):
        ledger.audit(against=heads)


# --- history written before entries had data ----------------------------------------------------


def test_audit__old_entries_are_verified_as_far_as_they_go(ledger: Engine) -> None:
    case_id, _ = in_rectify(ledger)
    rewrite_chain(ledger, case_id, lambda e: dataclasses.replace(e, data=None))
    report = ledger.audit()
    assert (report.entries, report.partial) == (4, (case_id,))
    sql(ledger, "UPDATE rcase SET state = 'closed' WHERE id = :id", id=case_id)
    with pytest.raises(IntegrityError, match="field state"):
        ledger.verify_history()
