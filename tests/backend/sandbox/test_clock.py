"""Moving the sandbox's clock applies what the days bring: activation deadlines (R5), end dates (R9, R18),
scheduled terminations (R14), and the end of an organisation without means (R14)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from reconciler.backend.sandbox.store import SandboxStore

from .conftest import KVK, Sandbox, uuid_of

pytestmark = pytest.mark.anyio


async def _status(sandbox: Sandbox, means_id: str) -> str | None:
    r = await sandbox.get(f"/v1/organisations/{KVK}/means/{means_id}")
    return r.json()["status"] if r.status_code == 200 else None


async def test_advancing_expires_activations_authorisations_chains_and_terminations(sandbox: Sandbox) -> None:
    waiting = await sandbox.new_means("w@acme.nl", active=False)
    await sandbox.client.post(f"/sandbox/means/{waiting}/approve")          # deadline 2025-07-01
    user = await sandbox.new_means("u@acme.nl")
    leaver = await sandbox.new_means("l@acme.nl")
    await sandbox.post(f"/v1/organisations/{KVK}/authorisations",
                       {"means_ids": [user], "services": [uuid_of("rvo/tenderned")], "end_date": "2025-06-10"})
    await sandbox.post(f"/v1/organisations/{KVK}/authorisations",
                       {"means_ids": [user], "services": [uuid_of("algemene-bevoegdheid-3")]})
    await sandbox.post(f"/v1/organisations/{KVK}/chain-authorisations",
                       {"intermediary_kvk": "47474747", "services": [uuid_of("rvo/tenderned")],
                        "end_date": "2025-06-20"})
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{leaver}/terminate", {"mode": "date", "date": "2025-06-15"})
    assert r.json()["result"]["terminates_on"] == "2025-06-15"
    rev = await sandbox.revision()

    r = await sandbox.client.post("/sandbox/clock", json={"advance_days": 9})             # 2025-06-10
    assert r.json()["today"] == "2025-06-10"
    assert r.json()["swept"]["authorisations_expired"] == 1
    r = await sandbox.get(f"/v1/organisations/{KVK}/authorisations")
    assert [i["service_key"] for i in r.json()["items"]] == ["algemene-bevoegdheid-3"]
    assert await sandbox.revision() == rev + 1

    r = await sandbox.client.post("/sandbox/clock", json={"today": "2025-07-02"})
    swept = r.json()["swept"]
    assert (swept["activations_expired"], swept["chains_expired"], swept["memberships_terminated"],
            swept["means_deleted"]) == (1, 1, 1, 1)
    assert await _status(sandbox, waiting) == "activatie_verlopen"
    assert await _status(sandbox, leaver) is None
    r = await sandbox.get(f"/v1/organisations/{KVK}/chain-authorisations")
    assert r.json()["items"] == []
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{waiting}/invitation")
    assert r.status_code == 200 and r.json()["result"]["activation_deadline"] == "2025-08-01"

    r = await sandbox.get(f"/v1/organisations/{KVK}/events", params={"limit": 500})
    clock_actions = {e["action"] for e in r.json()["items"] if e["actor"] == "clock"}
    assert clock_actions == {"authorisation_expired", "activation_expired", "chain_expired", "membership_terminated"}


async def test_a_scheduled_end_of_the_last_means_ends_the_organisation(sandbox: Sandbox) -> None:
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{sandbox.admin_id}/terminate",
                           {"mode": "date", "date": "2025-06-02"})
    assert r.status_code == 200, r.text
    r = await sandbox.client.post("/sandbox/clock", json={"advance_days": 1})
    assert r.json()["swept"]["organisations_deleted"] == 1
    with sandbox.store.transaction():
        assert sandbox.store.org(KVK) is None
        assert sandbox.store.get_means(sandbox.admin_id) is None


async def test_the_clock_follows_the_real_date_until_it_is_set(tmp_path: Path) -> None:
    store = SandboxStore(tmp_path / "s.db")
    assert store.clock() == (dt.date.today(), False)
    store.set_clock(dt.date(2030, 1, 1))
    assert store.clock() == (dt.date(2030, 1, 1), True)
    store.advance_clock(31)
    assert store.today == dt.date(2030, 2, 1)
    store.close()


async def test_clock_control_needs_exactly_one_of_today_and_advance(sandbox: Sandbox) -> None:
    r = await sandbox.client.post("/sandbox/clock", json={})
    assert r.status_code == 422
    r = await sandbox.client.post("/sandbox/clock", json={"today": "2025-06-02", "advance_days": 1})
    assert r.status_code == 422
    r = await sandbox.client.get("/sandbox/clock")
    assert r.json()["today"] == "2025-06-01"
