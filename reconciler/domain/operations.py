"""What an admin does through the backend, declared once: each operation is one frozen dataclass that the rules
check (`rules.execute`), that a plan item carries in its serialised form (`Change.params`, via `encode` and
`decode`), and that apply sends (`apply/calls`). A new action is a new class here, a case there, and a route.

The serialised form is the plan file's `params` (plan.schema.json): the fields but `kvk` (the item says it), as
JSON values (enum values, ISO dates, lists), in field order. A request's `means_id` is left out (the backend
chooses it); `extras` the apply needs besides the rules (the catalogue keys of the services) follow `services`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any, Callable, ClassVar, Mapping

from reconciler.domain.levels import Level
from reconciler.domain.means import MeansType, Role, SecondFactorType, Subscription
from reconciler.domain.wire import json_value


@dataclass(frozen=True)
class _Operation:
    """A step in organisation `kvk`. `action` is its name in the plan vocabulary (INTERFACE.md)."""

    action: ClassVar[str]
    #: serialised in this order when it is not the field order
    wire_order: ClassVar[tuple[str, ...]] = ()
    #: fields left out when None (the backend's default applies)
    omit_none: ClassVar[frozenset[str]] = frozenset()
    #: fields not serialised (chosen by the backend)
    unsent: ClassVar[frozenset[str]] = frozenset()

    kvk: str


@dataclass(frozen=True)
class _OnMeans(_Operation):
    means_id: str


@dataclass(frozen=True)
class RequestMeans(_OnMeans):
    """A new means for a new holder (R2, R4, R5, R13, R15, R19). `means_id` is chosen by the caller (the store,
    or a placeholder in a simulation), so the effects are deterministic."""

    action = "request_means"
    unsent = frozenset({"means_id"})

    email: str
    name: str
    role: Role
    level: Level
    type: MeansType = MeansType.REGULIER
    second_factor: SecondFactorType | None = None
    phone: str | None = None
    subscription: Subscription = Subscription.ONE_YEAR


@dataclass(frozen=True)
class LinkMeans(_OnMeans):
    """Link an existing means to organisation `kvk` (R15); `from_kvk` is where the request is made: an
    organisation the means and the acting admin are already in."""

    action = "link_means"

    role: Role
    subscription: Subscription = Subscription.ONE_YEAR
    from_kvk: str | None = None


@dataclass(frozen=True)
class ChangeRole(_OnMeans):
    action = "change_role"

    role: Role


@dataclass(frozen=True)
class ChangeLevel(_OnMeans):
    action = "change_level"

    level: Level
    second_factor: SecondFactorType | None = None
    phone: str | None = None


@dataclass(frozen=True)
class ChangeType(_OnMeans):
    action = "change_type"

    type: MeansType
    subscription: Subscription = Subscription.ONE_YEAR


@dataclass(frozen=True)
class ChangePhone(_OnMeans):
    action = "change_phone"

    phone: str


@dataclass(frozen=True)
class ChangeEmail(_OnMeans):
    action = "change_email"

    email: str


@dataclass(frozen=True)
class ResendInvitation(_OnMeans):
    action = "resend_invitation"


@dataclass(frozen=True)
class Terminate(_OnMeans):
    action = "terminate_means"
    omit_none = frozenset({"date"})

    mode: str = "now"                     # now | date | end_of_contract
    date: dt.date | None = None


@dataclass(frozen=True)
class _OnPairs(_Operation):
    """A bulk step: every means x every service (R10)."""

    means_ids: tuple[str, ...]
    services: tuple[str, ...]             # UUIDs


@dataclass(frozen=True)
class Grant(_OnPairs):
    action = "grant"
    omit_none = frozenset({"end_date"})

    end_date: dt.date | None = None       # default: 5 years (R9)


@dataclass(frozen=True)
class SetEndDate(_OnPairs):
    action = "set_end_date"

    end_date: dt.date


@dataclass(frozen=True)
class Revoke(_OnPairs):
    action = "revoke"


@dataclass(frozen=True)
class _OnIntermediary(_Operation):
    intermediary_kvk: str


@dataclass(frozen=True)
class IssueChain(_OnIntermediary):
    action = "issue_chain"
    wire_order = ("intermediary_kvk", "name", "services", "end_date")

    services: tuple[str, ...]
    end_date: dt.date | None = None
    name: str | None = None


@dataclass(frozen=True)
class SetChainEndDate(_OnIntermediary):
    """A new end date for some of an intermediary's chain authorisations (R18: each has its own); no services:
    for all of them."""

    action = "set_chain_end_date"

    end_date: dt.date
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class RevokeChain(_OnIntermediary):
    """End some of an intermediary's chain authorisations now (R18); the intermediary goes with its last."""

    action = "revoke_chain"

    services: tuple[str, ...]


@dataclass(frozen=True)
class RemoveIntermediary(_OnIntermediary):
    action = "remove_intermediary"


AdminOperation = (RequestMeans | LinkMeans | ChangeRole | ChangeLevel | ChangeType | ChangePhone | ChangeEmail
                  | ResendInvitation | Terminate | Grant | SetEndDate | Revoke | IssueChain | SetChainEndDate
                  | RevokeChain | RemoveIntermediary)

#: action name -> its operation
BY_ACTION: dict[str, type[AdminOperation]] = {cls.action: cls for cls in typing.get_args(AdminOperation)}


# ------------------------------------------------------------------------------------------- the wire
def _parser(hint: Any) -> Callable[[Any], Any]:
    """How a JSON value becomes the field's type (an enum, a date, a tuple; optional ones stay None)."""
    if typing.get_origin(hint) is tuple:
        return tuple
    kind = next((k for k in typing.get_args(hint) if k is not type(None)), hint)     # X | None: X
    if isinstance(kind, type) and issubclass(kind, Enum):
        return lambda v: None if v is None else kind(v)
    if kind is dt.date:
        return lambda v: dt.date.fromisoformat(v) if v else None
    return lambda v: v


@cache
def _fields(cls: type) -> tuple[tuple[str, Callable[[Any], Any]], ...]:
    """The serialised fields of `cls`, in wire order, each with its parser."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.name != "kvk" and f.name not in cls.unsent]
    order = list(cls.wire_order) or names
    return tuple((name, _parser(hints[name])) for name in order)


def encode(op: AdminOperation, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The operation as a plan item's `params`; `extras` (say `service_keys`) follow the field they annotate
    (`service_keys` after `services`), or come last."""
    params: dict[str, Any] = {}
    pending = dict(extras or {})
    for name, _ in _fields(type(op)):
        value = getattr(op, name)
        if value is None and name in op.omit_none:
            continue
        params[name] = json_value(value)
        if name == "services" and "service_keys" in pending:
            params["service_keys"] = pending.pop("service_keys")
    params.update(pending)
    return params


def decode(action: str, kvk: str, params: Mapping[str, Any]) -> AdminOperation:
    """A plan item's operation, from its `params` (keys that are no field, like `service_keys`, are
    annotations and ignored; an unsent field is empty: the caller sets it)."""
    cls = BY_ACTION[action]
    values = {name: parse(params[name]) for name, parse in _fields(cls) if name in params}
    values.update({name: "" for name in cls.unsent})
    return cls(kvk=kvk, **values)
