"""The `/sandbox` controls (tokens for any admin, every organisation's e-mails and phones, the clock) answer only
the holder of the sandbox's control token: 401 problem+json otherwise, and nothing happens."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reconciler.backend.sandbox.app import create_app
from reconciler.backend.sandbox.controls import CONTROL_HEADER

from .conftest import KVK, Sandbox

pytestmark = pytest.mark.anyio

#: A control of each kind: minting a token, listing e-mails and phones, the clock, a lifecycle step, faults.
CONTROLS = [("POST", "/sandbox/tokens", {"means_id": "x", "read_only": False}), ("GET", "/sandbox/means", None),
            ("GET", "/sandbox/clock", None), ("POST", "/sandbox/clock", {"advance_days": 400}),
            ("POST", "/sandbox/means/x/approve", None), ("POST", "/sandbox/faults", {"p_503": 1.0}),
            ("GET", "/sandbox/requests", None), ("DELETE", "/sandbox/requests", None),
            ("POST", "/sandbox/organisations", {"kvk": "87654321", "name": "X",
                                                "admin": {"email": "x@x.nl", "name": "X", "level": "EH3"}}),
            ("GET", "/sandbox/nothing-here", None), ("GET", "/sandbox", None)]


def _bare(sandbox: Sandbox) -> httpx.AsyncClient:
    """A client on the same app without the control token."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app), base_url="http://sandbox.test")


@pytest.mark.parametrize("headers", [{}, {CONTROL_HEADER: "wrong"}, {CONTROL_HEADER: ""},
                                     {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Zm9vOmJhcg=="}],
                         ids=["none", "wrong header", "empty header", "wrong bearer", "basic"])
async def test_controls_refuse_a_request_without_the_control_token(sandbox: Sandbox, headers: dict[str, str]) -> None:
    before = (await sandbox.client.get("/sandbox/means")).json()
    async with _bare(sandbox) as bare:
        for method, path, body in CONTROLS:
            r = await bare.request(method, path, json=body, headers=headers)
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["code"] == "unauthorized" and CONTROL_HEADER in r.json()["detail"]
            assert sandbox.app.state.control_token not in r.text
    assert (await sandbox.client.get("/sandbox/means")).json() == before          # nothing happened
    assert (await sandbox.client.get("/sandbox/clock")).json()["today"] == "2025-06-01"
    assert (await sandbox.client.get("/sandbox/faults")).json()["p_503"] == 0


async def test_an_admin_api_token_is_not_a_control_token(sandbox: Sandbox) -> None:
    async with _bare(sandbox) as bare:
        r = await bare.post("/sandbox/tokens", json={"means_id": sandbox.admin_id}, headers=sandbox.auth())
    assert r.status_code == 401


async def test_the_control_token_in_its_header_or_as_bearer_opens_the_controls(sandbox: Sandbox) -> None:
    control = sandbox.app.state.control_token
    async with _bare(sandbox) as bare:
        r = await bare.get("/sandbox/means", params={"kvk": KVK}, headers={CONTROL_HEADER: control})
        assert r.status_code == 200 and [m["id"] for m in r.json()["items"]] == [sandbox.admin_id]
        r = await bare.post("/sandbox/tokens", json={"means_id": sandbox.admin_id},
                            headers={"Authorization": f"Bearer {control}"})
        assert r.status_code == 201
        minted = r.json()["token"]
        # the /v1 API is not opened by the control token, and an admin's token still works there
        assert (await bare.get("/v1/me", headers={"Authorization": f"Bearer {control}"})).status_code == 401
        assert (await bare.get("/v1/me", headers={"Authorization": f"Bearer {minted}"})).status_code == 200


async def test_each_app_has_its_own_random_control_token_unless_given(tmp_path: Path) -> None:
    a, b = create_app(tmp_path / "a.db"), create_app(tmp_path / "b.db")
    assert a.state.control_token != b.state.control_token and len(a.state.control_token) >= 32
    assert create_app(tmp_path / "c.db", control_token=" chosen ").state.control_token == "chosen"
    with pytest.raises(ValueError):
        create_app(tmp_path / "d.db", control_token="  ")
    for app in (a, b):
        app.state.store.close()
