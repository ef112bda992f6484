"""Implementations of the engine's store interface."""

from __future__ import annotations

from rectiflow.engine.storage import Store


def open_store(url: str) -> Store:
    """The store for a URL: ``memory://`` for the in-memory store, else a SQL database."""
    if url == "memory://":
        from rectiflow.store.memory import MemoryStore

        return MemoryStore()
    from rectiflow.store.sql import SqlStore

    return SqlStore(url)
