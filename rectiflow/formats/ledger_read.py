"""Read a ledger sheet (XLSX/XLSM/XLS/ODS through python-calamine, or CSV) as rows of fields.

The header row is found among the first rows (title rows above it are skipped); each data
row maps a field to the heading as written and the cell value. Dates in spreadsheets come
back as ``datetime.date``/``datetime``; CSV cells are text.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import os
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, BinaryIO

import charset_normalizer
import python_calamine

from rectiflow.engine.errors import ValidationError
from rectiflow.engine.ledger_rules import strip_formula_guard
from rectiflow.formats import ledger_columns

HEADER_SEARCH_ROWS = 10
_SAMPLE = 256 * 1024
_CHUNK = 1024 * 1024
_GB = frozenset({"gb18030", "gbk", "gb2312", "hz"})
_ZIP = b"PK\x03\x04"  # xlsx, xlsm, ods
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # xls


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One data row."""

    number: int  # the row number as Excel shows it (1-based)
    cells: dict[str, tuple[str, object]]  # field -> (the heading as written, the cell value)


@dataclass
class LedgerSheet:
    """The header found and the data rows below it.

    ``fields`` holds the import fields only (ref … status): the export's own columns (灯色,
    督办等级, 最新进展, 销号时间) and a 序号 beside a 编号 are recognised but left out, and are
    not in ``ignored_columns`` either. ``rows`` is streamed; rows with every cell blank are
    skipped. Each row's ``cells`` has every field of ``fields``, blank cells as None.
    """

    header_row: int
    fields: dict[str, str]  # field -> heading as written
    ignored_columns: list[str]  # headings not recognised
    rows: Iterator[LedgerRow]


def read_ledger(
    path: str | os.PathLike[str] | BinaryIO,
    *,
    sheet: str | None = None,
    mapping: Mapping[str, str] = {},
) -> LedgerSheet:
    """Open a ledger file and find its header row.

    The format is told by the content: a ZIP (xlsx, xlsm, ods) or OLE (xls) workbook is read
    with python-calamine, anything else as CSV (UTF-8, UTF-8 with BOM or GB18030). ``sheet``
    names the worksheet (default: the first); ``mapping`` is ``--map``'s heading → field.

    Raises ValidationError for an unknown sheet, a file without a header row, a CSV in
    another encoding; UsageError for a mapping to an unknown field.
    """
    ledger_columns.check_mapping(mapping)
    name = _name_of(path)
    if isinstance(path, (str, os.PathLike)):
        try:
            with open(path, "rb") as f:
                magic = f.read(8)
        except OSError as exc:
            raise ValidationError(f"cannot read {name}: {exc.strerror or exc}") from exc
    else:
        if not path.seekable():
            path = io.BytesIO(path.read())
        start = path.tell()
        magic = path.read(8)
        path.seek(start)
    if magic.startswith(_ZIP) or magic.startswith(_OLE):
        return _from_table(name, _workbook_rows(path, name, sheet), mapping)
    if sheet is not None:
        raise ValidationError(f"{name} is a CSV file: it has no sheet {sheet!r}")
    records = _csv_records(path, name)
    try:
        next(records)  # opens the file and settles the encoding before the header is read
        return _from_table(name, records, mapping)
    except BaseException:
        records.close()
        raise


def _name_of(path: object) -> str:
    if isinstance(path, (str, os.PathLike)):
        return os.fsdecode(path)
    return str(getattr(path, "name", "<stream>"))


# -- spreadsheets -------------------------------------------------------------------------


def _workbook_rows(
    source: str | os.PathLike[str] | BinaryIO, name: str, sheet: str | None
) -> Iterator[list[object]]:
    try:
        if isinstance(source, (str, os.PathLike)):
            book = python_calamine.CalamineWorkbook.from_path(os.fspath(source))
        else:
            book = python_calamine.CalamineWorkbook.from_filelike(source)
    except (python_calamine.CalamineError, ValueError, OSError) as exc:
        raise ValidationError(f"cannot read {name} as a workbook: {exc}") from exc
    try:
        names = book.sheet_names
        if not names:
            raise ValidationError(f"{name} has no sheets")
        chosen = names[0] if sheet is None else sheet
        if chosen not in names:
            raise ValidationError(
                f"{name} has no sheet {sheet!r}; its sheets are {', '.join(names)}"
            )
        # skip_empty_area=False keeps row i at index i, so numbers match what Excel shows.
        table = book.get_sheet_by_name(chosen).to_python(skip_empty_area=False)
    finally:
        book.close()
    return iter([[_spreadsheet_value(v) for v in row] for row in table])


def _spreadsheet_value(value: object) -> object:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)  # Excel stores every number as a float: 序号 1.0 is 1
    return value


def _text(value: str) -> str:
    return strip_formula_guard(value).strip()


# -- CSV ----------------------------------------------------------------------------------


def _csv_records(
    source: str | os.PathLike[str] | BinaryIO, name: str
) -> Generator[list[object], None, None]:
    """Yield ``[]`` once the file is open and its encoding known, then each record.

    Opening inside the generator ties the file's life to it: a caller who stops reading
    early closes it by dropping the iterator.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as raw:
            encoding = _detect_encoding(raw, name)
            raw.seek(0)
            yield []
            yield from _decode_records(raw, encoding, name)
    else:
        start = source.tell()
        encoding = _detect_encoding(source, name)
        source.seek(start)
        yield []
        yield from _decode_records(source, encoding, name)


def _decode_records(raw: IO[bytes], encoding: str, name: str) -> Iterator[list[object]]:
    text = io.TextIOWrapper(raw, encoding=encoding, errors="strict", newline="")
    number = 0
    try:
        for number, record in enumerate(csv.reader(text), start=1):  # noqa: B007
            yield [_text(cell) for cell in record]
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{name} is not valid {encoding} after row {number}: {exc.reason}"
        ) from exc
    except csv.Error as exc:
        raise ValidationError(f"{name}: bad CSV after row {number}: {exc}") from exc
    finally:
        text.detach()  # the caller owns the binary file


def _detect_encoding(raw: IO[bytes], name: str) -> str:
    """UTF-8 (with or without BOM) when the bytes are valid UTF-8, else GB18030.

    charset-normalizer must see a GB encoding among its candidates (it calls short GBK
    text big5 first, so not only the best guess counts); another encoding is refused.
    """
    head = raw.read(_SAMPLE)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if _valid_utf8(head, raw):
        return "utf-8"
    matches = charset_normalizer.from_bytes(head)
    candidates = [m.encoding for m in matches]
    if any(c in _GB for c in candidates):
        return "gb18030"
    guess = candidates[0] if candidates else "an unknown encoding"
    raise ValidationError(
        f"{name} looks like {guess}, not UTF-8 or GB18030 (GBK): save it as CSV UTF-8"
    )


def _valid_utf8(head: bytes, rest: IO[bytes]) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        decoder.decode(head)
        while chunk := rest.read(_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


# -- header and rows ----------------------------------------------------------------------


def _from_table(
    name: str, records: Iterator[list[object]], mapping: Mapping[str, str]
) -> LedgerSheet:
    head = list(itertools.islice(records, HEADER_SEARCH_ROWS))
    best: tuple[int, int, dict[int, str]] | None = None  # (score, index, column -> field)
    for index, record in enumerate(head):
        found = _recognise(record, mapping)
        named = set(found.values()) - {ledger_columns.IGNORE}
        if "title" in named and len(named) >= 2 and (best is None or len(named) > best[0]):
            best = (len(named), index, found)
    if best is None:
        raise ValidationError(
            f"no header row with a 问题 column in the first {HEADER_SEARCH_ROWS} rows of {name}"
        )
    _, index, found = best
    header = ["" if h is None else str(h) for h in head[index]]
    columns = _columns(name, header, found)
    return LedgerSheet(
        header_row=index + 1,
        fields={field: header[column] for column, field in columns},
        ignored_columns=[h for i, h in enumerate(header) if i not in found and h.strip()],
        rows=_rows(index + 2, itertools.chain(head[index + 1 :], records), header, columns),
    )


def _recognise(record: list[object], mapping: Mapping[str, str]) -> dict[int, str]:
    found: dict[int, str] = {}
    for column, heading in enumerate(record):
        if heading is None or heading == "":
            continue
        field = ledger_columns.field_of(heading, mapping)
        if field is not None:
            found[column] = field
    return found


def _columns(name: str, header: list[str], found: dict[int, str]) -> list[tuple[int, str]]:
    """The (column, field) pairs an import reads; two columns naming one field is an error."""
    by_field: dict[str, int] = {}
    for column, field in found.items():
        if field == ledger_columns.IGNORE or field in ledger_columns.EXPORT_ONLY_FIELDS:
            continue
        if field in by_field:
            first = by_field[field]
            weak = ledger_columns.WEAK_REF
            if field == "ref" and ledger_columns.normalise_heading(header[first]) == weak:
                by_field[field] = column  # 编号 wins over 序号
                continue
            if field == "ref" and ledger_columns.normalise_heading(header[column]) == weak:
                continue
            raise ValidationError(
                f"{name}: columns {header[first]} and {header[column]} both give {field}; "
                f"use --map 'HEADING=-' to drop one"
            )
        by_field[field] = column
    return sorted((column, field) for field, column in by_field.items())


def _rows(
    number: int, records: Iterable[list[object]], header: list[str], columns: list[tuple[int, str]]
) -> Iterator[LedgerRow]:
    for record in records:
        if any(v is not None and v != "" for v in record):
            cells: dict[str, tuple[str, object]] = {}
            for column, field in columns:
                value = record[column] if column < len(record) else None
                cells[field] = (header[column], None if value == "" else value)
            yield LedgerRow(number, cells)
        number += 1
