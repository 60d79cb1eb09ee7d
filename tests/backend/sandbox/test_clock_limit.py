"""The sandbox clock stops at LATEST_TODAY (issue #10): a later day, or an advance past it, is 422 `invalid`
(it was a 500 OverflowError), and the clock stays where it was."""

from __future__ import annotations

import pytest

from reconciler.domain.rules import LATEST_TODAY

from .conftest import Sandbox

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("body", [{"today": "9999-12-31"}, {"today": "9001-01-01"}])
async def test_a_day_beyond_the_latest_is_422(sandbox: Sandbox, body: dict[str, object]) -> None:
    r = await sandbox.client.post("/sandbox/clock", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid" and LATEST_TODAY.isoformat() in r.json()["detail"]
    assert (await sandbox.client.get("/sandbox/clock")).json()["today"] == "2025-06-01"


async def test_advancing_past_the_latest_is_422_and_up_to_it_works(sandbox: Sandbox) -> None:
    r = await sandbox.client.post("/sandbox/clock", json={"today": "9000-01-01"})
    assert r.status_code == 200, r.text
    r = await sandbox.client.post("/sandbox/clock", json={"advance_days": 36500})
    assert r.status_code == 422 and r.json()["code"] == "invalid", r.text
    r = await sandbox.client.post("/sandbox/clock", json={"advance_days": 364})
    assert r.status_code == 200 and r.json()["today"] == LATEST_TODAY.isoformat(), r.text
    r = await sandbox.get("/v1/me")
    assert r.status_code == 200 and r.json()["today"] == LATEST_TODAY.isoformat()
