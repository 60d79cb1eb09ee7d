"""The control hook: what the kit needs from a supplier besides the beheer API, to play the supplier
(register a throw-away organisation, approve), the holder (activate) and the calendar (the clock).

The sandbox's control API (`/sandbox/...`, docs/beheer-api.md) is the reference; `HttpControl` speaks it, and a
supplier that offers the same few calls (docs/conformance.md, "The control interface") gets the full kit.
Without a control hook the probes that need these steps are skipped, never passed."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from reconciler.backend.client import BeheerClient
from reconciler.backend.errors import BackendError, NotFound, Unauthorized
from reconciler.backend.sandbox.controls import SandboxControls
from reconciler.backend.types import Secret


class ControlUnusable(Exception):
    """The control hook was asked for but does not answer as it should (a wrong control token, say)."""


class Control(Protocol):
    """The supplier's steps the kit plays; `clock` tells whether the backend's today can be moved (R5)."""

    clock: bool

    async def create_organisation(self, kvk: str, name: str, *, admin_email: str, admin_name: str,
                                  level: str) -> tuple[str, Secret]: ...
    async def token(self, means_id: str, *, read_only: bool = False) -> Secret: ...
    async def approve(self, means_id: str) -> None: ...
    async def activate(self, means_id: str) -> None: ...
    async def today(self) -> dt.date: ...
    async def set_today(self, day: dt.date) -> None: ...
    async def advance(self, days: int) -> None: ...


class HttpControl:
    """The control API at `/sandbox/...` of `client`'s base URL (the client sends the control token there)."""

    def __init__(self, client: BeheerClient) -> None:
        self.controls = SandboxControls(client)
        self.clock = False

    async def check(self) -> None:
        """Ask for the clock: proves the control token works and tells whether the clock can be moved."""
        try:
            await self.controls.today()
            self.clock = True
        except Unauthorized:
            raise ControlUnusable("the control API did not accept SANDBOX_CONTROL_TOKEN (401): export the control "
                                  "token the backend's control interface expects") from None
        except NotFound:
            self.clock = False
        except BackendError as exc:
            if exc.status == 405:
                self.clock = False
                return
            raise ControlUnusable(f"the control API did not answer GET /sandbox/clock: {exc}") from None

    async def create_organisation(self, kvk: str, name: str, *, admin_email: str, admin_name: str,
                                  level: str) -> tuple[str, Secret]:
        created = await self.controls.create_organisation(kvk, name, admin_email=admin_email,
                                                          admin_name=admin_name, level=level)
        return created.means_id, created.token

    async def token(self, means_id: str, *, read_only: bool = False) -> Secret:
        return await self.controls.create_token(means_id, read_only=read_only)

    async def approve(self, means_id: str) -> None:
        await self.controls.step(means_id, "approve")

    async def activate(self, means_id: str) -> None:
        await self.controls.step(means_id, "activate")

    async def today(self) -> dt.date:
        return await self.controls.today()

    async def set_today(self, day: dt.date) -> None:
        await self.controls.set_today(day)

    async def advance(self, days: int) -> None:
        await self.controls.advance(days)
