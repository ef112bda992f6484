"""The compiled fast path: Core statements compiled once per dialect, run on the DB-API cursor.

SQLAlchemy's work per execution (cache key, parameter and result set-up: some 40 µs a
statement) is more than SQLite needs to run one of the hot paths' statements; these keep
Core's SQL and its type conversions (``bind_processor``/``result_processor``) and skip the
rest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

_PYFORMAT = re.compile(r"%\((\w+)\)s")


class Prepared:
    """One Core statement compiled for one dialect, with its type conversions."""

    def __init__(self, stmt: Any, dialect: sa.Dialect, column_keys: Sequence[str] | None) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
        self.sql = compiled.string
        order = compiled.positiontup  # qmark on SQLite
        if order is None and dialect.paramstyle == "pyformat":
            # psycopg takes %(name)s with a dict, or %s with a tuple for less work a call
            order = _PYFORMAT.findall(self.sql)
            self.sql = _PYFORMAT.sub("%s", self.sql)
        binds = {name: bind for bind, name in compiled.bind_names.items()}
        self.positional = order is not None
        self.names = list(order if order is not None else binds)
        self.defaults = {  # values Core put in the statement itself, e.g. a LIMIT
            name: binds[name].value for name in self.names if not binds[name].required
        }
        # An INSERT leaving out a column with a scalar default (a flag that starts False)
        # gets a slot that Core would fill at execution: fill it from the default here.
        if getattr(stmt, "is_insert", False):
            for column in stmt.table.c:
                default = column.default
                if column.key in self.defaults and default is not None and default.is_scalar:
                    self.defaults[column.key] = default.arg
        self.bind_convert = [
            (i, process)
            for i, name in enumerate(self.names)
            if (process := binds[name].type.dialect_impl(dialect).bind_processor(dialect))
        ]
        columns = list(stmt.exported_columns)
        self.fields = [c.key for c in columns]
        self.convert = [
            (i, process)
            for i, c in enumerate(columns)
            if (process := c.type.dialect_impl(dialect).result_processor(dialect, None))
        ]

    def bind(self, values: dict[str, Any]) -> Any:
        if self.defaults:
            values = {**self.defaults, **values}
        out = [values[name] for name in self.names]
        for i, process in self.bind_convert:
            if out[i] is not None:
                out[i] = process(out[i])
        return tuple(out) if self.positional else dict(zip(self.names, out, strict=True))

    def execute(self, cursor: Any, values: dict[str, Any]) -> Any:
        cursor.execute(self.sql, self.bind(values))
        return cursor

    def executemany(self, cursor: Any, rows: Sequence[dict[str, Any]]) -> None:
        cursor.executemany(self.sql, [self.bind(values) for values in rows])

    def rows(self, cursor: Any, values: dict[str, Any]) -> list[list[Any]]:
        return [self._row(raw) for raw in self.execute(cursor, values).fetchall()]

    def dicts(self, cursor: Any, values: dict[str, Any]) -> list[dict[str, Any]]:
        raws = self.execute(cursor, values).fetchall()
        return [dict(zip(self.fields, self._row(raw), strict=True)) for raw in raws]

    def _row(self, raw: Sequence[Any]) -> list[Any]:
        row = list(raw)
        for i, process in self.convert:
            if row[i] is not None:
                row[i] = process(row[i])
        return row


class Statements:
    """The statements of one database, each compiled on first use and kept.

    Keyed by the statement object itself (Core statements hash by identity), and by the
    columns an INSERT or UPDATE sets: build a statement once, at module level or once per
    store, and hand the same object in every time. Two statements with the same text are
    two entries; a statement built per call would be compiled per call and kept for ever,
    so such one-off statements (a filtered list) go through :class:`Prepared` directly.
    Compiling waits for first use because the dialect knows the server's version only
    after the first connection.
    """

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[tuple[Any, tuple[str, ...] | None], Prepared] = {}

    def __call__(self, stmt: Any, column_keys: Sequence[str] | None = None) -> Prepared:
        key = (stmt, None if column_keys is None else tuple(column_keys))
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = Prepared(stmt, self.dialect, column_keys)
        return found

    def __len__(self) -> int:
        return len(self._compiled)
