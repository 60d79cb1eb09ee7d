"""The planner as a pure function: scenarios for each ordering rule, deferral and manual case (issue #4)."""

from __future__ import annotations

import datetime as dt

from reconciler.domain.levels import Level
from reconciler.domain.state import Status
from reconciler.plan.model import Action, Stage
from reconciler.plan.planner import target_end

from .conftest import KVK, TODAY, Backend, PlanFn, uuid

ADMIN = """\
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}
"""
ADMIN_BLOCK = """\
users:
  - email: admin@acme.nl
    name: Admin
    role: beheerder
    level: EH3
    second_factor: {type: otp}
"""


def actions(plan, kind: str = "changes") -> list[tuple[str, object]]:
    [org] = plan.organisations
    return [(item.action.value, item.target) for item in getattr(org, kind)]


def test_in_sync_plans_nothing(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    plan = plan_for(ADMIN)
    assert not plan.has_work and plan.api_calls == 0
    assert plan.organisations[0].revision == 7


def test_new_users_are_requested_and_their_grants_wait_for_activation_r7(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    plan = plan_for(ADMIN + """\
  - email: new@acme.nl
    name: New
    role: gebruiker
    level: EH3
    second_factor: {type: otp}
    authorisations: [{service: uwv/werkgeversportaal, until: rolling}]
""")
    assert actions(plan) == [("request_means", "new@acme.nl")]
    [deferred] = plan.organisations[0].deferred
    assert deferred.rule == "R7" and deferred.action is Action.GRANT and deferred.target == ["uwv/werkgeversportaal"]
    assert "approves" in deferred.reason


def test_rolling_extends_only_within_renew_before(plan_for: PlanFn, backend: Backend) -> None:
    admin = backend.means("admin@acme.nl", "beheerder")
    body = ADMIN_BLOCK + "    authorisations: [{service: rvo/tenderned, until: rolling}]\n"
    backend.auth(admin, "rvo/tenderned", TODAY + dt.timedelta(days=61))
    assert not plan_for(body).has_work
    backend.auth(admin, "rvo/tenderned", TODAY + dt.timedelta(days=59))
    plan = plan_for(body)
    [change] = plan.changes
    assert change.action is Action.SET_END_DATE and change.params["end_date"] == "2031-11-21"
    assert change.stage is Stage.GRANT


def test_target_end_rules() -> None:
    d = dt.date(2027, 1, 1)
    assert target_end(d, None, TODAY, 60) == ("grant", d)
    assert target_end(d, d, TODAY, 60) == (None, None)
    assert target_end(d, dt.date(2028, 1, 1), TODAY, 60) == ("set", d)
    assert target_end(TODAY, dt.date(2028, 1, 1), TODAY, 60) == ("revoke", None)
    assert target_end(TODAY - dt.timedelta(days=1), None, TODAY, 60) == (None, None)
    assert target_end("rolling", None, TODAY, 60) == ("grant", dt.date(2031, 11, 21))


def test_fixed_dates_revokes_and_expired_grants(plan_for: PlanFn, backend: Backend) -> None:
    admin = backend.means("admin@acme.nl", "beheerder")
    backend.auth(admin, "rvo/tenderned", dt.date(2028, 1, 1))
    backend.auth(admin, "mijn-overheid/ondernemers", dt.date(2028, 1, 1))
    plan = plan_for(ADMIN_BLOCK + """\
    authorisations:
      - {service: rvo/tenderned, until: 2027-06-30}
      - {service: mijn-overheid/ondernemers, until: 2026-01-01}
      - {service: uwv/werkgeversportaal, until: rolling}
""")
    got = {(c.action.value, tuple(c.params["service_keys"]), c.stage) for c in plan.changes}
    assert got == {("grant", ("uwv/werkgeversportaal",), Stage.GRANT),
                   ("set_end_date", ("rvo/tenderned",), Stage.SHORTEN),
                   ("revoke", ("mijn-overheid/ondernemers",), Stage.SHORTEN)}
    assert [c.stage for c in plan.changes] == sorted(c.stage for c in plan.changes)


def test_bulk_grants_merge_users_with_the_same_services_and_end_r10(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    body = ADMIN
    for name in ("a", "b", "c"):
        backend.means(f"{name}@acme.nl")
        body += (f"  - {{email: {name}@acme.nl, name: {name}, role: gebruiker, level: EH3, second_factor: {{type: otp}},"
                 " authorisations: [{service: uwv/werkgeversportaal, until: 2028-01-01},"
                 " {service: rvo/tenderned, until: 2028-01-01}]}\n")
    plan = plan_for(body)
    [change] = plan.changes
    assert change.action is Action.GRANT and change.target == ["a@acme.nl", "b@acme.nl", "c@acme.nl"]
    assert sorted(change.params["service_keys"]) == ["rvo/tenderned", "uwv/werkgeversportaal"]
    assert plan.api_calls == 1


def test_upgrade_comes_first_and_the_grant_it_enables_waits_r6_r8(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    backend.means("u@acme.nl", level="EH2+")
    plan = plan_for(ADMIN + """\
  - {email: u@acme.nl, name: U, role: gebruiker, level: EH3, second_factor: {type: otp},
     authorisations: [{service: uwv/werkgeversportaal, until: rolling}, {service: rvo/tenderned, until: rolling}]}
""")
    assert [(c.action.value, c.stage) for c in plan.changes] == [("change_level", Stage.ADD), ("grant", Stage.GRANT)]
    assert plan.changes[1].params["service_keys"] == ["rvo/tenderned"]      # EH2 service: not held back
    [deferred] = plan.organisations[0].deferred
    assert deferred.rule == "R8" and deferred.target == "uwv/werkgeversportaal"
    assert "level change to EH3" in deferred.reason


def test_an_admin_is_replaced_only_after_the_new_one_is_active_r1(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    backend.means("old@acme.nl", "beheerder")
    backend.means("new@acme.nl", "gebruiker", status=Status.WACHTEN_OP_ACTIVATIE)
    # admin (the actor) is scheduled to leave; old is demoted; new is promoted but not active yet
    backend.world.orgs[KVK].members["admin"] = backend.world.orgs[KVK].members["admin"].__class__(
        backend.world.orgs[KVK].members["admin"].role, dt.date(2027, 1, 1))
    plan = plan_for("""\
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}
  - {email: new@acme.nl, name: New, role: beheerder, level: EH3, second_factor: {type: otp}}
  - {email: old@acme.nl, name: Old, role: gebruiker, level: EH3, second_factor: {type: otp}}
""")
    assert ("change_role", "new@acme.nl") in actions(plan)
    deferred = plan.organisations[0].deferred
    assert [(d.action.value, d.target, d.rule) for d in deferred] == [("change_role", "old@acme.nl", "R1")]
    assert "new@acme.nl" in deferred[0].reason


def test_the_acting_admin_is_never_demoted_or_terminated_r3(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    backend.means("b@acme.nl", "beheerder")
    plan = plan_for("""\
policy: {prune: true}
users:
  - {email: admin@acme.nl, name: Admin, role: gebruiker, level: EH3, second_factor: {type: otp}}
  - {email: b@acme.nl, name: B, role: beheerder, level: EH3, second_factor: {type: otp}}
""")
    assert actions(plan) == []
    assert [(m.action.value, m.rule) for m in plan.organisations[0].manual] == [("change_role", "R3")]


def test_levels_above_the_acting_admin_are_manual_r4(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder", level="EH2+")
    plan = plan_for("""\
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH2+, second_factor: {type: otp}}
  - {email: x@acme.nl, name: X, role: gebruiker, level: EH3, second_factor: {type: otp}}
""")
    assert actions(plan) == []
    [manual] = plan.organisations[0].manual
    assert manual.rule == "R4" and manual.action is Action.REQUEST_MEANS


def test_type_change_then_grants_again_r13(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    from reconciler.config.models import MeansType
    tax = backend.means("tax@acme.nl", type=MeansType.BELASTINGDIENST)
    backend.auth(tax, "belastingdienst/aangifte-omzetbelasting", dt.date(2029, 1, 1))
    plan = plan_for(ADMIN + """\
  - {email: tax@acme.nl, name: T, role: gebruiker, level: EH3, second_factor: {type: otp},
     authorisations: [{service: belastingdienst/aangifte-omzetbelasting, until: 2029-01-01},
                      {service: uwv/werkgeversportaal, until: 2029-01-01}]}
""")
    assert [c.action.value for c in plan.changes] == ["change_type", "grant"]
    assert sorted(plan.changes[1].params["service_keys"]) == ["belastingdienst/aangifte-omzetbelasting",
                                                              "uwv/werkgeversportaal"]


def test_prune_terminates_undeclared_means_else_lists_them(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    backend.means("gone@acme.nl")
    backend.means("nood@acme.nl", "beheerder")
    kept = plan_for("policy: {unmanaged: [nood@acme.nl]}\n" + ADMIN)
    assert actions(kept) == [] and [u.target for u in kept.organisations[0].unmanaged] == ["gone@acme.nl"]
    pruned = plan_for("policy: {prune: true, unmanaged: [nood@acme.nl]}\n" + ADMIN)
    assert actions(pruned) == [("terminate_means", "gone@acme.nl")]
    assert pruned.changes[0].stage is Stage.REMOVE and pruned.organisations[0].removals == 1


def test_removal_threshold_requires_force(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    for i in range(11):
        backend.means(f"u{i}@acme.nl")
    plan = plan_for("policy: {prune: true, max_removals: 25%}\n" + ADMIN)
    org = plan.organisations[0]
    assert org.removals == 11 and org.removal_limit == 3 and org.over_threshold and plan.force_required
    assert plan_for("policy: {prune: true, max_removals: 11}\n" + ADMIN).force_required is False


def test_the_last_means_is_never_terminated_r14(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("other@acme.nl", "beheerder")
    plan = plan_for("policy: {prune: true}\n" + ADMIN, actor="other")
    # admin@ is requested; other (the actor) is never terminated by the reconciler
    assert ("terminate_means", "other@acme.nl") not in actions(plan)
    assert ("terminate_means", "R3") in [(m.action.value, m.rule) for m in plan.organisations[0].manual]


def test_the_sole_active_admin_leaving_is_manual_with_its_consequence_r3_r14(plan_for: PlanFn,
                                                                              backend: Backend) -> None:
    """Issue #13: the backend lets the only active means end itself, and with it the organisation (manual
    3.4.1); the planner never plans it, and its manual item says what it would end."""
    backend.means("other@acme.nl", "beheerder")
    backend.means("wacht@acme.nl", status=Status.WACHTEN_OP_ACTIVATIE)
    plan = plan_for("policy: {prune: true}\n" + ADMIN, actor="other")
    assert ("terminate_means", "other@acme.nl") not in actions(plan)
    [own] = [m for m in plan.organisations[0].manual if (m.action.value, m.target) == ("terminate_means",
                                                                                       "other@acme.nl")]
    assert own.rule == "R3" and "ends eHerkenning for the whole organisation" in own.reason, own.reason
    assert "wacht@acme.nl" in own.reason and "admin@acme.nl" in own.reason and "R16" in own.reason
    # with another active means the advice is the usual one
    backend.means("actief@acme.nl")
    plan = plan_for("policy: {prune: true}\n" + ADMIN + "  - {email: actief@acme.nl, name: A, role: gebruiker, "
                    "level: EH3, second_factor: {type: otp}}\n", actor="other")
    [own] = [m for m in plan.organisations[0].manual if (m.action.value, m.target) == ("terminate_means",
                                                                                       "other@acme.nl")]
    assert own.reason.endswith("another beheerder must do it"), own.reason


def test_a_leaver_is_offboarded_now_even_while_an_upgrade_is_pending_r14_r6(plan_for: PlanFn,
                                                                            backend: Backend) -> None:
    """Issue #13: a termination now is accepted while a change of the means is pending (manual 3.4); the
    offboarding is a change of this plan, not deferred behind the supplier's processing of the upgrade."""
    from reconciler.domain.state import Pending, PendingKind

    backend.means("admin@acme.nl", "beheerder")
    backend.means("leaver@acme.nl", pending=Pending(PendingKind.LEVEL, level=Level.EH4))
    plan = plan_for("policy: {prune: true}\n" + ADMIN)
    assert actions(plan) == [("terminate_means", "leaver@acme.nl")]
    assert actions(plan, "deferred") == []


def test_moving_the_tax_means_is_one_apply_terminate_then_request_r13(plan_for: PlanFn, backend: Backend) -> None:
    """Issue #13: one belastingdienst means per organisation (R13), judged after the termination: the old one
    ends and the new one is requested in the same apply, in that order (it took three applies)."""
    from reconciler.config.models import MeansType

    backend.means("admin@acme.nl", "beheerder")
    backend.means("oud@acme.nl", type=MeansType.BELASTINGDIENST)
    plan = plan_for("policy: {prune: true}\n" + ADMIN + "  - {email: nieuw@acme.nl, name: N, role: gebruiker, "
                    "level: EH3, type: belastingdienst, second_factor: {type: otp}}\n")
    assert actions(plan) == [("terminate_means", "oud@acme.nl"), ("request_means", "nieuw@acme.nl")]
    assert actions(plan, "deferred") == [] and actions(plan, "manual") == []
    [org] = plan.organisations
    assert org.changes[0].removal and org.removals == 1        # still a removal against policy.max_removals


def test_without_prune_the_old_tax_means_stays_and_the_request_waits_r13(plan_for: PlanFn,
                                                                         backend: Backend) -> None:
    from reconciler.config.models import MeansType

    backend.means("admin@acme.nl", "beheerder")
    backend.means("oud@acme.nl", type=MeansType.BELASTINGDIENST)
    plan = plan_for(ADMIN + "  - {email: nieuw@acme.nl, name: N, role: gebruiker, level: EH3, "
                    "type: belastingdienst, second_factor: {type: otp}}\n")
    assert actions(plan) == []
    assert [(d.action.value, d.rule) for d in plan.organisations[0].deferred + plan.organisations[0].manual] == [
        ("request_means", "R13")]


def test_expired_activation_gets_a_new_invitation_r5(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    backend.means("late@acme.nl", status=Status.ACTIVATIE_VERLOPEN)
    plan = plan_for(ADMIN + "  - {email: late@acme.nl, name: L, role: gebruiker, level: EH3, second_factor: {type: otp}}\n")
    assert actions(plan) == [("resend_invitation", "late@acme.nl")]


def test_a_person_known_elsewhere_is_linked_not_bought_twice_r15(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    backend.means("admin@acme.nl", "beheerder", kvk="12345678")
    backend.means("shared@acme.nl", kvk="12345678")
    plan = plan_for(ADMIN + "  - {email: shared@acme.nl, name: S, role: gebruiker, level: EH3, second_factor: {type: otp}}\n")
    assert actions(plan) == [("link_means", "shared@acme.nl")]
    assert plan.changes[0].params["means_id"] == "shared"


def test_unknown_organisation_is_manual_r16(tmp_path, backend: Backend) -> None:
    from reconciler.plan.planner import PlanInput, make_plan
    from .conftest import config
    desired = config(tmp_path, ADMIN, header='version: 1\norganisation: {kvk: "11112222", name: New}\n')
    plan = make_plan(PlanInput([desired], backend.world, TODAY, {}, {}))
    [manual] = plan.organisations[0].manual
    assert manual.rule == "R16" and not plan.changes


def test_chain_authorisations_r18(plan_for: PlanFn, backend: Backend) -> None:
    """Issue #13: each chain authorisation (intermediary x service) has its own end date; adding a service
    leaves the others' dates alone, a service the config drops is revoked by itself (not the whole
    intermediary), and an intermediary the config drops is removed with prune."""
    backend.means("admin@acme.nl", "beheerder")
    backend.chain("47474747", ["uwv/werkgeversportaal", "rvo/tenderned"], dt.date(2028, 1, 1))
    backend.chain("11111111", ["rvo/tenderned"], dt.date(2028, 1, 1))
    plan = plan_for("policy: {prune: true}\n" + ADMIN + """\
chain_authorisations:
  - {intermediary: {kvk: "47474747"}, services: [uwv/werkgeversportaal], until: 2029-01-01}
  - {intermediary: {kvk: "47474747"}, services: [algemene-bevoegdheid-3], until: 2027-06-30}
  - {intermediary: {kvk: "22222222"}, services: [rvo/tenderned], until: rolling}
""")
    got = [(c.action.value, c.target, c.stage, tuple(c.params.get("service_keys", ()))) for c in plan.changes]
    assert got == [
        ("issue_chain", "47474747", Stage.GRANT, ("algemene-bevoegdheid-3",)),
        ("set_chain_end_date", "47474747", Stage.GRANT, ("uwv/werkgeversportaal",)),
        ("issue_chain", "22222222", Stage.GRANT, ("rvo/tenderned",)),
        ("revoke_chain", "47474747", Stage.SHORTEN, ("rvo/tenderned",)),
        ("remove_intermediary", "11111111", Stage.REMOVE, ()),
    ], got
    issue = next(c for c in plan.changes if c.action is Action.ISSUE_CHAIN and c.target == "47474747")
    assert issue.params["end_date"] == "2027-06-30" and issue.escalation and issue.cost_yearly == 0.0
    assert next(c for c in plan.changes if c.target == "22222222").cost_yearly > 0        # a new intermediary
    revoke = next(c for c in plan.changes if c.action is Action.REVOKE_CHAIN)
    assert revoke.removal and revoke.removal_count == 1 and revoke.after == {"end_dates": {
        "47474747 rvo/tenderned": None}}
    assert plan.organisations[0].manual == []


def test_a_chain_authorisation_whose_date_passed_ends_alone_r18(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    backend.chain("47474747", ["uwv/werkgeversportaal", "rvo/tenderned"], dt.date(2028, 1, 1))
    plan = plan_for(ADMIN + """\
chain_authorisations:
  - {intermediary: {kvk: "47474747"}, services: [uwv/werkgeversportaal], until: 2028-01-01}
  - {intermediary: {kvk: "47474747"}, services: [rvo/tenderned], until: 2026-01-01}
""")
    assert [(c.action.value, c.params["service_keys"], c.time_driven) for c in plan.changes] == [
        ("revoke_chain", ["rvo/tenderned"], True)]
    plan = plan_for(ADMIN + """\
chain_authorisations:
  - {intermediary: {kvk: "47474747"}, services: [uwv/werkgeversportaal, rvo/tenderned], until: 2026-01-01}
""")
    assert [c.action.value for c in plan.changes] == ["remove_intermediary"]       # every one passed


def test_planning_does_not_change_the_actual_state(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    before = (dict(backend.world.means), {k: dict(v.members) for k, v in backend.world.orgs.items()})
    plan_for(ADMIN + "  - {email: n@acme.nl, name: N, role: gebruiker, level: EH2}\n")
    assert before == (dict(backend.world.means), {k: dict(v.members) for k, v in backend.world.orgs.items()})


def test_step_ids_are_stable(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    body = ADMIN + "  - {email: n@acme.nl, name: N, role: gebruiker, level: EH2}\n"
    assert [c.id for c in plan_for(body).changes] == [c.id for c in plan_for(body).changes]
    assert uuid("rvo/tenderned")


def test_an_email_change_is_never_terminate_and_request_r11(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    backend.means("piet@old.nl")                          # active: only the holder can change it
    backend.means("kees@old.nl", status=Status.WACHTEN_OP_ACTIVATIE)
    body = "policy: {prune: true}\n" + ADMIN + """\
  - {email: piet@new.nl, name: Piet, role: gebruiker, level: EH3, second_factor: {type: otp},
     authorisations: [{service: rvo/tenderned, until: rolling}]}
  - {email: kees@new.nl, name: Kees, role: gebruiker, level: EH3, second_factor: {type: otp}}
"""
    plan = plan_for(body)
    assert actions(plan) == [("change_email", "kees@old.nl")]          # before activation an admin may (R11)
    manual, waiting = plan.organisations[0].manual
    assert (manual.action, manual.target, manual.rule) == (Action.CHANGE_EMAIL, "piet@old.nl", "R11")
    # its grants wait on that manual step, so they are manual too (nothing in the plan unblocks them)
    assert (waiting.action, waiting.rule, waiting.target) == (Action.GRANT, "R11", ["rvo/tenderned"])
    assert "no later run can do it" in waiting.reason and plan.organisations[0].deferred == []
    assert not any(c.action in (Action.TERMINATE_MEANS, Action.REQUEST_MEANS) for c in plan.changes)


def test_a_branch_number_makes_uwv_grants_manual_r17(tmp_path, backend: Backend) -> None:
    from reconciler.domain.state import OrgInfo
    from reconciler.plan.planner import PlanInput, make_plan
    from .conftest import config
    backend.world.orgs[KVK].info = OrgInfo(KVK, "Acme", "000012345678")
    backend.means("admin@acme.nl", "beheerder")
    desired = config(tmp_path, ADMIN_BLOCK + "    authorisations: [{service: uwv/werkgeversportaal, until: rolling}]\n",
                     header=f'version: 1\norganisation: {{kvk: "{KVK}", name: Acme, branch_number: "000012345678"}}\n')
    plan = make_plan(PlanInput([desired], backend.world, TODAY, {KVK: "admin"}, {KVK: 1}))
    assert plan.changes == [] and plan.organisations[0].deferred == []
    [manual] = plan.organisations[0].manual
    assert (manual.action, manual.rule) == (Action.GRANT, "R17")
