"""Embedded mode's first use: an organisation the sandbox does not know yet is created from its config.

INTERFACE.md: the config's first declared `beheerder` becomes the organisation's one active admin and the
acting admin (the holder of the API token) for it. On later runs the acting admin is that same person if
still an active admin there, else the next declared beheerder who is, else the first active admin the
sandbox has; then `reason` says why (the plan's header shows it, so a reviewer knows who acts). The first
admin gets the config's subscription for that person. Tokens are minted per run and never written anywhere.
Idempotent: when parallel commands bootstrap the same organisation at once, the one that loses the race finds
it created and acts for it like a later run, instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from reconciler.backend.errors import BackendError
from reconciler.backend.sandbox.controls import SandboxControls
from reconciler.backend.types import Secret
from reconciler.config.loader import LoadedOrg
from reconciler.config.models import Role


#: The sandbox's problem code when `POST /sandbox/organisations` names a KvK it already has.
ALREADY_EXISTS = "already-exists"


class BootstrapError(Exception):
    """An organisation cannot be bootstrapped or has no admin to act as."""


@dataclass(frozen=True)
class ActingAdmin:
    kvk: str
    email: str
    means_id: str
    token: Secret
    created: bool                          # the organisation was bootstrapped just now
    reason: str = ""                       # why not the one preferred (the config's first beheerder), if not

    def __repr__(self) -> str:
        return f"ActingAdmin(kvk={self.kvk!r}, email={self.email!r}, created={self.created})"

    def describe(self) -> str:
        if self.created:
            return (f"organisation {self.kvk} was new to the embedded sandbox: created with {self.email} as its "
                    "one active beheerder, who acts for it")
        return f"organisation {self.kvk}: acting as {self.email}"


async def acting_admins(controls: SandboxControls, orgs: Sequence[LoadedOrg]) -> dict[str, ActingAdmin]:
    """The acting admin (with a fresh token) of every organisation, bootstrapping unknown ones."""
    for org in orgs:  # services of the configs' own catalogues, so grants can name them
        extra = [s for s in org.catalogue if s.key not in _bundled_keys()]
        await controls.add_services(extra)
    result: dict[str, ActingAdmin] = {}
    for org in orgs:
        result[org.config.organisation.kvk] = await _acting_admin(controls, org)
    return result


def _bundled_keys() -> frozenset[str]:
    from reconciler.domain.catalogue import bundled_catalogue

    return frozenset(s.key for s in bundled_catalogue())


async def _acting_admin(controls: SandboxControls, org: LoadedOrg) -> ActingAdmin:
    cfg = org.config
    kvk = cfg.organisation.kvk
    declared = [u for u in cfg.users if u.role is Role.BEHEERDER]
    if declared:
        acting = await _preferred_admin(controls, kvk, declared[0].email)
        if acting is not None:
            return acting
    members = await controls.means(kvk=kvk)
    if not members:
        if not declared:
            raise BootstrapError(f"organisation {kvk} is not in the sandbox and its config declares no beheerder "
                                 "to create it with (R1)")
        first = declared[0]
        factor = first.second_factor
        try:
            created = await controls.create_organisation(
                kvk, cfg.organisation.name, admin_email=first.email, admin_name=first.name,
                level=first.level.value, second_factor=factor.type.value if factor else None,
                phone=factor.phone if factor else None, branch_number=cfg.organisation.branch_number,
                subscription=first.subscription.value)    # as declared: else the first plan warns it differs
        except BackendError as exc:
            if exc.code != ALREADY_EXISTS:
                raise
            # Another command on the same sandbox created it between our read and our create (first use
            # by parallel jobs): the organisation exists now, which is all the bootstrap wanted; act for
            # it as on any later run, the declared beheerder first.
            members = None
        else:
            return ActingAdmin(kvk, first.email, created.means_id, created.token, created=True)
    return await _existing_admin(controls, kvk, [u.email for u in declared], members)


async def acting_admins_of(controls: SandboxControls, preferred: Mapping[str, str | None]) -> dict[str, ActingAdmin]:
    """The acting admin of organisations the sandbox already knows (a saved plan names its acting admins:
    the same person acts again while still an active beheerder there)."""
    result: dict[str, ActingAdmin] = {}
    for kvk, email in preferred.items():
        acting = await _preferred_admin(controls, kvk, email) if email else None
        result[kvk] = acting or await _existing_admin(controls, kvk, [email] if email else [], None,
                                                      "the plan's acting admin")
    return result


async def _preferred_admin(controls: SandboxControls, kvk: str, email: str) -> ActingAdmin | None:
    """The preferred person (`email`) as the acting admin when an active beheerder in `kvk`, else None: what
    `_existing_admin` picks first, found with one query for that e-mail instead of listing every means of the
    organisation (10,000 means were most of opening a session)."""
    found = [m for m in await controls.means(kvk=kvk, email=email)
             if m.roles.get(kvk) == Role.BEHEERDER.value and m.status == "actief"]
    if not found:
        return None
    chosen = found[0]
    return ActingAdmin(kvk, chosen.email, chosen.id, await controls.create_token(chosen.id), created=False)


async def _existing_admin(controls: SandboxControls, kvk: str, preferred: Sequence[str],
                          members: Sequence[Any] | None,
                          first_is: str = "the first beheerder in the config") -> ActingAdmin:
    """The first of `preferred` (e-mails) who is an active beheerder in `kvk`, else the backend's first."""
    if members is None:
        members = await controls.means(kvk=kvk)
    admins = [m for m in members if m.roles.get(kvk) == Role.BEHEERDER.value and m.status == "actief"]
    if not admins:
        raise BootstrapError(f"organisation {kvk} has no active beheerder in the sandbox to act as (R1)")
    by_email = {m.email.lower(): m for m in admins}
    chosen = next((by_email[e.lower()] for e in preferred if e.lower() in by_email), admins[0])
    return ActingAdmin(kvk, chosen.email, chosen.id, await controls.create_token(chosen.id), created=False,
                       reason=_why_not_first(preferred, chosen.email, first_is))


def _why_not_first(preferred: Sequence[str], chosen: str, first_is: str) -> str:
    """Why `chosen` acts rather than the first preferred one ("" when it is that one, or none was preferred):
    the acting admin decides what a plan can do (R3, R4), so a change of who acts is said, not silent."""
    if not preferred or preferred[0].lower() == chosen.lower():
        return ""
    reason = f"{first_is}, {preferred[0]}, is not an active beheerder in the backend"
    if len(preferred) > 1 and chosen.lower() not in {e.lower() for e in preferred}:
        reason += ", nor is any other beheerder in the config"
    return reason
