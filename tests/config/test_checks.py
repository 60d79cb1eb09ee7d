"""reconciler.config.checks: one focused test per domain check, with its code and exact line:column."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import pytest

from reconciler.config.loader import LoadResult, load_paths
from reconciler.config.models import Policy, Threshold
from reconciler.diagnostics import Severity

E, W, N = Severity.ERROR, Severity.WARNING, Severity.NOTE

# Lines 1-10 are MINIMAL_ORG (conftest); the helpers below append at line 11.


def user(email: str, level: str, role: str = "gebruiker", extra: str = "") -> str:
    """Four lines (+ extra): email, name, role, level."""
    return f"  - email: {email}\n    name: Someone\n    role: {role}\n    level: {level}\n" + extra


def auths(*items: tuple[str, str]) -> str:
    return "    authorisations:\n" + "".join(f"      - {{service: {s}, until: {u}}}\n" for s, u in items)


def found(result: LoadResult) -> list[tuple[int, int, Severity, str]]:
    return [(d.line, d.column, d.severity, d.code) for d in result.diagnostics]


@pytest.fixture
def check(load_text: Callable[..., LoadResult]) -> Callable[..., list[tuple[int, int, Severity, str]]]:
    def _check(text: str, today: dt.date = dt.date(2025, 6, 1)) -> list[tuple[int, int, Severity, str]]:
        result = load_text(text, today=today)
        assert result.orgs, result.diagnostics  # domain checks ran: schema and YAML were fine
        assert all(d.message for d in result.diagnostics)
        return found(result)
    return _check


def message(load_text: Callable[..., LoadResult], text: str, code: str) -> str:
    [d] = [d for d in load_text(text).diagnostics if d.code == code]
    return d.message


# --- R1, R2, R19: admins and second factors -----------------------------------------------------------------

def test_minimal_org_is_clean(check: Callable[..., list], minimal_org: str) -> None:
    assert check(minimal_org) == []


def test_r1_no_beheerder(check: Callable[..., list], minimal_org: str) -> None:
    assert check(minimal_org.replace("role: beheerder", "role: gebruiker")) == [(6, 3, E, "R1")]


def test_r1_no_users_at_all(check: Callable[..., list], minimal_org: str) -> None:
    assert check(minimal_org.split("users:")[0]) == [(1, 1, E, "R1")]


def test_r1_empty_user_list(check: Callable[..., list], minimal_org: str) -> None:
    assert check(minimal_org.split("users:")[0] + "users: []\n") == [(5, 8, E, "R1")]


def test_r2_admin_below_eh2plus(check: Callable[..., list], load_text: Callable[..., Any], minimal_org: str) -> None:
    text = minimal_org.replace("level: EH3", "level: EH2").replace("    second_factor: {type: otp}\n", "")
    assert check(text) == [(9, 12, E, "R2")]
    assert "a beheerder needs level EH2+ or higher; a@acme.nl has EH2" in message(load_text, text, "R2")


@pytest.mark.parametrize("level", ["EH2+", "EH3", "EH4"])
def test_r2_admin_levels_that_are_fine(check: Callable[..., list], minimal_org: str, level: str) -> None:
    assert check(minimal_org.replace("level: EH3", f"level: {level}")) == []


@pytest.mark.parametrize("level", ["EH2+", "EH3", "EH4"])
def test_r19_missing_second_factor(check: Callable[..., list], minimal_org: str, level: str) -> None:
    text = minimal_org.replace("level: EH3", f"level: {level}").replace("    second_factor: {type: otp}\n", "")
    assert check(text) == [(9, 12, E, "R19")]


@pytest.mark.parametrize("level", ["EH2"])
def test_r19_second_factor_optional(check: Callable[..., list], minimal_org: str, level: str) -> None:
    text = minimal_org + user("b@acme.nl", level)
    assert check(text) == []


def test_r19_sms_without_phone(check: Callable[..., list], minimal_org: str) -> None:
    assert check(minimal_org.replace("{type: otp}", "{type: sms}")) == [(10, 27, E, "R19")]


def test_r19_otp_with_phone_is_a_warning(check: Callable[..., list], minimal_org: str) -> None:
    text = minimal_org.replace("{type: otp}", '{type: otp, phone: "+31612345678"}')
    assert check(text) == [(10, 39, W, "R19")]


def test_r19_sms_with_phone(check: Callable[..., list], minimal_org: str) -> None:
    assert check(minimal_org.replace("{type: otp}", '{type: sms, phone: "+31612345678"}')) == []


# --- R8 and R13: levels and the tax means -------------------------------------------------------------------

def test_r8_level_below_service(check: Callable[..., list], load_text: Callable[..., Any], minimal_org: str) -> None:
    text = minimal_org.replace("level: EH3", "level: EH2+") + auths(("uwv/werkgeversportaal", "rolling"))
    assert check(text) == [(12, 19, E, "R8")]
    assert "needs level EH3; a@acme.nl has EH2+" in message(load_text, text, "R8")


def test_r8_level_equal_to_service_is_fine(check: Callable[..., list], minimal_org: str) -> None:
    assert check(minimal_org + auths(("uwv/werkgeversportaal", "rolling"))) == []


def test_r8_via_group_points_at_the_group_reference(check: Callable[..., list], load_text: Callable[..., Any],
                                                    minimal_org: str) -> None:
    text = (minimal_org.replace("level: EH3", "level: EH2+")
            + "    groups: [basic, hr]\ngroups:\n  basic:\n    authorisations: []\n"
              "  hr:\n    authorisations:\n      - {service: uwv/werkgeversportaal, until: rolling}\n")
    assert check(text) == [(11, 21, E, "R8")]
    assert "(via group 'hr')" in message(load_text, text, "R8")


TAX = "    type: belastingdienst\n    second_factor: {type: otp}\n"


def test_r13_tax_means_level(check: Callable[..., list], minimal_org: str) -> None:
    text = minimal_org + user("t@acme.nl", "EH4", extra=TAX)         # EH4 has its second factor (R19): only R13
    assert check(text) == [(14, 12, E, "R13")]


def test_r13_tax_means_is_never_a_beheerder(check: Callable[..., list], minimal_org: str) -> None:
    text = minimal_org + user("t@acme.nl", "EH3", role="beheerder", extra=TAX)
    assert check(text) == [(13, 11, E, "R13")]


def test_r13_tax_means_holds_tax_services_only(check: Callable[..., list], minimal_org: str) -> None:
    text = minimal_org + user("t@acme.nl", "EH3", extra=TAX + auths(
        ("belastingdienst/aangifte-omzetbelasting", "rolling"), ("rvo/tenderned", "rolling")))
    assert check(text) == [(19, 19, E, "R13")]


def test_r13_tax_means_via_group(check: Callable[..., list], minimal_org: str) -> None:
    text = (minimal_org + "    groups: [g]\n" + user("t@acme.nl", "EH3", extra=TAX + "    groups: [g]\n")
            + "groups:\n  g:\n    authorisations:\n      - {service: rvo/tenderned, until: rolling}\n")
    assert check(text) == [(18, 14, E, "R13")]


def test_r13_at_most_one_tax_means(check: Callable[..., list], minimal_org: str) -> None:
    text = minimal_org + user("t@acme.nl", "EH3", extra=TAX) + user("u@acme.nl", "EH3", extra=TAX)
    assert check(text) == [(21, 11, E, "R13")]


# --- R9: end dates ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("today", "until", "expected"), [
    ("2025-06-01", "2030-06-01", []),                    # exactly five years ahead
    ("2025-06-01", "2030-06-02", [(12, 41, E, "R9")]),   # one day more
    ("2025-06-01", "2025-06-02", []),                    # tomorrow
    ("2025-06-01", "2025-06-01", [(12, 41, W, "R9")]),   # today: must not exist
    ("2025-06-01", "2020-01-01", [(12, 41, W, "R9")]),   # past
    ("2024-02-29", "2029-02-28", []),                    # 29 February + 5 years = 28 February
    ("2024-02-29", "2029-03-01", [(12, 41, E, "R9")]),
    ("2023-03-01", "2028-02-29", []),                    # a 29 February inside the window
    ("2023-03-01", "2028-03-01", []),
    ("2023-03-01", "2028-03-02", [(12, 41, E, "R9")]),
    ("2028-02-29", "2033-02-28", []),
    ("2028-02-29", "2033-03-01", [(12, 41, E, "R9")]),
    ("2025-06-01", "rolling", []),
])
def test_r9_boundaries(check: Callable[..., list], minimal_org: str, today: str, until: str,
                       expected: list) -> None:
    text = minimal_org + auths(("rvo/tenderned", until))
    assert check(text, today=dt.date.fromisoformat(today)) == expected


def test_r9_messages(load_text: Callable[..., Any], minimal_org: str) -> None:
    late = message(load_text, minimal_org + auths(("rvo/tenderned", "2030-06-02")), "R9")
    assert "the latest allowed end date is 2030-06-01" in late
    past = message(load_text, minimal_org + auths(("rvo/tenderned", "2025-06-01")), "R9")
    assert "must not exist" in past


def test_r9_in_groups_and_chains(check: Callable[..., list], minimal_org: str) -> None:
    text = (minimal_org + "    groups: [g]\ngroups:\n  g:\n    authorisations:\n"
            "      - {service: rvo/tenderned, until: 2031-01-01}\n"
            'chain_authorisations:\n  - intermediary: {kvk: "47474747"}\n    services: [rvo/tenderned]\n'
            "    until: 2024-01-01\n")
    assert check(text) == [(15, 41, E, "R9"), (19, 12, W, "R9")]


# --- references and duplicates ------------------------------------------------------------------------------

def test_duplicate_email_is_case_insensitive(check: Callable[..., list], load_text: Callable[..., Any],
                                             minimal_org: str) -> None:
    text = minimal_org + user("A@Acme.NL", "EH2")
    assert check(text) == [(11, 12, E, "duplicate-email")]
    # the first one's line (6), not a 0-based list index: the diagnostic itself is at the second (line 11)
    assert message(load_text, text, "duplicate-email").startswith("A@Acme.NL is declared twice (first on line 6);")


def test_look_alike_emails_are_duplicates(check: Callable[..., list], load_text: Callable[..., Any],
                                          minimal_org: str) -> None:
    composed, decomposed = "p.j\u00e1nsen@acme.nl", "p.ja\u0301nsen@acme.nl"      # NFC and NFD of one address
    text = minimal_org + user(composed, "EH2") + user(decomposed, "EH2")
    assert check(text) == [(15, 12, E, "duplicate-email")]
    assert "looks the same as 'p.j\\xe1nsen@acme.nl' on line 11 but" in message(load_text, text, "duplicate-email")


def test_invisible_characters_in_an_email_are_refused(load_text: Callable[..., Any], minimal_org: str) -> None:
    for invisible in ("\u200b", "\u00ad", "\u2060", "\ufeff", "\u202e"):
        result = load_text(minimal_org + user(f"p.jansen{invisible}@acme.nl", "EH2"))
        assert [(d.line, d.code) for d in result.diagnostics] == [(11, "schema")], invisible
        assert "control characters" in result.diagnostics[0].message


def test_unmanaged_and_declared(check: Callable[..., list], minimal_org: str) -> None:
    text = "policy:\n  unmanaged: [B@acme.nl]\n" + minimal_org + user("b@acme.nl", "EH2")
    assert check(text) == [(13, 12, E, "unmanaged")]


def test_unknown_group_with_suggestion(check: Callable[..., list], load_text: Callable[..., Any],
                                       minimal_org: str) -> None:
    text = minimal_org + "    groups: [finanse]\ngroups:\n  finance:\n    authorisations: []\n"
    assert check(text) == [(11, 14, E, "unknown-group"), (13, 3, W, "unused-group")]
    assert "did you mean 'finance'?" in message(load_text, text, "unknown-group")


def test_unknown_group_without_groups(load_text: Callable[..., Any], minimal_org: str) -> None:
    assert "this file declares no groups" in message(load_text, minimal_org + "    groups: [x]\n", "unknown-group")


def test_unknown_service_in_user_group_and_chain(check: Callable[..., list], load_text: Callable[..., Any],
                                                 minimal_org: str) -> None:
    text = (minimal_org + auths(("rvo/tendernet", "rolling")) + "    groups: [g]\n"
            + "groups:\n  g:\n    authorisations:\n      - {service: nope/nope, until: rolling}\n"
            + 'chain_authorisations:\n  - intermediary: {kvk: "47474747"}\n    services: [rvo/tenderned, zz]\n'
              "    until: rolling\n")
    assert check(text) == [(12, 19, E, "unknown-service"), (17, 19, E, "unknown-service"),
                           (20, 31, E, "unknown-service")]
    assert "did you mean 'rvo/tenderned'?" in message(load_text, minimal_org + auths(("rvo/tendernet", "rolling")),
                                                      "unknown-service")


def test_duplicate_authorisation(check: Callable[..., list], minimal_org: str) -> None:
    text = (minimal_org + auths(("rvo/tenderned", "rolling"), ("rvo/tenderned", "2026-01-01")) + "    groups: [g]\n"
            + "groups:\n  g:\n    authorisations:\n" + "      - {service: rvo/tenderned, until: rolling}\n" * 2)
    assert check(text) == [(13, 19, E, "duplicate-authorisation"), (19, 19, E, "duplicate-authorisation")]


def test_r18_own_kvk_and_a_chain_authorisation_listed_twice(check: Callable[..., list], minimal_org: str) -> None:
    chain = '  - intermediary: {{kvk: "{}"}}\n    services: [{}]\n    until: {}\n'
    text = minimal_org + "chain_authorisations:\n" + chain.format("12345678", "rvo/tenderned", "rolling") \
        + chain.format("47474747", "rvo/tenderned", "rolling") + chain.format("47474747", "rvo/tenderned", "2027-01-01")
    assert check(text) == [(12, 25, E, "R18"), (19, 16, E, "duplicate-chain-service")]


def test_r18_an_intermediary_may_have_entries_with_their_own_until(check: Callable[..., list],
                                                                   minimal_org: str) -> None:
    """Issue #13: each chain authorisation has its own end date, so one intermediary may have several entries."""
    chain = '  - intermediary: {{kvk: "47474747"{}}}\n    services: [{}]\n    until: {}\n'
    ok = minimal_org + "chain_authorisations:\n" + chain.format(", name: Vries", "rvo/tenderned", "rolling") \
        + chain.format("", "uwv/werkgeversportaal", "2027-01-01")
    assert check(ok) == []
    named_twice = ok.replace('"47474747"}', '"47474747", name: Others}')
    assert check(named_twice) == [(15, 43, E, "intermediary-name")]


def test_unused_group(check: Callable[..., list], minimal_org: str) -> None:
    text = minimal_org + "groups:\n  spare:\n    authorisations: []\n"
    assert check(text) == [(12, 3, W, "unused-group")]


def test_r17_branch_number(check: Callable[..., list], load_text: Callable[..., Any], minimal_org: str) -> None:
    text = minimal_org.replace("  name: Acme\n", '  name: Acme\n  branch_number: "000012345678"\n') \
        + auths(("uwv/werkgeversportaal", "rolling"), ("rvo/tenderned", "rolling"))
    assert check(text) == [(5, 18, W, "R17")]
    assert "this file grants uwv/werkgeversportaal" in message(load_text, text, "R17")
    assert "rvo/tenderned" not in message(load_text, text, "R17")


# --- checks across files ------------------------------------------------------------------------------------

def test_duplicate_kvk(tmp_path: Path, write: Callable[..., Path], minimal_org: str) -> None:
    write("a.yaml", minimal_org)
    write("b.yaml", minimal_org.replace("a@acme.nl", "z@acme.nl"))
    result = load_paths([str(tmp_path)], dt.date(2025, 6, 1))
    assert [(Path(d.path).name, d.line, d.column, d.code) for d in result.diagnostics] == [
        ("b.yaml", 3, 8, "duplicate-kvk")]
    assert str(tmp_path / "a.yaml") in result.diagnostics[0].message


@pytest.mark.parametrize(("change", "line", "column"), [
    (("level: EH3", "level: EH4"), 9, 12),
    (("name: Anna", "name: Anne"), 7, 11),
    (("{type: otp}", '{type: sms, phone: "+31612345678"}'), 10, 20),
])
def test_r15_linked_means_differ(tmp_path: Path, write: Callable[..., Path], minimal_org: str,
                                 change: tuple[str, str], line: int, column: int) -> None:
    write("a.yaml", minimal_org)
    write("b.yaml", minimal_org.replace("12345678", "87654321").replace(*change))
    result = load_paths([str(tmp_path)], dt.date(2025, 6, 1))
    assert [(Path(d.path).name, d.line, d.column, d.code) for d in result.diagnostics] == [
        ("b.yaml", line, column, "R15")]
    assert "R15" in result.diagnostics[0].message


def test_r15_same_person_same_details_is_fine(tmp_path: Path, write: Callable[..., Path], minimal_org: str) -> None:
    write("a.yaml", minimal_org)
    write("b.yaml", minimal_org.replace("12345678", "87654321").replace("role: beheerder", "role: beheerder"))
    assert load_paths([str(tmp_path)], dt.date(2025, 6, 1)).diagnostics == []


def test_r15_missing_subscription_equals_default(tmp_path: Path, write: Callable[..., Path],
                                                 minimal_org: str) -> None:
    write("a.yaml", minimal_org)
    write("b.yaml", minimal_org.replace("12345678", "87654321").replace("name: Anna", "name: Anna\n    subscription: 1y"))
    assert load_paths([str(tmp_path)], dt.date(2025, 6, 1)).diagnostics == []


# --- thresholds ---------------------------------------------------------------------------------------------

class TestThreshold:
    def test_parse_count(self) -> None:
        t = Threshold.parse(5)
        assert (t.count, t.percent, str(t)) == (5, None, "5")

    @pytest.mark.parametrize(("raw", "percent", "shown"), [("25%", 25.0, "25%"), ("0%", 0.0, "0%"),
                                                           ("12.5%", 12.5, "12.5%"), ("100%", 100.0, "100%")])
    def test_parse_percent(self, raw: str, percent: float, shown: str) -> None:
        t = Threshold.parse(raw)
        assert (t.count, t.percent, str(t)) == (None, percent, shown)

    @pytest.mark.parametrize("existing", [0, 1, 9, 10, 1000])
    def test_count_applies_at_any_size(self, existing: int) -> None:
        assert Threshold.parse(3).limit(existing) == 3

    @pytest.mark.parametrize(("existing", "limit"), [(0, None), (9, None), (10, 2), (11, 2), (12, 3), (40, 10),
                                                     (100, 25), (103, 25)])
    def test_percent_applies_from_ten_objects(self, existing: int, limit: int | None) -> None:
        assert Threshold.parse("25%").limit(existing) == limit

    @pytest.mark.parametrize(("raw", "existing", "limit"), [("0%", 10, 0), ("100%", 10, 10), ("10%", 19, 1),
                                                            ("12.5%", 80, 10)])
    def test_percent_edges(self, raw: str, existing: int, limit: int) -> None:
        assert Threshold.parse(raw).limit(existing) == limit

    @pytest.mark.parametrize(("raw", "existing"), [("4.6%", 1500)])
    def test_decimal_percent_is_exact(self, raw: str, existing: int) -> None:
        # Regression: in floating point 1500 * 4.6 / 100 = 68.99999999999999, so floor() allowed 68, not 69.
        exact = int(Fraction(existing) * Fraction(raw[:-1]) / 100)
        assert Threshold.parse(raw).limit(existing) == exact

    def test_policy_defaults(self) -> None:
        policy = Policy()
        assert str(policy.threshold) == "25%"
        assert policy.threshold.limit(20) == 5
        assert policy.renew_before_days == 60
        assert policy.prune is False

    def test_policy_from_file(self, load_text: Callable[..., Any], minimal_org: str) -> None:
        result = load_text("policy:\n  max_removals: 7\n  renew_before: 30d\n  unmanaged: [X@acme.nl]\n" + minimal_org)
        policy = result.orgs[0].config.policy
        assert policy.threshold.limit(1000) == 7
        assert policy.renew_before_days == 30
        assert policy.unmanaged_keys == frozenset({"x@acme.nl"})
