"""`apply.preflight`: a saved plan's staleness, and the removal threshold, which lives on the plan itself
(`Plan.raise_if_unsafe`, the one check that plan, apply and saved plans share)."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.apply.preflight import stale_reasons, threshold_reasons
from reconciler.plan.model import Action, Change, OrgPlan, Plan, Stage, UnsafePlan

TODAY = dt.date(2026, 12, 1)


def _revoke(i: int) -> Change:
    return Change(id=f"r{i}", kvk="12345678", action=Action.TERMINATE_MEANS, target=f"u{i}@acme.nl",
                  stage=Stage.REMOVE, params={"means_id": f"m{i}", "mode": "now"}, removal=True)


def plan(removals: int, limit: int | None, recorded: int | None = None) -> Plan:
    org = OrgPlan(kvk="12345678", name="Acme", revision=3, acting_admin="a@acme.nl", removal_limit=limit,
                  existing_objects=10, changes=[_revoke(i) for i in range(removals)])
    org.removals = removals if recorded is None else recorded
    return Plan(today=TODAY, config_digest="", tool_version="1", backend="sandbox:x", organisations=[org])


def test_within_the_limit_is_safe_and_over_it_needs_force() -> None:
    plan(2, 2).raise_if_unsafe(force=False)
    with pytest.raises(UnsafePlan) as info:
        plan(3, 2).raise_if_unsafe(force=False)
    assert info.value.reasons == ["organisation 12345678: 3 removals, more than policy.max_removals allows "
                                  "(2 of 10 objects)"]
    assert "run again with --force" in str(info.value)
    plan(3, 2).raise_if_unsafe(force=True)
    plan(30, None).raise_if_unsafe(force=False)                  # no limit applies


def test_the_count_comes_from_the_steps_not_the_recorded_number() -> None:
    tampered = plan(5, 2, recorded=0)
    assert tampered.organisations[0].over_threshold
    assert threshold_reasons(tampered) == tampered.unsafe_reasons() != []


def test_staleness_names_what_changed() -> None:
    saved = plan(1, None)
    assert stale_reasons(saved, backend="sandbox:x", revisions={"12345678": 3}, today=TODAY, tool_version="1") == []
    reasons = stale_reasons(saved, backend="sandbox:y", revisions={"12345678": 4}, today=TODAY - dt.timedelta(1),
                            tool_version="2")
    assert len(reasons) == 4 and "made against sandbox:x, not sandbox:y" in reasons[1]
    assert "revision 3 then, revision 4 now" in reasons[2]
