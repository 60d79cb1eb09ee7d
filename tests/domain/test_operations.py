"""The operations, declared once: what a plan item serialises (`params`) is what it decodes back to."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import typing
from enum import Enum
from typing import Any

from hypothesis import given, strategies as st

from reconciler.domain import operations as ops
from reconciler.domain import rules
from reconciler.domain.levels import Level
from reconciler.domain.means import MeansType, Role, SecondFactorType, Subscription
from reconciler.plan.model import SYMBOL, Action, Change, Stage

KVK = "12345678"
D = dt.date(2027, 3, 31)


def test_every_action_of_the_plan_vocabulary_is_one_operation() -> None:
    assert set(ops.BY_ACTION) == {a.value for a in Action} == {a.value for a in SYMBOL}
    assert all(ops.BY_ACTION[cls.action] is cls for cls in typing.get_args(ops.AdminOperation))


def test_the_rules_check_the_same_classes() -> None:
    """rules.Grant is operations.Grant: the rules, the plan and apply share one declaration."""
    assert rules.Grant is ops.Grant and rules.RequestMeans is ops.RequestMeans and rules.AdminOperation is \
        ops.AdminOperation


# The serialised form is the plan file's `params`: plan.schema.json and the step ids (which derive the
# Idempotency-Keys) depend on it to the key and its order.
CASES: list[tuple[ops.AdminOperation, dict[str, Any] | None, dict[str, Any]]] = [
    (ops.RequestMeans(KVK, "ignored", "a@x.nl", "A", Role.BEHEERDER, Level.EH3, second_factor=SecondFactorType.SMS,
                      phone="+31612345678"), None,
     {"email": "a@x.nl", "name": "A", "role": "beheerder", "level": "EH3", "type": "regulier",
      "second_factor": "sms", "phone": "+31612345678", "subscription": "1y"}),
    (ops.LinkMeans(KVK, "m1", Role.GEBRUIKER), None,
     {"means_id": "m1", "role": "gebruiker", "subscription": "1y", "from_kvk": None}),
    (ops.Terminate(KVK, "m1"), None, {"means_id": "m1", "mode": "now"}),
    (ops.Terminate(KVK, "m1", "date", D), None, {"means_id": "m1", "mode": "date", "date": "2027-03-31"}),
    (ops.Grant(KVK, ("m1", "m2"), ("u1",), D), {"service_keys": ["k1"]},
     {"means_ids": ["m1", "m2"], "services": ["u1"], "service_keys": ["k1"], "end_date": "2027-03-31"}),
    (ops.Grant(KVK, ("m1",), ("u1",)), {"service_keys": ["k1"]},
     {"means_ids": ["m1"], "services": ["u1"], "service_keys": ["k1"]}),
    (ops.Revoke(KVK, ("m1",), ("u1",)), {"service_keys": ["k1"]},
     {"means_ids": ["m1"], "services": ["u1"], "service_keys": ["k1"]}),
    (ops.IssueChain(KVK, "87654321", ("u1",), None, "Boekhouder"), {"service_keys": ["k1"]},
     {"intermediary_kvk": "87654321", "name": "Boekhouder", "services": ["u1"], "service_keys": ["k1"],
      "end_date": None}),
    (ops.SetChainEndDate(KVK, "87654321", D, ("u1",)), {"service_keys": ["k1"]},
     {"intermediary_kvk": "87654321", "end_date": "2027-03-31", "services": ["u1"], "service_keys": ["k1"]}),
    (ops.RevokeChain(KVK, "87654321", ("u1", "u2")), {"service_keys": ["k1", "k2"]},
     {"intermediary_kvk": "87654321", "services": ["u1", "u2"], "service_keys": ["k1", "k2"]}),
]


def test_the_serialised_form_to_the_key_and_its_order() -> None:
    for op, extras, params in CASES:
        encoded = ops.encode(op, extras)
        assert json.dumps(encoded) == json.dumps(params), type(op).__name__


def test_a_request_leaves_the_means_id_to_the_backend() -> None:
    change = Change("s", KVK, Action.REQUEST_MEANS, "a@x.nl", Stage.ADD, ops.encode(CASES[0][0]))
    assert change.operation().means_id == ""
    assert change.operation("fresh-1") == dataclasses.replace(CASES[0][0], means_id="fresh-1")


# ---------------------------------------------------------------------------------------- round trip
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_ids = st.lists(_text, min_size=1, max_size=3).map(tuple)
_date = st.dates(dt.date(2000, 1, 1), dt.date(9000, 12, 31))


def _value(hint: Any) -> st.SearchStrategy[Any]:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if args and typing.get_origin(hint) is not tuple:          # X | None
        return st.none() | _value(args[0])
    if isinstance(hint, type) and issubclass(hint, Enum):
        return st.sampled_from(list(hint))
    if hint is dt.date:
        return _date
    if typing.get_origin(hint) is tuple:
        return _ids
    return _text


@st.composite
def operations(draw: st.DrawFn) -> ops.AdminOperation:
    cls = draw(st.sampled_from(list(ops.BY_ACTION.values())))
    hints = typing.get_type_hints(cls)
    values = {f.name: draw(_value(hints[f.name])) for f in dataclasses.fields(cls)}
    if cls is ops.RequestMeans:
        values["means_id"] = ""                                # chosen by the backend: never serialised
    return cls(**values)


@given(operations())
def test_decode_of_encode_is_the_operation(op: ops.AdminOperation) -> None:
    params = ops.encode(op, {"service_keys": ["k"]} if hasattr(op, "services") else None)
    assert json.loads(json.dumps(params)) == params              # plain JSON values only
    assert ops.decode(op.action, op.kvk, params) == op


@given(operations(), _text)
def test_a_change_carries_its_operation(op: ops.AdminOperation, new_id: str) -> None:
    change = Change("s", op.kvk, Action(op.action), "t", Stage.ADD, ops.encode(op))
    expected = dataclasses.replace(op, means_id=new_id) if isinstance(op, ops.RequestMeans) else op
    assert change.operation(new_id) == expected


def test_one_json_for_the_api_and_the_plan() -> None:
    """domain.wire: the client's request bodies and the plan's params are one encoding; the API leaves None out."""
    from reconciler.domain.wire import json_value

    value = {"level": Level.EH2PLUS, "end": D, "ids": ("b", "a"), "set": frozenset({"y", "x"}), "none": None}
    assert json_value(value) == {"level": "EH2+", "end": "2027-03-31", "ids": ["b", "a"], "set": ["x", "y"],
                                 "none": None}
    assert "none" not in json_value(value, drop_none=True)


def test_plain_values_pass_through_json_value_as_the_general_path_gives_them() -> None:
    """The fast path for plain values (issue #15) writes what the general path wrote: enums (str and int ones)
    as their value, a str subclass as its text, a flag as a flag and not a number, containers walked."""
    import enum

    from reconciler.domain.wire import json_value

    class Kvk(str):
        pass

    class Stage(enum.IntEnum):
        ADD = 2

    value = {"kvk": Kvk("12345678"), "stage": Stage.ADD, "flag": True, "one": 1, "half": 0.5, "zero": -0.0,
             "role": Role.BEHEERDER, "nested": [{"level": Level.EH3, "ids": ("a", Kvk("b"))}], "none": None}
    got = json_value(value)
    assert json.dumps(got) == ('{"kvk": "12345678", "stage": 2, "flag": true, "one": 1, "half": 0.5, "zero": -0.0, '
                               '"role": "beheerder", "nested": [{"level": "EH3", "ids": ["a", "b"]}], "none": null}')
    assert type(got["stage"]) is int and got["flag"] is True and type(got["role"]) is str
