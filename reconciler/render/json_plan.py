"""A plan as JSON (`schemas/plan.schema.json`): what scripts read and what `apply --plan` carries out."""

from __future__ import annotations

import json
from dataclasses import fields
from functools import cache
from typing import Any

from reconciler.domain.wire import JSON_SCALARS
from reconciler.plan.model import PER_SERVICE, Change, Deferred, Manual, OrgPlan, Plan, Unmanaged, target_list

#: 2: an item's `target` is the object acted on in all three lists (a blocked grant named its services), with
#: `services` beside it. `apply --plan` refuses another version: plan again.
PLAN_FORMAT_VERSION = 2


@cache
def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _copy(value: Any) -> Any:
    """A container copied all the way down (what `dataclasses.asdict` does to a plan item's params and targets,
    without its deep copy of every string: that was a third of writing a 10,000-change plan)."""
    if isinstance(value, dict):
        return {key: _copy(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value


def _item(item: Change | Deferred | Manual | Unmanaged, copy: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in _names(type(item)):
        value = getattr(item, name)
        if type(value) in JSON_SCALARS:       # most fields: copying and probing each cost a third of the item
            data[name] = value
        else:
            value = _copy(value) if copy else value
            data[name] = value.value if hasattr(value, "value") else value     # an enum: its value
    if isinstance(item, Change):
        data["symbol"] = item.symbol
        data["stage"] = int(item.stage)
        data = _with_services(data, item.target, list(item.params.get("service_keys", [])))
    elif isinstance(item, (Deferred, Manual)):
        by_service = item.action in PER_SERVICE and item.person is not None
        data = _with_services(data, item.person if by_service else item.target,
                              target_list(item.target) if by_service else [])
    data.pop("kvk", None)
    return data


def _with_services(data: dict[str, Any], target: Any, services: list[str]) -> dict[str, Any]:
    """The item with `target` the object acted on and `services` right after it (one shape for every list)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = target if key == "target" else value
        if key == "target":
            out["services"] = services
    return out


def _org(org: OrgPlan, copy: bool) -> dict[str, Any]:
    return {"kvk": org.kvk, "name": org.name, "revision": org.revision, "acting_admin": org.acting_admin,
            "changes": [_item(c, copy) for c in org.changes], "deferred": [_item(d, copy) for d in org.deferred],
            "manual": [_item(m, copy) for m in org.manual], "unmanaged": [_item(u, copy) for u in org.unmanaged],
            "warnings": list(org.warnings),
            "valid_until": org.valid_until.isoformat() if org.valid_until else None,
            "valid_until_reason": org.valid_until_reason,
            "removals": {"count": org.removals, "limit": org.removal_limit, "existing": org.existing_objects,
                         "over_threshold": org.over_threshold}}


def plan_to_data(plan: Plan, *, copy: bool = True) -> dict[str, Any]:
    """The plan as JSON data. Its items' params and targets are copies (a caller may change the data without
    changing the plan), unless `copy` is false: for a caller that only reads it (`verify` compares it)."""
    return {"format_version": PLAN_FORMAT_VERSION, "tool_version": plan.tool_version,
            "today": plan.today.isoformat(), "config_digest": plan.config_digest, "backend": plan.backend,
            "compared_to": plan.compared_to, "config_paths": list(plan.config_paths), "shard": plan.shard,
            "force_required": plan.force_required,
            "organisations": [_org(o, copy) for o in plan.organisations], "warnings": list(plan.warnings),
            "cost": {"once": plan.cost.once, "yearly": plan.cost.yearly, "currency": plan.cost.currency},
            "summary": plan.summary()}


def render_json(plan: Plan) -> str:
    return json.dumps(plan_to_data(plan), indent=2, ensure_ascii=True) + "\n"
