"""Reading a spreadsheet download as rows of cells: CSV (separator `;`, `,` or tab, sniffed; UTF-8 with or
without BOM, else Windows-1252 as Excel writes it; Excel's `sep=` first line) or XLSX (by extension or by its
zip signature; exactly one sheet, as a download has). What the columns mean is `export`'s business; this
module only keeps the row numbers a spreadsheet shows, so every error can point at the row."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.importer.model import ImportFailure

#: A cell: text, a number or a date (XLSX keeps types; CSV gives text).
Cell = str | int | float | dt.date

_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0"          # the old binary .xls
_SEPARATORS = (";", ",", "\t")


@dataclass(frozen=True)
class Row:
    number: int                     # as the spreadsheet shows it: the header is row 1 (if it is the first)
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Table:
    source: str                     # the file as the user named it
    kind: str                       # "CSV" or "XLSX"
    header: tuple[str, ...]
    header_row: int
    rows: tuple[Row, ...]


def read_table(path: Path) -> Table:
    """The header (the first non-empty row) and the rows under it; `ImportFailure` for an unreadable file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImportFailure(f"{path}: no such file") from None
    except OSError as exc:
        raise ImportFailure(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if data.startswith(_OLE) or path.suffix.lower() == ".xls":
        raise ImportFailure(f"{path}: an old Excel .xls file; download the export as .xlsx or .csv instead")
    if data.startswith(_ZIP) or path.suffix.lower() in (".xlsx", ".xlsm"):
        return _table(str(path), "XLSX", _xlsx_rows(path, data))
    return _table(str(path), "CSV", _csv_rows(str(path), data))


def _table(source: str, kind: str, rows: list[Row]) -> Table:
    filled = [r for r in rows if any(_text(c) for c in r.cells)]
    if not filled:
        raise ImportFailure(f"{source}: the file is empty; expected a header row (ID, Naam, E-mailadres, Rol, "
                            "Status, Activatie einddatum, Niveau, Tweede factor) and a row per person")
    head = filled[0]
    return Table(source, kind, tuple(_text(c) for c in head.cells), head.number, tuple(filled[1:]))


def _text(cell: Any) -> str:
    return "" if cell is None else str(cell).strip()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _csv_rows(source: str, data: bytes) -> list[Row]:
    text = _decode(data)
    lines = text.splitlines()
    skip = 0
    separator = None
    if lines and lines[0].strip().lower().startswith("sep=") and len(lines[0].strip()) == 5:
        separator, skip = lines[0].strip()[4], 1                  # Excel's own hint line
    first = next((line for line in lines[skip:] if line.strip()), "")
    if separator is None:
        separator = max(_SEPARATORS, key=lambda s: (_count_outside_quotes(first, s), -_SEPARATORS.index(s)))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    rows: list[Row] = []
    start = 1
    try:
        for cells in reader:
            if start > skip:
                rows.append(Row(start, tuple(cells)))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ImportFailure(f"{source}: row {start}: not readable as CSV: {exc}") from None
    return rows


def _count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count


def _xlsx_rows(path: Path, data: bytes) -> list[Row]:
    try:
        import openpyxl
    except ImportError:  # pragma: no cover - a dependency of the package
        raise ImportFailure("reading .xlsx needs openpyxl: pip install openpyxl") from None
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on a damaged file; all mean "not readable"
        raise ImportFailure(f"{path}: not a readable .xlsx file ({type(exc).__name__}: {exc}); download it again "
                            "as .xlsx or .csv") from None
    try:
        names = book.sheetnames
        if len(names) != 1 or not book.worksheets:
            # a download is one sheet: reading the first of several could read the wrong overview without a word
            shown = ", ".join(repr(n) for n in names) or "none"
            raise ImportFailure(f"{path}: the workbook has {len(names)} sheet{'s' * (len(names) != 1)} ({shown}), "
                                "not one worksheet as a download has: save the overview's sheet alone as its own "
                                "file, or download it again")
        sheet = book.worksheets[0]
        rows = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            rows.append(Row(number, tuple(_xlsx_cell(v) for v in values)))
        return rows
    finally:
        book.close()


def _xlsx_cell(value: Any) -> Cell:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, (dt.date, str)):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, (int, float)):
        return value
    return str(value)


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: how a spreadsheet names column `index`."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters
