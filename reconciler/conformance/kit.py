"""What the probes share: the backend's client, the control hook, the catalogue, and throw-away organisations
and people made for one run (random 8-digit KvK numbers, e-mail addresses under `conformance.example` with a
run id), so the kit never touches an organisation it did not create; `cleanup` ends what it made."""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

from reconciler.backend.client import BeheerClient
from reconciler.backend.errors import BackendError
from reconciler.backend.types import RemoteService, Secret
from reconciler.conformance.control import Control
from reconciler.domain.levels import Level

#: The domain of every e-mail address the kit invents (reserved for examples, RFC 2606: it reaches nobody).
EMAIL_DOMAIN = "conformance.example"
#: Tries to find a KvK number no organisation has yet.
KVK_TRIES = 5


class CannotRun(Exception):
    """A probe cannot run against this backend (what it needs is not there): the probe is skipped, saying why."""


class NoControl(CannotRun):
    """A probe needs the control hook (or its clock) and the run has none."""


@dataclass
class Org:
    """A throw-away organisation: its KvK, its first admin's means and a client acting as that admin."""

    kvk: str
    admin_id: str
    admin: BeheerClient
    admin_email: str
    people: list[str] = field(default_factory=list)      # means ids the kit requested here (cleanup reads as them)


@dataclass
class Kit:
    api: BeheerClient                          # acting with BEHEER_API_TOKEN: reads only, never on our orgs' data
    raw: httpx.AsyncClient                     # plain HTTP, for what the client refuses to send (no token)
    control: Control | None
    services: list[RemoteService]
    run: str = field(default_factory=lambda: secrets.token_hex(3))
    orgs: list[Org] = field(default_factory=list)
    _n: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -------------------------------------------------------------------------------------- the hook
    def need_control(self, clock: bool = False) -> Control:
        if self.control is None:
            raise NoControl("needs the control interface (SANDBOX_CONTROL_TOKEN unset): the kit cannot create a "
                            "throw-away organisation or play the supplier and the holder")
        if clock and not self.control.clock:
            raise NoControl("needs the control interface's clock (GET/POST /sandbox/clock), which this backend "
                            "does not offer")
        return self.control

    # ------------------------------------------------------------------------------------- identities
    def email(self, tag: str) -> str:
        return f"{tag}.{self.run}{next(self._n)}@{EMAIL_DOMAIN}"

    def acting(self, token: Secret) -> BeheerClient:
        return self.api.with_token(token)

    async def today(self) -> dt.date:
        """The backend's today (`GET /v1/me`), by which it judges end dates (R9) and deadlines (R5)."""
        me = await self.api.me()
        if me.today is None:
            raise BackendError("GET /v1/me did not say the backend's `today`", status=200)
        return me.today

    # ---------------------------------------------------------------------------------- organisations
    async def new_org(self, level: str = "EH4", *, admin_email: str | None = None) -> Org:
        """A new organisation with one active admin (a new means at `level`, or the existing means of
        `admin_email`), registered through the control hook with a random KvK number nobody uses."""
        control = self.need_control()
        email = admin_email or self.email("admin")
        last: BackendError | None = None
        for _ in range(KVK_TRIES):
            kvk = f"{secrets.randbelow(90_000_000) + 10_000_000}"
            try:
                admin_id, token = await control.create_organisation(
                    kvk, f"Conformance {self.run} {kvk}", admin_email=email, admin_name="Conformance Admin",
                    level=level)
            except BackendError as exc:
                if exc.code != "already-exists":
                    raise
                last = exc
                continue
            org = Org(kvk, admin_id, self.acting(token), email)
            self.orgs.append(org)
            return org
        raise last or BackendError("no free KvK number found")

    async def member(self, org: Org, tag: str, *, level: str = "EH2", role: str = "gebruiker",
                     type: str | None = None, active: bool = True, approved: bool = True) -> str:
        """A new person in `org`, requested by its admin, approved by the supplier and activated by the holder
        (as far as asked); a level from EH2+ gets an OTP device (R19). Returns the means id."""
        control = self.need_control()
        factor = "otp" if Level(level) >= Level.EH2PLUS else None
        done = await org.admin.request_means(org.kvk, email=self.email(tag), name=f"Conformance {tag}", role=role,
                                             level=level, type=type, second_factor=factor)
        means_id = str(done.result["id"])
        org.people.append(means_id)
        if approved:
            await control.approve(means_id)
            if active:
                await control.activate(means_id)
        return means_id

    async def token(self, means_id: str, *, read_only: bool = False) -> BeheerClient:
        """A client acting with a new token of `means_id` (from the control hook)."""
        return self.acting(await self.need_control().token(means_id, read_only=read_only))

    def service(self, *, at_most: str = "EH2", tax: bool = False, skip: tuple[str, ...] = (),
                exactly: str | None = None) -> RemoteService:
        """A service from the backend's catalogue: a Belastingdienst one (any level) when `tax`, else a regular
        one at level `exactly`, or one at or below `at_most` (specific services before general authorities)."""
        pool = [s for s in self.services if s.belastingdienst == tax and s.uuid not in skip]
        if exactly is not None and not tax:
            pool = [s for s in pool if s.level == Level(exactly)]
        elif not tax:
            pool = [s for s in pool if s.level <= Level(at_most)]
        pool.sort(key=lambda s: (s.general, -int(s.level >= Level.EH2), s.key))
        if not pool:
            wanted = "Belastingdienst service" if tax else f"service at {exactly or 'or below ' + at_most}"
            raise CannotRun(f"the backend's catalogue (GET /v1/services) has no {wanted}")
        return pool[0]

    # ----------------------------------------------------------------------------------------- cleanup
    async def cleanup(self) -> tuple[int, list[str]]:
        """End every organisation this run made (newest first): an admin who stays terminates every other
        member now, then itself, which ends the organisation (R14). Returns how many ended and, per
        organisation, what could not be cleaned."""
        ended, problems = 0, []
        for org in reversed(self.orgs):
            try:
                if await self._end(org):
                    ended += 1
                else:
                    problems.append(f"organisation {org.kvk}: not every means could be terminated")
            except BackendError as exc:
                problems.append(f"organisation {org.kvk}: {exc}")
        return ended, problems

    async def _end(self, org: Org) -> bool:
        found = await self._reader(org)
        if found is None:
            raise BackendError("no admin the kit made can read it any more")
        means = found
        admins = [m for m in means if m.role.value == "beheerder" and m.status.value == "actief"]
        if not admins:
            return False
        chosen = min(admins, key=lambda m: (m.terminates_on is not None, m.id != org.admin_id))
        actor = await self.token(chosen.id)
        left = 0
        for m in means:
            if m.id != chosen.id:
                try:
                    await actor.terminate_means(org.kvk, m.id, mode="now")
                except BackendError:
                    left += 1
        if left:
            return False
        done = await actor.terminate_means(org.kvk, chosen.id, mode="now")
        return done.result.get("organisation_deleted", True) is not False

    async def _reader(self, org: Org) -> list[Any] | None:
        """The organisation's means, read as the first admin or, failing that, as any other means the kit
        requested there (with a new token); None when none of them can read it."""
        try:
            return await org.admin.list_all_means(org.kvk)
        except BackendError:
            pass
        for means_id in org.people:
            try:
                return await (await self.token(means_id)).list_all_means(org.kvk)
            except BackendError:
                continue
        return None
