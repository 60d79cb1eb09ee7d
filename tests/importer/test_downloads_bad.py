"""Bad downloads under `--backend export:DIR` (issue 14, section 4): each is one message that names the file, the
row and the column where there is one, exit 1, no traceback, and nothing planned. The downloads are the
sandbox's own (`reconciler sandbox export`), spoilt one way per test, so everything else in them is good.
(A missing column, a date in another format, a file of another kind and an empty file are in test_downloads.)"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import openpyxl
import pytest
from click.testing import Result

from reconciler.importer.model import ImportFailure
from reconciler.importer.table import Row

from tests.importer.test_downloads import EXAMPLE, KVK, TODAY, export, run, sandbox


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    shutil.copy(EXAMPLE, tmp_path / "org.yaml")
    applied = run("apply", "org.yaml", "--auto-approve", "-q", "--audit-log", "-", "--today", TODAY,
                  "--backend", sandbox(tmp_path))
    assert applied.exit_code == 0, applied.output
    return tmp_path


def downloads(repo: Path, fmt: str = "csv") -> Path:
    """The example organisation's downloads, in `fmt` only; the folder they are in."""
    export(repo, fmt)
    return repo / "dl" / KVK


def plan(repo: Path) -> Result:
    return run("plan", "org.yaml", "--today", TODAY, "--backend", f"export:{repo / 'dl'}")


def refused(repo: Path, *says: str) -> str:
    """The plan through the downloads is refused with every one of `says` in the message; the message."""
    made = plan(repo)
    assert made.exit_code == 1, made.output
    assert "Traceback" not in made.output and "internal error" not in made.output.lower()
    assert made.stdout == ""                                        # nothing planned
    for text in says:
        assert text in made.stderr, made.stderr
    return made.stderr


def rewrite(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace `old` by `new` in a CSV download (`count` times: each must be there)."""
    text = path.read_text(encoding="utf-8-sig")
    assert text.count(old) >= count, (old, text)
    path.write_text(text.replace(old, new, count), encoding="utf-8-sig")


def test_an_unknown_role_word_is_positioned(repo: Path) -> None:
    """`Medewerker` is no role of the Beheermodule's (Beheerder, Gebruiker): the cell is named, not guessed."""
    users = downloads(repo) / "gebruikers.csv"
    rewrite(users, ";p.jansen@ketelaarklip.nl;Gebruiker;", ";p.jansen@ketelaarklip.nl;Medewerker;")
    row = 1 + next(i for i, line in enumerate(users.read_text(encoding="utf-8-sig").splitlines()) if "p.jansen" in line)
    refused(repo, f"gebruikers.csv: row {row}, column 'Rol' (D): 'Medewerker' is not a role",
            "allowed: Beheerder, Gebruiker")


def test_an_xlsx_with_two_sheets_is_refused_naming_them(repo: Path) -> None:
    """A download is one sheet; reading the first of two could judge the wrong overview without a word."""
    users = downloads(repo, "xlsx") / "gebruikers.xlsx"
    assert plan(repo).exit_code in (0, 2)                          # the download as written is good
    book = openpyxl.load_workbook(users)
    book.create_sheet("Notities").append(["iets", "anders"])
    book.save(users)
    refused(repo, "gebruikers.xlsx: the workbook has 2 sheets ('Gebruikers', 'Notities')",
            "save the overview's sheet alone")


def test_an_xlsx_with_two_sheets_is_refused_by_import_from_csv_too(tmp_path: Path) -> None:
    """One reader, one rule: `import --from-csv` does not pick the first sheet either."""
    book = openpyxl.Workbook()
    book.active.title = "Oud"
    book.active.append(["Naam", "E-mailadres", "Rol", "Niveau"])
    book.active.append(["Johan Bakker", "j.bakker@acme.nl", "Beheerder", "EH3"])
    book.create_sheet("Nieuw").append(["Naam", "E-mailadres", "Rol", "Niveau"])
    book.save(tmp_path / "export.xlsx")
    made = run("import", "--from-csv", str(tmp_path / "export.xlsx"), "--kvk", KVK, "--out", str(tmp_path / "out"))
    assert made.exit_code == 1 and "Traceback" not in made.output, made.output
    assert "export.xlsx: the workbook has 2 sheets ('Oud', 'Nieuw')" in made.stderr
    assert not (tmp_path / "out").exists()


def test_an_authorisation_of_someone_not_in_the_users_file_is_positioned(repo: Path) -> None:
    """The e-mail links an authorisation to a person: one that is not in the users download is named by its cell,
    not dropped (dropping it would plan a grant that exists) and not guessed."""
    rewrite(downloads(repo) / "machtigingen.csv", ";j.bakker@ketelaarklip.nl;TenderNed",
            ";iemand@elders.nl;TenderNed")
    refused(repo, "machtigingen.csv: row 3, column C: iemand@elders.nl is not in the users download of "
            f"{KVK}", "download both overviews together")


@pytest.mark.parametrize("kvk, says", [
    ("4747474", "'4747474' is not a KvK number; the intermediary's KvK number has 8 digits (a leading 0 lost"),
    ("474747470", "'474747470' is not a KvK number"),
    ("4747474X", "'4747474X' is not a KvK number"),
    ("", "column A: empty; the intermediary's KvK number has 8 digits"),
])
def test_a_chain_kvk_that_is_not_8_digits_is_positioned(repo: Path, kvk: str, says: str) -> None:
    """A KvK number is never padded or cut into another company's: before, `4747474` was read as 04747474 and
    the plan removed the real chain authorisation and issued one to 47474747 again."""
    rewrite(downloads(repo) / "ketenmachtigingen.csv", "47474747;Accountants Vries;Werkgeversportaal",
            f"{kvk};Accountants Vries;Werkgeversportaal")
    refused(repo, "ketenmachtigingen.csv: row 3, column A: " + says.split("column A: ")[-1])


def test_a_chain_kvk_as_a_number_cell_gets_its_leading_zero_back(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """In an XLSX, Excel turns `04747474` into the number 4747474: a number cell is padded back, so the chain
    authorisation reads the same as text or as a number and the plan stays empty."""
    monkeypatch.chdir(tmp_path)
    config = EXAMPLE.read_text(encoding="utf-8")
    assert config.count("47474747") == 1
    (tmp_path / "org.yaml").write_text(config.replace("47474747", "04747474"), encoding="utf-8")
    for _ in range(2):                                      # the second apply finishes what the first deferred
        run("apply", "org.yaml", "--auto-approve", "-q", "--audit-log", "-", "--today", TODAY,
            "--backend", sandbox(tmp_path))
        run("sandbox", "approve", "--all", "--backend", sandbox(tmp_path))
        run("sandbox", "activate", "--all", "--backend", sandbox(tmp_path))
    chains = downloads(tmp_path, "xlsx") / "ketenmachtigingen.xlsx"
    assert plan(tmp_path).exit_code == 0, plan(tmp_path).output
    book = openpyxl.load_workbook(chains)
    cells = [cell for (cell,) in book.active.iter_rows(min_row=2, max_col=1)]
    assert [c.value for c in cells] == ["04747474", "04747474"]
    for cell in cells:
        cell.value = int(cell.value)
    book.save(chains)
    as_number = plan(tmp_path)
    assert as_number.exit_code == 0, as_number.output


@pytest.mark.parametrize("content, says", [
    (b"ID;Naam\n1;iemand\n", "not a readable .xlsx file (BadZipFile"),
    (None, "not a readable .xlsx file (KeyError"),
])
def test_an_xlsx_that_is_not_a_workbook_is_named(repo: Path, content: bytes | None, says: str) -> None:
    """A CSV saved under .xlsx, or a zip that is not a workbook, in the folder: the file is named, with what to
    do; the good downloads beside it are not read as if it were not there."""
    extra = downloads(repo) / "overzicht.xlsx"
    if content is None:
        with zipfile.ZipFile(extra, "w") as archive:
            archive.writestr("word/document.xml", "<w:document/>")
    else:
        extra.write_bytes(content)
    refused(repo, f"overzicht.xlsx: {says}", "download it again as .xlsx or .csv")


# ----------------------------------------------------------------------------------------------- row order
def test_a_revoke_through_the_downloads_is_the_apis_to_the_item_id(repo: Path) -> None:
    """The downloads list authorisations by provider and name, the API by service UUID; a revoke step lists its
    services in the order they were read and its item id hashes them, so the downloads are read in the API's
    order: the plan (and the runbook's item ids) is the same through either."""
    for step in ("approve", "activate"):
        assert run("sandbox", step, "--all", "--backend", sandbox(repo)).exit_code == 0
    assert run("apply", "org.yaml", "--auto-approve", "-q", "--audit-log", "-", "--today", TODAY,
               "--backend", sandbox(repo)).exit_code == 0
    config = repo / "org.yaml"
    sevda = ("    groups: [finance]\n    authorisations:\n"
             "      - {service: gemeente-baarn/zaaksysteem, until: 2027-06-30}\n")
    assert sevda in config.read_text(encoding="utf-8")        # Gemeente Baarn, Mijn Overheid, RVO.nl: not by UUID
    config.write_text(config.read_text(encoding="utf-8").replace(sevda, ""), encoding="utf-8")
    downloads(repo)

    def changes(backend: str) -> list[tuple[str, str, list[str], str]]:
        made = run("plan", "org.yaml", "--format", "json", "--today", TODAY, "--backend", backend)
        assert made.exit_code == 2, made.output
        [org] = json.loads(made.stdout)["organisations"]
        return [(c["id"], c["action"], c["services"], c["target"]) for c in org["changes"]]

    via_api = changes(sandbox(repo))
    assert [c for c in via_api if c[1] == "revoke" and len(c[2]) == 3]         # Sevda's three, in one step
    assert changes(f"export:{repo / 'dl'}") == via_api


# ------------------------------------------------------------------------------------------ the XLSX reader
_NS = ('xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
       'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"')
_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _workbook(path: Path, sheet: str, strings: str, *, date1904: bool = False) -> Path:
    """A workbook written part by part, as a spreadsheet program (not openpyxl) writes one: shared strings with
    rich-text runs and phonetic guides, a custom date format, cells that skip columns."""
    parts = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                               '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
                               'relationships+xml"/><Override PartName="/xl/workbook.xml" ContentType="application/'
                               'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override '
                               'PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
                               'officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.'
                               'xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
                               'sharedStrings+xml"/><Override PartName="/xl/styles.xml" ContentType="application/'
                               'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>',
        "_rels/.rels": '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                       f'<Relationship Id="rId1" Type="{_RELS}/officeDocument" Target="xl/workbook.xml"/>'
                       '</Relationships>',
        "xl/workbook.xml": f'<workbook {_NS}><workbookPr date1904="{int(date1904)}"/><sheets>'
                           '<sheet name="Gebruikers" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
                                      f'relationships"><Relationship Id="rId1" Type="{_RELS}/worksheet" '
                                      'Target="worksheets/sheet1.xml"/><Relationship Id="rId2" '
                                      f'Type="{_RELS}/sharedStrings" Target="sharedStrings.xml"/><Relationship '
                                      f'Id="rId3" Type="{_RELS}/styles" Target="/xl/styles.xml"/></Relationships>',
        "xl/styles.xml": f'<styleSheet {_NS}><numFmts count="1"><numFmt numFmtId="164" formatCode="dd\\-mm\\-yyyy"/>'
                         '</numFmts><cellXfs count="3"><xf numFmtId="0"/><xf numFmtId="164"/><xf numFmtId="14"/>'
                         '</cellXfs></styleSheet>',
        "xl/sharedStrings.xml": f'<sst {_NS}>{strings}</sst>',
        "xl/worksheets/sheet1.xml": f'<worksheet {_NS}><sheetData>{sheet}</sheetData></worksheet>',
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in parts.items():
            archive.writestr(name, '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + text)
    return path


@pytest.mark.filterwarnings("ignore:Workbook contains no default style")        # openpyxl, about the hand-made styles
def test_an_xlsx_as_a_spreadsheet_program_writes_it_reads_as_openpyxl_reads_it(tmp_path: Path) -> None:
    """The XLSX reader is reconciler's own (openpyxl's took 13 s for 100,000 rows): every kind of cell reads as
    openpyxl reads it, and positions (rows and skipped columns) are the spreadsheet's."""
    from reconciler.importer.table import _xlsx_cell, read_table

    strings = ('<si><t>Naam</t></si><si><t>E-mailadres</t></si><si><r><t>Johan </t></r><r><rPr><b/></rPr>'
               '<t>Bakker</t></r><rPh sb="0" eb="1"><t>ヨハン</t></rPh></si>'
               '<si><t xml:space="preserve"> Rol </t></si>')
    sheet = ('<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c><c r="D1" t="s"><v>3</v></c></row>'
             '<row r="3"><c r="A3" t="s"><v>2</v></c><c r="B3" t="inlineStr"><is><t>j@acme.nl</t></is></c>'
             '<c r="C3" s="1"><v>47442</v></c><c r="D3" t="str"><f>"Beheer"&amp;"der"</f><v>Beheerder</v></c>'
             '<c r="E3" t="b"><v>1</v></c><c r="F3"><v>612345678</v></c><c r="G3"><v>2.5</v></c>'
             '<c r="H3" s="2"><v>45000</v></c><c r="I3" t="e"><v>#N/A</v></c>'
             '<c r="J3" t="d"><v>2026-07-21T00:00:00</v></c></row>')
    for date1904 in (False, True):
        path = _workbook(tmp_path / f"book{int(date1904)}.xlsx", sheet, strings, date1904=date1904)
        table = read_table(path)
        assert table.kind == "XLSX" and table.header_row == 1
        assert table.header == ("Naam", "E-mailadres", "", "Rol")
        [row] = table.rows
        assert row.number == 3
        base = dt.date(1904, 1, 1) if date1904 else dt.date(1899, 12, 30)
        assert row.cells == ("Johan Bakker", "j@acme.nl", base + dt.timedelta(days=47442), "Beheerder", "True",
                             612345678, 2.5, base + dt.timedelta(days=45000), "#N/A", dt.date(2026, 7, 21))
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        by_openpyxl = [tuple(_xlsx_cell(v) for v in values)
                       for values in book.worksheets[0].iter_rows(values_only=True)]
        book.close()
        assert tuple(c for c in by_openpyxl[2] if c != "") == tuple(c for c in row.cells if c != "")


def test_an_xlsx_cell_in_a_shape_no_download_has_reads_as_the_format_says(tmp_path: Path) -> None:
    """The reader takes the shapes a download writes (<is><t>, a shared string's <v>, a number in a date style it
    has seen) by a short way and every other cell the general way: a comment before the value, rich text with a
    phonetic guide, two text runs, a formula before the value, a number of the same text in a date style and
    out of it, an empty <v>, a cell without its <is> read as the format says, not as the short way would guess."""
    from reconciler.importer.table import read_table

    strings = '<si><t>Naam</t></si>'
    sheet = ('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'
             '<row r="2"><c r="A2" t="inlineStr"><is><r><t>Jo</t></r><r><rPr><b/></rPr><t>han</t></r>'
             '<rPh sb="0" eb="1"><t>ヨハン</t></rPh></is></c>'
             '<c r="B2" t="inlineStr"><!--x--><is><t>a</t></is></c>'
             '<c r="C2" t="inlineStr"><is><t>b</t><t>c</t></is></c>'
             '<c r="D2" s="1"><f>TODAY()</f><v>47442</v></c>'
             '<c r="E2" s="1"><v>47442</v></c>'
             '<c r="F2"><v>47442</v></c>'
             '<c r="G2" s="0" t="n"><v>47442</v></c>'
             '<c r="H2" t="s"><!--x--><v>0</v></c>'
             '<c r="I2" t="n"><v></v></c>'
             '<c r="J2" t="inlineStr"/>'
             '<c r="K2" t="inlineStr"><v>9</v></c>'
             '<c r="L2"><is><t>z</t></is></c>'
             '<c r="M2" t="str"><v>x</v></c>'
             '<c r="N2" t="inlineStr"><is><t>a<!--x-->b</t></is></c></row>'
             '<row r="3"><c r="A3" s="2"><v>47442</v></c><c r="B3" s="1"><v>45000.5</v></c><c r="C3"><v>2.0</v></c>'
             '<c r="D3" t="s"><v>0</v></c></row>')
    day = dt.date(1899, 12, 30) + dt.timedelta(days=47442)
    table = read_table(_workbook(tmp_path / "shapes.xlsx", sheet, strings))
    assert table.header == ("Naam",)
    assert [(row.number, row.cells) for row in table.rows] == [
        (2, ("Johan", "a", "bc", day, day, 47442, 47442, "Naam", "", "", "", "", "x", "a")),
        (3, (day, dt.date(1899, 12, 30) + dt.timedelta(days=45000), 2, "Naam"))]


def _with_sheet(path: Path, sheet: bytes) -> Path:
    """`path` (a `_workbook`) with its worksheet part replaced by `sheet`, byte for byte."""
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    parts["xl/worksheets/sheet1.xml"] = sheet
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return path


_HEAD = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet {_NS}>'.encode()


@pytest.mark.parametrize("variant", ["rows of one shape", "entities", "rows of several shapes", "a column skipped"])
def test_an_xlsx_in_openpyxl_s_own_form_reads_as_lxml_reads_it(tmp_path: Path, variant: str) -> None:
    """A sheet as openpyxl writes it (the sandbox's downloads) is read without lxml building a tree, rows of one
    shape a row at a time: every cell reads as it does the general way, which the same sheet with a comment
    in it (no longer openpyxl's form) takes."""
    from reconciler.importer.table import read_table

    escaped = variant == "entities"
    name = "A &amp; B &#x1F600;" if escaped else "A B"
    rows = ['<row r="1"><c r="A1" t="inlineStr"><is><t>Naam</t></is></c><c r="B1" t="inlineStr"><is><t>Einddatum'
            '</t></is></c><c r="C1" t="inlineStr"><is><t>Aantal</t></is></c></row>']
    rows += [f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>User {n}</t></is></c><c r="B{n}" s="1" t="n"><v>47442'
             f'</v></c><c r="C{n}" t="n"><v>2.5</v></c></row>' for n in range(2, 40)]
    rows += [f'<row r="40"><c r="A40" t="inlineStr"><is><t xml:space="preserve"> {name} </t></is></c>'
             '<c r="B40" t="inlineStr"></c><c r="C40" t="n"/></row>']
    if variant == "a column skipped":              # as wide as the others, but no column C
        rows += ['<row r="41"><c r="A41" t="inlineStr"><is><t>x</t></is></c><c r="B41" t="inlineStr"><is><t>y</t>'
                 '</is></c><c r="D41" t="inlineStr"><is><t>z</t></is></c></row>']
    if variant == "rows of several shapes":
        rows += ['<row r="41"><c r="A41" t="s"><v>0</v></c><c r="C41" s="2" t="n"><v>45000</v></c></row>',
                 '<row r="43"/><row r="44"><c r="A44" t="b"><v>1</v></c><c r="B44" t="n"><v></v></c>'
                 '<c r="C44" t="inlineStr"><is><t/></is></c></row>']
    tables = []
    for shown, comment in (("plain", ""), ("general", "<!-- not openpyxl's -->")):
        path = _with_sheet(_workbook(tmp_path / f"{shown}.xlsx", "", "<si><t>Gedeeld</t></si>"),
                           _HEAD + f'<sheetData>{comment}{"".join(rows)}</sheetData></worksheet>'.encode())
        tables.append(read_table(path))
    plain, general = tables
    day = dt.date(1899, 12, 30) + dt.timedelta(days=47442)
    assert plain == replace(general, source=plain.source)
    assert plain.header == ("Naam", "Einddatum", "Aantal")
    assert plain.rows[0] == Row(2, ("User 2", day, 2.5))
    assert plain.rows[38] == Row(40, (" A & B 😀 " if escaped else " A B ", "", ""))
    assert [(row.number, row.cells) for row in plain.rows[39:]] == {
        "rows of several shapes": [(41, ("Gedeeld", "", dt.date(1899, 12, 30) + dt.timedelta(days=45000))),
                                   (44, ("True", "", ""))],
        "a column skipped": [(41, ("x", "y", "", "z"))]}.get(variant, [])


@pytest.mark.parametrize("sheet, expected", [
    # rows in a comment, where a <sheetData> seems to begin: they are no rows
    (b'<!-- <sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Naam</t></is></c></row></sheetData> -->'
     b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Echt</t></is></c></row></sheetData>', ("Echt",)),
    # rows after the <sheetData>: read too, as lxml finds them
    (b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Naam</t></is></c></row></sheetData><sheetData>'
     b'<row r="2"><c r="A2" t="inlineStr"><is><t>Later</t></is></c></row></sheetData>', ("Naam", "Later")),
    # a character XML does not allow, in a cell no value is taken from
    (b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Naam</t></is></c><c r="B1" t="n"><is><t>&#0;</t>'
     b'</is></c></row></sheetData>', "XMLSyntaxError"),
    # bytes that are not UTF-8, in a cell no value is taken from
    (b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Naam</t></is></c><c r="B1" t="n"><is><t>\xff</t>'
     b'</is></c></row></sheetData>', "XMLSyntaxError"),
    # a space between two cells
    (b'<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Naam</t></is></c> <c r="B1" t="inlineStr"><is><t>Rol'
     b'</t></is></c></row></sheetData>', ("Naam", "Rol")),
], ids=["rows in a comment", "a second sheetData", "a refused character", "not UTF-8", "a space"])
def test_an_xlsx_that_only_looks_like_openpyxl_s_form_reads_as_lxml_reads_it(tmp_path: Path, sheet: bytes,
                                                                            expected: tuple[str, ...] | str) -> None:
    """What around or in the rows makes the file another one than openpyxl's form says (a comment, a second
    <sheetData>, a character or bytes XML refuses where no value is read) is read, or refused, as lxml does."""
    from reconciler.importer.table import read_table

    path = _with_sheet(_workbook(tmp_path / "book.xlsx", "", ""), _HEAD + sheet + b"</worksheet>")
    if isinstance(expected, str):
        with pytest.raises(ImportFailure, match=f"not a readable .xlsx file \\({expected}"):
            read_table(path)
    else:
        table = read_table(path)
        assert table.header + tuple(c for row in table.rows for c in row.cells) == expected


def test_an_xlsx_with_entities_expands_nothing(tmp_path: Path) -> None:
    """A hostile workbook (an entity that would grow to gigabytes, an external one) is read without resolving
    either: the cell holds no expansion and nothing is fetched."""
    from reconciler.importer.table import read_table

    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    strings = f'<si><t>Naam</t></si><si><t>&l9;&ext;</t></si>'
    path = _workbook(tmp_path / "evil.xlsx", '<row r="1"><c r="A1" t="s"><v>0</v></c></row>'
                     '<row r="2"><c r="A2" t="s"><v>1</v></c></row>', strings)
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    parts["xl/sharedStrings.xml"] = parts["xl/sharedStrings.xml"].replace(
        b"\n<sst", f'\n<!DOCTYPE sst [<!ENTITY l0 "lol">{laughs}<!ENTITY ext SYSTEM "file:///etc/passwd">]>\n<sst'
        .encode())
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    try:
        table = read_table(path)
    except ImportFailure as exc:
        assert "not a readable .xlsx file" in str(exc)
    else:
        assert all(len(str(c)) < 100 and "root:" not in str(c) for r in table.rows for c in r.cells), table.rows
