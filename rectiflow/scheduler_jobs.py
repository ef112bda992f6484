"""The scheduler's jobs beside the sweep: delivering the outbox, the monthly snapshot and
the monthly dispatch reminder.

``SchedulerJobs`` is the base of ``Scheduler`` (scheduler.py), which sets the state
declared here and adds the jobs to APScheduler. The cron jobs only mark what is owed; the
sweep's pass takes the snapshot and runs the dispatch (under the supervisor's eye), and
retries either at a later pass when it fails; the delivery runs beside the sweep. Apart
from scheduler.py so that the sweep and its liveness argument read on their own.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from loguru import logger
from sqlalchemy.exc import DBAPIError

from rectiflow.engine.errors import StoreUnavailable

if TYPE_CHECKING:
    from rectiflow.app import Engine
    from rectiflow.notify.dispatcher import Dispatcher


class SchedulerJobs:
    """The outbox delivery, the monthly snapshot and the monthly dispatch; the state they
    share with the rest of the scheduler, declared once so that they type-check here."""

    engine: Engine
    max_interval: float
    dispatch_roles: tuple[str, ...]
    dispatcher: Dispatcher | None
    deliver_interval: float
    stopping: threading.Event
    _deliver_lock: threading.Lock
    _dispatch_owed_at: float | None  # monotonic; None: none owed
    _snapshots_owed: set[str]  # month keys whose snapshot is due
    _catch_up: str | None  # the month a start owes, if the ledger had cases
    _snapshot_retry_at: float

    # --- delivery of the outbox ----------------------------------------------------------

    def _deliver(self) -> None:
        """A run of the dispatcher; one at a time, a run still sending lets this tick go."""
        if self.dispatcher is None or self.stopping.is_set():
            return
        if not self._deliver_lock.acquire(blocking=False):
            return
        try:
            self.dispatcher.run_once()
        except Exception as exc:  # retried at the next tick
            logger.bind(action="deliver").warning(
                "delivery failed ({error}); retrying in {delay:.0f}s",
                error=_first_line(exc), delay=self.deliver_interval,
            )  # fmt: skip
        finally:
            self._deliver_lock.release()

    # --- the monthly snapshot ------------------------------------------------------------

    def _owe_snapshot(self) -> None:
        """The cron job: the month ending now owes its snapshot; the next pass takes it."""
        self._snapshots_owed.add(self.engine.now().astimezone(self.engine.tz).strftime("%Y-%m"))

    def _take_snapshots(self) -> None:
        """Each owed month's snapshot, and its quarter's from the same figures when it ends
        one; once per period however many schedulers run (the store refuses a second)."""
        from rectiflow.app.reports import quarter_snapshots
        from rectiflow.engine.errors import AlreadyTaken

        for month in sorted(self._snapshots_owed):
            if month == self._catch_up and not self._had_cases_in(month):
                self._snapshots_owed.discard(month)  # a ledger younger than the month
                continue
            try:
                for period, source in (
                    (month, None),
                    *((q, month) for q in quarter_snapshots(month)),
                ):
                    try:
                        self.engine.snapshot(period, taken_by="daemon", from_period=source)
                        logger.bind(action="snapshot").info(
                            "snapshot {period} taken", period=period
                        )
                    except AlreadyTaken:
                        pass
            except Exception as exc:  # retried by a later pass: a period must not be skipped
                self._snapshot_retry_at = time.monotonic() + self.max_interval
                logger.bind(action="snapshot").warning(
                    "snapshot {month} failed ({error}); retrying in {delay:.0f}s",
                    month=month, error=_first_line(exc), delay=self.max_interval,
                )  # fmt: skip
                return
            self._snapshots_owed.discard(month)

    def _had_cases_in(self, month: str) -> bool:
        """Whether a case was open before the month ended: a fresh ledger owes no snapshot
        of a month it did not exist in."""
        from rectiflow.engine.periods import month_end_moment

        year, number = (int(part) for part in month.split("-"))
        end = month_end_moment(year, number, self.engine.tz)
        return bool(self.engine.store.find_cases(limit=1, opened_before=end))

    # --- the monthly dispatch -------------------------------------------------------------

    def _owe_dispatch(self) -> None:
        """The cron job: the next pass runs the dispatch (and retries it until it is done)."""
        self._dispatch_owed_at = 0.0

    def _dispatch(self) -> None:
        now = self.engine.now()
        try:
            self.engine.dispatch_reminders(now, roles=self.dispatch_roles)
        except Exception as exc:  # retried by a later pass: a month must not be skipped
            self._dispatch_owed_at = time.monotonic() + self.max_interval
            logger.bind(action="dispatch").warning(
                "monthly dispatch failed ({error}); retrying in {delay:.0f}s",
                error=_first_line(exc), delay=self.max_interval,
            )  # fmt: skip
        else:
            self._dispatch_owed_at = None


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, StoreUnavailable) and isinstance(exc.__cause__, DBAPIError):
        exc = exc.__cause__
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
