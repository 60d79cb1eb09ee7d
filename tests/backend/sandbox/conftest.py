"""Fixtures for the sandbox backend: an app on a fresh SQLite file, an httpx client talking to it in-process,
and one organisation with its active admin, on a fixed sandbox date."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.backend.sandbox.app import create_app
from reconciler.backend.sandbox.controls import CONTROL_HEADER
from reconciler.backend.sandbox.store import SandboxStore
from reconciler.config.models import Role
from reconciler.domain.catalogue import bundled_catalogue
from reconciler.domain.levels import Level
from reconciler.domain.state import Means, Membership, PutMeans, PutMembership, Status

#: The sandbox's today in these tests; 2025-06-01 + 5 years = 2030-06-01.
TODAY = dt.date(2025, 6, 1)
KVK = "12345678"
ADMIN = "anna@acme.nl"


def uuid_of(key: str) -> str:
    return bundled_catalogue()[key].uuid


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Sandbox:
    """An app, a client on it, and the admin of organisation KVK."""

    app: Any
    client: httpx.AsyncClient
    db_path: Path
    admin_id: str
    token: str

    @property
    def store(self) -> SandboxStore:
        return self.app.state.store  # type: ignore[no-any-return]

    def auth(self, token: str | None = None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}", **extra}

    async def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return await self.client.get(path, headers=self.auth(token), **kw)

    async def post(self, path: str, body: Any = None, token: str | None = None, headers: dict[str, str] | None = None,
                   **kw: Any) -> httpx.Response:
        return await self.client.post(path, json=body, headers={**self.auth(token), **(headers or {})}, **kw)

    async def new_means(self, email: str, *, level: str = "EH3", role: str = "gebruiker", active: bool = True,
                        kvk: str = KVK, token: str | None = None) -> str:
        """Request a means through the API and (by default) let the supplier approve and the holder activate."""
        body: dict[str, Any] = {"email": email, "name": email.split("@")[0], "role": role, "level": level}
        if level in ("EH2+", "EH3"):
            body["second_factor"] = {"type": "sms", "phone": "+31612345678"}
        r = await self.post(f"/v1/organisations/{kvk}/means", body, token=token)
        assert r.status_code == 201, r.text
        means_id: str = r.json()["result"]["id"]
        if active:
            for step in ("approve", "activate"):
                r = await self.client.post(f"/sandbox/means/{means_id}/{step}")
                assert r.status_code == 200, r.text
        return means_id

    async def revision(self, kvk: str = KVK) -> int:
        r = await self.get(f"/v1/organisations/{kvk}")
        assert r.status_code == 200, r.text
        return int(r.json()["revision"])


async def open_sandbox(db_path: Path, **options: Any) -> tuple[Any, httpx.AsyncClient]:
    """The app and a client that carries its control token (the `/sandbox` controls need it; `/v1` ignores it)."""
    app = create_app(db_path, **options)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test",
                               headers={CONTROL_HEADER: app.state.control_token})
    return app, client


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[Sandbox]:
    db_path = tmp_path / "sandbox.db"
    app, client = await open_sandbox(db_path)
    async with client:
        r = await client.post("/sandbox/clock", json={"today": TODAY.isoformat()})
        assert r.status_code == 200, r.text
        r = await client.post("/sandbox/organisations", json={
            "kvk": KVK, "name": "Acme", "admin": {"email": ADMIN, "name": "Anna", "level": "EH3"}})
        assert r.status_code == 201, r.text
        yield Sandbox(app, client, db_path, r.json()["means_id"], r.json()["token"])
    app.state.store.close()


def seed_means(store: SandboxStore, kvk: str, count: int, *, prefix: str = "user") -> list[str]:
    """`count` active EH3 users in `kvk`, written as the rules' own effects (fast, for volume tests)."""
    ids = [f"{prefix}-{i:06d}" for i in range(count)]
    effects: list[Any] = [PutMeans(Means(id=mid, email=f"{mid}@acme.nl", name=mid, level=Level.EH3,
                                         status=Status.ACTIEF, contract_start=TODAY)) for mid in ids]
    effects += [PutMembership(kvk, mid, Membership(Role.GEBRUIKER)) for mid in ids]
    with store.transaction(write=True):
        store.apply(effects)
    return ids


async def collect(sandbox: Sandbox, path: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every item of a paginated list, and the number of pages it took."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = await sandbox.get(path, params=params)
        assert r.status_code == 200, r.text
        pages += 1
        data = r.json()
        items.extend(data["items"])
        cursor = data["next_cursor"]
        if cursor is None:
            return items, pages
