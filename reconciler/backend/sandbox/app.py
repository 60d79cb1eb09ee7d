"""The sandbox beheer backend as an ASGI app: the v1 API (docs/beheer-api.md), the sandbox controls, and a
middleware that counts, rate-limits and injects faults into `/v1` requests.

Served by uvicorn (`reconciler sandbox serve`) or used in-process through `httpx.ASGITransport`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.config.loader import load_catalogue_file

from reconciler.backend.sandbox import models, problems, routes_sandbox, routes_v1
from reconciler.backend.sandbox.controls import CONTROL_HEADER
from reconciler.backend.sandbox.fastlane import PATH_CHARS_KEPT, FastLane
from reconciler.backend.sandbox.faults import (
    FaultConfig, FaultInjector, RateBudget, RateLimiter, RuleFaults, RuleFaultScope,
)
from reconciler.backend.sandbox.store import SandboxStore

API_VERSION = "1.0.0"
API_TITLE = "Beheer API"
API_DESCRIPTION = """\
What a supplier implements so `reconciler` can manage its eHerkenning Beheermodule: organisations, means,
authorisations and chain authorisations, under the rules R1..R20 (`shared/domain/RULES.md`).

- **Auth**: `Authorization: Bearer <token>`; a token belongs to one admin means, the acting admin.
- **Errors**: `application/problem+json` (RFC 9457) with `code`: the rule id or a named condition.
  Rule refusals are 409, bad bodies 422.
- **Revisions**: every organisation has a `revision`, returned as `ETag`; send `If-Match` with changes
  (412 when stale).
- **Idempotency**: every change accepts `Idempotency-Key`; a repeat returns the first response without
  repeating the effect.
- **Pagination**: `limit` (1..2000, default 100) and `cursor`; answers `{items, next_cursor}`.
- **Rate limiting**: 429 with `Retry-After`.
"""


class ConnectionDropped(Exception):
    """Fault injection (`p_drop`): the request was handled and committed, then the connection was dropped.

    Under uvicorn the client sees a connection closed mid-response; in-process (httpx.ASGITransport) this
    exception reaches the client, which should treat it as a transport error.
    """


class _QuietDrops(logging.Filter):
    """uvicorn logs an app exception with its traceback; an injected drop deserves one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ConnectionDropped):
            record.msg, record.args = "%s", (str(record.exc_info[1]),)
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_drops(logger: logging.Logger = logging.getLogger("uvicorn.error")) -> None:
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


class V1Middleware:
    """For `/v1` requests: count by route template, apply the rate budget, inject faults."""

    #: Routes remembered by (method, path): a change of an organisation's authorisations is sent to the same path
    #: again and again, and matching it against every route costs what FastAPI's own routing does.
    ROUTES_KEPT = 1024

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self._routes: dict[tuple[str, str], str] = {}

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """To the app, through its fast lane when it has one (`app.state.fast_lane`)."""
        lane: FastLane | None = self.api.state.fast_lane
        if lane is None:
            await self.app(scope, receive, send)
        else:
            await lane(scope, receive, send, self.app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return
        state = self.api.state
        store: SandboxStore = state.store
        store.count_request(scope["method"], self._route(scope))

        token = _bearer(scope)
        if token is not None:
            wait = state.limiter.take(hashlib.sha256(token.encode()).hexdigest())
            if wait is not None:
                await problems.problem_response(429, "rate-limited", f"the request budget of this token is spent; "
                                                f"retry in {wait} s", headers={"Retry-After": str(wait)}
                                                )(scope, receive, send)
                return

        decision = state.faults.decide()
        if decision.delay_ms:
            await asyncio.sleep(decision.delay_ms / 1000)
        if decision.status == 503:
            await problems.problem_response(503, "unavailable", "the backend is unavailable (injected fault); "
                                            "retry later")(scope, receive, send)
            return
        if decision.status == 429:
            await problems.problem_response(429, "rate-limited", "too many requests (injected fault)",
                                            headers={"Retry-After": str(decision.retry_after)})(scope, receive, send)
            return
        if not decision.drop:
            await self._forward(scope, receive, send)
            return

        started: list[Message] = []

        async def hold(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.append(message)

        await self._forward(scope, receive, hold)  # handled and committed; the answer never arrives
        if started:
            await send(started[0])
        raise ConnectionDropped(f"{scope['method']} {scope['path']}: connection dropped after commit (injected)")

    def _route(self, scope: Scope) -> str:
        """The route template (`/v1/organisations/{kvk}/means`), so counts do not depend on ids."""
        key = (scope["method"], scope["path"])
        found = self._routes.get(key)
        if found is None:
            found = self._match(scope)
            if len(key[1]) <= PATH_CHARS_KEPT:      # a long path is matched, not kept (1024 of 64 kB each)
                if len(self._routes) >= self.ROUTES_KEPT:
                    self._routes.clear()
                self._routes[key] = found
        return found

    @staticmethod
    def _match(scope: Scope) -> str:
        partial = None
        for route in routes_v1.router.routes:
            match, _ = route.matches(scope)
            path = str(getattr(route, "path", scope["path"]))
            if match is Match.FULL:
                return path
            if match is Match.PARTIAL and partial is None:
                partial = path
        return partial or "<unmatched>"


class ControlGuard:
    """`/sandbox/...` (the controls: tokens for any admin, every organisation's e-mails and phones, the clock)
    answers only a request that carries the control token, in `Sandbox-Control-Token` or as
    `Authorization: Bearer`; anything else is 401 problem+json. Compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if (path == "/sandbox" or path.startswith("/sandbox/")) and not self._allowed(scope):
            await problems.problem_response(
                401, "unauthorized", f"the sandbox controls need the control token that `reconciler sandbox "
                f"serve` printed (or SANDBOX_CONTROL_TOKEN it was started with): send `{CONTROL_HEADER}: "
                "<token>` or `Authorization: Bearer <token>`",
                headers={"WWW-Authenticate": 'Bearer realm="sandbox-controls"'})(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        given = [value for name, value in scope.get("headers", ()) if name == CONTROL_HEADER.lower().encode()]
        bearer = _bearer(scope)
        if bearer is not None:
            given.append(bearer.encode("latin-1"))
        ok = False
        for value in given:                     # every candidate is compared: no early exit on a match
            ok |= hmac.compare_digest(value.strip(), self._token)
        return ok


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class CatalogueRejected(ValueError):
    """A `catalogue_files` entry is no valid catalogue: a user's mistake (`sandbox serve --catalogue`), said with
    its positioned diagnostics."""

    def __init__(self, file: str | Path, rendered: list[str]) -> None:
        more = f" (and {len(rendered) - 1} more)" if len(rendered) > 1 else ""
        super().__init__(f"{rendered[0]}{more}")
        self.file = str(file)
        self.rendered = rendered


def _load_catalogues(store: SandboxStore, files: tuple[str | Path, ...] | list[str | Path]) -> None:
    services = []
    for file in files:
        found, diagnostics = load_catalogue_file(Path(file), str(file))
        errors = [d for d in diagnostics if d.is_error]
        if errors:
            raise CatalogueRejected(file, [d.render() for d in errors])
        services.extend(found)
    if services:
        store.add_services(services)


def create_app(db_path: str | Path, *, catalogue_files: tuple[str | Path, ...] | list[str | Path] = (),
               rate_budget: RateBudget | int | tuple[int, float] | None = None,
               control_token: str | None = None) -> FastAPI:
    """The sandbox backend on the SQLite file `db_path` (created on first use).

    `catalogue_files` add services to the bundled catalogue; `rate_budget` (requests per 60 s, a
    `RateBudget`, or `(requests, seconds)`) is stored; None keeps the stored budget (off by default).
    `control_token` guards `/sandbox/...`; None: a random one, known only through `app.state.control_token`
    (so no caller gets the controls by forgetting to choose a token).
    """
    if control_token is not None and not control_token.strip():
        raise ValueError("the sandbox control token must not be empty")
    control_token = control_token.strip() if control_token is not None else secrets.token_urlsafe(32)
    store = SandboxStore(db_path)
    _load_catalogues(store, catalogue_files)
    budget = RateBudget.coerce(rate_budget)
    if budget is not None:
        store.set_setting("rate_budget", budget.to_data())
    else:
        budget = RateBudget.from_data(store.get_setting("rate_budget"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(title=API_TITLE, version=API_VERSION, description=API_DESCRIPTION, lifespan=lifespan,
                  redoc_url=None)
    app.state.store = store
    app.state.faults = FaultInjector(FaultConfig.from_data(store.get_setting("faults")))
    app.state.limiter = RateLimiter(budget)
    app.state.rule_faults = RuleFaults()          # every rule on; `POST /sandbox/faults/rules` turns one off
    app.state.control_token = control_token
    #: `/v1`'s changes called straight from their declarations when every part of a request is valid
    #: (`fastlane`); None sends every request through FastAPI's routing.
    app.state.fast_lane = FastLane(app, routes_v1.router.routes)
    problems.install(app)
    _share_routes(app, routes_v1.router)
    _share_routes(app, routes_sandbox.router)
    app.add_middleware(V1Middleware, api=app)
    app.add_middleware(RuleFaultScope, faults=app.state.rule_faults)
    app.add_middleware(ControlGuard, token=control_token)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    _quiet_drops()
    return app


def _share_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes as they are, built once per process when their module was imported. `include_router`
    builds every route again for each app (FastAPI 0.165 on the app's first request): for the 40 routes, their
    dependants and response fields were most of opening an embedded session, and each app left ~1-3 MB to the
    allocator. The routers have no tags, dependencies or responses of their own to merge in, and the routes hold
    nothing of an app (a request finds the app's state through `request.app`), so apps can share them."""
    app.router.routes.extend(router.routes)


async def _problem() -> None:
    """The endpoint of the documentation-only route of `_openapi`: never served."""


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The contract: `/v1` only, with error responses as application/problem+json."""
    if app.openapi_schema:
        return app.openapi_schema
    # The error answers name the Problem schema by reference (routes_v1._responses); a route made only for the
    # document (its path is not /v1) brings in its definition, as FastAPI writes those of response models.
    problem = APIRoute("/problem", _problem, response_model=models.Problem)
    schema = get_openapi(title=app.title, version=app.version, openapi_version=app.openapi_version,
                         description=app.description, routes=[*app.routes, problem])
    schema["paths"] = {p: item for p, item in schema["paths"].items() if p.startswith("/v1")}
    for item in schema["paths"].values():
        for operation in item.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content")
                if status.isdigit() and int(status) >= 400 and content and "application/json" in content:
                    response["content"] = {problems.PROBLEM_MEDIA_TYPE: content["application/json"]}
    app.openapi_schema = schema
    return schema
