"""`--compare-to BASE`: tag each planned item with why it is there, so a reviewer sees what the pull request
itself does. `introduced`: this change of config asks for it; `drift`: the base config already asked for it
(the backend was changed by hand); `expiry`: the calendar caused it (a rolling renewal, a date that passed)."""

from __future__ import annotations

from typing import Iterable

from reconciler.plan.model import Change, Deferred, Manual, Origin, Plan, target_list

Atom = tuple[str, ...]


def _atoms(item: Change | Deferred | Manual, kvk: str) -> set[Atom]:
    """The smallest facts an item consists of, so bulk steps grouped differently still compare."""
    action = item.action.value
    if isinstance(item, Change) and "means_ids" in item.params:
        emails = target_list(item.target)
        keys = item.params.get("service_keys", item.params["services"])
        end = str(item.params.get("end_date"))
        return {(kvk, action, e.lower(), k, end) for e in emails for k in keys}
    target = item.target if isinstance(item.target, str) else ",".join(item.target)
    extra = item.rule if isinstance(item, (Deferred, Manual)) else item.detail
    return {(kvk, action, target.lower(), extra)}


def _all_atoms(plan: Plan) -> set[Atom]:
    out: set[Atom] = set()
    for org in plan.organisations:
        for item in _items(org.changes, org.deferred, org.manual):
            out |= _atoms(item, org.kvk)
    return out


def _items(*groups: Iterable[Change | Deferred | Manual]) -> Iterable[Change | Deferred | Manual]:
    for group in groups:
        yield from group


def tag_origins(plan: Plan, base: Plan, base_name: str) -> None:
    """Set `origin` on every change, deferred and manual item of `plan` (compared with `base`'s plan on the
    same backend state and day)."""
    known = _all_atoms(base)
    for org in plan.organisations:
        for item in _items(org.changes, org.deferred, org.manual):
            if isinstance(item, Change) and item.time_driven:
                item.origin = Origin.EXPIRY
            elif _atoms(item, org.kvk) <= known:
                item.origin = Origin.DRIFT
            else:
                item.origin = Origin.INTRODUCED
    plan.compared_to = base_name
