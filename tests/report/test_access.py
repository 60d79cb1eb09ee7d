"""The access overview: the pure row builder on hand-built backend states, and the csv, markdown and html
renderings of it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from html.parser import HTMLParser
from pathlib import Path

from reconciler.config.models import Role
from reconciler.domain.state import Chain, Membership, OrgInfo, Status
from reconciler.report.access import (DECLARED, INTERMEDIARY, NOT_IN_CONFIG, UNKNOWN_SERVICE, UNMANAGED, AccessReport,
                                      AccessRow, access_report, access_rows)
from reconciler.report.render_access import (CSV_HEADER, TABLE_HEADER, render_bytes, render_csv, render_html,
                                             render_markdown)

from tests.plan.conftest import CAT, KVK, TODAY, Backend, config, uuid
from tests.render.mdparse import cells

ADMIN = "  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}\n"
LATER = dt.date(2029, 1, 1)
SOON = TODAY + dt.timedelta(days=60)
UNKNOWN_UUID = "0badc0de-0000-4000-8000-000000000000"


def rows_by_key(rows: list[AccessRow]) -> dict[tuple[str, str, str], AccessRow]:
    keyed = {(r.kvk, r.person, r.service_key): r for r in rows}
    assert len(keyed) == len(rows), "one row per (organisation, person, service)"
    return keyed


# ---------------------------------------------------------------------------------------------- the rows
def test_each_authorisation_is_a_row_with_the_means_the_service_and_the_end_date(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.means("x@acme.nl", level="EH2+")
    b.auth("x", "gemeente-baarn/zaaksysteem", LATER)
    b.auth("x", "rvo/tenderned", SOON)
    desired = config(tmp_path, "users:\n" + ADMIN + """\
  - {email: x@acme.nl, name: X, role: gebruiker, level: EH2+, second_factor: {type: otp},
     authorisations: [{service: gemeente-baarn/zaaksysteem, until: 2029-01-01}]}
""")
    got = rows_by_key(access_rows(b.world, [desired], TODAY))
    assert set(got) == {(KVK, "admin@acme.nl", ""), (KVK, "x@acme.nl", "gemeente-baarn/zaaksysteem"),
                        (KVK, "x@acme.nl", "rvo/tenderned")}
    baarn = got[KVK, "x@acme.nl", "gemeente-baarn/zaaksysteem"]
    assert (baarn.organisation, baarn.person_name, baarn.role, baarn.level, baarn.means_type, baarn.status) == \
        ("Acme", "x", "gebruiker", "EH2+", "regulier", "actief")
    assert (baarn.service_name, baarn.provider, baarn.service_level) == ("zaaksysteem Baarn", "Gemeente Baarn", "EH2+")
    assert baarn.end_date == LATER and baarn.days_left == (LATER - TODAY).days
    assert baarn.config == DECLARED and not baarn.ends_soon
    tender = got[KVK, "x@acme.nl", "rvo/tenderned"]
    assert tender.config == NOT_IN_CONFIG                        # granted by hand: the config does not have it
    assert tender.days_left == 60 and tender.ends_soon
    admin = got[KVK, "admin@acme.nl", ""]                        # no authorisations: still one row, declared
    assert admin.role == "beheerder" and admin.config == DECLARED
    assert (admin.service_name, admin.end_date, admin.days_left, admin.ends_soon) == ("", None, None, False)


def test_group_authorisations_count_as_declared(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.auth("admin", "uwv/werkgeversportaal", LATER)
    b.auth("admin", "rvo/tenderned", LATER)
    desired = config(tmp_path, """\
groups:
  hr: {authorisations: [{service: uwv/werkgeversportaal, until: rolling}]}
users:
""" + ADMIN.rstrip()[:-1] + ", groups: [hr]}\n")
    got = rows_by_key(access_rows(b.world, [desired], TODAY))
    assert got[KVK, "admin@acme.nl", "uwv/werkgeversportaal"].config == DECLARED
    assert got[KVK, "admin@acme.nl", "rvo/tenderned"].config == NOT_IN_CONFIG


def test_a_declared_end_date_today_or_earlier_means_the_access_is_not_wanted(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.auth("admin", "uwv/werkgeversportaal", LATER)
    b.auth("admin", "rvo/tenderned", LATER)
    desired = config(tmp_path, "users:\n" + ADMIN.rstrip()[:-1] + """,
     authorisations: [{service: uwv/werkgeversportaal, until: 2026-11-21}, {service: rvo/tenderned, until: 2026-11-22}]}
""")
    got = rows_by_key(access_rows(b.world, [desired], TODAY))
    assert got[KVK, "admin@acme.nl", "uwv/werkgeversportaal"].config == NOT_IN_CONFIG     # until == today
    assert got[KVK, "admin@acme.nl", "rvo/tenderned"].config == DECLARED                  # until tomorrow


def test_people_missing_from_the_config_and_unmanaged_people(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.means("Left@Acme.nl")
    b.auth("Left", "rvo/tenderned", LATER)
    b.means("nood@acme.nl", "beheerder")
    desired = config(tmp_path, "policy: {unmanaged: [NOOD@acme.nl]}\nusers:\n" + ADMIN)
    got = rows_by_key(access_rows(b.world, [desired], TODAY))
    assert got[KVK, "Left@Acme.nl", "rvo/tenderned"].config == NOT_IN_CONFIG
    assert got[KVK, "nood@acme.nl", ""].config == UNMANAGED
    assert got[KVK, "admin@acme.nl", ""].config == DECLARED


def test_an_organisation_without_a_config_is_all_not_in_config() -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.auth("admin", "rvo/tenderned", LATER)
    rows = access_rows(b.world, [], TODAY)
    assert [r.config for r in rows] == [NOT_IN_CONFIG]


def test_every_status_is_named() -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.means("a@acme.nl", status=Status.WACHTEN_OP_GOEDKEURING)
    b.means("b@acme.nl", status=Status.WACHTEN_OP_ACTIVATIE)
    b.means("c@acme.nl", status=Status.ACTIVATIE_VERLOPEN)
    got = {r.person: r.status for r in access_rows(b.world, [], TODAY)}
    assert got == {"admin@acme.nl": "actief", "a@acme.nl": "awaiting approval", "b@acme.nl": "awaiting activation",
                   "c@acme.nl": "lapsed"}


def test_an_unknown_service_is_shown_by_its_uuid_and_a_scheduled_termination_is_soon() -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.world.orgs[KVK].authorisations["admin"] = {UNKNOWN_UUID: LATER}
    b.world.orgs[KVK].members["admin"] = Membership(Role.BEHEERDER, terminates_on=TODAY + dt.timedelta(days=10))
    [row] = access_rows(b.world, [], TODAY)
    assert (row.service_key, row.service_name, row.provider, row.service_level) == (UNKNOWN_UUID, UNKNOWN_SERVICE,
                                                                                     "", "")
    assert row.means_ends == TODAY + dt.timedelta(days=10) and row.ends_soon       # the end date itself is far


def test_chain_authorisations_have_the_intermediary_as_the_person(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.chain("47474747", ["uwv/werkgeversportaal", "rvo/tenderned"], LATER)
    b.world.orgs[KVK].chains["11111111"] = Chain.issued("11111111", "Other", frozenset({uuid("rvo/tenderned")}), SOON)
    desired = config(tmp_path, "users:\n" + ADMIN + """\
chain_authorisations:
  - {intermediary: {kvk: "47474747", name: Vries}, services: [uwv/werkgeversportaal], until: 2029-01-01}
""")
    got = rows_by_key(access_rows(b.world, [desired], TODAY))
    uwv = got[KVK, "47474747", "uwv/werkgeversportaal"]
    assert (uwv.role, uwv.person_name, uwv.level, uwv.status, uwv.config) == (INTERMEDIARY, "Vries", "", "", DECLARED)
    assert uwv.end_date == LATER and uwv.service_level == "EH3"
    assert got[KVK, "47474747", "rvo/tenderned"].config == NOT_IN_CONFIG
    other = got[KVK, "11111111", "rvo/tenderned"]
    assert other.person_name == "Other" and other.config == NOT_IN_CONFIG and other.ends_soon


def test_rows_are_sorted_by_organisation_then_people_then_intermediaries_then_service() -> None:
    b = Backend()
    b.means("zed@acme.nl", "beheerder")
    b.auth("zed", "uwv/werkgeversportaal", LATER)
    b.auth("zed", "algemene-bevoegdheid-2", LATER)
    b.means("anna@acme.nl")
    b.chain("47474747", ["rvo/tenderned"], LATER)
    b.means("bob@other.nl", "beheerder", kvk="11111111")
    rows = access_rows(b.world, [], TODAY)
    assert [(r.kvk, r.person, r.service_key) for r in rows] == [
        ("11111111", "bob@other.nl", ""),
        (KVK, "anna@acme.nl", ""),
        (KVK, "zed@acme.nl", "algemene-bevoegdheid-2"),
        (KVK, "zed@acme.nl", "uwv/werkgeversportaal"),
        (KVK, "47474747", "rvo/tenderned"),
    ]


def test_the_report_lists_organisations_in_order_and_the_unreadable_ones() -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.means("bob@other.nl", "beheerder", kvk="11111111")
    made = access_report(b.world, [], TODAY, unreadable=["22222222"], backend="sandbox:x.db")
    assert [(o.kvk, o.name) for o in made.organisations] == [("11111111", "11111111"), (KVK, "Acme")]
    assert made.unreadable == ["22222222"] and made.today == TODAY
    assert list(made.by_org()) == ["11111111", KVK]


# ------------------------------------------------------------------------------------------- the formats
def sample() -> AccessReport:
    """Two organisations; names with the characters that break csv, markdown and html."""
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.world.means["admin"] = b.world.means["admin"].with_(name='Ann "A, B" <b>Bold</b> & Zoë\nline two')
    b.auth("admin", "uwv/werkgeversportaal", LATER)
    b.auth("admin", "rvo/tenderned", SOON)
    b.means("pipe@acme.nl")
    b.world.means["pipe"] = b.world.means["pipe"].with_(name="=HYPERLINK(1) | x")
    b.world.orgs[KVK].authorisations["pipe"] = {UNKNOWN_UUID: LATER}
    b.chain("47474747", ["belastingdienst/aangifte-omzetbelasting"], LATER)
    b.means("bob@other.nl", "beheerder", kvk="11111111")
    b.auth("bob", "mijn-overheid/ondernemers", LATER, kvk="11111111")
    b.world.orgs["11111111"].info = OrgInfo("11111111", "Other <i>B.V.</i>")
    return access_report(b.world, [], TODAY, backend="sandbox:test.db")


def expected_record(row: AccessRow) -> dict[str, str]:
    """A row as a spreadsheet should read it back, written out independently of the renderer."""
    guard = (lambda s: "'" + s if s[:1] in ("=", "+", "-", "@") else s)
    return {"kvk": row.kvk, "organisation": guard(row.organisation), "person": row.person,
            "name": guard(row.person_name), "role": row.role, "level": row.level, "type": row.means_type,
            "status": row.status, "service": row.service_key, "service name": row.service_name,
            "provider": row.provider, "minimum level": row.service_level,
            "end date": row.end_date.isoformat() if row.end_date else "",
            "days left": "" if row.days_left is None else str(row.days_left),
            "means ends": row.means_ends.isoformat() if row.means_ends else "", "config": row.config}


def test_csv_parses_back_to_the_same_rows() -> None:
    made = sample()
    data = render_bytes(made, "csv")
    assert data.startswith(b"\xef\xbb\xbf") and not data[3:].startswith(b"\xef\xbb\xbf")      # one BOM, for Excel
    text = data.decode("utf-8-sig")
    assert text == render_csv(made)
    assert text.endswith("\r\n") and "\r\n" in text.split('"')[0]                                # RFC 4180 line ends
    records = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(records[0]) == list(CSV_HEADER)
    assert records == [expected_record(r) for r in made.rows]
    assert len(records) == 5
    names = {r["person"]: r["name"] for r in records}
    assert names["admin@acme.nl"] == 'Ann "A, B" <b>Bold</b> & Zoë\nline two'       # quotes, comma, newline, é
    assert names["pipe@acme.nl"] == "'=HYPERLINK(1) | x"                               # never run as a formula


def test_markdown_has_a_table_per_organisation_with_one_line_per_row() -> None:
    made = sample()
    text = render_markdown(made)
    header = "| " + " | ".join(TABLE_HEADER) + " |"
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    assert [s.splitlines()[0] for s in sections] == ["11111111 Other &lt;i&gt;B.V.&lt;/i&gt;", "99966564 Acme"]
    for section, org in zip(sections, made.organisations):
        table = [line for line in section.splitlines() if line.startswith("|")]
        assert table[0] == header and set(table[1].replace("|", "").split()) == {"---"}
        body = [cells(line) for line in table[2:]]
        rows = made.by_org()[org.kvk]
        assert len(body) == len(rows)
        for got, row in zip(body, rows):
            assert len(got) == len(TABLE_HEADER)                      # a pipe or newline in a name does not split
            assert got[0] == row.person and got[TABLE_HEADER.index("config")] == row.config
    acme = sections[1]
    assert "Ann &quot;A, B&quot;" not in acme and "Ann \"A, B\" &lt;b&gt;Bold&lt;/b&gt; &amp; Zoë<br>line two" in acme
    assert "=HYPERLINK(1) \\| x" in acme
    assert "5 authorisations of 3 people and 1 intermediary in 2 organisations" in text.replace("\\", "")


class Tables(HTMLParser):
    """The tables of the html report: per table its header cells and its body rows (class, cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, list]] = []
        self.cell: list[str] | None = None
        self.in_head = False
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append({"head": [], "rows": []})
        elif tag == "thead":
            self.in_head = True
        elif tag == "tbody":
            self.in_head = False
        elif tag == "tr" and not self.in_head:
            self.tables[-1]["rows"].append((dict(attrs).get("class") or "", []))
        elif tag in ("th", "td"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self.cell is not None:
            text = "".join(self.cell)
            (self.tables[-1]["head"] if tag == "th" else self.tables[-1]["rows"][-1][1]).append(text)
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def test_html_is_one_self_contained_page_with_a_sortable_table_per_organisation() -> None:
    made = sample()
    page = render_html(made)
    assert render_bytes(made, "html") == page.encode("utf-8")          # no BOM outside csv
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for resource in ("http://", "https://", "src=", "href=", "url(", "@import", "<link"):
        assert resource not in page, resource
    assert "@media print" in page and "<style>" in page and "<script>" in page
    assert "addEventListener(\"click\"" in page
    parser = Tables()
    parser.feed(page)
    assert len(parser.tables) == len(made.organisations) == 2
    for table, org in zip(parser.tables, made.organisations):
        rows = made.by_org()[org.kvk]
        assert table["head"] == list(TABLE_HEADER)
        assert [cells[0] for _, cells in table["rows"]] == [r.person for r in rows]
        assert [cells[6] for _, cells in table["rows"]] == [r.service_key for r in rows]
        for (css, _), row in zip(table["rows"], rows):
            assert ("soon" in css.split()) == row.ends_soon
            assert ("undeclared" in css.split()) == row.undeclared
    acme = parser.tables[1]["rows"]
    assert acme[0][1][1] == 'Ann "A, B" <b>Bold</b> & Zoë\nline two'   # the text as parsed back
    assert "<b>Bold</b>" not in page and "<i>B.V.</i>" not in page     # escaped, not markup
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Zo" in page
    assert any("soon" in css for css, _ in acme) and all("undeclared" in css for css, _ in acme)
    assert [h for h, a in parser.tags if h == "th" and a.get("data-type") == "number"] == ["th", "th"]
    for row in made.rows:
        assert row.person in page and row.service_key in page


def test_the_html_marks_declared_rows_without_colour(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.auth("admin", "rvo/tenderned", LATER)
    desired = config(tmp_path, "users:\n" + ADMIN.rstrip()[:-1] + """,
     authorisations: [{service: rvo/tenderned, until: 2029-01-01}]}
""")
    parser = Tables()
    parser.feed(render_html(access_report(b.world, [desired], TODAY)))
    [[(css, row)]] = [t["rows"] for t in parser.tables]
    assert css == "" and row[-1] == DECLARED and row[6] == "rvo/tenderned"
    assert CAT["rvo/tenderned"].name in row[7]
