"""The ``rectiflow`` command: a thin shell over Engine.

Each command receives the opened Engine, calls it, prints and returns; ``main`` is the one
place that turns errors into a line on stderr and an exit code (the README lists them).

A command answers at once: the modules here import typer and nothing heavy, and each
command imports what it needs (the Engine and SQLAlchemy, rich, loguru) when it runs.
A command line loads only the module of its command (see ``_PanelGroup``); help loads them
all. Help is click's plain text, so ``--help`` never loads rich.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from rectiflow.cli.common import Settings
from rectiflow.engine.errors import RectiflowError, UsageError

#: The modules that define the commands (each has ``register(app)``), in the order of the
#: help, and the first word of a command line → the modules it needs: ``case_flow`` adds
#: ``case fire``, ``triggers``, ``pause``, ``resume`` and ``note``, ``ledger`` adds ``case
#: edit``, ``loop`` the look-back, extension and exemption commands of ``case``. A word not
#: listed loads them all, so a command missing here still runs.
_GC_THRESHOLDS = (50_000, 20, 20)  # Python's default: (700, 10, 10)
_MODULES = (
    "admin", "audit", "actors", "cases", "case_flow", "measures", "loop", "operate", "ledger",
    "reports", "outbox",
)  # fmt: skip
_NEEDS = {
    **dict.fromkeys(("demo", "init", "unit", "workflow", "calendar", "db", "escalate"), ("admin",)),
    "audit": ("audit",),
    "actor": ("actors",),
    "case": ("cases", "case_flow", "ledger", "loop"),
    "measure": ("measures",),
    "daemon": ("operate",),
    "health": ("operate",),
    "ledger": ("ledger",),
    "report": ("reports",),
    "outbox": ("outbox",),
    "notify": ("outbox",),
}


def _commands(modules: Sequence[str]) -> dict[str, Any]:
    """The click commands that these modules register, in the order they register them."""
    holder = typer.Typer(rich_markup_mode=None)
    for name in modules:
        importlib.import_module(f"rectiflow.cli.{name}").register(holder)
    return dict(typer.main.get_group(holder).commands)


class _PanelGroup(TyperGroup):
    """Loads a command's module when the command line names it: ``case show 1`` need not
    import (and convert for click) the eighty other commands and what their modules import.
    Lists the commands under their panel headings (rich_help_panel) in plain help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._complete = False

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and not self._complete:
            modules = _NEEDS.get(cmd_name)
            if modules is None:  # all of them: an unknown word gets "did you mean"
                self.list_commands(ctx)
            else:
                self.commands.update(_commands(modules))
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: Any) -> list[str]:
        if not self._complete:
            self.commands = _commands(_MODULES)  # all, in the order of the help
            self._complete = True
        return super().list_commands(ctx)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        panels: dict[str, list[tuple[str, Any]]] = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                panel = getattr(command, "rich_help_panel", None) or "Commands"
                panels.setdefault(panel, []).append((name, command))
        if not panels:
            return
        width = max(len(name) for rows in panels.values() for name, _ in rows)
        limit = formatter.width - 6 - width
        for panel, rows in panels.items():
            with formatter.section(panel):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])


app = typer.Typer(
    name="rectiflow",
    cls=_PanelGroup,
    rich_markup_mode=None,
    help=(
        "Run a problem-list ledger (问题清单台账): cases move identify → plan → rectify → "
        "verify → closed, with deadlines on the Chinese working calendar and an escalation "
        "ladder.\n\n"
        "Try it: rectiflow demo. A ledger of your own: rectiflow init; unit add; actor add "
        "(roles reporter, owner, head, reviewer, verifier, supervisor).\n\n"
        "A case from identify to closed: case open (reporter) → case fire ID confirm "
        "(supervisor) → measure add ID (owner) → case fire ID approve_plan (reviewer) → "
        "measure done MEASURE_ID (owner) → case fire ID submit (owner) → case fire ID accept "
        "(verifier). case triggers ID shows what can fire now; case show ID shows the rest.\n\n"
        "Exit codes: 0 ok, 1 a bug, 2 usage or validation, 3 not found, 4 transition "
        "rejected, 5 conflict or database busy, 6 permission denied, 7 integrity failure or "
        "evidence changed, 8 unhealthy, 9 database unavailable."
    ),
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(invoke_without_command=True)
def root(
    ctx: typer.Context,
    db: Annotated[
        str,
        typer.Option(
            envvar="RECTIFLOW_DB",
            metavar="URL",
            help="Database URL (sqlite:///FILE, postgresql+psycopg://...) or a SQLite file.",
        ),
    ] = "rectiflow.db",
    now: Annotated[
        str | None,
        typer.Option(
            envvar="RECTIFLOW_NOW",
            metavar="ISO-8601",
            help="Fix the clock, e.g. 2026-09-28T10:00 (without an offset: local time).",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Log at INFO and show tracebacks.")
    ] = False,
) -> None:
    settings: Settings = ctx.ensure_object(Settings)
    settings.db, settings.now, settings.debug = db, now, debug  # logging: see Settings.engine
    if ctx.invoked_subcommand is None:  # a bare `rectiflow` shows what it can do
        print(ctx.get_help())
        raise typer.Exit(0)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the console script: run one command and exit with its code."""
    thresholds = _collect_less()
    settings = Settings()
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        _check_text(args)
        result = command.main(args=args, prog_name="rectiflow", standalone_mode=False, obj=settings)
        code = result if isinstance(result, int) else 0  # an int only comes from typer.Exit
    except RectiflowError as exc:
        code = _fail(str(exc), exc.exit_code, settings.debug)
    except typer.TyperException as exc:  # click's usage errors: bad option, missing argument
        hint = getattr(getattr(exc, "ctx", None), "command_path", "rectiflow")
        code = _fail(f"{exc.format_message()} (see `{hint} --help`)", 2, settings.debug)
    except typer.Abort:
        code = _fail("aborted", 1, settings.debug)
    except Exception as exc:
        code = _fail(f"unexpected {type(exc).__name__}: {exc}", 1, settings.debug)
    gc.set_threshold(*thresholds)  # as they were, for a caller that goes on (the tests)
    sys.exit(code)


def _collect_less() -> tuple[int, ...]:
    """Nearly every object a command makes lives until the process exits: the modules it
    imports, the tables, the rows it prints. Python's cycle collector, run every 700
    allocations, scanned them again and again for nothing (a third of `case list --json`):
    during a command it runs less often. At exit the interpreter scans them all once more
    before it frees the modules (a third of `case show`): frozen at exit, after the command
    has closed its database and returned, they are skipped, and the process ends without
    the scan. Returns the thresholds it replaced."""
    thresholds = gc.get_threshold()
    gc.set_threshold(*_GC_THRESHOLDS)
    atexit.unregister(gc.freeze)  # registered once, however many commands a process runs
    atexit.register(gc.freeze)
    return thresholds


def _check_text(args: Sequence[str]) -> None:
    """Python hands bytes that are not UTF-8 on as lone surrogates: refuse them at once,
    before they reach the database (which cannot store them) or a terminal."""
    for number, arg in enumerate(args, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
            raise UsageError(f"argument {number} is not UTF-8 text: {shown}") from None


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"error: {first}", file=sys.stderr)
    return code
