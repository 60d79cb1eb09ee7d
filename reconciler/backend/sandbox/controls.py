"""The sandbox's own controls (`/sandbox/...`), reached through the same client as the API: the supplier
approves and rejects, the holder activates, time passes, faults are injected. Not part of the contract:
a real supplier's backend has none of these. They need the sandbox's control token (`CONTROL_HEADER`), which
`open_backend` attaches: a per-process random one for the embedded sandbox, `SANDBOX_CONTROL_TOKEN` for a
served one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable

from reconciler.backend.client import BeheerClient
from reconciler.backend.types import Secret, _mapping, _str
from reconciler.domain.catalogue import Service

LIFECYCLE_STEPS = ("approve", "reject", "activate", "expire")
#: The header that carries the control token (`Authorization: Bearer <control token>` is accepted too).
CONTROL_HEADER = "Sandbox-Control-Token"
#: Where `sandbox serve` and the control commands read the control token of a served sandbox: from the
#: environment only, so it never shows in a process list (`ps`) as an argument would.
CONTROL_TOKEN_ENV = "SANDBOX_CONTROL_TOKEN"


@dataclass(frozen=True, slots=True)
class SandboxMeans:
    """A means as the controls list it: enough to pick what to approve or activate."""

    id: str
    email: str
    status: str
    pending: dict[str, Any] | None
    roles: dict[str, str]                 # kvk -> role
    activation_deadline: str | None

    @property
    def organisations(self) -> tuple[str, ...]:
        return tuple(sorted(self.roles))

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "SandboxMeans":
        roles = {str(m["kvk"]): str(m["role"]) for m in data.get("memberships") or []}
        return cls(id=str(data["id"]), email=str(data["email"]), status=str(data["status"]),
                   pending=data.get("pending"), roles=roles, activation_deadline=data.get("activation_deadline"))


@dataclass(frozen=True, slots=True)
class SandboxOrganisation:
    """`POST /sandbox/organisations`: the new organisation, its admin's means and that admin's token."""

    kvk: str
    means_id: str
    token: Secret

    def __repr__(self) -> str:
        return f"SandboxOrganisation(kvk={self.kvk!r}, means_id={self.means_id!r}, token=***)"

    @classmethod
    def parse(cls, data: Any) -> "SandboxOrganisation":
        d = _mapping(data, "sandbox organisation")
        return cls(kvk=_str(d, "kvk"), means_id=str(d["means_id"]), token=Secret(_str(d, "token")))


class SandboxControls:
    """Typed calls to `/sandbox`; errors come back as the client's typed `BackendError`s."""

    def __init__(self, client: BeheerClient) -> None:
        self.client = client

    async def create_organisation(self, kvk: str, name: str, *, admin_email: str, admin_name: str,
                                  level: str = "EH3", second_factor: str | None = None, phone: str | None = None,
                                  branch_number: str | None = None, subscription: str | None = None
                                  ) -> SandboxOrganisation:
        """The supplier registers an organisation with its first admin; `subscription` (`1y`, `3y`) is that
        admin's, as the config declares it (the sandbox's default is `1y`)."""
        admin: dict[str, Any] = {"email": admin_email, "name": admin_name, "level": level}
        if subscription:
            admin["subscription"] = subscription
        if second_factor:
            admin["second_factor"] = second_factor
        if phone:
            admin["phone"] = phone
        body: dict[str, Any] = {"kvk": kvk, "name": name, "admin": admin}
        if branch_number:
            body["branch_number"] = branch_number
        return SandboxOrganisation.parse(await self.client.call("POST", "/sandbox/organisations", body=body))

    async def create_token(self, means_id: str, *, read_only: bool = False) -> Secret:
        data = await self.client.call("POST", "/sandbox/tokens", body={"means_id": means_id, "read_only": read_only})
        return Secret(str(data["token"]))

    async def means(self, *, status: str | None = None, kvk: str | None = None,
                    email: str | None = None) -> list[SandboxMeans]:
        data = await self.client.call("GET", "/sandbox/means", params={"status": status, "kvk": kvk, "email": email})
        return [SandboxMeans.parse(item) for item in data["items"]]

    async def step(self, means_id: str, step: str) -> SandboxMeans | None:
        """approve / reject / activate / expire one means; None when it is gone (a rejected request)."""
        if step not in LIFECYCLE_STEPS:
            raise ValueError(f"unknown step {step!r}; allowed: {', '.join(LIFECYCLE_STEPS)}")
        data = await self.client.call("POST", f"/sandbox/means/{means_id}/{step}")
        return SandboxMeans.parse(data["means"]) if data.get("means") else None

    async def today(self) -> dt.date:
        return dt.date.fromisoformat((await self.client.call("GET", "/sandbox/clock"))["today"])

    async def set_today(self, day: dt.date) -> dict[str, Any]:
        return await self.client.call("POST", "/sandbox/clock", body={"today": day.isoformat()})

    async def advance(self, days: int) -> dict[str, Any]:
        return await self.client.call("POST", "/sandbox/clock", body={"advance_days": days})

    async def add_services(self, services: Iterable[Service]) -> None:
        items = [s.to_data() for s in services]
        if items:
            await self.client.call("POST", "/sandbox/catalogue", body={"services": items})

    async def set_faults(self, *, p_503: float = 0.0, p_429: float = 0.0, p_drop: float = 0.0, delay_ms: int = 0,
                         seed: int | None = None) -> dict[str, Any]:
        return await self.client.call("POST", "/sandbox/faults", body={
            "p_503": p_503, "p_429": p_429, "p_drop": p_drop, "delay_ms": delay_ms, "seed": seed})

    async def request_counts(self) -> dict[str, Any]:
        return await self.client.call("GET", "/sandbox/requests")
