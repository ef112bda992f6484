"""``case open``, ``case show`` and ``case list``: a case put on the ledger, shown, and the
ledger listed; and what the other modules that add to ``case`` share (``case_app``, the
options). Moving a case along is cli/case_flow.py; its measures, cli/measures.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Protocol, cast

import typer

from rectiflow import views
from rectiflow.cli.common import (
    MAX_ID,
    JsonOption,
    case_table,
    is_terminal,
    light_text,
    parse_day_or_time,
    parse_due,
    print_facts,
    print_json,
    say,
    split_version,
    stamp,
    state_label,
    table,
    with_engine,
)
from rectiflow.engine.errors import NotFound
from rectiflow.engine.types import Light, Severity

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rectiflow.app import Engine
    from rectiflow.engine.spec import TransitionSpec
    from rectiflow.engine.types import Case, Escalation, Measure, Note, Unit

PAGE = 50  # cases per page on a terminal
LIGHTS = tuple(light.value for light in Light)
SEVERITIES = tuple(severity.value for severity in Severity)


class _Listing(Protocol):
    """What ``case list`` asks of the store: filtered pages, and the rows of many cases in
    one query per table (the SQL and in-memory stores both have these)."""

    def get_unit(self, code: str) -> Unit | None: ...
    def find_cases(
        self, *, limit: int | None = None, offset: int = 0, **filters: Any
    ) -> list[Case]: ...
    def count_cases(self, **filters: Any) -> int: ...
    def measures_of(self, case_ids: Sequence[int]) -> dict[int, list[Measure]]: ...
    def escalations_of(self, case_ids: Sequence[int]) -> dict[int, list[Escalation]]: ...
    def notes_of(self, case_ids: Sequence[int]) -> dict[int, list[Note]]: ...
    def co_units_of(self, case_ids: Sequence[int]) -> dict[int, list[str]]: ...


case_app = typer.Typer(
    help="Open, inspect and move cases (问题).", add_completion=False, rich_markup_mode=None
)

Actor = Annotated[str, typer.Option("--actor", "-a", help="Who does it (an actor name).")]
CaseId = Annotated[int, typer.Argument(metavar="ID", help="The case id.", min=0, max=MAX_ID)]
ExpectVersion = Annotated[
    int | None,
    typer.Option(help="Refuse (exit 5) unless the case is at this version.", min=0, max=MAX_ID),
]


def register(app: typer.Typer) -> None:
    app.add_typer(case_app, name="case", rich_help_panel="Work the ledger")


@case_app.command("open")
@with_engine
def case_open(
    engine: Engine,
    unit: Annotated[str, typer.Option(help="Code of the unit the problem belongs to.")],
    title: Annotated[str, typer.Option(help="What the problem is, in one line.")],
    actor: Actor,
    workflow: Annotated[str, typer.Option(metavar="NAME[@VERSION]")] = "rectification",
    severity: Annotated[str, typer.Option(help="high, medium or low.")] = "medium",
    category: Annotated[str | None, typer.Option()] = None,
    source: Annotated[str | None, typer.Option(help="Where it was found.")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    due: Annotated[
        str | None,
        typer.Option(metavar="DATE", help="Fix the rectification deadline (YYYY-MM-DD)."),
    ] = None,
    ref: Annotated[
        str | None, typer.Option(help="Its number in your own ledger (编号), unique per source.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="The rectification target (整改目标).")] = None,
    responsible: Annotated[
        str | None, typer.Option(help="The responsible person (责任人), as written.")
    ] = None,
    co_unit: Annotated[
        list[str] | None,
        typer.Option("--co-unit", metavar="CODE", help="A co-responsible unit (repeatable)."),
    ] = None,
    long_term: Annotated[
        bool,
        typer.Option("--long-term", help="长期坚持: without --due, no deadline while rectifying."),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Put a problem on the ledger; prints the new case id.

    Example: rectiflow case open --unit HRB --title "审批效率低" --actor 赵敏 --severity high
    """
    name, version = split_version(workflow)
    case = engine.open_case(
        actor, unit=unit, title=title, workflow=name, workflow_version=version,
        severity=severity, category=category, source=source, description=description,
        due=parse_due(due, engine), ref=ref, target=target, responsible=responsible,
        co_units=co_unit or (), long_term=long_term,
    )  # fmt: skip
    if json:
        print_json(engine.case_view(case.id))
    else:
        print(case.id)


@case_app.command("show")
@with_engine
def case_show(engine: Engine, case_id: CaseId, json: JsonOption = False) -> None:
    """The case with its measures, notes, history, escalations, deadline and light.

    Example: rectiflow case show 12 --json
    """
    data = engine.case_view(case_id)
    if json:
        print_json(data)
        return
    units = {u.code: u.name for u in engine.list_units()}
    due = stamp(data["due_at"], engine) + (" (provisional)" if data["due_provisional"] else "")
    facts: list[tuple[str, object]] = [
        (key, value)
        for key, value in (
            ("unit", f"{data['unit']} {units.get(data['unit'], '')}"),
            ("workflow", f"{data['workflow']}@{data['workflow_version']}"),
            ("state", f"{state_label(engine, data)}  (version {data['version']})"),
            ("severity", data["severity"]),
            ("ref", data["ref"]),
            ("category", data["category"]),
            ("source", data["source"]),
            ("target", data["target"]),
            ("responsible", data["responsible"]),
            ("co-units", "、".join(f"{c} {units.get(c, '')}" for c in data["co_units"]) or None),
            ("long-term", "长期坚持" if data["long_term"] else None),
            ("opened", stamp(data["created_at"], engine)),
            ("stage since", stamp(data["stage_entered_at"], engine)),
            ("stage due", due),
            ("case due", stamp(data["due"], engine) if data["due"] else None),
            (
                "supervised by",
                data["supervising_unit"] if data["supervising_unit"] != data["unit"] else None,
            ),
            ("relapses", data["relapses"] or None),
            ("look-back", _lookback_text(data["lookback"], engine)),
            (
                "exempted",
                f"until {stamp(data['exemption']['until'], engine)}: {data['exemption']['reason']}"
                if data["exemption"]
                else None,
            ),
            ("description", data["description"]),
        )
        if value is not None
    ]
    facts.append(("light", light_text(data["light"], data["paused"], bool(data["exemption"]))))
    say(f"case {data['id']}: {data['title']}", style="bold")
    print_facts(facts)
    _print_rows(
        "measures", ("id", "text", "owner", "due", "done at", "evidence"),
        [(m["id"], m["text"], m["owner"], stamp(m["due"], engine) if m["due"] else None,
          stamp(m["done_at"], engine) if m["done"] else "not done",
          f"{m['evidence_path']} sha256:{m['evidence_sha256'][:12]}"
          if m["evidence_path"] else None) for m in data["measures"]],
    )  # fmt: skip
    _print_rows(
        "progress notes",
        ("at", "actor", "text"),
        [(stamp(n["at"], engine), n["actor"], n["text"]) for n in data["notes"]],
    )
    _print_rows(
        "history", ("seq", "at", "trigger", "from → to", "actor", "comment"),
        [(h["seq"], stamp(h["at"], engine), h["trigger"],
          f"{h['source'] or '∅'} → {h['dest']}", h["actor"], h["comment"])
         for h in data["history"]],
    )  # fmt: skip
    _print_rows(
        "escalations", ("level", "stage", "visit", "due at", "fired at", "raised to"),
        [(e["level"], e["state"], e["visit"], stamp(e["due_at"], engine),
          stamp(e["at"], engine) + (" (backfilled at import)" if e["backfilled"] else ""),
          e["raised_to"]) for e in data["escalations"]],
    )  # fmt: skip
    _print_rows(
        "extension requests", ("requested", "by", "until", "reason", "status", "decided"),
        [(stamp(x["requested_at"], engine), x["requested_by"], stamp(x["until"], engine),
          x["reason"], x["status"],
          f"{x['decided_by']} {stamp(x['decided_at'], engine)} {x['comment'] or ''}".strip()
          if x["decided_by"] else None) for x in data["extensions"]],
    )  # fmt: skip
    nexts = engine.triggers(case_id)
    if nexts:
        say("next: " + "; ".join(_describe(t) for t in nexts))


def _lookback_text(lookback: dict[str, Any] | None, engine: Engine) -> str | None:
    if lookback is None:
        return None
    if lookback["result"] is None:
        return f"due {stamp(lookback['due'], engine)}"
    return f"{lookback['result']} ({lookback['actor']}, {stamp(lookback['at'], engine)})"


def _print_rows(title: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    result = table(*columns, title=title)
    for row in rows:
        result.add_row(*row)
    result.print()


def _describe(t: TransitionSpec) -> str:
    needs = [f"guard {g}" for g in t.guards] + [f"--{r}" for r in t.requires]
    extra = f", needs {', '.join(needs)}" if needs else ""
    return f"{t.trigger} → {t.dest} ({'/'.join(t.roles)}{extra})"


@case_app.command("list")
@with_engine
def case_list(
    engine: Engine,
    unit: Annotated[
        str | None, typer.Option(help="Cases of this unit and the units below.")
    ] = None,
    state: Annotated[
        str | None, typer.Option(help="A state of the workflow, e.g. rectify.")
    ] = None,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only cases past their stage deadline.")
    ] = False,
    light: Annotated[str | None, typer.Option(help="green, yellow or red.")] = None,
    severity: Annotated[str | None, typer.Option(help="high, medium or low.")] = None,
    source: Annotated[str | None, typer.Option(help="Where it was found (exact).")] = None,
    category: Annotated[str | None, typer.Option(help="The category (exact).")] = None,
    text: Annotated[
        str | None, typer.Option(help="In the title or the description (any case).")
    ] = None,
    opened_since: Annotated[
        str | None,
        typer.Option(metavar="DATE", help="Opened on or after (YYYY-MM-DD or ISO-8601 time)."),
    ] = None,
    opened_before: Annotated[
        str | None, typer.Option(metavar="DATE", help="Opened before (YYYY-MM-DD or time).")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_ID,
            help=f"At most this many cases (0: all). Default on a terminal {PAGE}, else all.",
        ),
    ] = None,
    offset: Annotated[int, typer.Option(min=0, max=MAX_ID, help="Skip this many cases first.")] = 0,
    include_co: Annotated[
        bool, typer.Option("--include-co", help="With --unit: also cases it co-works (配合).")
    ] = False,
    supervised_by: Annotated[
        str | None,
        typer.Option(metavar="CODE", help="Cases this unit supervises (raised to it, or its own)."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """The ledger: cases by id, filtered by unit, state, light, severity, text, dates...

    Piped, the table comes out as tab-separated lines. On a terminal one page is shown,
    with a line saying how many more there are.

    Example: rectiflow case list --unit HLJ --light red --opened-since 2026-01-01
    """
    if light is not None and light not in LIGHTS:
        raise typer.BadParameter(f"{light!r}: use green, yellow or red", param_hint="--light")
    if severity is not None and severity not in SEVERITIES:
        raise typer.BadParameter(f"{severity!r}: use high, medium or low", param_hint="--severity")
    if state is not None:
        states = {
            name
            for record in engine.list_workflows()
            for name in engine.workflow(record.name, record.version).states
        }
        if state not in states:
            raise typer.BadParameter(
                f"{state!r}: no workflow has this state (use {', '.join(sorted(states))})",
                param_hint="--state",
            )
    store = cast("_Listing", engine.store)
    paths = None
    if supervised_by is not None and store.get_unit(supervised_by) is None:
        raise NotFound("unit", supervised_by)
    if unit is not None:
        found = store.get_unit(unit)
        if found is None:
            raise NotFound("unit", unit)
        paths = [found.path]
    now = engine.now()
    filters: dict[str, Any] = {
        "unit_paths": paths, "state": state, "severity": severity, "source": source,
        "category": category, "text": text,
        "opened_since": opened_since and parse_day_or_time(opened_since, engine, "--opened-since"),
        "opened_before": opened_before
        and parse_day_or_time(opened_before, engine, "--opened-before"),
        "overdue_at": now if overdue else None, "include_co": include_co,
        "supervised_by": supervised_by,
    }  # fmt: skip
    if limit is None and not json and is_terminal():
        limit = PAGE
    page = limit or None  # 0: all
    if light is None:
        cases = store.find_cases(limit=page, offset=offset, **filters)
        total = len(cases) + offset if page is None else store.count_cases(**filters)
    else:  # the light is worked out from the workflow's ladder, not kept in a column
        wanted = Light(light)
        cases = [c for c in store.find_cases(**filters) if engine.light(c, now) is wanted]
        total = len(cases)
        cases = cases[offset:] if page is None else cases[offset : offset + page]
    if json:
        ids = [c.id for c in cases]
        measures, escalations = store.measures_of(ids), store.escalations_of(ids)
        notes, co_units = store.notes_of(ids), store.co_units_of(ids)
        print_json(views.case_dicts(
            cases, engine, now=now, measures=measures, escalations=escalations, notes=notes,
            co_units=co_units,
        ))  # fmt: skip
        return
    if not cases:
        print("no cases" if total == 0 else f"no cases after the first {total}")
        return
    case_table(engine, cases).print()
    more = total - offset - len(cases)
    if more > 0:
        print(f"… {more} more: --offset {offset + len(cases)} for the next page, --limit 0 for all")
