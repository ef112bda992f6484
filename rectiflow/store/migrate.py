"""Schema migrations (Alembic, inside the package): ``init`` brings any older database to
the current schema."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

_ADVISORY_LOCK = 0x72656374  # "rect": one migrating process at a time on PostgreSQL


def _config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "rectiflow.store:migrations")
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def head() -> str:
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def foreign_tables(conn: Connection) -> list[str]:
    """The tables of a database that is not a rectiflow ledger: it has tables but no schema
    revision of ours (none, or another program's Alembic revision). Empty for a ledger or an
    empty database."""
    from sqlalchemy import inspect

    names = sorted(inspect(conn).get_table_names())
    if not names:
        return []
    revision = current(conn) if "alembic_version" in names else None
    if revision is not None:
        try:
            if ScriptDirectory.from_config(_config()).get_revision(revision) is not None:
                return []
        except Exception:  # alembic: an unknown revision id
            pass
    return names


def upgrade(conn: Connection, revision: str = "head") -> None:
    """Upgrade inside the caller's transaction (SQLite: BEGIN IMMEDIATE already serializes)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})")
    command.upgrade(_config(conn), revision)
