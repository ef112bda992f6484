"""The limits on text a ledger stores, in one place.

Text goes to terminals, spreadsheets, bulletins and messages, so it is checked where it
comes in and refused (ValidationError) rather than escaped on the way out:

- no control characters: no escape sequences (ANSI colours, cursor moves, a terminal title),
  no NUL, no bidirectional overrides that make a text read other than it is stored;
  multi-line fields (descriptions, comments, notes, measures) may hold line breaks and tabs;
- one-line fields (titles, names, codes, refs) hold no line break;
- each field has a maximum length in characters (``LIMITS``).
"""

from __future__ import annotations

import re

from rectiflow.engine.errors import ValidationError

#: field -> (maximum length in characters, may span lines)
LIMITS: dict[str, tuple[int, bool]] = {
    "title": (500, False),
    "unit name": (200, False),
    "actor name": (100, False),
    "ref": (100, False),
    "category": (100, False),
    "source": (200, False),
    "responsible": (200, False),
    "description": (10_000, True),
    "target": (2_000, True),
    "measure": (2_000, True),
    "note": (10_000, True),
    "comment": (2_000, True),
    "reason": (2_000, True),  # of an extension request or an exemption
}

# C0 and C1 controls (ESC among them) but tab and line feed, DEL, the line and paragraph
# separators, and the bidirectional embeddings, overrides and isolates.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_BREAK = re.compile("[\t\n]")


def check(field: str, value: str | None) -> str | None:
    """``value`` if it is fit to store as ``field`` (see ``LIMITS``), else ValidationError."""
    if value is None:
        return None
    limit, multiline = LIMITS[field]
    bad = _CONTROL.search(value) or (None if multiline else _BREAK.search(value))
    if bad is not None:
        shown = repr(bad.group())[1:-1]
        where = f" at character {bad.start() + 1}" if len(value) > 1 else ""
        what = "a control character" if _CONTROL.match(bad.group()) else "a line break or tab"
        one_line = "" if multiline else " (it is one line)"
        raise ValidationError(f"{field}: {what} {shown}{where} is not allowed{one_line}")
    if len(value) > limit:
        raise ValidationError(f"{field}: {len(value):,} characters, at most {limit:,}")
    return value


def required(field: str, value: str | None, missing: str) -> str:
    """``value`` stripped, refused with ``missing`` when it is empty, else as ``check``."""
    stripped = value.strip() if value else ""
    if not stripped:
        raise ValidationError(missing)
    check(field, stripped)
    return stripped
