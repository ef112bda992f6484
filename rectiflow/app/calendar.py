"""The Engine's calendar concern: the time rules deadlines are counted by, the calendar
table an administrator loads, and keeping the rules in step with that table."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from loguru import logger

from rectiflow.app.registry import Registry
from rectiflow.engine import deadlines, escalation, history
from rectiflow.engine.calendar import (
    MIN_WEEKDAY_HOLIDAYS,
    WorkCalendar,
    decode_calendar,
    incomplete_years,
    parse_calendar_file,
    year_days,
)
from rectiflow.engine.deadlines import TimeRules
from rectiflow.engine.errors import ValidationError
from rectiflow.engine.spec import WorkflowSpec
from rectiflow.engine.types import Case
from rectiflow.engine.yaml_source import MAX_YAML_BYTES

CALENDAR_RECHECK_SECONDS = 60.0


class Calendar(Registry):
    """Working days and deadlines: the rules, the loaded table, provisional deadlines."""

    @property
    def rules(self) -> TimeRules:
        if self._rules is None:
            self._refresh_calendar()
        assert self._rules is not None
        return self._rules

    def _calendar_may_have_changed(self) -> bool:
        """At most one re-read a minute: until a year is loaded, every deadline that
        reaches into it is provisional, and a re-read per transition would cost more than
        the transition."""
        now = time.monotonic()
        if now - self._calendar_read_at < CALENDAR_RECHECK_SECONDS:
            return False
        self._calendar_read_at = now
        return True

    def _refresh_calendar(self) -> bool:
        """Re-read the loaded calendar table; rebuild the rules only if it changed (the
        rules cache working-day shifts). Returns whether it changed."""
        rows = self.store.calendar_days()
        self._calendar_read_at = time.monotonic()
        if self._rules is not None and dict(rows) == self._rules.calendar.overrides:
            return False
        self._rules = TimeRules(WorkCalendar.from_rows(rows), self.tz)
        return True

    def _stage_deadline(
        self, spec: WorkflowSpec, case: Case, state: str, entered_at: dt.datetime,
        pause_credit: int = 0,
    ) -> tuple[dt.datetime | None, bool]:  # fmt: skip
        """A stage deadline; when it comes out provisional, another process may have loaded
        the year meanwhile, so look once more before settling for it."""
        args = (spec, case, state, entered_at, pause_credit)
        due_at, provisional = deadlines.stage_deadline(self.rules, *args)
        if provisional and self._calendar_may_have_changed() and self._refresh_calendar():
            due_at, provisional = deadlines.stage_deadline(self.rules, *args)
        return due_at, provisional

    def _end_of(self, day: dt.date | dt.datetime) -> dt.datetime:
        """A due date as a time: a date is due at the end of that local day."""
        if isinstance(day, dt.datetime):
            return self._now(day)
        return self.rules.end_of_day(day)

    def load_calendar(
        self, path: str | os.PathLike[str], *, now: dt.datetime | None = None,
        partial: bool = False, actor: str | None = None,
    ) -> int:  # fmt: skip
        """Load holiday/workday rows from CSV or YAML, then recompute provisional deadlines.
        Returns the number of deadlines recomputed (a recomputed deadline counts from when
        its stage was entered); each is a ``deadline_recomputed`` entry in its case's
        history, dated ``now`` (or its last entry's time, if later). Once the ledger has
        an admin, ``actor`` must name one."""
        self.require_admin(actor, "load the calendar")
        file = Path(path)
        try:
            if file.exists() and not file.is_file():
                raise ValidationError("cannot read calendar file: not a file", where=str(file))
            with file.open("rb") as stream:
                raw = stream.read(MAX_YAML_BYTES + 1)
        except OSError as exc:
            raise ValidationError(
                f"cannot read calendar file: {exc.strerror}", where=str(file)
            ) from None
        if len(raw) > MAX_YAML_BYTES:
            raise ValidationError(f"larger than {MAX_YAML_BYTES:,} bytes", where=str(file))
        days = parse_calendar_file(decode_calendar(raw, str(file)), str(file))
        short = incomplete_years(days)
        if short and not partial:
            raise ValidationError(
                f"{', '.join(map(str, short))}: fewer than {MIN_WEEKDAY_HOLIDAYS} holidays on "
                "weekdays, not a whole year's schedule (load it with --partial if it is meant "
                "to be incomplete)",
                where=str(file),
            )
        self.store.load_calendar(days)
        self._refresh_calendar()
        recomputed = 0
        for case in self.store.list_cases(provisional_only=True):
            with self.store.case_tx(case.id) as tx:
                current = tx.case
                spec = self.workflow(current.workflow, current.workflow_version)
                due_at, provisional = deadlines.stage_deadline(
                    self.rules, spec, current, current.state, current.stage_entered_at,
                    current.pause_credit,
                )  # fmt: skip
                # A marker in the history, so that every change of the row is chained.
                at = max(self._now(now), tx.last_entry_at() or current.created_at)
                data = {"due_at": history.value(due_at), "provisional": provisional}
                entry = history.make_entry(
                    current.id, current.history_seq + 1, "deadline_recomputed", current.state,
                    current.state, "calendar", at, None, current.last_hash, data, self.audit_key,
                )  # fmt: skip
                tx.update({
                    "due_at": due_at, "due_provisional": provisional,
                    "next_escalation_at": escalation.next_wake(
                        self.rules, spec, current, due_at, current.next_level
                    ),
                }, entry)  # fmt: skip
            recomputed += 1
        logger.bind(action="calendar").info(
            "calendar: {n} days loaded, {m} deadlines recomputed", n=len(days), m=recomputed
        )
        return recomputed

    def calendar(self, year: int) -> list[tuple[dt.date, bool, str]]:
        """Every day of ``year``: (date, is working day, where the answer came from)."""
        return year_days(self.rules.calendar, year)
