"""Deferred or manual by looking ahead: the future the planner plays, and the relabelling it leads to."""

from __future__ import annotations

import datetime as dt

from reconciler.domain.levels import Level
from reconciler.config.models import Role
from reconciler.domain.state import Membership, Pending, PendingKind, Status
from reconciler.plan.lookahead import Outcome, change_keys, classify, item_keys, the_dates, the_future
from reconciler.plan.model import Action, Change, Deferred, Manual, OrgPlan, Plan, Stage

from .conftest import KVK, TODAY, Backend, PlanFn


def test_the_future_approves_then_activates(backend: Backend) -> None:
    backend.means("new@acme.nl", status=Status.WACHTEN_OP_GOEDKEURING)
    backend.means("up@acme.nl", level="EH2+", pending=Pending(PendingKind.LEVEL, level=Level.EH3))
    the_future(backend.world, TODAY)
    assert backend.world.means["new"].status is Status.ACTIEF          # approved (R5) and activated (R5)
    assert backend.world.means["up"].level is Level.EH3 and backend.world.means["up"].pending is None   # R6


def test_scheduled_terminations_take_effect_only_when_played(backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    backend.means("leaver@acme.nl")
    backend.world.orgs[KVK].members["leaver"] = Membership(Role.GEBRUIKER, dt.date(2027, 1, 1))
    the_future(backend.world, TODAY)
    assert "leaver" in backend.world.orgs[KVK].members                  # approvals do not move the clock
    assert the_dates(backend.world) is True
    assert "leaver" not in backend.world.orgs[KVK].members and "leaver" not in backend.world.means   # R14
    assert the_dates(backend.world) is False


def test_keys_name_bulk_steps_per_person_and_service() -> None:
    change = Change(id="x", kvk=KVK, action=Action.GRANT, target=["A@x.nl", "b@x.nl"], stage=Stage.GRANT,
                    params={"service_keys": ["s1", "s2"]})
    assert set(change_keys(change)) == {(KVK, "grant", p, s) for p in ("a@x.nl", "b@x.nl") for s in ("s1", "s2")}
    item = Deferred(KVK, Action.GRANT, ["s1", "s3"], "R7", "waits", "a@X.nl")
    assert item_keys(item) == [(KVK, "grant", "a@x.nl", "s1"), (KVK, "grant", "a@x.nl", "s3")]


def _plan(deferred: list[Deferred], manual: list[Manual]) -> Plan:
    org = OrgPlan(kvk=KVK, name="Acme", revision=1, acting_admin="admin@acme.nl", deferred=deferred, manual=manual)
    return Plan(today=TODAY, config_digest="", tool_version="", backend="", organisations=[org])


def test_classify_splits_what_a_later_round_does_from_what_none_does() -> None:
    grant = Deferred(KVK, Action.GRANT, ["s1", "s2"], "R7", "waits for activation", "a@x.nl")
    r4 = Manual(KVK, Action.REQUEST_MEANS, "b@x.nl", "R4", "above your level", "b@x.nl")
    r19 = Manual(KVK, Action.CHANGE_PHONE, "c@x.nl", "R19", "only the holder", "c@x.nl")
    plan = _plan([grant], [r4, r19])
    classify(plan, Outcome({(KVK, "grant", "a@x.nl", "s1"), (KVK, "request_means", "b@x.nl", "")}, True, 2))
    [org] = plan.organisations
    assert [(d.action, d.target) for d in org.deferred] == [(Action.GRANT, ["s1"]),
                                                            (Action.REQUEST_MEANS, "b@x.nl")]
    assert "a later run does it by itself" in org.deferred[1].reason
    assert [(m.action, m.target) for m in org.manual] == [(Action.CHANGE_PHONE, "c@x.nl"), (Action.GRANT, ["s2"])]
    assert "no later run can do it either" in org.manual[1].reason


def test_classify_keeps_deferred_steps_when_the_rounds_ran_out() -> None:
    grant = Deferred(KVK, Action.GRANT, ["s1"], "R7", "waits", "a@x.nl")
    plan = _plan([grant], [])
    classify(plan, Outcome(set(), False, 4))
    assert plan.organisations[0].deferred == [grant] and plan.organisations[0].manual == []


def test_a_request_above_the_actors_level_waits_for_the_actors_pending_upgrade_r4(plan_for: PlanFn,
                                                                                  backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder", level="EH2+", pending=Pending(PendingKind.LEVEL, level=Level.EH3))
    plan = plan_for("""\
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}
  - {email: x@acme.nl, name: X, role: gebruiker, level: EH3, second_factor: {type: otp}}
""")
    [org] = plan.organisations
    assert [(d.action, d.target, d.rule) for d in org.deferred] == [(Action.REQUEST_MEANS, "x@acme.nl", "R4")]
    assert org.manual == []


def test_a_request_above_the_actors_level_with_nothing_pending_is_manual_r4(plan_for: PlanFn,
                                                                            backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder", level="EH2+")
    plan = plan_for("""\
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH2+, second_factor: {type: otp}}
  - {email: x@acme.nl, name: X, role: gebruiker, level: EH3, second_factor: {type: otp}}
""")
    [org] = plan.organisations
    assert [(m.action, m.target, m.rule) for m in org.manual] == [(Action.REQUEST_MEANS, "x@acme.nl", "R4")]
    assert org.deferred == []
