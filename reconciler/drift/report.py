"""The drift report: what differs between git and the backend, what expires soon, what waits on people.

A pure function of (the plan, the state it was made on, the desired state, today). Drift is every change the
plan would make that the calendar did not cause: someone changed the backend by hand, or an apply did not
finish. What the calendar causes is reported as *expiring* (an authorisation or chain authorisation ending
within `renew_before`, as the Beheermodule warns two months ahead). What waits for the supplier or a holder
(approvals, activations and their deadlines, lapsed activations whose new letter costs money, pending changes)
is *waiting on people*; unmanaged objects and manual steps come straight from the plan.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from reconciler.config.models import ROLLING
from reconciler.domain.state import World
from reconciler.domain.waiting import Waiting as Waiting, waiting_in
from reconciler.plan.desired import DesiredOrg
from reconciler.plan.model import Action, Change, Manual, Plan, Unmanaged, target_list, target_text


@dataclass(frozen=True)
class DriftItem:
    """One difference: what (the change that would undo it), who or what it is about, expected and actual."""

    action: str
    target: str
    expected: str
    actual: str


@dataclass(frozen=True)
class Expiring:
    kind: str                      # authorisation | chain authorisation
    who: str                       # e-mail, or the intermediary
    what: str                      # service key(s)
    end_date: dt.date
    days_left: int
    renewal: str                   # what happens: renewed by the next apply (rolling) or ends as configured


@dataclass
class OrgDrift:
    kvk: str
    name: str
    revision: int | None
    drift: list[DriftItem] = field(default_factory=list)
    expiring: list[Expiring] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    unmanaged: list[Unmanaged] = field(default_factory=list)
    manual: list[Manual] = field(default_factory=list)

    @property
    def in_sync(self) -> bool:
        return not self.drift and not self.expiring


@dataclass
class DriftReport:
    today: dt.date
    backend: str
    organisations: list[OrgDrift]

    @property
    def in_sync(self) -> bool:
        return all(o.in_sync for o in self.organisations)

    def summary(self) -> dict[str, int]:
        return {"drift": sum(len(o.drift) for o in self.organisations),
                "expiring": sum(len(o.expiring) for o in self.organisations),
                "waiting": sum(len(o.waiting) for o in self.organisations),
                "unmanaged": sum(len(o.unmanaged) for o in self.organisations),
                "manual": sum(len(o.manual) for o in self.organisations)}


def build_report(plan: Plan, world: World, desired: list[DesiredOrg], today: dt.date) -> DriftReport:
    wanted = {d.kvk: d for d in desired}
    out = []
    for org in plan.organisations:
        d = wanted.get(org.kvk)
        item = OrgDrift(org.kvk, org.name, org.revision, unmanaged=list(org.unmanaged), manual=list(org.manual))
        for change in org.changes:
            if not change.time_driven:
                item.drift.extend(_drift(change, world))
        for blocked in org.deferred:
            if not (blocked.rule == "R7" and blocked.action is Action.GRANT):   # those wait on people (below)
                item.drift.append(DriftItem(blocked.action.value, target_text(blocked.target),
                                            blocked.detail or "as in the config",
                                            f"differs; the change waits ({blocked.rule}: {blocked.reason})"))
        if d is not None and org.kvk in world.orgs:
            item.expiring = _expiring(world, d, today)
            item.waiting = waiting_in(world, org.kvk)
        out.append(item)
    return DriftReport(today, plan.backend, out)


# ---------------------------------------------------------------------------------------------- drift
def _drift(change: Change, world: World) -> list[DriftItem]:
    """The difference a change would undo, as expected (the config) and actual (the backend)."""
    a, p = change.action, change.params
    keys = ", ".join(p.get("service_keys", []))
    if a in (Action.GRANT, Action.SET_END_DATE, Action.REVOKE):
        items = []
        for person, means_id in zip(target_list(change.target), p.get("means_ids", [])):
            held = world.authorisations_of(change.kvk, means_id)
            ends = sorted({str(held[u]) for u in p.get("services", []) if u in held})
            actual = f"until {', '.join(ends)}" if ends else "not held"
            expected = "not held (not in the config)" if a is Action.REVOKE else f"until {p.get('end_date')}"
            items.append(DriftItem(a.value, f"{person} {keys}", expected, actual))
        return items
    target = target_text(change.target)
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
        left = (chain.end_date - today).days
        if left <= window:
            keys = sorted((s.key if (s := world.catalogue.by_uuid(u)) else u) for u in chain.services)
            chain_wanted = desired.chains.get(ikvk)
            out.append(Expiring("chain authorisation", f"{chain.name or ''} ({ikvk})".strip(), ", ".join(keys),
                                chain.end_date, left, _renewal(chain_wanted.until if chain_wanted else None)))
    return sorted(out, key=lambda e: (e.end_date, e.who, e.what))


def _renewal(until: object) -> str:
    if until == ROLLING:
        return "renewed by the next apply (rolling)"
    if until is None:
        return "ends: not in the config"
    return f"ends as configured ({until})"
