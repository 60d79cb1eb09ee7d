"""A plan saved with `reconciler plan --out plan.json`, read back for `reconciler apply --plan`.

The file is checked against `schemas/plan.schema.json` first (a hand-edited or truncated plan is refused with
the JSON path of what is wrong, and nothing is done), then turned back into the plan objects the executor
carries out. A plan's id is a digest of what makes it what it is (config, day, revisions, steps): the
Idempotency-Key of each request is derived from it and the step id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from reconciler.plan.model import PER_SERVICE, Action, Change, Deferred, Manual, OrgPlan, Origin, Plan, Stage, Unmanaged
from reconciler.render.json_plan import PLAN_FORMAT_VERSION


#: The largest plan file read (a plan of 10,000 steps is about 10 MB).
MAX_PLAN_BYTES = 256 * 1024 * 1024


class SavedPlanError(Exception):
    """The file is not a plan this version can apply."""


def load_plan(path: Path) -> Plan:
    """Read, validate and rebuild a saved plan; `SavedPlanError` says what is wrong (and where)."""
    return plan_from_data(load_plan_data(path))


def load_plan_data(path: Path) -> dict[str, Any]:
    """Read a saved plan and check it against the schema; the document as it is in the file."""
    from reconciler.config.loader import read_capped

    try:
        if path.exists() and not path.is_file():     # a device or a pipe would be read without end
            raise SavedPlanError(f"{path}: not a plan file (not a regular file)")
        raw = read_capped(path, MAX_PLAN_BYTES)
    except OSError as exc:
        raise SavedPlanError(f"{path}: cannot read the plan: {exc.strerror or exc}") from None
    if len(raw) > MAX_PLAN_BYTES:
        raise SavedPlanError(f"{path}: not a plan file (larger than {MAX_PLAN_BYTES:,} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SavedPlanError(f"{path}: not a plan file (not UTF-8 text)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SavedPlanError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}; write a plan with "
                             "`reconciler plan PATH... --out plan.json`") from None
    except (ValueError, RecursionError):          # a number of more than 4,300 digits, nesting past the stack
        raise SavedPlanError(f"{path}: not a plan file (a number too long or nesting too deep for a plan); write "
                             "a plan with `reconciler plan PATH... --out plan.json`") from None
    if isinstance(data, dict) and data.get("format_version") not in (None, PLAN_FORMAT_VERSION):
        raise SavedPlanError(f"{path}: plan format version {data.get('format_version')!r}; this reconciler applies "
                             f"version {PLAN_FORMAT_VERSION}: plan again with this version")
    from reconciler.config.schema import fast_validator, validator

    fast = fast_validator("plan.schema.json")
    if fast is not None and fast(data):           # a large valid plan is confirmed in milliseconds
        return data
    errors = sorted(validator("plan.schema.json").iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path)[:200] or "(top level)"
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        message = first.message if len(first.message) <= 300 else first.message[:297] + "..."
        raise SavedPlanError(f"{path}: not a valid plan at {where}: {message}{more}; plans are written by "
                             "`reconciler plan --out` and must not be edited")
    return data


def plan_from_data(data: dict[str, Any]) -> Plan:
    """The plan objects of a (schema-valid) plan document."""
    orgs = []
    for o in data["organisations"]:
        kvk = o["kvk"]
        org = OrgPlan(kvk=kvk, name=o["name"], revision=o["revision"], acting_admin=o["acting_admin"],
                      changes=[_change(kvk, c) for c in o["changes"]],
                      deferred=[Deferred(**_blocked(kvk, d)) for d in o["deferred"]],
                      manual=[Manual(**_blocked(kvk, m)) for m in o["manual"]],
                      unmanaged=[Unmanaged(kvk, u["kind"], u["target"], u.get("detail", "")) for u in o["unmanaged"]],
                      warnings=list(o["warnings"]), removals=o["removals"]["count"],
                      removal_limit=o["removals"]["limit"], existing_objects=o["removals"]["existing"],
                      valid_until=_date(o.get("valid_until")), valid_until_reason=o.get("valid_until_reason", ""))
        orgs.append(org)
    plan = Plan(today=dt.date.fromisoformat(data["today"]), config_digest=data["config_digest"],
                tool_version=data["tool_version"], backend=data["backend"], organisations=orgs,
                warnings=list(data["warnings"]), force_required=data["force_required"],
                compared_to=data["compared_to"], config_paths=list(data.get("config_paths") or []),
                shard=data.get("shard"))
    plan.cost.once, plan.cost.yearly = data["cost"]["once"], data["cost"]["yearly"]
    return plan


def plan_id(plan: Plan) -> str:
    """What makes this plan itself: a re-plan on a changed backend or another day is another plan."""
    parts = [plan.config_digest, plan.today.isoformat(), plan.backend,
             [(o.kvk, o.revision, [c.id for c in o.changes]) for o in plan.organisations]]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _change(kvk: str, c: dict[str, Any]) -> Change:
    return Change(id=c["id"], kvk=kvk, action=Action(c["action"]), target=c["target"], stage=Stage(c["stage"]),
                  params=dict(c["params"]), detail=c["detail"], person=c["person"], removal=c["removal"],
                  escalation=c["escalation"], origin=Origin(c["origin"]) if c["origin"] else None,
                  time_driven=c["time_driven"], cost_once=c["cost_once"], cost_yearly=c["cost_yearly"],
                  before=c.get("before"), after=c.get("after"))


def _blocked(kvk: str, item: dict[str, Any]) -> dict[str, Any]:
    action = Action(item["action"])
    services = list(item.get("services") or [])
    # a blocked authorisation step is listed by its services (render/json_plan writes the person as target)
    target = (services[0] if len(services) == 1 else services) if action in PER_SERVICE and services \
        and item.get("person") else item["target"]
    return {"kvk": kvk, "action": action, "target": target, "rule": item["rule"],
            "reason": item["reason"], "person": item.get("person"), "detail": item.get("detail", ""),
            "origin": Origin(item["origin"]) if item.get("origin") else None}
