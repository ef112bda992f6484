"""What every command shares: the global settings, the opened Engine, and printing."""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rectiflow.app import Engine
from rectiflow.engine.errors import UsageError
from rectiflow.engine.types import Case, Light

# Markup stays off: titles such as "[紧急] ..." are data, not rich styles.
console = Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else 160)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@dataclass
class Settings:
    """The global options, filled by the root callback; opens the Engine on first use."""

    db: str = ""
    now: str | None = None
    debug: bool = False
    _engine: Engine | None = None

    @property
    def url(self) -> str:
        return db_url(self.db)

    def engine(self, ctx: typer.Context, *, create: bool = False) -> Engine:
        if self._engine is None:
            path = sqlite_path(self.url)
            if not create and path is not None and not path.exists():
                raise UsageError(
                    f"no database at {path}: run `rectiflow init` first (or pass --db)"
                )
            engine = Engine(self.url, tz=os.environ.get("RECTIFLOW_TZ"))
            if self.now is not None:
                fixed = parse_time(self.now, engine, "--now")
                engine.clock = lambda: fixed
            self._engine = engine
            ctx.find_root().call_on_close(engine.close)
        return self._engine


def db_url(value: str) -> str:
    """A URL as given, or a bare file path taken as a SQLite file."""
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def with_engine(
    command: Callable[..., Any] | None = None, *, create: bool = False
) -> Callable[..., Any]:
    """Hand the opened Engine to a command as its first argument.

    typer reads the signature to build the options, so the wrapper shows the command's
    own parameters behind a ``ctx`` (which typer fills) instead of ``engine``.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(ctx: typer.Context, *args: Any, **kwargs: Any) -> Any:
            return func(ctx.obj.engine(ctx, create=create), *args, **kwargs)

        params = list(inspect.signature(func, eval_str=True).parameters.values())[1:]
        ctx_param = inspect.Parameter(
            "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
        )
        wrapper.__signature__ = inspect.Signature([ctx_param, *params])  # type: ignore[attr-defined]
        return wrapper

    return decorate(command) if command is not None else decorate


# --- parsing arguments ----------------------------------------------------------------------


def parse_time(value: str, engine: Engine, what: str) -> dt.datetime:
    """An ISO-8601 time; without an offset it is local time. Returned in UTC."""
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{what}: not an ISO-8601 time: {value!r}") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=engine.tz)
    return at.astimezone(dt.UTC)


def parse_due(value: str | None, engine: Engine) -> dt.date | dt.datetime | None:
    """A date (due at the end of that local day) or an ISO-8601 time."""
    if value is None:
        return None
    if "T" in value or " " in value:
        return parse_time(value, engine, "--due")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--due: not a date (YYYY-MM-DD): {value!r}") from None


def split_version(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION``."""
    name, _, version = ref.partition("@")
    if not version:
        return name, None
    if not version.isdigit():
        raise UsageError(f"bad workflow reference {ref!r}: expected NAME or NAME@VERSION")
    return name, int(version)


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read {what} {path}: {reason}") from None


# --- printing -------------------------------------------------------------------------------


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def stamp(at: dt.datetime | str | None, engine: Engine) -> str:
    """ISO-8601 in the engine's local time, to the second, with the offset."""
    if at is None:
        return "—"
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    return at.astimezone(engine.tz).isoformat(timespec="seconds")


_LIGHT_STYLE = {"green": "bold green", "yellow": "bold yellow", "red": "bold red"}


def light_text(light: Light | str | None, paused: bool = False) -> Text:
    if paused:
        return Text("paused", style="cyan")
    if light is None:
        return Text("—")
    value = str(light)
    return Text(f"● {value}", style=_LIGHT_STYLE.get(value, ""))


def cell(value: object) -> Text:
    return Text("—" if value is None or value == "" else str(value))


def table(*columns: str, title: str | None = None) -> Table:
    result = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        result.add_column(column)
    return result


def state_label(engine: Engine, case: Case | dict[str, Any]) -> str:
    """``rectify 整改落实``: the state and its Chinese label."""
    if isinstance(case, dict):
        name, version, state = case["workflow"], case["workflow_version"], case["state"]
    else:
        name, version, state = case.workflow, case.workflow_version, case.state
    label = engine.workflow(name, version).states[state].labels.get("zh")
    return f"{state} {label}" if label else state


def case_table(engine: Engine, cases: Sequence[Case], *, title: str | None = None) -> Table:
    """The ledger: one row per case."""
    units = {u.code: u.name for u in engine.list_units()}
    now = engine.clock()
    result = table("case", "unit", "title", "severity", "state", "due", "light", title=title)
    for case in cases:
        result.add_row(
            cell(case.id), cell(units.get(case.unit, case.unit)), cell(case.title),
            cell(case.severity), cell(state_label(engine, case)),
            cell(stamp(case.due_at, engine) + (" ?" if case.due_provisional else "")),
            light_text(engine.light(case, now), case.paused_at is not None),
        )  # fmt: skip
    return result


def escalation_table(engine: Engine, case_ids: Iterable[int], *, title: str | None = None) -> Table:
    units = {u.code: u.name for u in engine.list_units()}
    result = table("case", "unit", "level", "stage", "due at", "fired at", title=title)
    for case_id in case_ids:
        case = engine.get_case(case_id)
        for esc in engine.escalations(case_id):
            result.add_row(
                cell(case_id), cell(units.get(case.unit, case.unit)), cell(esc.level),
                cell(esc.state), cell(stamp(esc.due_at, engine)), cell(stamp(esc.fired_at, engine)),
            )  # fmt: skip
    return result
