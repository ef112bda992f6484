"""Engine.import_ledger on real files (tests/ledger_samples.py), on a SQLite file and on
PostgreSQL: every phrase and cell of the issue, all or nothing, re-imports, updates,
backfilled ladder levels and who may import."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import chinese_calendar
import pytest
from integration_support import SQL_BACKENDS, end_of_day, local
from ledger_samples import (
    BAD_ROWS,
    HEADINGS,
    IMMEDIATE,
    SOURCE,
    UNKNOWN_COLUMN,
    Sample,
    bad_ledger_rows,
    sample_ledger,
    sample_rows,
    setup_units,
    write_csv,
    write_xlsx,
)

from rectiflow import Engine, Light, PermissionDenied
from rectiflow.app.ledger import LedgerImportError

pytestmark = pytest.mark.parametrize("db_url", SQL_BACKENDS, indirect=True)

#: Wednesday 29 April 2026: the Labour Day holiday (1-5 May) and the working Saturday
#: 9 May fall inside the five working days of 立行立改.
NOW = local(2026, 4, 29)


@pytest.fixture
def hlj(ledger: Engine) -> Engine:
    return setup_units(ledger)


def _workdays_after(day: dt.date, n: int) -> dt.date:
    while n:
        day += dt.timedelta(days=1)
        n -= chinese_calendar.is_workday(day)
    return day


def _due(sample: Sample) -> dt.datetime | None:
    if sample.due == IMMEDIATE:
        return end_of_day(*_workdays_after(NOW.date(), 5).timetuple()[:3])
    if isinstance(sample.due, dt.date):
        return end_of_day(sample.due.year, sample.due.month, sample.due.day)
    return None


def _snapshot(engine: Engine) -> tuple[int, int, int, int, int]:
    ids = list(engine.store.iter_case_ids())
    return (
        len(ids),
        len(engine.list_units()),
        sum(len(engine.history(i)) for i in ids),
        len(engine.store.list_escalations()),
        len(engine.store.list_notifications()),
    )


def _by_ref(engine: Engine) -> dict[str | None, int]:
    return {c.ref: c.id for c in engine.store.find_cases()}


# --- every cell ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["xlsx", "csv-gbk", "csv-utf8", "csv-bom"])
def test_import__every_phrase_unit_measure_status_and_severity(
    hlj: Engine, tmp_path: Path, kind: str
) -> None:
    # 立行立改: 30 April, then 6, 7, 8 May and the working Saturday 9 May
    assert _workdays_after(NOW.date(), 5) == dt.date(2026, 5, 9)
    path, samples = sample_ledger(tmp_path / "ledger", kind)
    report = hlj.import_ledger(path, "sup", now=NOW)

    assert (report.created, report.unchanged, report.changed, report.skipped) == (
        len(samples), 0, 0, 0,
    )  # fmt: skip
    assert report.errors == []
    assert report.ignored_columns == [UNKNOWN_COLUMN]
    ids = _by_ref(hlj)
    co_units = hlj.store.co_units_of(list(ids.values()))
    for sample in samples:
        case = hlj.get_case(ids[sample.ref])
        where = f"{sample.ref} {sample.deadline!r} {sample.status!r}"
        assert case.title == sample.title, where
        assert case.source == SOURCE, where
        assert (case.category, case.target, case.responsible) == (
            sample.category, sample.target, sample.responsible,
        ), where  # fmt: skip
        assert case.due == _due(sample), where
        assert case.long_term is sample.long_term, where
        assert case.state == sample.state, where
        assert case.severity == sample.severity, where
        assert case.unit == sample.lead, where
        assert tuple(co_units.get(case.id, [])) == tuple(sorted(sample.co)), where
        measures = hlj.measures(case.id)
        assert tuple(m.text for m in measures) == sample.measures, where
        done = sample.state in ("verify", "closed")
        assert [m.done for m in measures] == [done] * len(measures), where


def test_import__from_a_file_object(hlj: Engine, tmp_path: Path) -> None:
    path, samples = sample_ledger(tmp_path / "ledger", "xlsx")
    with open(path, "rb") as f:
        report = hlj.import_ledger(f, "sup", now=NOW)
    assert report.created == len(samples)
    csv_path, _ = sample_ledger(tmp_path / "other", "csv-gbk")
    with open(csv_path, "rb") as f:
        again = hlj.import_ledger(f, "sup", now=NOW)
    assert (again.created, again.unchanged) == (0, len(samples))


def test_import__one_import_entry_per_case_chained(hlj: Engine, tmp_path: Path) -> None:
    path, samples = sample_ledger(tmp_path / "ledger", "xlsx")
    hlj.import_ledger(path, "sup", now=NOW)
    ids = _by_ref(hlj)
    for sample in samples:
        entries = hlj.history(ids[sample.ref])
        assert len(entries) == 1
        entry = entries[0]
        assert (entry.trigger, entry.source, entry.dest, entry.actor) == (
            "import", None, sample.state, "sup",
        )  # fmt: skip
        assert entry.comment == sample.status
        assert entry.at == NOW
    assert hlj.verify_history() == len(samples)


def test_import__source_argument_wins(hlj: Engine, tmp_path: Path) -> None:
    path, samples = sample_ledger(tmp_path / "ledger", "xlsx")
    hlj.import_ledger(path, "sup", source="审计发现", now=NOW)
    assert {c.source for c in hlj.store.find_cases()} == {"审计发现"}
    # the key is (the argument, 编号): the rows' own 问题来源 makes new keys
    other = hlj.import_ledger(path, "sup", now=NOW)
    assert other.created == len(samples)
    again = hlj.import_ledger(path, "sup", source="审计发现", now=NOW)
    assert (again.created, again.unchanged) == (0, len(samples))


# --- bad rows: all or nothing -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_bad_rows__every_error_listed_nothing_written(
    hlj: Engine, tmp_path: Path, kind: str
) -> None:
    rows, numbers = bad_ledger_rows(sample_rows())
    write = write_xlsx if kind == "xlsx" else write_csv
    path = write(tmp_path / f"bad.{kind}", rows)
    hlj.import_ledger(sample_ledger(tmp_path / "first", "xlsx")[0], "sup", source="旧台账", now=NOW)
    before = _snapshot(hlj)

    with pytest.raises(LedgerImportError) as refused:
        hlj.import_ledger(path, "sup", now=NOW)

    errors = refused.value.report.errors
    assert [(e.row, e.column, e.value) for e in errors] == [
        (number, HEADINGS[bad.field], bad.value)
        for number, bad in zip(numbers, BAD_ROWS, strict=True)
    ]
    assert all(e.reason for e in errors)
    assert "XS-001" in errors[-1].reason or "row 4" in errors[-1].reason
    assert _snapshot(hlj) == before


def test_bad_rows__skip_errors_imports_the_good_ones(hlj: Engine, tmp_path: Path) -> None:
    good = sample_rows()
    rows, numbers = bad_ledger_rows(good)
    path = write_xlsx(tmp_path / "bad.xlsx", rows)
    report = hlj.import_ledger(path, "sup", skip_errors=True, now=NOW)
    assert (report.created, report.skipped) == (len(good), len(BAD_ROWS))
    assert [e.row for e in report.errors] == numbers
    assert set(_by_ref(hlj)) == {s.ref for s in good}
    hlj.verify_history()


def test_dry_run__counts_and_writes_nothing(hlj: Engine, tmp_path: Path) -> None:
    path, samples = sample_ledger(tmp_path / "ledger", "xlsx")
    before = _snapshot(hlj)
    report = hlj.import_ledger(path, "sup", dry_run=True, now=NOW)
    assert (report.created, report.dry_run) == (len(samples), True)
    assert _snapshot(hlj) == before
    # a dry run of bad rows with skip_errors counts them too, still writing nothing
    rows, _ = bad_ledger_rows(samples)
    bad = write_xlsx(tmp_path / "bad.xlsx", rows)
    checked = hlj.import_ledger(bad, "sup", dry_run=True, skip_errors=True, now=NOW)
    assert (checked.created, checked.skipped) == (len(samples), len(BAD_ROWS))
    assert _snapshot(hlj) == before


def _unknown_unit_ledger(tmp_path: Path, *, also_bad: bool = False) -> Path:
    sample = sample_rows()[3]
    rows = [
        {**sample.cells(1), "ref": "N-1", "unit": "省外星事务局"},
        {**sample.cells(2), "ref": "N-2", "unit": "省外星事务局、省财政厅"},
    ]
    if also_bad:
        rows.append({**sample.cells(3), "ref": "N-3", "deadline": "尽快"})
    return write_xlsx(tmp_path / f"units{len(rows)}.xlsx", rows)


def test_create_units__under_the_parent(hlj: Engine, tmp_path: Path) -> None:
    path = _unknown_unit_ledger(tmp_path)
    with pytest.raises(LedgerImportError):
        hlj.import_ledger(path, "sup", now=NOW)

    units = len(hlj.list_units())
    dry = hlj.import_ledger(path, "sup", create_units_under="PROV", dry_run=True, now=NOW)
    assert dry.created == 2
    assert len(hlj.list_units()) == units  # not in a dry run

    refused_path = _unknown_unit_ledger(tmp_path, also_bad=True)
    with pytest.raises(LedgerImportError):
        hlj.import_ledger(refused_path, "sup", create_units_under="PROV", now=NOW)
    assert len(hlj.list_units()) == units  # nor when the import is refused

    # skipping the bad rows creates no unit that only a skipped row names
    sample = sample_rows()[3]
    skipped = write_xlsx(
        tmp_path / "skipped.xlsx",
        [{**sample.cells(1), "ref": "S-1", "unit": "省冰雪局", "deadline": "尽快"}],
    )
    hlj.import_ledger(skipped, "sup", create_units_under="PROV", skip_errors=True, now=NOW)
    assert len(hlj.list_units()) == units

    report = hlj.import_ledger(path, "sup", create_units_under="PROV", now=NOW)
    assert report.created == 2
    created = [u for u in hlj.list_units() if u.name == "省外星事务局"]
    assert len(created) == 1
    assert created[0].parent == "PROV"
    cases = hlj.store.find_cases()
    assert {c.unit for c in cases} == {created[0].code}
    assert hlj.store.co_units_of([c.id for c in cases]) == {cases[1].id: ["CZT"]}


# --- re-import, changes, update -----------------------------------------------------------


def test_reimport__idempotent(hlj: Engine, tmp_path: Path) -> None:
    path, samples = sample_ledger(tmp_path / "ledger", "xlsx")
    hlj.import_ledger(path, "sup", now=NOW)
    before = _snapshot(hlj)
    later = NOW + dt.timedelta(days=3)  # 立行立改 counted from the first import still holds
    report = hlj.import_ledger(path, "sup", now=later)
    assert (report.created, report.unchanged, report.changed, report.updated) == (
        0, len(samples), 0, 0,
    )  # fmt: skip
    assert _snapshot(hlj) == before


def _changed_ledger(tmp_path: Path, samples: list[Sample]) -> Path:
    rows = [s.cells(n) for n, s in enumerate(samples, 1)]
    # XS-011 and XS-013 are in rectify; XS-013 is led by 省发展改革委 with two co-units
    rows[10] = {**rows[10], "title": "企业开办审批环节多（已核实）", "severity": "低"}
    rows[12] = {**rows[12], "deadline": "2026年9月底前", "unit": "省发展改革委"}
    return write_xlsx(tmp_path / "changed.xlsx", rows)


def test_reimport__changed_row_is_reported_and_left_alone(hlj: Engine, tmp_path: Path) -> None:
    path, samples = sample_ledger(tmp_path / "ledger", "xlsx")
    hlj.import_ledger(path, "sup", now=NOW)
    before = _snapshot(hlj)
    ids = _by_ref(hlj)
    first = hlj.get_case(ids["XS-011"])

    report = hlj.import_ledger(_changed_ledger(tmp_path, samples), "sup", now=NOW)

    assert (report.created, report.unchanged, report.changed, report.updated) == (
        0, len(samples) - 2, 2, 0,
    )  # fmt: skip
    assert set(report.changes[first.id]) == {"title", "severity"}
    assert set(report.changes[ids["XS-013"]]) == {"due", "co_units"}
    assert hlj.get_case(first.id) == first
    assert _snapshot(hlj) == before


def test_reimport__update_writes_one_edit_per_case(hlj: Engine, tmp_path: Path) -> None:
    path, samples = sample_ledger(tmp_path / "ledger", "xlsx")
    hlj.import_ledger(path, "sup", now=NOW)
    ids = _by_ref(hlj)
    later = NOW + dt.timedelta(days=1)

    report = hlj.import_ledger(_changed_ledger(tmp_path, samples), "sup", update=True, now=later)

    assert (report.unchanged, report.changed, report.updated) == (len(samples) - 2, 0, 2)
    first, second = hlj.get_case(ids["XS-011"]), hlj.get_case(ids["XS-013"])
    assert (first.title, first.severity) == ("企业开办审批环节多（已核实）", "low")
    assert second.due == end_of_day(2026, 9, 30)
    assert hlj.store.co_units_of([second.id]) == {}
    for case, fields in ((first, ["title", "severity"]), (second, ["due", "co_units"])):
        edits = [h for h in hlj.history(case.id) if h.trigger == "edit"]
        assert len(edits) == 1
        assert edits[0].source == edits[0].dest == case.state
        comment = edits[0].comment or ""
        for name in fields:
            assert f"{name}: " in comment
        assert "→" in comment
    assert "title: 第11个问题：企业开办审批环节多、时限长 → 企业开办审批环节多（已核实）" in (
        hlj.history(first.id)[-1].comment or ""
    )
    # the case in rectify took its new date as its deadline, as a new visit
    assert (second.state, second.due_at, second.visit) == ("rectify", second.due, 2)
    hlj.verify_history()
    again = hlj.import_ledger(_changed_ledger(tmp_path, samples), "sup", now=later)
    assert (again.unchanged, again.changed) == (len(samples), 0)


def test_reimport__update_of_a_final_case_is_a_row_error(hlj: Engine, tmp_path: Path) -> None:
    path, samples = sample_ledger(tmp_path / "ledger", "xlsx")
    hlj.import_ledger(path, "sup", now=NOW)
    rows = [s.cells(n) for n, s in enumerate(samples, 1)]
    rows[0] = {**rows[0], "title": "改过的标题"}  # XS-001 is closed
    rows[10] = {**rows[10], "title": "也改过的标题"}  # XS-011 is in rectify
    changed = write_xlsx(tmp_path / "changed.xlsx", rows)
    before = _snapshot(hlj)

    with pytest.raises(LedgerImportError) as refused:
        hlj.import_ledger(changed, "sup", update=True, now=NOW)
    errors = refused.value.report.errors
    assert [(e.row, e.column, e.value) for e in errors] == [(4, "编号", "XS-001")]
    assert "final" in errors[0].reason
    assert _snapshot(hlj) == before  # the good update was not applied either

    report = hlj.import_ledger(changed, "sup", update=True, skip_errors=True, now=NOW)
    assert (report.updated, report.skipped) == (1, 1)
    assert hlj.get_case(_by_ref(hlj)["XS-011"]).title == "也改过的标题"


# --- overdue from the start ---------------------------------------------------------------


def test_overdue_import__red_with_backfilled_levels_and_no_notifications(
    hlj: Engine, tmp_path: Path
) -> None:
    sample = sample_rows()[0]
    rows = [{**sample.cells(1), "ref": "OLD-1", "deadline": "2026年6月30日前", "status": "整改中"}]
    path = write_xlsx(tmp_path / "old.xlsx", rows)
    imported_at = local(2026, 7, 8)  # past remind (-3wd), warn (0) and supervise (+5wd)

    hlj.import_ledger(path, "sup", now=imported_at)

    case = hlj.get_case(_by_ref(hlj)["OLD-1"])
    assert (case.state, case.due_at) == ("rectify", end_of_day(2026, 6, 30))
    assert hlj.light(case, imported_at) is Light.RED
    recorded = hlj.store.list_escalations(case.id)
    assert [(e.level, e.backfilled, e.fired_at) for e in recorded] == [
        ("remind", True, imported_at), ("warn", True, imported_at),
        ("supervise", True, imported_at),
    ]  # fmt: skip
    assert hlj.store.list_notifications(case.id) == []
    assert case.next_level == 3

    summary = hlj.escalate_due(local(2026, 7, 7))  # before the import: nothing new
    assert summary.fired == 0
    hlj.escalate_due(local(2026, 7, 22))  # notify_public: +15 working days
    recorded = hlj.store.list_escalations(case.id)
    assert [(e.level, e.backfilled) for e in recorded][3:] == [("notify_public", False)]
    notified = hlj.store.list_notifications(case.id)
    assert notified
    assert {n.level for n in notified} == {"notify_public"}


# --- who may import -----------------------------------------------------------------------


def test_import__needs_a_role_that_opens(hlj: Engine, tmp_path: Path) -> None:
    path, _ = sample_ledger(tmp_path / "ledger", "xlsx")
    before = _snapshot(hlj)
    with pytest.raises(PermissionDenied):
        hlj.import_ledger(path, "own", now=NOW)
    with pytest.raises(PermissionDenied):
        hlj.import_ledger(path, "nobody", now=NOW)
    assert _snapshot(hlj) == before


def test_import__rows_outside_the_actors_units_are_row_errors(hlj: Engine, tmp_path: Path) -> None:
    path, samples = sample_ledger(tmp_path / "ledger", "xlsx")
    before = _snapshot(hlj)
    with pytest.raises(LedgerImportError) as refused:
        hlj.import_ledger(path, "hrb_rep", now=NOW)
    outside = [n for n, s in enumerate(samples, 4) if s.lead != "HRB"]
    errors = refused.value.report.errors
    assert [e.row for e in errors] == outside
    assert {e.column for e in errors} == {HEADINGS["unit"]}
    assert _snapshot(hlj) == before

    report = hlj.import_ledger(path, "hrb_rep", skip_errors=True, now=NOW)
    assert report.created == len(samples) - len(outside)
    assert {c.unit for c in hlj.store.find_cases()} == {"HRB"}
