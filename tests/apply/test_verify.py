"""`apply.verify.differences`: any edit to what decides an apply is found, and said item by item; what
decides nothing (cost, --compare-to labels, layout) is not reported."""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator

from hypothesis import given, settings, strategies as st

from reconciler.apply.verify import differences
from reconciler.render.json_plan import plan_to_data
from tests.apply.test_saved import sample

IGNORED = {"cost", "summary", "compared_to", "config_paths", "shard", "origin", "cost_once", "cost_yearly"}


def leaves(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every scalar of a plan document outside the ignored fields."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key not in IGNORED:
                yield from leaves(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from leaves(value, path + (i,))
    else:
        yield path


def changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if value is None:
        return "x"
    return str(value) + "x"


PLAN = sample()
DATA = json.loads(json.dumps(plan_to_data(PLAN)))
PATHS = sorted(leaves(DATA), key=repr)


def test_the_plan_itself_has_no_differences() -> None:
    assert differences(DATA, PLAN) == []


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(PATHS))
def test_every_edited_value_is_found(path: tuple[Any, ...]) -> None:
    data = copy.deepcopy(DATA)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = changed(node[path[-1]])
    found = differences(data, PLAN)
    assert found, path
    if "organisations" in path and len(path) > 2:
        assert any(f"organisation {DATA['organisations'][path[1]]['kvk']}" in line or "organisation " in line
                   for line in found)


def same_in_python(value: Any) -> Any:
    """A value Python calls equal (`==`) that JSON writes otherwise: `true` for `1`, `1.0` for `1`, `1` for
    `true`, `-0.0` for `0.0`; None where there is none."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return float(value) if value not in (0, 1) else bool(value)
    if isinstance(value, float):
        return -value if value == 0 else int(value) if value.is_integer() else None
    return None


def test_a_number_or_flag_of_another_json_type_is_found_though_python_calls_it_equal() -> None:
    numbers = []
    for path in PATHS:
        node = DATA
        for key in path:
            node = node[key]
        if same_in_python(node) is not None:
            numbers.append((path, node))
    assert numbers, "the sample plan has numbers and flags"
    for path, value in numbers:
        data = copy.deepcopy(DATA)
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = same_in_python(value)
        assert node[path[-1]] == value and json.dumps(node[path[-1]]) != json.dumps(value)
        assert differences(data, PLAN), path


def test_labels_and_cost_decide_nothing() -> None:
    data = copy.deepcopy(DATA)
    data["cost"]["once"] = 1e9
    data["compared_to"] = "base/config"
    data["organisations"][0]["changes"][0]["origin"] = "drift"
    data["organisations"][0]["changes"][0]["cost_once"] = 0.0
    assert differences(data, PLAN) == []


def test_a_removed_a_duplicated_and_a_reordered_step_are_each_named() -> None:
    data = copy.deepcopy(DATA)
    steps = data["organisations"][0]["changes"]
    assert [line for line in differences({**data, "organisations": [{**data["organisations"][0],
                                                                      "changes": steps[::-1]}]}, PLAN)
            if "another order" in line]
    data["organisations"][0]["changes"] = steps[:1] + steps[:1]
    found = differences(data, PLAN)
    assert any("revoke a@acme.nl, b@acme.nl (step 00000000000000a2) is planned, but missing from the file" in line
               for line in found)
    assert any("request_means x@acme.nl (step 00000000000000a1) is in the file" in line for line in found)


def test_a_hostile_target_in_the_file_is_shown_escaped() -> None:
    data = copy.deepcopy(DATA)
    data["organisations"][0]["changes"][0]["target"] = "x@acme.nl\x1b]0;owned\x07\u202e"
    found = "\n".join(differences(data, PLAN))
    assert "\x1b" not in found and "\x07" not in found and "\u202e" not in found
    assert "\\u001b]0;owned\\u0007\\u202e" in found
