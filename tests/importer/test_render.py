"""The YAML writer: every scalar reads back as written, in block and in flow context; names that YAML would
otherwise read as something else (booleans, numbers, dates, comments, flow syntax) come out quoted, and the
whole file still validates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.config.models import Role, SecondFactorType
from reconciler.domain.levels import Level
from reconciler.importer.model import ImportedAuthorisation, ImportedChain, ImportedOrg, ImportedUser, LeftOut
from reconciler.importer.render import comment, render_org, scalar
from tests.importer.common import invoke, plain

AWKWARD = ["yes", "No", "null", "~", "12345", "1e3", "0x1F", "2026-01-15", "a: b", "#hash", "x #y", "- dash",
           "O'Brien, Jr.", "{braces}", "[list]", "trailing ", " leading", "&anchor", "*alias", "!tag",
           "%percent", "@at", "`tick`", "a\"quote", "back\\slash", "tab\there", ">folded", "|literal", "?q", ""]


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_scalars_read_back_in_block_and_flow_context(text: str) -> None:
    assert yaml.safe_load(f"k: {scalar(text)}")["k"] == text
    assert yaml.safe_load(f"- {{k: {scalar(text)}, j: 1}}")[0]["k"] == text
    assert yaml.safe_load(f"k: [{scalar(text)}, x]")["k"][0] == text


def test_awkward_scalars_are_quoted_and_plain_ones_are_not() -> None:
    for text in AWKWARD:
        assert yaml.safe_load(f"k: {scalar(text)}")["k"] == text
        assert scalar(text).startswith('"'), text
    for text in ["Johan Bakker", "j.bakker@ketelaarklip.nl", "EH2+", "belastingdienst/aangifte-omzetbelasting",
                 "Sevda Yilmaz (aangifte)", "Ketelaar Klip Installatietechniek B.V.", "Zoë Ünal", "3M Nederland"]:
        assert scalar(text) == text


def test_comments_cannot_be_escaped_by_line_breaks_in_user_data() -> None:
    lines = comment("Left out: x\nversion: 2\rmore\u2028and more", 2)
    assert all(line.startswith("  #") for line in lines)
    assert yaml.safe_load("\n".join(lines) + "\nk: 1") == {"k": 1}


def test_a_file_with_awkward_names_validates_and_reads_back(tmp_path: Path) -> None:
    names = [n for n in AWKWARD if n.strip() and n.isprintable()]
    users = [ImportedUser(f"user{i}@example.nl", name, Role.BEHEERDER if i == 0 else Role.GEBRUIKER, Level.EH3,
                          second_factor=SecondFactorType.OTP, notes=[f"named {name!r}"],
                          authorisations=[ImportedAuthorisation("rvo/tenderned", dt.date(2027, 1, 31))])
             for i, name in enumerate(names)]
    chain = ImportedChain("47474747", "Accountants: Vries & Zn, #1", ["rvo/tenderned"], dt.date(2027, 1, 31))
    org = ImportedOrg("12345678", "yes: Acme #1", users=users, chains=[chain],
                      users_left_out=[LeftOut(["Left out: someone"], user=ImportedUser(
                          "gone@example.nl", "null", Role.GEBRUIKER, Level.EH2))])
    text = render_org(org)
    assert plain(yaml.safe_load(text)) == org.to_data()
    path = tmp_path / "org.yaml"
    path.write_text(text, encoding="utf-8")
    valid = invoke("validate", str(path), "--today", "2026-01-15")
    assert valid.code == 0 and "0 errors" in valid.out, str(valid) + text
    assert "  # - email: gone@example.nl\n  #   name: \"null\"\n" in text
