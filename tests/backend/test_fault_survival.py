"""The BeheerClient against the sandbox served by a real uvicorn server on loopback, with injected faults
(503, 429, and "commit, then drop the connection"): every request ends in success or a clean typed error,
nothing is bought twice, and repeating the same requests with the same Idempotency-Keys changes nothing.
Also: a stale If-Match is a PreconditionFailed (412) that changes nothing and is not retried."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from reconciler.backend.client import BeheerClient, RetryPolicy, Timeouts
from reconciler.backend.errors import (
    BackendError, BackendUnreachable, IdempotencyMismatch, PreconditionFailed, RateLimited, Unavailable,
)
from reconciler.backend.sandbox.app import create_app
from reconciler.backend.sandbox.controls import CONTROL_HEADER
from reconciler.backend.sandbox.faults import FaultConfig, FaultInjector
from reconciler.backend.sandbox.serve import uvicorn_options
from reconciler.backend.types import MutationResult
from reconciler.domain.catalogue import bundled_catalogue

pytestmark = pytest.mark.anyio

KVK = "12345678"
TODAY = "2025-06-01"
N = 20
FAULTS: dict[str, Any] = {"p_drop": 0.3, "p_503": 0.2, "p_429": 0.2, "seed": 20250601}
#: What a request may end in when the faults outlast the retries: a transient, typed failure.
TRANSIENT = (Unavailable, RateLimited, BackendUnreachable)
MEANS_ROUTE = "POST /v1/organisations/{kvk}/means"
GRANT_ROUTE = "POST /v1/organisations/{kvk}/authorisations"
#: Retries are quick; Retry-After (0 or 1 s from the injector) is honoured in the budget but slept briefly.
FAST = RetryPolicy(attempts=10, base_delay=0.005, max_delay=0.05, max_total_delay=30.0)
#: A client that gives up soon, so that some requests end in a typed error (some after their commit).
IMPATIENT = RetryPolicy(attempts=2, base_delay=0.005, max_delay=0.05, max_total_delay=30.0)
TIMEOUTS = Timeouts(connect=2.0, read=5.0, write=5.0, pool=2.0)
SERVICES = [bundled_catalogue()["rvo/tenderned"].uuid, bundled_catalogue()["algemene-bevoegdheid-3"].uuid]


async def _short_sleep(seconds: float) -> None:
    await anyio.sleep(min(seconds, 0.02))


# ------------------------------------------------------------------------------------------------ server
@dataclass
class Served:
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread
    control_token: str


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The sandbox app on a fresh database, served by uvicorn on 127.0.0.1 (a free port) in a thread."""
    app = create_app(tmp_path / "sandbox.db")
    # proto IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only then (with proto 0
    # every keep-alive response waits ~40 ms for a delayed ACK)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="critical", lifespan="on", timeout_graceful_shutdown=2,
                            **uvicorn_options())           # as `reconciler sandbox serve` serves it
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="sandbox-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the sandbox server did not start")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError("the sandbox server did not start within 10 s")
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", server, thread, app.state.control_token)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        assert not thread.is_alive(), "the sandbox server did not stop within 10 s"


@dataclass
class Setup:
    control: httpx.AsyncClient          # /sandbox controls: the control token, never faulted
    admin: BeheerClient                 # the acting admin, retrying up to 10 times
    impatient: BeheerClient             # the same admin, giving up after 2 attempts
    admin_id: str

    async def faults(self, **config: Any) -> None:
        r = await self.control.post("/sandbox/faults", json=config)
        assert r.status_code == 200, r.text

    async def counters(self) -> dict[str, Any]:
        r = await self.control.get("/sandbox/requests")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def means(self) -> list[dict[str, Any]]:
        r = await self.control.get("/sandbox/means", params={"kvk": KVK})
        assert r.status_code == 200, r.text
        return r.json()["items"]  # type: ignore[no-any-return]


@asynccontextmanager
async def _setup(served: Served) -> AsyncIterator[Setup]:
    """Organisation KVK with its active admin, on a fixed day; the admin's client has fast retries."""
    async with httpx.AsyncClient(base_url=served.base_url, timeout=5.0,
                                 headers={CONTROL_HEADER: served.control_token}) as control:
        r = await control.post("/sandbox/clock", json={"today": TODAY})
        assert r.status_code == 200, r.text
        r = await control.post("/sandbox/organisations", json={
            "kvk": KVK, "name": "Acme", "admin": {"email": "anna@acme.nl", "name": "Anna", "level": "EH3"}})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        async with BeheerClient(served.base_url, token, retry=FAST, timeouts=TIMEOUTS, sleep=_short_sleep) as admin, \
                BeheerClient(served.base_url, token, retry=IMPATIENT, timeouts=TIMEOUTS,
                             sleep=_short_sleep) as impatient:
            yield Setup(control, admin, impatient, r.json()["means_id"])


Outcome = MutationResult | BackendError


async def _request_all(client: BeheerClient) -> list[Outcome]:
    out: list[Outcome] = []
    for i in range(N):
        try:
            out.append(await client.request_means(KVK, email=f"user{i:02d}@acme.nl", name=f"User {i}",
                                                  role="gebruiker", level="EH3", second_factor="otp",
                                                  idempotency_key=f"means-{i:02d}"))
        except BackendError as error:
            out.append(error)
    return out


async def _grant_all(client: BeheerClient, means_ids: list[str]) -> list[Outcome]:
    out: list[Outcome] = []
    for i, means_id in enumerate(means_ids):
        try:
            out.append(await client.grant(KVK, [means_id], SERVICES[:1], idempotency_key=f"grant-{i:02d}"))
        except BackendError as error:
            out.append(error)
    try:
        out.append(await client.grant(KVK, means_ids, SERVICES, end_date=dt.date(2027, 1, 1),
                                      idempotency_key="grant-bulk"))
    except BackendError as error:
        out.append(error)
    return out


def _clean(outcomes: list[Outcome]) -> None:
    """Each outcome is a result, or a transient typed error with a one-line message (no traceback)."""
    for outcome in outcomes:
        if isinstance(outcome, BackendError):
            assert isinstance(outcome, TRANSIENT), f"not a transient failure: {outcome!r}"
            assert outcome.attempts >= 1 and "Traceback" not in str(outcome) and "\n" not in str(outcome)
        else:
            assert isinstance(outcome, MutationResult)


def _drops(total: int) -> int:
    """How many of the first `total` /v1 requests since the faults were set were committed, then dropped."""
    injector = FaultInjector(FaultConfig(**FAULTS))
    return sum(injector.decide().drop for _ in range(total))


# ------------------------------------------------------------------------------------------------- tests
async def test_faulty_network_buys_each_means_once_and_replays_change_nothing(served: Served) -> None:
    with anyio.fail_after(15):
        async with _setup(served) as s:
            emails = [f"user{i:02d}@acme.nl" for i in range(N)]
            # 1. N new means under faults, by a client that gives up soon
            await s.control.delete("/sandbox/requests")
            await s.faults(**FAULTS)
            first = await _request_all(s.impatient)
            _clean(first)
            counts = await s.counters()
            assert counts["by_route"][MEANS_ROUTE] > N                # there were retries ...
            assert _drops(counts["total"]) >= 1                       # ... also after commit-then-drop
            failed = {emails[i] for i, o in enumerate(first) if isinstance(o, BackendError)}
            bought = {m["email"]: m["id"] for m in await s.means() if m["id"] != s.admin_id}
            assert failed, "the seed should make the impatient client give up on some requests"
            assert failed & set(bought), "some request should have failed after its commit (a drop)"
            assert {emails[i] for i, o in enumerate(first) if isinstance(o, MutationResult)} <= set(bought)
            assert counts["means_created"] == len(bought)

            # 2. the same requests, same keys, still under faults: finishes what failed, repeats nothing
            second = await _request_all(s.admin)
            _clean(second)
            for email, a, b in zip(emails, first, second):
                if isinstance(b, MutationResult) and email in bought:  # bought before: answered by a replay
                    assert b.result["id"] == bought[email]
                if isinstance(a, MutationResult) and isinstance(b, MutationResult):
                    assert (a.result["id"], a.revision, a.status) == (b.result["id"], b.revision, b.status)

            # 3. once more without faults: every request answers, all with the first answer (replays)
            await s.faults()
            before = await s.admin.get_organisation(KVK)
            third = await _request_all(s.admin)
            assert all(isinstance(o, MutationResult) and o.status == 201 for o in third)
            ids = [o.result["id"] for o in third if isinstance(o, MutationResult)]
            assert len(set(ids)) == N
            for a, c in zip(first + second, third + third):
                if isinstance(a, MutationResult):
                    assert isinstance(c, MutationResult) and a.result["id"] == c.result["id"]
            after = await s.admin.get_organisation(KVK)
            assert after.revision == before.revision

            # exactly N new means, each bought once
            means = await s.means()
            assert sorted(m["email"] for m in means if m["id"] != s.admin_id) == emails
            assert sorted(m["id"] for m in means if m["id"] != s.admin_id) == sorted(ids)
            assert (await s.counters())["means_created"] == N
            events = await s.admin.list_all_events(KVK)
            done = [e.idempotency_key or "" for e in events if e.action == "request_means" and e.outcome == "ok"]
            assert sorted(done) == [f"means-{i:02d}" for i in range(N)]


async def test_faulty_network_grants_once_and_replays_change_nothing(served: Served) -> None:
    with anyio.fail_after(15):
        async with _setup(served) as s:
            results = await _request_all(s.admin)                     # no faults yet
            means_ids = [r.result["id"] for r in results if isinstance(r, MutationResult)]
            assert len(means_ids) == N
            for means_id in means_ids:
                for step in ("approve", "activate"):
                    r = await s.control.post(f"/sandbox/means/{means_id}/{step}")
                    assert r.status_code == 200, r.text
            start = (await s.admin.get_organisation(KVK)).revision

            await s.control.delete("/sandbox/requests")
            await s.faults(**FAULTS)
            first = await _grant_all(s.impatient, means_ids)
            _clean(first)
            assert (await s.counters())["by_route"][GRANT_ROUTE] > N + 1
            assert any(isinstance(o, BackendError) for o in first)
            second = await _grant_all(s.admin, means_ids)             # finishes what failed
            _clean(second)

            await s.faults()
            rev = (await s.admin.get_organisation(KVK)).revision
            third = await _grant_all(s.admin, means_ids)
            assert all(isinstance(o, MutationResult) for o in third)
            assert (await s.admin.get_organisation(KVK)).revision == rev   # replays: no effect at all
            assert rev == start + N + 1                                    # each grant applied exactly once
            for a, c in zip(first + second, third + third):
                if isinstance(a, MutationResult):
                    assert isinstance(c, MutationResult) and (a.revision, dict(a.result)) == (c.revision,
                                                                                            dict(c.result))

            held = await s.admin.list_all_authorisations(KVK)
            pairs = sorted((a.means_id, a.service) for a in held)
            assert pairs == sorted((m, svc) for m in means_ids for svc in SERVICES)
            # the second service came only with the bulk; the first may have been granted alone after it
            # (when that grant failed before the bulk in round one and went through in round two)
            assert {a.end_date for a in held if a.service == SERVICES[1]} == {dt.date(2027, 1, 1)}
            assert {a.end_date for a in held} <= {dt.date(2027, 1, 1), dt.date(2030, 6, 1)}
            bulk = third[-1]
            assert isinstance(bulk, MutationResult)
            assert bulk.result["authorisations"] == 2 * N and bulk.result["created"] >= N


async def test_a_stale_if_match_is_precondition_failed_and_changes_nothing(served: Served) -> None:
    with anyio.fail_after(15):
        async with _setup(served) as s:
            org = await s.admin.get_organisation(KVK)
            done = await s.admin.request_means(KVK, email="bob@acme.nl", name="Bob", role="gebruiker", level="EH2",
                                               if_match=org.revision)
            assert done.revision == org.revision + 1
            sent = s.admin.requests_total
            with pytest.raises(PreconditionFailed) as info:
                await s.admin.request_means(KVK, email="carla@acme.nl", name="Carla", role="gebruiker",
                                            level="EH2", if_match=org.revision)
            error = info.value
            assert (error.status, error.code) == (412, "precondition-failed")
            assert s.admin.requests_total == sent + 1                  # a 412 is not retried
            assert "Make a new plan" in str(error)
            assert (await s.admin.get_organisation(KVK)).revision == done.revision
            assert sorted(m["email"] for m in await s.means()) == ["anna@acme.nl", "bob@acme.nl"]
            # read again, and the same change goes through
            fresh = await s.admin.get_organisation(KVK)
            again = await s.admin.request_means(KVK, email="carla@acme.nl", name="Carla", role="gebruiker",
                                                level="EH2", if_match=fresh.revision)
            assert again.revision == fresh.revision + 1


async def test_a_key_reused_for_another_request_is_refused(served: Served) -> None:
    with anyio.fail_after(15):
        async with _setup(served) as s:
            await s.admin.request_means(KVK, email="bob@acme.nl", name="Bob", role="gebruiker", level="EH2",
                                        idempotency_key="step-1")
            with pytest.raises(IdempotencyMismatch) as info:
                await s.admin.request_means(KVK, email="dirk@acme.nl", name="Dirk", role="gebruiker", level="EH2",
                                            idempotency_key="step-1")
            assert info.value.status == 422
            assert sorted(m["email"] for m in await s.means()) == ["anna@acme.nl", "bob@acme.nl"]


def test_the_served_sandbox_names_no_software_and_takes_no_forwarded_address(served: Served) -> None:
    """`sandbox serve` hides uvicorn's `server` header and does not let a client claim another address with
    X-Forwarded-For (uvicorn trusts it from loopback by default, through a middleware it then adds)."""
    response = httpx.get(f"{served.base_url}/openapi.json")
    assert response.status_code == 200 and "server" not in response.headers and "date" in response.headers
    config = uvicorn.Config(create_app(":memory:"), **uvicorn_options())
    config.load()
    assert not isinstance(config.loaded_app, ProxyHeadersMiddleware)
