"""Files people exchange: ledger XLSX/CSV in and out.

I/O on plain data only: nothing here imports the Engine or the store.
"""

from __future__ import annotations

from rectiflow.formats.ledger_columns import EXPORT_HEADINGS, FIELDS, field_of
from rectiflow.formats.ledger_read import LedgerRow, LedgerSheet, read_ledger
from rectiflow.formats.ledger_write import write_ledger

__all__ = [
    "EXPORT_HEADINGS",
    "FIELDS",
    "LedgerRow",
    "LedgerSheet",
    "field_of",
    "read_ledger",
    "write_ledger",
]
