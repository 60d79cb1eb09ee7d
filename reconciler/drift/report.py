"""The drift report: what differs between git and the backend, what expires soon, what waits on people.

A pure function of (the plan, the state it was made on, the desired state, today). Drift is every change the
plan would make that the calendar did not cause: someone changed the backend by hand, or an apply did not
finish. What the calendar causes is reported as *expiring* (an authorisation or chain authorisation ending
within `renew_before`, as the Beheermodule warns two months ahead). What waits for the supplier or a holder
(approvals, activations and their deadlines, lapsed activations whose new letter costs money, pending changes)
is *waiting on people*; unmanaged objects and manual steps come straight from the plan. *Idle* is an active
gebruiker means without authorisations for longer than `policy.idle_after`: its yearly cost is a saving to
consider, never removed automatically. A beheerder is not listed: managing needs no authorisation.

Who changed a drifted item and when comes from the backend's event trail (`reconciler.drift.trail`), read only
for an organisation that needs it (`OrgDrift.needs_trail`: something drifted, or an idle candidate whose idle
spell the backend's own dates cannot settle).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from reconciler.config.models import ROLLING
from reconciler.domain.state import Status, World
from reconciler.domain.waiting import ACTIVATION_LAPSED, Waiting as Waiting, waiting_in
from reconciler.drift.trail import UNKNOWN, Match, Trail
from reconciler.plan.cost import DEFAULT_TARIFFS, Tariffs, money
from reconciler.plan.desired import DesiredOrg
from reconciler.plan.model import (
    Action, Change, Deferred, Manual, OrgResult, Plan, Unmanaged, target_list, target_text,
)


@dataclass(frozen=True)
class DriftItem:
    """One difference: what (the change that would undo it), who or what it is about, expected and actual."""

    action: str
    target: str
    expected: str
    actual: str
    changed_by: str = "unknown"    # from the event trail: a holder's e-mail, the supplier, the holder, time
    changed_on: dt.date | None = None


@dataclass(frozen=True)
class Expiring:
    kind: str                      # authorisation | chain authorisation
    who: str                       # e-mail, or the intermediary
    what: str                      # service key(s)
    end_date: dt.date
    days_left: int
    renewal: str                   # what happens: renewed by the next apply (rolling) or ends as configured


@dataclass(frozen=True)
class Idle:
    """An active means with no authorisations here for `days` (since `since`, when `since_what`)."""

    who: str
    name: str
    level: str
    since: dt.date
    since_what: str                # its last authorisation ended | activated | requested (the backend's date)
    days: int
    yearly_cost: float
    note: str


@dataclass
class OrgDrift(OrgResult):
    drift: list[DriftItem] = field(default_factory=list)
    expiring: list[Expiring] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    unmanaged: list[Unmanaged] = field(default_factory=list)
    manual: list[Manual] = field(default_factory=list)
    idle: list[Idle] = field(default_factory=list)
    letter_cost: float | None = None              # the tariff of one new activation letter (None: not printed)
    needs_trail: bool = field(default=False, repr=False)

    @property
    def in_sync(self) -> bool:
        """Nothing differs: no drift, nothing expiring, and no step a person must make (a manual item, say the
        e-mail of an active holder (R11), is a difference the tool cannot make, not an agreement)."""
        return not self.drift and not self.expiring and not self.manual

    @property
    def lapsed(self) -> int:
        """Lapsed activations: each needs a new activation letter (R5), which costs money."""
        return sum(1 for w in self.waiting if w.what == ACTIVATION_LAPSED)


@dataclass
class DriftReport:
    today: dt.date
    backend: str
    organisations: list[OrgDrift]

    @property
    def in_sync(self) -> bool:
        return all(o.in_sync for o in self.organisations)

    def summary(self) -> dict[str, Any]:
        """Counts per section; the new activation letters and their cost (None: the tariff is not printed);
        the idle means' yearly cost."""
        orgs = self.organisations
        letters = sum(o.lapsed for o in orgs)
        costs = [o.letter_cost for o in orgs if o.lapsed]
        return {"drift": sum(len(o.drift) for o in orgs), "expiring": sum(len(o.expiring) for o in orgs),
                "waiting": sum(len(o.waiting) for o in orgs), "unmanaged": sum(len(o.unmanaged) for o in orgs),
                "manual": sum(len(o.manual) for o in orgs), "idle": sum(len(o.idle) for o in orgs),
                "activation_letters": letters,
                "activation_letters_cost": None if None in costs else round(sum(
                    o.lapsed * (o.letter_cost or 0.0) for o in orgs), 2),
                "idle_yearly_cost": round(sum(i.yearly_cost for o in orgs for i in o.idle), 2)}


def build_report(plan: Plan, world: World, desired: list[DesiredOrg], today: dt.date, *,
                 trails: Mapping[str, Trail] | None = None, tariffs: Tariffs = DEFAULT_TARIFFS) -> DriftReport:
    """The report; `trails` (per KvK) says who changed each drifted item and since when a means is idle."""
    wanted = {d.kvk: d for d in desired}
    trails = trails or {}
    out = []
    for org in plan.organisations:
        d = wanted.get(org.kvk)
        trail = trails.get(org.kvk)
        item = OrgDrift(org.kvk, org.name, org.revision, unmanaged=list(org.unmanaged), manual=list(org.manual),
                        letter_cost=tariffs.activation_letter)
        found: list[tuple[DriftItem, Match]] = []
        for change in org.changes:
            # a lapsed activation is not a hand's change: it waits on people (a new letter), listed there
            if not change.time_driven and change.action is not Action.RESEND_INVITATION:
                found.extend(_drift(change, world))
        for blocked in org.deferred:
            if not (blocked.rule == "R7" and blocked.action is Action.GRANT) \
                    and blocked.action is not Action.RESEND_INVITATION:     # those wait on people (below)
                found.append((DriftItem(blocked.action.value, target_text(blocked.target),
                                        blocked.detail or "as in the config",
                                        f"differs; the change waits ({blocked.rule}: {blocked.reason})"),
                              _blocked_match(blocked, world)))
        item.drift = [_attributed(drift, match, trail) for drift, match in found]
        item.needs_trail = bool(found)
        if d is not None and org.kvk in world.orgs:
            item.expiring = _expiring(world, d, today)
            item.waiting = [_with_letter_cost(w, tariffs, w.who.lower() in d.users) for w in waiting_in(world, org.kvk)]
            item.idle, unsure = _idle(world, d, today, trail, tariffs)
            item.needs_trail = item.needs_trail or unsure
        out.append(item)
    return DriftReport(today, plan.backend, out)


def _attributed(item: DriftItem, match: Match, trail: Trail | None) -> DriftItem:
    who = trail.attribute(match) if trail is not None else UNKNOWN
    return replace(item, changed_by=who.by, changed_on=who.on)


def _blocked_match(blocked: Deferred, world: World) -> Match:
    person = blocked.person or target_list(blocked.target)[0]
    means = world.means_by_email(person)
    return Match(blocked.action.value, means_id=means.id if means else None, email=person,
                 intermediary=person if person.isdigit() else None)


#: A lapsed activation of a means the config does not declare: no letter is bought for it.
LAPSED_UNDECLARED = "activation lapsed, not in the config"


def _with_letter_cost(waiting: Waiting, tariffs: Tariffs, declared: bool) -> Waiting:
    if waiting.what != ACTIVATION_LAPSED:
        return waiting
    if not declared:
        return replace(waiting, what=LAPSED_UNDECLARED,
                       detail="no new activation letter is requested for it: with policy.prune the next apply "
                              "terminates it, else it is left alone (declare it to get a new letter)")
    return replace(waiting, detail=f"a new activation letter is needed (R5): {money(tariffs.activation_letter)}; "
                                   "the next apply requests it")


# ---------------------------------------------------------------------------------------------- drift
def _drift(change: Change, world: World) -> list[tuple[DriftItem, Match]]:
    """The difference a change would undo, as expected (the config) and actual (the backend), with what the
    event trail is searched for."""
    a, p = change.action, change.params
    keys = ", ".join(p.get("service_keys", []))
    if a in (Action.GRANT, Action.SET_END_DATE, Action.REVOKE):
        items = []
        services = frozenset(u.lower() for u in p.get("services", []))
        for person, means_id in zip(target_list(change.target), p.get("means_ids", [])):
            held = world.authorisations_of(change.kvk, means_id)
            ends = sorted({str(held[u]) for u in p.get("services", []) if u in held})
            actual = f"until {', '.join(ends)}" if ends else "not held"
            expected = "not held (not in the config)" if a is Action.REVOKE else f"until {p.get('end_date')}"
            items.append((DriftItem(a.value, f"{person} {keys}", expected, actual),
                          Match(a.value, means_id=means_id, email=person, services=services)))
        return items
    target = target_text(change.target)
    means = world.get_means(p["means_id"]) if isinstance(p.get("means_id"), str) else world.means_by_email(target)
    chain = a in (Action.ISSUE_CHAIN, Action.SET_CHAIN_END_DATE, Action.REVOKE_CHAIN, Action.REMOVE_INTERMEDIARY)
    match = Match(a.value, means_id=means.id if means else None, email=None if chain else target,
                  intermediary=target if chain else None)
    return [(item, match) for item in _means_drift(change, target)]


def _means_drift(change: Change, target: str) -> list[DriftItem]:
    a, p = change.action, change.params
    before, _, after = change.detail.partition(" -> ")
    match a:
        case Action.REQUEST_MEANS:
            return [DriftItem(a.value, target, f"a means: {change.detail}", "no means")]
        case Action.LINK_MEANS:
            return [DriftItem(a.value, target, f"linked as {p.get('role')}", "not linked to this organisation")]
        case Action.TERMINATE_MEANS:
            return [DriftItem(a.value, target, "no means here (not in the config)", "a means here")]
        case Action.ISSUE_CHAIN:
            return [DriftItem(a.value, target, change.detail, "not issued")]
        case Action.REVOKE_CHAIN:
            return [DriftItem(a.value, target, f"no {', '.join(p.get('service_keys', []))} (not in the config)",
                              "issued")]
        case Action.REMOVE_INTERMEDIARY:
            return [DriftItem(a.value, target, "no chain authorisations (not in the config)", "issued")]
        case Action.RESEND_INVITATION:
            return [DriftItem(a.value, target, "an active means", "its activation lapsed")]
    if after:                                          # "A -> B" details: role, level, type, phone, e-mail, chain date
        return [DriftItem(a.value, target, after.split(" (")[0], before.split(": ")[-1])]
    return [DriftItem(a.value, target, change.detail, "differs")]


# ------------------------------------------------------------------------------------------- expiring
def _expiring(world: World, desired: DesiredOrg, today: dt.date) -> list[Expiring]:
    window = desired.policy.renew_before_days
    state = world.orgs[desired.kvk]
    out: list[Expiring] = []
    for means_id, held in state.authorisations.items():
        means = world.means[means_id]
        wanted = desired.users.get(means.key)
        for uuid, end in held.items():
            left = (end - today).days
            if left > window:
                continue
            service = world.catalogue.by_uuid(uuid)
            want = wanted.authorisations.get(uuid) if wanted else None
            out.append(Expiring("authorisation", means.email, service.key if service else uuid, end, left,
                                _renewal(want.until if want else None)))
    for ikvk, chain in state.chains.items():
        chain_wanted = desired.chains.get(ikvk)
        for uuid, end in chain.ends.items():           # each chain authorisation has its own end date (R18)
            left = (end - today).days
            if left <= window:
                service = world.catalogue.by_uuid(uuid)
                until = chain_wanted.until.get(uuid) if chain_wanted else None
                out.append(Expiring("chain authorisation", f"{chain.name or ''} ({ikvk})".strip(),
                                    service.key if service else uuid, end, left, _renewal(until)))
    return sorted(out, key=lambda e: (e.end_date, e.who, e.what))


def _renewal(until: object) -> str:
    if until == ROLLING:
        return "renewed by the next apply (rolling)"
    if until is None:
        return "ends: not in the config"
    return f"ends as configured ({until})"


# ----------------------------------------------------------------------------------------------- idle
def _idle(world: World, desired: DesiredOrg, today: dt.date, trail: Trail | None,
          tariffs: Tariffs) -> tuple[list[Idle], bool]:
    """Active gebruiker means without authorisations here for longer than `idle_after`, and whether the event
    trail could change the answer (a candidate whose backend date alone is unknown or older than the window)."""
    window = desired.policy.idle_after_days
    state = world.orgs[desired.kvk]
    out: list[Idle] = []
    unsure = False
    for means_id, membership in state.members.items():
        means = world.means[means_id]
        if membership.is_admin or means.status is not Status.ACTIEF or membership.terminates_on is not None \
                or state.authorisations.get(means_id) or means.key in desired.policy.unmanaged_keys:
            continue
        start = means.contract_start
        if start is not None and (today - start).days <= window:
            continue                       # younger than the window: it cannot have been idle that long
        unsure = True
        found = trail.idle_since(means_id) if trail is not None else None
        since, what = found if found else (start, "requested (the backend's date)")
        if since is None or (today - since).days <= window:
            continue
        elsewhere = sorted(k for k in world.memberships_of(means_id) if k != desired.kvk)
        if elsewhere:
            cost = tariffs.link_cost(means.subscription)
            note = (f"also linked to {', '.join(elsewhere)}: ending it here saves the extra KvK link; "
                    "never removed automatically")
        else:
            cost = tariffs.means_cost(means.level, means.type, means.subscription)[1]
            note = "a saving to consider: remove it from the config (or give it work); never removed automatically"
        out.append(Idle(means.email, means.name, means.level.value, since, what, (today - since).days, cost, note))
    return sorted(out, key=lambda i: (-i.days, i.who)), unsure
