"""Saved plans: read back exactly, refused with a clear message when not a plan, checked for staleness and
for the removal threshold before anything is sent."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from reconciler.apply.preflight import stale_reasons, threshold_reasons
from reconciler.apply.saved import SavedPlanError, load_plan, plan_from_data, plan_id
from reconciler.plan.model import Action, Change, Deferred, Manual, OrgPlan, Plan, Stage
from reconciler.render.json_plan import plan_to_data, render_json

KVK = "12345678"
TODAY = dt.date(2026, 11, 21)


def sample() -> Plan:
    org = OrgPlan(kvk=KVK, name="Acme", revision=7, acting_admin="admin@acme.nl", removal_limit=1, existing_objects=4)
    org.changes = [
        Change(id="00000000000000a1", kvk=KVK, action=Action.REQUEST_MEANS, target="x@acme.nl", stage=Stage.ADD,
               params={"email": "x@acme.nl", "name": "X", "role": "gebruiker", "level": "EH3", "type": "regulier",
                       "second_factor": "otp", "phone": None, "subscription": "3y"}, person="x@acme.nl",
               cost_once=10.0),
        Change(id="00000000000000a2", kvk=KVK, action=Action.REVOKE, target=["a@acme.nl", "b@acme.nl"],
               stage=Stage.SHORTEN, params={"means_ids": ["m1", "m2"], "services": ["u1"], "service_keys": ["k"]},
               removal=True),
    ]
    org.deferred = [Deferred(KVK, Action.GRANT, ["rvo/tenderned"], "R7", "waits", "x@acme.nl")]
    org.manual = [Manual(KVK, Action.CHANGE_EMAIL, "old@acme.nl", "R11", "holder", "new@acme.nl", "old -> new")]
    org.horizon(dt.date(2027, 1, 5), "a@acme.nl rvo/tenderned enters its renewal window")
    return Plan(today=TODAY, config_digest="sha256:" + "ab" * 32, tool_version="0.1.0", backend="sandbox:x.db",
                organisations=[org])


def test_a_saved_plan_reads_back_as_the_same_plan(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(render_json(sample()))
    again = load_plan(path)
    assert plan_to_data(again) == plan_to_data(sample())
    assert plan_id(again) == plan_id(sample())
    assert again.organisations[0].valid_until == dt.date(2027, 1, 5)


def test_the_plan_id_changes_with_the_revision_the_day_and_the_steps() -> None:
    base = plan_id(sample())
    other = sample()
    other.organisations[0].revision = 8
    later = sample()
    later.today = TODAY + dt.timedelta(days=1)
    fewer = sample()
    fewer.organisations[0].changes.pop()
    assert len({base, plan_id(other), plan_id(later), plan_id(fewer)}) == 4


@pytest.mark.parametrize("text, expected", [
    ("{not json", "plan.json:1:2: not valid JSON"),
    ("[]", "not a valid plan at (top level)"),
    ('{"format_version": 99}', "plan format version 99"),
])
def test_what_is_not_a_plan_is_refused_with_where_and_why(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(SavedPlanError) as caught:
        load_plan(path)
    assert expected in str(caught.value)


def test_an_edited_plan_is_refused_at_the_path_that_is_wrong(tmp_path: Path) -> None:
    data = plan_to_data(sample())
    data["organisations"][0]["changes"][0]["action"] = "buy_everything"
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SavedPlanError, match=r"at organisations/0/changes/0/action: 'buy_everything'"):
        load_plan(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SavedPlanError, match="cannot read the plan"):
        load_plan(tmp_path / "nope.json")


def test_rebuilding_keeps_every_step_field() -> None:
    data = plan_to_data(sample())
    plan = plan_from_data(data)
    first = plan.organisations[0].changes[0]
    assert (first.kvk, first.action, first.stage, first.person, first.cost_once) == (
        KVK, Action.REQUEST_MEANS, Stage.ADD, "x@acme.nl", 10.0)


# ------------------------------------------------------------------------------------------- preflight
def fresh(**kw: object) -> list[str]:
    args = {"backend": "sandbox:x.db", "revisions": {KVK: 7}, "today": TODAY, "tool_version": "0.1.0"}
    args.update(kw)
    return stale_reasons(sample(), **args)  # type: ignore[arg-type]


def test_a_fresh_plan_is_not_stale() -> None:
    assert fresh() == []
    assert fresh(today=dt.date(2027, 1, 4)) == []          # a later day on which no date-driven decision flips


def test_staleness_names_what_changed() -> None:
    assert fresh(revisions={KVK: 9}) == [f"organisation {KVK} changed since the plan was made (revision 7 then, "
                                         "revision 9 now)"]
    assert "gone now" in fresh(revisions={})[0]
    assert "renewal window" in fresh(today=dt.date(2027, 1, 5))[0]
    assert "before the plan's" in fresh(today=TODAY - dt.timedelta(days=1))[0]
    assert "made by reconciler 0.1.0, this is 0.0.9" in fresh(tool_version="0.0.9")[0]
    assert "against sandbox:x.db, not https://x" in fresh(backend="https://x")[0]


def test_the_threshold_is_counted_again_from_the_steps() -> None:
    plan = sample()
    plan.organisations[0].removals = 0                     # an edited count does not fool it
    [reason] = threshold_reasons(plan)
    assert "2 removals" in reason and "(1 of 4 objects)" in reason
    plan.organisations[0].removal_limit = 2
    assert threshold_reasons(plan) == []
