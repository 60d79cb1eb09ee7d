"""Who changed a drifted item and when, and since when a means has had no authorisations: read from the
backend's event trail (`GET /v1/organisations/{kvk}/events`, oldest first).

An event records an actor (a means id, or `supplier`, `holder`, `clock`), the backend's day, an action and a
target: a means id, `means/service` (an expiry), `means->kvk` (a link), an e-mail (a request), an intermediary's
KvK, a bulk step's means ids and services (a list, or text naming them). A drift item is matched to the latest
successful event whose action could have caused it and whose target names the same means (or e-mail, or
intermediary) and, when the event names services, one of the same services. No match: "unknown".
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from reconciler.backend.types import RemoteEvent
from reconciler.domain.state import World

#: Separators inside a target's text; none of them occurs in a means id, a service UUID, an e-mail or a KvK.
_SPLIT = re.compile(r"->|[\s,;/:]+")

#: Backend actions that can cause a difference the plan's action would undo.
AUTHORISATION_ACTIONS = frozenset({"grant", "set_end_date", "revoke", "authorisation_expired",
                                   "terminate_means", "membership_terminated"})
CAUSES: dict[str, frozenset[str]] = {
    "grant": AUTHORISATION_ACTIONS, "set_end_date": AUTHORISATION_ACTIONS, "revoke": AUTHORISATION_ACTIONS,
    "change_role": frozenset({"change_role", "link_means", "request_means"}),
    "change_level": frozenset({"change_level", "approve", "request_means", "link_means"}),
    "change_type": frozenset({"change_type", "request_means"}),
    "change_phone": frozenset({"change_phone", "change_level", "request_means"}),
    "change_email": frozenset({"change_email", "request_means"}),
    "terminate_means": frozenset({"request_means", "link_means", "approve", "activate"}),
    "link_means": frozenset({"terminate_means", "membership_terminated"}),
    "request_means": frozenset({"terminate_means", "membership_terminated", "means_deleted", "reject"}),
    "issue_chain": frozenset({"remove_intermediary", "set_chain_end_date", "chain_expired", "issue_chain"}),
    "set_chain_end_date": frozenset({"set_chain_end_date", "issue_chain"}),
    "revoke_chain": frozenset({"issue_chain", "set_chain_end_date"}),
    "remove_intermediary": frozenset({"issue_chain", "set_chain_end_date"}),
}
#: Events after which a means holds fewer authorisations (the start of an idle spell), and its activation.
ENDS = frozenset({"revoke", "authorisation_expired"})
ACTIVATED = frozenset({"activate"})
_ACTORS = {"supplier": "the supplier", "holder": "the holder", "clock": "time (the backend's clock)"}


@dataclass(frozen=True)
class Match:
    """What a drift item is about: one means (by id or e-mail) or one intermediary, and the services."""

    action: str
    means_id: str | None = None
    email: str | None = None
    intermediary: str | None = None
    services: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Attribution:
    by: str
    on: dt.date | None


UNKNOWN = Attribution("unknown", None)


@dataclass
class _Entry:
    event: RemoteEvent
    tokens: frozenset[str]


@dataclass
class Trail:
    """One organisation's successful events, indexed by every id their targets name."""

    world: World
    services: frozenset[str]                      # every service UUID the catalogue knows (lower case)
    _by_token: dict[str, list[_Entry]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def of(cls, events: Iterable[RemoteEvent], world: World) -> "Trail":
        trail = cls(world, frozenset(s.uuid.lower() for s in world.catalogue))
        for event in events:
            trail.add(event)
        return trail

    def add(self, event: RemoteEvent) -> None:
        if event.outcome not in (None, "ok"):
            return                                # a refused attempt changed nothing
        tokens = _tokens(event.target)
        entry = _Entry(event, tokens)
        for token in tokens:
            self._by_token[token].append(entry)

    def _latest(self, keys: Iterable[str | None], actions: frozenset[str],
                services: frozenset[str] = frozenset()) -> RemoteEvent | None:
        best: RemoteEvent | None = None
        for key in {k.lower() for k in keys if k}:
            for entry in reversed(self._by_token.get(key, [])):
                if entry.event.action not in actions:
                    continue
                named = entry.tokens & self.services
                if services and named and not named & services:
                    continue                      # the event names other services only
                if best is None or _order(entry.event) > _order(best):
                    best = entry.event
                break                             # the entries are oldest first: the first found is the latest
        return best

    def attribute(self, match: Match) -> Attribution:
        """Who made the latest change that could explain the item, and on which (backend) day."""
        event = self._latest((match.means_id, match.email, match.intermediary),
                             CAUSES.get(match.action, frozenset()), match.services)
        return UNKNOWN if event is None else Attribution(self.actor(event.actor), _day(event))

    def idle_since(self, means_id: str) -> tuple[dt.date, str] | None:
        """The day the means' last authorisation here ended (or it was activated, if later), from the trail."""
        ended = self._latest((means_id,), ENDS)
        activated = self._latest((means_id,), ACTIVATED)
        found = [(_day(e), what) for e, what in ((ended, "its last authorisation ended"),
                                                 (activated, "activated")) if e is not None]
        return max(found, key=lambda f: f[0]) if found else None

    def actor(self, actor: str | None) -> str:
        if actor is None:
            return "unknown"
        if actor in _ACTORS:
            return _ACTORS[actor]
        means = self.world.means.get(actor)
        return means.email if means is not None else f"means {actor}"


def _tokens(target: str | tuple[str, ...] | None) -> frozenset[str]:
    if target is None:
        return frozenset()
    parts = target if isinstance(target, tuple) else (target,)
    return frozenset(t.lower() for part in parts for t in _SPLIT.split(part) if t)


def _day(event: RemoteEvent) -> dt.date:
    return event.today or event.at.date()


def _order(event: RemoteEvent) -> tuple[dt.datetime, tuple[int, int | str]]:
    """Time, then id: a numeric id by its number, before any other (an int and a str cannot be compared, and
    `isdigit` also takes `²`, which `int` refuses: the backend's ids are its own text)."""
    numeric = event.id.isascii() and event.id.isdigit() and len(event.id) <= 30
    return (event.at, (0, int(event.id)) if numeric else (1, event.id))
