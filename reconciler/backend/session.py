"""One backend session for plan, apply and drift: the client, per organisation the acting admin and a
client with its token, and the backend's today.

Embedded (`sandbox:PATH`): unknown organisations are bootstrapped from the config and each organisation is
acted for by its own admin (tokens minted for this run). Remote: one token (`BEHEER_API_TOKEN`) acts for
every organisation its admin is linked to; `GET /v1/me` says who that is and which day it is.
"""

from __future__ import annotations

import datetime as dt
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable, Mapping, Sequence

from reconciler.backend.bootstrap import ActingAdmin, acting_admins, acting_admins_of
from reconciler.backend.client import BeheerClient
from reconciler.backend.connect import open_backend, parse_backend_spec
from reconciler.backend.errors import ConfigurationError
from reconciler.backend import read as reading
from reconciler.backend.read import ActualState
from reconciler.backend.sandbox.controls import SandboxControls
from reconciler.config.loader import LoadedOrg
from reconciler.domain.catalogue import Catalogue


@dataclass
class Session:
    backend: str
    embedded: bool
    client: BeheerClient | None              # None: a backend without an API (the Beheermodule's downloads)
    clients: dict[str, BeheerClient] = field(default_factory=dict)     # kvk -> client acting for it
    actors: dict[str, str | None] = field(default_factory=dict)        # kvk -> acting admin's means id
    today: dt.date = field(default_factory=dt.date.today)
    notes: list[str] = field(default_factory=list)
    acting_notes: dict[str, str] = field(default_factory=dict)         # kvk -> why not the preferred admin acts
    read_only: bool = False                                            # the token can read, not change
    state: ActualState | None = None                                   # read once when the session opened

    @property
    def requests_total(self) -> int:
        return self.client.requests_total if self.client is not None else 0

    async def read(self, kvks: Sequence[str], catalogue: Catalogue) -> ActualState:
        """The backend's state of `kvks`: through the API, each organisation with its own client, or what the
        session read when it opened."""
        if self.state is not None:
            return self.state
        return await reading.read_state(self.clients, kvks, catalogue)

    async def catalogue(self) -> Catalogue:
        """The backend's own service catalogue (for a saved plan or an import: no config names services)."""
        reader = next(iter(self.clients.values()), self.client)       # one with a token
        if reader is None:
            raise ConfigurationError(f"{self.backend} has no service catalogue of its own: give a config")
        return Catalogue([s.to_service() for s in await reader.list_services()])


@asynccontextmanager
async def open_session(backend: str | None, orgs: Sequence[LoadedOrg], *, today: dt.date | None = None,
                       read_only: bool = False, **client_options: object) -> AsyncIterator[Session]:
    """A session for the organisations of a config (embedded: unknown ones are bootstrapped from it)."""
    async def embedded(controls: SandboxControls) -> dict[str, ActingAdmin]:
        return await acting_admins(controls, orgs)

    kvks = [org.config.organisation.kvk for org in orgs]
    async with _open(backend, kvks, embedded, today, read_only, client_options) as session:
        yield session


@asynccontextmanager
async def open_plan_session(backend: str | None, preferred: Mapping[str, str | None], *, today: dt.date | None = None,
                            **client_options: object) -> AsyncIterator[Session]:
    """A session for the organisations of a saved plan: `preferred` maps each KvK to the acting admin the plan
    was made with (embedded: that person acts again while still an active beheerder there)."""
    async def embedded(controls: SandboxControls) -> dict[str, ActingAdmin]:
        return await acting_admins_of(controls, preferred)

    async with _open(backend, list(preferred), embedded, today, False, client_options) as session:
        yield session


@asynccontextmanager
async def _open(backend: str | None, kvks: Sequence[str],
                embedded: Callable[[SandboxControls], Awaitable[dict[str, ActingAdmin]]], today: dt.date | None,
                read_only: bool, client_options: Mapping[str, object]) -> AsyncIterator[Session]:
    spec = parse_backend_spec(backend)
    async with open_backend(backend, require_token=not spec.embedded, **client_options) as client:  # type: ignore[arg-type]
        session = Session(backend=str(spec), embedded=spec.embedded, client=client)
        if spec.embedded:
            controls = SandboxControls(client)
            for kvk, admin in (await embedded(controls)).items():
                session.clients[kvk] = client.with_token(admin.token)
                session.actors[kvk] = admin.means_id
                if admin.created:
                    session.notes.append(admin.describe())
                if admin.reason:
                    session.acting_notes[kvk] = admin.reason
            session.today = today or await controls.today()
        else:
            me = await client.me()
            for kvk in kvks:
                session.clients[kvk] = client
                session.actors[kvk] = me.means_id
            session.today = today or me.today or dt.date.today()
            session.read_only = me.read_only
            if me.read_only and not read_only:
                session.notes.append("the token is read-only: plans can be made, not applied")
        _check_today(session.today, spec.embedded)
        yield session


def _check_today(today: dt.date, embedded: bool) -> None:
    """A backend whose today lies past LATEST_TODAY (a sandbox clock set there by an older version) cannot be
    reasoned about: five years later (R9) leaves the calendar. Said in one line, not an overflow."""
    from reconciler.domain.rules import LATEST_TODAY

    if today > LATEST_TODAY:
        todo = ("set the sandbox clock back: reconciler sandbox clock set YYYY-MM-DD" if embedded
                else "give --today YYYY-MM-DD")
        raise ConfigurationError(f"the backend's today is {today.isoformat()}, past {LATEST_TODAY.isoformat()}: end "
                                 f"dates five years later would leave the calendar; {todo}")
