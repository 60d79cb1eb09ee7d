"""The plan as plain objects: what renders to text, markdown and JSON, and what `apply` carries out.

Vocabulary (INTERFACE.md): changes are `request_means`, `link_means`, `change_role`, `change_level`,
`change_type`, `change_phone`, `change_email`, `resend_invitation`, `terminate_means`, `grant`,
`set_end_date`, `revoke`, `issue_chain`, `set_chain_end_date`, `revoke_chain`, `remove_intermediary`; besides
them a plan lists `deferred` steps (cannot happen yet) and `manual` steps (no admin can do them through the
backend).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from reconciler.domain.operations import AdminOperation, RequestMeans, decode


class Action(str, Enum):
    REQUEST_MEANS = "request_means"
    LINK_MEANS = "link_means"
    CHANGE_ROLE = "change_role"
    CHANGE_LEVEL = "change_level"
    CHANGE_TYPE = "change_type"
    CHANGE_PHONE = "change_phone"
    CHANGE_EMAIL = "change_email"
    RESEND_INVITATION = "resend_invitation"
    TERMINATE_MEANS = "terminate_means"
    GRANT = "grant"
    SET_END_DATE = "set_end_date"
    REVOKE = "revoke"
    ISSUE_CHAIN = "issue_chain"
    SET_CHAIN_END_DATE = "set_chain_end_date"
    REVOKE_CHAIN = "revoke_chain"
    REMOVE_INTERMEDIARY = "remove_intermediary"


#: Steps on a person's authorisations: the services are part of what they act on (blocked ones are listed by
#: service; in JSON every item's `target` is the person and `services` the keys).
PER_SERVICE = frozenset({Action.GRANT, Action.SET_END_DATE, Action.REVOKE})

#: Terraform-like symbols: + adds, ~ changes, - removes.
SYMBOL = {
    Action.REQUEST_MEANS: "+", Action.LINK_MEANS: "+", Action.GRANT: "+", Action.ISSUE_CHAIN: "+",
    Action.CHANGE_ROLE: "~", Action.CHANGE_LEVEL: "~", Action.CHANGE_TYPE: "~", Action.CHANGE_PHONE: "~",
    Action.CHANGE_EMAIL: "~", Action.RESEND_INVITATION: "~", Action.SET_END_DATE: "~",
    Action.SET_CHAIN_END_DATE: "~",
    Action.TERMINATE_MEANS: "-", Action.REVOKE: "-", Action.REVOKE_CHAIN: "-", Action.REMOVE_INTERMEDIARY: "-",
}


class Stage(int, Enum):
    """The order of a plan (issue #4): nothing that removes access runs before what replaces it."""

    ADD = 1          # requests, links, promotions, upgrades, type changes, phone, invitations
    GRANT = 2        # grants and extensions
    SHORTEN = 3      # shortened end dates and revokes
    REMOVE = 4       # demotions, downgrades, terminations, intermediary removals


class Origin(str, Enum):
    """With --compare-to: why a change is in the plan."""

    INTRODUCED = "introduced"   # this change of the config asks for it
    DRIFT = "drift"             # the base config already asked for it: the backend was changed by hand
    EXPIRY = "expiry"           # time: an end date came near or passed


def target_list(target: str | list[str]) -> list[str]:
    """A target as a list: bulk steps name several users or services, the others one."""
    return target if isinstance(target, list) else [target]


def target_text(target: str | list[str]) -> str:
    return ", ".join(target_list(target))


@dataclass
class Change:
    """One API call (bulk steps act on several users and services at once, R10)."""

    id: str
    kvk: str
    action: Action
    target: str | list[str]
    stage: Stage
    params: dict[str, Any]               # its operation, serialised (domain/operations.encode): what apply sends
    detail: str = ""                     # what a reviewer reads: "EH2+ -> EH3", "until 2031-11-21"
    person: str | None = None            # the e-mail it is about, to group the text output by person
    removal: bool = False                # counts against policy.max_removals
    escalation: bool = False             # a privilege escalation (new admin, upgrade, general authority, ...)
    origin: Origin | None = None
    time_driven: bool = False            # caused by the calendar (a rolling renewal, a date that passed)
    cost_once: float = 0.0
    cost_yearly: float = 0.0
    # What the reviewer judges a change by, as JSON values (dates as ISO strings, lists sorted: a saved plan is
    # compared field by field with a re-derived one). Keys: role, level, type, phone, email (changes of one
    # value); end_dates ("<e-mail or intermediary KvK> <service>" -> date, null once gone); for a termination
    # name, role, level, chain_authorisations, other_organisations and undo (see plan.schema.json).
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    @property
    def symbol(self) -> str:
        return SYMBOL[self.action]

    def operation(self, new_means_id: str = "") -> AdminOperation:
        """The rules operation this change performs (its `params` are that operation serialised); a request's
        `new_means_id` names the means it creates (the backend's choice, or a placeholder in a simulation)."""
        op = decode(self.action.value, self.kvk, self.params)
        return dataclasses.replace(op, means_id=new_means_id) if isinstance(op, RequestMeans) else op

    @property
    def removal_count(self) -> int:
        """Against policy.max_removals: a revoke counts once per user and service, a chain revoke once per
        service, other removals once."""
        if not self.removal:
            return 0
        if self.action is Action.REVOKE:
            return len(self.params["means_ids"]) * len(self.params["services"])
        if self.action is Action.REVOKE_CHAIN:
            return len(self.params["services"])
        return 1


@dataclass
class _Blocked:
    """A step the plan cannot make: which, the rule that stops it, and why."""

    kvk: str
    action: Action
    target: str | list[str]
    rule: str
    reason: str
    person: str | None = None
    detail: str = ""
    origin: Origin | None = None


@dataclass
class Deferred(_Blocked):
    """Cannot happen yet: the reason says what unblocks it (an approval, an activation, a date)."""


@dataclass
class Manual(_Blocked):
    """No admin can do it through the backend: a person must act (another admin, the holder, the supplier)."""


@dataclass
class Unmanaged:
    """Present in the backend, not declared, left alone because policy.prune is false."""

    kvk: str
    kind: str                            # means | authorisation | intermediary
    target: str
    detail: str = ""


@dataclass
class OrgResult:
    """What a run says of one organisation, read from the backend at `revision` (a plan, a drift report)."""

    kvk: str
    name: str
    revision: int | None


@dataclass
class OrgPlan(OrgResult):
    acting_admin: str | None
    changes: list[Change] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)
    manual: list[Manual] = field(default_factory=list)
    unmanaged: list[Unmanaged] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    removals: int = 0                    # removals counted against the threshold
    removal_limit: int | None = None     # policy.max_removals for this organisation (None: no limit applies)
    existing_objects: int = 0
    valid_until: dt.date | None = None   # the first day on which time alone changes this plan (apply --plan)
    valid_until_reason: str = ""
    acting_note: str = ""                # why not the config's first beheerder acts (embedded sandbox), shown

    def horizon(self, day: dt.date, reason: str) -> None:
        """Keep the earliest day on which a decision of this plan flips because of the date."""
        if self.valid_until is None or day < self.valid_until:
            self.valid_until, self.valid_until_reason = day, reason

    def count_removals(self) -> int:
        """Removals against policy.max_removals, counted from the steps themselves (a saved plan's `removals`
        field is not trusted)."""
        return sum(c.removal_count for c in self.changes)

    @property
    def over_threshold(self) -> bool:
        return self.unsafe_reason() is not None

    def unsafe_reason(self) -> str | None:
        """Why this organisation's steps may not run without --force (more removals than policy.max_removals)."""
        count = self.count_removals()
        if self.removal_limit is None or count <= self.removal_limit:
            return None
        return (f"organisation {self.kvk}: {count} removals, more than policy.max_removals allows "
                f"({self.removal_limit} of {self.existing_objects} objects)")

    @property
    def has_work(self) -> bool:
        """Anything differs (INTERFACE: `plan` exits 0 only when nothing does): a change, a step that waits, or
        one only a person can make (a manual item is still a difference)."""
        return bool(self.changes or self.deferred or self.manual)

    @property
    def matches(self) -> bool:
        """Nothing to list at all: the backend matches the config."""
        return not (self.changes or self.deferred or self.manual or self.unmanaged)

    def acting(self, escape: Callable[[str], str]) -> str | None:
        """"acting as X because Y" (escaped for the output), or None when the plan names no acting admin."""
        if not self.acting_admin:
            return None
        why = f" because {escape(self.acting_note)}" if self.acting_note else ""
        return f"acting as {escape(self.acting_admin)}{why}"


class UnsafePlan(Exception):
    """A plan over the removal threshold, applied without --force: nothing may run."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("the plan removes more than policy.max_removals allows; nothing was changed. Check the "
                         "removals above and run again with --force if you mean it:\n  " + "\n  ".join(reasons))


@dataclass
class Cost:
    once: float = 0.0
    yearly: float = 0.0
    currency: str = "EUR"


@dataclass
class Plan:
    today: dt.date
    config_digest: str
    tool_version: str
    backend: str
    organisations: list[OrgPlan]
    warnings: list[str] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    force_required: bool = False
    compared_to: str | None = None
    config_paths: list[str] = field(default_factory=list)   # the PATH arguments it was planned from (apply --plan)
    shard: str | None = None                                # --shard K/N it was planned with

    @property
    def changes(self) -> list[Change]:
        return [c for org in self.organisations for c in org.changes]

    def unsafe_reasons(self) -> list[str]:
        """The safety threshold, in one place (octoDNS's Plan): each organisation over policy.max_removals."""
        return [reason for org in self.organisations if (reason := org.unsafe_reason()) is not None]

    def raise_if_unsafe(self, force: bool) -> None:
        """Refuse (`UnsafePlan`) a plan that removes more than the policy allows, unless forced; plan, apply
        and saved plans all go through here."""
        reasons = self.unsafe_reasons()
        if reasons and not force:
            raise UnsafePlan(reasons)

    @property
    def api_calls(self) -> int:
        return len(self.changes)

    @property
    def has_work(self) -> bool:
        return any(org.has_work for org in self.organisations)

    def summary(self) -> dict[str, int]:
        counts = {"add": 0, "change": 0, "remove": 0}
        for change in self.changes:
            counts[{"+": "add", "~": "change", "-": "remove"}[change.symbol]] += 1
        counts["deferred"] = sum(len(o.deferred) for o in self.organisations)
        counts["manual"] = sum(len(o.manual) for o in self.organisations)
        counts["unmanaged"] = sum(len(o.unmanaged) for o in self.organisations)
        counts["api_calls"] = self.api_calls
        return counts
