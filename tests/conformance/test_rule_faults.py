"""The sandbox's rule-fault switches (`POST /sandbox/faults/rules`) break one rule for one app's `/v1` requests
only: another app in the same process, and the same app once switched back, keep every rule."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx

from reconciler.backend.sandbox.app import create_app

CONTROL = "c" * 32


async def _request_eh3_without_factor(client: httpx.AsyncClient, token: str, kvk: str, email: str) -> httpx.Response:
    return await client.post(f"/v1/organisations/{kvk}/means", headers={"Authorization": f"Bearer {token}"},
                             json={"email": email, "name": "No factor", "role": "gebruiker", "level": "EH3"})


def test_a_switch_breaks_its_rule_in_its_own_app_only_and_until_switched_back(tmp_path: Path) -> None:
    async def main() -> None:
        clients = []
        for name in ("broken", "intact"):
            app = create_app(tmp_path / f"{name}.db", control_token=CONTROL)
            clients.append(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox",
                                             headers={"Sandbox-Control-Token": CONTROL}))
        broken, intact = clients
        tokens = []
        for client in clients:
            r = await client.post("/sandbox/organisations", json={
                "kvk": "12345678", "name": "Org", "admin": {"email": "a@example.nl", "name": "A", "level": "EH3"}})
            assert r.status_code == 201, r.text
            tokens.append(r.json()["token"])
        r = await broken.post("/sandbox/faults/rules", json={"disabled": ["R19"]})
        assert r.status_code == 200 and r.json()["disabled"] == ["R19"]
        assert (await broken.get("/sandbox/faults/rules")).json()["disabled"] == ["R19"]

        accepted = await _request_eh3_without_factor(broken, tokens[0], "12345678", "one@example.nl")
        assert accepted.status_code == 201, accepted.text
        refused = await _request_eh3_without_factor(intact, tokens[1], "12345678", "one@example.nl")
        assert (refused.status_code, refused.json()["code"]) == (409, "R19")

        assert (await broken.post("/sandbox/faults/rules", json={"disabled": []})).json()["disabled"] == []
        again = await _request_eh3_without_factor(broken, tokens[0], "12345678", "two@example.nl")
        assert (again.status_code, again.json()["code"]) == (409, "R19")
        for client in clients:
            await client.aclose()

    anyio.run(main)


def test_the_switches_need_the_control_token(tmp_path: Path) -> None:
    async def main() -> None:
        app = create_app(tmp_path / "sb.db", control_token=CONTROL)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox") as client:
            r = await client.post("/sandbox/faults/rules", json={"disabled": ["R9"]})
            assert r.status_code == 401
            assert app.state.rule_faults.disabled == frozenset()

    anyio.run(main)
