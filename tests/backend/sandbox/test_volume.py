"""Keyset pagination over many rows (every item exactly once), bulk grants, and persistence on disk."""

from __future__ import annotations

import anyio
import pytest

from .conftest import KVK, Sandbox, collect, open_sandbox, seed_means, uuid_of

pytestmark = pytest.mark.anyio


async def test_paginating_1200_means_returns_each_exactly_once(sandbox: Sandbox) -> None:
    ids = seed_means(sandbox.store, KVK, 1200)
    items, pages = await collect(sandbox, f"/v1/organisations/{KVK}/means", limit=500)
    assert pages == 3
    got = [i["id"] for i in items]
    assert len(got) == len(set(got)) == 1201
    assert set(got) == {*ids, sandbox.admin_id}
    assert all(i["organisations"] == [KVK] for i in items)

    items, pages = await collect(sandbox, f"/v1/organisations/{KVK}/means", limit=7)
    assert pages == 172 and len({i["id"] for i in items}) == 1201


async def test_a_page_sees_changes_made_between_pages_without_skipping(sandbox: Sandbox) -> None:
    seed_means(sandbox.store, KVK, 30)
    path = f"/v1/organisations/{KVK}/means"
    first = (await sandbox.get(path, params={"limit": 10})).json()
    seen = {i["id"] for i in first["items"]}
    seed_means(sandbox.store, KVK, 5, prefix="a-early")           # sorts before the cursor: not seen, no shift
    rest, _ = await collect_from(sandbox, path, first["next_cursor"])
    assert seen.isdisjoint(rest) and len(seen) + len(rest) == 31


async def collect_from(sandbox: Sandbox, path: str, cursor: str) -> tuple[set[str], int]:
    out: set[str] = set()
    pages = 0
    while cursor:
        data = (await sandbox.get(path, params={"limit": 10, "cursor": cursor})).json()
        out |= {i["id"] for i in data["items"]}
        cursor = data["next_cursor"]
        pages += 1
    return out, pages


async def test_bulk_grant_of_1000_pairs_and_authorisation_pagination(sandbox: Sandbox) -> None:
    ids = seed_means(sandbox.store, KVK, 500)
    services = [uuid_of("rvo/tenderned"), uuid_of("algemene-bevoegdheid-3")]
    r = await sandbox.post(f"/v1/organisations/{KVK}/authorisations", {"means_ids": ids, "services": services})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["authorisations"] == 1000
    items, pages = await collect(sandbox, f"/v1/organisations/{KVK}/authorisations", limit=300)
    assert pages == 4
    pairs = [(i["means_id"], i["service"]) for i in items]
    assert len(pairs) == len(set(pairs)) == 1000


async def test_state_survives_recreating_the_app_on_the_same_file(sandbox: Sandbox) -> None:
    user = await sandbox.new_means("keep@acme.nl")
    await sandbox.post(f"/v1/organisations/{KVK}/authorisations",
                       {"means_ids": [user], "services": [uuid_of("rvo/tenderned")], "end_date": "2026-02-01"})
    await sandbox.client.post("/sandbox/faults", json={"p_503": 0.0, "delay_ms": 0, "seed": 3})
    rev = await sandbox.revision()
    sandbox.store.close()

    app, client = await open_sandbox(sandbox.db_path)
    async with client:
        r = await client.get(f"/v1/organisations/{KVK}", headers=sandbox.auth())
        assert r.status_code == 200 and r.json()["revision"] == rev
        r = await client.get(f"/v1/organisations/{KVK}/authorisations", headers=sandbox.auth())
        assert [(i["email"], i["end_date"]) for i in r.json()["items"]] == [("keep@acme.nl", "2026-02-01")]
        r = await client.get("/sandbox/clock")
        assert r.json()["today"] == "2025-06-01" and r.json()["fixed"] is True
        r = await client.get("/sandbox/faults")
        assert r.json()["seed"] == 3
    app.state.store.close()


async def test_list_pages_and_bulk_grants_issue_a_fixed_number_of_queries(sandbox: Sandbox) -> None:
    """No query per row: a page of 500 means or a grant to 500 users reads with a handful of SELECTs."""
    ids = seed_means(sandbox.store, KVK, 500)
    selects: list[str] = []
    sandbox.store.conn.set_trace_callback(
        lambda sql: selects.append(sql) if sql.lstrip().startswith("SELECT") else None)
    try:
        r = await sandbox.get(f"/v1/organisations/{KVK}/means", params={"limit": 500})
        assert r.status_code == 200 and len(r.json()["items"]) == 500
        page_selects, selects[:] = len(selects), []
        r = await sandbox.post(f"/v1/organisations/{KVK}/authorisations",
                               {"means_ids": ids, "services": [uuid_of("rvo/tenderned")]})
        assert r.status_code == 200, r.text
        grant_selects = len(selects)
    finally:
        sandbox.store.conn.set_trace_callback(None)
    assert page_selects <= 20, page_selects
    assert grant_selects <= 20, grant_selects


async def test_concurrent_retries_with_one_key_apply_once(sandbox: Sandbox) -> None:
    results: list[int] = []

    async def attempt() -> None:
        r = await sandbox.post(f"/v1/organisations/{KVK}/means",
                               {"email": "race@acme.nl", "name": "R", "role": "gebruiker", "level": "EH2"},
                               headers={"Idempotency-Key": "race"})
        results.append(r.status_code)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(attempt)
    assert results == [201] * 5
    counts = (await sandbox.client.get("/sandbox/requests")).json()
    assert counts["means_created"] == 1
