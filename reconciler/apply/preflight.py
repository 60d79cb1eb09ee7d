"""Checks before anything is sent: is the saved plan still the plan for this backend today, and does it stay
within the removal threshold. Each returns the reasons to refuse (empty: go), in words that say what
changed and what to do."""

from __future__ import annotations

import datetime as dt
from typing import Mapping

from reconciler.plan.model import Plan


class Refused(Exception):
    """The apply does not start (or stops before its first request): nothing was sent."""


def stale_reasons(plan: Plan, *, backend: str, revisions: Mapping[str, int | None], today: dt.date,
                  tool_version: str) -> list[str]:
    """Why a saved plan no longer describes what applying it would do (plan again)."""
    out: list[str] = []
    if plan.tool_version != tool_version:
        out.append(f"the plan was made by reconciler {plan.tool_version}, this is {tool_version}")
    if plan.backend != backend:
        out.append(f"the plan was made against {plan.backend}, not {backend}")
    for org in plan.organisations:
        now = revisions.get(org.kvk)
        if now != org.revision:
            then = "unknown to the backend" if org.revision is None else f"revision {org.revision}"
            out.append(f"organisation {org.kvk} changed since the plan was made ({then} then, "
                       f"{'gone' if now is None else f'revision {now}'} now)")
    if today < plan.today:
        out.append(f"the backend's today ({today}) is before the plan's ({plan.today})")
    elif today > plan.today:
        for org in plan.organisations:
            if org.valid_until is not None and today >= org.valid_until:
                out.append(f"the plan was made on {plan.today}; today is {today}, and on {org.valid_until} "
                           f"{org.valid_until_reason} (organisation {org.kvk})")
    return out


def threshold_reasons(plan: Plan) -> list[str]:
    """Organisations whose removals exceed policy.max_removals (the plan's own check, `Plan.unsafe_reasons`)."""
    return plan.unsafe_reasons()
