"""Running the engine as a service: the daemon, and the health check that watches it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rectiflow.cli.common import (
    JsonOption,
    print_json,
    read_text,
    say,
    stamp,
    table,
    with_engine,
)
from rectiflow.engine.errors import Unhealthy, UsageError

if TYPE_CHECKING:
    from rectiflow.app import Engine
    from rectiflow.engine.types import DaemonBeat, Health

RUN = "Run and check"


def register(app: typer.Typer) -> None:
    app.command("daemon", rich_help_panel=RUN)(daemon)
    app.command("health", rich_help_panel=RUN)(health)


def daemon(
    ctx: typer.Context,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Log JSON lines instead of text.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Cases claimed per sweep transaction.")
    ] = 500,
    tick: Annotated[
        float,
        typer.Option(min=0.05, metavar="SECONDS", help="How often a pass looks for due levels."),
    ] = 1.0,
    max_interval: Annotated[
        float,
        typer.Option(
            min=1, metavar="SECONDS", help="Longest wait between two full sweeps; longest backoff."
        ),
    ] = 60.0,
    stall_timeout: Annotated[
        float,
        typer.Option(
            min=1,
            metavar="SECONDS",
            help="Cut off a sweep that waits this long on the database, and retry.",
        ),
    ] = 30.0,
    max_lag: Annotated[
        float,
        typer.Option(min=1, metavar="SECONDS", help="Log an error when a due level waits longer."),
    ] = 120.0,
    notify_config: Annotated[
        Path | None,
        typer.Option(
            "--notify-config",
            envvar="RECTIFLOW_NOTIFY",
            metavar="FILE",
            help="Deliver the outbox on the channels of this file (YAML; see README).",
        ),
    ] = None,
) -> None:
    """Run the scheduler: the escalation sweep, the monthly dispatch and snapshot, and with
    --notify-config the delivery of the outbox, until SIGTERM.

    Runs on the real clock: --now / $RECTIFLOW_NOW are refused (use `escalate` to sweep at
    a chosen time). The monthly dispatch runs on $RECTIFLOW_DISPATCH_CRON (crontab syntax,
    local time; default "0 9 25 * *": the 25th at 09:00). Under systemd with Type=notify it
    reports READY and pings the watchdog after every sweep pass that completes.

    Example: rectiflow --db postgresql+psycopg://ledger@db/ledger daemon --log-json
    """
    settings = ctx.obj
    if settings.now is not None:
        raise UsageError(
            "the daemon runs on the real clock: unset --now/RECTIFLOW_NOW "
            "(`rectiflow --now ... escalate` sweeps at a chosen time)"
        )
    engine: Engine = settings.engine(ctx)
    from loguru import logger

    from rectiflow.cli.daemon import run_daemon  # APScheduler only loads for the daemon

    dispatcher = None
    if notify_config is not None:  # a bad file is refused before the daemon starts
        from rectiflow.notify.config import load_config
        from rectiflow.notify.dispatcher import Dispatcher

        config = load_config(read_text(notify_config, "notify config"), str(notify_config))
        dispatcher = Dispatcher(engine, config)
    logger.remove()  # the daemon sets up its own sinks
    try:
        code = run_daemon(
            engine, log_json=log_json, batch_size=batch_size, tick=tick,
            max_interval=max_interval, stall_timeout=stall_timeout, max_lag=max_lag,
            dispatcher=dispatcher,
        )  # fmt: skip
    finally:
        if dispatcher is not None:
            dispatcher.close()
    raise typer.Exit(code)


@with_engine
def health(
    engine: Engine,
    max_lag: Annotated[
        float,
        typer.Option(
            min=0,
            metavar="SECONDS",
            help="Unhealthy when a due level has waited longer, or no daemon swept for as long.",
        ),
    ] = 120.0,
    json_out: JsonOption = False,
) -> None:
    """Is the ledger being swept? Exit 0 when healthy, 8 when not: for cron, systemd timers
    and monitoring.

    Unhealthy when the oldest due ladder level has waited unrecorded longer than --max-lag,
    or no running daemon finished a sweep pass within --max-lag.

    Example: rectiflow health --max-lag 300 --json
    """
    report = engine.health()
    limit = dt.timedelta(seconds=max_lag)
    problems = []
    if report.lag > limit:
        problems.append(
            f"the oldest due level (due {stamp(report.oldest_due_at, engine)}) has waited "
            f"{report.lag.total_seconds():.0f}s unrecorded (limit {max_lag:.0f}s)"
        )
    if report.swept_ago is None:
        problems.append("no running daemon has recorded a sweep")
    elif report.swept_ago > limit:
        problems.append(
            f"no daemon has swept for {report.swept_ago.total_seconds():.0f}s "
            f"(limit {max_lag:.0f}s)"
        )
    if json_out:
        print_json(_health_json(report, engine, problems))
    else:
        _print_health(report, engine, problems)
    if problems:
        raise Unhealthy("unhealthy: " + "; ".join(problems))


def _health_json(report: Health, engine: Engine, problems: list[str]) -> dict[str, object]:
    def seconds(delta: dt.timedelta | None) -> float | None:
        return None if delta is None else round(delta.total_seconds(), 3)

    return {
        "healthy": not problems,
        "problems": problems,
        "as_of": stamp(report.as_of, engine),
        "lag_seconds": seconds(report.lag),
        "oldest_due_at": stamp(report.oldest_due_at, engine) if report.oldest_due_at else None,
        "last_sweep_seconds_ago": seconds(report.swept_ago),
        "undelivered": report.undelivered,
        "oldest_undelivered_at": (
            stamp(report.oldest_undelivered_at, engine) if report.oldest_undelivered_at else None
        ),
        "daemons": [_daemon_json(d, engine) for d in report.daemons],
    }


def _daemon_json(d: DaemonBeat, engine: Engine) -> dict[str, object]:
    def at(value: dt.datetime | None) -> str | None:
        return stamp(value, engine) if value is not None else None

    return {
        "id": d.id, "host": d.host, "pid": d.pid, "started_at": at(d.started_at),
        "beat_at": at(d.beat_at), "sweep_started_at": at(d.sweep_started_at),
        "sweep_ended_at": at(d.sweep_ended_at), "levels_recorded": d.levels_recorded,
        "last_error": d.last_error, "last_error_at": at(d.last_error_at),
        "stopped_at": at(d.stopped_at),
    }  # fmt: skip


def _print_health(report: Health, engine: Engine, problems: list[str]) -> None:
    if report.daemons:
        daemons = table("daemon", "host", "pid", "started", "last sweep", "levels", "last error")
        for d in report.daemons:
            daemons.add_row(
                d.id, d.host, d.pid, stamp(d.started_at, engine),
                "stopped " + stamp(d.stopped_at, engine) if d.stopped_at
                else stamp(d.sweep_ended_at, engine),
                d.levels_recorded, d.last_error,
            )  # fmt: skip
        daemons.print()
    else:
        say("no daemon seen in the last 7 days")
    say(f"as of {stamp(report.as_of, engine)}")
    say(f"lag of the oldest due level: {report.lag.total_seconds():.0f}s")
    if report.swept_ago is not None:
        say(f"last sweep: {report.swept_ago.total_seconds():.0f}s ago")
    say(
        f"undelivered notifications: {report.undelivered}"
        + (f", oldest {stamp(report.oldest_undelivered_at, engine)}" if report.undelivered else "")
    )
    say("healthy" if not problems else "UNHEALTHY")
