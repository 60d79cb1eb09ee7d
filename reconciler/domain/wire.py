"""Domain values as JSON values, one way for everything that travels: the API's request bodies and a plan's
`params` are the same JSON (enums as their value, dates as YYYY-MM-DD, containers as lists and objects)."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from collections.abc import Mapping    # not typing.Mapping: an isinstance through it costs 4x
from typing import Any


#: Types whose values are JSON as they are: most values are, and asking each whether it is a Mapping (an ABC)
#: cost more than the rest (the plan's JSON passes them through the same way).
JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def json_value(value: Any, *, drop_none: bool = False) -> Any:
    """`value` as JSON; sets sorted (a stable order); with `drop_none`, keys whose value is None are left out
    (the API's defaults apply)."""
    if type(value) in JSON_SCALARS:
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: json_value(v, drop_none=drop_none) for k, v in value.items()
                if not (drop_none and v is None)}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [json_value(v, drop_none=drop_none) for v in items]
    return value
