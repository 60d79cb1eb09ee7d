"""Reading a spreadsheet download as rows of cells: CSV (separator `;`, `,` or tab, sniffed; UTF-8 with or
without BOM, else Windows-1252 as Excel writes it; Excel's `sep=` first line) or XLSX (by extension or by its
zip signature; exactly one sheet, as a download has). What the columns mean is `export`'s business; this
module only keeps the row numbers a spreadsheet shows, so every error can point at the row."""

from __future__ import annotations

import csv
import datetime as dt
import io
import posixpath
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from reconciler.importer.model import ImportFailure

#: A cell: text, a number or a date (XLSX keeps types; CSV gives text).
Cell = str | int | float | dt.date

_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0"          # the old binary .xls
_SEPARATORS = (";", ",", "\t")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


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
    lines = _head_lines(text)
    skip = 0
    separator = None
    if lines and lines[0].strip().lower().startswith("sep=") and len(lines[0].strip()) == 5:
        separator, skip = lines[0].strip()[4], 1                  # Excel's own hint line
    first = next((line for line in lines[skip:] if line.strip()), "")
    if separator is None:
        separator = max(_SEPARATORS, key=lambda s: (_count_outside_quotes(first, s), -_SEPARATORS.index(s)))
    reader = csv.reader(_lines(text), delimiter=separator)
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


def _lines(text: str) -> Iterator[str]:
    """The lines of `text` with their ends, as `io.StringIO(text, newline="")` gives them (split at CR, LF or
    CRLF), one at a time: a StringIO holds the text again at 4 bytes a character, 40 MB for a 10 MB download."""
    return (match.group() for match in _LINE.finditer(text))


def _head_lines(text: str, size: int = 65536) -> list[str]:
    """The lines the separator is sniffed from (the first two that are not empty), split from the head of the
    text only: a copy of every line of a 100,000-row download would cost tens of MB for two of them."""
    if len(text) <= size:
        return text.splitlines()
    lines = text[:size].splitlines()
    if sum(1 for line in lines[:-1] if line.strip()) >= 2:
        return lines[:-1]                                  # the last may be cut off
    return text.splitlines()


def _count_outside_quotes(line: str, char: str) -> int:
    count, quoted = 0, False
    for c in line:
        if c == '"':
            quoted = not quoted
        elif c == char and not quoted:
            count += 1
    return count


# ------------------------------------------------------------------------------------------------- XLSX
# A workbook is read here with lxml, not openpyxl's reader: openpyxl parses through defusedxml's pure-Python
# parser and, for a sheet without a <dimension> (openpyxl's own write-only files, the sandbox's downloads), parses
# the whole sheet twice; 100,000 rows took 13 s, here under 3 (benchmarks/export_scale.py). The values are the
# ones openpyxl gives (its number formats and date conversion are used), so a cell reads the same.
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_DOC_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_ROW, _C, _V, _IS, _T, _R = (_MAIN + n for n in ("row", "c", "v", "is", "t", "r"))
#: Entities unresolved, no DTD, no network (as the catalogue's signature check reads XML): a hostile workbook
#: cannot expand or fetch anything.
_MAX_COLUMNS = 16384                # XFD, the last column a spreadsheet has
_XML = {"resolve_entities": False, "load_dtd": False, "no_network": True, "huge_tree": False}


class _Unreadable(Exception):
    """The file is a zip but not a workbook as the format describes it."""


@dataclass(frozen=True)
class _Sheet:
    name: str
    part: str | None                # the worksheet's part in the zip; None for a chart sheet


def _xlsx_rows(path: Path, data: bytes) -> list[Row]:
    try:
        import zipfile
        from lxml import etree
        from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format
        from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel
    except ImportError:  # pragma: no cover - dependencies of the package
        raise ImportFailure("reading .xlsx needs lxml and openpyxl: pip install lxml openpyxl") from None

    def xml(archive: zipfile.ZipFile, part: str) -> Any:
        return etree.fromstring(archive.read(part), etree.XMLParser(**_XML))

    def rels(archive: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
        """Relationship id -> (type, the target's part) of `part`."""
        folder, name = part.rsplit("/", 1) if "/" in part else ("", part)
        rels_part = f"{folder}/_rels/{name}.rels" if folder else f"_rels/{name}.rels"
        if rels_part not in archive.namelist():
            return {}
        found = {}
        for rel in xml(archive, rels_part).iter(_PKG_REL + "Relationship"):
            target = rel.get("Target", "")
            resolved = target.lstrip("/") if target.startswith("/") else posixpath.normpath(
                posixpath.join(folder, target))
            found[rel.get("Id", "")] = (rel.get("Type", ""), resolved)
        return found

    def text(element: Any) -> str:
        """A string item (<si> or <is>): its text and its rich-text runs' text, not the phonetic guides."""
        parts = []
        for child in element:
            if child.tag == _T:
                parts.append(child.text or "")
            elif child.tag == _R:
                parts.append(child.findtext(_T) or "")
        return "".join(parts)

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        book_part = next((target for kind, target in rels(archive, "").values()
                          if kind.endswith("/officeDocument")), "xl/workbook.xml")
        book = xml(archive, book_part)
        book_rels = rels(archive, book_part)
        sheets = []
        for sheet in book.iter(_MAIN + "sheet"):
            kind, target = book_rels.get(sheet.get(_DOC_REL + "id", ""), ("", ""))
            sheets.append(_Sheet(sheet.get("name", ""), target if kind.endswith("/worksheet") else None))
    except Exception as exc:  # a damaged zip or workbook raises many kinds; all mean "not readable"
        raise _not_readable(path, exc) from None
    if len(sheets) != 1 or sheets[0].part is None:
        # a download is one sheet: reading the first of several could read the wrong overview without a word
        shown = ", ".join(repr(s.name) for s in sheets) or "none"
        raise ImportFailure(f"{path}: the workbook has {len(sheets)} sheet{'s' * (len(sheets) != 1)} ({shown}), "
                            "not one worksheet as a download has: save the overview's sheet alone as its own "
                            "file, or download it again")
    try:
        pr = book.find(_MAIN + "workbookPr")
        epoch = CALENDAR_MAC_1904 if pr is not None and pr.get("date1904") in ("1", "true") else \
            CALENDAR_WINDOWS_1900
        strings: list[str] = []
        styles: set[int] = set()                       # the cell styles that show a number as a date
        for kind, target in book_rels.values():
            if kind.endswith("/sharedStrings"):
                strings = [text(si) for si in xml(archive, target).iterchildren(_MAIN + "si")]
            elif kind.endswith("/styles"):
                root = xml(archive, target)
                custom = {int(f.get("numFmtId", -1)): f.get("formatCode", "")
                          for f in root.iterfind(f"{_MAIN}numFmts/{_MAIN}numFmt")}
                for index, xf in enumerate(root.iterfind(f"{_MAIN}cellXfs/{_MAIN}xf")):
                    number_format = int(xf.get("numFmtId", 0))
                    shown = custom.get(number_format) or BUILTIN_FORMATS.get(number_format)
                    if shown and is_date_format(shown):
                        styles.add(index)

        def value(cell: Any) -> Cell:
            kind = cell.get("t", "n")
            if kind == "inlineStr":
                found = cell.find(_IS)
                return text(found) if found is not None else ""
            raw = cell.findtext(_V)
            if raw is None or raw == "":
                return ""
            if kind == "s":
                return strings[int(raw)]
            if kind in ("str", "e"):
                return raw
            if kind == "b":
                return str(raw.strip() in ("1", "true"))
            if kind == "d":
                return dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00")).date()
            number: int | float = float(raw) if any(c in raw for c in ".eE") else int(raw)
            if int(cell.get("s", 0)) in styles:
                return _xlsx_cell(from_excel(number, epoch))
            return _xlsx_cell(number)

        rows: list[Row] = []
        number = 0
        assert sheets[0].part is not None
        with archive.open(sheets[0].part) as source:
            for _, row in etree.iterparse(source, events=("end",), tag=_ROW, **_XML):
                number = int(row.get("r") or number + 1)
                cells: list[Cell] = []
                for cell in row.iterchildren(_C):
                    reference = cell.get("r")
                    column = _column_index(reference) if reference else len(cells)
                    cells.extend([""] * (column - len(cells)))
                    cells.append(value(cell))
                rows.append(Row(number, tuple(cells)))
                row.clear()
                while row.getprevious() is not None:          # what is read is let go: memory stays flat
                    del row.getparent()[0]
        return rows
    except Exception as exc:
        raise _not_readable(path, exc) from None


def _not_readable(path: Path, exc: Exception) -> ImportFailure:
    return ImportFailure(f"{path}: not a readable .xlsx file ({type(exc).__name__}: {exc}); download it again "
                         "as .xlsx or .csv")


def _column_index(reference: str) -> int:
    """`B7` -> 1: the column of a cell reference, from 0."""
    return _letters_index(reference.rstrip("0123456789"))


@lru_cache(maxsize=1024)
def _letters_index(letters: str) -> int:
    index = 0
    for char in letters:
        if not ("A" <= char.upper() <= "Z"):
            raise ValueError(f"{letters!r} is not a column")
        index = index * 26 + ord(char.upper()) - 64
    if not 0 < index <= _MAX_COLUMNS:
        raise ValueError(f"{letters!r} is not a column")
    return index - 1


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
