"""`schemas/plan.schema.json` describes exactly what `render_json` produces: hand-built plans with every action
and item kind, real plans of the planner (and of `reconciler plan --format json`) validate; what the format
does not allow is rejected."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from reconciler.plan.compare import tag_origins
from reconciler.plan.model import SYMBOL, Action, Origin, Plan
from reconciler.plan.planner import PlanInput, make_plan
from reconciler.render.json_plan import render_json

from ..plan.conftest import KVK, TODAY, Backend, config
from .plans import big_plan, empty_plan, every_action_plan, over_threshold_plan

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schemas" / "plan.schema.json"
EXAMPLE = ROOT / "examples" / "org.yaml"
ADMIN = "  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}\n"
ADMIN_ROLLING = """\
  - email: admin@acme.nl
    name: Admin
    role: beheerder
    level: EH3
    second_factor: {type: otp}
    authorisations: [{service: rvo/tenderned, until: rolling}]
"""


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def errors(validator: Draft202012Validator, data: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]


def as_json(plan: Plan) -> dict[str, Any]:
    return json.loads(render_json(plan))


# ==================================================================================================== schema
def test_the_schema_is_valid_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert (ROOT / "reconciler" / "schemas" / "plan.schema.json").read_text() == SCHEMA_PATH.read_text()


def test_the_vocabulary_is_the_models(schema: dict[str, Any]) -> None:
    assert schema["$defs"]["action"]["enum"] == [a.value for a in Action]
    assert sorted(k[len("params_"):] for k in schema["$defs"] if k.startswith("params_")) == sorted(a.value
                                                                                                     for a in Action)
    symbols = {rule["if"]["properties"]["action"]["const"]: rule["then"]["properties"]["symbol"]["const"]
               for rule in schema["$defs"]["change"]["allOf"]}
    assert symbols == {a.value: SYMBOL[a] for a in Action}


def _properties(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            yield f"{path}/properties/{name}", sub
        for key, sub in node.items():
            yield from _properties(sub, f"{path}/{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from _properties(sub, f"{path}/{i}")


def test_every_property_has_a_description(schema: dict[str, Any]) -> None:
    props = [(path, sub) for path, sub in _properties(schema) if "/allOf/" not in path]
    assert len(props) > 80
    undescribed = [path for path, sub in props
                   if not sub.get("description") and not _describes_ref(schema, sub)]
    assert undescribed == []


def _describes_ref(schema: dict[str, Any], sub: dict[str, Any]) -> bool:
    ref = sub.get("$ref", "")
    return ref.startswith("#/$defs/") and bool(schema["$defs"][ref.split("/")[-1]].get("description"))


def test_fixed_shapes_are_closed(schema: dict[str, Any]) -> None:
    defs = schema["$defs"]
    closed = [schema, schema["properties"]["cost"], schema["properties"]["summary"], defs["organisation"],
              defs["organisation"]["properties"]["removals"], defs["change"], defs["deferred"], defs["manual"],
              defs["unmanaged"], *[defs[f"params_{a.value}"] for a in Action]]
    assert all(node["additionalProperties"] is False for node in closed)


# ================================================================================================ hand-built
HAND_BUILT: dict[str, Callable[[], Plan]] = {
    "every action": every_action_plan, "over threshold": over_threshold_plan, "empty": empty_plan,
    "big": lambda: big_plan(orgs=2, changes=120, deferred=10, warnings=2)}


@pytest.mark.parametrize("name", list(HAND_BUILT))
def test_hand_built_plans_validate(name: str, validator: Draft202012Validator) -> None:
    assert errors(validator, as_json(HAND_BUILT[name]())) == []


def test_the_hand_built_plan_has_every_kind_of_item() -> None:
    """So that validating it exercises every branch of the schema."""
    data = as_json(every_action_plan())
    org, unknown = data["organisations"]
    assert {c["action"] for c in org["changes"]} == {a.value for a in Action}
    assert {c["origin"] for c in org["changes"]} == {"introduced", "drift", "expiry", None}
    assert {type(c["target"]) for c in org["changes"]} == {str, list}
    assert org["deferred"] and org["manual"] and org["unmanaged"] and org["warnings"] and data["warnings"]
    assert unknown["revision"] is None and unknown["acting_admin"] is None
    assert data["compared_to"] == "base.yaml"


# ===================================================================================================== real
def _plan(tmp_path: Path, backend: Backend, body: str, **kw: Any) -> Plan:
    return make_plan(PlanInput([config(tmp_path, body)], backend.world, TODAY, {KVK: "admin"}, {KVK: 7},
                               config_digest="sha256:" + "0" * 64, tool_version="0.1.0", backend="sandbox:x", **kw))


def test_real_plan_with_additions_chains_and_deferred_steps(tmp_path: Path, validator: Draft202012Validator) -> None:
    backend = Backend()
    admin = backend.means("admin@acme.nl", "beheerder")
    backend.auth(admin, "rvo/tenderned", TODAY + dt.timedelta(days=10))
    backend.means("up@acme.nl", level="EH2+")
    backend.means("b@acme.nl", "beheerder")
    plan = _plan(tmp_path, backend, f"""\
users:
{ADMIN_ROLLING}  - {{email: up@acme.nl, name: Up, role: beheerder, level: EH3, second_factor: {{type: sms, phone: "+31612345678"}},
     authorisations: [{{service: uwv/werkgeversportaal, until: 2028-01-01}}, {{service: algemene-bevoegdheid-2, until: 2028-01-01}}]}}
  - {{email: b@acme.nl, name: B, role: beheerder, level: EH3, second_factor: {{type: otp}}}}
  - {{email: new@acme.nl, name: New, role: gebruiker, level: EH2, authorisations: [{{service: rvo/tenderned, until: rolling}}]}}
chain_authorisations:
  - {{intermediary: {{kvk: "47474747", name: Accountants Vries}}, services: [rvo/tenderned], until: 2029-01-01}}
""")
    data = as_json(plan)
    [org] = data["organisations"]
    actions = {c["action"] for c in org["changes"]}
    assert {"request_means", "change_role", "change_level", "set_end_date", "issue_chain"} <= actions
    assert org["deferred"] and any(c["escalation"] for c in org["changes"])
    assert errors(validator, data) == []


def test_real_plan_with_removals_over_the_threshold(tmp_path: Path, validator: Draft202012Validator) -> None:
    backend = Backend()
    admin = backend.means("admin@acme.nl", "beheerder")
    backend.auth(admin, "uwv/werkgeversportaal", dt.date(2028, 1, 1))
    backend.means("demoted@acme.nl", "beheerder")
    for i in range(4):
        backend.means(f"gone{i}@acme.nl")
    backend.chain("11111111", ["rvo/tenderned"], dt.date(2028, 1, 1))
    plan = _plan(tmp_path, backend, "policy: {prune: true, max_removals: 1}\nusers:\n" + ADMIN
                 + "  - {email: demoted@acme.nl, name: D, role: gebruiker, level: EH3, second_factor: {type: otp}}\n")
    data = as_json(plan)
    [org] = data["organisations"]
    assert {"revoke", "terminate_means", "change_role", "remove_intermediary"} <= {c["action"] for c in org["changes"]}
    assert data["force_required"] is True and org["removals"]["over_threshold"] is True
    assert errors(validator, data) == []


def test_real_plan_with_unmanaged_and_manual_steps(tmp_path: Path, validator: Draft202012Validator) -> None:
    backend = Backend()
    admin = backend.means("admin@acme.nl", "beheerder")
    backend.means("b@acme.nl", "beheerder")
    backend.means("extra@acme.nl")
    backend.auth(admin, "rvo/tenderned", dt.date(2028, 1, 1))
    backend.chain("11111111", ["rvo/tenderned"], dt.date(2028, 1, 1))
    plan = _plan(tmp_path, backend, "policy: {prune: false}\nusers:\n"
                 "  - {email: admin@acme.nl, name: Admin, role: gebruiker, level: EH3, second_factor: {type: otp}}\n"
                 "  - {email: b@acme.nl, name: B, role: beheerder, level: EH3, second_factor: {type: otp}}\n"
                 "  - {email: high@acme.nl, name: H, role: gebruiker, level: EH4, second_factor: {type: otp}}\n")
    data = as_json(plan)
    [org] = data["organisations"]
    assert {u["kind"] for u in org["unmanaged"]} == {"means", "authorisation", "intermediary"}
    assert {m["rule"] for m in org["manual"]} == {"R3", "R4"}
    assert errors(validator, data) == []


def test_every_list_names_its_target_the_same_way(tmp_path: Path, validator: Draft202012Validator) -> None:
    """Issue #13: a grant change and a deferred grant both have the person as `target` and the service keys in
    `services` (a deferred grant named its services as target); a saved plan reads back to the same JSON."""
    from reconciler.apply.saved import plan_from_data
    from reconciler.domain.state import Status

    backend = Backend()
    backend.means("admin@acme.nl", "beheerder")
    backend.means("wacht@acme.nl", status=Status.WACHTEN_OP_ACTIVATIE)
    plan = _plan(tmp_path, backend, "users:\n" + ADMIN.rstrip()[:-1]
                 + ", authorisations: [{service: rvo/tenderned, until: 2028-01-01}]}\n"
                 "  - {email: wacht@acme.nl, name: W, role: gebruiker, level: EH3, second_factor: {type: otp},\n"
                 "     authorisations: [{service: rvo/tenderned, until: 2028-01-01}]}\n")
    data = as_json(plan)
    [org] = data["organisations"]
    [grant] = [c for c in org["changes"] if c["action"] == "grant"]
    [waits] = [d for d in org["deferred"] if d["action"] == "grant"]
    assert (grant["target"], grant["services"]) == ("admin@acme.nl", ["rvo/tenderned"])
    assert (waits["target"], waits["services"], waits["person"]) == ("wacht@acme.nl", ["rvo/tenderned"],
                                                                      "wacht@acme.nl")
    assert list(grant)[list(grant).index("target") + 1] == "services" == list(waits)[list(waits).index("target")
                                                                                      + 1]
    assert data["format_version"] == 2 and errors(validator, data) == []
    assert as_json(plan_from_data(data)) == data


def test_real_plan_for_an_unknown_organisation(tmp_path: Path, validator: Draft202012Validator) -> None:
    desired = config(tmp_path, "users:\n" + ADMIN, header='version: 1\norganisation: {kvk: "11112222", name: New}\n')
    data = as_json(make_plan(PlanInput([desired], Backend().world, TODAY, {}, {})))
    [org] = data["organisations"]
    assert org["revision"] is None and org["acting_admin"] is None and org["manual"][0]["rule"] == "R16"
    assert data["config_digest"] == "" and errors(validator, data) == []


def test_real_plan_compared_to_a_base(tmp_path: Path, validator: Draft202012Validator) -> None:
    backend = Backend()
    admin = backend.means("admin@acme.nl", "beheerder")
    backend.auth(admin, "rvo/tenderned", TODAY + dt.timedelta(days=10))
    body = "users:\n" + ADMIN_ROLLING
    base = _plan(tmp_path, backend, body)
    head = _plan(tmp_path, backend, body + "  - {email: n@acme.nl, name: N, role: gebruiker, level: EH2}\n")
    tag_origins(head, base, "base/org.yaml")
    data = as_json(head)
    assert {c["origin"] for c in data["organisations"][0]["changes"]} == {Origin.EXPIRY.value,
                                                                            Origin.INTRODUCED.value}
    assert any(c["time_driven"] for c in data["organisations"][0]["changes"])
    assert data["compared_to"] == "base/org.yaml" and errors(validator, data) == []


def test_the_cli_json_validates(tmp_path: Path, validator: Draft202012Validator) -> None:
    from reconciler.cli.main import cli

    out_file = tmp_path / "plan.json"
    result = CliRunner().invoke(cli, ["plan", str(EXAMPLE), "--backend", f"sandbox:{tmp_path / 'sb.db'}",
                                      "--format", "json", "--out", str(out_file)], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    data = json.loads(result.stdout)
    assert data["organisations"][0]["changes"] and data["config_digest"].startswith("sha256:")
    assert errors(validator, data) == []
    assert errors(validator, json.loads(out_file.read_text(encoding="utf-8"))) == []


# ================================================================================================= rejected
def _mutated(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(_BASE)
    change(data)
    return data


_BASE = as_json(every_action_plan())


def _org(data: dict[str, Any]) -> dict[str, Any]:
    return data["organisations"][0]


def _set(path: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda data: path(data).__setitem__(key, value)


def _drop(path: Callable[[dict[str, Any]], dict[str, Any]], key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: path(data).pop(key)


def _change(action: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda data: next(c for c in _org(data)["changes"] if c["action"] == action)


REJECTED: dict[str, Callable[[dict[str, Any]], None]] = {
    "unknown action in a change": _set(_change("request_means"), "action", "delete_everything"),
    "unknown action in a deferred step": _set(lambda d: _org(d)["deferred"][0], "action", "wait"),
    "unknown action in a manual step": _set(lambda d: _org(d)["manual"][0], "action", "Grant"),
    "rule R0": _set(lambda d: _org(d)["deferred"][0], "rule", "R0"),
    "rule R21": _set(lambda d: _org(d)["manual"][0], "rule", "R21"),
    "rule in lower case": _set(lambda d: _org(d)["manual"][0], "rule", "r7"),
    "deferred without a reason": _drop(lambda d: _org(d)["deferred"][0], "reason"),
    "empty target list": _set(_change("grant"), "target", []),
    "numeric target": _set(_change("request_means"), "target", 42),
    "symbol that does not fit the action": _set(_change("request_means"), "symbol", "-"),
    "grant params without means": _drop(lambda d: _change("grant")(d)["params"], "means_ids"),
    "params of another action": _set(_change("request_means"), "params", {"means_id": "m", "role": "beheerder"}),
    "stage 5": _set(_change("request_means"), "stage", 5),
    "unknown origin": _set(_change("request_means"), "origin", "magic"),
    "format version 1 (before the uniform targets)": _set(lambda d: d, "format_version", 1),
    "format version 3": _set(lambda d: d, "format_version", 3),
    "unknown top-level key": _set(lambda d: d, "extra", True),
    "unknown organisation key": _set(_org, "extra", True),
    "unknown change key": _set(_change("request_means"), "extra", True),
    "summary without api_calls": _drop(lambda d: d["summary"], "api_calls"),
    "kvk of 7 digits": _set(_org, "kvk", "1234567"),
    "today not a date": _set(lambda d: d, "today", "21-11-2026"),
    "negative cost": _set(lambda d: d["cost"], "once", -1),
    "unknown kind of unmanaged object": _set(lambda d: _org(d)["unmanaged"][0], "kind", "group"),
}


def test_the_base_of_the_rejections_is_valid(validator: Draft202012Validator) -> None:
    assert errors(validator, _BASE) == []
    assert _change("grant")(_BASE)["params"]["means_ids"] and isinstance(_change("grant")(_BASE)["target"], list)


@pytest.mark.parametrize("name", list(REJECTED))
def test_rejected(name: str, validator: Draft202012Validator) -> None:
    assert errors(validator, _mutated(REJECTED[name])) != []


def test_every_rule_id_r1_to_r20_is_accepted(validator: Draft202012Validator) -> None:
    for n in range(1, 21):
        data = _mutated(_set(lambda d: _org(d)["deferred"][0], "rule", f"R{n}"))
        assert errors(validator, data) == [], n


# ============================================================================ the fast path of `_item` (issue #15)
def _item_before(item: Any, copy: bool = True) -> dict[str, Any]:
    """`json_plan._item` as it was before plain values were passed through: every field copied, then any value
    with a `.value` (an enum) replaced by it. The reference the fast path must match byte for byte (`copy` is
    taken and ignored: this copies always)."""
    from reconciler.plan.model import PER_SERVICE, Change, Deferred, Manual, target_list
    from reconciler.render import json_plan as jp

    data = {name: jp._copy(getattr(item, name)) for name in jp._names(type(item))}
    for key, value in list(data.items()):
        if hasattr(value, "value"):
            data[key] = value.value
    if isinstance(item, Change):
        data["symbol"] = item.symbol
        data["stage"] = int(item.stage)
        data = jp._with_services(data, item.target, list(item.params.get("service_keys", [])))
    elif isinstance(item, (Deferred, Manual)):
        by_service = item.action in PER_SERVICE and item.person is not None
        data = jp._with_services(data, item.person if by_service else item.target,
                                 target_list(item.target) if by_service else [])
    data.pop("kvk", None)
    return data


def test_plan_json_is_byte_identical_to_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain values written as they are, everything else as before: enums by value, a str subclass as text, a
    flag as `true` (not `1`), nested params copied; the same bytes for every hand-built plan and odd values."""
    from reconciler.render import json_plan as jp

    class Email(str):
        pass

    plans = {name: make() for name, make in HAND_BUILT.items()}
    odd = every_action_plan()
    change = odd.organisations[0].changes[0]
    change.target, change.person, change.removal = Email("x@acme.nl"), Email("x@acme.nl"), 1  # type: ignore[assignment]
    change.cost_once, change.detail = -0.0, Email("a -> b")
    change.params = {**change.params, "nested": [{"origin": Origin.DRIFT, "flag": True, "n": (1, 2.0)}]}
    plans["odd"] = odd
    fast = {name: render_json(plan) for name, plan in plans.items()}
    monkeypatch.setattr(jp, "_item", _item_before)
    assert {name: render_json(plan) for name, plan in plans.items()} == fast
    assert '"removal": 1' in fast["odd"] and '"cost_once": -0.0' in fast["odd"]
