"""The Engine's registry concern: units, actors and workflow definitions."""

from __future__ import annotations

from collections.abc import Sequence

from rectiflow.app.base import EngineBase
from rectiflow.engine import text as limits
from rectiflow.engine.diagram import mermaid
from rectiflow.engine.errors import NotFound, PermissionDenied, ValidationError
from rectiflow.engine.spec import WorkflowSpec, parse_workflow
from rectiflow.engine.types import Actor, Contacts, Unit, WorkflowRecord

#: The role that administers a ledger: units, actors, workflows, the calendar.
ADMIN = "admin"


class Registry(EngineBase):
    """Who acts where (units, actors) and by which rules (workflows, versioned)."""

    def add_unit(
        self, code: str, name: str, parent: str | None = None, *, actor: str | None = None
    ) -> Unit:
        """A unit; its code is unique regardless of case (HRB and hrb are one unit)."""
        _check_code(code, "unit code")
        self.require_admin(actor, f"add unit {code}")
        if not name.strip():
            raise ValidationError(f"unit {code} needs a name")
        limits.check("unit name", name)
        taken = next(
            (u.code for u in self.store.list_units() if u.code.lower() == code.lower()), None
        )
        if taken is not None:
            raise ValidationError(
                f"unit {taken} already exists (codes are compared regardless of case)"
            )
        return self.store.add_unit(code, name, parent)

    def get_unit(self, code: str) -> Unit:
        unit = self.store.get_unit(code)
        if unit is None:
            raise NotFound("unit", code)
        return unit

    def list_units(self) -> list[Unit]:
        return self.store.list_units()

    def add_actor(
        self, name: str, roles: Sequence[str], units: Sequence[str] = (), *,
        actor: str | None = None, os_user: str | None = None,
    ) -> Actor:  # fmt: skip
        """An actor with its roles (those of the registered workflows, or ``admin``) and
        units; ``os_user`` binds it to an operating-system login (checked by the CLI)."""
        if not name.strip():
            raise ValidationError("an actor needs a name")
        self.require_admin(actor, f"add actor {name}")
        limits.check("actor name", name)
        if not roles:
            raise ValidationError(f"actor {name} needs at least one role")
        known = {role for record in self.list_workflows() for role in self._spec_of(record).roles}
        for role in roles:
            if known and role not in known and role != ADMIN:
                listed = ", ".join(sorted(known))
                raise ValidationError(
                    f"unknown role {role!r} (roles of the registered workflows: {listed})"
                )
        added = self.store.add_actor(name, list(dict.fromkeys(roles)), list(units))
        if os_user is not None and os_user.strip():  # checked above: may be the first admin
            self.store.set_os_user(name, os_user.strip())
            return self.get_actor(name)
        return added

    def set_os_user(self, name: str, os_user: str | None, *, actor: str | None = None) -> Actor:
        """Bind an actor to an operating-system login (None or '': no binding)."""
        self.require_admin(actor, f"edit actor {name}")
        self.get_actor(name)
        self.store.set_os_user(name, (os_user or "").strip() or None)
        return self.get_actor(name)

    def require_admin(self, actor: str | None, what: str) -> None:
        """Once the ledger has an admin (an actor with the role ``admin``), changing units,
        actors, workflows and the calendar needs ``actor`` to name one (PermissionDenied
        otherwise); a ledger without an admin lets anyone. The library trusts ``actor``:
        the host application authenticates its users."""
        if not any(ADMIN in a.roles for a in self.store.list_actors()):
            return
        if actor is None:
            raise PermissionDenied(
                "an unnamed actor", f"{what}: this ledger has an admin, name one (--actor)"
            )
        who = self.store.get_actor(actor)
        if who is None or ADMIN not in who.roles:
            raise PermissionDenied(actor, f"{what}: only an admin may")

    def set_contacts(
        self, name: str, *, email: str | None = None, mobile: str | None = None,
        dingtalk_id: str | None = None, wecom_id: str | None = None, actor: str | None = None,
    ) -> Contacts:  # fmt: skip
        """How an actor is reached; None keeps a contact, an empty text clears it."""
        self.require_admin(actor, f"edit actor {name}")
        self.get_actor(name)
        old = self.contacts([name]).get(name) or Contacts(name)
        given = {"email": email, "mobile": mobile, "dingtalk_id": dingtalk_id, "wecom_id": wecom_id}
        merged = Contacts(name, **{
            key: (value.strip() or None) if value is not None else getattr(old, key)
            for key, value in given.items()
        })  # fmt: skip
        self.store.set_contacts(merged)  # type: ignore[attr-defined]
        return merged

    def contacts(self, names: Sequence[str]) -> dict[str, Contacts]:
        finder = getattr(self.store, "contacts_of", None)
        return finder(list(names)) if finder is not None else {}

    def get_actor(self, name: str) -> Actor:
        actor = self.store.get_actor(name)
        if actor is None:
            raise NotFound("actor", name)
        return actor

    def list_actors(self) -> list[Actor]:
        return self.store.list_actors()

    def register_workflow(
        self, text: str, filename: str = "<workflow>", *, actor: str | None = None
    ) -> WorkflowSpec:
        """Validate and register a definition (a registered name+version is immutable)."""
        spec = parse_workflow(text, filename)
        if self.store.get_workflow(spec.name, spec.version) is None:  # the same again: a no-op
            self.require_admin(actor, f"add workflow {spec.name}@{spec.version}")
        return self._register_spec(spec)

    def _register_spec(self, spec: WorkflowSpec) -> WorkflowSpec:
        self.store.register_workflow(self._record(spec))
        self._specs[spec.name, spec.version] = spec
        return spec

    def _record(self, spec: WorkflowSpec) -> WorkflowRecord:
        return WorkflowRecord(spec.name, spec.version, spec.digest, spec.source_text, self.clock())

    def _spec_of(self, record: WorkflowRecord) -> WorkflowSpec:
        key = (record.name, record.version)
        if key not in self._specs:
            self._specs[key] = parse_workflow(record.source_text, f"{record.name}@{record.version}")
        return self._specs[key]

    def workflow(self, name: str, version: int | None = None) -> WorkflowSpec:
        """A registered workflow (the latest version when none is given)."""
        if version is not None and (name, version) in self._specs:
            return self._specs[name, version]
        record = self.store.get_workflow(name, version)
        if record is None:
            raise NotFound("workflow", name if version is None else f"{name}@{version}")
        return self._spec_of(record)

    def list_workflows(self) -> list[WorkflowRecord]:
        return self.store.list_workflows()

    def diagram(self, name: str, version: int | None = None, lang: str = "zh") -> str:
        """Mermaid ``stateDiagram-v2`` text, ``zh`` or ``en`` labels (else UsageError)."""
        return mermaid(self.workflow(name, version), lang)


def _check_code(code: str, what: str) -> None:
    plain = code.replace("-", "").replace("_", "")
    if not plain or not plain.isascii() or not plain.isalnum() or len(code) > 64:
        raise ValidationError(f"bad {what} {code!r}: letters, digits, - and _ only, at most 64")
