"""The beheer backend's state as plain objects: means, memberships, authorisations, chain authorisations.

The same objects describe what the sandbox stores and what the planner simulates; `World` is the
in-memory implementation of the read view the rules need (`reconciler.domain.rules.View`) and of the
primitive writes (`Effect`s) the rules produce.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Iterable, Iterator, Sequence

from reconciler.domain.means import ByEmail, MeansType, Role, SecondFactorType, Subscription
from reconciler.domain.catalogue import Catalogue
from reconciler.domain.levels import Level


class Status(str, Enum):
    """Means statuses (manual 3.5)."""

    WACHTEN_OP_GOEDKEURING = "wachten_op_goedkeuring"
    WACHTEN_OP_ACTIVATIE = "wachten_op_activatie"
    ACTIEF = "actief"
    ACTIVATIE_VERLOPEN = "activatie_verlopen"


class PendingKind(str, Enum):
    """Mutations the supplier processes before they take effect (R6: one at a time)."""

    LEVEL = "level"
    LINK = "link"
    #: A mutation the Beheermodule shows as in progress without saying which: the users download's status
    #: "Mutatie in behandeling" (manual 3.2). Only the downloads' reader makes it; the API always says which.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Pending:
    kind: PendingKind
    level: Level | None = None          # LEVEL: the new level
    kvk: str | None = None              # LINK: the organisation to link to
    role: Role | None = None            # LINK: the role there
    subscription: Subscription | None = None
    second_factor: SecondFactorType | None = None   # LEVEL from EH2: the factor chosen with the upgrade (R19)
    phone: str | None = None

    @property
    def change(self) -> str:
        """What is pending, for a sentence: "level change", "link change", or "change in progress"."""
        return "change in progress" if self.kind is PendingKind.UNKNOWN else f"{self.kind.value} change"


@dataclass(frozen=True, slots=True)
class Means(ByEmail):
    """One person's eHerkenning means (global: it may be linked to several organisations, R15)."""

    id: str
    email: str
    name: str
    level: Level
    type: MeansType = MeansType.REGULIER
    second_factor: SecondFactorType | None = None
    phone: str | None = None
    subscription: Subscription = Subscription.ONE_YEAR
    status: Status = Status.WACHTEN_OP_GOEDKEURING
    activation_deadline: dt.date | None = None
    contract_start: dt.date | None = None
    pending: Pending | None = None

    @property
    def active(self) -> bool:
        return self.status is Status.ACTIEF

    @property
    def effective_level(self) -> Level:
        """The lower of the level and a pending level change: what the means may be relied on for (R2, R8)."""
        if self.pending is not None and self.pending.kind is PendingKind.LEVEL and self.pending.level is not None:
            return min(self.level, self.pending.level)
        return self.level

    def with_(self, **changes: object) -> "Means":
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Membership:
    """A means' place in one organisation: its role there and a scheduled termination, if any."""

    role: Role
    terminates_on: dt.date | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.BEHEERDER


@dataclass(frozen=True, slots=True)
class Chain:
    """The chain authorisations issued to one intermediary (R18): one per service, each with its own end date
    (adding a service never moves the others' dates)."""

    intermediary_kvk: str
    name: str | None
    ends: dict[str, dt.date]            # service UUID -> its end date

    @property
    def services(self) -> frozenset[str]:
        return frozenset(self.ends)

    def with_ends(self, ends: dict[str, dt.date]) -> "Chain":
        return Chain(self.intermediary_kvk, self.name, ends)

    @classmethod
    def issued(cls, intermediary_kvk: str, name: str | None, services: Iterable[str], end_date: dt.date) -> "Chain":
        """Chain authorisations issued together: the services, one end date."""
        return cls(intermediary_kvk, name, {uuid: end_date for uuid in services})


@dataclass(frozen=True, slots=True)
class OrgInfo:
    kvk: str
    name: str
    branch_number: str | None = None


# ---------------------------------------------------------------------------------------------- effects
@dataclass(frozen=True, slots=True)
class PutMeans:
    means: Means


@dataclass(frozen=True, slots=True)
class DeleteMeans:
    means_id: str


@dataclass(frozen=True, slots=True)
class _InOrg:
    kvk: str


@dataclass(frozen=True, slots=True)
class _OfMember(_InOrg):
    """About one means' membership of organisation `kvk`."""

    means_id: str


@dataclass(frozen=True, slots=True)
class _OfPair(_OfMember):
    """About one authorisation: a means and a service in organisation `kvk`."""

    service: str                        # UUID


@dataclass(frozen=True, slots=True)
class PutMembership(_OfMember):
    membership: Membership


@dataclass(frozen=True, slots=True)
class DeleteMembership(_OfMember):
    pass


@dataclass(frozen=True, slots=True)
class PutAuthorisation(_OfPair):
    end_date: dt.date


@dataclass(frozen=True, slots=True)
class DeleteAuthorisation(_OfPair):
    pass


@dataclass(frozen=True, slots=True)
class PutChain(_InOrg):
    chain: Chain


@dataclass(frozen=True, slots=True)
class DeleteChain(_InOrg):
    intermediary_kvk: str


@dataclass(frozen=True, slots=True)
class DeleteOrganisation(_InOrg):
    """R14 (3.4.1): terminating the last means ends eHerkenning for the whole organisation."""


Effect = (PutMeans | DeleteMeans | PutMembership | DeleteMembership | PutAuthorisation | DeleteAuthorisation
          | PutChain | DeleteChain | DeleteOrganisation)


@dataclass(frozen=True)
class Due:
    """What may have come due by a day, as the caller finds it cheaply (the store with indexed queries,
    `World.due` by scanning), each with the date that decides; `rules.pass_time` judges them."""

    activations: Sequence[str] = ()                                  # means ids awaiting activation
    authorisations: Sequence[tuple[str, str, str, dt.date]] = ()     # (kvk, means id, service UUID, end date)
    chains: Sequence[tuple[str, str, str, dt.date]] = ()             # (kvk, intermediary KvK, service, end date)
    terminations: Sequence[tuple[str, str, dt.date]] = ()            # (kvk, means id, termination date)



# ------------------------------------------------------------------------------------------------ world
@dataclass
class OrgState:
    info: OrgInfo
    members: dict[str, Membership] = field(default_factory=dict)
    authorisations: dict[str, dict[str, dt.date]] = field(default_factory=dict)   # means id -> uuid -> end
    chains: dict[str, Chain] = field(default_factory=dict)
    revision: int = 0


@dataclass
class World:
    """Everything the backend knows, in memory: the planner's simulator and a reference for the sandbox."""

    catalogue: Catalogue
    means: dict[str, Means] = field(default_factory=dict)
    orgs: dict[str, OrgState] = field(default_factory=dict)
    #: means id -> the KvK numbers the backend says it is linked to, also organisations not read (not in the
    #: config): what a termination leaves in place is said from it (R14 terminates per organisation)
    linked: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)

    _by_email: dict[str, str] | None = field(default=None, repr=False, compare=False)

    def copy(self) -> "World":
        """An independent copy to simulate on (means are immutable, so only the containers are copied)."""
        orgs = {kvk: OrgState(s.info, dict(s.members), {m: dict(a) for m, a in s.authorisations.items()},
                              dict(s.chains), s.revision) for kvk, s in self.orgs.items()}
        return World(self.catalogue, dict(self.means), orgs, dict(self.linked))

    # --- the View protocol (reconciler.domain.rules.View)
    def org(self, kvk: str) -> OrgInfo | None:
        state = self.orgs.get(kvk)
        return state.info if state else None

    def get_means(self, means_id: str) -> Means | None:
        return self.means.get(means_id)

    def means_by_email(self, email: str) -> Means | None:
        index = self._by_email          # asked several times per person by the planner: kept, not rebuilt
        if index is None or len(index) != len(self.means):
            index = self._by_email = {m.key: m.id for m in self.means.values()}
        means_id = index.get(email.lower())
        return None if means_id is None else self.means.get(means_id)

    def membership(self, kvk: str, means_id: str) -> Membership | None:
        state = self.orgs.get(kvk)
        return state.members.get(means_id) if state else None

    def memberships_of(self, means_id: str) -> dict[str, Membership]:
        return {kvk: s.members[means_id] for kvk, s in self.orgs.items() if means_id in s.members}

    def members(self, kvk: str) -> dict[str, Membership]:
        state = self.orgs.get(kvk)
        return dict(state.members) if state else {}

    def member_count(self, kvk: str) -> int:
        state = self.orgs.get(kvk)
        return len(state.members) if state else 0

    def active_admins(self, kvk: str) -> Iterator[str]:
        """Lazily, in membership order: R1 asks it per request and most often needs only the first."""
        state = self.orgs.get(kvk)
        if state is None:
            return
        for mid, ms in state.members.items():
            if ms.is_admin and self.means[mid].active:
                yield mid

    def tax_means(self, kvk: str) -> list[str]:
        state = self.orgs.get(kvk)
        if state is None:
            return []
        members = [mid for mid in state.members if self.means[mid].type is MeansType.BELASTINGDIENST]
        linking = [m.id for m in self.means.values() if m.type is MeansType.BELASTINGDIENST and m.pending is not None
                   and m.pending.kind is PendingKind.LINK and m.pending.kvk == kvk]
        return members + linking

    def authorisations_of(self, kvk: str, means_id: str) -> dict[str, dt.date]:
        state = self.orgs.get(kvk)
        if state is None:
            return {}
        return dict(state.authorisations.get(means_id, {}))

    def authorisation(self, kvk: str, means_id: str, service: str) -> dt.date | None:
        state = self.orgs.get(kvk)
        return state.authorisations.get(means_id, {}).get(service) if state else None

    def chain(self, kvk: str, intermediary_kvk: str) -> Chain | None:
        state = self.orgs.get(kvk)
        return state.chains.get(intermediary_kvk) if state else None

    # --- writes
    def due(self) -> Due:
        """Everything that has a date the calendar acts on (for `rules.pass_time`)."""
        return Due(activations=sorted(m.id for m in self.means.values() if m.status is Status.WACHTEN_OP_ACTIVATIE),
                   authorisations=[(kvk, mid, uuid, end) for kvk, state in sorted(self.orgs.items())
                                   for mid, held in sorted(state.authorisations.items())
                                   for uuid, end in sorted(held.items())],
                   chains=[(kvk, ikvk, uuid, end) for kvk, state in sorted(self.orgs.items())
                           for ikvk, chain in sorted(state.chains.items()) for uuid, end in sorted(chain.ends.items())],
                   terminations=[(kvk, mid, ms.terminates_on) for kvk, state in sorted(self.orgs.items())
                                 for mid, ms in sorted(state.members.items()) if ms.terminates_on is not None])

    def apply(self, effects: list[Effect]) -> None:
        touched: set[str] = set()
        for effect in effects:
            match effect:
                case PutMeans(means=m):
                    old = self.means.get(m.id)
                    self.means[m.id] = m
                    if self._by_email is not None:
                        if old is not None:
                            self._by_email.pop(old.key, None)
                        self._by_email[m.key] = m.id
                case DeleteMeans(means_id=mid):
                    gone = self.means.pop(mid, None)
                    if gone is not None and self._by_email is not None:
                        self._by_email.pop(gone.key, None)
                case PutMembership(kvk=kvk, means_id=mid, membership=ms):
                    self.orgs[kvk].members[mid] = ms
                    touched.add(kvk)
                case DeleteMembership(kvk=kvk, means_id=mid):
                    state = self.orgs[kvk]
                    state.members.pop(mid, None)
                    state.authorisations.pop(mid, None)
                    touched.add(kvk)
                case PutAuthorisation(kvk=kvk, means_id=mid, service=svc, end_date=end):
                    self.orgs[kvk].authorisations.setdefault(mid, {})[svc] = end
                    touched.add(kvk)
                case DeleteAuthorisation(kvk=kvk, means_id=mid, service=svc):
                    held = self.orgs[kvk].authorisations.get(mid)
                    if held is not None:
                        held.pop(svc, None)
                        if not held:
                            del self.orgs[kvk].authorisations[mid]
                    touched.add(kvk)
                case PutChain(kvk=kvk, chain=chain):
                    self.orgs[kvk].chains[chain.intermediary_kvk] = chain
                    touched.add(kvk)
                case DeleteChain(kvk=kvk, intermediary_kvk=ikvk):
                    self.orgs[kvk].chains.pop(ikvk, None)
                    touched.add(kvk)
                case DeleteOrganisation(kvk=kvk):
                    self.orgs.pop(kvk, None)
                    touched.discard(kvk)
        for kvk in touched:
            if kvk in self.orgs:
                self.orgs[kvk].revision += 1
