"""The planner: a pure function of (desired state, actual state, today, acting admins, policy) -> Plan.

It works stage by stage on a copy of the actual state (`World`). Each candidate step is checked with the
very rules the sandbox enforces (`reconciler.domain.rules.execute`) and, when accepted, its effects are
applied to the copy, so every later step is judged on the state the earlier ones leave behind. A step the
rules refuse becomes `deferred` (with the rule and what unblocks it); what no admin can do through the
backend becomes `manual`. Authorisation steps are checked per user and then merged into bulk steps (R10).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Collection, Iterable, Mapping, Sequence

from reconciler.config.models import ROLLING, MeansType, Role, SecondFactorType, Until, User
from reconciler.domain import rules
from reconciler.domain.catalogue import Service
from reconciler.domain.levels import Level
from reconciler.domain.operations import AdminOperation, encode
from reconciler.domain.state import Chain, Means, OrgState, Status, World
from reconciler.plan.cost import DEFAULT_TARIFFS, Tariffs, money
from reconciler.plan.desired import DesiredChain, DesiredOrg, DesiredUser
from reconciler.plan.lookahead import classify, look_ahead, needed
from reconciler.plan.model import (
    Action, Change, Cost, Deferred, Manual, OrgPlan, Plan, Stage, Unmanaged,
)

#: Refusals no other timing can fix: a person has to act (another admin, the holder, the supplier;
#: R17: the registration with a branch number).
MANUAL_RULES = frozenset({"R3", "R4", "R11", "R16", "R17"})


@dataclass(frozen=True)
class PlanInput:
    """Everything the planner reads; built by `reconciler.backend.read` (I/O) or by tests."""

    desired: Sequence[DesiredOrg]
    actual: World
    today: dt.date
    actors: Mapping[str, str | None]          # kvk -> the acting admin's means id
    revisions: Mapping[str, int | None]       # kvk -> backend revision the plan is made on
    config_digest: str = ""
    tool_version: str = ""
    backend: str = ""
    tariffs: Tariffs = DEFAULT_TARIFFS


def make_plan(data: PlanInput) -> Plan:
    """The ordered, explained plan for every organisation (pure: no I/O, `data.actual` is not changed)."""
    sim = data.actual.copy()
    plan = _plan_once(data, sim, 0)
    if needed(plan, sim):
        classify(plan, look_ahead(sim, data.today, lambda world, n: _plan_once(data, world, n)))
    plan.cost = Cost(once=round(sum(c.cost_once for c in plan.changes), 2),
                     yearly=round(sum(c.cost_yearly for c in plan.changes), 2))
    plan.force_required = bool(plan.unsafe_reasons())
    return plan


def _plan_once(data: PlanInput, sim: World, round_: int) -> Plan:
    """One plan on `sim`, which it changes: every accepted step is applied to it, in order."""
    plans = []
    renames = _renames_everywhere(data.desired, sim)
    for desired in data.desired:
        org_plan = OrgPlan(kvk=desired.kvk, name=desired.name, revision=data.revisions.get(desired.kvk),
                           acting_admin=None)
        actor_id = data.actors.get(desired.kvk)
        if desired.kvk not in sim.orgs:
            org_plan.manual.append(Manual(desired.kvk, Action.REQUEST_MEANS, desired.kvk, "R16",
                                          "this organisation is not known to the backend; adding an organisation "
                                          "needs a contract signed on paper by a legal representative"))
        elif actor_id is None or sim.get_means(actor_id) is None:
            org_plan.manual.append(Manual(desired.kvk, Action.CHANGE_ROLE, desired.kvk, "R1",
                                          "no active beheerder of this organisation can act for the reconciler; "
                                          "use the token of one"))
        else:
            _OrgPlanner(desired, sim, data.today, actor_id, data.tariffs, org_plan, renames, round_).run()
        plans.append(org_plan)
    return Plan(today=data.today, config_digest=data.config_digest, tool_version=data.tool_version,
                backend=data.backend, organisations=plans)


def _renames_everywhere(desired: Sequence[DesiredOrg], sim: World) -> dict[str, Means]:
    """New e-mail -> the means it most likely belongs to, found in any organisation: an undeclared member with
    the name of a declared person the backend does not know. Changing an e-mail is never terminate + request
    (R11), also not in an organisation the old means is not a member of yet (it is linked after the change)."""
    out: dict[str, Means] = {}
    for org in desired:
        if org.kvk in sim.orgs:
            for key, means in _renames(org, sim).items():
                out.setdefault(key, means)
    return out


def _renames(desired: DesiredOrg, sim: World) -> dict[str, Means]:
    return renames({key: wanted.user for key, wanted in desired.users.items()}, desired.policy.unmanaged_keys,
                   sim.orgs[desired.kvk], sim)


def renames(users: Mapping[str, User], unmanaged: Collection[str], state: OrgState, world: World
            ) -> dict[str, Means]:
    """New e-mail key -> the means of the organisation (`state`) it most likely belongs to (R11): the one
    undeclared member with the name of the one declared person (`users`, by key) the backend does not know."""
    newcomers: dict[str, list[User]] = defaultdict(list)
    for user in users.values():
        if world.means_by_email(user.email) is None:
            newcomers[_name_key(user.name)].append(user)
    if not newcomers:          # the common case (twice per organisation and plan): no member is looked at
        return {}
    undeclared: dict[str, list[Means]] = defaultdict(list)
    for means_id in state.members:
        means = world.means[means_id]
        key = means.key
        if key not in users and key not in unmanaged:
            undeclared[_name_key(means.name)].append(means)
    return {found[0].key: undeclared[name][0] for name, found in newcomers.items()
            if len(found) == 1 and len(undeclared.get(name, [])) == 1}


def target_end(until: Until, actual: dt.date | None, today: dt.date, renew_before: int) -> tuple[str | None, dt.date | None]:
    """What an end date needs: (None, _) nothing; ("grant", d); ("set", d); ("revoke", None).

    `rolling` extends to the 5-year maximum only when fewer than `renew_before` days remain (no daily churn);
    a fixed date that differs is re-dated; a date today or in the past means it must not exist (R9).
    """
    if until == ROLLING:
        if actual is None:
            return "grant", rules.max_end_date(today)
        if (actual - today).days < renew_before:
            return "set", rules.max_end_date(today)
        return None, None
    assert isinstance(until, dt.date)
    if until <= today:
        return ("revoke", None) if actual is not None else (None, None)
    if actual is None:
        return "grant", until
    return (None, None) if actual == until else ("set", until)


def step_id(kvk: str, action: Action, target: Any, params: Mapping[str, Any]) -> str:
    """Stable across re-plans of the same change: the apply step derives its Idempotency-Key from it."""
    raw = json.dumps([kvk, action.value, target, params], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


@dataclass
class _OrgPlanner:
    """One organisation's planning: the desired state against a simulation that each accepted step changes."""

    d: DesiredOrg
    sim: World
    today: dt.date
    actor_id: str
    tariffs: Tariffs
    out: OrgPlan
    renames_elsewhere: Mapping[str, Means]
    round_: int = 0
    new_ids: int = field(default=0, init=False)
    waiting: dict[str, str] = field(default_factory=dict, init=False)    # e-mail -> why its grants wait (R7)
    by_time: set[tuple[str, str]] = field(default_factory=set, init=False)  # (means, UUID) changed by the date
    wait_rule: dict[str, str] = field(default_factory=dict, init=False)  # e-mail -> the rule its grants wait on
    renamed: dict[str, Means] = field(default_factory=dict, init=False)
    old_end: dict[tuple[str, str], dt.date | None] = field(default_factory=dict, init=False)  # before the plan
    notes: dict[tuple[str, str], str] = field(default_factory=dict, init=False)  # an override or cap to show
    renamed_ids: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.kvk = self.d.kvk
        self.renew = self.d.policy.renew_before_days
        self.unmanaged = self.d.policy.unmanaged_keys
        actor = self.sim.get_means(self.actor_id)
        assert actor is not None
        self.actor = actor
        self.out.acting_admin = actor.email
        self.id_prefix = f"new{self.round_ or ''}:{self.kvk}"     # unique across the rounds of looking ahead
        # people whose own `until` has come: their means ends now, whatever policy.prune says (R14)
        self.ended = {key for key, u in self.d.users.items() if u.until is not None and u.until <= self.today}

    # ------------------------------------------------------------------------------------------ driver
    def run(self) -> None:
        self.out.existing_objects = self._existing_objects()
        self.renamed = _renames(self.d, self.sim)
        self.renamed_ids = {m.id for m in self.renamed.values()}
        for user in self.d.users.values():
            self._person_additions(user)
        self._authorisations()
        self._chains()
        for user in self.d.users.values():
            self._person_removals(user)
        self._terminations()
        self._settle()
        limit = self.d.policy.threshold.limit(self.out.existing_objects)
        self.out.removal_limit = limit
        self.out.removals = self.out.count_removals()

    def _settle(self) -> None:
        """Changes are listed in stage order. Steps of different stages generated apart (chain steps, revokes)
        touch different objects, so the order they were checked in stays valid. Whether a refused step is
        deferred or manual is decided for the whole plan afterwards, by looking ahead (`plan.lookahead`)."""
        self.out.changes.sort(key=lambda c: c.stage)

    def _existing_objects(self) -> int:
        state = self.sim.orgs[self.kvk]
        return len(state.members) + sum(len(a) for a in state.authorisations.values()) + len(state.chains)

    # ---------------------------------------------------------------------------------------- simulate
    def _try(self, op: Any) -> rules.Refusal | None:
        """Check `op` with the backend's rules on the simulated state and apply it; the refusal otherwise."""
        try:
            effects = rules.execute(self.sim, self.actor_id, op, self.today)
        except rules.Refusal as refusal:
            return refusal
        self.sim.apply(effects)
        return None

    def _add(self, op: AdminOperation, target: str | list[str], stage: Stage, *, service_keys: list[str] | None = None,
             detail: str = "", person: str | None = None, removal: bool = False, escalation: bool = False,
             cost_once: float = 0.0, cost_yearly: float = 0.0, time_driven: bool = False,
             before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> Change:
        """The change that performs `op`; its params are `op` serialised, with the services' catalogue keys."""
        action = Action(op.action)
        params = encode(op, None if service_keys is None else {"service_keys": service_keys})
        change = Change(id=step_id(self.kvk, action, target, params), kvk=self.kvk, action=action, target=target,
                        stage=stage, params=params, detail=detail, person=person, removal=removal,
                        escalation=escalation, cost_once=cost_once, cost_yearly=cost_yearly, time_driven=time_driven,
                        before=before, after=after)
        self.out.changes.append(change)
        return change

    def _step(self, op: AdminOperation, target: str, stage: Stage, *, detail: str = "", person: str | None = None,
              hint: str = "", **flags: Any) -> bool:
        """Simulate one person-level step: a change when accepted, else deferred or manual."""
        refusal = self._try(op)
        if refusal is None:
            self._add(op, target, stage, detail=detail, person=person, **flags)
            return True
        self._refused(refusal, Action(op.action), target, person, detail, hint)
        return False

    def _refused(self, refusal: rules.Refusal, action: Action, target: str | list[str], person: str | None,
                 detail: str, hint: str = "") -> None:
        reason = refusal.message + (f"; {hint}" if hint else "")
        if refusal.code in MANUAL_RULES:
            self.out.manual.append(Manual(self.kvk, action, target, refusal.code, reason, person, detail))
        else:
            self.out.deferred.append(Deferred(self.kvk, action, target, refusal.code, reason, person, detail))

    def _manual(self, action: Action, target: str, rule: str, reason: str, person: str | None = None,
                detail: str = "") -> None:
        self.out.manual.append(Manual(self.kvk, action, target, rule, reason, person, detail))

    # ---------------------------------------------------------------------------------- people: stage 1
    def _rename(self, user: User, means: Means) -> None:
        detail = f"{means.email} -> {user.email}"
        if means.active:
            self._manual(Action.CHANGE_EMAIL, means.email, "R11",
                         "after activation only the holder can change the e-mail (in the Beheermodule's profile "
                         "page); the means is kept, not terminated and bought again", user.email, detail)
            self.waiting[user.key] = f"{means.email} must first change the e-mail to {user.email} (R11)"
            self.wait_rule[user.key] = "R11"
            return
        self._step(rules.ChangeEmail(self.kvk, means.id, user.email), means.email, Stage.ADD, detail=detail,
                   person=user.email, before={"email": means.email}, after={"email": user.email})

    def _person_additions(self, wanted: DesiredUser) -> None:
        user = wanted.user
        means = self.sim.means_by_email(user.email)
        if user.key in self.unmanaged or user.key in self.ended:
            return
        if means is None and user.key in self.renamed:
            self._rename(user, self.renamed[user.key])
            means = self.sim.means_by_email(user.email)
            if means is None:
                return
        if means is None and user.key in self.renames_elsewhere:
            old = self.renames_elsewhere[user.key]
            why = f"{old.email} must first change the e-mail to {user.email} (R11); it is linked after that"
            self.out.deferred.append(Deferred(self.kvk, Action.LINK_MEANS, user.email, "R11",
                                              f"the means of {user.name} is {old.email} in another organisation; "
                                              + why, user.email, "the existing means, after its e-mail change"))
            self.waiting[user.key] = why
            self.wait_rule[user.key] = "R11"
            return
        if means is None:
            self._request(user)
            return
        membership = self.sim.membership(self.kvk, means.id)
        if membership is None:
            self._link(user, means)
            return
        if means.status is not Status.ACTIEF:
            self.waiting[user.key] = _not_active_reason(means)
        if membership.terminates_on is not None and membership.terminates_on != wanted.until:
            wants = f"; the config says {wanted.until}" if wanted.until else ""
            self._manual(Action.TERMINATE_MEANS, user.email, "R14",
                         f"its termination on {membership.terminates_on} is scheduled and cannot be withdrawn or "
                         f"moved through the backend{wants}; ask the supplier", person=user.email)
        if user.is_admin and not membership.is_admin:
            self._step(rules.ChangeRole(self.kvk, means.id, Role.BEHEERDER), user.email,
                       Stage.ADD, detail="gebruiker -> beheerder",
                       person=user.email, escalation=True, before={"role": "gebruiker"}, after={"role": "beheerder"})
        if user.level > means.level:
            self._level(user, means, Stage.ADD)
        if user.type is not means.type:
            one, yearly = self.tariffs.means_cost(means.level, user.type, user.subscription)
            if self._step(rules.ChangeType(self.kvk, means.id, user.type, user.subscription), user.email, Stage.ADD,
                          detail=f"{means.type.value} -> {user.type.value} (a new subscription; its authorisations "
                                 "are dropped and granted again, R13)", person=user.email,
                          cost_once=one, cost_yearly=yearly, before={"type": means.type.value},
                          after={"type": user.type.value}):
                pass
        factor = user.second_factor
        if factor is not None and means.second_factor is not None and factor.type is not means.second_factor:
            self._manual(Action.CHANGE_PHONE, user.email, "R19",
                         f"the second factor is {means.second_factor.value}; changing it to {factor.type.value} is "
                         "not possible through the backend (the holder or the supplier changes it)", user.email)
        elif factor is not None and factor.type is SecondFactorType.SMS and factor.phone != means.phone \
                and means.second_factor is SecondFactorType.SMS:
            if means.id == self.actor_id:
                self._manual(Action.CHANGE_PHONE, user.email, "R3", "you cannot change your own mobile number; "
                             "another beheerder must do it", user.email, f"{means.phone} -> {factor.phone}")
            else:
                self._step(rules.ChangePhone(self.kvk, means.id, factor.phone or ""), user.email, Stage.ADD,
                           detail=f"{means.phone} -> {factor.phone}", person=user.email,
                           before={"phone": means.phone}, after={"phone": factor.phone})
        if means.status is Status.ACTIVATIE_VERLOPEN:
            letter = self.tariffs.activation_letter        # None: the manual prints no price
            self._step(rules.ResendInvitation(self.kvk, means.id), user.email, Stage.ADD, person=user.email,
                       cost_once=letter or 0.0,
                       detail=f"the activation lapsed: a new activation letter ({money(letter)})")
        if user.subscription is not means.subscription and user.type is means.type:
            self.out.warnings.append(f"{user.email}: subscription is {means.subscription.value} in the backend, "
                                     f"{user.subscription.value} in the config; it changes at renewal, not through "
                                     "the backend")

    def _request(self, user: User) -> None:
        if user.level > self.actor.level:
            self._manual(Action.REQUEST_MEANS, user.email, "R4",
                         f"a new means at {user.level} is above the acting admin's own level {self.actor.level}; an "
                         "admin with that level must request it", user.email)
            self.waiting[user.key] = "its means is not requested yet"
            return
        if user.type is MeansType.BELASTINGDIENST:
            # R13, one tax means per organisation, is judged after a termination: the one that goes makes way
            # in the same apply, before the request (else the request waits an apply for it)
            for old in self.sim.tax_means(self.kvk):
                if self._leaving(self.sim.means[old]):
                    self._termination(old, Stage.ADD)
        self.new_ids += 1
        new_id = f"{self.id_prefix}:{self.new_ids}"
        factor = user.second_factor
        op = rules.RequestMeans(self.kvk, new_id, user.email, user.name, user.role, user.level, user.type,
                                factor.type if factor else None, factor.phone if factor else None, user.subscription)
        one, yearly = self.tariffs.means_cost(user.level, user.type, user.subscription)
        detail = f"{user.role.value}, {user.level}" + (", belastingdienst" if user.type is MeansType.BELASTINGDIENST
                                                       else "")
        accepted = self._step(op, user.email, Stage.ADD, detail=detail,
                              person=user.email, escalation=user.is_admin,
                              cost_once=self.tariffs.second_factor_cost(factor.type if factor else None),
                              cost_yearly=yearly + one)
        self.waiting[user.key] = ("requested now: the supplier approves it, then the holder activates it (R5)"
                                  if accepted else "its means cannot be requested yet")

    def _link(self, user: User, means: Means) -> None:
        pending = means.pending
        if pending is not None and pending.kind.value == "link" and pending.kvk == self.kvk:
            self.waiting[user.key] = "its link to this organisation awaits the supplier (R15)"
            return  # asked for already: it is being processed
        # the request is made in an organisation both the means and the acting admin (as beheerder) are in (R4)
        source = next((kvk for kvk, ms in sorted(self.sim.memberships_of(self.actor_id).items())
                       if ms.is_admin and self.sim.membership(kvk, means.id) is not None), None)
        op = rules.LinkMeans(self.kvk, means.id, user.role, user.subscription, source)
        accepted = self._step(op, user.email, Stage.ADD,
                              detail=f"the existing means ({means.level}) as {user.role.value} (R15)",
                              person=user.email, escalation=user.is_admin,
                              cost_yearly=self.tariffs.link_cost(user.subscription),
                              hint=_unblock(means))
        self.waiting[user.key] = ("linked now: the supplier processes the link (R15)" if accepted
                                  else "its means is not linked yet")
        if user.level != means.level:
            self.out.deferred.append(Deferred(self.kvk, Action.CHANGE_LEVEL, user.email, "R15",
                                              f"a linked means keeps its level ({means.level}); change it to "
                                              f"{user.level} once the link is processed", user.email))

    def _level(self, user: User, means: Means, stage: Stage) -> None:
        pending = means.pending
        if pending is not None and pending.kind.value == "level" and pending.level == user.level:
            return  # asked for already: the supplier is processing it
        if user.level > self.actor.level:
            self._manual(Action.CHANGE_LEVEL, user.email, "R4",
                         f"{user.level} is above the acting admin's own level {self.actor.level}", user.email,
                         f"{means.level} -> {user.level}")
            return
        factor = user.second_factor
        self._step(rules.ChangeLevel(self.kvk, means.id, user.level, factor.type if factor else None,
                                     factor.phone if factor else None), user.email, stage,
                   detail=f"{means.level} -> {user.level} (the supplier processes it, R6)", person=user.email,
                   escalation=user.level > means.level, hint=_unblock(means),
                   before={"level": means.level.value}, after={"level": user.level.value})

    # ----------------------------------------------------------------------------- people: stage 4
    def _person_removals(self, wanted: DesiredUser) -> None:
        user = wanted.user
        if user.key in self.unmanaged or user.key in self.ended:
            return
        means = self.sim.means_by_email(user.email)
        membership = self.sim.membership(self.kvk, means.id) if means else None
        if means is None or membership is None:
            return
        if wanted.until is not None and membership.terminates_on is None:
            self._scheduled_end(wanted, means)
        if membership.is_admin and not user.is_admin:
            if means.id == self.actor_id:
                self._manual(Action.CHANGE_ROLE, user.email, "R3", "you cannot make yourself a gebruiker; another "
                             "beheerder must do it (run with that beheerder's token)", user.email,
                             "beheerder -> gebruiker")
            else:
                self._step(rules.ChangeRole(self.kvk, means.id, Role.GEBRUIKER), user.email,
                           Stage.REMOVE, detail="beheerder -> gebruiker",
                           person=user.email, removal=True, hint=self._admin_hint(), before={"role": "beheerder"},
                           after={"role": "gebruiker"})
        if user.level < means.level:
            self._level(user, means, Stage.REMOVE)

    def _own_end(self, means: Means) -> str:
        """Why the acting admin's own means stays, and what ending it would take and cost."""
        why = "the acting admin's own means is never terminated by the reconciler"
        if rules.admin_stays(self.sim, self.kvk, means.id) or rules.others_active(self.sim, self.kvk,
                                                                                                 means.id):
            return why + "; another beheerder must do it"
        waiting = sorted(self.sim.means[m].email for m in self.sim.members(self.kvk) if m != means.id)
        with_them = f", with its {len(waiting)} means not active yet ({', '.join(waiting)})" if waiting \
            else ""
        return (why + f"; it is the only active means of {self.kvk}: ending it (only its holder can, in the "
                f"Beheermodule) ends eHerkenning for the whole organisation{with_them} and every authorisation and "
                "chain authorisation (R14, manual 3.4.1); using eHerkenning again then takes a new registration "
                "by the supplier (R16)")

    def _scheduled_end(self, wanted: DesiredUser, means: Means) -> None:
        """The person's `until`: the means ends on that day, through the backend's own termination on a date
        (R14), so access ends even when no run happens that day."""
        until = wanted.until
        assert until is not None
        detail = f"on {until} (the person's until): the means and its authorisations end then"
        if means.id == self.actor_id:
            self._manual(Action.TERMINATE_MEANS, means.email, "R3", "the acting admin's own end is never scheduled "
                         "by the reconciler; another beheerder must do it", means.email, detail)
            return
        if means.id.startswith(self.id_prefix + ":"):          # requested by this very plan: no id to send yet
            self.out.deferred.append(Deferred(self.kvk, Action.TERMINATE_MEANS, means.email, "R5",
                                              "the end is scheduled once the backend holds the means (it is "
                                              "requested now)", means.email, detail))
            return
        self._step(rules.Terminate(self.kvk, means.id, "date", until), means.email, Stage.REMOVE,
                   **self._loss(means, f"ends on {until} (the person's until), with what it holds then"),
                   person=means.email, removal=True, hint=self._admin_hint())

    def _terminations(self) -> None:
        for means_id in sorted(self.sim.orgs[self.kvk].members, key=lambda m: self.sim.means[m].key):
            self._termination(means_id, Stage.REMOVE)

    def _leaving(self, means: Means) -> bool | None:
        """Whether a member of the organisation goes: None when it stays (declared, unmanaged, renamed), False
        when it is not declared but kept (no policy.prune, its until not come), True when it goes."""
        if (means.key in self.d.users and means.key not in self.ended) or means.key in self.unmanaged \
                or means.id in self.renamed_ids:
            return None
        return self.d.policy.prune or means.key in self.ended

    def _termination(self, means_id: str, stage: Stage) -> None:
        means = self.sim.means[means_id]
        leaving = self._leaving(means)
        if leaving is None:
            return
        if not leaving:
            role = self.sim.orgs[self.kvk].members[means_id].role.value
            self.out.unmanaged.append(Unmanaged(self.kvk, "means", means.email, f"{role}, {means.level}"))
            return
        if means_id == self.actor_id:
            self._manual(Action.TERMINATE_MEANS, means.email, "R3", self._own_end(means), means.email)
            return
        if self.sim.member_count(self.kvk) == 1:
            self._manual(Action.TERMINATE_MEANS, means.email, "R14",
                         "this is the organisation's last means: terminating it ends eHerkenning for the whole "
                         "organisation; do that in the Beheermodule if you mean it", means.email)
            return
        ended = means.key in self.ended
        why = f"its until {self.d.users[means.key].until} has come" if ended else "not in the config"
        self._step(rules.Terminate(self.kvk, means_id), means.email, stage, **self._loss(means, why),
                   person=means.email, removal=True, hint=self._admin_hint(), time_driven=ended)

    def _loss(self, means: Means, why: str) -> dict[str, Any]:
        """What terminating `means` here takes away, read from the simulated state as the step finds it: its
        authorisations, the chain authorisations it acts on, the organisations it stays linked to, and what
        undoing it would cost (issue 11). The detail, before and after of the change; lists sorted."""
        membership = self.sim.membership(self.kvk, means.id)
        role = membership.role.value if membership else "gebruiker"
        held = sorted((_key(self.sim, uuid), uuid, end) for uuid, end in
                      self.sim.authorisations_of(self.kvk, means.id).items())
        chains = [{"kvk": kvk, "name": state.info.name, "service": key, "end_date": chain.ends[uuid].isoformat()}
                  for kvk, state in sorted(self.sim.orgs.items()) if kvk != self.kvk
                  and (chain := state.chains.get(self.kvk)) is not None
                  for key, uuid, _ in held if uuid in chain.services]
        others = [{"kvk": kvk, "name": self.sim.orgs[kvk].info.name, "role": ms.role.value}
                  for kvk, ms in sorted(self.sim.memberships_of(means.id).items()) if kvk != self.kvk]
        others += [{"kvk": kvk, "name": "", "role": None}      # linked where this config does not look (R15)
                   for kvk in sorted(set(self.sim.linked.get(means.id, ())) - set(self.sim.orgs))]
        if others:
            undo = (f"cannot be undone: linking the means here again costs EUR "
                    f"{self.tariffs.link_cost(means.subscription):.2f} a year and needs the supplier's processing (R15)")
        else:
            _, yearly = self.tariffs.means_cost(means.level, means.type, means.subscription)
            once = self.tariffs.second_factor_cost(means.second_factor)
            undo = (f"cannot be undone: a new means costs the request fee (EUR {yearly:.2f} a year"
                    + (f" and EUR {once:.2f} once" if once else "")
                    + ") and needs the supplier's approval and the holder's activation (R5)")
        lost = [_count(len(held), "authorisation")] + ([_count(len(chains), "chain authorisation")] if chains else [])
        detail = (f"{means.name}, {role}, {means.level}; {why}; loses {' and '.join(lost)}"
                  + (f"; stays linked to {_count(len(others), 'other organisation')}" if others else "")
                  + "; cannot be undone")
        end_dates = {f"{means.email} {key}": end.isoformat() for key, _, end in held}
        before = {"name": means.name, "role": role, "level": means.level.value, "end_dates": end_dates,
                  "chain_authorisations": chains}
        after = {"end_dates": {k: None for k in end_dates}, "other_organisations": others, "undo": undo}
        return {"detail": detail, "before": before, "after": after}

    def _dates_detail(self, what: str, end: dt.date | None, keys: str,
                      group: list[tuple[Means, list[Service]]]) -> str:
        """`keys until NEW` for a grant; `keys until OLD -> NEW` (or `-> revoked`) for a change of end dates."""
        if what == "grant":
            return f"{keys} {_end_text(what, end)}".strip()
        olds = sorted({str(d) for m, ok in group for s in ok if (d := self.old_end.get((m.id, s.uuid)))})
        return f"{keys} until {', '.join(olds) or '?'} -> {end or 'revoked'}"

    def _old_new(self, what: str, end: dt.date | None,
                 group: list[tuple[Means, list[Service]]]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The end dates a set_end_date or revoke finds and leaves, per "<e-mail> <service>" (grants: none)."""
        if what == "grant":
            return None, None
        old = {f"{m.email} {s.key}": d.isoformat() for m, ok in group for s in ok
               if (d := self.old_end.get((m.id, s.uuid)))}
        return ({"end_dates": dict(sorted(old.items()))},
                {"end_dates": {k: end.isoformat() if end else None for k in sorted(old)}})

    @cached_property
    def _admin_emails(self) -> list[str]:
        """The config's beheerders, found once: a hint is asked for every removal step (10,000 users each)."""
        return self.d.admin_emails()

    def _admin_hint(self) -> str:
        waiting = [e for e in self._admin_emails if e.lower() in self.waiting]
        if waiting:
            return "after " + ", ".join(waiting) + " is active as beheerder"
        return ""

    # ------------------------------------------------------------------------------- authorisations
    def _authorisations(self) -> None:
        accepted: dict[tuple[str, dt.date | None, frozenset[str]], list[tuple[Means, list[Service]]]] = defaultdict(list)
        # (until, held end date) -> (target_end, _flip): users share a few of these pairs (their groups), so each
        # pair is decided once, not for each of 100,000 authorisations
        decided: dict[tuple[Until, dt.date | None], tuple[tuple[str | None, dt.date | None],
                                                          tuple[dt.date, str] | None]] = {}
        for wanted in self.d.users.values():
            user = wanted.user
            if user.key in self.unmanaged:
                continue
            means = self.sim.means_by_email(user.email)
            membership = self.sim.membership(self.kvk, means.id) if means else None
            if means is None or membership is None or not means.active:
                self._wait_for_activation(wanted, means)
                continue
            held = self.sim.authorisations_of(self.kvk, means.id)
            wants: dict[tuple[str, dt.date | None], list[Service]] = defaultdict(list)
            for uuid, auth in wanted.authorisations.items():
                if auth.note:
                    self.notes[(means.id, uuid)] = f"{auth.service.key}: {auth.note}"
                had = held.get(uuid)
                known = decided.get((auth.until, had))
                if known is None:
                    known = decided[(auth.until, had)] = (target_end(auth.until, had, self.today, self.renew),
                                                          self._flip(auth.until, had))
                (what, end), flip = known
                if flip is not None and (self.out.valid_until is None or flip[0] < self.out.valid_until):
                    self._horizon(flip, f"{user.email} {auth.service.key}")     # named only when it is kept
                if what == "set":
                    what = "extend" if end > held[uuid] else "shorten"  # type: ignore[operator]
                if what == "shorten" and end == membership.terminates_on == wanted.until:
                    what = None                # it ends with the means on the person's until anyway (R14)
                if what is not None:
                    wants[(what, end)].append(auth.service)
                    if (what == "extend" and auth.until == ROLLING) or (
                            what == "revoke" and held[uuid] <= auth.until):    # type: ignore[operator]
                        # a revoke is the calendar's only when the backend held no later date than the
                        # config's: one granted (back) beyond it was changed outside git (drift)
                        self.by_time.add((means.id, uuid))
            for uuid, end in held.items():
                if uuid not in wanted.authorisations:
                    service = self.sim.catalogue.by_uuid(uuid)
                    key = service.key if service else uuid
                    if self.d.policy.prune:
                        wants[("revoke", None)].append(service or _unknown_service(uuid))
                    else:
                        self.out.unmanaged.append(Unmanaged(self.kvk, "authorisation", f"{user.email} {key}",
                                                            f"until {end}"))
            for (what, end), services in sorted(wants.items(), key=lambda kv: (_ORDER[kv[0][0]], str(kv[0][1]))):
                for ok in self._per_user(means, what, end, services):
                    accepted[(what, end, frozenset(s.uuid for s in ok))].append((means, ok))
        for (what, end, _), group in sorted(accepted.items(), key=lambda kv: (_ORDER[kv[0][0]], str(kv[0][1]),
                                                                               sorted(kv[0][2]))):
            size = max(1, rules.MAX_BULK_PAIRS // len(group[0][1]))   # R10: the backend's cap per request
            for start in range(0, len(group), size):
                self._bulk(what, end, group[start:start + size])

    def _flip(self, until: Until, held: dt.date | None) -> tuple[dt.date, str] | None:
        """The first later day on which `target_end` would decide otherwise for an object, and why (a template:
        `{}` is the object); None when no day does."""
        if until == ROLLING:
            if held is None or (held - self.today).days < self.renew:     # granted or extended now, to 5 years
                return (self.today + dt.timedelta(days=1),                # from today: another day, another date
                        f"{{}} gets a rolling end date counted from the plan's day ({self.today})")
            return (held - dt.timedelta(days=self.renew - 1),
                    f"{{}} enters its renewal window (renew_before {self.renew} days)")
        if isinstance(until, dt.date) and until > self.today:
            return until, f"{{}} reaches its end date {until}"
        return None

    def _horizon(self, flip: tuple[dt.date, str] | None, what: str) -> None:
        """Note `flip` for the object `what` when it is earlier than the day kept (`OrgPlan.horizon` keeps the
        first of equal days, so a later or equal one would not change it: its reason is not written)."""
        kept = self.out.valid_until
        if flip is not None and (kept is None or flip[0] < kept):
            self.out.horizon(flip[0], flip[1].format(what))

    def _wait_for_activation(self, wanted: DesiredUser, means: Means | None) -> None:
        if not wanted.authorisations:
            return
        keys = sorted(a.service.key for a in wanted.authorisations.values()
                      if target_end(a.until, None, self.today, self.renew)[0] is not None)
        if not keys:
            return
        why = self.waiting.get(wanted.key) or (_not_active_reason(means) if means else "it has no means yet")
        self.out.deferred.append(Deferred(self.kvk, Action.GRANT, keys, self.wait_rule.get(wanted.key, "R7"),
                                          f"authorisations are added only to active users; {why}",
                                          wanted.user.email, self._deferred_until(wanted, keys)))

    def _deferred_until(self, wanted: DesiredUser, keys: list[str]) -> str:
        """The end dates a deferred grant will get, as a grant line shows them: `until D` (per service when
        they differ)."""
        ends = {a.service.key: target_end(a.until, None, self.today, self.renew)[1]
                for a in wanted.authorisations.values() if a.service.key in keys}
        notes = sorted(f"{a.service.key}: {a.note}" for a in wanted.authorisations.values()
                       if a.note and a.service.key in keys)
        noted = f"; note: {'; '.join(notes)}" if notes else ""      # overrides and caps show before they run
        if len({ends.get(k) for k in keys}) == 1:
            return f"until {ends.get(keys[0])}{noted}"
        return ", ".join(f"{k} until {ends.get(k)}" for k in keys) + noted

    def _per_user(self, means: Means, what: str, end: dt.date | None, services: list[Service]) -> list[list[Service]]:
        """Simulate one user's step; when refused, try service by service so one blocked service (say, R8
        while an upgrade is pending) does not hold back the others."""
        for service in services:
            self.old_end.setdefault((means.id, service.uuid), self.sim.authorisation(self.kvk, means.id, service.uuid))
        refusal = self._try(self._op(what, end, [means.id], services))
        if refusal is None:
            return [services]
        if len(services) == 1:
            self._refused(refusal, _ACTION[what], services[0].key, means.email, _end_text(what, end),
                          _unblock(means))
            return []
        ok = []
        for service in services:
            refusal = self._try(self._op(what, end, [means.id], [service]))
            if refusal is None:
                ok.append([service])
            else:
                self._refused(refusal, _ACTION[what], service.key, means.email, _end_text(what, end),
                              _unblock(means))
        return ok

    def _op(self, what: str, end: dt.date | None, ids: list[str], services: list[Service]) -> AdminOperation:
        uuids = tuple(s.uuid for s in services)
        if what == "grant":
            return rules.Grant(self.kvk, tuple(ids), uuids, end)
        if what in ("extend", "shorten"):
            assert end is not None
            return rules.SetEndDate(self.kvk, tuple(ids), uuids, end)
        return rules.Revoke(self.kvk, tuple(ids), uuids)

    def _bulk(self, what: str, end: dt.date | None, group: list[tuple[Means, list[Service]]]) -> None:
        """One API call for users that get the same services with the same end date (R10)."""
        services = group[0][1]
        emails = [m.email for m, _ in group]
        keys = ", ".join(s.key for s in services)
        stage = Stage.GRANT if what in ("grant", "extend") else Stage.SHORTEN
        target: str | list[str] = emails[0] if len(emails) == 1 else emails
        op = self._op(what, end, [m.id for m, _ in group], services)
        change = self._add(op, target, stage, service_keys=[s.key for s in services],
                           detail=self._dates_detail(what, end, keys, group),
                           person=emails[0] if len(emails) == 1 else None, removal=what == "revoke",
                           escalation=what == "grant" and any(s.general for s in services))
        change.time_driven = all((m.id, s.uuid) in self.by_time for m, ok in group for s in ok)
        change.before, change.after = self._old_new(what, end, group)
        notes = [(m.email, self.notes[(m.id, s.uuid)]) for m, ok in group for s in ok if (m.id, s.uuid) in self.notes]
        if notes:                      # the reviewer sees why the date is not the group's (config.effective)
            change.detail += "; note: " + "; ".join(n if len(group) == 1 else f"{e} {n}" for e, n in notes)

    # ---------------------------------------------------------------------------------------- chains
    def _chains(self) -> None:
        state = self.sim.orgs[self.kvk]
        for ikvk, want in self.d.chains.items():
            have = state.chains.get(ikvk)
            self._chain(want, have)
        for ikvk, have in sorted(state.chains.items()):
            if ikvk in self.d.chains:
                continue
            if self.d.policy.prune:
                self._step(rules.RemoveIntermediary(self.kvk, ikvk), ikvk, Stage.REMOVE,
                           detail=f"{have.name or ''} not in the config; removing it removes all its chain "
                           f"authorisations ({self._chain_text(have)}) and cannot be undone "
                           "(R18)".strip(), removal=True, **self._chain_ends(ikvk, have, sorted(have.ends), None))
            else:
                self.out.unmanaged.append(Unmanaged(self.kvk, "intermediary", ikvk, have.name or ""))

    def _chain_text(self, have: Chain, uuids: Iterable[str] | None = None) -> str:
        """"a, b until D" (or "a until D1, b until D2"): chain authorisations as a reviewer reads them."""
        ends = {_key(self.sim, u): end for u, end in have.ends.items() if uuids is None or u in uuids}
        if len(set(ends.values())) == 1:
            return f"{', '.join(sorted(ends))} until {next(iter(ends.values()))}"
        return ", ".join(f"{k} until {end}" for k, end in sorted(ends.items()))

    def _chain_ends(self, ikvk: str, have: Chain | None, uuids: Sequence[str], end: dt.date | None
                    ) -> dict[str, Any]:
        """Before/after of a chain step: "<intermediary KvK> <service>" -> end date (None: none)."""
        held = have.ends if have else {}
        keys = {u: f"{ikvk} {_key(self.sim, u)}" for u in uuids}
        before: dict[str, Any] = {"end_dates": {keys[u]: held[u].isoformat() if u in held else None
                                                for u in sorted(uuids, key=keys.__getitem__)}}
        if end is None and have is not None and have.name and set(uuids) >= set(held):
            before["name"] = have.name
        return {"before": before, "after": {"end_dates": {keys[u]: end.isoformat() if end else None
                                                          for u in sorted(uuids, key=keys.__getitem__)}}}

    def _chain(self, want: DesiredChain, have: Chain | None) -> None:
        """Each chain authorisation (intermediary x service) by its own `until` (R18): one step per kind and end
        date; the intermediary itself goes when every one it holds has passed."""
        label = f"{want.name} ({want.kvk})" if want.name else want.kvk
        held = have.ends if have else {}
        groups: dict[tuple[str, dt.date | None], list[str]] = defaultdict(list)
        for uuid in sorted(set(want.services) | set(held), key=lambda u: _key(self.sim, u)):
            if uuid not in want.services:
                groups[("dropped", None)].append(uuid)
                continue
            until = want.until[uuid]
            self._horizon(self._flip(until, held.get(uuid)),
                          f"the chain authorisation of {label} for {want.services[uuid].key}")
            what, end = target_end(until, held.get(uuid), self.today, self.renew)
            if what == "set" and end is not None:
                what = "extend" if end > held[uuid] else "shorten"
            if what is not None:
                groups[(what, end)].append(uuid)
        passed = groups.get(("revoke", None), [])
        if have is not None and passed and set(passed) == set(held) and len(groups) == 1:
            self._step(rules.RemoveIntermediary(self.kvk, want.kvk), want.kvk, Stage.REMOVE,
                       detail=f"{label}: its end date has passed; removes {self._chain_text(have)} (R18)",
                       removal=True, time_driven=True, **self._chain_ends(want.kvk, have, passed, None))
            return
        new_intermediary = have is None
        for (what, end), uuids in sorted(groups.items(), key=lambda g: (_CHAIN_ORDER[g[0][0]], str(g[0][1]))):
            keys = [_key(self.sim, u) for u in uuids]
            if what == "grant":
                assert end is not None
                self._step(rules.IssueChain(self.kvk, want.kvk, tuple(uuids), end, want.name), want.kvk,
                           Stage.GRANT, service_keys=keys, escalation=True,
                           detail=f"{label}: {'' if new_intermediary else 'add '}{', '.join(keys)} until {end}",
                           cost_yearly=self.tariffs.intermediary_yearly if new_intermediary else 0.0,
                           **self._chain_ends(want.kvk, have, uuids, end))
                new_intermediary = False
            elif what in ("extend", "shorten"):
                assert have is not None and end is not None
                self._step(rules.SetChainEndDate(self.kvk, want.kvk, end, tuple(uuids)), want.kvk,
                           Stage.GRANT if what == "extend" else Stage.SHORTEN, service_keys=keys,
                           detail=f"{label}: {self._chain_text(have, uuids)} -> {end}",
                           time_driven=all(want.until[u] == ROLLING for u in uuids),
                           **self._chain_ends(want.kvk, have, uuids, end))
            else:
                assert have is not None
                why = "its end date has passed" if what == "revoke" else "not in the config"
                self._step(rules.RevokeChain(self.kvk, want.kvk, tuple(uuids)), want.kvk, Stage.SHORTEN,
                           service_keys=keys, removal=True, time_driven=what == "revoke",
                           detail=f"{label}: {self._chain_text(have, uuids)}: {why}; it ends now (R18)",
                           **self._chain_ends(want.kvk, have, uuids, None))


_CHAIN_ORDER = {"grant": 0, "extend": 1, "shorten": 2, "revoke": 3, "dropped": 4}
_ORDER = {"grant": 0, "extend": 1, "shorten": 2, "revoke": 3}
_ACTION = {"grant": Action.GRANT, "extend": Action.SET_END_DATE, "shorten": Action.SET_END_DATE,
           "revoke": Action.REVOKE}


def _end_text(what: str, end: dt.date | None) -> str:
    return "" if what == "revoke" else f"until {end}"


def _not_active_reason(means: Means) -> str:
    if means.status is Status.WACHTEN_OP_GOEDKEURING:
        return f"{means.email} awaits the supplier's approval (R5)"
    if means.status is Status.WACHTEN_OP_ACTIVATIE:
        deadline = f" (by {means.activation_deadline})" if means.activation_deadline else ""
        return f"{means.email} awaits activation by the holder{deadline} (R5)"
    if means.status is Status.ACTIVATIE_VERLOPEN:
        return f"{means.email}'s activation lapsed: a new invitation is sent first (R5)"
    return f"{means.email} is not linked to this organisation yet"


def _unblock(means: Means) -> str:
    if means.pending is not None:
        what = f"the {means.pending.change}" + (f" to {means.pending.level}" if means.pending.level else "")
        return f"after the supplier has processed {what} of {means.email}"
    if means.status is not Status.ACTIEF:
        return "after " + _not_active_reason(means)
    return ""


def _name_key(name: str) -> str:
    return " ".join(name.lower().replace(".", " ").split())


def _unknown_service(uuid: str) -> Service:
    return Service(key=uuid, uuid=uuid, provider="?", name="(not in the catalogue)", level=Level.EH1)


def _key(world: World, uuid: str) -> str:
    """A service's key, or its UUID when the catalogue does not know it."""
    service = world.catalogue.by_uuid(uuid)
    return service.key if service else uuid


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
