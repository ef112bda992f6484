"""``outbox`` (what was sent to whom, and what failed) and ``notify`` (channels tried out
and their configuration checked): the operators' side of delivery."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rectiflow.cli.common import (
    MAX_ID,
    JsonOption,
    print_json,
    read_text,
    stamp,
    table,
    with_engine,
)
from rectiflow.engine.errors import NotFound, UsageError, ValidationError

if TYPE_CHECKING:
    from rectiflow.app import Engine
    from rectiflow.notify.config import NotifyConfig

outbox_app = typer.Typer(
    help="The outbox: deliveries, their attempts, retries.", rich_markup_mode=None
)
notify_app = typer.Typer(
    help="Delivery channels: test one, check the config.", rich_markup_mode=None
)

STATUSES = ("pending", "retrying", "sent", "dead")
ConfigFile = Annotated[
    Path,
    typer.Option(
        "--notify-config", envvar="RECTIFLOW_NOTIFY", metavar="FILE",
        help="The channels (YAML; see README).",
    ),
]  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(outbox_app, name="outbox", rich_help_panel="Run and check")
    app.add_typer(notify_app, name="notify", rich_help_panel="Run and check")


@outbox_app.command("list")
@with_engine
def outbox_list(
    engine: Engine,
    status: Annotated[
        str | None, typer.Option(help="With a delivery pending, retrying, sent or dead.")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Only what went to this person.")] = None,
    level: Annotated[
        str | None, typer.Option(help="remind, warn, supervise, ..., lookback.")
    ] = None,
    case: Annotated[int | None, typer.Option(min=0, max=MAX_ID, help="Of this case.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, max=MAX_ID, help="At most this many.")] = None,
    json: JsonOption = False,
) -> None:
    """The outbox by id: one row per person told of a ladder level, a look-back or the
    monthly dispatch, with how its deliveries stand (one per channel; none before the
    delivery job has seen it, or when no channel takes it).

    Example: rectiflow outbox list --actor 李强 --level warn
    """
    if status is not None and status not in STATUSES:
        raise UsageError(f"--status {status}: use one of {', '.join(STATUSES)}")
    store: Any = engine.store
    has_deliveries = hasattr(store, "deliveries_of")
    if status is not None:
        if not has_deliveries:
            raise UsageError("--status needs a SQL database (SQLite or PostgreSQL)")
        found = store.list_deliveries(status=status, recipient=actor, level=level)
        wanted = {n.id for d, n in found if case is None or n.case_id == case}
        notes = [n for n, _ in store.notifications_of(sorted(wanted)).values()][:limit]
        notes.sort(key=lambda n: n.id)
    else:
        notes = engine.list_notifications(case_id=case, actor=actor, level=level, limit=limit)
    deliveries = store.deliveries_of([n.id for n in notes]) if has_deliveries else {}
    rows = [_notification_json(n, deliveries.get(n.id, []), engine) for n in notes]
    if json:
        print_json(rows)
        return
    if not rows:
        print("nothing in the outbox")
        return
    out = table("id", "case", "level", "to", "role", "created", "deliveries")
    for row in rows:
        out.add_row(
            str(row["id"]), str(row["case"]), row["level"] or row["kind"],
            row["actor"] or "(nobody holds the role)", row["role"],
            stamp(row["created_at"], engine),
            ", ".join(f"{d['channel']} {d['status']} #{d['id']}" for d in row["deliveries"])
            or "—",
        )  # fmt: skip
    out.print()


def _notification_json(note: Any, deliveries: list[Any], engine: Engine) -> dict[str, Any]:
    return {
        "id": note.id, "case": note.case_id, "kind": note.kind, "level": note.level,
        "actor": note.actor, "role": note.role, "created_at": stamp(note.created_at, engine),
        "key": note.key,
        "deliveries": [_delivery_json(d, None, engine) for d in deliveries],
    }  # fmt: skip


@outbox_app.command("show")
@with_engine
def outbox_show(
    engine: Engine,
    delivery_id: Annotated[int, typer.Argument(metavar="ID", min=0, max=MAX_ID)],
    json: JsonOption = False,
) -> None:
    """One delivery with every attempt (time, outcome, HTTP code or SMTP reply, error).

    Example: rectiflow outbox show 42
    """
    found = _store(engine).get_delivery(delivery_id)
    if found is None:
        raise NotFound("delivery", delivery_id)
    d, attempts = found
    data = {
        **_delivery_json(d, None, engine),
        "attempts": [
            {"at": stamp(a.at, engine), "outcome": a.outcome, "code": a.code, "detail": a.detail}
            for a in attempts
        ],
    }
    if json:
        print_json(data)
        return
    for key in ("id", "key", "channel", "recipient", "role", "status", "attempts_made",
                "next_attempt_at", "sent_at", "last_error"):  # fmt: skip
        if data.get(key) is not None:
            print(f"{key:16} {data[key]}")
    for a in data["attempts"]:
        print(f"  {a['at']}  {a['outcome']:9} {a['code'] or '—':6} {a['detail']}")


@outbox_app.command("retry")
@with_engine
def outbox_retry(
    engine: Engine,
    delivery_id: Annotated[int | None, typer.Argument(metavar="[ID]", min=0, max=MAX_ID)] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Every dead delivery.")] = False,
) -> None:
    """Send a delivery again now, with a fresh retry schedule (or every dead one).

    Example: rectiflow outbox retry --dead
    """
    if (delivery_id is None) == (not dead):
        raise UsageError("give a delivery ID or --dead (one of them)")
    count = _store(engine).retry_deliveries(None if dead else [delivery_id], engine.now())
    if delivery_id is not None and count == 0:
        raise NotFound("delivery (not sent yet)", delivery_id)
    print(f"{count} deliveries due again")


@notify_app.command("test")
@with_engine
def notify_test(
    engine: Engine,
    channel: Annotated[str, typer.Argument(metavar="CHANNEL")],
    to: Annotated[str, typer.Option("--to", metavar="NAME", help="The actor to send it to.")],
    config_file: ConfigFile,
) -> None:
    """Send one test message on a channel and print what came back.

    Example: rectiflow notify test ops --to 督办员 --notify-config notify.yaml
    """
    from rectiflow.notify.dispatcher import Dispatcher

    dispatcher = Dispatcher(engine, _config(config_file))
    try:
        result = dispatcher.test(channel, to)
    finally:
        dispatcher.close()
    print(f"{channel}: {result.outcome} {result.code or ''} {result.detail}".rstrip())
    if result.outcome != "delivered":
        raise typer.Exit(1 if result.outcome == "retry" else 2)


@notify_app.command("check")
def notify_check(
    config_file: ConfigFile,
    probe: Annotated[
        bool, typer.Option("--probe", help="Also try to connect to each host (3 s each).")
    ] = False,
) -> None:
    """Check a channels file: unknown keys, secrets missing from the environment, bad
    values, and with --probe hosts that do not answer; each as FILE:LINE.

    Example: rectiflow notify check --notify-config notify.yaml --probe
    """
    import os

    from rectiflow.notify.config import check_config

    problems = check_config(
        read_text(config_file, "notify config"), str(config_file), os.environ, probe=probe
    )
    for problem in problems:
        print(problem)
    if problems:
        raise ValidationError(f"{config_file}: {len(problems)} problem(s)")
    print(f"{config_file}: ok")


def _config(path: Path) -> NotifyConfig:
    from rectiflow.notify.config import load_config

    return load_config(read_text(path, "notify config"), str(path))


def _store(engine: Engine) -> Any:
    if not hasattr(engine.store, "list_deliveries"):
        raise UsageError("the outbox needs a SQL database (SQLite or PostgreSQL)")
    return engine.store


def _delivery_json(d: Any, note: Any, engine: Engine) -> dict[str, Any]:
    data = {
        "id": d.id, "key": d.key, "channel": d.channel, "recipient": d.recipient,
        "role": d.role, "status": d.status, "attempts_made": d.attempts,
        "next_attempt_at": stamp(d.next_attempt_at, engine) if d.status != "sent" else None,
        "sent_at": stamp(d.sent_at, engine) if d.sent_at else None,
        "last_code": d.last_code, "last_error": d.last_error, "digest": d.digest,
    }  # fmt: skip
    if note is not None:
        data.update({"case_id": note.case_id, "event": note.kind, "level": note.level})
    return data
