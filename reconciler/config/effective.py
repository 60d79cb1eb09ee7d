"""Which end date a person gets for each service: the one rule, used by `validate` (to show every override as a
note on its line) and by the planner (to plan it).

1. Groups: a service named by several of the person's groups gets the latest of their dates (`rolling` is
   later than any date).
2. The person's own entry decides: when the person's `authorisations` name a service that a group also names,
   the person's own `until` replaces the group's, earlier or later; a date in the past revokes the service even
   though the group grants it.
3. The person's `until` (a contract's end) caps every end date of that person, group ones and own ones: a later
   date or `rolling` becomes the person's `until`.

A contractor in group `projects` (rolling) with `authorisations: [{service: S, until: 2027-03-01}]` therefore
gets S until 2027-03-01, not the group's five years; with `until: 2027-03-01` on the person every service of
theirs ends on that day, and so does the means itself.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping

from reconciler.config.models import ROLLING, Group, Until, User


def later(a: Until, b: Until) -> Until:
    """The later of two end dates; `rolling` is later than any date."""
    if a == ROLLING or b == ROLLING:
        return ROLLING
    assert isinstance(a, dt.date) and isinstance(b, dt.date)
    return max(a, b)


def show(until: Until) -> str:
    return until if isinstance(until, str) else until.isoformat()


@dataclass(frozen=True, slots=True)
class Effective:
    """A service's end date for one person, and why it is that date when a rule above changed it."""

    service: str                       # the service key
    until: Until
    own: int | None = None             # index in the person's own `authorisations`, when the person names it
    groups: tuple[tuple[str, Until], ...] = ()   # the groups that name it, with their dates
    capped_from: Until | None = None   # the date before the person's `until` capped it
    overridden: Until | None = None    # what the groups give, when the person's own entry says otherwise

    @property
    def overrides(self) -> bool:
        """The person's own entry replaced a different date that a group gives."""
        return self.overridden is not None

    def note(self) -> str:
        """What a reviewer should know about this date; empty when nothing was overridden or capped."""
        parts = []
        if self.overrides:
            named = ", ".join(f"group {g!r} says {show(u)}" for g, u in self.groups)
            parts.append(f"the person's own entry decides ({named})")
        if self.capped_from is not None:
            parts.append(f"capped by the person's until (was {show(self.capped_from)})")
        return "; ".join(parts)


def effective_authorisations(user: User, groups: Mapping[str, Group]) -> dict[str, Effective]:
    """Service key -> its end date for `user`, in the order the file names them (groups first)."""
    out: dict[str, Effective] = {}
    for name in user.groups:
        group = groups.get(name)
        for auth in group.authorisations if group is not None else ():
            have = out.get(auth.service)
            until = later(have.until, auth.until) if have else auth.until
            named = (have.groups if have else ()) + ((name, auth.until),)
            out[auth.service] = Effective(auth.service, until, groups=named)
    for k, auth in enumerate(user.authorisations):
        have = out.get(auth.service)
        if have is not None and have.own is not None:
            continue                   # listed twice: validate refuses it; the first entry counts
        differs = have is not None and have.until != auth.until
        out[auth.service] = Effective(auth.service, auth.until, own=k, groups=have.groups if have else (),
                                      overridden=have.until if have is not None and differs else None)
    if user.until is not None:
        for key, eff in out.items():
            if eff.until == ROLLING or (isinstance(eff.until, dt.date) and eff.until > user.until):
                out[key] = Effective(eff.service, user.until, eff.own, eff.groups, capped_from=eff.until,
                                     overridden=eff.overridden)
    return out
