"""Fault injection on `/v1` (deterministic by seed; `p_drop` commits, then drops), rate limiting, and the
request counters."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.backend.sandbox.app import ConnectionDropped
from reconciler.backend.sandbox.faults import FaultConfig, FaultInjector, RateBudget, RateLimiter

from .conftest import KVK, Sandbox, open_sandbox

pytestmark = pytest.mark.anyio

NEW = {"email": "new@acme.nl", "name": "New", "role": "gebruiker", "level": "EH2"}


async def _statuses(sandbox: Sandbox, n: int) -> list[tuple[int, str | None]]:
    out = []
    for _ in range(n):
        r = await sandbox.get("/v1/me")
        out.append((r.status_code, r.headers.get("retry-after")))
    return out


async def test_faults_are_deterministic_for_a_seed(sandbox: Sandbox) -> None:
    config = {"p_503": 0.3, "p_429": 0.3, "seed": 42}
    await sandbox.client.post("/sandbox/faults", json=config)
    first = await _statuses(sandbox, 40)
    await sandbox.client.post("/sandbox/faults", json=config)
    second = await _statuses(sandbox, 40)
    assert first == second
    assert {s for s, _ in first} == {200, 503, 429}
    assert {ra for s, ra in first if s == 429} <= {"0", "1"}
    await sandbox.client.post("/sandbox/faults", json={**config, "seed": 43})
    assert await _statuses(sandbox, 40) != first


def test_the_injector_alone_is_deterministic() -> None:
    config = FaultConfig(p_503=0.2, p_429=0.2, p_drop=0.2, seed=7)
    a, b = FaultInjector(config), FaultInjector(config)
    assert [a.decide() for _ in range(100)] == [b.decide() for _ in range(100)]


async def test_faults_hit_v1_only_and_carry_problem_json(sandbox: Sandbox) -> None:
    await sandbox.client.post("/sandbox/faults", json={"p_503": 1.0, "seed": 1})
    r = await sandbox.get("/v1/me")
    assert r.status_code == 503 and r.json()["code"] == "unavailable"
    assert r.headers["content-type"] == "application/problem+json"
    assert (await sandbox.client.get("/sandbox/clock")).status_code == 200
    await sandbox.client.post("/sandbox/faults", json={})
    assert (await sandbox.get("/v1/me")).status_code == 200


async def test_delay(sandbox: Sandbox) -> None:
    await sandbox.client.post("/sandbox/faults", json={"delay_ms": 150, "seed": 1})
    start = time.perf_counter()
    assert (await sandbox.get("/v1/me")).status_code == 200
    assert time.perf_counter() - start >= 0.15


async def test_drop_commits_then_drops_and_a_retry_with_the_key_replays(sandbox: Sandbox) -> None:
    await sandbox.client.post("/sandbox/faults", json={"p_drop": 1.0, "seed": 1})
    key = {"Idempotency-Key": "dropped-once"}
    with pytest.raises(ConnectionDropped):
        await sandbox.post(f"/v1/organisations/{KVK}/means", NEW, headers=key)
    await sandbox.client.post("/sandbox/faults", json={})
    r = await sandbox.post(f"/v1/organisations/{KVK}/means", NEW, headers=key)
    assert r.status_code == 201 and r.headers["idempotent-replayed"] == "true"
    counts = (await sandbox.client.get("/sandbox/requests")).json()
    assert counts["means_created"] == 1
    assert counts["by_route"]["POST /v1/organisations/{kvk}/means"] == 2


async def test_rate_budget_gives_429_with_retry_after(tmp_path: Path) -> None:
    app, client = await open_sandbox(tmp_path / "s.db", rate_budget=RateBudget(2, 60.0))
    async with client:
        r = await client.post("/sandbox/organisations", json={
            "kvk": KVK, "name": "Acme", "admin": {"email": "a@acme.nl", "name": "A", "level": "EH3"}})
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        assert [(await client.get("/v1/me", headers=auth)).status_code for _ in range(2)] == [200, 200]
        r = await client.get("/v1/me", headers=auth)
        assert r.status_code == 429 and r.json()["code"] == "rate-limited"
        assert int(r.headers["retry-after"]) >= 1
        r = await client.post("/sandbox/rate-limit", json={"requests": None})
        assert r.status_code == 200
        assert (await client.get("/v1/me", headers=auth)).status_code == 200
    app.state.store.close()


def test_rate_limiter_refills() -> None:
    limiter = RateLimiter(RateBudget(1, 10.0))
    assert limiter.take("t", now=0.0) is None
    assert limiter.take("t", now=1.0) == 9
    assert limiter.take("other", now=1.0) is None
    assert limiter.take("t", now=10.5) is None


async def test_request_counters_by_route_template(sandbox: Sandbox) -> None:
    await sandbox.client.delete("/sandbox/requests")
    await sandbox.get(f"/v1/organisations/{KVK}/means")
    await sandbox.get(f"/v1/organisations/{KVK}/means/abc")
    await sandbox.get(f"/v1/organisations/{KVK}/means/def")
    counts = (await sandbox.client.get("/sandbox/requests")).json()
    assert counts["by_route"] == {"GET /v1/organisations/{kvk}/means": 1,
                                  "GET /v1/organisations/{kvk}/means/{means_id}": 2}
    assert counts["total"] == 3
