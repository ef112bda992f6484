"""What every command shares: the global settings, the opened Engine, and printing.

Importing this module must stay cheap: ``rectiflow --help`` loads it, so the Engine (and
with it SQLAlchemy), loguru and rich are imported only by the commands that use them.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rectiflow.engine.errors import StoreUnavailable, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from rectiflow.app import Engine
    from rectiflow.engine.types import Case, Escalation, Light

#: The largest id, version or count an argument may give: the database's 64-bit integer.
MAX_ID = 2**63 - 1

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AdminOption = Annotated[
    str | None,
    typer.Option(
        "--actor", "-a", metavar="NAME",
        help="Who does it: an admin, once the ledger has one (`actor add NAME --role admin`).",
    ),
]  # fmt: skip


@dataclass
class Settings:
    """The global options, filled by the root callback; opens the Engine on first use."""

    db: str = ""
    now: str | None = None
    debug: bool = False
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return db_url(self.db)

    def engine(self, ctx: typer.Context, *, create: bool = False) -> Engine:
        if self._engine is None:
            path = sqlite_path(self.url)
            if path is not None and path.is_dir():
                raise StoreUnavailable(f"{path} is a folder, not a SQLite file")
            if path is not None and not path.parent.is_dir():
                raise StoreUnavailable(f"no folder {path.parent} for the database {path.name}")
            if not create and path is not None and not path.exists():
                raise UsageError(
                    f"no database at {path}: run `rectiflow init` first (or pass --db)"
                )
            setup_logging(self.debug)
            from rectiflow.app import Engine

            key, former = audit_keys()
            engine = Engine(
                self.url, tz=os.environ.get("RECTIFLOW_TZ"), audit_key=key,
                former_audit_keys=former,
            )  # fmt: skip
            if self.now is not None:
                fixed = parse_time(self.now, engine, "--now")
                engine.clock = lambda: fixed
            self._engine = engine
            ctx.find_root().call_on_close(engine.close)
        return self._engine


def audit_keys() -> tuple[str | None, list[str]]:
    """(the audit key, the former keys) from ``RECTIFLOW_AUDIT_KEY`` or, else, from the file
    ``RECTIFLOW_AUDIT_KEY_FILE``: one key a line, oldest first, the last one current (a
    rotation adds a line)."""
    key = os.environ.get("RECTIFLOW_AUDIT_KEY", "").strip()
    if key:
        return key, []
    name = os.environ.get("RECTIFLOW_AUDIT_KEY_FILE", "").strip()
    if not name:
        return None, []
    try:
        lines = Path(name).read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"RECTIFLOW_AUDIT_KEY_FILE: cannot read {name}: {exc}") from None
    keys = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not keys:
        raise UsageError(f"RECTIFLOW_AUDIT_KEY_FILE: no key in {name}")
    return keys[-1], keys[:-1]


def check_os_user(engine: Engine, name: str) -> None:
    """With ``RECTIFLOW_ENFORCE_OS_USER=1`` (set by the operator), an ``--actor`` must be
    bound (``actor add/edit --os-user``) to the login running the command."""
    if os.environ.get("RECTIFLOW_ENFORCE_OS_USER", "").strip() != "1":
        return
    import getpass

    from rectiflow.engine.errors import PermissionDenied

    actor = engine.store.get_actor(name)
    if actor is None:
        return  # the command says "no such actor"
    login = getpass.getuser()
    if actor.os_user != login:
        bound = f"bound to {actor.os_user}" if actor.os_user else "bound to no login"
        raise PermissionDenied(login, f"act as {name}: it is {bound} (RECTIFLOW_ENFORCE_OS_USER=1)")


def masked_url(url: str) -> str:
    """A database URL as printed: its password masked."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL: nothing to mask
        return url


def setup_logging(debug: bool) -> None:
    """The CLI's log sink: one line per message on stderr (the library logs nothing until
    an application enables it)."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="INFO" if debug else "WARNING", format="{level}: {message}")
    logger.enable("rectiflow")


def db_url(value: str) -> str:
    """A URL as given, or a bare file path taken as a SQLite file (an empty one stays empty:
    the store refuses it)."""
    if "://" in value or not value.strip():
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    if path in ("", ":memory:") or path.startswith("file:"):  # file: a URI SQLite opens
        return None
    return Path(path)


def with_engine(
    command: Callable[..., Any] | None = None, *, create: bool = False
) -> Callable[..., Any]:
    """Hand the opened Engine to a command as its first argument.

    typer reads the signature to build the options, so the wrapper shows the command's
    own parameters behind a ``ctx`` (which typer fills) instead of ``engine``. The Engine
    annotation is not resolved: the command modules import it only for type checking.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(ctx: typer.Context, *args: Any, **kwargs: Any) -> Any:
            engine = ctx.obj.engine(ctx, create=create)
            if isinstance(kwargs.get("actor"), str) and not func.__module__.endswith("outbox"):
                check_os_user(engine, kwargs["actor"])
            return func(engine, *args, **kwargs)

        signature = inspect.signature(func, eval_str=True, locals={"Engine": object})
        params = list(signature.parameters.values())[1:]
        ctx_param = inspect.Parameter(
            "ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context
        )
        wrapper.__signature__ = inspect.Signature([ctx_param, *params])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in (ctx_param, *params)}
        return wrapper

    return decorate(command) if command is not None else decorate


# --- parsing arguments ----------------------------------------------------------------------


#: The years a time or date given on the command line may fall in: a ledger's dates are
#: this century's, and a year 1 or 9999 is a typing slip (and overflows time zone arithmetic).
FIRST_YEAR, LAST_YEAR = 1970, 2999


def _in_range(day: dt.date, value: str, what: str) -> None:
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise UsageError(f"{what}: {value!r} is out of range (years {FIRST_YEAR}–{LAST_YEAR})")


def parse_time(value: str, engine: Engine, what: str) -> dt.datetime:
    """An ISO-8601 time; without an offset it is local time. Returned in UTC."""
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{what}: not an ISO-8601 time: {value!r}") from None
    _in_range(at, value, what)
    if at.tzinfo is None:
        at = at.replace(tzinfo=engine.tz)
    return at.astimezone(dt.UTC)


def parse_day_or_time(value: str, engine: Engine, what: str) -> dt.datetime:
    """A date (its local midnight) or an ISO-8601 time; returned in UTC."""
    if "T" in value or " " in value:
        return parse_time(value, engine, what)
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{what}: not a date (YYYY-MM-DD) or a time: {value!r}") from None
    _in_range(day, value, what)
    return dt.datetime.combine(day, dt.time(), engine.tz).astimezone(dt.UTC)


def parse_due(
    value: str | None, engine: Engine, what: str = "--due"
) -> dt.date | dt.datetime | None:
    """A date (due at the end of that local day) or an ISO-8601 time."""
    if value is None:
        return None
    if "T" in value or " " in value:
        return parse_time(value, engine, what)
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{what}: not a date (YYYY-MM-DD): {value!r}") from None
    _in_range(day, value, what)
    return day


def split_version(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION``."""
    name, _, version = ref.partition("@")
    if not version:
        return name, None
    if not version.isdigit():
        raise UsageError(f"bad workflow reference {ref!r}: expected NAME or NAME@VERSION")
    return name, int(version)


#: The largest text file a command reads whole (a workflow, a scheme, a notify config).
MAX_TEXT_FILE = 1 << 20


def read_text(path: Path, what: str, limit: int = MAX_TEXT_FILE) -> str:
    """A UTF-8 file (a BOM is dropped) of at most ``limit`` bytes, read no further."""
    try:
        if path.exists() and not path.is_file():  # a folder, a FIFO, a device
            raise UsageError(f"cannot read {what} {path}: not a regular file")
        with path.open("rb") as file:
            data = file.read(limit + 1)
        if len(data) > limit:
            raise UsageError(f"cannot read {what} {path}: larger than {limit:,} bytes")
        return data.decode("utf-8").removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read {what} {path}: {reason}") from None


# --- printing -------------------------------------------------------------------------------
#
# On a terminal, tables are drawn by rich. Piped or redirected, they come out as plain
# tab-separated lines (a header, then one line per row) for cut, awk and spreadsheets;
# rich is then never imported, and printing ten thousand rows costs what print() costs.


def is_terminal() -> bool:
    return sys.stdout.isatty()


@functools.cache
def _console() -> Console:
    from rich.console import Console

    # Markup stays off: titles such as "[紧急] ..." are data, not rich styles.
    return Console(markup=False, highlight=False)


def say(text: str, style: str | None = None) -> None:
    """One line of output (styled on a terminal)."""
    if is_terminal():
        _console().print(text, style=style)
    else:
        print(text)


def print_json(data: Any) -> None:
    """Indented on a terminal. Piped, a list comes out one element per line: as easy for
    grep and jq, and json's C encoder does it (it is not used for indented output)."""
    if isinstance(data, list) and not is_terminal():
        # One encoder for all the elements (json.dumps makes one per call); the data are
        # plain dicts and lists built for printing, without cycles to check for.
        encode = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
        items = ",\n".join(map(encode, data))
        sys.stdout.write(f"[\n{items}\n]\n" if items else "[]\n")
    else:
        print(json.dumps(data, ensure_ascii=False, indent=2))


def stamp(at: dt.datetime | str | None, engine: Engine) -> str:
    """ISO-8601 in the engine's local time, to the second, with the offset."""
    if at is None:
        return "—"
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    return at.astimezone(engine.tz).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Styled:
    """A cell with a style for the terminal; piped, only its text is printed."""

    text: str
    style: str = ""

    def __str__(self) -> str:
        return self.text


_LIGHT_STYLE = {"green": "bold green", "yellow": "bold yellow", "red": "bold red"}


def light_text(light: Light | str | None, paused: bool = False, exempted: bool = False) -> Styled:
    if paused:
        return Styled("paused", "cyan")
    if exempted:
        return Styled("exempted 容错", "cyan")
    if light is None:
        return Styled("—")
    value = str(light)
    return Styled(f"● {value}", _LIGHT_STYLE.get(value, ""))


def _text(value: object) -> str:
    if value is None or value == "":
        return "—"
    text = str(value)
    return text if "\t" not in text and "\n" not in text else " ".join(text.split())


class Sheet:
    """A table to print: rich on a terminal, tab-separated lines otherwise."""

    def __init__(self, *columns: str, title: str | None = None) -> None:
        self.columns = columns
        self.title = title
        self.rows: list[tuple[object, ...]] = []

    def add_row(self, *cells: object) -> None:
        self.rows.append(cells)

    def __len__(self) -> int:
        return len(self.rows)

    def print(self) -> None:
        if is_terminal():
            self._print_rich()
            return
        lines = [self.title] if self.title else []
        lines.append("\t".join(self.columns))
        lines.extend("\t".join(_text(value) for value in row) for row in self.rows)
        sys.stdout.write("\n".join(lines) + "\n")

    def _print_rich(self) -> None:
        from rich.table import Table
        from rich.text import Text

        result = Table(title=self.title, title_justify="left", header_style="bold")
        for column in self.columns:
            result.add_column(column)
        for row in self.rows:
            result.add_row(
                *(Text(v.text, style=v.style) if isinstance(v, Styled) else Text(_text(v))
                  for v in row)
            )  # fmt: skip
        _console().print(result)


def table(*columns: str, title: str | None = None) -> Sheet:
    return Sheet(*columns, title=title)


def print_facts(rows: Sequence[tuple[str, object]]) -> None:
    """``key  value`` lines, the keys in a column."""
    if is_terminal():
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        for key, value in rows:
            shown = Text(value.text, value.style) if isinstance(value, Styled) else _text(value)
            grid.add_row(key, shown)
        _console().print(grid)
        return
    width = max((len(key) for key, _ in rows), default=0)
    for key, value in rows:
        print(f"{key.ljust(width)}  {_text(value)}")


def state_label(engine: Engine, case: Case | dict[str, Any]) -> str:
    """``rectify 整改落实``: the state and its Chinese label."""
    if isinstance(case, dict):
        name, version, state = case["workflow"], case["workflow_version"], case["state"]
    else:
        name, version, state = case.workflow, case.workflow_version, case.state
    label = engine.workflow(name, version).states[state].labels.get("zh")
    return f"{state} {label}" if label else state


def case_table(engine: Engine, cases: Sequence[Case], *, title: str | None = None) -> Sheet:
    """The ledger: one row per case."""
    units = {u.code: u.name for u in engine.list_units()}
    now = engine.now()
    labels: dict[tuple[str, int, str], str] = {}
    result = table("case", "unit", "title", "severity", "state", "due", "light", title=title)
    for case in cases:
        key = (case.workflow, case.workflow_version, case.state)
        label = labels.get(key)
        if label is None:
            label = labels[key] = state_label(engine, case)
        result.add_row(
            case.id, units.get(case.unit, case.unit), case.title, case.severity, label,
            stamp(case.due_at, engine) + (" ?" if case.due_provisional else ""),
            light_text(
                engine.light(case, now), case.paused_at is not None, case.exempt_until is not None
            ),
        )  # fmt: skip
    return result


def escalation_table(
    engine: Engine, cases: Sequence[Case], escalations: Iterable[Escalation], *,
    title: str | None = None,
) -> Sheet:  # fmt: skip
    """The escalations recorded for these cases, case by case."""
    units = {u.code: u.name for u in engine.list_units()}
    unit_of = {case.id: case.unit for case in cases}
    result = table("case", "unit", "level", "stage", "due at", "fired at", title=title)
    for esc in sorted(escalations, key=lambda e: e.case_id):  # stable: recorded order kept
        if esc.case_id in unit_of:
            unit = unit_of[esc.case_id]
            result.add_row(
                esc.case_id, units.get(unit, unit), esc.level, esc.state,
                stamp(esc.due_at, engine), stamp(esc.fired_at, engine),
            )  # fmt: skip
    return result
