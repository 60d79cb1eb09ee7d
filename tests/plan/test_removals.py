"""Removals a reviewer can judge (issue 11): a termination says whose means it is, what the person loses (every
authorisation and chain authorisation with its end date), where the means stays linked and that it cannot be
undone; end-date changes and revokes say old -> new. The same in the plan's text, markdown (a removals section
right after the privilege escalations) and JSON (`before` / `after`, valid against the schema)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from jsonschema import Draft202012Validator

from reconciler.domain.state import Chain, OrgInfo, OrgState
from reconciler.plan.model import Action, Change, Plan
from reconciler.render.json_plan import render_json
from reconciler.render.markdown import render_markdown
from reconciler.render.safe import md
from reconciler.render.text import render_text

from ..render.mdparse import parse
from .conftest import KVK, Backend, PlanFn, uuid

SCHEMA = Path(__file__).resolve().parents[2] / "reconciler" / "schemas" / "plan.schema.json"
CLIENT, OTHER = "11111111", "22222222"
PRUNE = """\
policy: {prune: true}
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}
"""
NEW_ADMIN = "  - {email: boss@acme.nl, name: Boss, role: beheerder, level: EH3, second_factor: {type: otp}}\n"


def only(plan: Plan, action: Action) -> Change:
    [change] = [c for c in plan.changes if c.action is action]
    return change


def schema_errors(plan: Plan) -> list[str]:
    validator = Draft202012Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
    return [e.message for e in validator.iter_errors(json.loads(render_json(plan)))]


def leaver(backend: Backend) -> None:
    """Lea: gebruiker EH3 here with two authorisations, acting for a client through its chain authorisation to
    this organisation, and linked to a second organisation as beheerder."""
    backend.means("admin@acme.nl", "beheerder")
    lea = backend.means("lea@acme.nl")
    backend.auth(lea, "uwv/werkgeversportaal", dt.date(2030, 1, 1))
    backend.auth(lea, "rvo/tenderned", dt.date(2028, 6, 30))
    backend.world.orgs[CLIENT] = OrgState(OrgInfo(CLIENT, "Client BV"))
    backend.world.orgs[CLIENT].chains[KVK] = Chain.issued(KVK, "Acme", frozenset({uuid("uwv/werkgeversportaal")}),
                                                   dt.date(2029, 3, 31))
    backend.world.orgs[OTHER] = OrgState(OrgInfo(OTHER, "Other BV"))
    backend.means("other@acme.nl", "beheerder", kvk=OTHER)
    backend.means("lea@acme.nl", "beheerder", kvk=OTHER)


def test_a_termination_lists_what_the_person_loses_where_the_means_stays_and_the_cost(
        plan_for: PlanFn, backend: Backend) -> None:
    leaver(backend)
    plan = plan_for(PRUNE)
    change = only(plan, Action.TERMINATE_MEANS)
    assert change.detail == ("lea, gebruiker, EH3; not in the config; loses 2 authorisations and 1 chain "
                             "authorisation; stays linked to 1 other organisation; cannot be undone")
    assert change.before == {
        "name": "lea", "role": "gebruiker", "level": "EH3",
        "end_dates": {"lea@acme.nl rvo/tenderned": "2028-06-30", "lea@acme.nl uwv/werkgeversportaal": "2030-01-01"},
        "chain_authorisations": [{"kvk": CLIENT, "name": "Client BV", "service": "uwv/werkgeversportaal",
                                  "end_date": "2029-03-31"}]}
    assert change.after == {
        "end_dates": {"lea@acme.nl rvo/tenderned": None, "lea@acme.nl uwv/werkgeversportaal": None},
        "other_organisations": [{"kvk": OTHER, "name": "Other BV", "role": "beheerder"}],
        "undo": "cannot be undone: linking the means here again costs EUR 21.00 a year and needs the supplier's "
                "processing (R15)"}
    lines = ["loses rvo/tenderned (until 2028-06-30), uwv/werkgeversportaal (until 2030-01-01)",
             "loses, acting for 11111111 Client BV through its chain authorisation: uwv/werkgeversportaal "
             "(until 2029-03-31)",
             "stays linked to 22222222 Other BV (beheerder): the means is terminated only here (R14)",
             change.after["undo"]]
    text = render_text(plan)
    assert "    - terminate_means  " + change.detail + "".join(f"\n        {line}" for line in lines) in text
    [row] = parse(render_markdown(plan)).table("removals").rows
    assert row[2:4] == ["`terminate_means`", "lea@acme.nl"]
    assert row[4] == md("\n".join([change.detail, *lines])) and row[4].count("<br>") == len(lines)
    data = json.loads(render_json(plan))["organisations"][0]["changes"]
    assert [(c["before"], c["after"]) for c in data] == [(change.before, change.after)]
    assert schema_errors(plan) == []


def test_a_new_means_is_what_undoing_a_termination_costs(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    backend.means("gone@acme.nl")
    change = only(plan_for(PRUNE), Action.TERMINATE_MEANS)
    assert change.before is not None and change.before["end_dates"] == {}
    assert change.before["chain_authorisations"] == [] and change.after is not None
    assert change.after["other_organisations"] == []
    assert change.after["undo"] == ("cannot be undone: a new means costs the request fee (EUR 41.00 a year and EUR "
                                    "40.00 once) and needs the supplier's approval and the holder's activation (R5)")
    assert "\n        holds no authorisations here\n" in render_text(plan_for(PRUNE))


def test_end_dates_and_revokes_show_old_and_new(plan_for: PlanFn, backend: Backend) -> None:
    admin = backend.means("admin@acme.nl", "beheerder")
    backend.auth(admin, "rvo/tenderned", dt.date(2027, 1, 1))
    backend.auth(admin, "mijn-overheid/ondernemers", dt.date(2028, 1, 1))
    backend.chain("47474747", ["rvo/tenderned"], dt.date(2030, 1, 1))
    plan = plan_for("""\
policy: {prune: true}
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp},
     authorisations: [{service: rvo/tenderned, until: 2029-06-01}]}
chain_authorisations:
  - {intermediary: {kvk: "47474747"}, services: [rvo/tenderned], until: 2028-02-01}
""")
    extend, revoke = only(plan, Action.SET_END_DATE), only(plan, Action.REVOKE)
    chain = only(plan, Action.SET_CHAIN_END_DATE)
    assert extend.detail == "rvo/tenderned until 2027-01-01 -> 2029-06-01"
    assert (extend.before, extend.after) == ({"end_dates": {"admin@acme.nl rvo/tenderned": "2027-01-01"}},
                                             {"end_dates": {"admin@acme.nl rvo/tenderned": "2029-06-01"}})
    assert revoke.detail == "mijn-overheid/ondernemers until 2028-01-01 -> revoked"
    assert (revoke.before, revoke.after) == ({"end_dates": {"admin@acme.nl mijn-overheid/ondernemers": "2028-01-01"}},
                                             {"end_dates": {"admin@acme.nl mijn-overheid/ondernemers": None}})
    assert chain.detail == "47474747: rvo/tenderned until 2030-01-01 -> 2028-02-01"
    assert (chain.before, chain.after) == ({"end_dates": {"47474747 rvo/tenderned": "2030-01-01"}},
                                           {"end_dates": {"47474747 rvo/tenderned": "2028-02-01"}})
    text = render_text(plan)
    assert "~ set_end_date  rvo/tenderned until 2027-01-01 -> 2029-06-01" in text
    assert "- revoke  mijn-overheid/ondernemers until 2028-01-01 -> revoked" in text
    doc = parse(render_markdown(plan))
    assert [(r[2], r[4]) for r in doc.table("removals").rows] == [
        ("`revoke`", md("mijn-overheid/ondernemers until 2028-01-01 -> revoked"))]
    assert ("`set_end_date`", md("rvo/tenderned until 2027-01-01 -> 2029-06-01")) in [
        (r[1], r[3]) for r in doc.table("changes", KVK).rows]
    data = {c["action"]: c for c in json.loads(render_json(plan))["organisations"][0]["changes"]}
    assert data["set_end_date"]["before"] == {"end_dates": {"admin@acme.nl rvo/tenderned": "2027-01-01"}}
    assert data["revoke"]["after"] == {"end_dates": {"admin@acme.nl mijn-overheid/ondernemers": None}}
    assert schema_errors(plan) == []


def test_role_changes_carry_before_and_after(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    backend.means("boss@acme.nl", "beheerder")
    plan = plan_for(PRUNE + "  - {email: boss@acme.nl, name: Boss, role: gebruiker, level: EH3, "
                            "second_factor: {type: otp}}\n")
    demotion = only(plan, Action.CHANGE_ROLE)
    assert (demotion.detail, demotion.before, demotion.after) == ("beheerder -> gebruiker", {"role": "beheerder"},
                                                                   {"role": "gebruiker"})
    assert [r[2] for r in parse(render_markdown(plan)).table("removals").rows] == ["`change_role`"]


def test_the_removals_section_comes_right_after_the_escalations(plan_for: PlanFn, backend: Backend) -> None:
    leaver(backend)
    text = render_markdown(plan_for(PRUNE + NEW_ADMIN))
    doc = parse(text)
    assert [t.section for t in doc.tables][:3] == ["escalations", "removals", "changes"]
    assert [r[2] for r in doc.table("escalations").rows] == ["`request_means`"]
    assert [r[3] for r in doc.table("removals").rows] == ["lea@acme.nl"]
    assert text.index("#### Removals (1: what is taken away, and from whom)") > text.index("Privilege escalations")
    assert text.index("#### Removals") < text.index("<details>")


def test_a_means_linked_where_the_config_does_not_look_stays_linked_there(plan_for: PlanFn, backend: Backend) -> None:
    """The backend lists every organisation a means is linked to; one the config does not include is not read,
    but the termination still says the means stays there (and that linking it again is what undoing costs)."""
    backend.means("admin@acme.nl", "beheerder")
    backend.means("gone@acme.nl")
    backend.world.linked["gone"] = (KVK, "33333333")
    plan = plan_for(PRUNE)
    change = only(plan, Action.TERMINATE_MEANS)
    assert change.after is not None
    assert change.after["other_organisations"] == [{"kvk": "33333333", "name": "", "role": None}]
    assert change.after["undo"].startswith("cannot be undone: linking the means here again costs EUR 21.00")
    assert ("\n        stays linked to 33333333 (not in this config): the means is terminated only here (R14)\n"
            in render_text(plan))
    assert schema_errors(plan) == []
