"""The desired state of one organisation, resolved from its config: groups expanded, services resolved to
catalogue entries, end dates combined by the one rule of `config.effective` (groups: the latest; the person's
own entry decides; the person's `until` caps them all)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from reconciler.config.effective import effective_authorisations
from reconciler.config.loader import LoadedOrg
from reconciler.config.models import Policy, Until, User
from reconciler.domain.catalogue import Service


@dataclass(frozen=True, slots=True)
class DesiredAuthorisation:
    service: Service
    until: Until
    note: str = ""                       # why the date is not simply the entry's (an override, a cap)


@dataclass
class DesiredUser:
    user: User
    authorisations: dict[str, DesiredAuthorisation]          # service UUID -> what is wanted

    @property
    def until(self) -> dt.date | None:
        """The person's end: the means ends on this day (R14, terminate on a date)."""
        return self.user.until

    @property
    def key(self) -> str:
        return self.user.key


@dataclass(frozen=True)
class DesiredChain:
    """What the config says of one intermediary: its services, each with its own `until` (R18)."""

    kvk: str
    name: str | None
    services: dict[str, Service]                              # UUID -> service
    until: dict[str, Until]                                   # UUID -> until


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


def desired_org(org: LoadedOrg) -> DesiredOrg:
    """A valid organisation file as the planner needs it (unknown services were refused by validation)."""
    cfg = org.config
    out = DesiredOrg(kvk=cfg.organisation.kvk, name=cfg.organisation.name,
                     branch_number=cfg.organisation.branch_number, policy=cfg.policy, source=org.display)
    # What a person gets depends only on their groups, own entries and until, which most people share with
    # others (a group's members): resolved once per combination, not once per person (10,000 dicts of 10).
    resolved: dict[tuple[object, ...], dict[str, DesiredAuthorisation]] = {}
    for user in cfg.users:
        combination = (user.groups, user.authorisations, user.until)
        wanted = resolved.get(combination)
        if wanted is None:
            wanted = resolved[combination] = {}
            for key, eff in effective_authorisations(user, cfg.groups).items():
                service = org.catalogue[key]
                wanted[service.uuid] = DesiredAuthorisation(service, eff.until, eff.note())
        out.users[user.key] = DesiredUser(user, dict(wanted))
    for chain in cfg.chain_authorisations:
        kvk = chain.intermediary.kvk
        entry = out.chains.setdefault(kvk, DesiredChain(kvk, chain.intermediary.name, {}, {}))
        if entry.name is None and chain.intermediary.name is not None:
            entry = out.chains[kvk] = DesiredChain(kvk, chain.intermediary.name, entry.services, entry.until)
        for key in chain.services:
            service = org.catalogue[key]
            entry.services[service.uuid] = service
            entry.until[service.uuid] = chain.until
    return out
