"""The daemon process: log sinks, signals, and systemd's notify protocol around a Scheduler.

The library configures no logging and reads no environment; this module does both for the
``rectiflow daemon`` process.
"""

from __future__ import annotations

import inspect
import logging
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType

from loguru import logger

from rectiflow.app import Engine
from rectiflow.notify.dispatcher import Dispatcher
from rectiflow.scheduler import DEFAULT_DISPATCH_CRON, Scheduler


class _ToLoguru(logging.Handler):
    """Standard-library records (APScheduler's) into loguru, so that every line of the
    daemon's log has one format: JSON lines stay JSON. The recipe from loguru's README."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame, depth = frame.f_back, depth + 1
        logger.bind(action="apscheduler", source=record.name).opt(
            depth=depth, exception=record.exc_info
        ).log(level, record.getMessage())


def configure_logging(*, log_json: bool = False, level: str = "INFO") -> None:
    """Sinks for the daemon: plain lines, or JSON lines for the journal."""
    logger.remove()
    logger.enable("rectiflow")
    if log_json:
        logger.add(sys.stderr, level=level, serialize=True)
    else:
        logger.add(
            sys.stderr, level=level,
            format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} {message} {extra}",
        )  # fmt: skip
    logging.basicConfig(handlers=[_ToLoguru()], level=logging.INFO, force=True)


class SystemdNotifier:
    """sd_notify(3) without libsystemd: datagrams to the socket in ``$NOTIFY_SOCKET``.

    READY=1 after the first sweep pass that completes; WATCHDOG=1 after each one that does
    (at most once a second), so that with ``WatchdogSec=`` systemd restarts a daemon whose
    sweeps stopped completing. Without ``$NOTIFY_SOCKET`` every call does nothing."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self.address = "\0" + address[1:] if address and address.startswith("@") else address
        self.ready = False
        self._last_ping = 0.0

    def send(self, message: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall(message.encode())
        except OSError as exc:  # systemd gone or the socket wrong: log, never stop sweeping
            logger.bind(action="systemd").warning("sd_notify failed: {error}", error=exc)

    def on_pass(self, ok: bool) -> None:
        if not ok:
            return
        if not self.ready:
            self.ready = True
            self.send("READY=1\nSTATUS=sweeping")
        elif time.monotonic() - self._last_ping >= 1.0:
            self._last_ping = time.monotonic()
            self.send("WATCHDOG=1")


def run_daemon(
    engine: Engine,
    *,
    log_json: bool = False,
    tick: float = 1.0,
    max_interval: float = 60.0,
    stall_timeout: float = 30.0,
    max_lag: float = 120.0,
    batch_size: int = 500,
    dispatcher: Dispatcher | None = None,
) -> int:
    """Run the scheduler in the foreground until SIGTERM or SIGINT; return the exit code.

    The first signal finishes the batch in hand and exits 0; a second exits at once.
    """
    configure_logging(log_json=log_json)
    notifier = SystemdNotifier()
    scheduler = Scheduler(
        engine, tick=tick, max_interval=max_interval, stall_timeout=stall_timeout,
        max_lag=max_lag, batch_size=batch_size, on_pass=notifier.on_pass,
        dispatch_cron=os.environ.get("RECTIFLOW_DISPATCH_CRON") or DEFAULT_DISPATCH_CRON,
        dispatcher=dispatcher,
    )  # fmt: skip

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
        notifier.send("STOPPING=1")
        scheduler.stop(wait=True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopper = threading.Thread(target=stop_when_signalled, name="stopper", daemon=True)
    stopper.start()
    scheduler.run_blocking()
    # The loop ends as soon as the stopper has shut the scheduler down; the stopper then
    # still marks the heartbeat stopped, which the process must not exit before.
    if scheduler.stopping.is_set():
        stopper.join(timeout=10)
    logger.bind(action="daemon").info("daemon stopped")
    return 0
