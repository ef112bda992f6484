"""Alembic environment: run with a connection handed in by SqlStore.create_schema."""

from __future__ import annotations

from alembic import context

from rectiflow.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying tables
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
