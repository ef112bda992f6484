"""The formula guard: a leading apostrophe that keeps spreadsheet software from
evaluating a cell (OWASP "CSV injection"), added on export and removed on import.

The guard marks text starting with ``= + - @`` tab or CR, and text that is apostrophes
followed by one of those, so that removing one apostrophe on import always gives back
the text as written. (Kept here until rectiflow.engine.ledger_rules offers the same.)
"""

from __future__ import annotations

import re

_NEEDS_GUARD = re.compile(r"'*[=+\-@\t\r]")
_GUARDED = re.compile(r"'+[=+\-@\t\r]")


def neutralise_formula(text: str) -> str:
    """``text`` with a leading apostrophe when a spreadsheet could read it as a formula."""
    return "'" + text if _NEEDS_GUARD.match(text) else text


def needs_guard(text: str) -> bool:
    """Whether the text starts like a formula (possibly behind apostrophes)."""
    return _NEEDS_GUARD.match(text) is not None


def escape_guard(text: str) -> str:
    """``text`` with one more apostrophe only where the importer would remove one.

    For typed string cells (XLSX), which are never formulas, so that an apostrophe the
    text really starts with survives ``strip_formula_guard``.
    """
    return "'" + text if _GUARDED.match(text) else text


def strip_formula_guard(text: str) -> str:
    """The inverse of ``neutralise_formula`` (and of ``escape_guard``)."""
    return text[1:] if _GUARDED.match(text) else text
