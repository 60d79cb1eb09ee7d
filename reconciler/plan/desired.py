"""The desired state of one organisation, resolved from its config: groups expanded, services resolved to
catalogue entries, the same service from a group and directly merged to the later end date."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from reconciler.config.loader import LoadedOrg
from reconciler.config.models import ROLLING, Policy, Until, User
from reconciler.domain.catalogue import Service


@dataclass(frozen=True, slots=True)
class DesiredAuthorisation:
    service: Service
    until: Until


@dataclass
class DesiredUser:
    user: User
    authorisations: dict[str, DesiredAuthorisation]          # service UUID -> what is wanted

    @property
    def key(self) -> str:
        return self.user.key


@dataclass(frozen=True)
class DesiredChain:
    kvk: str
    name: str | None
    services: dict[str, Service]                              # UUID -> service
    until: Until


@dataclass
class DesiredOrg:
    kvk: str
    name: str
    branch_number: str | None
    policy: Policy
    users: dict[str, DesiredUser] = field(default_factory=dict)     # e-mail (lower) -> user, config order
    chains: dict[str, DesiredChain] = field(default_factory=dict)   # intermediary KvK -> chain
    source: str = ""

    def admin_emails(self) -> list[str]:
        return [u.user.email for u in self.users.values() if u.user.is_admin]


def later(a: Until, b: Until) -> Until:
    """The later of two end dates; `rolling` is later than any date."""
    if a == ROLLING or b == ROLLING:
        return ROLLING
    assert isinstance(a, dt.date) and isinstance(b, dt.date)
    return max(a, b)


def desired_org(org: LoadedOrg) -> DesiredOrg:
    """A valid organisation file as the planner needs it (unknown services were refused by validation)."""
    cfg = org.config
    out = DesiredOrg(kvk=cfg.organisation.kvk, name=cfg.organisation.name,
                     branch_number=cfg.organisation.branch_number, policy=cfg.policy, source=org.display)
    for user in cfg.users:
        wanted: dict[str, DesiredAuthorisation] = {}
        sources = [a for g in user.groups for a in cfg.groups[g].authorisations] + list(user.authorisations)
        for auth in sources:
            service = org.catalogue[auth.service]
            have = wanted.get(service.uuid)
            until = later(have.until, auth.until) if have else auth.until
            wanted[service.uuid] = DesiredAuthorisation(service, until)
        out.users[user.key] = DesiredUser(user, wanted)
    for chain in cfg.chain_authorisations:
        services = {org.catalogue[key].uuid: org.catalogue[key] for key in chain.services}
        out.chains[chain.intermediary.kvk] = DesiredChain(chain.intermediary.kvk, chain.intermediary.name, services,
                                                          chain.until)
    return out
