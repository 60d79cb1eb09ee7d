"""One bulk request cannot tie up the sandbox (issue #10): repeated ids count once, and more than
MAX_BULK_PAIRS distinct means x services pairs is refused at once with 422 `invalid` (R10)."""

from __future__ import annotations

import time

import pytest

from reconciler.domain.catalogue import bundled_catalogue
from reconciler.domain.rules import MAX_BULK_PAIRS

from .conftest import KVK, Sandbox, seed_means, uuid_of

pytestmark = pytest.mark.anyio

GRANT = f"/v1/organisations/{KVK}/authorisations"


async def test_repeated_ids_count_once_and_answer_quickly(sandbox: Sandbox) -> None:
    [user] = seed_means(sandbox.store, KVK, 1)
    service = uuid_of("rvo/tenderned")
    started = time.monotonic()
    r = await sandbox.post(GRANT, {"means_ids": [user] * 10000, "services": [service] * 1000})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["authorisations"] == 1
    r = await sandbox.post(GRANT + "/end-date", {"means_ids": [user] * 10000, "services": [service.upper()] * 1000,
                                                 "end_date": "2027-01-01"})
    assert r.status_code == 200 and r.json()["result"]["authorisations"] == 1, r.text
    r = await sandbox.post(GRANT + "/revoke", {"means_ids": [user] * 10000, "services": [service] * 1000})
    assert r.status_code == 200 and r.json()["result"]["revoked"] == 1, r.text
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("suffix", ["", "/end-date", "/revoke"])
async def test_more_pairs_than_the_cap_is_422_naming_the_limit_and_changes_nothing(sandbox: Sandbox,
                                                                                  suffix: str) -> None:
    services = [s.uuid for s in bundled_catalogue()][:5]
    means_ids = [f"m-{i:05d}" for i in range(MAX_BULK_PAIRS // 5 + 1)]
    body = {"means_ids": means_ids, "services": services, "end_date": "2027-01-01"}
    if suffix == "/revoke":
        del body["end_date"]
    before = await sandbox.revision()
    started = time.monotonic()
    r = await sandbox.post(GRANT + suffix, body)
    assert time.monotonic() - started < 5
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == "invalid"
    assert f"at most {MAX_BULK_PAIRS} pairs" in problem["detail"] and "2001 means x 5 services" in problem["detail"]
    assert await sandbox.revision() == before


async def test_exactly_the_cap_is_accepted(sandbox: Sandbox) -> None:
    ids = seed_means(sandbox.store, KVK, MAX_BULK_PAIRS // 5)
    services = [uuid_of(k) for k in ("rvo/tenderned", "mijn-overheid/ondernemers", "uwv/werkgeversportaal",
                                      "ienw/asbestvolgsysteem", "wij-techniek/account-verificatie")]
    r = await sandbox.post(GRANT, {"means_ids": ids, "services": services})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["authorisations"] == MAX_BULK_PAIRS
