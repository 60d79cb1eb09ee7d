"""Bearer auth: 401 without a valid token, 403 outside your organisations and for read-only tokens."""

from __future__ import annotations

import pytest

from .conftest import KVK, Sandbox

pytestmark = pytest.mark.anyio


async def test_401_without_or_with_an_unknown_token(sandbox: Sandbox) -> None:
    r = await sandbox.client.get("/v1/me")
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await sandbox.client.get("/v1/me", headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    r = await sandbox.client.get("/v1/me", headers={"Authorization": f"Basic {sandbox.token}"})
    assert r.status_code == 401


async def test_403_for_an_organisation_you_do_not_administer(sandbox: Sandbox) -> None:
    r = await sandbox.client.post("/sandbox/organisations", json={
        "kvk": "87654321", "name": "Other", "admin": {"email": "o@other.nl", "name": "O", "level": "EH3"}})
    other_token = r.json()["token"]
    r = await sandbox.get(f"/v1/organisations/{KVK}", token=other_token)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = await sandbox.get(f"/v1/organisations/{KVK}/means", token=other_token)
    assert r.status_code == 403
    r = await sandbox.post(f"/v1/organisations/{KVK}/means", {"email": "x@acme.nl", "name": "X", "role": "gebruiker",
                                                             "level": "EH2"}, token=other_token)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = await sandbox.get("/v1/organisations/11112222")
    assert r.status_code == 403 and r.json()["code"] == "forbidden"  # unknown answers like "not yours": no probing


async def test_a_user_token_is_forbidden_and_a_demoted_admin_loses_rights_at_once(sandbox: Sandbox) -> None:
    user = await sandbox.new_means("u@acme.nl")
    r = await sandbox.client.post("/sandbox/tokens", json={"means_id": user})
    user_token = r.json()["token"]
    r = await sandbox.get(f"/v1/organisations/{KVK}/means", token=user_token)
    assert r.status_code == 403                                  # a gebruiker is not an admin

    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{user}/role", {"role": "beheerder"})
    assert r.status_code == 200
    r = await sandbox.get(f"/v1/organisations/{KVK}/means", token=user_token)
    assert r.status_code == 200
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{user}/role", {"role": "gebruiker"})
    assert r.status_code == 200
    r = await sandbox.get(f"/v1/organisations/{KVK}/means", token=user_token)
    assert r.status_code == 403                                  # R20: at once


async def test_read_only_token_reads_but_never_changes(sandbox: Sandbox) -> None:
    r = await sandbox.client.post("/sandbox/tokens", json={"means_id": sandbox.admin_id, "read_only": True})
    assert r.status_code == 201
    ro = r.json()["token"]
    r = await sandbox.get("/v1/me", token=ro)
    assert r.json()["read_only"] is True
    before = await sandbox.revision()
    r = await sandbox.get(f"/v1/organisations/{KVK}/means", token=ro)
    assert r.status_code == 200
    r = await sandbox.post(f"/v1/organisations/{KVK}/means", {"email": "x@acme.nl", "name": "X", "role": "gebruiker",
                                                             "level": "EH2"}, token=ro)
    assert r.status_code == 403 and r.json()["code"] == "forbidden" and "read-only" in r.json()["detail"]
    r = await sandbox.client.delete(f"/v1/organisations/{KVK}/chain-authorisations/47474747",
                                    headers=sandbox.auth(ro))
    assert r.status_code == 403
    assert await sandbox.revision() == before


async def test_tokens_are_stored_only_as_hashes(sandbox: Sandbox) -> None:
    files = [sandbox.db_path, sandbox.db_path.with_name("sandbox.db-wal")]
    raw = b"".join(f.read_bytes() for f in files if f.exists())
    assert sandbox.token.encode() not in raw
