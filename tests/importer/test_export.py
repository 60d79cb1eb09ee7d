"""`reconciler import --from-csv`: the Beheermodule's export of the users overview (CSV with `;` or `,`, a
BOM, Dutch values, any column order, extra columns; or the same as XLSX) becomes a file that validates; a bad
cell is an error naming the file, the row and the column."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pytest

from reconciler.config.models import Role, SecondFactorType
from reconciler.domain.levels import Level
from reconciler.domain.state import Status
from reconciler.importer.export import BadValue, parse_date, parse_factor, parse_level, parse_role, parse_status
from reconciler.importer.phones import to_e164
from tests.importer.common import Result, invoke, load

KVK = "12345678"
HEADER = ["ID", "Naam", "E-mailadres", "Rol", "Status", "Activatie einddatum", "Niveau", "Tweede factor"]
ROWS = [
    ["101", "Johan Bakker", "j.bakker@acme.nl", "Beheerder", "Actief", "", "3", "SMS | 06 12345678"],
    ["102", "Marieke de Vries", "m.devries@acme.nl", "beheerder", "Wachten op activatie", "21-07-2026", "EH2+",
     "otp"],
    ["103", "Tim van Leeuwen", "t.vanleeuwen@acme.nl", "Gebruiker", "Actief", "", "2", "none"],
    ["104", "Piet de Boer", "p.deboer@acme.nl", "Gebruiker", "Activatie verlopen", "06-02-2026", "eH3",
     "OTP 545555555555"],
    ["105", "Sevda Yilmaz", "s.yilmaz@acme.nl", "GEBRUIKER", "Wachten op goedkeuring", "", "EH3", "sms"],
    ["106", "Anouk Smit", "a.smit@acme.nl", "Gebruiker", "actief", "", "2+", "authenticator app"],
    ["107", "Ruud Peters", "r.peters@acme.nl", "Gebruiker", "Actief", "", "3", "SMS 0634567890"],
]


def write_csv(path: Path, header: list[str], rows: list[list[str]], sep: str = ";", bom: bool = True) -> Path:
    def cell(value: str) -> str:
        return f'"{value}"' if sep in value or '"' in value else value
    text = "\r\n".join(sep.join(cell(v) for v in row) for row in [header, *rows]) + "\r\n"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def import_csv(path: Path, *extra: str) -> Result:
    return invoke("import", "--from-csv", str(path), "--kvk", KVK, *extra)


def imported(tmp_path: Path, path: Path, *extra: str) -> tuple[Result, Path]:
    """Import into tmp_path/out and validate it (exit 0)."""
    out = tmp_path / "out"
    r = import_csv(path, "--out", str(out), *extra)
    assert r.code == 0, str(r)
    result = out / f"{KVK}.yaml"
    valid = invoke("validate", str(result))
    assert valid.code == 0 and "0 errors" in valid.out, str(valid) + result.read_text()
    return r, result


def _check_the_people(path: Path) -> None:
    data = load(path)
    users = {u["email"]: u for u in data["users"]}
    # admins first, then by e-mail; the lapsed one is left out (commented)
    assert [u["email"] for u in data["users"]] == ["j.bakker@acme.nl", "m.devries@acme.nl", "a.smit@acme.nl",
                                                   "r.peters@acme.nl", "s.yilmaz@acme.nl", "t.vanleeuwen@acme.nl"]
    assert users["j.bakker@acme.nl"] == {"email": "j.bakker@acme.nl", "name": "Johan Bakker", "role": "beheerder",
                                         "level": "EH3", "second_factor": {"type": "sms", "phone": "+31612345678"}}
    assert users["m.devries@acme.nl"]["level"] == "EH2+" and users["m.devries@acme.nl"]["role"] == "beheerder"
    assert users["t.vanleeuwen@acme.nl"] == {"email": "t.vanleeuwen@acme.nl", "name": "Tim van Leeuwen",
                                             "role": "gebruiker", "level": "EH2"}
    assert users["a.smit@acme.nl"]["second_factor"] == {"type": "otp"}
    assert users["r.peters@acme.nl"]["second_factor"] == {"type": "sms", "phone": "+31634567890"}
    assert users["s.yilmaz@acme.nl"]["second_factor"] == {"type": "otp"}          # the placeholder
    assert "authorisations" not in str(data["users"]) and "subscription" not in str(data["users"])
    assert data["policy"] == {"prune": False}
    text = path.read_text()
    assert "# Transient: approved, it awaits activation by the holder by 2026-07-21 (R5)." in text
    assert "# Transient: requested, it awaits the supplier's approval" in text
    assert "# Left out: p.deboer@acme.nl (row 5, gebruiker, EH3). Its activation lapsed on 2026-02-06" in text
    assert "  # - email: p.deboer@acme.nl\n" in text
    assert "`otp` is a placeholder so the file validates (R19)" in text
    assert "authorisations (machtigingen) and chain authorisations" in text             # what the export lacks
    assert "the means type: a belastingdienst means looks like any EH3 gebruiker" in text


def test_a_semicolon_export_with_bom_and_dutch_values(tmp_path: Path) -> None:
    r, path = imported(tmp_path, write_csv(tmp_path / "gebruikers.csv", HEADER, ROWS), "--name", "Acme B.V.")
    _check_the_people(path)
    assert load(path)["organisation"] == {"kvk": KVK, "name": "Acme B.V."}
    assert "from the Beheermodule's export " + str(tmp_path / "gebruikers.csv") + " (CSV, 7 people)" in \
        " ".join(path.read_text().replace("#", "").split())
    assert "warning: " in r.err and "s.yilmaz@acme.nl" in r.err and "placeholder" in r.err


def test_a_comma_export_in_another_column_order_with_extra_columns(tmp_path: Path) -> None:
    order = [6, 2, 1, 3, 7, 4, 5, 0]                          # Niveau, E-mailadres, Naam, Rol, Tweede factor, ...
    header = [["niveau", "E-MAILADRES", "naam", "ROL", "tweede factor", "Status", "activatie einddatum", "id"][i]
              for i in range(8)]
    header = [h for h in header] + ["Afdeling"]
    rows = [[row[i] for i in order] + ["Kantoor, Baarn"] for row in ROWS]
    path = write_csv(tmp_path / "export.csv", header, rows, sep=",", bom=False)
    _, result = imported(tmp_path, path)
    _check_the_people(result)
    data = load(result)
    assert data["organisation"]["name"] == f"KvK {KVK}"
    assert "# the export does not name the organisation" in result.read_text()


def test_the_xlsx_twin(tmp_path: Path) -> None:
    """The same export as an .xlsx built with openpyxl: numbers as numbers, a real date cell, and a mobile
    number whose leading zero Excel dropped."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Rol", "Naam", "E-mailadres", "Niveau", "Status", "Activatie einddatum", "Tweede factor"])
    sheet.append(["Beheerder", "Johan Bakker", "j.bakker@acme.nl", 3, "Actief", None, "SMS 0641556520"])
    sheet.append(["Gebruiker", "Tim", "tim@acme.nl", "2+", "Wachten op activatie", dt.datetime(2026, 7, 21),
                  612345678])
    sheet.append([None, None, None, None, None, None, None])                      # a blank row is skipped
    sheet.append(["Gebruiker", "Kim", "kim@acme.nl", 2.0, "Actief", None, None])
    book.save(tmp_path / "export.xlsx")
    _, path = imported(tmp_path, tmp_path / "export.xlsx")
    users = {u["email"]: u for u in load(path)["users"]}
    assert users["j.bakker@acme.nl"]["second_factor"] == {"type": "sms", "phone": "+31641556520"}
    assert users["tim@acme.nl"]["level"] == "EH2+"
    assert users["tim@acme.nl"]["second_factor"] == {"type": "sms", "phone": "+31612345678"}
    assert users["kim@acme.nl"]["level"] == "EH2" and "second_factor" not in users["kim@acme.nl"]
    assert "awaits activation by the holder by 2026-07-21" in path.read_text()
    # detected by content too: the same bytes under another name
    (tmp_path / "export.bin").write_bytes((tmp_path / "export.xlsx").read_bytes())
    r = import_csv(tmp_path / "export.bin")
    assert r.code == 0 and "(XLSX, 3 people)" in " ".join(r.out.replace("#", "").split()), str(r)


def test_bad_cells_are_errors_with_file_row_and_column(tmp_path: Path) -> None:
    rows = [ROWS[0],
            ["2", "Bad Level", "b@acme.nl", "Gebruiker", "Actief", "", "EH9", "otp"],
            ["3", "Bad Role", "c@acme.nl", "Koning", "Actief", "", "3", "fax"],
            ["4", "", "not-an-email", "Gebruiker", "Misschien", "31-02-2026", "3", "otp"],
            ["5", "Low Admin", "d@acme.nl", "Beheerder", "Actief", "", "2", ""],
            ["6", "Twice", "J.Bakker@acme.nl", "Gebruiker", "Actief", "", "3", "otp"]]
    path = write_csv(tmp_path / "bad.csv", HEADER, rows)
    r = import_csv(path, "--out", str(tmp_path / "out"))
    assert r.code == 1 and "Traceback" not in r.err, str(r)
    assert r.err.startswith("error: ")
    lines = r.err.replace("error: ", "").splitlines()
    expected = [
        f"{path}: row 3, column 'Niveau' (G): 'EH9' is not a level",
        f"{path}: row 4, column 'Rol' (D): 'Koning' is not a role; allowed: Beheerder, Gebruiker",
        f"{path}: row 4, column 'Tweede factor' (H): 'fax' is not a second factor",
        f"{path}: row 5, column 'E-mailadres' (C): 'not-an-email' is not an e-mail address",
        f"{path}: row 5, column 'Naam' (B): empty",
        f"{path}: row 5, column 'Status' (E): 'Misschien' is not a status",
        f"{path}: row 5, column 'Activatie einddatum' (F): '31-02-2026' is not a date",
        f"{path}: row 6, column 'Niveau' (G): a beheerder needs level EH2+ or higher, not EH2 (R2)",
        f"{path}: row 7, column 'E-mailadres' (C): J.Bakker@acme.nl is listed twice (first in row 2)",
    ]
    for want in expected:
        assert any(line.startswith(want) for line in lines), (want, r.err)
    assert lines[-1] == f"{path}: 9 bad values; nothing was written"
    assert not (tmp_path / "out").exists()


def test_a_header_without_the_needed_columns(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "wrong.csv", ["Naam", "Rol", "Telefoon"], [["A", "Beheerder", "06"]])
    r = import_csv(path)
    assert r.code == 1 and "Traceback" not in r.err
    assert f"error: {path}: row 1 (the header): missing columns E-mailadres, Niveau. Found: 'Naam', 'Rol', " \
           "'Telefoon'" in r.err


def test_unreadable_files(tmp_path: Path) -> None:
    r = import_csv(tmp_path / "missing.csv")
    assert r.code == 1 and f"error: {tmp_path / 'missing.csv'}: no such file" in r.err
    (tmp_path / "empty.csv").write_bytes(b"\xef\xbb\xbf\r\n")
    r = import_csv(tmp_path / "empty.csv")
    assert r.code == 1 and "the file is empty; expected a header row" in r.err
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    r = import_csv(tmp_path / "broken.xlsx")
    assert r.code == 1 and "not a readable .xlsx file" in r.err and "Traceback" not in r.err
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0" + b"\0" * 20)
    r = import_csv(tmp_path / "old.xls")
    assert r.code == 1 and "an old Excel .xls file; download the export as .xlsx or .csv" in r.err


def test_no_beheerder_in_the_export_is_said_clearly(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "users.csv", HEADER, [ROWS[2]])
    r = import_csv(path)
    assert r.code == 0 and "the export has no (active or pending) beheerder" in r.err
    assert "NOTE: the export lists no beheerder" in r.out


@pytest.mark.parametrize("text,level", [("2", Level.EH2), ("2+", Level.EH2PLUS), ("3", Level.EH3), ("4", Level.EH4),
                                        ("EH2+", Level.EH2PLUS), ("eH3", Level.EH3), ("EH 2+", Level.EH2PLUS),
                                        ("eHerkenning niveau 3", Level.EH3), ("Niveau 2 plus", Level.EH2PLUS),
                                        ("3.0", Level.EH3), (3, Level.EH3)])
def test_levels_as_the_beheermodule_and_people_write_them(text: str | int, level: Level) -> None:
    assert parse_level(text) is level


@pytest.mark.parametrize("text", ["1", "EH1", "5", "hoog", ""])
def test_levels_that_are_not_a_means_level(text: str) -> None:
    with pytest.raises(BadValue):
        parse_level(text)


def test_statuses_roles_dates_and_factors() -> None:
    assert parse_status("Activeren mogelijk tot 21-07-2021") == (Status.WACHTEN_OP_ACTIVATIE, dt.date(2021, 7, 21))
    assert parse_status("Activatie verlopen op 06-02-2024 Verstuur nieuwe uitnodiging") == (
        Status.ACTIVATIE_VERLOPEN, dt.date(2024, 2, 6))
    assert parse_status("wachten_op_goedkeuring") == (Status.WACHTEN_OP_GOEDKEURING, None)
    assert parse_status("") == (None, None)
    assert parse_role("BEHEERDER") is Role.BEHEERDER and parse_role("gebruiker") is Role.GEBRUIKER
    assert parse_date("2026-07-21") == parse_date("21/07/2026") == parse_date("21.07.2026") == dt.date(2026, 7, 21)
    assert parse_date("") is None
    assert parse_factor("SMS | 06 12345678")[:2] == (SecondFactorType.SMS, "+31612345678")
    assert parse_factor("sms")[:2] == (SecondFactorType.SMS, None)
    assert parse_factor("OTP 545555555555")[:2] == (SecondFactorType.OTP, None)
    assert parse_factor("Authenticator App")[:2] == (SecondFactorType.OTP, None)
    assert parse_factor("geen")[:2] == (None, None)
    assert parse_factor("+31 6 1234 5678")[:2] == (SecondFactorType.SMS, "+31612345678")
    with pytest.raises(BadValue):
        parse_factor("sms 12")


def test_phone_numbers_to_e164() -> None:
    assert to_e164("06 12345678") == to_e164("06-1234 5678") == to_e164("0031612345678") == "+31612345678"
    assert to_e164("+31 (0)6 12345678") == to_e164("612345678") == to_e164("31612345678") == "+31612345678"
    assert to_e164("+32470123456") == "+32470123456"
    assert to_e164("12") is None and to_e164("phone") is None


def test_a_type_column_when_the_export_has_one(tmp_path: Path) -> None:
    """The detail screen shows Type (Regulier / Belastingdienst); an export with that column declares the tax
    means, and the header no longer says the type is missing. Two tax means are an error (R13)."""
    header = HEADER + ["Type"]
    rows = [ROWS[0] + ["Regulier"], ["9", "Aangifte", "belasting@acme.nl", "Gebruiker", "Actief", "", "3", "otp",
                                     "Belastingdienst"]]
    _, path = imported(tmp_path, write_csv(tmp_path / "typed.csv", header, rows))
    users = {u["email"]: u for u in load(path)["users"]}
    assert users["belasting@acme.nl"]["type"] == "belastingdienst" and "type" not in users["j.bakker@acme.nl"]
    assert "the means type: a belastingdienst means" not in path.read_text()
    rows.append(["10", "Tweede", "b2@acme.nl", "Gebruiker", "Actief", "", "3", "otp", "belastingdienst"])
    r = import_csv(write_csv(tmp_path / "two.csv", header, rows))
    assert r.code == 1 and "rows 3, 4: an organisation has at most one belastingdienst means (R13)" in r.err
