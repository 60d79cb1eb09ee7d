"""Typed views of what the beheer API returns (docs/beheer-api.md), converted to the domain's enums and dates.

The client parses every response into these frozen objects so that the planner never handles raw JSON,
and a backend that sends something off-contract fails loudly in one place (`parse_*` raise `ValueError`,
which the client turns into `UnexpectedResponse`). `to_*` methods give the domain objects of
`reconciler.domain.state`.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass, field
from enum import Enum
from collections.abc import Mapping    # not typing.Mapping: an isinstance through it costs 4x
from typing import Any, Generic, TypeVar

from reconciler.config.models import MeansType, Role, SecondFactorType, Subscription
from reconciler.domain.catalogue import Service
from reconciler.domain.levels import Level
from reconciler.domain.state import Chain, Means, Membership, OrgInfo, Pending, PendingKind, Status

T = TypeVar("T")


# ------------------------------------------------------------------------------------------------- secret
class Secret:
    """A credential that never shows itself: repr, str and format give `***`; `reveal()` is explicit.

    Wrapping the API token as early as possible (where it is read from the environment) means a stray
    log line, exception message or debugger repr cannot leak it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: "str | Secret") -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError("a Secret wraps a string")
        self._value = value

    def reveal(self) -> str:
        """The secret itself: call only where it must leave the process (the Authorization header)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __format__(self, spec: str) -> str:
        return "***"

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> Any:
        raise TypeError("a Secret cannot be pickled")


# ---------------------------------------------------------------------------------------------- helpers
def _str(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"{key!r} should be a string, got {type(value).__name__}")
    return value


def _path_id(data: Mapping[str, Any], key: str) -> str:
    """An identifier the reconciler will put in a URL path (a means id, an intermediary's KvK number): a string
    that names one segment. One that cannot (empty, `.`, `..`, with a `/`) is refused here, when the backend is
    read, rather than by the client halfway through an apply (an internal error after some steps were sent)."""
    value = _str(data, key)
    if not value or "/" in value or value in {".", ".."}:
        raise ValueError(f"{key!r} is {value!r}, which no URL path can name (empty, '.', '..' or with a '/')")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key!r} should be a string or null, got {type(value).__name__}")
    return value


def _date(data: Mapping[str, Any], key: str) -> dt.date:
    return dt.date.fromisoformat(_str(data, key))


def _opt_date(data: Mapping[str, Any], key: str) -> dt.date | None:
    text = _opt_str(data, key)
    return dt.date.fromisoformat(text) if text else None


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key!r} should be an integer, got {value!r}")
    return value


def _enum(cls: type[Enum], data: Mapping[str, Any], key: str) -> Any:
    raw = data[key]
    try:
        return cls._value2member_map_[raw]          # what `cls(raw)` finds first, without its call overhead
    except (KeyError, TypeError):
        pass
    try:
        return cls(raw)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in cls)  # type: ignore[attr-defined]
        raise ValueError(f"{key!r} is {raw!r}; expected one of {allowed}") from None


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if type(value) is dict:            # what JSON gives; `isinstance(x, typing.Mapping)` costs ~1 us per object
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} should be a JSON object, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------------------------- entities
@dataclass(frozen=True, slots=True)
class Me:
    """`GET /v1/me`: the acting admin the token belongs to (R3, R4 are judged against it)."""

    means_id: str
    email: str
    level: Level
    read_only: bool
    today: dt.date | None = None       # the backend's today (R5, R9); None from a backend that does not say

    @classmethod
    def parse(cls, data: Any) -> "Me":
        d = _mapping(data, "me")
        today = d.get("today")
        return cls(means_id=str(d["means_id"]), email=_str(d, "email"), level=_enum(Level, d, "level"),
                   read_only=bool(d.get("read_only", False)),
                   today=dt.date.fromisoformat(today) if isinstance(today, str) else None)


@dataclass(frozen=True, slots=True)
class RemoteOrganisation:
    """An organisation with the revision that `If-Match` guards."""

    kvk: str
    name: str
    branch_number: str | None
    revision: int

    @classmethod
    def parse(cls, data: Any, *, etag_revision: int | None = None) -> "RemoteOrganisation":
        d = _mapping(data, "organisation")
        revision = d.get("revision", etag_revision)
        if revision is None:
            raise ValueError("organisation has no 'revision' and the response no ETag")
        return cls(kvk=_str(d, "kvk"), name=_str(d, "name"), branch_number=_opt_str(d, "branch_number"),
                   revision=_int({"revision": revision}, "revision"))

    def to_info(self) -> OrgInfo:
        return OrgInfo(kvk=self.kvk, name=self.name, branch_number=self.branch_number)


def _parse_pending(value: Any) -> Pending | None:
    if value is None:
        return None
    d = _mapping(value, "pending")
    return Pending(kind=_enum(PendingKind, d, "kind"),
                   level=_enum(Level, d, "level") if d.get("level") is not None else None,
                   kvk=_opt_str(d, "kvk"),
                   role=_enum(Role, d, "role") if d.get("role") is not None else None,
                   subscription=_enum(Subscription, d, "subscription") if d.get("subscription") is not None
                   else None)


@dataclass(frozen=True, slots=True)
class RemoteMeans:
    """A means as seen from one organisation (the one in the URL): `role`/`terminates_on` are per organisation.

    The contract's nested `second_factor: {type, phone}` is flattened into `second_factor` and `phone`, as
    in the domain's `Means`.
    """

    id: str
    email: str
    name: str
    role: Role
    level: Level
    type: MeansType
    status: Status
    second_factor: SecondFactorType | None
    phone: str | None
    subscription: Subscription
    activation_deadline: dt.date | None
    contract_start: dt.date | None
    pending: Pending | None
    terminates_on: dt.date | None
    organisations: tuple[str, ...]

    @classmethod
    def parse(cls, data: Any) -> "RemoteMeans":
        d = _mapping(data, "means")
        factor = d.get("second_factor")
        factor_type: SecondFactorType | None = None
        phone: str | None = None
        if factor is not None:
            f = _mapping(factor, "second_factor")
            factor_type = _enum(SecondFactorType, f, "type")
            phone = _opt_str(f, "phone")
        orgs = d.get("organisations") or []
        if not isinstance(orgs, list):
            raise ValueError("'organisations' should be a list of KvK numbers")
        return cls(
            id=_path_id(d, "id"), email=_str(d, "email"), name=_str(d, "name"), role=_enum(Role, d, "role"),
            level=_enum(Level, d, "level"),
            type=_enum(MeansType, d, "type") if d.get("type") is not None else MeansType.REGULIER,
            status=_enum(Status, d, "status"), second_factor=factor_type, phone=phone,
            subscription=(_enum(Subscription, d, "subscription") if d.get("subscription") is not None
                          else Subscription.ONE_YEAR),
            activation_deadline=_opt_date(d, "activation_deadline"), contract_start=_opt_date(d, "contract_start"),
            pending=_parse_pending(d.get("pending")), terminates_on=_opt_date(d, "terminates_on"),
            organisations=tuple(str(k) for k in orgs),
        )

    def to_means(self) -> Means:
        return Means(id=self.id, email=self.email, name=self.name, level=self.level, type=self.type,
                     second_factor=self.second_factor, phone=self.phone, subscription=self.subscription,
                     status=self.status, activation_deadline=self.activation_deadline,
                     contract_start=self.contract_start, pending=self.pending)

    def to_membership(self) -> Membership:
        return Membership(role=self.role, terminates_on=self.terminates_on)


@dataclass(frozen=True, slots=True)
class RemoteAuthorisation:
    """One (means, service) authorisation; `service` is the eToegang ServiceUUID, lower-cased."""

    means_id: str
    email: str
    service: str
    service_key: str | None
    end_date: dt.date

    @classmethod
    def parse(cls, data: Any) -> "RemoteAuthorisation":
        return cls(*authorisation_fields(data))


def authorisation_fields(data: Any) -> tuple[str, str, str, str | None, dt.date]:
    """An authorisation's fields in `RemoteAuthorisation`'s order, checked: what `BeheerClient.authorisation_ends`
    reads without making an object of each (most of a read's objects: 10 per means)."""
    d = _mapping(data, "authorisation")
    # The usual shape is checked in one go; anything else takes the field-by-field checks, which name what is wrong.
    email, service, key, end = d.get("email"), d.get("service"), d.get("service_key"), d.get("end_date")
    if type(email) is str and type(service) is str and type(end) is str and (key is None or type(key) is str):
        return str(d["means_id"]), email, service.lower(), key, dt.date.fromisoformat(end)
    return (str(d["means_id"]), _str(d, "email"), _str(d, "service").lower(), _opt_str(d, "service_key"),
            _date(d, "end_date"))


@dataclass(frozen=True, slots=True)
class RemoteChain:
    """The chain authorisations issued to one intermediary (R18), each service (a ServiceUUID) with its own end
    date."""

    intermediary_kvk: str
    name: str | None
    ends: dict[str, dt.date]

    @classmethod
    def parse(cls, data: Any) -> "RemoteChain":
        d = _mapping(data, "chain authorisation")
        services = d.get("services") or []
        if not isinstance(services, list):
            raise ValueError("'services' should be a list of {service, end_date}")
        ends = {}
        for item in services:
            entry = _mapping(item, "chain authorisation service")
            ends[_str(entry, "service").lower()] = _date(entry, "end_date")
        return cls(intermediary_kvk=_path_id(d, "intermediary_kvk"), name=_opt_str(d, "name"), ends=ends)

    @property
    def services(self) -> frozenset[str]:
        return frozenset(self.ends)

    def to_chain(self) -> Chain:
        return Chain(intermediary_kvk=self.intermediary_kvk, name=self.name, ends=dict(self.ends))


@dataclass(frozen=True, slots=True)
class RemoteService:
    """A catalogue entry as the backend knows it."""

    uuid: str
    key: str
    provider: str
    name: str
    level: Level
    belastingdienst: bool
    general: bool

    @classmethod
    def parse(cls, data: Any) -> "RemoteService":
        d = _mapping(data, "service")
        return cls(uuid=_str(d, "uuid").lower(), key=_str(d, "key"), provider=str(d.get("provider") or ""),
                   name=str(d.get("name") or ""), level=_enum(Level, d, "level"),
                   belastingdienst=bool(d.get("belastingdienst", False)), general=bool(d.get("general", False)))

    def to_service(self) -> Service:
        return Service(key=self.key, uuid=self.uuid, provider=self.provider, name=self.name, level=self.level,
                       belastingdienst=self.belastingdienst, general=self.general)


@dataclass(frozen=True, slots=True)
class RemoteEvent:
    """One audit-trail entry; `target` is a string or, for bulk steps, a tuple of strings."""

    id: str
    at: dt.datetime
    today: dt.date | None
    actor: str | None
    action: str
    target: str | tuple[str, ...] | None
    outcome: str | None
    code: str | None
    idempotency_key: str | None

    @classmethod
    def parse(cls, data: Any) -> "RemoteEvent":
        d = _mapping(data, "event")
        raw_target = d.get("target")
        target: str | tuple[str, ...] | None
        if isinstance(raw_target, list):
            target = tuple(str(t) for t in raw_target)
        else:
            target = None if raw_target is None else str(raw_target)
        actor = d.get("actor")
        at = dt.datetime.fromisoformat(_str(d, "at"))
        if at.tzinfo is None:             # taken as UTC: a naive time and an aware one cannot even be compared
            at = at.replace(tzinfo=dt.timezone.utc)
        return cls(id=str(d["id"]), at=at, today=_opt_date(d, "today"),
                   actor=None if actor is None else str(actor), action=_str(d, "action"), target=target,
                   outcome=_opt_str(d, "outcome"), code=_opt_str(d, "code"),
                   idempotency_key=_opt_str(d, "idempotency_key"))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list endpoint; `next_cursor` is None on the last page."""

    items: tuple[T, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class MutationResult:
    """What every mutation answers: the organisation's new revision and the result (a means, or counts).

    `status` tells 201 (created) and 202 (accepted, pending the supplier: level changes and links) apart.
    The result is kept as received because its shape differs per endpoint; `means()` parses it when it is a
    means.
    """

    revision: int
    result: Mapping[str, Any] = field(default_factory=dict)
    status: int = 200
    attempts: int = 1                    # requests it took (retries included)
    replayed: bool = False               # the backend answered from its idempotency record (a retry of a done step)

    @property
    def pending(self) -> bool:
        return self.status == 202

    def means(self) -> RemoteMeans:
        return RemoteMeans.parse(self.result)


#: `POST .../terminate` modes (R14); the sandbox's API model uses this enum too, whose schema in the published
#: contract has no description (so no docstring here).
class TerminationMode(str, Enum):
    NOW = "now"
    DATE = "date"
    END_OF_CONTRACT = "end_of_contract"


__all__ = [
    "Me", "MutationResult", "Page", "RemoteAuthorisation", "RemoteChain", "RemoteEvent", "RemoteMeans",
    "RemoteOrganisation", "RemoteService", "Secret", "TerminationMode", "authorisation_fields",
]
