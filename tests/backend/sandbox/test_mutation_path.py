"""The cost of one change through /v1 (issue #15): a small change runs its transaction on the event loop (a worker
thread and back cost more than the change), a large bulk request still runs in a worker thread, and counting a
request is one statement, not a transaction of its own."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from reconciler.backend.sandbox import mutations

from .conftest import KVK, Sandbox, seed_means, uuid_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread each mutation's transaction ran on, in order."""
    seen: list[int] = []
    run = mutations._run

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.get_ident())
        return run(*args, **kwargs)

    monkeypatch.setattr(mutations, "_run", recording)
    return seen


async def test_a_small_change_runs_on_the_event_loop_and_a_large_bulk_in_a_worker(sandbox: Sandbox,
                                                                                 threads: list[int]) -> None:
    users = seed_means(sandbox.store, KVK, 1200)
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{users[0]}/role", {"role": "beheerder"})
    assert r.status_code == 200, r.text
    body = {"means_ids": users, "services": [uuid_of("rvo/tenderned")]}
    assert len(json.dumps(body)) > mutations.INLINE_BODY_BYTES
    r = await sandbox.post(f"/v1/organisations/{KVK}/authorisations", body)
    assert r.status_code == 200 and r.json()["result"]["authorisations"] == 1200, r.text
    loop_thread = threading.get_ident()
    assert threads == [loop_thread, threads[1]] and threads[1] != loop_thread


async def test_an_inline_change_keeps_if_match_and_the_idempotency_record(sandbox: Sandbox) -> None:
    [user] = seed_means(sandbox.store, KVK, 1)
    path = f"/v1/organisations/{KVK}/means/{user}/role"
    stale = await sandbox.revision() - 1
    r = await sandbox.post(path, {"role": "beheerder"}, headers={"If-Match": f'"{stale}"', "Idempotency-Key": "a"})
    assert r.status_code == 412, r.text
    current = await sandbox.revision()
    first = await sandbox.post(path, {"role": "beheerder"}, headers={"If-Match": f'"{current}"',
                                                                     "Idempotency-Key": "b"})
    again = await sandbox.post(path, {"role": "beheerder"}, headers={"If-Match": f'"{current}"',
                                                                     "Idempotency-Key": "b"})
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.content == first.content
    assert await sandbox.revision() == current + 1


async def test_counting_a_request_is_one_statement(sandbox: Sandbox) -> None:
    store = sandbox.store
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    try:
        store.count_request("POST", "/v1/x")
    finally:
        store.conn.set_trace_callback(None)
    assert len(statements) == 1 and statements[0].startswith("INSERT INTO request_counts")
    assert ("POST", "/v1/x", 1) in store.counters()[0]


async def test_a_count_inside_a_write_transaction_goes_with_it(sandbox: Sandbox) -> None:
    store = sandbox.store
    with pytest.raises(RuntimeError):
        with store.transaction(write=True):
            store.count_request("POST", "/v1/y")
            raise RuntimeError("rolled back")
    assert all(route != "/v1/y" for _, route, _ in store.counters()[0])
