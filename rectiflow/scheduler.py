"""APScheduler wiring: the deadline sweep, the cron jobs and the daemon loop.

The sweep is one job in a memory job store (registered at every start, nothing pickled).
It re-schedules itself for the next due level, at most ``max_interval`` seconds ahead; a
cheap watcher (one indexed ``MIN`` query) pulls it earlier when another process opens or
moves a case whose level is due sooner. Deadlines themselves are rows, so a crash loses
nothing: the next sweep records whatever came due meanwhile, once (unique keys).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from loguru import logger
from sqlalchemy.exc import DBAPIError

if TYPE_CHECKING:
    from rectiflow.app import Engine

DEFAULT_DISPATCH_CRON = "0 9 25 * *"  # monthly dispatch: the 25th at 09:00 local time
SWEEP = "sweep"


class Scheduler:
    """The jobs of a rectiflow daemon, for a Blocking (daemon) or Background (embedded)
    APScheduler. It is handed an Engine; it does not build one."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_interval: float = 60.0,
        watch_interval: float = 1.0,
        batch_size: int = 500,
        dispatch_cron: str | None = None,
        dispatch_roles: tuple[str, ...] = ("owner",),
    ) -> None:
        self.engine = engine
        self.max_interval = max_interval
        self.watch_interval = watch_interval
        self.batch_size = batch_size
        self.dispatch_cron = dispatch_cron or os.environ.get(
            "RECTIFLOW_DISPATCH_CRON", DEFAULT_DISPATCH_CRON
        )
        self.dispatch_roles = dispatch_roles
        self.stopping = threading.Event()
        self._failures = 0
        self._next_sweep: dt.datetime | None = None
        self._lock = threading.Lock()
        self._stop_lock = threading.Lock()  # the stopper thread and the start listener
        self.aps: BaseScheduler | None = None

    # --- wiring ---------------------------------------------------------------------------

    def _configure(self, aps: BaseScheduler) -> BaseScheduler:
        aps.configure(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=self.engine.tz,
        )
        aps.add_job(
            self._sweep, DateTrigger(run_date=self.engine.now()), id=SWEEP, name="deadline sweep"
        )
        aps.add_job(
            self._watch, IntervalTrigger(seconds=self.watch_interval), id="watch",
            name="watch for earlier deadlines",
        )  # fmt: skip
        dispatch = CronTrigger.from_crontab(self.dispatch_cron, timezone=self.engine.tz)
        aps.add_job(self._dispatch, dispatch, id="dispatch", name="monthly dispatch reminder")
        # A daemon that was down when this month's dispatch came due catches up at start;
        # the rows' keys hold the month, so a dispatch already written is not written twice.
        now = self.engine.now().astimezone(self.engine.tz)
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        first_this_month = dispatch.get_next_fire_time(None, month_start)
        if first_this_month is not None and first_this_month <= now:
            aps.add_job(self._dispatch, DateTrigger(run_date=now), id="dispatch-catch-up")
        self.aps = aps
        return aps

    def start_background(self) -> None:
        self._configure(BackgroundScheduler(daemon=True)).start()
        logger.bind(action="scheduler").info("scheduler started in the background")

    def run_blocking(self) -> None:
        logger.bind(action="scheduler").info(
            "daemon started: sweep at most {cap}s apart, dispatch cron '{cron}'",
            cap=self.max_interval, cron=self.dispatch_cron,
        )  # fmt: skip
        aps = self._configure(BlockingScheduler())
        # A signal that comes while the scheduler starts finds it not running, and stop()
        # does nothing then: stop as soon as it runs instead of losing the signal.
        aps.add_listener(self._stop_if_asked, EVENT_SCHEDULER_STARTED)
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

    # --- jobs -----------------------------------------------------------------------------

    def _sweep(self) -> None:
        if self.stopping.is_set():
            return
        now = self.engine.now()
        try:
            summary = self.engine.escalate_due(
                now, batch_size=self.batch_size, should_stop=self.stopping.is_set
            )
        except Exception as exc:
            # An unreachable or locked database is retried with backoff; so is anything
            # else, logged with its traceback: a daemon that stops sweeping is worse.
            self._failures += 1
            delay = min(self.max_interval, 2.0 ** min(self._failures, 6))
            log = logger.bind(action="sweep")
            if isinstance(exc, DBAPIError):
                error = str(exc.orig or exc).splitlines()[0]
                log.warning("sweep failed ({error}); retrying in {delay:.0f}s (attempt {n})",
                            error=error, delay=delay, n=self._failures)  # fmt: skip
            else:
                log.exception("sweep failed; retrying in {delay:.0f}s", delay=delay)
            self._schedule_sweep(now + dt.timedelta(seconds=delay))
            return
        self._failures = 0
        if summary.fired:
            logger.bind(action="sweep").info(
                "sweep: {fired} escalations on {cases} cases",
                fired=summary.fired,
                cases=summary.cases,
            )
        self._schedule_sweep(self._next_run(now, summary.next_due_at))

    def _next_run(self, now: dt.datetime, due: dt.datetime | None) -> dt.datetime:
        cap = now + dt.timedelta(seconds=self.max_interval)
        return cap if due is None else max(now, min(due, cap))

    def _schedule_sweep(self, at: dt.datetime) -> None:
        if self.stopping.is_set() or self.aps is None:
            return
        with self._lock:
            self._next_sweep = at
            self.aps.add_job(
                self._sweep, DateTrigger(run_date=at), id=SWEEP, name="deadline sweep",
                replace_existing=True,
            )  # fmt: skip

    def _watch(self) -> None:
        """Pull the sweep earlier when a level now comes due before it is scheduled."""
        if self.stopping.is_set():
            return
        try:
            due = self.engine.next_due_at()
        except DBAPIError:
            return  # the sweep's own retry logs and backs off
        scheduled = self._next_sweep
        if due is not None and scheduled is not None and due < scheduled:
            self._schedule_sweep(max(due, self.engine.now()))

    def _dispatch(self) -> None:
        if self.stopping.is_set():
            return
        now = self.engine.now()
        try:
            self.engine.dispatch_reminders(now, roles=self.dispatch_roles)
        except Exception as exc:  # retried: a month must not be skipped for a blip
            logger.bind(action="dispatch").warning(
                "monthly dispatch failed ({error}); retrying in {delay:.0f}s",
                error=str(exc).splitlines()[0], delay=self.max_interval,
            )  # fmt: skip
            if self.aps is not None:
                retry = now + dt.timedelta(seconds=self.max_interval)
                self.aps.add_job(
                    self._dispatch, DateTrigger(run_date=retry), id="dispatch-retry",
                    replace_existing=True,
                )  # fmt: skip


def configure_logging(*, log_json: bool = False, level: str = "INFO") -> None:
    """Sinks for the daemon and the CLI: plain lines, or JSON lines for the journal."""
    logger.remove()
    logger.enable("rectiflow")
    if log_json:
        logger.add(sys.stderr, level=level, serialize=True)
    else:
        logger.add(
            sys.stderr, level=level,
            format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} {message} {extra}",
        )  # fmt: skip


def run_daemon(engine: Engine, *, log_json: bool = False, **options: Any) -> int:
    """Run the scheduler in the foreground until SIGTERM or SIGINT; return the exit code.

    The first signal finishes the batch in hand and exits 0; a second exits at once.
    """
    configure_logging(log_json=log_json)
    scheduler = Scheduler(engine, **options)

    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Flags only: the handler runs on the main thread between two bytecodes, perhaps
        # while it holds a lock (loguru's, the executor's) that logging or a shutdown here
        # would wait for forever. The stopper thread does the work.
        if received:
            os._exit(128 + signum)
        received.append(signum)
        scheduler.stopping.set()

    def stop_when_signalled() -> None:
        scheduler.stopping.wait()
        logger.bind(action="daemon").info(
            "{sig}: finishing the batch in hand, then exiting", sig=signal.Signals(received[0]).name
        )
        scheduler.stop(wait=True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=stop_when_signalled, name="stopper", daemon=True).start()
    scheduler.run_blocking()
    logger.bind(action="daemon").info("daemon stopped")
    return 0
