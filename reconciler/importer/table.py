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
from typing import Any, Callable, Iterator

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
# the whole sheet twice; 100,000 rows took 13 s, here under 2, and under 1 for a sheet in openpyxl's own form
# (`_plain_rows`; benchmarks/export_scale.py). The values are the ones openpyxl gives (its number formats and date
# conversion are used), so a cell reads the same.
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_DOC_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_ROW, _C, _V, _IS, _T, _R = (_MAIN + n for n in ("row", "c", "v", "is", "t", "r"))
#: Entities unresolved, no DTD, no network (as the catalogue's signature check reads XML): a hostile workbook
#: cannot expand or fetch anything.
_MAX_COLUMNS = 16384                # XFD, the last column a spreadsheet has
_DIGITS = "0123456789"
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

        date_style: dict[str | None, bool] = {}        # a cell's `s` attribute -> the style shows a date
        dates: dict[str, Cell] = {}                     # a date-styled number's text -> its date
        columns: dict[str, int] = {}                    # a reference's letters -> the column, from 0

        def scalar(kind: str, raw: str, style: str | None) -> Cell:
            """The value of a cell of type `kind` (not inlineStr) whose <v> holds `raw` (not empty)."""
            if kind == "s":
                return strings[int(raw)]
            if kind in ("str", "e"):
                return raw
            if kind == "b":
                return str(raw.strip() in ("1", "true"))
            if kind == "d":
                return dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00")).date()
            number = _number(raw)
            shows_date = date_style.get(style)
            if shows_date is None:
                shows_date = date_style[style] = int(style if style is not None else 0) in styles
            if shows_date:
                day = dates.get(raw)
                if day is None:
                    day = dates[raw] = _xlsx_cell(from_excel(number, epoch))
                return day
            return _xlsx_cell(number)

        def value(cell: Any) -> Cell:
            """Any cell, as the format allows it; `read` takes the shapes a download has without it."""
            kind = cell.get("t", "n")
            if kind == "inlineStr":
                found = cell.find(_IS)
                return text(found) if found is not None else ""
            raw = cell.findtext(_V)
            if raw is None or raw == "":
                return ""
            return scalar(kind, raw, cell.get("s"))

        def read(row: Any) -> tuple[Cell, ...]:
            """A row's cells. The shapes a download writes (<is><t>, <v> of a shared string or of a number in a
            date style already seen) are read here with what lxml does in C: a child by its index and its tag.
            `find` runs ElementPath's Python code and `iterchildren(tag)` builds a tag matcher, per call: for
            780,000 cells that was the most of the time. Any other cell is `value`'s."""
            cells: list[Cell] = []
            for cell in row.iterchildren(_C):
                reference = cell.get("r")
                if reference:
                    letters = reference.rstrip(_DIGITS)
                    column = columns.get(letters)
                    if column is None:
                        column = columns[letters] = _letters_index(letters)
                    if column > len(cells):
                        cells.extend([""] * (column - len(cells)))
                if len(cell):
                    kind, first = cell.get("t"), cell[0]
                    if kind == "inlineStr":
                        if first.tag == _IS and len(first) == 1:
                            only = first[0]
                            if only.tag == _T:
                                cells.append(only.text or "")
                                continue
                    elif first.tag == _V:
                        raw = first.text
                        if not raw:
                            cells.append("")
                            continue
                        if kind == "s":
                            cells.append(strings[int(raw)])
                            continue
                        if kind is None or kind == "n":
                            day = dates.get(raw) if date_style.get(cell.get("s")) else None
                            if day is not None:
                                cells.append(day)
                                continue
                cells.append(value(cell))
            return tuple(cells)

        assert sheets[0].part is not None
        with archive.open(sheets[0].part) as source:
            try:
                plain = _plain_rows(source, scalar, lambda part: etree.fromstring(part, etree.XMLParser(**_XML)))
            except Exception:                          # anything unexpected there: the general way says what
                plain = None
        if plain is not None:
            return plain
        rows: list[Row] = []
        number = 0
        with archive.open(sheets[0].part) as source:
            for _, row in etree.iterparse(source, events=("end",), tag=_ROW, **_XML):
                number = int(row.get("r") or number + 1)
                rows.append(Row(number, read(row)))
                row.clear()
                while row.getprevious() is not None:          # what is read is let go: memory stays flat
                    del row.getparent()[0]
        return rows
    except Exception as exc:
        raise _not_readable(path, exc) from None


# A sheet as openpyxl writes it (the sandbox's downloads; 100,000 rows are 43 MB of XML) is read by `_plain_rows`
# without building a tree: lxml's iterparse alone, before any cell is read, took as long as the whole CSV plan
# spends reading its files. The rows must be in one strict form, in which the text is the XML's own: attributes
# in openpyxl's order, no comments, CDATA, whitespace or other entities between or in the tags, and the part
# around <sheetData> is parsed by lxml with a marker in its place. Anything else, and any cell whose value
# cannot be read, goes the general way (lxml), which then reads it, or says what is wrong, as it always has.
_PLAIN_TEXT = r'[^<&\r\x00-\x08\x0b\x0c\x0e-\x1f]*(?:&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);' \
              r'[^<&\r\x00-\x08\x0b\x0c\x0e-\x1f]*)*'
#: A cell: its reference's letters, s, t, the text of its <v> and of its <is><t>.
_PLAIN_CELL = (r'<c r="([A-Z]+)[0-9]+"(?: s="([0-9]+)")?(?: t="([A-Za-z]+)")?(?:/>|>(?:<v>(' + _PLAIN_TEXT + r')</v>'
               r'|<v/>|<is><t(?: xml:space="preserve")?>(' + _PLAIN_TEXT + r')</t></is>'
               r'|<is><t(?: xml:space="preserve")?/></is>)?</c>)')
#: A row's start (its number, "/" if it is empty), a row's end, a cell, or any other character (not the form).
_PLAIN_TOKEN = re.compile(r'<row r="([0-9]+)"(/?)>|(</row>)|' + _PLAIN_CELL + '|.', re.DOTALL)
_PLAIN_REF = re.compile(r"&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);")
_PLAIN_CHAR_REF = re.compile(r"&#(x?)([0-9a-fA-F]+);")
_PLAIN_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_PLAIN_MARK = "urn:reconciler:sheet-data"
_PLAIN_CHUNK = 1 << 20
_PLAIN_LIMIT = 8 << 20              # a row or the part around the rows longer: the general way (so a text stays
                                    # under the 10 MB lxml refuses without huge_tree, as the general way would)
#: The general way's value of a cell of type t (not inlineStr) whose <v> holds a text (not empty), with its s.
_Scalar = Callable[[str, str, str | None], Cell]


class _NotPlain(Exception):
    """The sheet is not in the strict form `_plain_rows` reads."""


def _plain_rows(source: Any, scalar: _Scalar, parse: Callable[[bytes], Any]) -> list[Row] | None:
    """The rows of a worksheet part in openpyxl's strict form, as the general way reads them; None for any other
    sheet. `scalar` is the general way's value of a <v>, `parse` its XML parser."""
    head = b""
    while (at := head.find(b"<sheetData>")) < 0:
        chunk = source.read(_PLAIN_CHUNK)
        if not chunk or len(head) > _PLAIN_LIMIT:
            return None
        head += chunk
    prefix, buffer = head[:at], head[at + len(b"<sheetData>"):]
    rows: list[Row] = []
    state = _PlainState(rows, scalar)
    while True:
        end = buffer.find(b"</sheetData>")
        if end >= 0:
            state.feed(buffer[:end])
            suffix = buffer[end + len(b"</sheetData>"):] + source.read(_PLAIN_LIMIT + 1)
            break
        cut = buffer.rfind(b"</row>")
        if cut >= 0:
            state.feed(buffer[:cut + 6])
            buffer = buffer[cut + 6:]
        chunk = source.read(_PLAIN_CHUNK)
        if not chunk or len(buffer) > _PLAIN_LIMIT:
            return None
        buffer += chunk
    if state.cells is not None or len(suffix) > _PLAIN_LIMIT:
        return None
    # the part around the rows, with a marked <sheetData/> where they were: well-formed, UTF-8 XML 1.0 without
    # a DTD, the marker an element of the main namespace (not in a comment), no other row anywhere
    skeleton = parse(prefix + f'<sheetData xmlns:m="{_PLAIN_MARK}" m:m="1"/>'.encode() + suffix)
    info = skeleton.getroottree().docinfo
    marked = [e for e in skeleton.iter(_MAIN + "sheetData") if e.get(f"{{{_PLAIN_MARK}}}m") == "1"]
    if (info.xml_version != "1.0" or (info.encoding or "").upper() not in ("UTF-8", "UTF8") or info.doctype
            or len(marked) != 1 or sum(1 for _ in marked[0].iterancestors()) > 200
            or next(skeleton.iter(_ROW), None) is not None):
        return None
    return rows


class _PlainState:
    """The rows of `_plain_rows` as they are fed, a run of whole rows at a time."""

    def __init__(self, rows: list[Row], scalar: _Scalar) -> None:
        self.rows, self.scalar = rows, scalar
        self.cells: list[Cell] | None = None
        self.number = 0
        self.columns: dict[str, int] = {}             # a reference's letters -> the column
        self.width: int | None = None                 # the cells of a row, as the first row has them; 0: not so
        self.plans: dict[tuple[tuple[str, ...], ...], list[tuple[int, str, str | None]]] = {}

    def feed(self, data: bytes) -> None:
        text = data.decode()                           # UTF-8 throughout, in a cell read or not
        if "]]>" in text or "\ufffe" in text or "\uffff" in text:      # not allowed in XML text
            raise _NotPlain
        if "&#" in text:                               # every character reference, in a cell read or not
            for match in _PLAIN_CHAR_REF.finditer(text):
                _plain_char(int(match.group(2), 16) if match.group(1) else int(match.group(2)))
        escaped = "&" in text
        if self.width is None:
            self.width = text[:text.find("</row>")].count("<c ")
        if self.width and not escaped and self.cells is None:
            whole = self.whole_rows(text)
            if whole is not None:
                self.rows.extend(whole)
                return
            self.width = 0                                  # rows of other widths: each cell on its own
        rows, columns, scalar = self.rows, self.columns, self.scalar
        cells, number = self.cells, self.number
        for start, empty, end, letters, style, kind, raw, inline in _PLAIN_TOKEN.findall(text):
            if letters:
                if cells is None:
                    raise _NotPlain
                column = columns.get(letters)
                if column is None:
                    column = columns[letters] = _letters_index(letters)
                if column > len(cells):
                    cells.extend([""] * (column - len(cells)))
                if kind == "inlineStr":
                    cells.append(_plain_unescape(inline) if escaped and "&" in inline else inline)
                elif raw:
                    cells.append(scalar(kind or "n", _plain_unescape(raw) if escaped and "&" in raw else raw,
                                        style or None))
                else:
                    cells.append("")
            elif start:
                if cells is not None:
                    raise _NotPlain
                number = int(start)
                if empty:
                    rows.append(Row(number, ()))
                else:
                    cells = []
            elif end:
                if cells is None:
                    raise _NotPlain
                rows.append(Row(number, tuple(cells)))
                cells = None
            else:                                      # a character of no token: not the strict form
                raise _NotPlain
        self.cells, self.number = cells, number

    def whole_rows(self, text: str) -> list[Row] | None:
        """The rows of `text` when each has `width` cells in columns A, B, C...: one match a row, and per row only
        the cells that are not inline strings are looked at (a download's 100,000 rows are of one shape); None
        when a row is not so, for `feed` to read cell by cell."""
        assert self.width
        rows: list[Row] = []
        scalar, plans = self.scalar, self.plans
        for found in _plain_row_pattern(self.width).findall(text):
            if not found[0]:
                return None
            shape = (found[1::5], found[2::5], found[3::5])          # the letters, s and t of each cell
            plan = plans.get(shape)
            if plan is None:
                letters, styles, kinds = shape
                if [_letters_index(each) for each in letters] != list(range(len(letters))):
                    return None                                 # a column skipped: `feed` fills it
                plan = plans[shape] = [(index, kind or "n", style or None)
                                       for index, (style, kind) in enumerate(zip(styles, kinds))
                                       if kind != "inlineStr"]
            cells: list[Cell] = list(found[5::5])               # each cell's <is><t> text
            for index, kind, style in plan:
                raw = found[4 + 5 * index]
                cells[index] = scalar(kind, raw, style) if raw else ""
            rows.append(Row(int(found[0]), tuple(cells)))
        return rows


@lru_cache(maxsize=16)
def _plain_row_pattern(width: int) -> re.Pattern[str]:
    """A row of `width` cells, or any other character."""
    return re.compile(r'<row r="([0-9]+)">' + _PLAIN_CELL * width + '</row>|.', re.DOTALL)


def _plain_unescape(text: str) -> str:
    def char(match: re.Match[str]) -> str:
        name = match.group(1)
        if name[0] != "#":
            return _PLAIN_NAMED[name]
        return _plain_char(int(name[2:], 16) if name[1] == "x" else int(name[1:]))

    return _PLAIN_REF.sub(char, text)


def _plain_char(code: int) -> str:
    """The character a reference names, if XML allows it; lxml refuses the file otherwise: let it say so."""
    if not (code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD
            or 0x10000 <= code <= 0x10FFFF):
        raise _NotPlain
    return chr(code)


def _not_readable(path: Path, exc: Exception) -> ImportFailure:
    return ImportFailure(f"{path}: not a readable .xlsx file ({type(exc).__name__}: {exc}); download it again "
                         "as .xlsx or .csv")


def _number(raw: str) -> int | float:
    """A number cell's text as the number it is: an int unless it has a decimal point or an exponent."""
    return float(raw) if "." in raw or "e" in raw or "E" in raw else int(raw)


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
