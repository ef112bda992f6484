"""``actor``: the people who act on the ledger, their roles and units, and how they are
reached (the contacts the delivery channels use)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from rectiflow.cli.common import AdminOption, JsonOption, print_json, table, with_engine

if TYPE_CHECKING:
    from rectiflow.app import Engine

actor_app = typer.Typer(help="Actors: people with roles, bound to units.", rich_markup_mode=None)

Email = Annotated[str | None, typer.Option(help="For mail (SMTP channels).")]
Mobile = Annotated[str | None, typer.Option(help="For @mentions in DingTalk groups.")]
DingTalkId = Annotated[str | None, typer.Option("--dingtalk-id", help="DingTalk user id.")]
WeComId = Annotated[str | None, typer.Option("--wecom-id", help="WeCom user id.")]
OsUser = Annotated[
    str | None,
    typer.Option(
        "--os-user", metavar="LOGIN",
        help="The operating-system login it is bound to (checked with "
        "RECTIFLOW_ENFORCE_OS_USER=1; '' removes the binding).",
    ),
]  # fmt: skip


def register(app: typer.Typer) -> None:
    app.add_typer(actor_app, name="actor", rich_help_panel="Set up a ledger")


@actor_app.command("add")
@with_engine
def actor_add(
    engine: Engine,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    role: Annotated[
        list[str],
        typer.Option(
            help="reporter, owner, head, reviewer, verifier, supervisor or admin; repeatable."
        ),
    ],
    unit: Annotated[
        list[str] | None,
        typer.Option(metavar="CODE", help="Units it acts in (and below); none: everywhere."),
    ] = None,
    email: Email = None,
    mobile: Mobile = None,
    dingtalk_id: DingTalkId = None,
    wecom_id: WeComId = None,
    os_user: OsUser = None,
    actor: AdminOption = None,
) -> None:
    """Add an actor with one or more roles, and how to reach them.

    Once the ledger has an admin, --actor must name one.

    Example: rectiflow actor add 李强 --role owner --unit HRB --email liqiang@example.cn
    """
    added = engine.add_actor(name, role, unit or [], actor=actor, os_user=os_user)
    if any(v is not None for v in (email, mobile, dingtalk_id, wecom_id)):
        engine.set_contacts(
            name, email=email, mobile=mobile, dingtalk_id=dingtalk_id, wecom_id=wecom_id,
            actor=actor,
        )  # fmt: skip
    where = ", ".join(added.units) or "all units"
    print(f"actor {added.name} added: {', '.join(added.roles)} in {where}")


@actor_app.command("edit")
@with_engine
def actor_edit(
    engine: Engine,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    email: Email = None,
    mobile: Mobile = None,
    dingtalk_id: DingTalkId = None,
    wecom_id: WeComId = None,
    os_user: OsUser = None,
    actor: AdminOption = None,
) -> None:
    """Change how an actor is reached ('' clears a contact), or its login binding.

    Once the ledger has an admin, --actor must name one.

    Example: rectiflow actor edit 李强 --mobile 13800000000 --dingtalk-id liqiang
    """
    if os_user is not None:
        bound = engine.set_os_user(name, os_user, actor=actor)
        print(f"actor {name}: bound to {bound.os_user or 'no login'}")
    contacts = engine.set_contacts(
        name, email=email, mobile=mobile, dingtalk_id=dingtalk_id, wecom_id=wecom_id,
        actor=actor,
    )  # fmt: skip
    shown = {
        "email": contacts.email, "mobile": contacts.mobile,
        "dingtalk-id": contacts.dingtalk_id, "wecom-id": contacts.wecom_id,
    }  # fmt: skip
    reach = ", ".join(f"{k} {v}" for k, v in shown.items() if v)
    print(f"actor {name}: {reach or 'no contacts'}")


@actor_app.command("list")
@with_engine
def actor_list(engine: Engine, json: JsonOption = False) -> None:
    """All actors with their roles, units (none: every unit) and contacts.

    Example: rectiflow actor list --json
    """
    actors = engine.list_actors()
    contacts = engine.contacts([a.name for a in actors])
    if json:
        print_json([
            {"name": a.name, "roles": list(a.roles), "units": list(a.units),
             "email": c.email if (c := contacts.get(a.name)) else None,
             "mobile": c.mobile if c else None, "dingtalk_id": c.dingtalk_id if c else None,
             "wecom_id": c.wecom_id if c else None}
            for a in actors
        ])  # fmt: skip
        return
    if not actors:
        print("no actors")
        return
    result = table("name", "roles", "units", "contacts")
    for actor in actors:
        c = contacts.get(actor.name)
        reach = ", ".join(v for v in (c.email, c.mobile) if v) if c else ""
        result.add_row(actor.name, ", ".join(actor.roles), ", ".join(actor.units) or "all", reach)
    result.print()
