"""Who may do what: the backend's ACTUAL access, one row per (organisation, person, service).

An audit asks what is in force, so the rows come from the backend's state (a `World`), not from the config;
the config only says, per row, whether it declares that access. A row is

- a person's authorisation for a service (with the service's minimum level, the end date and the days left);
- a person who holds no authorisation at all (service columns empty): a beheerder without authorisations
  can still grant anything, so nobody with a means is left out of the overview;
- a chain authorisation (R18): the intermediary organisation (by KvK) in the place of the person.

Rows are sorted by organisation KvK, then people before intermediaries, then person (e-mail or KvK), then
service key (the row without a service first). `access_report` is a pure function of its arguments.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Sequence

from reconciler.config.models import ROLLING, Until
from reconciler.domain.catalogue import Service
from reconciler.domain.state import Means, OrgState, Status, World
from reconciler.plan.desired import DesiredOrg

#: End dates within this many days are "soon" (the html report colours them).
SOON_DAYS = 60

DECLARED = "declared"
NOT_IN_CONFIG = "not in config"
UNMANAGED = "unmanaged"                 # policy.unmanaged: deliberately left out of the config

INTERMEDIARY = "intermediary"           # the role column of a chain authorisation's row

STATUS_LABELS: dict[Status, str] = {
    Status.ACTIEF: "actief",
    Status.WACHTEN_OP_GOEDKEURING: "awaiting approval",
    Status.WACHTEN_OP_ACTIVATIE: "awaiting activation",
    Status.ACTIVATIE_VERLOPEN: "lapsed",
}

UNKNOWN_SERVICE = "(unknown service)"


@dataclass(frozen=True, slots=True)
class AccessRow:
    """One line of the overview; text columns are plain strings ("" when not applicable)."""

    kvk: str
    organisation: str
    person: str                          # the e-mail address, or the intermediary's KvK number
    person_name: str
    role: str                            # beheerder | gebruiker | intermediary
    level: str                           # the means' level ("" for an intermediary)
    means_type: str                      # regulier | belastingdienst ("" for an intermediary)
    status: str                          # actief | awaiting approval | awaiting activation | lapsed ("" for chains)
    service_key: str                     # the catalogue key, the UUID of an unknown service, "" for no service
    service_name: str
    provider: str
    service_level: str                   # the service's minimum level (R8)
    end_date: dt.date | None
    days_left: int | None
    means_ends: dt.date | None           # a scheduled termination of the means in this organisation (R14)
    config: str                          # declared | not in config | unmanaged
    ends_soon: bool = False              # the end date (or the means' termination) is within SOON_DAYS days

    @property
    def is_chain(self) -> bool:
        return self.role == INTERMEDIARY

    @property
    def has_service(self) -> bool:
        return self.service_key != ""

    @property
    def undeclared(self) -> bool:
        return self.config == NOT_IN_CONFIG


@dataclass(frozen=True)
class OrgHeading:
    kvk: str
    name: str


@dataclass
class AccessReport:
    today: dt.date
    organisations: list[OrgHeading]                          # sorted by KvK
    rows: list[AccessRow]                                    # sorted (organisation, person, service)
    unreadable: list[str] = field(default_factory=list)     # config KvKs the backend did not give us
    backend: str = ""

    def by_org(self) -> dict[str, list[AccessRow]]:
        """The rows per organisation KvK, in order."""
        grouped: dict[str, list[AccessRow]] = {}
        for row in self.rows:
            grouped.setdefault(row.kvk, []).append(row)
        return grouped


def _in_force(until: Until, today: dt.date) -> bool:
    """A declared end date that still wants the access to exist (a date today or earlier means "must not")."""
    return until == ROLLING or (isinstance(until, dt.date) and until > today)


def _declared_services(desired: DesiredOrg | None, email_key: str, today: dt.date) -> set[str] | None:
    """The service UUIDs the config gives this person, or None when the config does not declare the person."""
    if desired is None or email_key not in desired.users:
        return None
    return {uuid for uuid, auth in desired.users[email_key].authorisations.items() if _in_force(auth.until, today)}


def _service_columns(uuid: str, services: dict[str, Service]) -> tuple[str, str, str, str]:
    service = services.get(uuid.lower())
    if service is None:
        return uuid, UNKNOWN_SERVICE, "", ""
    return service.key, service.name, service.provider, service.level.value


def _soon(today: dt.date, *dates: dt.date | None) -> bool:
    return any(d is not None and (d - today).days <= SOON_DAYS for d in dates)


def _person_rows(kvk: str, state: OrgState, means: Means, desired: DesiredOrg | None,
                 services: dict[str, Service], today: dt.date) -> list[AccessRow]:
    membership = state.members[means.id]
    declared = _declared_services(desired, means.key, today)
    unmanaged = desired is not None and means.key in desired.policy.unmanaged_keys

    def row(uuid: str | None, end: dt.date | None) -> AccessRow:
        if unmanaged:
            config = UNMANAGED
        elif declared is None or (uuid is not None and uuid.lower() not in declared):
            config = NOT_IN_CONFIG
        else:
            config = DECLARED
        key, name, provider, level = _service_columns(uuid, services) if uuid is not None else ("", "", "", "")
        return AccessRow(kvk=kvk, organisation=state.info.name, person=means.email, person_name=means.name,
                         role=membership.role.value, level=means.level.value, means_type=means.type.value,
                         status=STATUS_LABELS.get(means.status, str(means.status.value)), service_key=key,
                         service_name=name, provider=provider, service_level=level, end_date=end,
                         days_left=(end - today).days if end is not None else None,
                         means_ends=membership.terminates_on, config=config,
                         ends_soon=_soon(today, end, membership.terminates_on))

    held = state.authorisations.get(means.id, {})
    if not held:
        return [row(None, None)]
    return [row(uuid, end) for uuid, end in held.items()]


def _chain_rows(kvk: str, state: OrgState, desired: DesiredOrg | None, services: dict[str, Service],
                today: dt.date) -> list[AccessRow]:
    rows = []
    for ikvk, chain in state.chains.items():
        wanted = desired.chains.get(ikvk) if desired is not None else None
        declared = {u for u, until in wanted.until.items() if _in_force(until, today)} if wanted is not None \
            else set()
        name = chain.name or (wanted.name if wanted is not None and wanted.name else "")
        for uuid, end in chain.ends.items():
            key, sname, provider, level = _service_columns(uuid, services)
            rows.append(AccessRow(kvk=kvk, organisation=state.info.name, person=ikvk, person_name=name,
                                  role=INTERMEDIARY, level="", means_type="", status="", service_key=key,
                                  service_name=sname, provider=provider, service_level=level,
                                  end_date=end, days_left=(end - today).days, means_ends=None,
                                  config=DECLARED if uuid.lower() in declared else NOT_IN_CONFIG,
                                  ends_soon=_soon(today, end)))
    return rows


def sort_key(row: AccessRow) -> tuple[str, bool, str, str, str]:
    return (row.kvk, row.is_chain, row.person.lower(), row.service_key, row.service_name)


def access_rows(world: World, desired: Sequence[DesiredOrg], today: dt.date) -> list[AccessRow]:
    """Every organisation of `world`: its people's and intermediaries' access, compared with `desired`."""
    by_kvk = {d.kvk: d for d in desired}
    services = {s.uuid.lower(): s for s in world.catalogue}
    rows: list[AccessRow] = []
    for kvk, state in world.orgs.items():
        wanted = by_kvk.get(kvk)
        for means_id in state.members:
            means = world.means.get(means_id)
            if means is not None:
                rows.extend(_person_rows(kvk, state, means, wanted, services, today))
        rows.extend(_chain_rows(kvk, state, wanted, services, today))
    return sorted(rows, key=sort_key)


def access_report(world: World, desired: Sequence[DesiredOrg], today: dt.date, *,
                  unreadable: Sequence[str] = (), backend: str = "") -> AccessReport:
    """The overview of `world` as of `today`; `unreadable` are config organisations the backend did not give."""
    orgs = [OrgHeading(kvk, world.orgs[kvk].info.name) for kvk in sorted(world.orgs)]
    return AccessReport(today, orgs, access_rows(world, desired, today), sorted(unreadable), backend)
