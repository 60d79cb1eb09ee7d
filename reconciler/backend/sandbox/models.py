"""The beheer API's bodies as pydantic models: they validate requests and describe responses in OpenAPI.

Responses of list endpoints are built as plain dicts for speed; these models are their documentation, and
the tests check that real responses validate against them.

Where a body or answer has the shape of a type declared elsewhere, the model is built from that type
(`_model_of`): a change of a means from its rules operation, a catalogue service from the client's
`RemoteService` or the domain's `Service`. A field added there reaches the contract, which the test against
`schemas/beheer-api.openapi.yaml` then shows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import typing
from enum import Enum
from typing import Annotated, Any, Literal, Mapping, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from reconciler.domain import catalogue, rules
from reconciler.domain.levels import MEANS_LEVELS, Level
from reconciler.domain.means import MeansType, Role, SecondFactorType, Subscription
from reconciler.domain.state import PendingKind, Status

from reconciler.backend.types import RemoteService, TerminationMode

Op = TypeVar("Op")

Kvk = Annotated[str, Field(pattern=r"^[0-9]{8}$", description="KvK number: 8 digits.", examples=["99966564"])]
BranchNumber = Annotated[str, Field(pattern=r"^[0-9]{12}$", description="Vestigingsnummer: 12 digits (R17).")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254,
                             examples=["j.bakker@ketelaarklip.nl"])]
Phone = Annotated[str, Field(pattern=r"^\+[1-9][0-9]{6,14}$", description="Mobile number, E.164.",
                             examples=["+31612345678"])]
ServiceUuid = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                                           r"[0-9a-fA-F]{12}$", description="eToegang ServiceUUID.")]
MeansId = Annotated[str, Field(min_length=1, max_length=64, description="A means id (UUID).")]


def _calendar_date(value: Any) -> Any:
    """Only `YYYY-MM-DD` (pydantic's lax date also takes timestamps and datetimes)."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return value
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    raise ValueError("expected a date as YYYY-MM-DD")


Date = Annotated[dt.date, BeforeValidator(_calendar_date), Field(description="YYYY-MM-DD")]
Name = Annotated[str, Field(min_length=1, max_length=200)]


#: The domain's `MEANS_LEVELS` as the API's enum (a means level is a `Level`, less EH1).
MeansLevel = Enum("MeansLevel", [(level.name, level.value) for level in MEANS_LEVELS],  # type: ignore[misc]
                  type=str, module=__name__)
MeansLevel.__doc__ = "Levels a means can have (EH1 is a service level only)."


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    # Answers are written as dicts (`serialise`): these models document them, so their validators are built when
    # the OpenAPI document (or a test) first needs them, not at every start (a third of this module's import).
    # Not the bodies (`_In`): FastAPI builds their validators with some pydantic warnings silenced, which a
    # deferred build would show at the first request.
    model_config = ConfigDict(extra="allow", defer_build=True)


def _model_of(shape: type, name: str, base: type[BaseModel], doc: str | None = None, *,
              wire: Mapping[str, Any] | None = None, omit: tuple[str, ...] = (),
              defaults: Mapping[str, Any] | None = None) -> Any:
    """A pydantic model with the fields of the dataclass `shape` (names, order, types, defaults), less `omit`,
    typed as `wire` says where the API is stricter than the shape (and defaulting as `defaults` says where it
    differs): one declaration of a shape that the client, the domain and the API share."""
    hints = typing.get_type_hints(shape)
    wire, defaults = wire or {}, defaults or {}
    fields = {f.name: (wire.get(f.name, hints[f.name]),
                       defaults.get(f.name, ... if f.default is dataclasses.MISSING else f.default))
              for f in dataclasses.fields(shape) if f.name not in omit}
    return create_model(name, __base__=base, __doc__=doc, __module__=__name__, **fields)


# ------------------------------------------------------------------------------------------------ errors
class Problem(BaseModel):
    """RFC 9457 problem details; `code` is the rule id (R1..R20) or a named condition."""

    type: str = Field(description="A URI naming the problem type: `urn:beheer-api:problem:<code>`.")
    title: str
    status: int
    detail: str = Field(description="What is wrong and what is allowed, for people.")
    code: str = Field(description="`R1`..`R20`, or one of `unauthorized`, `forbidden`, `not-found`, `invalid`, "
                                  "`unknown-service`, `already-linked`, `precondition-failed`, "
                                  "`idempotency-mismatch`, `rate-limited`, `unavailable`.",
                      examples=["R1"])
    errors: list[dict[str, Any]] | None = Field(None, description="For `invalid`: each field's problem.")


# ------------------------------------------------------------------------------------------------- reads
class Me(_Out):
    """The acting admin: the means the token belongs to."""

    means_id: str
    email: str
    level: Level
    read_only: bool
    today: dt.date = Field(description="The backend's today: the day end dates and activation deadlines are "
                                       "judged by (R5, R9). Plans are made for it.")


class Organisation(_Out):
    """An organisation (by KvK number) the acting admin is linked to."""

    kvk: str
    name: str
    branch_number: str | None = None
    revision: int = Field(description="Raised by every change; sent back as `ETag`/`If-Match`.")


class SecondFactor(_Out):
    """The second factor (R19): `sms` with the mobile number, or `otp` (a device sent by post)."""

    type: SecondFactorType
    phone: str | None = None


class PendingChange(_Out):
    """A change the supplier has yet to process (R6: no other change until then)."""

    kind: PendingKind
    level: Level | None = None
    kvk: str | None = None
    role: Role | None = None


class Means(_Out):
    """One person's eHerkenning means, as seen from the organisation of the URL (R15: one means per person)."""

    id: str
    email: str
    name: str
    role: Role = Field(description="The role in the organisation of the URL.")
    level: Level
    type: MeansType
    status: Status
    second_factor: SecondFactor | None
    subscription: Subscription
    activation_deadline: dt.date | None = Field(description="R5: the holder activates by this day.")
    contract_start: dt.date | None
    pending: PendingChange | None
    terminates_on: dt.date | None = Field(description="R14: a scheduled termination in the organisation of the URL.")
    organisations: list[str] = Field(description="KvK numbers of every organisation the means is linked to (R15).")


class Authorisation(_Out):
    """A user may log in at a service on behalf of the organisation until `end_date` (R9)."""

    means_id: str
    email: str
    service: str = Field(description="The service's UUID.")
    service_key: str | None = Field(description="The catalogue key of the service.")
    end_date: dt.date


class ChainService(_Out):
    """One chain authorisation: a service the intermediary may act at, until its own end date (R18)."""

    service: str = Field(description="The service's UUID.")
    end_date: dt.date


class ChainAuthorisation(_Out):
    """The chain authorisations issued to one intermediary organisation (R18), each with its own end date."""

    intermediary_kvk: str
    name: str | None
    services: list[ChainService] = Field(description="By service UUID.")


#: A catalogue service as the client reads it (`RemoteService`).
Service = _model_of(RemoteService, "Service", _Out,
                    "A catalogue service: `level` is its minimum level (R8); `general`: a general authority level N.")


class Event(_Out):
    """One audit event: a change attempted through the API (also refused ones), or an act of the supplier,
    the holder or time."""

    id: int
    at: str = Field(description="Wall-clock time (UTC, ISO 8601).")
    today: dt.date = Field(description="The backend's today when it happened.")
    actor: str = Field(description="The acting means id, or `supplier`, `holder`, `clock`.")
    action: str
    target: str | None
    outcome: Literal["ok", "refused"]
    code: str | None
    idempotency_key: str | None
    detail: str | None = None


class _Page(_Out):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class OrganisationPage(_Page):
    items: list[Organisation]


class MeansPage(_Page):
    items: list[Means]


class AuthorisationPage(_Page):
    items: list[Authorisation]


class ChainPage(_Page):
    items: list[ChainAuthorisation]


class ServicePage(_Page):
    items: list[Service]


class EventPage(_Page):
    items: list[Event]


# ------------------------------------------------------------------------------------------ mutation bodies
class SecondFactorIn(_In):
    type: SecondFactorType
    phone: Phone | None = None


class _Body(_In):
    """A change of one means: the fields of its rules operation but those the URL gives (the organisation,
    the means) and `phone`, which travels inside `second_factor`; `operation` turns it back into that operation."""

    def operation(self, op: type[Op], **url: str) -> Op:
        values = {name: getattr(self, name) for name in type(self).model_fields}
        if "level" in values:
            values["level"] = Level(values["level"].value)
        if "second_factor" in values:
            factor = values["second_factor"]
            values["second_factor"], values["phone"] = (factor.type, factor.phone) if factor else (None, None)
        return op(**url, **values)


def _body(op: type, name: str, doc: str, *, url: tuple[str, ...] = ("kvk", "means_id"), **wire: Any) -> Any:
    """The body model of the rules operation `op`: its fields but `url` (and `phone` beside `second_factor`),
    typed for the wire where the API is stricter than the rules (`wire` adds to the common ones)."""
    fields = {f.name for f in dataclasses.fields(op)}
    omit = (*url, "phone") if "second_factor" in fields else url
    return _model_of(op, name, _Body, doc, omit=omit, wire={
        "email": Email, "name": Name, "level": MeansLevel, "phone": Phone, "second_factor": SecondFactorIn | None,
        **wire})


RequestMeansIn = _body(rules.RequestMeans, "RequestMeansIn",
                       "A new means for a new holder (R2, R4, R5, R13, R15, R19).")
RoleIn = _body(rules.ChangeRole, "RoleIn", "The role in the organisation of the URL (R1, R2, R3, R13, R20).")
LevelIn = _body(rules.ChangeLevel, "LevelIn", "The new level, pending until the supplier processes it (R2, R4, R6, R8, "
                "R19).", second_factor=Annotated[SecondFactorIn | None,
                                                 Field(description="R19: needed when going from EH2 to EH2+/EH3.")])
TypeIn = _body(rules.ChangeType, "TypeIn", "The new type; drops the means' authorisations (R13).")
PhoneIn = _body(rules.ChangePhone, "PhoneIn", "The new SMS number (R3, R12).")
EmailIn = _body(rules.ChangeEmail, "EmailIn", "The new e-mail, before activation only (R11).")
LinkIn = _body(rules.LinkMeans, "LinkIn", "Link the means to another organisation of the acting admin (R4, R6, R15).",
               url=("means_id", "from_kvk"),
               kvk=Annotated[Kvk, Field(description="The organisation to link the means to.")])


class TerminateIn(_In):
    """How the means ends in the organisation of the URL (R1, R3, R14)."""

    mode: TerminationMode = TerminationMode.NOW
    date: Date | None = Field(None, description="For mode `date`: the day it ends (in the future).")


class GrantIn(_In):
    """Every service for every means, one end date (R7, R8, R9, R10, R13, R17)."""

    means_ids: list[MeansId] = Field(min_length=1, max_length=10000)
    services: list[ServiceUuid] = Field(min_length=1, max_length=1000)
    end_date: Date | None = Field(None, description="R9: default five years from today; tomorrow at the earliest.")


class SetEndDateIn(_In):
    """One new end date for existing authorisations (R9, R10)."""

    means_ids: list[MeansId] = Field(min_length=1, max_length=10000)
    services: list[ServiceUuid] = Field(min_length=1, max_length=1000)
    end_date: Date


class RevokeIn(_In):
    """Authorisations to end now (R9)."""

    means_ids: list[MeansId] = Field(min_length=1, max_length=10000)
    services: list[ServiceUuid] = Field(min_length=1, max_length=1000)


class ChainIn(_In):
    """Chain authorisations for an intermediary (R9, R18)."""

    intermediary_kvk: Kvk
    name: Name | None = None
    services: list[ServiceUuid] = Field(min_length=1, max_length=1000)
    end_date: Date | None = None


class ChainEndDateIn(_In):
    """A new end date for some of an intermediary's chain authorisations (R9, R18); without services, for all."""

    end_date: Date
    services: list[ServiceUuid] = Field(default_factory=list, max_length=1000)


class ChainRevokeIn(_In):
    """Chain authorisations to end now (R18); the intermediary goes with its last."""

    services: list[ServiceUuid] = Field(min_length=1, max_length=1000)


# ------------------------------------------------------------------------------------------ mutation answers
class GrantResult(_Out):
    authorisations: int = Field(description="Pairs means x service granted or re-dated.")
    created: int
    updated: int
    end_date: dt.date


class EndDateResult(_Out):
    authorisations: int
    end_date: dt.date


class RevokeResult(_Out):
    revoked: int


class TerminateResult(_Out):
    means_id: str
    mode: TerminationMode
    terminates_on: dt.date | None = Field(description="The scheduled day; null when it ended now.")
    removed: bool = Field(description="The means left the organisation now.")
    means_deleted: bool = Field(description="The means ended altogether (it had no other organisation).")
    organisation_deleted: bool = Field(description="R14: it was the organisation's last means.")


class RemoveIntermediaryResult(_Out):
    intermediary_kvk: str
    removed_services: int


class _Mutation(_Out):
    revision: int = Field(description="The organisation's revision after the change (also the `ETag`).")


class MeansMutation(_Mutation):
    result: Means


class TerminateMutation(_Mutation):
    result: TerminateResult


class GrantMutation(_Mutation):
    result: GrantResult


class EndDateMutation(_Mutation):
    result: EndDateResult


class RevokeMutation(_Mutation):
    result: RevokeResult


class ChainMutation(_Mutation):
    result: ChainAuthorisation


class ChainRevokeMutation(_Mutation):
    result: ChainAuthorisation | None = Field(description="What the intermediary still holds; null when the "
                                                          "revoke took its last (the intermediary is gone).")


class RemoveIntermediaryMutation(_Mutation):
    result: RemoveIntermediaryResult


# ------------------------------------------------------------------------------------------ sandbox controls
#: The organisation's first admin (the sandbox plays the supplier): a means request whose role (beheerder) and
#: type (regulier) go without saying, EH3 unless said otherwise, its second factor given flat.
AdminIn = _model_of(rules.RequestMeans, "AdminIn", _In, omit=("kvk", "means_id", "role", "type"),
                    wire={"email": Email, "name": Name, "level": MeansLevel, "phone": Phone | None},
                    defaults={"level": MeansLevel.EH3})


class OrganisationIn(_In):
    kvk: Kvk
    name: Name
    branch_number: BranchNumber | None = None
    admin: AdminIn


class OrganisationCreated(_Out):
    kvk: str
    means_id: str
    token: str


class TokenIn(_In):
    means_id: MeansId
    read_only: bool = False


class TokenOut(_Out):
    token: str


class ClockIn(_In):
    today: Date | None = None
    advance_days: int | None = Field(None, ge=0, le=36500)


class ClockOut(_Out):
    today: dt.date
    fixed: bool
    swept: dict[str, int] | None = None


#: A service for the catalogue, as the domain declares it (`catalogue.Service`).
ServiceIn = _model_of(catalogue.Service, "ServiceIn", _In, wire={
    "key": Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")], "uuid": ServiceUuid,
    "provider": Name, "name": Name})


class CatalogueIn(_In):
    services: list[ServiceIn] = Field(min_length=1)


class FaultsIn(_In):
    p_503: float = Field(0.0, ge=0.0, le=1.0)
    p_429: float = Field(0.0, ge=0.0, le=1.0)
    p_drop: float = Field(0.0, ge=0.0, le=1.0)
    delay_ms: int = Field(0, ge=0, le=60000)
    seed: int | None = None


class RateLimitIn(_In):
    requests: int | None = Field(None, ge=1, description="null switches rate limiting off")
    per_seconds: float = Field(60.0, gt=0)
