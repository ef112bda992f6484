"""APScheduler wiring: the deadline sweep, the monthly dispatch, and what keeps them coming.

Liveness is built in, not left to timing:

- The sweep is an *interval* job that ticks every ``tick`` seconds (1 s). An interval job
  always has a next run, so APScheduler never drops it: a tick that is skipped (the last
  one still running), late (the machine loaded) or that raised is followed by the next
  tick. (A self-rescheduling one-shot job, as before, is removed for good when APScheduler
  skips it.)
- Each tick is a *pass*: one indexed ``MIN`` tells whether a ladder level is due on the
  engine's clock; if one is, or ``max_interval`` passed since the last full sweep, the pass
  sweeps. Due times are compared on the engine's clock and the ticks are spaced on the
  wall clock, so an engine clock with an offset or a jump still sweeps at the right
  moment, and never spins.
- A pass catches every error: a database error backs off (2, 4, … up to ``max_interval``
  seconds) and is retried; anything else is logged with its traceback and retried too.
- A supervisor thread, outside APScheduler, watches the passes on the monotonic clock. A
  pass stuck longer than ``stall_timeout`` without progress (a frozen database server) has
  its connections cut off, which turns the hang into an error the pass retries; ticks that
  stop arriving (the wall clock set back, say) are re-armed.

Hence the bound: while a level is due, a sweep starts at most ``tick`` after the previous
pass ended; a pass ends within ``stall_timeout`` of its last progress; after a database
error the next try is at most ``max_interval`` away.

The jobs beside the sweep (the outbox delivery, the monthly snapshot and dispatch) are
``SchedulerJobs`` in scheduler_jobs.py, the base of ``Scheduler``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from loguru import logger
from sqlalchemy.exc import DBAPIError

from rectiflow.engine.errors import StoreUnavailable, ValidationError
from rectiflow.engine.types import DaemonBeat
from rectiflow.scheduler_jobs import SchedulerJobs, _first_line

if TYPE_CHECKING:
    from rectiflow.app import Engine
    from rectiflow.notify.dispatcher import Dispatcher

# Database errors back off and are logged as warnings: the store raises StoreUnavailable
# (StoreBusy), and SQLAlchemy's own where a query bypasses the store's boundary.
_DATABASE_ERRORS = (DBAPIError, StoreUnavailable)
DEFAULT_DISPATCH_CRON = "0 9 25 * *"  # monthly dispatch: the 25th at 09:00 local time
SWEEP = "sweep"
EXECUTOR = "rectiflow"  # its own executor, so its own logger (apscheduler.executors.rectiflow)

PassHook = Callable[[bool], None]  # called after every pass: did it end without an error?


class Scheduler(SchedulerJobs):
    """The jobs of a rectiflow daemon, for a Blocking (daemon) or Background (embedded)
    APScheduler. It is handed an Engine; it does not build one."""

    def __init__(
        self,
        engine: Engine,
        *,
        tick: float = 1.0,
        max_interval: float = 60.0,
        stall_timeout: float = 30.0,
        max_lag: float = 120.0,
        beat_interval: float = 5.0,
        batch_size: int = 500,
        dispatch_cron: str = DEFAULT_DISPATCH_CRON,
        dispatch_roles: tuple[str, ...] = ("owner",),
        on_pass: PassHook | None = None,
        dispatcher: Dispatcher | None = None,
        deliver_interval: float = 5.0,
    ) -> None:
        self.engine = engine
        self.tick = tick
        self.max_interval = max_interval
        self.stall_timeout = stall_timeout
        self.max_lag = max_lag
        self.beat_interval = beat_interval
        self.batch_size = batch_size
        self.dispatch_cron = dispatch_cron
        try:  # refused here, before anything starts, not when the job is added
            CronTrigger.from_crontab(dispatch_cron, timezone=engine.tz)
        except ValueError as exc:
            raise ValidationError(
                f"dispatch cron {dispatch_cron!r} (RECTIFLOW_DISPATCH_CRON) is not a crontab "
                f"expression (minute hour day month weekday): {exc}"
            ) from None
        self.dispatch_roles = dispatch_roles
        self.on_pass = on_pass
        self.dispatcher = dispatcher
        self.deliver_interval = deliver_interval
        self._deliver_lock = threading.Lock()
        self.stopping = threading.Event()
        self.aps: BaseScheduler | None = None
        self.beat: DaemonBeat | None = None
        # What the passes share with the supervisor; monotonic seconds unless named *_at.
        self._pass_lock = threading.Lock()
        self._pass_thread: int | None = None
        self._pass_progress: float | None = None  # start of the running pass, or its last batch
        self._cut_off = False
        self._last_tick = time.monotonic()
        self._last_full = -max_interval
        self._last_saved = -beat_interval
        self._failures = 0
        self._retry_at = 0.0
        self._lag_logged = -60.0
        self._dispatch_owed_at: float | None = None  # monotonic; None: none owed
        self._snapshots_owed: set[str] = set()  # month keys whose snapshot is due
        self._catch_up: str | None = None  # the month a start owes, if the ledger had cases
        self._snapshot_retry_at = 0.0
        self._stop_lock = threading.Lock()  # the stopper thread and the start listener
        # APScheduler logs every run of a job at INFO: once a second here, so only warnings.
        logging.getLogger(f"apscheduler.executors.{EXECUTOR}").setLevel(logging.WARNING)

    # --- wiring ---------------------------------------------------------------------------

    def _configure(self, aps: BaseScheduler) -> BaseScheduler:
        aps.configure(
            jobstores={"default": MemoryJobStore()},
            executors={EXECUTOR: ThreadPoolExecutor(4)},
            # Two instances of the sweep may be submitted: a tick that finds the last pass
            # still running returns at once (below), instead of APScheduler logging a skip.
            job_defaults={"coalesce": True, "max_instances": 2, "misfire_grace_time": None},
            timezone=self.engine.tz,
        )
        aps.add_job(
            self._pass, IntervalTrigger(seconds=self.tick), id=SWEEP, name="deadline sweep",
            executor=EXECUTOR, next_run_time=dt.datetime.now(self.engine.tz),
        )  # fmt: skip
        if self.dispatcher is not None:  # beside the sweep: a slow endpoint never holds it up
            aps.add_job(
                self._deliver, IntervalTrigger(seconds=self.deliver_interval), id="deliver",
                name="outbox delivery", executor=EXECUTOR,
                next_run_time=dt.datetime.now(self.engine.tz),
            )  # fmt: skip
        dispatch = CronTrigger.from_crontab(self.dispatch_cron, timezone=self.engine.tz)
        aps.add_job(
            self._owe_dispatch, dispatch, id="dispatch", name="monthly dispatch reminder",
            executor=EXECUTOR, max_instances=1,
        )  # fmt: skip
        # A scheduler that was down when this month's dispatch came due catches up at start;
        # the rows' keys hold the month, so a dispatch already written is not written twice.
        now = self.engine.now().astimezone(self.engine.tz)
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        first_this_month = dispatch.get_next_fire_time(None, month_start)
        if first_this_month is not None and first_this_month <= now:
            self._dispatch_owed_at = 0.0  # the first pass runs it
        # The month's snapshot at 23:59 local on its last day (a quarter's with it); a month
        # that ended while no scheduler ran is caught up by the first pass.
        month_end = CronTrigger(day="last", hour=23, minute=59, timezone=self.engine.tz)
        aps.add_job(
            self._owe_snapshot, month_end, id="snapshot", name="monthly snapshot",
            executor=EXECUTOR, max_instances=1,
        )  # fmt: skip
        last_month = (month_start - dt.timedelta(days=1)).strftime("%Y-%m")
        self._snapshots_owed.add(last_month)
        self._catch_up = last_month
        self.aps = aps
        return aps

    def _register(self) -> None:
        """The heartbeat row; a database that is down now gets it at a later pass."""
        try:
            self.engine.store.forget_daemons(self.engine.now() - dt.timedelta(days=30))
            self.beat = self.engine.store.register_daemon(
                socket.gethostname(), os.getpid(), self.engine.now()
            )
        except _DATABASE_ERRORS as exc:
            logger.bind(action="heartbeat").warning(
                "cannot register the heartbeat yet ({error})", error=_first_line(exc)
            )

    def start_background(self) -> None:
        self._register()
        self._configure(BackgroundScheduler(daemon=True)).start()
        self._start_supervisor()
        logger.bind(action="scheduler").info("scheduler started in the background")

    def run_blocking(self) -> None:
        self._register()
        logger.bind(action="scheduler").info(
            "daemon started: a sweep pass every {tick}s, a full sweep at least every {cap}s, "
            "dispatch cron '{cron}'",
            tick=self.tick, cap=self.max_interval, cron=self.dispatch_cron,
        )  # fmt: skip
        aps = self._configure(BlockingScheduler())
        # A signal that comes while the scheduler starts finds it not running, and stop()
        # does nothing then: stop as soon as it runs instead of losing the signal.
        aps.add_listener(self._stop_if_asked, EVENT_SCHEDULER_STARTED)
        self._start_supervisor()
        aps.start()

    def _stop_if_asked(self, _event: object) -> None:
        if self.stopping.is_set():
            self.stop(wait=False)

    def stop(self, *, wait: bool = True) -> None:
        """Finish the batch in hand, then stop."""
        self.stopping.set()
        with self._stop_lock:
            if self.aps is not None and self.aps.running:
                # APScheduler 3 marks itself stopped before it takes its locks, and a pass of
                # its loop still at work then fails to find the job it has just run: pause,
                # wait that pass out (it holds the job stores' lock), then shut down.
                self.aps.pause()
                self.aps.get_jobs()
                self.aps.shutdown(wait=wait)
                self._save_last_beat()

    def _save_last_beat(self) -> None:
        """Mark the heartbeat stopped, unless the database keeps us waiting (it may be why
        we stop): a helper thread, waited for a few seconds at most."""
        if self.beat is None:
            return
        beat = replace(self.beat, beat_at=self.engine.now(), stopped_at=self.engine.now())
        saver = threading.Thread(target=self._save, args=(beat,), name="last-beat", daemon=True)
        saver.start()
        saver.join(timeout=5)

    # --- the sweep ------------------------------------------------------------------------

    def _pass(self) -> None:
        """One tick: sweep if a level is due (or a full sweep is owed), then the dispatch if
        one is owed. Both run here, under the supervisor's eye."""
        self._last_tick = time.monotonic()
        if self.stopping.is_set() or not self._pass_lock.acquire(blocking=False):
            return  # stopping, or the previous pass still runs: the next tick comes anyway
        self._pass_thread = threading.get_ident()
        self._pass_progress = time.monotonic()
        self._cut_off = False
        try:
            if time.monotonic() >= self._retry_at:
                ok = self._sweep_once()
                if self.on_pass is not None:
                    self.on_pass(ok)
            owed = self._dispatch_owed_at
            if owed is not None and time.monotonic() >= owed and not self.stopping.is_set():
                self._pass_progress = time.monotonic()
                self._dispatch()
            if self._snapshots_owed and time.monotonic() >= self._snapshot_retry_at:
                self._pass_progress = time.monotonic()
                self._take_snapshots()
        finally:
            self._pass_progress = None
            self._pass_lock.release()

    def _sweep_once(self) -> bool:
        started = self.engine.now()
        recorded = 0
        try:
            due = self.engine.next_due_at()
            mono = time.monotonic()
            if (due is not None and due <= started) or mono - self._last_full >= self.max_interval:
                self._warn_if_behind(started, due)
                summary = self.engine.escalate_due(
                    started, batch_size=self.batch_size, should_stop=self._batch_done
                )
                self._last_full = mono
                recorded = summary.fired
                if summary.fired:
                    logger.bind(action="sweep").info(
                        "sweep: {fired} escalations on {cases} cases",
                        fired=summary.fired, cases=summary.cases,
                    )  # fmt: skip
            self._failures = 0
            self._heartbeat(started, recorded)
        except Exception as exc:
            self._failed(exc, started)
            return False
        return True

    def _batch_done(self) -> bool:
        """Between two batches of a sweep: progress (for the supervisor), and stop if asked."""
        self._pass_progress = time.monotonic()
        return self.stopping.is_set()

    def _warn_if_behind(self, now: dt.datetime, due: dt.datetime | None) -> None:
        if due is None or time.monotonic() - self._lag_logged < 60:
            return
        lag = (now - due).total_seconds()
        if lag > self.max_lag:
            self._lag_logged = time.monotonic()
            logger.bind(action="sweep", lag=round(lag, 1)).error(
                "sweep behind: a level due at {due} is still unrecorded, {lag:.0f}s late",
                due=due.isoformat(), lag=lag,
            )  # fmt: skip

    def _failed(self, exc: Exception, started: dt.datetime) -> None:
        # An unreachable, frozen or locked database is retried with backoff; so is anything
        # else, logged with its traceback: a daemon that stops sweeping is worse.
        self._failures += 1
        delay = min(self.max_interval, 2.0 ** min(self._failures, 6))
        self._retry_at = time.monotonic() + delay
        error = _first_line(exc)
        if self._cut_off:
            error = f"no answer from the database for {self.stall_timeout:.0f}s ({error})"
        log = logger.bind(action="sweep")
        if isinstance(exc, _DATABASE_ERRORS):
            log.warning("sweep failed ({error}); retrying in {delay:.0f}s (attempt {n})",
                        error=error, delay=delay, n=self._failures)  # fmt: skip
        else:
            log.exception("sweep failed; retrying in {delay:.0f}s", delay=delay)
        if self.beat is not None:
            self.beat = replace(self.beat, last_error=error[:500], last_error_at=started)
            self._last_saved = -self.beat_interval  # say so at the next pass that can

    def _heartbeat(self, started: dt.datetime, recorded: int) -> None:
        """Keep this pass in the heartbeat; write it at most every ``beat_interval`` seconds,
        unless the pass recorded levels."""
        if self.beat is None:
            self._register()
            if self.beat is None:
                return
        ended = self.engine.now()
        self.beat = replace(
            self.beat, beat_at=ended, sweep_started_at=started, sweep_ended_at=ended,
            levels_recorded=self.beat.levels_recorded + recorded,
        )  # fmt: skip
        if recorded or time.monotonic() - self._last_saved >= self.beat_interval:
            self._last_saved = time.monotonic()
            self._save(self.beat)

    def _save(self, beat: DaemonBeat) -> None:
        try:
            self.engine.store.save_beat(beat)
        except _DATABASE_ERRORS as exc:
            logger.bind(action="heartbeat").warning(
                "heartbeat not saved ({error})", error=_first_line(exc)
            )

    # --- the supervisor -------------------------------------------------------------------

    def _start_supervisor(self) -> None:
        threading.Thread(target=self._supervise, name="sweep-supervisor", daemon=True).start()

    def _supervise(self) -> None:
        while not self.stopping.wait(self.tick):
            try:
                self._check_stall()
                self._check_ticks()
            except Exception:  # the supervisor must outlive whatever it finds
                logger.bind(action="supervisor").exception("supervisor check failed")

    def _check_stall(self) -> None:
        progress, thread = self._pass_progress, self._pass_thread
        if progress is None or thread is None or self._cut_off:
            return
        stuck = time.monotonic() - progress
        if stuck < self.stall_timeout:
            return
        self._cut_off = True
        connections = getattr(self.engine.store, "connections", None)
        cut = connections.interrupt(thread) if connections is not None else 0
        logger.bind(action="sweep", lag=round(stuck, 1)).error(
            "sweep stuck: no answer from the database for {stuck:.0f}s; "
            "cut off {cut} connection(s), retrying like an outage",
            stuck=stuck, cut=cut,
        )  # fmt: skip

    def _check_ticks(self) -> None:
        silent = time.monotonic() - self._last_tick
        if silent < max(5.0, 5 * self.tick) or self._pass_progress is not None:
            return
        aps = self.aps
        if aps is None or not aps.running or self.stopping.is_set():
            return
        # APScheduler waits on the wall clock: set back, it would wait the difference out.
        logger.bind(action="supervisor", lag=round(silent, 1)).error(
            "no sweep tick for {silent:.0f}s; re-arming the sweep", silent=silent
        )
        self._last_tick = time.monotonic()
        aps.modify_job(SWEEP, next_run_time=dt.datetime.now(self.engine.tz))
