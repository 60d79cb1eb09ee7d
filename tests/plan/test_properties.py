"""Properties of the planner on random actual and desired states (strategies.py):

a. safety: the planned changes, applied one by one in plan order with the rules the sandbox enforces, are
   never refused and never break an invariant (R1, R2, R7, R8, R13);
b. ordering: within an organisation, changes come in non-decreasing stage order;
c. convergence: plan -> apply -> the supplier approves -> the holders activate, repeated, reaches a plan
   without changes or deferred steps within 6 rounds, and the backend then matches the config for all that
   is not listed as manual;
d. purity: the same input gives the same plan and is not changed;
e. removals: the count against the threshold is the terminations, demotions, revoked pairs and intermediary
   removals of the plan;
f. manual means manual: what a plan lists as manual (no admin can do it through the backend) is not done by
   the reconciler itself a round later (part of the convergence test).

Each bug the properties found is pinned by its smallest case at the end (`test_regression_*`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from typing import Any

from hypothesis import HealthCheck, event, given, note, settings

from reconciler.config.models import ROLLING, MeansType, Role, SecondFactorType
from reconciler.domain import rules
from reconciler.domain.state import Status, World
from reconciler.plan.desired import DesiredOrg
from reconciler.plan.model import Action, Plan
from reconciler.plan.lookahead import change_keys, item_keys, the_dates
from reconciler.plan.planner import PlanInput, make_plan

from .conftest import CAT, KVK, TODAY, config
from .strategies import Actual, Scenario, describe, load_desired, scenarios

#: PLAN_PROPERTY_SCALE=20 runs twenty times as many examples (a deeper search than CI's).
SCALE = float(os.environ.get("PLAN_PROPERTY_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


SETTINGS = settings(max_examples=examples(60), deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
#: Rounds of plan -> apply -> approve -> activate after which the plan must be quiet.
ROUNDS = 6



# ============================================================================================ invariants
def invariant_violations(world: World) -> list[str]:
    """Every way `world` breaks the rules' standing invariants (empty when it holds them all)."""
    problems: list[str] = []
    for kvk, state in world.orgs.items():
        active_admins = [mid for mid, ms in state.members.items() if ms.is_admin and world.means[mid].active]
        if not active_admins:
            problems.append(f"R1: organisation {kvk} has no active beheerder")
        for mid, ms in state.members.items():
            means = world.means.get(mid)
            if means is None:
                problems.append(f"{kvk}: member {mid} has no means")
                continue
            if ms.is_admin and not rules.admin_level_ok(means.effective_level):
                problems.append(f"R2: {means.email} is beheerder of {kvk} at level {means.effective_level}")
            if ms.is_admin and means.type is MeansType.BELASTINGDIENST:
                problems.append(f"R13: {means.email} is a belastingdienst means and beheerder of {kvk}")
        for mid, held in state.authorisations.items():
            means = world.means.get(mid)
            if mid not in state.members or means is None:
                problems.append(f"{kvk}: authorisations of {mid}, which is not a member")
                continue
            if not means.active:
                problems.append(f"R7: {means.email} ({means.status.value}) holds authorisations at {kvk}")
            for uuid in held:
                service = world.catalogue.by_uuid(uuid)
                if service is None:
                    problems.append(f"{kvk}: {means.email} holds unknown service {uuid}")
                    continue
                if not rules.level_covers(means.effective_level, service.level):
                    problems.append(f"R8: {means.email} ({means.effective_level}) holds {service.key} "
                                    f"({service.level}) at {kvk}")
                if means.type is MeansType.BELASTINGDIENST and not service.belastingdienst:
                    problems.append(f"R13: belastingdienst means {means.email} holds {service.key} at {kvk}")
            if not held:
                problems.append(f"{kvk}: empty authorisation entry for {mid}")
        tax = world.tax_means(kvk)
        if len(tax) > 1:
            problems.append(f"R13: {kvk} has {len(tax)} belastingdienst means: {sorted(tax)}")
        for mid in tax:
            if world.means[mid].level != rules.TAX_MEANS_LEVEL:
                problems.append(f"R13: belastingdienst means {mid} is {world.means[mid].level}")
    for means in world.means.values():
        if rules.needs_second_factor(means.level) and means.second_factor is None:
            problems.append(f"R19: {means.email} at {means.level} has no second factor")
        if not world.memberships_of(means.id) and not (means.pending and means.pending.kind.value == "link"):
            problems.append(f"{means.email} is linked to no organisation")
    return problems


# ============================================================================================== helpers
def plan_for(world: World, actors: dict[str, str], desired: list[DesiredOrg]) -> Plan:
    return make_plan(PlanInput(desired=desired, actual=world, today=TODAY, actors=actors,
                               revisions={kvk: s.revision for kvk, s in world.orgs.items()}))


def listing(plan: Plan) -> str:
    """The plan in plan order, for failure messages."""
    lines = []
    for org in plan.organisations:
        lines.append(f"organisation {org.kvk} (acting {org.acting_admin}, removals {org.removals})")
        lines += [f"  {i:2} [{int(c.stage)}] {c.action.value} {c.target} {c.detail} {c.params.get('means_ids', '')}"
                  for i, c in enumerate(org.changes)]
        lines += [f"  deferred {d.action.value} {d.target} {d.rule}: {d.reason}" for d in org.deferred]
        lines += [f"  manual {m.action.value} {m.target} {m.rule}: {m.reason}" for m in org.manual]
        lines += [f"  unmanaged {u.kind} {u.target}" for u in org.unmanaged]
    return "\n".join(lines)


class Ids:
    """Fresh means ids for requests (the backend's choice, not the planner's placeholder)."""

    def __init__(self) -> None:
        self._n = itertools.count(1)

    def __call__(self) -> str:
        return f"fresh-{next(self._n)}"


def apply_plan(world: World, plan: Plan, actors: dict[str, str], ids: Ids) -> None:
    """Carry out every change in plan order as its organisation's acting admin; checks invariants after each."""
    for org in plan.organisations:
        for i, change in enumerate(org.changes):
            op = change.operation(ids() if change.action is Action.REQUEST_MEANS else "")
            try:
                effects = rules.execute(world, actors[change.kvk], op, TODAY)
            except rules.Refusal as refusal:
                raise AssertionError(f"step {i} of {org.kvk} ({change.action.value} {change.target}) refused: "
                                     f"{refusal.code} {refusal.message}\n{listing(plan)}\n{describe_world(world)}")
            world.apply(effects)
            broken = invariant_violations(world)
            assert not broken, (f"after step {i} of {org.kvk} ({change.action.value} {change.target}): {broken}\n"
                                f"{listing(plan)}")


def supplier_and_holders(world: World) -> None:
    """The supplier approves every request and pending change (R5, R6); every holder then activates (R5)."""
    for mid in sorted(world.means):
        means = world.means[mid]
        if means.status is Status.WACHTEN_OP_GOEDKEURING or means.pending is not None:
            world.apply(rules.approve(world, mid, TODAY))
            assert not invariant_violations(world), (f"after approving {means.email}", invariant_violations(world))
    for mid in sorted(world.means):
        if world.means[mid].status is Status.WACHTEN_OP_ACTIVATIE:
            world.apply(rules.activate(world, mid, TODAY))
            assert not invariant_violations(world), (f"after activating {mid}", invariant_violations(world))


def waiting_on_people(world: World) -> bool:
    """Whether the supplier or a holder still has something to do (a request, a pending change, an activation)."""
    return any(m.status in (Status.WACHTEN_OP_GOEDKEURING, Status.WACHTEN_OP_ACTIVATIE) or m.pending is not None
               for m in world.means.values())


def describe_world(world: World, actors: dict[str, str] | None = None) -> str:
    return describe(Actual(world, actors or {}))


def quiet(plan: Plan) -> bool:
    """Nothing left to do now or later: no changes and no deferred steps."""
    return not plan.changes and not any(o.deferred for o in plan.organisations)


# ====================================================================================== a, b, e: one plan
@SETTINGS
@given(scenarios())
def test_generated_actual_states_hold_the_invariants(scenario: Scenario) -> None:
    note(repr(scenario))
    assert invariant_violations(scenario.actual.world) == []


@settings(SETTINGS, max_examples=examples(100))
@given(scenarios())
def test_a_plan_applied_in_order_is_never_refused_and_keeps_the_invariants(scenario: Scenario) -> None:
    note(repr(scenario))
    desired = load_desired(scenario.files)
    world = scenario.actual.world.copy()
    plan = plan_for(world, scenario.actual.actors, desired)
    apply_plan(world, plan, scenario.actual.actors, Ids())


@settings(SETTINGS, max_examples=examples(100))
@given(scenarios())
def test_b_changes_come_in_stage_order(scenario: Scenario) -> None:
    note(repr(scenario))
    plan = plan_for(scenario.actual.world, scenario.actual.actors, load_desired(scenario.files))
    for org in plan.organisations:
        stages = [int(c.stage) for c in org.changes]
        assert stages == sorted(stages), f"stages {stages} out of order\n{listing(plan)}"


@settings(SETTINGS, max_examples=examples(100))
@given(scenarios())
def test_e_removals_count_terminations_demotions_revoked_pairs_and_intermediaries(scenario: Scenario) -> None:
    note(repr(scenario))
    plan = plan_for(scenario.actual.world, scenario.actual.actors, load_desired(scenario.files))
    for org in plan.organisations:
        expected = 0
        for c in org.changes:
            if c.action is Action.TERMINATE_MEANS or c.action is Action.REMOVE_INTERMEDIARY:
                expected += 1
            elif c.action is Action.CHANGE_ROLE and c.params["role"] == Role.GEBRUIKER.value:
                expected += 1
            elif c.action is Action.REVOKE:
                expected += len(c.params["means_ids"]) * len(c.params["services"])
            elif c.action is Action.REVOKE_CHAIN:                      # once per chain authorisation (R18)
                expected += len(c.params["services"])
        assert org.removals == expected, listing(plan)
        assert all(c.removal == (c.action in (Action.TERMINATE_MEANS, Action.REMOVE_INTERMEDIARY, Action.REVOKE,
                                              Action.REVOKE_CHAIN)
                                 or (c.action is Action.CHANGE_ROLE and c.params["role"] == "gebruiker"))
                   for c in org.changes), listing(plan)


# ============================================================================================ d: purity
def snapshot(world: World) -> Any:
    return (dict(world.means),
            {kvk: (s.info, dict(s.members), {m: dict(a) for m, a in s.authorisations.items()}, dict(s.chains),
                   s.revision) for kvk, s in world.orgs.items()})


@settings(SETTINGS, max_examples=examples(100))
@given(scenarios())
def test_d_planning_is_pure_and_repeatable(scenario: Scenario) -> None:
    note(repr(scenario))
    world, actors = scenario.actual.world, scenario.actual.actors
    desired = load_desired(scenario.files)
    before = snapshot(world)
    first = plan_for(world, actors, desired)
    assert snapshot(world) == before
    second = plan_for(world, actors, desired)
    assert first == second
    assert [c.id for c in first.changes] == [c.id for c in second.changes]
    assert snapshot(world) == before


# ======================================================================================= c: convergence
def converge(actual: World, actors: dict[str, str], desired: list[DesiredOrg]) -> tuple[World, Plan, list[Plan]]:
    """Rounds of plan -> apply -> approve -> activate on a copy of `actual` until a plan has no changes and
    nobody at the supplier or among the holders has anything left to do; then scheduled terminations take
    effect (R14: dates come last) and the rounds go on, at most ROUNDS plans applied in all. Returns the world
    then, the last plan and the plans applied."""
    world = actual.copy()
    ids = Ids()
    history: list[Plan] = []
    plan = plan_for(world, actors, desired)
    while len(history) < ROUNDS:
        if not plan.changes and not waiting_on_people(world):
            if not the_dates(world):
                break
            plan = plan_for(world, actors, desired)
            continue
        history.append(plan)
        apply_plan(world, plan, actors, ids)
        supplier_and_holders(world)
        plan = plan_for(world, actors, desired)
    return world, plan, history


def excused(plan: Plan) -> dict[tuple[str, str], set[str]]:
    """(kvk, e-mail or intermediary KvK) -> the aspects a manual item says no admin can bring in line."""
    aspects = {Action.CHANGE_PHONE: {"phone"}, Action.CHANGE_ROLE: {"role"}, Action.TERMINATE_MEANS: {"presence"},
               Action.CHANGE_LEVEL: {"level", "authorisations"}, Action.REMOVE_INTERMEDIARY: {"chain-services"}}
    out: dict[tuple[str, str], set[str]] = {}
    for org in plan.organisations:
        for m in org.manual:
            who = m.person or (m.target if isinstance(m.target, str) else "")
            out.setdefault((org.kvk, who.lower()), set()).update(aspects.get(m.action, {"all"}))
            if m.action is Action.CHANGE_EMAIL and isinstance(m.target, str):
                # R11: the old address stays a member until its holder changes it; the new one waits for that
                out.setdefault((org.kvk, m.target.lower()), set()).add("all")
    return out


def mismatches(world: World, desired: list[DesiredOrg], plan: Plan) -> list[str]:
    """Where the backend differs from the config in anything not excused by a manual item."""
    out: list[str] = []
    excuses = excused(plan)
    for d in desired:
        state = world.orgs.get(d.kvk)
        if state is None:
            out.append(f"{d.kvk}: the organisation is gone")
            continue
        renew = d.policy.renew_before_days
        for key, wanted in d.users.items():
            skip = excuses.get((d.kvk, key), set())
            if "all" in skip or key in d.policy.unmanaged_keys:
                continue
            user = wanted.user
            means = world.means_by_email(user.email)
            ms = world.membership(d.kvk, means.id) if means else None
            if means is None or ms is None:
                out.append(f"{d.kvk}: {user.email} is not a member")
                continue
            if "role" not in skip and ms.role is not user.role:
                out.append(f"{d.kvk}: {user.email} is {ms.role.value}, wanted {user.role.value}")
            if "level" not in skip and means.level != user.level:
                out.append(f"{d.kvk}: {user.email} is {means.level}, wanted {user.level}")
            if means.type is not user.type:
                out.append(f"{d.kvk}: {user.email} is {means.type.value}, wanted {user.type.value}")
            if means.status is not Status.ACTIEF or means.pending is not None:
                out.append(f"{d.kvk}: {user.email} is {means.status.value}, pending {means.pending}")
            factor = user.second_factor
            if "phone" not in skip and factor is not None and factor.type is SecondFactorType.SMS \
                    and means.second_factor is SecondFactorType.SMS and means.phone != factor.phone:
                out.append(f"{d.kvk}: {user.email} has phone {means.phone}, wanted {factor.phone}")
            if "authorisations" in skip:
                continue
            held = world.authorisations_of(d.kvk, means.id)
            for uuid, auth in wanted.authorisations.items():
                end = held.get(uuid)
                key_ = auth.service.key
                if auth.until == ROLLING:
                    if end is None or (end - TODAY).days < renew:
                        out.append(f"{d.kvk}: {user.email} {key_} rolling, has {end}")
                elif isinstance(auth.until, dt.date) and auth.until <= TODAY:
                    if end is not None:
                        out.append(f"{d.kvk}: {user.email} {key_} should be gone (until {auth.until}), has {end}")
                elif end != auth.until:
                    out.append(f"{d.kvk}: {user.email} {key_} until {auth.until}, has {end}")
            if d.policy.prune:
                extra = sorted(set(held) - set(wanted.authorisations))
                if extra:
                    out.append(f"{d.kvk}: {user.email} holds undeclared {extra} with prune")
        if d.policy.prune:
            for mid in state.members:
                key = world.means[mid].key
                if key in d.users or key in d.policy.unmanaged_keys:
                    continue
                skip = excuses.get((d.kvk, key), set())
                if not skip & {"all", "presence"}:
                    out.append(f"{d.kvk}: undeclared {key} is still a member with prune")
        for ikvk, want in d.chains.items():
            have = state.chains.get(ikvk)
            skip = excuses.get((d.kvk, ikvk), set())
            if "all" in skip:
                continue
            held = have.ends if have is not None else {}
            for uuid, until in want.until.items():                  # each chain authorisation by itself (R18)
                end = held.get(uuid)
                if isinstance(until, dt.date) and until <= TODAY:
                    if end is not None:
                        out.append(f"{d.kvk}: chain {ikvk} {uuid} should be gone (until {until})")
                elif end is None:
                    out.append(f"{d.kvk}: chain {ikvk} {uuid} missing")
                elif until == ROLLING and (end - TODAY).days < renew:
                    out.append(f"{d.kvk}: chain {ikvk} {uuid} rolling, ends {end}")
                elif until != ROLLING and end != until:
                    out.append(f"{d.kvk}: chain {ikvk} {uuid} until {until}, ends {end}")
            extra = sorted(set(held) - set(want.until))
            if extra and "chain-services" not in skip:
                out.append(f"{d.kvk}: chain {ikvk} holds undeclared {extra}")
        if d.policy.prune:
            extra = sorted(set(state.chains) - set(d.chains))
            if extra:
                out.append(f"{d.kvk}: undeclared intermediaries {extra} with prune")
    return out


@settings(SETTINGS, max_examples=examples(80))
@given(scenarios())
def test_c_plan_apply_approve_activate_converges_to_the_config(scenario: Scenario) -> None:
    note(repr(scenario))
    desired = load_desired(scenario.files)
    world, plan, history = converge(scenario.actual.world, scenario.actual.actors, desired)
    story = "\n\n".join(f"round {i + 1}:\n{listing(p)}" for i, p in enumerate(history)) + f"\n\nlast:\n{listing(plan)}"
    assert quiet(plan), f"not quiet after {ROUNDS} rounds\n{story}\n{describe_world(world)}"
    for org, d in zip(plan.organisations, desired):
        if d.policy.prune:
            assert not org.unmanaged, story
    event(f"rounds with work: {len(history)}")
    for kind in sorted({f"{m.action.value} {m.rule}" for o in plan.organisations for m in o.manual}):
        event(f"manual left: {kind}")
    wrong = mismatches(world, desired, plan)
    assert not wrong, f"{wrong}\n{story}\n{describe_world(world)}"
    # f. manual means no admin can do it through the backend: the reconciler must not do it itself later
    seen: set[tuple[str, ...]] = set()
    for p in history + [plan]:
        done = {key for c in p.changes for key in change_keys(c)}
        wrongly_manual = done & seen
        assert not wrongly_manual, f"listed as manual, then done by the reconciler: {wrongly_manual}\n{story}"
        seen |= {key for o in p.organisations for m in o.manual for key in item_keys(m)}


# ================================================================================ bugs the properties found
# The smallest case of each bug they found, fixed and kept as a regression test.
ADMIN_YAML = "  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}\n"


def _plan_orders(plan: Plan) -> list[tuple[int, str, str]]:
    return [(int(c.stage), c.action.value, str(c.target)) for c in plan.changes]


def test_regression_chain_changes_break_the_stage_order(tmp_path, backend) -> None:
    """chain-stage-order: `_chains` runs after `_authorisations`, so an issue_chain (stage 2, GRANT) comes after
    a shortened or revoked authorisation (stage 3); and chains are handled in config order, so removing a
    past-dated intermediary (stage 4) comes before issuing another (stage 2). Changes must come in stage order."""
    backend.means("admin@acme.nl", "beheerder")
    backend.auth("admin", "rvo/tenderned", dt.date(2028, 1, 1))
    backend.chain("11111111", ["rvo/tenderned"], dt.date(2028, 1, 1))
    desired = config(tmp_path, """\
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp},
     authorisations: [{service: rvo/tenderned, until: 2027-06-30}]}
chain_authorisations:
  - {intermediary: {kvk: "11111111"}, services: [rvo/tenderned], until: 2026-01-01}
  - {intermediary: {kvk: "22222222"}, services: [rvo/tenderned], until: rolling}
""")
    plan = plan_for(backend.world, {KVK: "admin"}, [desired])
    got = _plan_orders(plan)
    assert sorted(a for _, a, _ in got) == ["issue_chain", "remove_intermediary", "set_end_date"]
    assert [s for s, _, _ in got] == sorted(s for s, _, _ in got), got


def test_regression_a_step_only_a_manual_step_unblocks_stays_deferred_forever(tmp_path, backend) -> None:
    """deferred-behind-manual: the acting admin is declared as the belastingdienst gebruiker. Its demotion is
    manual (R3: not yourself), and its type change is refused while it is beheerder (R13), so the planner lists
    the type change as *deferred*, in every plan, for good: no supplier step or activation unblocks it, only the
    manual step does. `plan` exits 2 (work to do) for ever and convergence never reaches a quiet plan. A step
    that waits on a manual step is manual too (as 8c6ef3f made downgrades that nothing in the plan unblocks)."""
    backend.means("admin@acme.nl", "beheerder")
    backend.means("other@acme.nl", "beheerder")
    desired = config(tmp_path, """\
users:
  - {email: admin@acme.nl, name: Admin, role: gebruiker, level: EH3, type: belastingdienst, second_factor: {type: otp}}
  - {email: other@acme.nl, name: Other, role: beheerder, level: EH3, second_factor: {type: otp}}
""")
    world, plan, history = converge(backend.world, {KVK: "admin"}, [desired])
    [org] = plan.organisations
    assert ("change_role", "R3") in [(m.action.value, m.rule) for m in org.manual]
    assert quiet(plan), [(d.action.value, d.rule, d.reason) for d in org.deferred]


def test_regression_grants_of_a_person_whose_request_is_manual_stay_deferred_forever(tmp_path, backend) -> None:
    """deferred-behind-manual, second shape: a new person above the acting admin's level is a manual request
    (R4), and its grants are *deferred* (R7, "its means is not requested yet") in every plan for good."""
    backend.means("admin@acme.nl", "beheerder", level="EH2+")
    desired = config(tmp_path, """\
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH2+, second_factor: {type: otp}}
  - {email: x@acme.nl, name: X, role: gebruiker, level: EH3, second_factor: {type: otp},
     authorisations: [{service: rvo/tenderned, until: rolling}]}
""")
    world, plan, history = converge(backend.world, {KVK: "admin"}, [desired])
    [org] = plan.organisations
    assert ("request_means", "R4") in [(m.action.value, m.rule) for m in org.manual]
    assert quiet(plan), [(d.action.value, d.rule, d.reason) for d in org.deferred]


def test_regression_a_step_blocked_by_what_is_left_alone_stays_deferred_forever(tmp_path, backend) -> None:
    """deferred-behind-unmanaged: with prune false an undeclared belastingdienst means stays (it is listed as
    unmanaged); the belastingdienst means the config declares can then never be requested (R13: one per
    organisation), yet it is *deferred* in every plan for good. The blocker is something the reconciler has
    been told to leave alone, so a person must act: manual (naming the unmanaged means), not deferred."""
    from reconciler.config.models import MeansType as _T
    backend.means("admin@acme.nl", "beheerder")
    backend.means("oldtax@acme.nl", type=_T.BELASTINGDIENST)
    desired = config(tmp_path, "users:\n" + ADMIN_YAML + """\
  - {email: newtax@acme.nl, name: New, role: gebruiker, level: EH3, type: belastingdienst, second_factor: {type: otp}}
""")
    world, plan, history = converge(backend.world, {KVK: "admin"}, [desired])
    [org] = plan.organisations
    assert [u.target for u in org.unmanaged] == ["oldtax@acme.nl"]
    assert quiet(plan), [(d.action.value, d.rule, d.reason) for d in org.deferred]


def test_regression_a_downgrade_the_next_organisations_steps_unblock_is_listed_manual(tmp_path, backend) -> None:
    """manual-ignores-later-orgs (8c6ef3f, 2abb668): "nothing in the plan unblocks it" is judged on this
    organisation's part of the plan only, but organisations are planned one after the other on one simulation
    and a later organisation's part can remove the blocker. Here a downgrade still refused at stage 4 (R2: b is
    beheerder of a second organisation) is listed as manual, while the second organisation's file (prune)
    drops b, so the same plan terminates b there and the next plan downgrades b without anyone's help. The
    same with R13 in `_settle`: a second belastingdienst request is manual because the first "stays", while a
    later organisation's part changes that means' type (which frees the slot everywhere)."""
    other = "12345678"
    backend.means("admin@acme.nl", "beheerder")
    backend.means("admin@acme.nl", "beheerder", kvk=other)
    backend.means("b@acme.nl", "gebruiker", level="EH2+")
    backend.means("b@acme.nl", "beheerder", kvk=other)
    first = config(tmp_path, "users:\n" + ADMIN_YAML + "  - {email: b@acme.nl, name: B, role: gebruiker, level: EH2}\n")
    second = config(tmp_path, "policy: {prune: true}\nusers:\n" + ADMIN_YAML, name="other.yaml",
                    header=f'version: 1\norganisation: {{kvk: "{other}", name: Other}}\n')
    actors = {KVK: "admin", other: "admin"}
    world, plan, history = converge(backend.world, actors, [first, second])
    assert ("terminate_means", "b@acme.nl") in [(c.action.value, c.target) for c in history[0].changes]
    assert ("change_level", "b@acme.nl") in [(c.action.value, c.target) for p in history[1:] + [plan]
                                             for c in p.changes]       # done a round later, by the reconciler
    manual_first = [(m.action.value, m.target, m.rule) for o in (history or [plan])[0].organisations for m in o.manual]
    assert not [m for m in manual_first if m[0] == "change_level"], manual_first


def test_regression_a_grant_a_branch_number_forbids_stays_deferred_forever(tmp_path, backend) -> None:
    """r17 (fixed in 1e9007d): an organisation registered with a branch number cannot use UWV and Belastingdienst
    (R17); validation only warns. The grant of uwv/werkgeversportaal was *deferred* (R17) in every plan for good,
    though nothing but a change of the registration (or of the config) unblocks it: it is manual."""
    from reconciler.domain.state import OrgInfo
    backend.world.orgs[KVK].info = OrgInfo(KVK, "Acme", "000012345678")
    backend.means("admin@acme.nl", "beheerder")
    desired = config(tmp_path, """\
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp},
     authorisations: [{service: uwv/werkgeversportaal, until: rolling}, {service: rvo/tenderned, until: rolling}]}
""", header=f'version: 1\norganisation: {{kvk: "{KVK}", name: Acme, branch_number: "000012345678"}}\n')
    world, plan, history = converge(backend.world, {KVK: "admin"}, [desired])
    [org] = plan.organisations
    assert world.authorisation(KVK, "admin", CAT["rvo/tenderned"].uuid) is not None     # the rest is granted
    assert quiet(plan), [(d.action.value, d.target, d.rule, d.reason) for d in org.deferred]
    assert ("grant", "R17") in [(m.action.value, m.rule) for m in org.manual]


def test_regression_r4_is_manual_although_the_pending_upgrade_of_the_acting_admin_lifts_it(tmp_path, backend) -> None:
    """r4-always-manual: R4 compares levels and links that can be changing: here the acting admin's own upgrade
    to EH3 is at the supplier (R6). A new EH3 user is listed as *manual* ("an admin with that level must request
    it"), yet once the supplier has processed the upgrade the next plan requests it itself. Manual means no
    admin can do it through the backend; this one waits (deferred: after the acting admin's upgrade). The same
    happens when the plan links the acting admin to the other organisation (R4: "not linked to an organisation
    you manage"), or when another organisation's part of the plan lowers the level of a means to be linked."""
    from reconciler.domain.levels import Level
    from reconciler.domain.state import Pending, PendingKind
    backend.means("admin@acme.nl", "beheerder", level="EH2+", pending=Pending(PendingKind.LEVEL, level=Level.EH3))
    desired = config(tmp_path, "users:\n" + ADMIN_YAML + """\
  - {email: x@acme.nl, name: X, role: gebruiker, level: EH3, second_factor: {type: otp}}
""")
    world, plan, history = converge(backend.world, {KVK: "admin"}, [desired])
    done_later = [(c.action.value, c.target) for p in history[1:] + [plan] for c in p.changes]
    assert ("request_means", "x@acme.nl") in done_later            # the reconciler does it, a round later
    manual_first = [(m.action.value, m.target, m.rule) for m in (history or [plan])[0].organisations[0].manual]
    assert ("request_means", "x@acme.nl", "R4") not in manual_first, manual_first


def test_regression_a_deferred_step_is_manual_because_of_an_unrelated_manual_step(tmp_path, backend) -> None:
    """settle-any-manual-step (2abb668, `_settle`): every deferred step of a person who has *any* manual step
    becomes manual ("it waits on the manual step for ..."), also when it waits on something else. Here b's
    demotion waits on the supplier (R6: b's upgrade is being processed) and the next plan demotes b by itself;
    b's unrelated manual step (its second factor, R19) must not make the demotion manual. Only a deferred step
    that the manual step blocks is manual."""
    from reconciler.domain.levels import Level
    from reconciler.domain.state import Pending, PendingKind
    backend.means("admin@acme.nl", "beheerder")
    backend.means("b@acme.nl", "beheerder", level="EH2+", pending=Pending(PendingKind.LEVEL, level=Level.EH3))
    desired = config(tmp_path, "users:\n" + ADMIN_YAML + """\
  - {email: b@acme.nl, name: B, role: gebruiker, level: EH3, second_factor: {type: sms, phone: "+31612345678"}}
""")
    world, plan, history = converge(backend.world, {KVK: "admin"}, [desired])
    first = (history or [plan])[0].organisations[0]
    assert ("change_phone", "R19") in [(m.action.value, m.rule) for m in first.manual]
    assert ("change_role", "b@acme.nl") in [(c.action.value, c.target) for p in history[1:] + [plan]
                                            for c in p.changes]       # done a round later, by the reconciler
    assert "change_role" not in [m.action.value for m in first.manual], [(m.action.value, m.rule, m.reason)
                                                                          for m in first.manual]


def test_regression_a_step_another_organisation_blocks_for_good_stays_deferred(tmp_path, backend) -> None:
    """deferred-forever-across-orgs: `_settle` turns a deferred step into a manual one only when the blocker is
    a manual step *of the same organisation* (or a staying belastingdienst means there). Here b is beheerder
    of a second organisation whose file leaves b alone (policy.unmanaged), and this organisation's file wants
    b as its belastingdienst gebruiker: the type change is refused (R13: never a beheerder) and listed as
    *deferred* in every plan for good; `plan` exits 2 for ever. Nothing but a person unblocks it: manual."""
    other = "12345678"
    backend.means("admin@acme.nl", "beheerder")
    backend.means("admin@acme.nl", "beheerder", kvk=other)
    backend.means("b@acme.nl", "gebruiker")
    backend.means("b@acme.nl", "beheerder", kvk=other)
    first = config(tmp_path, "users:\n" + ADMIN_YAML + "  - {email: b@acme.nl, name: B, role: gebruiker, level: EH3, "
                   "type: belastingdienst, second_factor: {type: otp}}\n")
    second = config(tmp_path, "policy: {unmanaged: [b@acme.nl]}\nusers:\n" + ADMIN_YAML, name="other.yaml",
                    header=f'version: 1\norganisation: {{kvk: "{other}", name: Other}}\n')
    world, plan, history = converge(backend.world, {KVK: "admin", other: "admin"}, [first, second])
    assert quiet(plan), [(d.kvk, d.action.value, d.target, d.rule, d.reason) for o in plan.organisations
                         for d in o.deferred]


def test_regression_grants_of_a_request_settle_made_manual_stay_deferred_forever(tmp_path, backend) -> None:
    """settle-not-transitive (2abb668, `_settle`): the people with a manual step are collected *before* the loop
    that turns deferred steps into manual ones, so a step made manual there does not carry its dependants
    along. Here the second belastingdienst means cannot be requested while the unmanaged one stays (R13:
    made manual by `_settle`), but its grant still says *deferred* (R7, "its means cannot be requested yet")
    in every plan for good."""
    from reconciler.config.models import MeansType as _T
    backend.means("admin@acme.nl", "beheerder")
    backend.means("oldtax@acme.nl", type=_T.BELASTINGDIENST)
    desired = config(tmp_path, "users:\n" + ADMIN_YAML + """\
  - {email: newtax@acme.nl, name: New, role: gebruiker, level: EH3, type: belastingdienst, second_factor: {type: otp},
     authorisations: [{service: belastingdienst/aangifte-omzetbelasting, until: rolling}]}
""")
    world, plan, history = converge(backend.world, {KVK: "admin"}, [desired])
    [org] = plan.organisations
    assert ("request_means", "R13") in [(m.action.value, m.rule) for m in org.manual]
    assert quiet(plan), [(d.action.value, d.target, d.rule, d.reason) for d in org.deferred]


def test_regression_an_email_change_becomes_terminate_and_request_across_organisations(tmp_path, backend) -> None:
    """rename-per-org (c0081d2): an e-mail change is recognised per organisation only (an undeclared member with
    the name of a declared newcomer). Eva (active) is a member of the first organisation only; both files now
    declare her new address. The first organisation rightly lists the change as manual (R11: only the holder),
    but the second, where the old means is not a member, *requests a new means* for the new address; a round
    later the first links that new means and, with prune, terminates the old one. That is terminate + request
    (a second means bought, a new activation), which c0081d2 says must never happen: the second organisation
    must wait for the holder (deferred/manual on the same R11 step) and then link the renamed means."""
    other = "12345678"
    backend.means("admin@acme.nl", "beheerder")
    backend.means("admin@acme.nl", "beheerder", kvk=other)
    backend.means("eva@acme.nl", "gebruiker")
    eva = "  - {email: eva.nieuw@acme.nl, name: Eva, role: gebruiker, level: EH3, second_factor: {type: otp}}\n"
    first = config(tmp_path, "policy: {prune: true}\nusers:\n" + ADMIN_YAML + eva)
    second = config(tmp_path, "users:\n" + ADMIN_YAML + eva, name="other.yaml",
                    header=f'version: 1\norganisation: {{kvk: "{other}", name: Other}}\n')
    world, plan, history = converge(backend.world, {KVK: "admin", other: "admin"}, [first, second])
    assert ("change_email", "R11") in [(m.action.value, m.rule) for m in (history or [plan])[0].organisations[0].manual]
    done = [(c.kvk, c.action.value, c.target) for p in history + [plan] for c in p.changes]
    assert (other, "request_means", "eva.nieuw@acme.nl") not in done, done
    assert (KVK, "terminate_means", "eva@acme.nl") not in done, done


def test_regression_any_r13_refusal_is_manual_while_a_belastingdienst_means_stays(tmp_path, backend) -> None:
    """settle-r13-too-broad (2abb668, `_settle`): "a second belastingdienst means while the first stays" is
    meant for R13's one-per-organisation refusal, but it turns *every* R13 refusal of a request, link or type
    change into a manual step while some belastingdienst means stays. Here c is linked as beheerder and is
    still a belastingdienst means ("cannot be a beheerder"); the second organisation's part of the same plan
    changes c's type to regulier, and the next plan links c without anyone's help. It is deferred, not manual."""
    from reconciler.config.models import MeansType as _T
    other = "12345678"
    backend.means("admin@acme.nl", "beheerder")
    backend.means("admin@acme.nl", "beheerder", kvk=other)
    backend.means("tax@acme.nl", type=_T.BELASTINGDIENST)
    backend.means("c@acme.nl", type=_T.BELASTINGDIENST, kvk=other)
    c = "  - {email: c@acme.nl, name: C, role: %s, level: EH3, second_factor: {type: otp}}\n"
    first = config(tmp_path, "users:\n" + ADMIN_YAML + c % "beheerder" + "  - {email: tax@acme.nl, name: T, "
                   "role: gebruiker, level: EH3, type: belastingdienst, second_factor: {type: otp}}\n")
    second = config(tmp_path, "users:\n" + ADMIN_YAML + c % "gebruiker", name="other.yaml",
                    header=f'version: 1\norganisation: {{kvk: "{other}", name: Other}}\n')
    world, plan, history = converge(backend.world, {KVK: "admin", other: "admin"}, [first, second])
    assert (other, "change_type") in [(c.kvk, c.action.value) for c in history[0].changes]
    assert ("link_means", "c@acme.nl") in [(c.action.value, c.target) for p in history[1:] + [plan]
                                           for c in p.changes]        # done a round later, by the reconciler
    manual_first = [(m.action.value, m.rule, m.reason) for o in (history or [plan])[0].organisations for m in o.manual]
    assert not [m for m in manual_first if m[0] == "link_means"], manual_first
