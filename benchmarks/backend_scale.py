"""The served sandbox at scale, through `BeheerClient` over real HTTP: read a large organisation completely and
make one large bulk grant; print times, request counts and peak memory.

Set up: one organisation with `--means` active users (default 10,000), each holding 1-10 authorisations,
written straight into the sandbox store as the rules' own effects in one transaction (`PutMeans`,
`PutMembership`, `PutAuthorisation` through `SandboxStore.apply`, as the volume tests do), not through the
API: the API would take one request plus two supplier steps per means. The sandbox is then served by uvicorn
on loopback in a background thread of this process, and the client talks to it over TCP.

Measured (targets on the 2-core CI machine):
  (a) list every means and every authorisation, following cursors with limit=500     (target < 2 s)
  (b) one bulk grant of 1,000 pairs: 500 users x 2 services                           (target < 1 s)
Peak RSS is this process's (server and client together).

Run: python benchmarks/backend_scale.py [--means 10000] [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import resource
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from reconciler.backend.client import BeheerClient
from reconciler.backend.sandbox.app import create_app
from reconciler.backend.sandbox.store import SandboxStore
from reconciler.config.models import Role
from reconciler.domain.catalogue import bundled_catalogue
from reconciler.domain.levels import Level
from reconciler.domain.state import Means, Membership, PutAuthorisation, PutMeans, PutMembership, Status

KVK = "12345678"
TODAY = dt.date(2025, 6, 1)
LIMIT = 500
GRANT_USERS, GRANT_SERVICES = 500, 2


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # Linux: kilobytes


def grantable_services() -> list[str]:
    """Services an active EH3 user may hold in an organisation without a branch number: not Belastingdienst
    (R13), at most EH3 (R8)."""
    return sorted(s.uuid for s in bundled_catalogue()
                  if not s.belastingdienst and s.level.rank <= Level.EH3.rank)


def seed(store: SandboxStore, count: int, rng: random.Random) -> tuple[list[str], int]:
    """`count` active EH3 users in KVK with 1-10 authorisations each; returns (their ids, authorisations)."""
    services = grantable_services()
    if len(services) < 10:
        raise SystemExit(f"the bundled catalogue has {len(services)} grantable services; 10 are needed")
    ids = [f"user-{i:06d}" for i in range(count)]
    end = TODAY + dt.timedelta(days=365)
    effects: list[Any] = [PutMeans(Means(id=mid, email=f"{mid}@acme.nl", name=mid, level=Level.EH3,
                                         status=Status.ACTIEF, contract_start=TODAY)) for mid in ids]
    effects += [PutMembership(KVK, mid, Membership(Role.GEBRUIKER)) for mid in ids]
    authorisations = 0
    for mid in ids:
        for service in rng.sample(services, rng.randint(1, 10)):
            effects.append(PutAuthorisation(KVK, mid, service, end))
            authorisations += 1
    with store.transaction(write=True):
        store.apply(effects)
    return ids, authorisations


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """The app under uvicorn on 127.0.0.1:`port`, in a daemon thread; `stop()` shuts it down."""

    def __init__(self, app: Any, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="sandbox-uvicorn", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                raise SystemExit(f"the sandbox server did not start (is port {self.port} free?)")
            if self.server.started:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return
                except OSError:
                    pass
            time.sleep(0.02)
        raise SystemExit(f"the sandbox did not accept connections on {self.url} within {timeout} s")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


async def measure(url: str, token: str, ids: list[str], expect_means: int, expect_auths: int,
                  control_token: str) -> bool:
    ok = True
    async with BeheerClient(url, token) as client, \
            httpx.AsyncClient(base_url=url, headers={"Sandbox-Control-Token": control_token}) as control:
        await client.me()                                   # open the connection; not measured
        await control.delete("/sandbox/requests")

        # (a) everything, page by page
        before = client.requests_total
        start = time.perf_counter()
        means = await client.list_all_means(KVK, limit=LIMIT)
        t_means = time.perf_counter() - start
        n_means = client.requests_total - before
        before = client.requests_total
        start = time.perf_counter()
        auths = await client.list_all_authorisations(KVK, limit=LIMIT)
        t_auths = time.perf_counter() - start
        n_auths = client.requests_total - before
        total = t_means + t_auths
        print(f"(a) list all, limit={LIMIT}: {total:.2f} s, {n_means + n_auths} requests   (target < 2 s)")
        print(f"      means:          {len(means):>6} items in {n_means:>3} requests, {t_means:.2f} s")
        print(f"      authorisations: {len(auths):>6} items in {n_auths:>3} requests, {t_auths:.2f} s")
        if len(means) != expect_means or len(auths) != expect_auths:
            print(f"      MISMATCH: expected {expect_means} means and {expect_auths} authorisations")
            ok = False

        # (b) one bulk grant of 1,000 pairs
        users = ids[:GRANT_USERS]
        services = grantable_services()[-GRANT_SERVICES:]
        before = client.requests_total
        start = time.perf_counter()
        result = await client.grant(KVK, users, services)
        t_grant = time.perf_counter() - start
        n_grant = client.requests_total - before
        pairs = result.result.get("authorisations")
        print(f"(b) bulk grant {len(users)} users x {len(services)} services: {t_grant:.2f} s, {n_grant} request"
              f"{'s' if n_grant != 1 else ''}   (target < 1 s)")
        print(f"      {pairs} authorisations ({result.result.get('created')} created, "
              f"{result.result.get('updated')} updated), revision {result.revision}")
        if pairs != len(users) * len(services):
            ok = False

        served = (await control.get("/sandbox/requests")).json()
        print(f"    server-side /v1 requests counted: {served['total']} "
              f"({', '.join(f'{k}: {v}' for k, v in sorted(served['by_route'].items()))})")
        if not ok:
            return False
        return (total < 2.0) and (t_grant < 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--means", type=int, default=10_000, help="active users in the organisation")
    parser.add_argument("--port", type=int, default=0, help="loopback port to serve on; 0 picks a free one")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the 1-10 authorisations per user")
    args = parser.parse_args(argv)
    if args.means < GRANT_USERS:
        parser.error(f"--means must be at least {GRANT_USERS} (the bulk grant needs that many users)")

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "sandbox.db"
        app = create_app(db)
        store: SandboxStore = app.state.store
        store.set_clock(TODAY)
        # The organisation and its admin token, the way every sandbox organisation is made.
        admin_id, token = store.create_organisation(KVK, "Benchmark B.V.", "admin@acme.nl", "Admin", Level.EH3)
        start = time.perf_counter()
        ids, auth_count = seed(store, args.means, random.Random(args.seed))
        t_seed = time.perf_counter() - start
        print(f"set up: 1 organisation, {args.means} active means, {auth_count} authorisations "
              f"(store, one transaction): {t_seed:.2f} s, {db.stat().st_size / 1e6:.0f} MB database")

        served = Served(app, args.port or free_port())
        served.start()
        try:
            ok = asyncio.run(measure(served.url, token, ids, args.means + 1, auth_count, app.state.control_token))
        finally:
            served.stop()
        print(f"peak RSS (server + client, one process): {_rss_mb():.0f} MB")
    print("within targets" if ok else "NOT within targets")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
