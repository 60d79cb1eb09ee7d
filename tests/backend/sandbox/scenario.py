"""Scenario helpers for the rule tests (test_rules_http.py): set up organisations and means through the
sandbox controls and act as an admin through `/v1`, all over HTTP, and check refusals against the whole
observable state (revision, means, authorisations, chain authorisations, every means of the sandbox).

Built on the `sandbox` fixture of conftest.py: organisation `KVK` with its active EH3 admin (otp).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import httpx

from .conftest import ADMIN, KVK, TODAY, Sandbox, uuid_of

PHONE = "+31612345678"
OTHER_PHONE = "+31687654321"
PROBLEM = "application/problem+json"


def day(offset: int) -> str:
    """TODAY + offset days, as YYYY-MM-DD."""
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def svc(*keys: str) -> list[str]:
    """Service UUIDs of bundled catalogue keys."""
    return [uuid_of(k) for k in keys]


@dataclass
class Scenario:
    """One sandbox seen over HTTP. `tokens` holds a token of an active admin per organisation, used to read
    the state; `acting` defaults to the fixture admin's token."""

    sb: Sandbox
    tokens: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tokens.setdefault(KVK, self.sb.token)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.sb.client

    @property
    def admin(self) -> str:
        return self.sb.admin_id

    # ------------------------------------------------------------------------------------------- raw HTTP
    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                   headers: dict[str, str] | None = None) -> httpx.Response:
        hdrs = {"Authorization": f"Bearer {token or self.sb.token}", **(headers or {})}
        if body is None:
            return await self.client.request(method, path, headers=hdrs)
        return await self.client.request(method, path, json=body, headers=hdrs)

    async def ok(self, method: str, path: str, body: Any = None, *, status: int = 200, token: str | None = None
                 ) -> dict[str, Any]:
        r = await self.call(method, path, body, token=token)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()  # type: ignore[no-any-return]

    async def control(self, method: str, path: str, body: Any = None, *, status: int = 200) -> dict[str, Any]:
        r = await self.client.request(method, path, json=body) if body is not None else \
            await self.client.request(method, path)
        assert r.status_code == status, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()  # type: ignore[no-any-return]

    # ------------------------------------------------------------------------------------------ the supplier
    async def create_org(self, kvk: str, *, email: str, name: str = "Org", level: str = "EH3",
                         phone: str | None = None, second_factor: str | None = None,
                         branch_number: str | None = None) -> tuple[str, str]:
        """A new organisation with its active admin (the supplier, R16); returns (admin means id, token)."""
        admin: dict[str, Any] = {"email": email, "name": email.split("@")[0], "level": level}
        if phone:
            admin["phone"] = phone
        if second_factor:
            admin["second_factor"] = second_factor
        body: dict[str, Any] = {"kvk": kvk, "name": name, "admin": admin}
        if branch_number:
            body["branch_number"] = branch_number
        data = await self.control("POST", "/sandbox/organisations", body, status=201)
        self.tokens.setdefault(kvk, data["token"])
        return data["means_id"], data["token"]

    async def token_of(self, means_id: str, read_only: bool = False) -> str:
        data = await self.control("POST", "/sandbox/tokens", {"means_id": means_id, "read_only": read_only},
                                  status=201)
        return data["token"]  # type: ignore[no-any-return]

    async def step(self, means_id: str, step: str, *, status: int = 200) -> dict[str, Any]:
        """approve | reject | activate | expire"""
        return await self.control("POST", f"/sandbox/means/{means_id}/{step}", status=status)

    async def clock(self, *, today: str | None = None, advance: int | None = None) -> dict[str, Any]:
        body = {"today": today} if today is not None else {"advance_days": advance}
        return await self.control("POST", "/sandbox/clock", body)

    async def sandbox_means(self, **filters: str) -> list[dict[str, Any]]:
        r = await self.client.get("/sandbox/means", params=filters)
        assert r.status_code == 200, r.text
        return r.json()["items"]  # type: ignore[no-any-return]

    # ------------------------------------------------------------------------------------- the acting admin
    @staticmethod
    def means_body(email: str, *, level: str = "EH3", role: str = "gebruiker", factor: str | None = "sms",
                   phone: str | None = PHONE, type: str | None = None, subscription: str | None = None
                   ) -> dict[str, Any]:
        body: dict[str, Any] = {"email": email, "name": email.split("@")[0], "role": role, "level": level}
        if factor is not None and level in ("EH2+", "EH3", "EH4"):
            body["second_factor"] = {"type": factor, **({"phone": phone} if factor == "sms" and phone else {})}
        if type is not None:
            body["type"] = type
        if subscription is not None:
            body["subscription"] = subscription
        return body

    async def new_means(self, email: str, *, kvk: str = KVK, level: str = "EH3", role: str = "gebruiker",
                        until: str = "actief", token: str | None = None, **body: Any) -> str:
        """Request a means through /v1 and take it to status `until` through the sandbox controls."""
        data = await self.ok("POST", f"/v1/organisations/{kvk}/means",
                             self.means_body(email, level=level, role=role, **body), status=201, token=token)
        means_id: str = data["result"]["id"]
        assert data["result"]["status"] == "wachten_op_goedkeuring"
        steps = {"wachten_op_goedkeuring": [], "wachten_op_activatie": ["approve"],
                 "actief": ["approve", "activate"], "activatie_verlopen": ["approve", "expire"]}[until]
        for s in steps:
            await self.step(means_id, s)
        return means_id

    async def means(self, means_id: str, kvk: str = KVK) -> dict[str, Any] | None:
        r = await self.call("GET", f"/v1/organisations/{kvk}/means/{means_id}", token=self.tokens[kvk])
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def revision(self, kvk: str = KVK) -> int:
        data = await self.ok("GET", f"/v1/organisations/{kvk}", token=self.tokens[kvk])
        return int(data["revision"])

    async def authorisations(self, kvk: str = KVK) -> dict[tuple[str, str], str]:
        """{(means id, service key): end date}"""
        data = await self.ok("GET", f"/v1/organisations/{kvk}/authorisations?limit=500", token=self.tokens[kvk])
        return {(a["means_id"], a["service_key"]): a["end_date"] for a in data["items"]}

    async def chains(self, kvk: str = KVK) -> dict[str, dict[str, Any]]:
        data = await self.ok("GET", f"/v1/organisations/{kvk}/chain-authorisations", token=self.tokens[kvk])
        return {c["intermediary_kvk"]: c for c in data["items"]}

    async def grant(self, means_ids: list[str], keys: list[str], *, end_date: str | None = None, kvk: str = KVK,
                    token: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"means_ids": means_ids, "services": svc(*keys)}
        if end_date is not None:
            body["end_date"] = end_date
        return await self.call("POST", f"/v1/organisations/{kvk}/authorisations", body, token=token)

    # ------------------------------------------------------------------------------------------ the checks
    async def snapshot(self, *kvks: str) -> dict[str, Any]:
        """Everything a change could touch: per organisation its revision, means, authorisations and chain
        authorisations (read with that organisation's token), and every means of the sandbox."""
        state: dict[str, Any] = {"all_means": await self.sandbox_means()}
        for kvk in kvks or (KVK,):
            token = self.tokens[kvk]
            org = await self.call("GET", f"/v1/organisations/{kvk}", token=token)
            if org.status_code != 200:
                state[kvk] = org.status_code
                continue
            means = await self.ok("GET", f"/v1/organisations/{kvk}/means?limit=500", token=token)
            auths = await self.ok("GET", f"/v1/organisations/{kvk}/authorisations?limit=500", token=token)
            chains = await self.ok("GET", f"/v1/organisations/{kvk}/chain-authorisations", token=token)
            state[kvk] = {"revision": org.json()["revision"], "etag": org.headers.get("etag"),
                          "means": means["items"], "authorisations": auths["items"], "chains": chains["items"]}
        return state

    async def refused(self, method: str, path: str, body: Any = None, *, code: str, status: int = 409,
                      token: str | None = None, kvks: tuple[str, ...] = (KVK,)) -> dict[str, Any]:
        """The request is refused with `status` and problem+json `code`, and nothing observable changed."""
        before = await self.snapshot(*kvks)
        r = await self.call(method, path, body, token=token)
        assert r.status_code == status, f"{method} {path}: expected {status} {code}, got {r.status_code} {r.text}"
        assert r.headers["content-type"].startswith(PROBLEM), r.headers["content-type"]
        problem = r.json()
        assert problem["code"] == code, problem
        assert problem["status"] == status and problem["detail"], problem
        after = await self.snapshot(*kvks)
        assert after == before, "a refused request changed the state"
        return problem  # type: ignore[no-any-return]

    async def events(self, kvk: str = KVK) -> list[dict[str, Any]]:
        data = await self.ok("GET", f"/v1/organisations/{kvk}/events?limit=500", token=self.tokens[kvk])
        return data["items"]  # type: ignore[no-any-return]


__all__ = ["ADMIN", "KVK", "OTHER_PHONE", "PHONE", "PROBLEM", "Scenario", "TODAY", "day", "svc"]
