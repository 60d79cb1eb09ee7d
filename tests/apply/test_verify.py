"""`apply.verify.differences`: any edit to what decides an apply is found, and said item by item; what
decides nothing (cost, --compare-to labels, layout) is not reported."""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from reconciler.apply.verify import _same, differences
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


# ------------------------------------------------------------ the fast accept of `_same`, attacked (issue #15)
#: any JSON value `json.loads` gives, non-finite floats and -0.0 included, ints past 64 bits, any text
SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63, max_value=10**40)
           | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0, 1, -0.0, 0.0, 1.0, True, False])
           | st.text(max_size=4))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                          max_size=3), max_leaves=12)


def _twin(value: Any, draw: Any) -> Any:
    """A value Python may call equal to `value` but that may be other JSON: a flag for a number, a float for an
    int, -0.0 for 0.0, a tuple for a list (the same JSON), keys in another order (the same JSON)."""
    if isinstance(value, dict):
        items = [(k, _twin(v, draw)) for k, v in value.items()]
        return dict(reversed(items) if draw(st.booleans()) else items)
    if isinstance(value, list):
        items = [_twin(v, draw) for v in value]
        return tuple(items) if draw(st.booleans()) else items
    if isinstance(value, bool) and draw(st.booleans()):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and draw(st.booleans()):
        return bool(value) if value in (0, 1) and draw(st.booleans()) else float(value) if abs(value) < 2**53 else value
    if isinstance(value, float) and draw(st.booleans()):
        return -value if value == 0 else int(value) if value.is_integer() else value
    return value


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_same_is_equal_as_json_whatever_the_values(data: st.DataObject) -> None:
    """The fast accept (`==` and equal reprs) never accepts what JSON tells apart: for a file's value and a
    derived value Python may call equal, `_same` is exactly "the same JSON text, keys sorted"."""
    saved = json.loads(json.dumps(data.draw(JSON)))           # as a file gives it: NaN, Infinity, -0.0 included
    derived = _twin(saved, data.draw) if data.draw(st.booleans()) else data.draw(JSON)
    assert _same(saved, derived) == (json.dumps(saved, sort_keys=True) == json.dumps(derived, sort_keys=True))
    assert _same(saved, json.loads(json.dumps(saved)))       # a value read again is the same


def _numbers() -> list[tuple[tuple[Any, ...], Any]]:
    out = []
    for path in PATHS:
        node = DATA
        for key in path:
            node = node[key]
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            out.append((path, node))
    return out


#: what an editor may write for a number, as JSON text
SPELLINGS = ["NaN", "Infinity", "-Infinity", "-0", "-0.0", "0.0", "true", "false", "null", '"{n}"', "[{n}]",
             "{n}.0", "{n}e0", "{n}E+0", "{n}0e-1", "{n}00000000000000000000000000000000000000001", "1e400"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_number_written_otherwise_in_the_file_is_found(spelling: str) -> None:
    """Each number of the plan file (revisions, limits, stages, counts) written another way, as raw JSON text (the
    non-standard NaN and Infinity that Python's reader takes included): refused unless it reads back as the very
    same JSON value (`-0` is the integer 0)."""
    numbers = _numbers()
    checked = 0
    for path, value in numbers:
        data = copy.deepcopy(DATA)
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = "@@EDITED@@"
        text = json.dumps(data).replace('"@@EDITED@@"', spelling.format(n=json.dumps(value)))
        try:
            edited = json.loads(text)
        except json.JSONDecodeError:            # `7.5.0`: not a file that could be read
            continue
        checked += 1
        node = edited
        for key in path[:-1]:
            node = node[key]
        same_json = json.dumps(node[path[-1]]) == json.dumps(value)
        assert bool(differences(edited, PLAN)) is not same_json, (path, spelling)
    assert checked >= 3, "the sample plan has integers to edit"


def test_unicode_escapes_duplicate_keys_and_key_order_are_read_as_json_reads_them() -> None:
    """A string spelt with escapes, keys in another order or written twice (the last one counts, as in every
    JSON reader the plan is written for) are the same document; a duplicate whose last value is edited is not."""
    text = json.dumps(DATA, ensure_ascii=True)
    escaped = text.replace('"x@acme.nl"', '"\\u0078@acme\\u002enl"')
    assert escaped != text and differences(json.loads(escaped), PLAN) == []
    reordered = json.loads(json.dumps(DATA, sort_keys=True)[::1])
    reordered["organisations"][0] = dict(reversed(list(reordered["organisations"][0].items())))
    assert differences(reordered, PLAN) == []
    rev = DATA["organisations"][0]["revision"]
    first = text.replace(f'"revision": {rev}', f'"revision": {rev + 1}, "revision": {rev}', 1)
    last = text.replace(f'"revision": {rev}', f'"revision": {rev}, "revision": {rev}.0', 1)
    assert first != text and differences(json.loads(first), PLAN) == []
    assert last != text and differences(json.loads(last), PLAN)


def test_the_derived_plan_is_compared_without_copies_and_left_as_it_was() -> None:
    """`differences` reads the derived plan's data without copying its items' params (a tenth of an apply's start);
    the plan itself must come out unchanged, and a saved document edited in its params must still differ."""
    import copy as copying

    from tests.render.plans import every_action_plan

    plan = every_action_plan()
    before = copying.deepcopy(plan_to_data(plan))
    saved = json.loads(json.dumps(plan_to_data(plan)))
    assert differences(saved, plan) == []
    assert plan_to_data(plan) == before
    change = next(c for o in saved["organisations"] for c in o["changes"] if c["params"])
    key = next(iter(change["params"]))
    change["params"][key] = "edited"
    assert differences(saved, plan) != []
    assert plan_to_data(plan) == before
    shared = plan_to_data(plan, copy=False)
    first = next(c for o in plan.organisations for c in o.changes if c.params)
    assert any(item["params"] is first.params for o in shared["organisations"] for item in o["changes"])
