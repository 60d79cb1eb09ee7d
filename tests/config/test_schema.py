"""reconciler.config.schema: every kind of schema violation, phrased for people, at the right path; and
the compiled validator agreeing with the reference implementation."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.config.schema import (CATALOGUE_SCHEMA, ORG_SCHEMA, SchemaProblem, fast_validator, load_schema,
                                      schema_problems, validator)
from reconciler.config.yamlpos import decode, load_yaml


from . import strategies  # noqa: E402

TODAY = dt.date(2025, 6, 1)
ROOT = Path(__file__).resolve().parents[2]


def base() -> dict[str, Any]:
    return {"version": 1, "organisation": {"kvk": "12345678", "name": "Acme"},
            "users": [{"email": "a@acme.nl", "name": "Anna", "role": "beheerder", "level": "EH3",
                       "second_factor": {"type": "otp"},
                       "authorisations": [{"service": "rvo/tenderned", "until": "2027-01-01"}]}]}


def problems_with(change: Callable[[dict[str, Any]], None]) -> list[SchemaProblem]:
    doc = base()
    change(doc)
    return schema_problems(ORG_SCHEMA, doc)


def single(change: Callable[[dict[str, Any]], None]) -> SchemaProblem:
    found = problems_with(change)
    assert len(found) == 1, found
    return found[0]


# --- the schema files ----------------------------------------------------------------------------------

def test_valid_document_has_no_problems() -> None:
    assert schema_problems(ORG_SCHEMA, base()) == []


def test_example_file_is_valid() -> None:
    data = load_yaml(decode((ROOT / "examples" / "org.yaml").read_bytes())).data
    assert schema_problems(ORG_SCHEMA, data) == []


@pytest.mark.parametrize("name", [ORG_SCHEMA, CATALOGUE_SCHEMA])
def test_packaged_schema_is_the_published_one(name: str) -> None:
    # INTERFACE.md points editors at schemas/org.schema.json; the package validates with its own copy.
    assert load_schema(name) == json.loads((ROOT / "schemas" / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", [ORG_SCHEMA, CATALOGUE_SCHEMA])
def test_schemas_are_valid_2020_12(name: str) -> None:
    validator(name).check_schema(load_schema(name))
    assert load_schema(name)["$schema"].endswith("2020-12/schema")


def test_compiled_validator_is_available() -> None:
    assert fast_validator(ORG_SCHEMA) is not None
    assert fast_validator(ORG_SCHEMA)(base()) is True


# --- each kind of message ------------------------------------------------------------------------------

class TestMessages:
    def test_unknown_key_with_did_you_mean(self) -> None:
        p = single(lambda d: d.__setitem__("polciy", {}))
        assert p.path == ("polciy",)
        assert p.at_key is True
        assert "unknown key 'polciy'; did you mean 'policy'?" in p.message
        assert "allowed here: catalogue, chain_authorisations, groups, organisation, policy, users, version" in p.message

    def test_unknown_nested_key_with_did_you_mean(self) -> None:
        p = single(lambda d: d["users"][0].__setitem__("second_factr", {"type": "otp"}))
        assert p.path == ("users", 0, "second_factr")
        assert "did you mean 'second_factor'?" in p.message

    def test_unknown_key_without_a_close_match(self) -> None:
        p = single(lambda d: d.__setitem__("zzzzzz", 1))
        assert "unknown key 'zzzzzz'" in p.message
        assert "did you mean" not in p.message

    def test_every_unknown_key_is_reported(self) -> None:
        found = problems_with(lambda d: d["organisation"].update(naam="x", kvkk="1"))
        assert sorted(p.path for p in found) == [("organisation", "kvkk"), ("organisation", "naam")]
        assert all(p.at_key for p in found)

    def test_missing_top_level_key(self) -> None:
        p = single(lambda d: d.pop("organisation"))
        assert p.path == ()
        assert p.message.startswith("missing required key 'organisation'")
        assert "KvK" in p.message  # the description says what it is

    def test_missing_nested_key(self) -> None:
        p = single(lambda d: d["users"][0].pop("name"))
        assert p.path == ("users", 0)
        assert "missing required key 'name' in users" in p.message
        assert p.at_key is False

    def test_wrong_type_with_quote_tip_for_unquoted_kvk(self) -> None:
        doc = base()
        doc["organisation"]["kvk"] = 12345678
        seen: list[tuple] = []
        [p] = schema_problems(ORG_SCHEMA, doc, lambda path: seen.append(path) or "12345678")
        assert p.path == ("organisation", "kvk")
        assert ("organisation", "kvk") in seen
        assert p.message == 'kvk must be a string, not a whole number (write it in quotes: "12345678")'

    def test_no_quote_tip_without_source_text(self) -> None:
        p = single(lambda d: d["organisation"].__setitem__("kvk", 12345678))
        assert p.message == "kvk must be a string, not a whole number"

    def test_no_quote_tip_when_quoting_would_not_help(self) -> None:
        doc = base()
        doc["organisation"]["kvk"] = 1234
        [p] = schema_problems(ORG_SCHEMA, doc, lambda path: "1234")
        assert "quotes" not in p.message

    def test_wrong_type_without_tip(self) -> None:
        p = single(lambda d: d.__setitem__("policy", {"prune": "maybe"}))
        assert p.message == "prune must be true or false, not a string"
        assert "quotes" not in p.message

    def test_boolean_where_a_string_is_expected_gets_no_quote_tip(self) -> None:
        p = single(lambda d: d["users"][0].__setitem__("name", True))
        assert p.message == "name must be a string, not a boolean"

    def test_list_expected(self) -> None:
        p = single(lambda d: d.__setitem__("users", {"email": "a@acme.nl"}))
        assert p.message == "users must be a list, not a mapping"

    def test_root_must_be_a_mapping(self) -> None:
        for data, what in ((None, "nothing"), ([1], "a list"), ("text", "a string"), (3, "a whole number")):
            [p] = schema_problems(ORG_SCHEMA, data)
            assert p.path == ()
            assert p.message.startswith("the file must be a mapping")
            assert p.message.endswith(f"found {what}")

    def test_enum(self) -> None:
        p = single(lambda d: d["users"][0].__setitem__("level", "EH5"))
        assert p.path == ("users", 0, "level")
        assert p.message == "'EH5' is not allowed for level; allowed: EH2, EH2+, EH3, EH4"

    def test_const(self) -> None:
        p = single(lambda d: d.__setitem__("version", 2))
        assert p.path == ("version",)
        assert p.message == "2 is not allowed for version; allowed: 1"

    def test_version_true_is_not_1(self) -> None:
        p = single(lambda d: d.__setitem__("version", True))
        assert "allowed: 1" in p.message

    def test_pattern_with_hint(self) -> None:
        p = single(lambda d: d["organisation"].__setitem__("kvk", "1234"))
        assert p.path == ("organisation", "kvk")
        assert p.message == "'1234' is not a valid kvk: KvK number: exactly 8 digits, written as a quoted string, " \
                            'e.g. "99966564"'

    def test_pattern_hint_keeps_e_g(self) -> None:
        p = single(lambda d: d["users"][0]["second_factor"].update(type="sms", phone="0612345678"))
        assert p.message.startswith("'0612345678' is not a valid phone: Mobile number for SMS in E.164 form, e.g.")

    @pytest.mark.parametrize("until", ["2025-02-30", "2025-02-29", "2027-13-01", "2027-00-10", "2027-04-31"])
    def test_until_must_be_a_real_date(self, until: str) -> None:
        p = single(lambda d: d["users"][0]["authorisations"][0].__setitem__("until", until))
        assert p.path == ("users", 0, "authorisations", 0, "until")
        assert p.message == f"{until!r} is not a real date (YYYY-MM-DD)"

    @pytest.mark.parametrize("until", ["2024-02-29", "2028-02-29", "rolling", "2027-12-31"])
    def test_real_dates_and_rolling_pass(self, until: str) -> None:
        assert problems_with(lambda d: d["users"][0]["authorisations"][0].__setitem__("until", until)) == []

    @pytest.mark.parametrize("until", ["27-01-01", "tomorrow", "31-06-2027"])
    def test_until_shape(self, until: str) -> None:
        # one error (the pattern's), not also a format error: no date is guessed from these
        p = single(lambda d: d["users"][0]["authorisations"][0].__setitem__("until", until))
        assert p.path == ("users", 0, "authorisations", 0, "until")
        assert p.message.startswith(f"{until!r} is not a valid until: End date of an authorisation: a date "
                                    "(YYYY-MM-DD")

    @pytest.mark.parametrize(("until", "meant"), [
        ("30-06-2027", "2027-06-30"), ("30/6/2027", "2027-06-30"), ("1.2.2027", "2027-02-01"),
        ("2027/01/01", "2027-01-01"), ("2027-1-1", "2027-01-01"), ("Rolling", "rolling")])
    def test_until_written_another_way_gets_one_error_with_the_date_it_means(self, until: str, meant: str) -> None:
        p = single(lambda d: d["users"][0]["authorisations"][0].__setitem__("until", until))
        assert p.path == ("users", 0, "authorisations", 0, "until")
        assert p.message == f"{until!r} is not a date as YYYY-MM-DD or `rolling`; did you mean {meant}?"

    def test_misspelt_required_key_is_one_error(self) -> None:
        p = single(lambda d: d["users"][0].__setitem__("rol", d["users"][0].pop("role")))
        assert p.path == ("users", 0, "rol")
        assert p.message.startswith("unknown key 'rol'; did you mean 'role'? (allowed here:")

    def test_unknown_key_unlike_the_missing_one_keeps_both_errors(self) -> None:
        found = problems_with(lambda d: (d["users"][0].pop("role"), d["users"][0].__setitem__("colour", "red")))
        assert sorted(p.message.split(" (")[0] for p in found) == ["missing required key 'role' in users",
                                                                   "unknown key 'colour'"]

    @pytest.mark.parametrize(("phone", "meant"), [
        ("0622222222", "+31622222222"), ("06 2222 2222", "+31622222222"), ("0031622222222", "+31622222222"),
        ("+31 6 22222222", "+31622222222")])
    def test_phone_in_dutch_form_gets_its_international_form(self, phone: str, meant: str) -> None:
        p = single(lambda d: d["users"][0]["second_factor"].update(type="sms", phone=phone))
        assert p.message.endswith(f'; did you mean "{meant}"?')

    def test_group_name_points_at_the_key(self) -> None:
        found = problems_with(lambda d: d.__setitem__("groups", {"Finance": {"authorisations": []},
                                                                 "ok": {"authorisations": []}}))
        [p] = found
        assert p.path == ("groups", "Finance")
        assert p.at_key is True
        assert p.message.startswith("'Finance' is not a valid name here: A group name: lower-case letters")

    def test_group_name_in_a_user_is_a_pattern_error(self) -> None:
        p = single(lambda d: d["users"][0].__setitem__("groups", ["Finance"]))
        assert p.path == ("users", 0, "groups", 0)
        assert p.at_key is False
        assert "'Finance' is not a valid groups" in p.message

    def test_min_items(self) -> None:
        p = single(lambda d: d.__setitem__("chain_authorisations", [
            {"intermediary": {"kvk": "47474747"}, "services": [], "until": "rolling"}]))
        assert p.message == "services needs at least 1 item(s)"

    def test_unique_items(self) -> None:
        p = single(lambda d: d["users"][0].__setitem__("groups", ["a", "a"]))
        assert p.message == "groups lists the same item more than once"

    def test_min_length(self) -> None:
        p = single(lambda d: d["organisation"].__setitem__("name", ""))
        assert p.message == "name must not be empty"

    def test_max_length(self) -> None:
        p = single(lambda d: d["organisation"].__setitem__("name", "x" * 201))
        assert p.message == "name is longer than 200 characters"

    @pytest.mark.parametrize(("value", "ok"), [
        (0, True), (5, True), ("25%", True), ("0%", True), ("100%", True), ("12.5%", True), ("100.0%", True),
        ("100.5%", False),
        (-1, False), ("5", False), ("101%", False), ("%", False), ("25 %", False), (2.5, False), (True, False),
    ])
    def test_max_removals(self, value: object, ok: bool) -> None:
        found = problems_with(lambda d: d.__setitem__("policy", {"max_removals": value}))
        assert (found == []) is ok, found
        if value == -1:
            assert found[0].message == "max_removals must be at least 0"

    @pytest.mark.parametrize(("value", "ok"), [("60d", True), ("1d", True), ("9999d", True), ("0d", False),
                                               ("60", False), ("2m", False), ("10000d", False), (60, False)])
    def test_renew_before(self, value: object, ok: bool) -> None:
        assert (problems_with(lambda d: d.__setitem__("policy", {"renew_before": value})) == []) is ok

    def test_several_problems_are_all_reported(self) -> None:
        def change(d: dict[str, Any]) -> None:
            d["organisation"]["kvk"] = 1
            d["users"][0]["level"] = "EH9"
            d["users"][0]["role"] = "admin"
            d["extra"] = 1
        found = problems_with(change)
        assert {p.path for p in found} == {("organisation", "kvk"), ("users", 0, "level"), ("users", 0, "role"),
                                           ("extra",)}
        assert all(p.message for p in found)

    def test_catalogue_schema(self) -> None:
        good = {"services": [{"key": "acme/portal", "uuid": "2b7c1f3e-0000-4000-8000-000000000001",
                              "provider": "Acme", "name": "Portal", "level": "EH1"}]}
        assert schema_problems(CATALOGUE_SCHEMA, good) == []
        bad = copy.deepcopy(good)
        bad["services"][0]["uuid"] = "not-a-uuid"
        bad["services"][0]["colour"] = "red"
        found = schema_problems(CATALOGUE_SCHEMA, bad)
        assert {p.path for p in found} == {("services", 0, "uuid"), ("services", 0, "colour")}


# --- quote tip and key positions, through the loader (they need the source text) ----------------------------

def test_quote_tip_for_kvk_in_file(load_text: Callable[..., Any], minimal_org: str) -> None:
    result = load_text(minimal_org.replace('"12345678"', "12345678"))
    [d] = result.diagnostics
    assert (d.line, d.column, d.code) == (3, 8, "schema")
    assert 'write it in quotes: "12345678"' in d.message


@pytest.mark.parametrize(("written", "quoted"), [
    ("01234567", '"01234567"'),          # a KvK number with a leading zero: a YAML 1.1 octal integer
])
def test_quote_tip_repeats_what_was_written(load_text: Callable[..., Any], minimal_org: str,
                                            written: str, quoted: str) -> None:
    # The tip quotes the text as written, not the number YAML made of it (342391, 31612345678).
    if written.startswith("+"):
        text = minimal_org.replace("{type: otp}", "{type: sms, phone: " + written + "}")
    else:
        text = minimal_org.replace('"12345678"', written)
    [d] = load_text(text).diagnostics
    assert f"write it in quotes: {quoted}" in d.message


@pytest.mark.parametrize(("written", "international"), [
    ("+31612345678", "+31612345678"),    # an unquoted phone number loses its +
    ("0622222222", "+31622222222"),      # a Dutch mobile number: a YAML 1.1 octal integer
])
def test_unquoted_phone_gets_quote_tip_in_international_form(load_text: Callable[..., Any], minimal_org: str,
                                                             written: str, international: str) -> None:
    text = minimal_org.replace("{type: otp}", "{type: sms, phone: " + written + "}")
    [d] = load_text(text).diagnostics
    assert d.message == ("phone must be a string, not a whole number "
                         f'(write it in quotes in international form: "{international}")')


def test_group_name_error_is_at_the_key(load_text: Callable[..., Any], minimal_org: str) -> None:
    text = minimal_org + "groups:\n  Finance:\n    authorisations: []\n"
    [d] = load_text(text).diagnostics
    assert (d.line, d.column) == (12, 3)
    assert d.json_path == "$.groups.Finance"


def test_unknown_key_error_is_at_the_key(load_text: Callable[..., Any], minimal_org: str) -> None:
    text = minimal_org.replace("  name: Acme\n", "  name: Acme\n  naam: Acme\n")
    [d] = load_text(text).diagnostics
    assert (d.line, d.column) == (5, 3)
    assert "did you mean 'name'?" in d.message


@pytest.mark.parametrize(("field", "value"), [
    ("kvk", "12345678\n"),
    ("renew_before", "60d\n"),
    ("max_removals", "5%\n"),
    ("email", "a@acme.nl\n"),
    ("phone", "+31612345678\n"),
])
def test_newline_terminated_value_is_refused(field: str, value: str) -> None:
    # Regression: Python's `re.search` lets `$` match before a final newline, the compiled (Rust) validator
    # does not. The fast validator said "invalid", the reference walk found no error, and schema_problems()
    # returned [] -- the value was accepted (and Policy.renew_before_days / Policy.threshold then raised
    # ValueError). In YAML this is simply `kvk: |` followed by the digits.
    doc = base()
    if field == "kvk":
        doc["organisation"]["kvk"] = value
    elif field in ("renew_before", "max_removals"):
        doc["policy"] = {field: value}
    elif field == "email":
        doc["users"][0]["email"] = value
    else:
        doc["users"][0]["second_factor"] = {"type": "sms", "phone": value}
    assert fast_validator(ORG_SCHEMA)(doc) is False
    assert schema_problems(ORG_SCHEMA, doc) != [], "an invalid value was accepted"


# --- the compiled validator agrees with the reference implementation ----------------------------------------

def _no_final_newlines(node: Any) -> Any:
    """The same document without strings ending in a newline: test_newline_terminated_value_is_refused covers
    those (they were the one disagreement found), so a regression there does not hide any other."""
    if isinstance(node, str):
        return node.rstrip("\n")
    if isinstance(node, list):
        return [_no_final_newlines(v) for v in node]
    if isinstance(node, dict):
        return {_no_final_newlines(k): _no_final_newlines(v) for k, v in node.items()}
    return node


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fast_and_reference_validators_agree(data: st.DataObject) -> None:
    doc = data.draw(strategies.valid_configs(TODAY))
    assert fast_validator(ORG_SCHEMA)(doc) and validator(ORG_SCHEMA).is_valid(doc)
    bad = _no_final_newlines(data.draw(strategies.mutated(doc)))
    fast = fast_validator(ORG_SCHEMA)(bad)
    reference = validator(ORG_SCHEMA).is_valid(bad)
    assert fast == reference, bad
    problems = schema_problems(ORG_SCHEMA, bad)
    assert (problems == []) == reference
    assert all(p.message for p in problems)


def test_only_invalid_list_items_are_explained_and_none_is_missed() -> None:
    # The reference validator skips list items the compiled one accepts (explaining one wrong level in a
    # 30 MB file took 30 s): it must still find every error, at its path, as a walk of everything would.
    doc = base()
    user = doc["users"][0]
    doc["users"] = [dict(user, email=f"u{i}@acme.nl") for i in range(300)]
    doc["users"][17] = dict(doc["users"][17], level="EH9")
    doc["users"][250] = dict(doc["users"][250], authorisations=[{"service": "rvo/tenderned", "until": "2027-02-30"},
                                                                {"service": "x", "until": "rolling", "extra": 1}])
    full = jsonschema_full().iter_errors(doc)
    expected = sorted((tuple(e.absolute_path), e.validator) for e in full)
    got = sorted((tuple(e.absolute_path), e.validator) for e in validator(ORG_SCHEMA).iter_errors(doc))
    assert got == expected and len(got) == 3
    assert [p.path for p in schema_problems(ORG_SCHEMA, doc)][:1] == [("users", 17, "level")]


def jsonschema_full() -> Any:
    """The reference validator without the pruning: every item visited."""
    from reconciler.config import schema

    base, formats = schema._reference()
    return base(load_schema(ORG_SCHEMA), format_checker=formats)
