"""Typed models of an organisation file, built after the JSON schema has accepted the data."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass

from reconciler.domain.levels import Level
from reconciler.domain.means import ByEmail, MeansType, Role, SecondFactorType, Subscription

ROLLING: Literal["rolling"] = "rolling"
Until = dt.date | Literal["rolling"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class SecondFactor(_Model):
    type: SecondFactorType
    phone: str | None = None


@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class Authorisation:
    """A slotted dataclass, not a model: a large estate has hundreds of thousands of these, and a model costs
    ~500 bytes each against ~70 (a 30 MB file's authorisations took 260 MB as models)."""

    service: str
    until: Until


class User(_Model, ByEmail):
    email: str
    name: str
    role: Role
    level: Level
    type: MeansType = MeansType.REGULIER
    second_factor: SecondFactor | None = None
    subscription: Subscription = Subscription.ONE_YEAR
    groups: tuple[str, ...] = ()
    authorisations: tuple[Authorisation, ...] = ()
    until: dt.date | None = None          # the person's end (a contract's): caps every authorisation, ends the means

    @property
    def is_admin(self) -> bool:
        return self.role is Role.BEHEERDER


class Group(_Model):
    description: str | None = None
    authorisations: tuple[Authorisation, ...] = ()


class Intermediary(_Model):
    kvk: str
    name: str | None = None


class ChainAuthorisation(_Model):
    intermediary: Intermediary
    services: tuple[str, ...]
    until: Until


class Threshold(_Model):
    """A removal limit: a count, or a percentage of the existing objects (from 10 objects on)."""

    count: int | None = None
    percent: Decimal | None = None

    @classmethod
    def parse(cls, raw: int | str) -> "Threshold":
        if isinstance(raw, int):
            return cls(count=raw)
        return cls(percent=Decimal(raw.rstrip("%")))  # exact: 4.6% of 1,500 is 69, not 68.99...

    def limit(self, existing: int) -> int | None:
        """Most removals allowed among `existing` objects; None means no limit applies."""
        if self.count is not None:
            return self.count
        assert self.percent is not None
        if existing < 10:
            return None
        return math.floor(existing * self.percent / 100)

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent}%"


class Policy(_Model):
    prune: bool = False
    max_removals: int | str = "25%"
    renew_before: str = "60d"
    idle_after: str = "90d"
    unmanaged: tuple[str, ...] = ()

    @property
    def threshold(self) -> Threshold:
        return Threshold.parse(self.max_removals)

    @property
    def renew_before_days(self) -> int:
        return int(self.renew_before.rstrip("d"))

    @property
    def idle_after_days(self) -> int:
        """Days an active means may go without authorisations before drift lists it as a saving."""
        return int(self.idle_after.rstrip("d"))

    @property
    def unmanaged_keys(self) -> frozenset[str]:
        return frozenset(e.lower() for e in self.unmanaged)


class Organisation(_Model):
    kvk: str
    name: str
    branch_number: str | None = None


class OrgConfig(_Model):
    """One organisation file."""

    version: Literal[1]
    organisation: Organisation
    catalogue: str | None = None
    policy: Policy = Field(default_factory=Policy)
    groups: dict[str, Group] = Field(default_factory=dict)
    users: tuple[User, ...] = ()
    chain_authorisations: tuple[ChainAuthorisation, ...] = ()
