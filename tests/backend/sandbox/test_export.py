"""`reconciler.backend.sandbox.export`: the sandbox written as the Beheermodule's downloads. The users file is
read back by the importer's own reader (`reconciler.importer.export`) into the same people; the authorisations
and chain authorisations files have the documented columns (docs/exports.md) and one row per authorisation
and per (intermediary, service), each with its own end date (R18); CSV and XLSX carry the same rows; a hostile
name is never a formula in either."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import anyio
import openpyxl
import pytest

from reconciler.backend.sandbox import export as exporting
from reconciler.backend.sandbox.export import (
    AUTHORISATION_COLUMNS, CHAIN_COLUMNS, USER_COLUMNS, ExportRefused, Overview, csv_bytes, factor_words,
)
from reconciler.domain.levels import Level
from reconciler.domain.means import Role, SecondFactorType
from reconciler.domain.state import Means, Status, World
from reconciler.importer.export import read_people
from reconciler.importer.table import read_table
from reconciler.render.safe import csv_text
from tests.importer.common import Repo

ACME, OTHER = "12345678", "87654321"
HOSTILE = "=cmd|' /C calc'!A0"
SMS_NL = {"type": "sms", "phone": "+31611112222"}
SMS_BE = {"type": "sms", "phone": "+32470123456"}


def _person(email: str, level: str, role: str = "gebruiker", **extra: Any) -> dict[str, Any]:
    user: dict[str, Any] = {"email": email, "name": email.split("@")[0].title(), "role": role, "level": level}
    if level in ("EH2+", "EH3", "EH4"):
        user["second_factor"] = {"type": "otp"}
    user.update(extra)
    return user


def build(tmp_path: Path, *, hostile: bool = False) -> Repo:
    """Organisation ACME with a person in every status, SMS (Dutch and Belgian), OTP and no second factor,
    dated and rolling authorisations, and one intermediary with two services ending on different days; OTHER
    shares its admin (R15). With `hostile`, a person and the intermediary carry formula-like names."""
    repo = Repo(tmp_path)
    users = [
        _person("admin@acme.nl", "EH3", "beheerder"),
        _person("boss@acme.nl", "EH3", "beheerder", second_factor=SMS_NL),
        _person("active@acme.nl", "EH3", authorisations=[
            {"service": "uwv/werkgeversportaal", "until": "2027-05-01"},
            {"service": "rvo/tenderned", "until": "rolling"}]),
        _person("belg@acme.nl", "EH2+", second_factor=SMS_BE,
                authorisations=[{"service": "rvo/tenderned", "until": "2026-12-31"}]),
        _person("plain@acme.nl", "EH2", name=HOSTILE if hostile else "Plain"),
        _person("wait@acme.nl", "EH2+"),
        _person("lapsed@acme.nl", "EH3"),
    ]
    chains = {"chain_authorisations": [
        {"intermediary": {"kvk": "47474747", "name": "@SUM(1+1)" if hostile else "Accountants Vries"},
         "services": ["algemene-bevoegdheid-3"], "until": "2028-02-29"},
        {"intermediary": {"kvk": "47474747"}, "services": ["uwv/werkgeversportaal"], "until": "2029-10-14"}]}

    def acme(people: list[dict[str, Any]]) -> Path:
        return repo.write("acme.yaml", {"version": 1, "organisation": {"kvk": ACME, "name": "Acme B.V."},
                                        "policy": {"prune": False}, "users": people, **chains})

    other = repo.write("other.yaml", {"version": 1, "organisation": {"kvk": OTHER, "name": "Other"},
                                      "users": [_person("admin@acme.nl", "EH3", "beheerder")]})
    repo.apply(acme(users), other)
    repo.step("approve")
    repo.step("activate", *[u["email"] for u in users[1:] if u["email"] not in ("wait@acme.nl", "lapsed@acme.nl")])
    repo.apply(acme(users))                                           # the grants that waited for activation (R7)
    repo.step("expire", "lapsed@acme.nl")
    later = [u for u in users if u["email"] != "lapsed@acme.nl"] + [_person("new@acme.nl", "EH2")]
    repo.apply(acme(later))                                           # new@ stays awaiting approval
    return repo


def export(repo: Repo, out: Path, kvk: str | None = ACME, formats: tuple[str, ...] = ("csv", "xlsx")) -> list[Path]:
    return anyio.run(lambda: exporting.export(repo.backend, kvk=kvk, out=out, formats=formats, text=csv_text))


def world_of(repo: Repo) -> World:
    world, _ = anyio.run(exporting.read_sandbox, repo.backend, ACME)
    return world


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> tuple[Repo, Path]:
    """One sandbox state and its export (both formats), shared by the read-only tests below."""
    tmp = tmp_path_factory.mktemp("export")
    repo = build(tmp)
    written = export(repo, tmp / "out")
    assert sorted(p.name for p in written) == sorted(
        f"{name}.{fmt}" for name in ("gebruikers", "machtigingen", "ketenmachtigingen") for fmt in ("csv", "xlsx"))
    return repo, tmp / "out"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_the_users_file_reads_back_through_the_importers_reader(sandbox: tuple[Repo, Path], fmt: str) -> None:
    """Every member, with its role, level, status, activation deadline and second factor (with the number),
    as `reconciler import --from-csv` reads it."""
    repo, out = sandbox
    world = world_of(repo)
    table = read_table(out / f"gebruikers.{fmt}")
    assert table.header == USER_COLUMNS and table.header_row == 1
    people = {p.email: p for p in read_people(table)}
    members = world.orgs[ACME].members
    assert set(people) == {world.means[mid].email for mid in members}
    assert len(people) == 8
    for mid, membership in members.items():
        means = world.means[mid]
        person = people[means.email]
        assert (person.name, person.role, person.level, person.status) == (
            means.name, membership.role, means.level, means.status), means.email
        assert person.factor == means.second_factor and person.phone == means.phone, means.email
        row = next(r for r in table.rows if r.cells[2] == means.email)
        assert row.cells[0] == mid                                        # ID: the means' id
    assert people["boss@acme.nl"].phone == "+31611112222" and people["belg@acme.nl"].phone == "+32470123456"
    assert people["new@acme.nl"].status is Status.WACHTEN_OP_GOEDKEURING and people["new@acme.nl"].factor is None
    assert people["wait@acme.nl"].status is Status.WACHTEN_OP_ACTIVATIE
    assert people["wait@acme.nl"].deadline == world.means_by_email("wait@acme.nl").activation_deadline  # type: ignore[union-attr]
    assert people["lapsed@acme.nl"].status is Status.ACTIVATIE_VERLOPEN and people["lapsed@acme.nl"].deadline
    assert people["admin@acme.nl"].deadline is None and people["admin@acme.nl"].role is Role.BEHEERDER


def test_the_csv_is_the_beheermodules_flavour(sandbox: tuple[Repo, Path]) -> None:
    """`;`, UTF-8 with a BOM, CRLF, Dutch words, dates DD-MM-YYYY; rows by name."""
    _, out = sandbox
    data = (out / "gebruikers.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfID;Naam;E-mailadres;Rol;Status;Activatie einddatum;Niveau;Tweede factor\r\n")
    lines = data[3:].decode("utf-8").split("\r\n")
    assert lines[-1] == "" and len(lines) == 10
    rows = [line.split(";") for line in lines[1:-1]]
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), key=str.casefold)
    by_email = {r[2]: r for r in rows}
    assert by_email["boss@acme.nl"][3:] == ["Beheerder", "Actief", "", "EH3", "SMS | 0611112222"]
    assert by_email["belg@acme.nl"][3:] == ["Gebruiker", "Actief", "", "EH2+", "SMS | +32470123456"]
    assert by_email["new@acme.nl"][3:] == ["Gebruiker", "Wachten op goedkeuring", "", "EH2", ""]
    assert by_email["admin@acme.nl"][7] == "OTP"
    waiting = by_email["wait@acme.nl"]
    assert waiting[4] == "Wachten op activatie" and dt.datetime.strptime(waiting[5], "%d-%m-%Y")
    assert by_email["lapsed@acme.nl"][4] == "Activatie verlopen"


def test_authorisations_one_row_each_with_its_own_end_date(sandbox: tuple[Repo, Path]) -> None:
    repo, out = sandbox
    world = world_of(repo)
    table = read_table(out / "machtigingen.csv")
    assert table.header == AUTHORISATION_COLUMNS
    held = world.orgs[ACME].authorisations
    assert len(table.rows) == sum(len(services) for services in held.values()) == 3
    five_years = repo.today.replace(year=repo.today.year + 5).strftime("%d-%m-%Y")
    rows = {(r.cells[2], r.cells[3]): r.cells for r in table.rows}
    assert rows[("active@acme.nl", "Werkgeversportaal")][4:] == ("UWV", "EH3", "01-05-2027")
    assert rows[("active@acme.nl", "TenderNed authenticatie")][4:] == ("RVO.nl", "EH2", five_years)
    assert rows[("belg@acme.nl", "TenderNed authenticatie")][4:] == ("RVO.nl", "EH2", "31-12-2026")
    assert rows[("active@acme.nl", "Werkgeversportaal")][:2] == (world.means_by_email("active@acme.nl").id,  # type: ignore[union-attr]
                                                                 "Active")


def test_chain_authorisations_one_row_per_service_with_its_own_end_date(sandbox: tuple[Repo, Path]) -> None:
    """R18: the intermediary's two services end on different days, each on its own row."""
    _, out = sandbox
    table = read_table(out / "ketenmachtigingen.csv")
    assert table.header == CHAIN_COLUMNS
    assert [r.cells for r in table.rows] == [
        ("47474747", "Accountants Vries", "Algemene bevoegdheid niveau 3", "eHerkenning", "EH3", "29-02-2028"),
        ("47474747", "Accountants Vries", "Werkgeversportaal", "UWV", "EH3", "14-10-2029")]


@pytest.mark.parametrize("name", ["gebruikers", "machtigingen", "ketenmachtigingen"])
def test_csv_and_xlsx_carry_the_same_rows(sandbox: tuple[Repo, Path], name: str) -> None:
    """The same header and rows; the XLSX has one sheet, its dates are date cells shown DD-MM-YYYY."""
    _, out = sandbox
    as_csv, as_xlsx = read_table(out / f"{name}.csv"), read_table(out / f"{name}.xlsx")
    assert as_csv.header == as_xlsx.header
    assert [r.cells for r in as_csv.rows] == [
        tuple(c.strftime("%d-%m-%Y") if isinstance(c, dt.date) else c for c in r.cells) for r in as_xlsx.rows]
    book = openpyxl.load_workbook(out / f"{name}.xlsx")
    assert len(book.worksheets) == 1 and book.worksheets[0].title == name.capitalize()
    dated = [c for row in book.worksheets[0].iter_rows(min_row=2) for c in row if c.is_date]
    assert dated and all(c.number_format == "DD-MM-YYYY" for c in dated)


def test_a_hostile_name_is_text_in_both_formats(tmp_path: Path) -> None:
    """A person named `=cmd|...` and an intermediary named `@SUM(1+1)`: in the CSV the cell starts with `'`
    (render.safe.csv_text), in the XLSX it is a text cell with the same value, never a formula."""
    repo = build(tmp_path, hostile=True)
    export(repo, tmp_path / "out")
    out = tmp_path / "out"
    for name, cell, hostile in (("gebruikers", 1, HOSTILE), ("machtigingen", None, None),
                                ("ketenmachtigingen", 1, "@SUM(1+1)")):
        text = (out / f"{name}.csv").read_bytes().decode("utf-8-sig")
        for line in text.split("\r\n"):
            assert not any(field.startswith(("=", "+", "-", "@")) for field in line.split(";")), line
        if hostile is None:
            continue
        assert f";'{hostile};" in text or f"\r\n'{hostile};" in text
        sheet = openpyxl.load_workbook(out / f"{name}.xlsx").worksheets[0]           # formulas as formulas
        cells = [c for row in sheet.iter_rows() for c in row]
        assert all(c.data_type != "f" for c in cells)
        assert any(c.value == "'" + hostile and c.data_type == "s" for c in cells)
        assert [r.cells[cell] for r in read_table(out / f"{name}.xlsx").rows if "'" in str(r.cells[cell])] \
            == [r.cells[cell] for r in read_table(out / f"{name}.csv").rows if "'" in str(r.cells[cell])] != []
    people = {p.email: p for p in read_people(read_table(out / "gebruikers.csv"))}
    assert people["plain@acme.nl"].name == "'" + HOSTILE                   # read back as text, as shown


def test_all_writes_one_folder_per_kvk(tmp_path: Path) -> None:
    repo = build(tmp_path)
    written = export(repo, tmp_path / "all", kvk=None, formats=("csv",))
    assert sorted(str(p.relative_to(tmp_path / "all")) for p in written) == sorted(
        f"{kvk}/{name}.csv" for kvk in (ACME, OTHER) for name in ("gebruikers", "machtigingen", "ketenmachtigingen"))
    other = read_people(read_table(tmp_path / "all" / OTHER / "gebruikers.csv"))
    assert [(p.email, p.role) for p in other] == [("admin@acme.nl", Role.BEHEERDER)]
    ids = {kvk: {r.cells[2]: r.cells[0] for r in read_table(tmp_path / "all" / kvk / "gebruikers.csv").rows}
           for kvk in (ACME, OTHER)}
    assert ids[ACME]["admin@acme.nl"] == ids[OTHER]["admin@acme.nl"]                 # one means, two folders (R15)
    assert len(ids[ACME]) == 8


def test_what_cannot_be_exported_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    nothing = f"sandbox:{tmp_path / 'none.db'}"
    with pytest.raises(ExportRefused, match="there is no sandbox database at"):
        anyio.run(lambda: exporting.export(nothing, kvk=ACME, out=tmp_path / "o", text=csv_text))
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "o").exists()
    repo = Repo(tmp_path)
    repo.ok("sandbox", "init", "--kvk", ACME, "--name", "Acme", "--admin", "a@acme.nl")
    with pytest.raises(ExportRefused, match="organisation 11112222 is not known to the sandbox"):
        anyio.run(lambda: exporting.export(repo.backend, kvk="11112222", out=tmp_path / "o", text=csv_text))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportRefused, match="is a file, not a folder"):
        anyio.run(lambda: exporting.export(repo.backend, kvk=ACME, out=tmp_path / "file", text=csv_text))
    assert not (tmp_path / "o").exists()


def test_second_factor_words() -> None:
    def means(factor: SecondFactorType | None, phone: str | None = None) -> Means:
        return Means(id="m", email="a@b.nl", name="A", level=Level.EH3, second_factor=factor, phone=phone)

    assert factor_words(means(SecondFactorType.SMS, "+31612345678")) == "SMS | 0612345678"
    assert factor_words(means(SecondFactorType.SMS, "+4915112345678")) == "SMS | +4915112345678"
    assert factor_words(means(SecondFactorType.SMS)) == "SMS"
    assert factor_words(means(SecondFactorType.OTP)) == "OTP"
    assert factor_words(means(None)) == ""


def test_every_text_cell_goes_through_the_escaper_and_dates_are_dutch() -> None:
    overview = Overview("x", "X", ("A", "B"), (("-1+2", dt.date(2027, 3, 4)), ("tab\there", "")))
    assert csv_bytes(overview, csv_text) == b"\xef\xbb\xbfA;B\r\n'-1+2;04-03-2027\r\ntab\\there;\r\n"


def test_docs_exports_lists_the_columns_the_code_writes() -> None:
    """docs/exports.md is what the reading side relies on: its tables name the columns in the written order."""
    import re

    text = (Path(__file__).resolve().parents[3] / "docs" / "exports.md").read_text(encoding="utf-8")
    for section, columns in (("`gebruikers`", USER_COLUMNS), ("`machtigingen`", AUTHORISATION_COLUMNS),
                             ("`ketenmachtigingen`", CHAIN_COLUMNS)):
        body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
        documented = re.findall(r"^\| [A-Z] \| `([^`]+)` \|", body, re.MULTILINE)
        assert tuple(documented) == columns, section
    for word in (*exporting.ROLE_WORDS.values(), *exporting.STATUS_WORDS.values(), "SMS \\| 0612345678", "OTP",
                 "DD-MM-YYYY", "UTF-8 with a byte order mark"):
        assert word in text, word
