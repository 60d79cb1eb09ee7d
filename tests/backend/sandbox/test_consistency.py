"""Revisions (ETag / If-Match, 412) and Idempotency-Key (replay byte for byte, one effect, also across a
restart; 422 for a reused key)."""

from __future__ import annotations

import pytest

from .conftest import KVK, Sandbox, open_sandbox, uuid_of

pytestmark = pytest.mark.anyio

NEW = {"email": "new@acme.nl", "name": "New", "role": "gebruiker", "level": "EH2"}


async def test_every_change_raises_the_revision_and_returns_it_as_etag(sandbox: Sandbox) -> None:
    before = await sandbox.revision()
    r = await sandbox.post(f"/v1/organisations/{KVK}/means", NEW, headers={"If-Match": f'"{before}"'})
    assert r.status_code == 201
    assert r.json()["revision"] == before + 1 and r.headers["etag"] == f'"{before + 1}"'
    r = await sandbox.get(f"/v1/organisations/{KVK}")
    assert r.headers["etag"] == f'"{before + 1}"'


async def test_if_match_with_an_old_revision_is_412_and_changes_nothing(sandbox: Sandbox) -> None:
    old = await sandbox.revision()
    await sandbox.post(f"/v1/organisations/{KVK}/means", NEW)
    r = await sandbox.post(f"/v1/organisations/{KVK}/means", {**NEW, "email": "late@acme.nl"},
                           headers={"If-Match": f'"{old}"'})
    assert r.status_code == 412 and r.json()["code"] == "precondition-failed"
    assert r.headers["etag"] == f'"{old + 1}"'
    r = await sandbox.get(f"/v1/organisations/{KVK}/means")
    assert "late@acme.nl" not in {i["email"] for i in r.json()["items"]}
    r = await sandbox.post(f"/v1/organisations/{KVK}/means", {**NEW, "email": "late@acme.nl"},
                           headers={"If-Match": f'W/"{old + 1}", "999"'})
    assert r.status_code == 201


async def test_a_no_op_change_keeps_the_revision(sandbox: Sandbox) -> None:
    user = await sandbox.new_means("u@acme.nl")
    rev = await sandbox.revision()
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{user}/role", {"role": "gebruiker"})
    assert r.status_code == 200 and r.json()["revision"] == rev


async def test_idempotent_replay_returns_the_first_response_and_applies_once(sandbox: Sandbox) -> None:
    key = {"Idempotency-Key": "req-1"}
    first = await sandbox.post(f"/v1/organisations/{KVK}/means", NEW, headers=key)
    second = await sandbox.post(f"/v1/organisations/{KVK}/means", NEW, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["idempotent-replayed"] == "true"
    r = await sandbox.get(f"/v1/organisations/{KVK}/means")
    assert [i["email"] for i in r.json()["items"]].count("new@acme.nl") == 1
    counts = (await sandbox.client.get("/sandbox/requests")).json()
    assert counts["means_created"] == 1


async def test_a_refusal_is_replayed_too(sandbox: Sandbox) -> None:
    key = {"Idempotency-Key": "demote-myself"}
    path = f"/v1/organisations/{KVK}/means/{sandbox.admin_id}/role"
    first = await sandbox.post(path, {"role": "gebruiker"}, headers=key)
    second = await sandbox.post(path, {"role": "gebruiker"}, headers=key)
    assert first.status_code == second.status_code == 409
    assert first.content == second.content and first.json()["code"] == "R3"


async def test_the_same_key_for_another_request_is_422(sandbox: Sandbox) -> None:
    key = {"Idempotency-Key": "k"}
    await sandbox.post(f"/v1/organisations/{KVK}/means", NEW, headers=key)
    r = await sandbox.post(f"/v1/organisations/{KVK}/means", {**NEW, "email": "other@acme.nl"}, headers=key)
    assert r.status_code == 422 and r.json()["code"] == "idempotency-mismatch"
    r = await sandbox.post(f"/v1/organisations/{KVK}/chain-authorisations",
                           {"intermediary_kvk": "47474747", "services": [uuid_of("rvo/tenderned")]}, headers=key)
    assert r.status_code == 422 and r.json()["code"] == "idempotency-mismatch"


async def test_the_same_key_for_another_id_that_only_differs_after_a_hash_is_422(sandbox: Sandbox) -> None:
    """The idempotency record keeps the path as received: ids `m1#a` and `m1#b` are two requests (some Starlette
    versions cut `request.url.path` at the `#`, and the second was answered with the first's reply)."""
    key = {"Idempotency-Key": "same-key"}
    first = await sandbox.post(f"/v1/organisations/{KVK}/means/m1%23a/role", {"role": "beheerder"}, headers=key)
    second = await sandbox.post(f"/v1/organisations/{KVK}/means/m1%23b/role", {"role": "beheerder"}, headers=key)
    assert first.status_code == 404 and "idempotent-replayed" not in second.headers
    assert second.status_code == 422 and second.json()["code"] == "idempotency-mismatch"


async def test_keys_are_per_token(sandbox: Sandbox) -> None:
    r = await sandbox.client.post("/sandbox/tokens", json={"means_id": sandbox.admin_id})
    other = r.json()["token"]
    key = {"Idempotency-Key": "shared"}
    await sandbox.post(f"/v1/organisations/{KVK}/means", NEW, headers=key)
    r = await sandbox.post(f"/v1/organisations/{KVK}/means", NEW, headers=key, token=other)
    assert r.status_code == 409 and r.json()["code"] == "R15"       # a real second attempt, refused by the rules


async def test_replay_survives_a_restart(sandbox: Sandbox) -> None:
    key = {"Idempotency-Key": "before-restart"}
    first = await sandbox.post(f"/v1/organisations/{KVK}/means", NEW, headers=key)
    app, client = await open_sandbox(sandbox.db_path)
    async with client:
        second = await client.post(f"/v1/organisations/{KVK}/means", json=NEW, headers={**sandbox.auth(), **key})
        assert second.status_code == 201 and second.content == first.content
        r = await client.get(f"/v1/organisations/{KVK}/means", headers=sandbox.auth())
        assert [i["email"] for i in r.json()["items"]].count("new@acme.nl") == 1
    app.state.store.close()
