"""What an import found, source-neutral: the organisation, its people and chain authorisations, and the
notes a reader of the YAML needs (why something is left out, what is transient, what is a guess).

`render` turns it into YAML; `to_data` is the plain data that YAML must load as (render checks its own
output against it, so a quoting slip can never hand a beheerder a file that means something else).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from reconciler.config.models import MeansType, Role, SecondFactorType, Subscription
from reconciler.domain.catalogue import Service
from reconciler.domain.levels import Level


class ImportFailure(Exception):
    """The import cannot be made (unknown organisation, unreadable export, bad values); the message says
    what and where, for one `error: ...` line (or several, one per bad cell)."""


@dataclass
class ImportedAuthorisation:
    service: str                       # a catalogue key
    until: dt.date


@dataclass
class ImportedUser:
    email: str
    name: str
    role: Role
    level: Level
    type: MeansType = MeansType.REGULIER
    second_factor: SecondFactorType | None = None
    phone: str | None = None
    subscription: Subscription | None = None          # None: unknown, not written (the default 1y applies)
    authorisations: list[ImportedAuthorisation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)    # comment lines above the entry
    until: dt.date | None = None                       # a scheduled end of the means (R14)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.BEHEERDER

    def sort_key(self) -> tuple[int, str]:
        """Admins first, then by e-mail (case-insensitive): a stable order that diffs well between imports."""
        return (0 if self.is_admin else 1, self.email.lower())

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"email": self.email, "name": self.name, "role": self.role.value,
                                "level": self.level.value}
        if self.type is MeansType.BELASTINGDIENST:
            data["type"] = self.type.value
        if self.second_factor is not None:
            factor: dict[str, Any] = {"type": self.second_factor.value}
            if self.second_factor is SecondFactorType.SMS and self.phone:
                factor["phone"] = self.phone
            data["second_factor"] = factor
        if self.subscription is not None:
            data["subscription"] = self.subscription.value
        if self.until is not None:
            data["until"] = self.until.isoformat()
        if self.authorisations:
            data["authorisations"] = [{"service": a.service, "until": a.until.isoformat()}
                                      for a in sorted(self.authorisations, key=lambda a: a.service)]
        return data


@dataclass
class ImportedChain:
    intermediary_kvk: str
    intermediary_name: str | None
    services: list[str]                # catalogue keys
    until: dt.date
    notes: list[str] = field(default_factory=list)

    def to_data(self) -> dict[str, Any]:
        intermediary: dict[str, Any] = {"kvk": self.intermediary_kvk}
        if self.intermediary_name:
            intermediary["name"] = self.intermediary_name
        return {"intermediary": intermediary, "services": sorted(self.services), "until": self.until.isoformat()}


@dataclass
class LeftOut:
    """Something that exists but is deliberately not declared: the reason, and (when it can be written) the
    entry itself, rendered commented out so declaring it is one uncomment away."""

    notes: list[str]
    user: ImportedUser | None = None
    chain: ImportedChain | None = None


@dataclass
class ImportedOrg:
    kvk: str
    name: str
    branch_number: str | None = None
    header: list[str] = field(default_factory=list)          # the file's opening comment
    name_note: str | None = None                             # a comment after the organisation's name
    users: list[ImportedUser] = field(default_factory=list)
    users_left_out: list[LeftOut] = field(default_factory=list)
    chains: list[ImportedChain] = field(default_factory=list)
    chains_left_out: list[LeftOut] = field(default_factory=list)
    catalogue: list[Service] = field(default_factory=list)   # services for a catalogue file next to it
    catalogue_file: str | None = None                        # its name, relative to the organisation file
    warnings: list[str] = field(default_factory=list)        # for stderr: what the beheerder must look at

    def sorted_users(self) -> list[ImportedUser]:
        return sorted(self.users, key=ImportedUser.sort_key)

    def sorted_chains(self) -> list[ImportedChain]:
        return sorted(self.chains, key=lambda c: (c.intermediary_kvk, c.until))

    def to_data(self) -> dict[str, Any]:
        """The plain data the rendered YAML loads as (dates as ISO strings, as the config loader keeps them)."""
        organisation: dict[str, Any] = {"kvk": self.kvk, "name": self.name}
        if self.branch_number:
            organisation["branch_number"] = self.branch_number
        data: dict[str, Any] = {"version": 1, "organisation": organisation}
        if self.catalogue_file:
            data["catalogue"] = self.catalogue_file
        data["policy"] = {"prune": False}
        if self.users:
            data["users"] = [u.to_data() for u in self.sorted_users()]
        if self.chains:
            data["chain_authorisations"] = [c.to_data() for c in self.sorted_chains()]
        return data

    def summary(self) -> str:
        auths = sum(len(u.authorisations) for u in self.users)
        left = len(self.users_left_out) + len(self.chains_left_out)
        text = (f"{len(self.users)} users, {auths} authorisations, {len(self.chains)} chain authorisations")
        return text + (f"; {left} left out (see the comments)" if left else "")
