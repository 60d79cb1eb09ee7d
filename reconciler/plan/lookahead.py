"""Deferred or manual, decided by looking ahead instead of guessing.

A refused step is *deferred* when a later run of the reconciler will make it without anyone's help, once what
this plan starts has been processed; it is *manual* when no run ever will (a person must act: another admin,
the holder, the supplier). Which one it is depends on the whole plan, across organisations: a downgrade
refused here (R2) may be unblocked by another organisation's termination, a request above the acting admin's
level (R4) by that admin's own pending upgrade. Rules of thumb got this wrong in both directions, so the
planner plays the future forward on its own simulation instead: the supplier approves what is pending (R5, R6),
the holders activate (R5), scheduled terminations take effect (R14), and the planner plans again, for a few
rounds, until a plan has no changes left. What a later round does stays deferred; what no round does becomes
manual; a manual guess that a later round does after all becomes deferred.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Iterable

from reconciler.domain import rules
from reconciler.domain.state import Status, World
from reconciler.plan.model import PER_SERVICE, Action, Change, Deferred, Manual, Plan, _Blocked, target_list

#: Rounds looked ahead. Each round is one wait for the supplier and the holders; chains of dependencies in
#: practice are at most three long (activate, then promote, then demote the old admin).
ROUNDS = 4

#: Steps whose target is a list of service keys of one person (the others name one object).


Key = tuple[str, str, str, str]

#: Manual guesses a later round may take back (R4: the acting admin's level or links are changing; R3: the
#: acting admin's own role may change). The others name what the planner never does itself (R11 the holder's
#: e-mail, R19 the second factor, R14 a scheduled or last termination, R16, R17, R18).
_MAY_LIFT = frozenset({"R3", "R4"})          # (kvk, action, person or object, service key or "")


def the_future(world: World, today: dt.date) -> None:
    """What happens between two runs without the reconciler: the supplier approves, the holders activate."""
    for means_id in sorted(world.means):
        means = world.means[means_id]
        if means.status is Status.WACHTEN_OP_GOEDKEURING or means.pending is not None:
            world.apply(rules.approve(world, means_id, today))
    for means_id in sorted(world.means):
        if world.means[means_id].status is Status.WACHTEN_OP_ACTIVATIE:
            world.apply(rules.activate(world, means_id, today))


def the_dates(world: World) -> bool:
    """Scheduled terminations take effect (R14); whether there were any. Dates come after approvals and
    activations (weeks, not days), so they are played only once the rounds come to rest without them."""
    scheduled = [(kvk, means_id) for kvk, state in sorted(world.orgs.items())
                 for means_id, membership in sorted(state.members.items()) if membership.terminates_on is not None]
    for kvk, means_id in scheduled:
        if kvk in world.orgs and means_id in world.orgs[kvk].members:
            world.apply(rules.scheduled_termination(world, kvk, means_id))
    return bool(scheduled)


def change_keys(change: Change) -> Iterable[Key]:
    """What a change does, in the terms blocked items are named in."""
    action = change.action.value
    if change.action in PER_SERVICE:
        people = target_list(change.target)
        for person in people:
            for key in change.params.get("service_keys", []):
                yield change.kvk, action, person.lower(), key
    else:
        yield change.kvk, action, str(change.target).lower(), ""


def item_keys(item: _Blocked) -> list[Key]:
    action = item.action.value
    if item.action in PER_SERVICE:
        services = target_list(item.target)
        return [(item.kvk, action, (item.person or "").lower(), key) for key in services]
    return [(item.kvk, action, str(item.target).lower(), "")]


@dataclass
class Outcome:
    """What looking ahead found: the steps later rounds make, and whether the rounds came to rest."""

    done: set[Key]
    at_rest: bool
    rounds: int


def needed(plan: Plan, world: World) -> bool:
    """Whether any blocked item's label is in doubt. The common case needs no rounds: grants waiting (R7) for a
    means that is requested, being linked or awaiting activation now; the config was validated (R8, R13, R19),
    so those are granted once the supplier and the holder have done their part."""
    for org in plan.organisations:
        if any(m.rule in _MAY_LIFT for m in org.manual):
            return True
        for item in org.deferred:
            if item.rule != "R7" or item.action is not Action.GRANT:
                return True
            means = world.means_by_email(item.person or "")
            if means is None:
                return True
            pending_link = means.pending is not None and means.pending.kvk == item.kvk
            if not (pending_link or (world.membership(item.kvk, means.id) is not None
                                     and means.status in (Status.WACHTEN_OP_GOEDKEURING, Status.WACHTEN_OP_ACTIVATIE)
                                     and means.pending is None)):
                return True
    return False


def look_ahead(world: World, today: dt.date, replan: Callable[[World, int], Plan]) -> Outcome:
    """Play the future forward on `world` (the simulation after this plan; it is changed)."""
    done: set[Key] = set()
    for n in range(1, ROUNDS + 1):
        the_future(world, today)
        later = replan(world, n)
        for change in later.changes:
            done.update(change_keys(change))
        if not later.changes and not the_dates(world):
            return Outcome(done, True, n)
    return Outcome(done, False, ROUNDS)


def classify(plan: Plan, outcome: Outcome) -> None:
    """Relabel the blocked items of `plan` with what looking ahead found (see the module's docstring)."""
    for org in plan.organisations:
        deferred: list[Deferred] = []
        manual: list[Manual] = []
        now_manual: list[Manual] = []
        now_deferred: list[Deferred] = []
        for item in org.deferred:
            if not outcome.at_rest:          # the rounds ran out: what is not done yet may still be done later
                deferred.append(item)
                continue
            later, never = _split(item, outcome.done)
            if later is not None:
                deferred.append(later)                                   # type: ignore[arg-type]
            if never is not None:
                never.reason += ("; no later run can do it either: it waits on something only a person can change "
                                 "(see the other manual items)")
                now_manual.append(Manual(**vars(never)))
        for guess in org.manual:
            later, never = _split(guess, outcome.done)
            if later is not None:
                later.reason += "; a later run does it by itself once the steps before it have been processed"
                now_deferred.append(Deferred(**vars(later)))
            if never is not None:
                manual.append(never)                                     # type: ignore[arg-type]
        org.deferred = deferred + now_deferred
        org.manual = manual + now_manual


def _split(item: _Blocked, done: set[Key]) -> tuple[_Blocked | None, _Blocked | None]:
    """(the part a later round does, the part none does); a per-service item may split in two."""
    keys = item_keys(item)
    hit = [k for k in keys if k in done]
    if len(hit) == len(keys):
        return item, None
    if not hit:
        return None, item
    assert isinstance(item.target, list)
    later_targets = [k[3] for k in hit]
    never_targets = [t for t in item.target if t not in later_targets]
    return (type(item)(**{**vars(item), "target": later_targets}),
            type(item)(**{**vars(item), "target": never_targets}))
