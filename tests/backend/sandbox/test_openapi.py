"""The committed contract (`schemas/beheer-api.openapi.yaml`) is a fresh export of the app, describes every
route of docs/beheer-api.md, and only those."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from reconciler.backend.sandbox.export_openapi import DEFAULT_OUT, export_text

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "schemas" / "beheer-api.openapi.yaml"


def test_committed_contract_equals_a_fresh_export() -> None:
    assert DEFAULT_OUT.resolve() == COMMITTED.resolve()
    assert COMMITTED.read_text(encoding="utf-8") == export_text(), (
        "schemas/beheer-api.openapi.yaml is stale: run python -m reconciler.backend.sandbox.export_openapi")


def _schema() -> dict:
    return yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))


def test_every_documented_route_is_in_the_contract_and_nothing_else() -> None:
    doc = (ROOT / "docs" / "beheer-api.md").read_text(encoding="utf-8")
    resources = doc.split("## Resources")[1].split("## Sandbox-only")[0]
    routes = re.findall(r"\| `(GET|POST|DELETE) (/v1/[^`]*)`", resources)
    documented = {(method.lower(), path) for method, path in routes}
    schema = _schema()
    exported = {(method, path.replace("{means_id}", "{id}").replace("{intermediary_kvk}", "{ikvk}"))
                for path, item in schema["paths"].items() for method in item}
    assert documented == exported
    assert schema["openapi"].startswith("3.1")


def test_operations_document_auth_errors_and_headers() -> None:
    schema = _schema()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, item in schema["paths"].items():
        for method, op in item.items():
            assert op["summary"] and op["security"] == [{"bearer": []}], (method, path)
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
            if method != "get":
                names = {p["name"] for p in op["parameters"] if p["in"] == "header"}
                assert names == {"If-Match", "Idempotency-Key"}, (method, path)
                assert re.search(r"\bR\d+\b", op["description"]), (method, path)
                assert {"409", "412", "422"} <= set(op["responses"])
                ok = next(s for s in op["responses"] if s.startswith("2"))
                assert "ETag" in op["responses"][ok]["headers"]
            assert "Retry-After" in op["responses"]["429"]["headers"]
