"""The sandbox app as embedded sessions make it: one app per session, many in one process (tests, long runs)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reconciler.backend.sandbox import routes_sandbox, routes_v1
from reconciler.backend.sandbox.app import create_app
from reconciler.backend.sandbox.controls import CONTROL_HEADER
from reconciler.domain.levels import Level

pytestmark = pytest.mark.anyio


def test_apps_share_the_routes_built_at_import(tmp_path: Path) -> None:
    """Each app serves the very route objects of the modules: `include_router` built the 40 routes again for
    every app (on its first request), most of opening an embedded session, and left ~1-3 MB per app."""
    routes = [create_app(tmp_path / f"{n}.db").router.routes for n in ("a", "b")]
    for served in routes:
        ids = {id(route) for route in served}
        assert all(id(route) in ids for route in [*routes_v1.router.routes, *routes_sandbox.router.routes])


async def test_apps_sharing_routes_keep_their_own_databases(tmp_path: Path) -> None:
    """Shared routes, separate state: each request reaches its own app's store (`request.app`)."""
    apps = [create_app(tmp_path / f"{n}.db", control_token="c" * 32) for n in ("a", "b")]
    tokens = []
    for app, kvk in zip(apps, ("11111111", "22222222")):
        _, token = app.state.store.create_organisation(kvk, f"Org {kvk}", f"admin@{kvk}.nl", "Admin", Level.EH3)
        tokens.append(token)
    for app, token, kvk in zip(apps, tokens, ("11111111", "22222222")):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sb") as client:
            mine = await client.get("/v1/organisations", headers={"Authorization": f"Bearer {token}"})
            assert [o["kvk"] for o in mine.json()["items"]] == [kvk]
            other = tokens[1 - tokens.index(token)]
            assert (await client.get("/v1/me", headers={"Authorization": f"Bearer {other}"})).status_code == 401
            listed = await client.get("/sandbox/means", headers={CONTROL_HEADER: "c" * 32})
            assert [m["email"] for m in listed.json()["items"]] == [f"admin@{kvk}.nl"]
    for app in apps:
        app.state.store.close()


def test_request_counts_find_each_route_once_per_path_and_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The /v1 middleware counts by route template; a path seen before is not matched against every route again,
    and the paths it remembers are bounded (each means has paths of its own)."""
    from reconciler.backend.sandbox.app import V1Middleware

    middleware = V1Middleware(app=None, api=None)  # type: ignore[arg-type]
    matched: list[str] = []
    match = V1Middleware._match
    monkeypatch.setattr(V1Middleware, "_match", staticmethod(lambda scope: matched.append(scope["path"]) or match(scope)))
    scope = {"type": "http", "method": "POST", "path": "/v1/organisations/12345678/authorisations"}
    assert [middleware._route(scope) for _ in range(3)] == ["/v1/organisations/{kvk}/authorisations"] * 3
    assert matched == [scope["path"]]
    for n in range(V1Middleware.ROUTES_KEPT + 5):
        route = middleware._route({**scope, "path": f"/v1/organisations/12345678/means/m{n}/role"})
        assert route == "/v1/organisations/{kvk}/means/{means_id}/role"
    assert len(middleware._routes) <= V1Middleware.ROUTES_KEPT
    assert middleware._route({**scope, "method": "GET"}) == "/v1/organisations/{kvk}/authorisations"


def test_request_counts_match_a_long_path_without_keeping_it() -> None:
    """A path longer than a change's (uvicorn takes 64 kB) is counted by its route, and not remembered: 1024 of
    them would hold 64 MB."""
    from reconciler.backend.sandbox.app import V1Middleware
    from reconciler.backend.sandbox.fastlane import PATH_CHARS_KEPT

    middleware = V1Middleware(app=None, api=None)  # type: ignore[arg-type]
    for n in range(20):
        path = f"/v1/organisations/12345678/means/{'m' * (PATH_CHARS_KEPT + n)}/role"
        assert middleware._route({"type": "http", "method": "POST", "path": path}) == \
            "/v1/organisations/{kvk}/means/{means_id}/role"
    assert middleware._routes == {}
    middleware._route({"type": "http", "method": "POST", "path": "/v1/organisations/12345678/means/m1/role"})
    assert len(middleware._routes) == 1
