"""The beheer backend's rules (../shared/domain/RULES.md), as code that validation, the planner and the
sandbox all call, so a rule is written once. Each constant or function names its rule id.
"""

from __future__ import annotations

import calendar
from collections import Counter
import datetime as dt
from typing import Callable, Iterable, Protocol, Sequence

from reconciler.domain.means import MeansType, Role, SecondFactorType, Subscription
from reconciler.domain.catalogue import Catalogue, Service
from reconciler.domain.state import (
    Chain, DeleteAuthorisation, DeleteChain, DeleteMeans, DeleteMembership, DeleteOrganisation, Due, Effect, Means,
    Membership, OrgInfo, Pending, PendingKind, PutAuthorisation, PutChain, PutMeans, PutMembership, Status,
)

from reconciler.domain.levels import MEANS_LEVELS, Level
from reconciler.domain.operations import (  # noqa: F401 (the operations are the rules' vocabulary: rules.Grant)
    AdminOperation, ChangeEmail, ChangeLevel, ChangePhone, ChangeRole, ChangeType, Grant, IssueChain, LinkMeans,
    RemoveIntermediary, RequestMeans, ResendInvitation, Revoke, RevokeChain, SetChainEndDate, SetEndDate,
    Terminate,
)

#: R2: an admin's means is at least EH2+.
ADMIN_MIN_LEVEL = Level.EH2PLUS
#: R9: authorisations (and chain authorisations, R18) last at most this many years; new ones default to it.
MAX_YEARS = 5
#: R13: the tax means (type belastingdienst) exists at level EH3 only.
TAX_MEANS_LEVEL = Level.EH3
#: R19: levels whose means need a second factor (SMS or OTP).
SECOND_FACTOR_LEVELS = frozenset({Level.EH2PLUS, Level.EH3, Level.EH4})
#: R5: days the holder has to activate an approved means.
ACTIVATION_DAYS = 30


def add_years(day: dt.date, years: int) -> dt.date:
    """The same calendar day `years` later; 29 February becomes 28 February in a common year."""
    year = day.year + years
    last = calendar.monthrange(year, day.month)[1]
    return day.replace(year=year, day=min(day.day, last))


def max_end_date(today: dt.date) -> dt.date:
    """R9: the latest end date an authorisation may have when set today."""
    return add_years(today, MAX_YEARS)


def earliest_end_date(today: dt.date) -> dt.date:
    """R9: an end date is tomorrow at the earliest; ending today is a revoke."""
    return today + dt.timedelta(days=1)


def level_covers(holder: Level, service: Level) -> bool:
    """R8: a holder may be authorised for a service only at or above its minimum level."""
    return holder >= service


def admin_level_ok(level: Level) -> bool:
    """R2."""
    return level >= ADMIN_MIN_LEVEL


def needs_second_factor(level: Level) -> bool:
    """R19."""
    return level in SECOND_FACTOR_LEVELS


# =========================================================================================================
# The operations an admin (and the supplier, the holder and time) can perform, and the rules that govern
# them. `execute` checks an operation against a read-only View of the backend and returns the primitive
# writes (effects) it causes, or raises a Refusal naming the rule. The sandbox persists those effects in
# SQLite; the planner applies them to an in-memory World to simulate a plan step by step.
# =========================================================================================================



class Refusal(Exception):
    """The backend refuses an operation: `code` is a rule id (R1..R20) or a named condition."""

    status = 409

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotPermitted(Refusal):
    """The actor may not perform the operation at all (not an active beheerder there, a read-only token): the
    sandbox answers 403 `forbidden`, which the client raises as `backend.errors.Forbidden`."""

    status = 403


class Missing(Refusal):
    """The object the operation names does not exist (a means, a membership, an authorisation, a chain): the
    sandbox answers 404 `not-found`, which the client raises as `backend.errors.NotFound`."""

    status = 404


class Invalid(Refusal):
    """The operation itself is malformed (an unknown service, a bulk request too large): 422 `invalid`."""

    status = 422


class View(Protocol):
    """What the rules need to read; implemented by the in-memory World and by the sandbox's store."""

    @property
    def catalogue(self) -> Catalogue: ...

    def org(self, kvk: str) -> OrgInfo | None: ...
    def get_means(self, means_id: str) -> Means | None: ...
    def means_by_email(self, email: str) -> Means | None: ...
    def membership(self, kvk: str, means_id: str) -> Membership | None: ...
    def memberships_of(self, means_id: str) -> dict[str, Membership]: ...
    def members(self, kvk: str) -> dict[str, Membership]: ...
    def member_count(self, kvk: str) -> int: ...
    def active_admins(self, kvk: str) -> Iterable[str]: ...
    def tax_means(self, kvk: str) -> list[str]: ...
    def authorisations_of(self, kvk: str, means_id: str) -> dict[str, dt.date]: ...
    def authorisation(self, kvk: str, means_id: str, service: str) -> dt.date | None: ...
    def chain(self, kvk: str, intermediary_kvk: str) -> Chain | None: ...


#: The latest "today" the rules reason about: end dates lie up to five years ahead (R9) and contracts run on from
#: there, which must stay inside the calendar (year 9999); a later today is refused, not overflowed.
LATEST_TODAY = dt.date(9000, 12, 31)


#: The most means x services pairs one bulk request (grant, set end date, revoke) may cover (R10): a larger one
#: would hold the backend for seconds and grow its memory; the planner splits its bulk steps to stay within it.
MAX_BULK_PAIRS = 10_000


def unique(ids: Sequence[str]) -> tuple[str, ...]:
    """The ids once each, in their first order: a repeated id in a bulk request names the same pair."""
    return tuple(dict.fromkeys(ids))


def check_bulk_size(means_ids: Sequence[str], services: Sequence[str]) -> None:
    """R10: refuse a bulk request above MAX_BULK_PAIRS distinct means x services pairs (422 `invalid`)."""
    n_means, n_services = len(set(means_ids)), len(set(services))
    if n_means * n_services > MAX_BULK_PAIRS:
        raise Invalid("invalid", f"{n_means} means x {n_services} services is {n_means * n_services} pairs; one "
                                 f"bulk request covers at most {MAX_BULK_PAIRS} pairs: split it into several")


# ---------------------------------------------------------------------------------------------- helpers
def acting_admin(view: View, kvk: str, actor_id: str) -> Means:
    """The acting admin must be an active beheerder of the organisation. An organisation that does not
    exist answers like one you are not linked to, so a token cannot probe which KvK numbers are known."""
    actor = view.get_means(actor_id)
    membership = view.membership(kvk, actor_id)
    if actor is None or membership is None or view.org(kvk) is None:
        raise NotPermitted("forbidden", f"you are not linked to organisation {kvk}")
    if not membership.is_admin or not actor.active:
        raise NotPermitted("forbidden", f"you are not an active beheerder of organisation {kvk}")
    return actor


def _member(view: View, kvk: str, means_id: str) -> tuple[Means, Membership]:
    means = view.get_means(means_id)
    membership = view.membership(kvk, means_id)
    if means is None or membership is None:
        raise Missing("not-found", f"means {means_id} is not linked to organisation {kvk}")
    return means, membership


def _no_pending(means: Means) -> None:
    """R6: one mutation at a time."""
    if means.pending is not None:
        raise Refusal("R6", f"a {means.pending.change} of {means.email} is still being processed; "
                            "no other change is accepted until the supplier has handled it")


def _up_to_actor(actor: Means, level: Level, what: str) -> None:
    """R4: up to your own level."""
    if level > actor.level:
        raise Refusal("R4", f"{what} at level {level} is above your own level {actor.level}; "
                            "only an admin with that level can do it")


def _second_factor_ok(level: Level, factor: SecondFactorType | None, phone: str | None) -> None:
    """R19."""
    if needs_second_factor(level) and factor is None:
        raise Refusal("R19", f"level {level} needs a second factor (sms with a mobile number, or otp)")
    if factor is SecondFactorType.SMS and not phone:
        raise Refusal("R19", "second factor sms needs a mobile number")


def admin_stays(view: View, kvk: str, removed: str) -> bool:
    """R1: whether an active admin remains once `removed` is gone; one whose termination is already scheduled
    does not count, or two admins could schedule each other away and leave none when the day comes. Stops at the
    first (every request of a new means asks it: counting them all was a tenth of planning 10,000 steps)."""
    for mid in view.active_admins(kvk):
        if mid == removed:
            continue
        membership = view.membership(kvk, mid)
        if membership is not None and membership.terminates_on is None:
            return True
    return False


def _end_date(today: dt.date, end: dt.date | None) -> dt.date:
    """R9: default five years; at the earliest tomorrow, at most five years ahead."""
    if end is None:
        return max_end_date(today)
    if end < earliest_end_date(today):
        raise Refusal("R9", f"end date {end} is not after today ({today}); ending an authorisation today is a revoke")
    if end > max_end_date(today):
        raise Refusal("R9", f"end date {end} is more than {MAX_YEARS} years ahead; the latest is {max_end_date(today)}")
    return end


def _services(view: View, uuids: Sequence[str]) -> list[Service]:
    out = []
    for uuid in uuids:
        service = view.catalogue.by_uuid(uuid)
        if service is None:
            raise Invalid("unknown-service", f"service {uuid} is not in the catalogue")
        out.append(service)
    return out


def unusable_with_branch_number(service: Service) -> bool:
    """R17: an organisation registered with a branch number cannot log in at UWV and Belastingdienst."""
    return service.belastingdienst or service.key.startswith("uwv/") or service.provider.upper() == "UWV"


# ----------------------------------------------------------------------------------------------- execute
def execute(view: View, actor_id: str, op: AdminOperation, today: dt.date) -> list[Effect]:
    """Check `op`, performed by the admin means `actor_id`, against every rule; return its effects."""
    if isinstance(op, LinkMeans):
        return _execute_in_target(view, actor_id, op, today)
    actor = acting_admin(view, op.kvk, actor_id)
    handler = _HANDLERS[type(op)]
    return handler(view, actor, op, today)


def _request_means(view: View, actor: Means, op: RequestMeans, today: dt.date) -> list[Effect]:
    existing = view.means_by_email(op.email)
    if existing is not None:
        raise Refusal("R15", f"{op.email} already holds a means; link that means to this organisation "
                             "instead of buying a second one")
    if op.level not in MEANS_LEVELS:
        raise Invalid("invalid", f"a means is {', '.join(str(l) for l in MEANS_LEVELS)}; not {op.level}")
    _up_to_actor(actor, op.level, "a new means")
    _admins_stay(view, op.kvk, op.email)
    if op.role is Role.BEHEERDER and not admin_level_ok(op.level):
        raise Refusal("R2", f"a beheerder needs level {ADMIN_MIN_LEVEL} or higher, not {op.level}")
    if op.type is MeansType.BELASTINGDIENST:
        _tax_means_ok(view, op.kvk, op.level, op.role, exclude=None)
    _second_factor_ok(op.level, op.second_factor, op.phone)
    means = Means(id=op.means_id, email=op.email, name=op.name, level=op.level, type=op.type,
                  second_factor=op.second_factor, phone=op.phone, subscription=op.subscription,
                  status=Status.WACHTEN_OP_GOEDKEURING, contract_start=today)
    return [PutMeans(means), PutMembership(op.kvk, means.id, Membership(op.role))]


def _admins_stay(view: View, kvk: str, who: str) -> None:
    """R1: no one joins an organisation whose every admin is scheduled to leave (R14: it is ending), or the
    newcomer would be left without an admin on that day."""
    if not admin_stays(view, kvk, removed=""):
        raise Refusal("R1", f"every beheerder of {kvk} is scheduled to leave (the organisation is ending, R14); "
                            f"{who} cannot join it")


def _tax_means_ok(view: View, kvk: str, level: Level, role: Role, exclude: str | None) -> None:
    """R13: EH3 only, never an admin, at most one per organisation."""
    if level != TAX_MEANS_LEVEL:
        raise Refusal("R13", f"a belastingdienst means is {TAX_MEANS_LEVEL} only, not {level}")
    if role is Role.BEHEERDER:
        raise Refusal("R13", "a belastingdienst means cannot be a beheerder")
    others = [mid for mid in view.tax_means(kvk) if mid != exclude]
    if others:
        raise Refusal("R13", f"organisation {kvk} already has a belastingdienst means; at most one is allowed")


def _link_means(view: View, actor: Means, op: LinkMeans, today: dt.date) -> list[Effect]:
    means = view.get_means(op.means_id)
    if means is None:
        raise Missing("not-found", f"means {op.means_id} does not exist")
    actor_orgs = view.memberships_of(actor.id)
    means_orgs = view.memberships_of(means.id)
    shared = [kvk for kvk, ms in actor_orgs.items() if ms.is_admin and kvk in means_orgs]
    if not shared:
        raise Refusal("R4", f"{means.email} is not linked to an organisation you manage")
    if view.membership(op.kvk, means.id) is not None:
        raise Refusal("already-linked", f"{means.email} is already linked to organisation {op.kvk}")
    _up_to_actor(actor, means.level, "linking a means")
    _admins_stay(view, op.kvk, means.email)
    _no_pending(means)
    if means.status is Status.WACHTEN_OP_GOEDKEURING:
        raise Refusal("R5", f"{means.email} has not been approved yet; link it once the supplier has approved it")
    if op.role is Role.BEHEERDER and not admin_level_ok(means.effective_level):
        raise Refusal("R2", f"a beheerder needs level {ADMIN_MIN_LEVEL} or higher; {means.email} has "
                            f"{means.effective_level}")
    if means.type is MeansType.BELASTINGDIENST:
        _tax_means_ok(view, op.kvk, means.level, op.role, exclude=means.id)
    pending = Pending(PendingKind.LINK, kvk=op.kvk, role=op.role, subscription=op.subscription)
    return [PutMeans(means.with_(pending=pending))]


def _execute_in_target(view: View, actor_id: str, op: LinkMeans, today: dt.date) -> list[Effect]:
    """R4 (manual 3.8.1): links go only into organisations where the acting admin is itself registered as
    beheerder; being a gebruiker there is not enough (else an admin elsewhere could place an admin of its choosing
    into an organisation it only uses)."""
    actor = view.get_means(actor_id)
    if actor is None or not actor.active:
        raise NotPermitted("forbidden", "your means is not active")
    there = view.membership(op.kvk, actor_id) if view.org(op.kvk) is not None else None
    if there is None:
        raise Refusal("R4", f"you are not linked to organisation {op.kvk}; links go only to organisations where you "
                            "are beheerder")
    if not there.is_admin:
        raise Refusal("R4", f"you are a gebruiker of organisation {op.kvk}; links go only to organisations where you "
                            "are beheerder")
    return _link_means(view, actor, op, today)


def _change_role(view: View, actor: Means, op: ChangeRole, today: dt.date) -> list[Effect]:
    means, membership = _member(view, op.kvk, op.means_id)
    if membership.role is op.role:
        return []
    _no_pending(means)
    if op.role is Role.GEBRUIKER:
        if means.id == actor.id:
            raise Refusal("R3", "you cannot make yourself a gebruiker; another beheerder must do it")
        if means.active and not admin_stays(view, op.kvk, means.id):
            raise Refusal("R1", f"{means.email} is the only active beheerder; make someone else beheerder first")
    else:
        if not admin_level_ok(means.effective_level):
            raise Refusal("R2", f"a beheerder needs level {ADMIN_MIN_LEVEL} or higher; {means.email} has "
                                f"{means.effective_level} (pending or current)")
        if means.type is MeansType.BELASTINGDIENST:
            raise Refusal("R13", "a belastingdienst means cannot be a beheerder")
    return [PutMembership(op.kvk, means.id, Membership(op.role, membership.terminates_on))]


def _change_level(view: View, actor: Means, op: ChangeLevel, today: dt.date) -> list[Effect]:
    means, _ = _member(view, op.kvk, op.means_id)
    if means.level == op.level:
        return []
    _no_pending(means)
    if not means.active:
        raise Refusal("R5", f"{means.email} is {means.status.value}; only an active means can change level")
    if means.type is MeansType.BELASTINGDIENST:
        raise Refusal("R13", f"a belastingdienst means is {TAX_MEANS_LEVEL} only; change its type first")
    _up_to_actor(actor, op.level, "the new level")
    for kvk, ms in view.memberships_of(means.id).items():
        if ms.is_admin and not admin_level_ok(op.level):
            raise Refusal("R2", f"{means.email} is a beheerder of {kvk}; a beheerder needs {ADMIN_MIN_LEVEL} or higher")
        for uuid in view.authorisations_of(kvk, means.id):
            service = view.catalogue.by_uuid(uuid)
            if service is not None and not level_covers(op.level, service.level):
                raise Refusal("R8", f"{means.email} holds {service.key} ({service.level}) at {kvk}; revoke it "
                                    f"before lowering the level to {op.level}")
    factor, phone = means.second_factor, means.phone
    chosen = factor is None and op.second_factor is not None
    if factor is None:  # R19: an upgrade from EH2+ keeps the factor; from EH2 one is chosen now
        factor, phone = op.second_factor, op.phone
    _second_factor_ok(op.level, factor, phone)
    pending = Pending(PendingKind.LEVEL, level=op.level, second_factor=factor if chosen else None,
                      phone=phone if chosen else None)
    return [PutMeans(means.with_(pending=pending))]  # nothing changes until the supplier processes it


def _change_type(view: View, actor: Means, op: ChangeType, today: dt.date) -> list[Effect]:
    means, membership = _member(view, op.kvk, op.means_id)
    if means.type is op.type:
        return []
    _no_pending(means)
    if op.type is MeansType.BELASTINGDIENST:
        for kvk, ms in view.memberships_of(means.id).items():
            _tax_means_ok(view, kvk, means.level, ms.role, exclude=means.id)
    effects: list[Effect] = [PutMeans(means.with_(type=op.type, subscription=op.subscription, contract_start=today))]
    for kvk in view.memberships_of(means.id):  # R13: a type change drops the means' authorisations
        effects.extend(DeleteAuthorisation(kvk, means.id, uuid) for uuid in view.authorisations_of(kvk, means.id))
    return effects


def _change_phone(view: View, actor: Means, op: ChangePhone, today: dt.date) -> list[Effect]:
    means, _ = _member(view, op.kvk, op.means_id)
    if means.id == actor.id:
        raise Refusal("R3", "you cannot change your own mobile number here; another beheerder must do it")
    if means.status not in (Status.WACHTEN_OP_ACTIVATIE, Status.ACTIEF):
        raise Refusal("R12", f"the mobile number can be changed while awaiting activation or active; "
                             f"{means.email} is {means.status.value}")
    if means.second_factor is not SecondFactorType.SMS:
        raise Refusal("R12", f"{means.email} does not use sms as second factor")
    _no_pending(means)
    return [PutMeans(means.with_(phone=op.phone))] if means.phone != op.phone else []


def _change_email(view: View, actor: Means, op: ChangeEmail, today: dt.date) -> list[Effect]:
    means, _ = _member(view, op.kvk, op.means_id)
    if means.email == op.email:
        return []
    if means.active:
        raise Refusal("R11", f"{means.email} is active; after activation only the holder can change the e-mail")
    other = view.means_by_email(op.email)
    if other is not None and other.id != means.id:
        raise Refusal("R15", f"{op.email} already holds another means")
    _no_pending(means)
    return [PutMeans(means.with_(email=op.email))]


def _resend_invitation(view: View, actor: Means, op: ResendInvitation, today: dt.date) -> list[Effect]:
    means, _ = _member(view, op.kvk, op.means_id)
    if means.status is not Status.ACTIVATIE_VERLOPEN:
        raise Refusal("R5", f"a new invitation is sent only after the activation expired; {means.email} is "
                            f"{means.status.value}")
    return [PutMeans(means.with_(status=Status.WACHTEN_OP_ACTIVATIE,
                                 activation_deadline=today + dt.timedelta(days=ACTIVATION_DAYS)))]


def others_active(view: View, kvk: str, means_id: str) -> list[str]:
    """The other means of organisation `kvk` that are active (R3/R14: while there are, its sole admin stays)."""
    return [mid for mid in view.members(kvk) if mid != means_id and (m := view.get_means(mid)) is not None
            and m.active]


def _terminate(view: View, actor: Means, op: Terminate, today: dt.date) -> list[Effect]:
    means, membership = _member(view, op.kvk, op.means_id)
    now = op.mode == "now"
    if not now:             # R6 guards changes; a termination "per direct" is the exit of a leaver (3.4)
        _no_pending(means)
    last = view.member_count(op.kvk) == 1
    leaves_no_admin = means.active and membership.is_admin and not admin_stays(view, op.kvk, means.id)
    # R14 (3.4.1): with no other means of the organisation active, its sole admin may end its own means now,
    # and with it the organisation ("Omdat er geen andere gebruikers actief zijn")
    ends_organisation = last or (now and means.id == actor.id and leaves_no_admin
                                 and not others_active(view, op.kvk, means.id))
    if leaves_no_admin and not ends_organisation:
        if means.id == actor.id and others_active(view, op.kvk, means.id):
            raise Refusal("R3", "you cannot terminate your own means while you are the only active beheerder and "
                                "other means of the organisation are active; make someone else beheerder first")
        if means.id == actor.id:
            raise Refusal("R3", "you cannot terminate your own means while you are the only active beheerder; with "
                                "no other means active, only a termination now is possible, and it ends "
                                "eHerkenning for the whole organisation (R14)")
        raise Refusal("R1", f"{means.email} is the only active beheerder; make someone else beheerder first")
    if now:
        if ends_organisation:  # R14 (3.4.1): the last means ends eHerkenning for the whole organisation
            return _end_organisation(view, op.kvk)
        effects: list[Effect] = [DeleteMembership(op.kvk, means.id)]
        if len(view.memberships_of(means.id)) == 1:
            effects.append(DeleteMeans(means.id))
        elif means.pending is not None:     # R6: the change it awaited lapses with the leaver's exit
            effects.append(PutMeans(means.with_(pending=None)))
        return effects
    if op.mode == "date":
        if op.date is None or op.date <= today:
            raise Invalid("invalid", "a termination date must be in the future")
        when = op.date
    elif op.mode == "end_of_contract":
        when = contract_end(means, today)
    else:
        raise Invalid("invalid", f"unknown termination mode {op.mode!r}; allowed: now, date, end_of_contract")
    return [PutMembership(op.kvk, means.id, Membership(membership.role, when))]


def _end_organisation(view: View, kvk: str) -> list[Effect]:
    """R14 (3.4.1): eHerkenning ends for the organisation: every membership (its means that are not active yet
    too), each means that had no other organisation, then the organisation itself."""
    effects: list[Effect] = []
    for mid in sorted(view.members(kvk)):
        effects.append(DeleteMembership(kvk, mid))
        if len(view.memberships_of(mid)) == 1:
            effects.append(DeleteMeans(mid))
        elif (other := view.get_means(mid)) is not None and other.pending is not None:
            effects.append(PutMeans(other.with_(pending=None)))
    return effects + [DeleteOrganisation(kvk)]


def contract_end(means: Means, today: dt.date) -> dt.date:
    """The end of the running contract period: the next anniversary of the start by subscription length."""
    years = 3 if means.subscription is Subscription.THREE_YEARS else 1
    end = means.contract_start or today
    while end <= today:
        end = add_years(end, years)
    return end


def _grant(view: View, actor: Means, op: Grant, today: dt.date) -> list[Effect]:
    check_bulk_size(op.means_ids, op.services)
    services = _services(view, unique(op.services))
    end = _end_date(today, op.end_date)
    if not op.means_ids or not services:
        raise Invalid("invalid", "a grant needs at least one user and one service")
    org = view.org(op.kvk)
    if org is not None and org.branch_number:
        blocked = [s.key for s in services if unusable_with_branch_number(s)]
        if blocked:
            raise Refusal("R17", f"organisation {op.kvk} is registered with a branch number and cannot use "
                                 + ", ".join(blocked))
    highest = max(s.level for s in services)  # R10: the highest service level decides who qualifies
    effects: list[Effect] = []
    for means_id in unique(op.means_ids):
        means, _ = _member(view, op.kvk, means_id)
        if not means.active:
            raise Refusal("R7", f"{means.email} is {means.status.value}; authorisations are added only to active users")
        if not level_covers(means.effective_level, highest):
            pending = " (a lower level is pending)" if means.effective_level != means.level else ""
            raise Refusal("R8", f"{means.email} has level {means.effective_level}{pending}; the services need "
                                f"{highest}")
        if means.type is MeansType.BELASTINGDIENST:
            other = [s.key for s in services if not s.belastingdienst]
            if other:
                raise Refusal("R13", f"{means.email} is a belastingdienst means; {', '.join(other)} is not a "
                                     "Belastingdienst service")
        effects.extend(PutAuthorisation(op.kvk, means.id, s.uuid, end) for s in services)
    return effects


def _existing_pairs(view: View, kvk: str, means_ids: Sequence[str], uuids: Sequence[str]) -> list[tuple[str, str]]:
    check_bulk_size(means_ids, uuids)
    pairs = []
    for means_id in unique(means_ids):
        means, _ = _member(view, kvk, means_id)
        for uuid in unique(uuids):
            if view.authorisation(kvk, means_id, uuid) is None:
                raise Missing("not-found", f"{means.email} has no authorisation for service {uuid}")
            pairs.append((means_id, uuid))
    return pairs


def _set_end_date(view: View, actor: Means, op: SetEndDate, today: dt.date) -> list[Effect]:
    end = _end_date(today, op.end_date)
    return [PutAuthorisation(op.kvk, mid, uuid, end) for mid, uuid in _existing_pairs(view, op.kvk, op.means_ids,
                                                                                       op.services)]


def _revoke(view: View, actor: Means, op: Revoke, today: dt.date) -> list[Effect]:
    return [DeleteAuthorisation(op.kvk, mid, uuid) for mid, uuid in _existing_pairs(view, op.kvk, op.means_ids,
                                                                                      op.services)]


def _issue_chain(view: View, actor: Means, op: IssueChain, today: dt.date) -> list[Effect]:
    """R18: the listed services get the end date (by default five years, R9); the intermediary's other chain
    authorisations keep theirs."""
    if op.intermediary_kvk == op.kvk:
        raise Refusal("R18", "an organisation cannot issue chain authorisations to itself")
    services = _services(view, op.services)
    if not services:
        raise Invalid("invalid", "a chain authorisation needs at least one service")
    end = _end_date(today, op.end_date)
    existing = view.chain(op.kvk, op.intermediary_kvk)
    ends = dict(existing.ends if existing else {}) | {s.uuid: end for s in services}
    name = op.name or (existing.name if existing else None)
    return [PutChain(op.kvk, Chain(op.intermediary_kvk, name, ends))]


def _issued(view: View, op: SetChainEndDate | RevokeChain) -> tuple[Chain, list[str]]:
    """The intermediary's chain authorisations and the services an operation names (all when it names none);
    404 for an intermediary or a service it was never issued."""
    existing = view.chain(op.kvk, op.intermediary_kvk)
    if existing is None:
        raise Missing("not-found", f"no chain authorisations to intermediary {op.intermediary_kvk}")
    uuids = list(unique(op.services)) or sorted(existing.ends)
    missing = [u for u in uuids if u not in existing.ends]
    if missing:
        raise Missing("not-found", f"intermediary {op.intermediary_kvk} holds no chain authorisation for "
                                   f"{', '.join(missing)}")
    return existing, uuids


def _set_chain_end_date(view: View, actor: Means, op: SetChainEndDate, today: dt.date) -> list[Effect]:
    existing, uuids = _issued(view, op)
    end = _end_date(today, op.end_date)
    return [PutChain(op.kvk, existing.with_ends(existing.ends | {u: end for u in uuids}))]


def _revoke_chain(view: View, actor: Means, op: RevokeChain, today: dt.date) -> list[Effect]:
    if not op.services:
        raise Invalid("invalid", "name the services to revoke; removing the intermediary removes them all")
    existing, uuids = _issued(view, op)
    return [_chain_without(op.kvk, existing, uuids)]


def _chain_without(kvk: str, chain: Chain, uuids: Sequence[str]) -> Effect:
    """The chain without these services; the intermediary goes with its last (R18)."""
    left = {u: end for u, end in chain.ends.items() if u not in uuids}
    return PutChain(kvk, chain.with_ends(left)) if left else DeleteChain(kvk, chain.intermediary_kvk)


def _remove_intermediary(view: View, actor: Means, op: RemoveIntermediary, today: dt.date) -> list[Effect]:
    if view.chain(op.kvk, op.intermediary_kvk) is None:
        raise Missing("not-found", f"no chain authorisations to intermediary {op.intermediary_kvk}")
    return [DeleteChain(op.kvk, op.intermediary_kvk)]


_HANDLERS = {
    RequestMeans: _request_means, ChangeRole: _change_role, ChangeLevel: _change_level,
    ChangeType: _change_type, ChangePhone: _change_phone, ChangeEmail: _change_email,
    ResendInvitation: _resend_invitation, Terminate: _terminate, Grant: _grant, SetEndDate: _set_end_date,
    Revoke: _revoke, IssueChain: _issue_chain, SetChainEndDate: _set_chain_end_date, RevokeChain: _revoke_chain,
    RemoveIntermediary: _remove_intermediary,
}


# ------------------------------------------------------------------------- the supplier, the holder, time
def first_admin_second_factor(level: Level, factor: SecondFactorType | None,
                              phone: str | None) -> SecondFactorType | None:
    """R19: a registered admin always has a second factor. The supplier's registration may name none (the CLI's
    `sandbox init` does not), so a level that needs one gets sms when a phone is given, else otp."""
    if needs_second_factor(level) and factor is None:
        return SecondFactorType.SMS if phone else SecondFactorType.OTP
    return factor


def check_first_admin(email: str, existing: Means | None, level: Level, factor: SecondFactorType | None,
                      phone: str | None) -> None:
    """R16: the supplier registers an organisation with one beheerder, the means `email` already holds (R15) or
    else a new one at `level`. An existing means must be active (R1), at least EH2+ counting a pending change so
    a pending downgrade does not slip past (R2), and not a tax means (R13); a new one must be at least EH2+ (R2)
    with its second factor (R19, after `first_admin_second_factor`). The store calls this, so the supplier's
    checks are the rules' own."""
    if existing is not None:
        if not existing.active:
            raise Refusal("R1", f"{email} holds a means that is {existing.status.value}; "
                                "the first beheerder must be active")
        if not admin_level_ok(existing.effective_level):
            raise Refusal("R2", f"a beheerder needs level {ADMIN_MIN_LEVEL} or higher; "
                                f"{email} has {existing.effective_level} (pending or current)")
        if existing.type is MeansType.BELASTINGDIENST:
            raise Refusal("R13", "a belastingdienst means cannot be a beheerder")
        return
    if not admin_level_ok(level):
        raise Refusal("R2", f"a beheerder needs level {ADMIN_MIN_LEVEL} or higher, not {level}")
    _second_factor_ok(level, factor, phone)


def _existing(view: View, means_id: str) -> Means:
    """The means the supplier, the holder or time acts on (404 `not-found` when there is none)."""
    means = view.get_means(means_id)
    if means is None:
        raise Missing("not-found", f"means {means_id} does not exist")
    return means


def approve(view: View, means_id: str, today: dt.date) -> list[Effect]:
    """The supplier approves a request (R5) or processes a pending mutation (R6)."""
    means = _existing(view, means_id)
    if means.status is Status.WACHTEN_OP_GOEDKEURING:
        return [PutMeans(means.with_(status=Status.WACHTEN_OP_ACTIVATIE,
                                     activation_deadline=today + dt.timedelta(days=ACTIVATION_DAYS)))]
    pending = means.pending
    if pending is None:
        raise Refusal("R5", f"{means.email} has no request or change awaiting approval")
    if pending.kind is PendingKind.UNKNOWN:       # what it changes is not known: it only stops being pending
        return [PutMeans(means.with_(pending=None))]
    if pending.kind is PendingKind.LEVEL:
        assert pending.level is not None
        changes: dict[str, object] = {"level": pending.level, "pending": None}
        if pending.second_factor is not None:
            changes.update(second_factor=pending.second_factor, phone=pending.phone)
        return [PutMeans(means.with_(**changes))]
    assert pending.kvk is not None and pending.role is not None
    if view.org(pending.kvk) is None:
        return [PutMeans(means.with_(pending=None))]
    return [PutMeans(means.with_(pending=None)), PutMembership(pending.kvk, means.id, Membership(pending.role))]


def reject(view: View, means_id: str, today: dt.date) -> list[Effect]:
    """The supplier rejects: a rejected request disappears (R5); a rejected mutation is dropped."""
    means = _existing(view, means_id)
    if means.status is Status.WACHTEN_OP_GOEDKEURING:
        effects: list[Effect] = [DeleteMembership(kvk, means.id) for kvk in view.memberships_of(means.id)]
        return effects + [DeleteMeans(means.id)]
    if means.pending is None:
        raise Refusal("R5", f"{means.email} has no request or change awaiting approval")
    return [PutMeans(means.with_(pending=None))]


def activate(view: View, means_id: str, today: dt.date) -> list[Effect]:
    """The holder activates within 30 days of approval (R5)."""
    means = _existing(view, means_id)
    if means.status is not Status.WACHTEN_OP_ACTIVATIE:
        raise Refusal("R5", f"{means.email} is {means.status.value}; only a means awaiting activation can be activated")
    if means.activation_deadline is not None and today > means.activation_deadline:
        return [PutMeans(means.with_(status=Status.ACTIVATIE_VERLOPEN))]
    return [PutMeans(means.with_(status=Status.ACTIEF, activation_deadline=None))]


def expire_activation(view: View, means_id: str, today: dt.date) -> list[Effect]:
    """The 30 days pass without activation (R5)."""
    means = _existing(view, means_id)
    if means.status is not Status.WACHTEN_OP_ACTIVATIE:
        raise Refusal("R5", f"{means.email} is {means.status.value}, not awaiting activation")
    return [PutMeans(means.with_(status=Status.ACTIVATIE_VERLOPEN))]


#: The calendar's acts, in the order `pass_time` takes them, as the events name them.
TIME_EVENTS = ("activation_expired", "authorisation_expired", "chain_expired", "membership_terminated")


def pass_time(view: View, today: dt.date, due: Due, apply: Callable[[str, list[Effect]], object]) -> None:
    """What the calendar does by `today`, the backend's one account of it: activation deadlines pass (R5),
    authorisations and chain authorisations end on their end date (R9, R18), scheduled terminations take effect
    (R14). `apply(event, effects)` writes each step before the next is judged: of two members ending on one day,
    the second ends the organisation."""
    lapsed: list[Effect] = []
    for means_id in due.activations:
        means = view.get_means(means_id)
        if means is not None and means.status is Status.WACHTEN_OP_ACTIVATIE and \
                means.activation_deadline is not None and today > means.activation_deadline:
            lapsed.append(PutMeans(means.with_(status=Status.ACTIVATIE_VERLOPEN)))
    ended: list[Effect] = [DeleteAuthorisation(kvk, mid, uuid) for kvk, mid, uuid, end in due.authorisations
                           if end <= today]
    ended_chains: dict[tuple[str, str], list[str]] = {}
    for kvk, ikvk, uuid, end in due.chains:
        if end <= today:
            ended_chains.setdefault((kvk, ikvk), []).append(uuid)
    chains = [_chain_without(kvk, chain, uuids) for (kvk, ikvk), uuids in sorted(ended_chains.items())
              if (chain := view.chain(kvk, ikvk)) is not None]
    for event, effects in zip(TIME_EVENTS, (lapsed, ended, chains)):
        if effects:
            apply(event, effects)
    ending = sorted({(kvk, means_id) for kvk, means_id, day in due.terminations if day <= today})
    if ending:
        apply(TIME_EVENTS[3], scheduled_terminations(view, ending))


def scheduled_terminations(view: View, ending: Sequence[tuple[str, str]]) -> list[Effect]:
    """Terminations scheduled for a date (R14) take effect together: each membership goes with its
    authorisations; a means goes when all its memberships end, an organisation when all its members do (two
    members ending on one day end the organisation, as one after the other would)."""
    effects: list[Effect] = [DeleteMembership(kvk, means_id) for kvk, means_id in ending]
    per_means = Counter(means_id for _, means_id in ending)
    per_org = Counter(kvk for kvk, _ in ending)
    effects += [DeleteMeans(m) for m, n in sorted(per_means.items()) if len(view.memberships_of(m)) == n]
    effects += [DeleteOrganisation(k) for k, n in sorted(per_org.items()) if view.member_count(k) == n]
    return effects


def scheduled_termination(view: View, kvk: str, means_id: str) -> list[Effect]:
    """One termination scheduled for a date takes effect (R14; see `scheduled_terminations`)."""
    return scheduled_terminations(view, [(kvk, means_id)])
