"""Routes built when first used (`deferred.DeferredRoute`): importing the sandbox builds none of them, a request
builds only its own route, a route answers as it did when built at once, and a route is built once even when
several threads ask for it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import fastapi.routing
import pytest
import anyio
import httpx
from fastapi import APIRouter, FastAPI, Query
from starlette.responses import JSONResponse, Response

from reconciler.backend.sandbox.deferred import DeferredRoute


def test_importing_the_sandbox_builds_no_route_and_a_request_builds_only_its_own(tmp_path) -> None:
    """In a fresh process: the routes are shared by every app of the process, so another test may have built
    some already."""
    probe = f"""
import asyncio, httpx
from reconciler.backend.sandbox import routes_sandbox, routes_v1
from reconciler.backend.sandbox.app import create_app
routes = [*routes_v1.router.routes, *routes_sandbox.router.routes]
def built():
    return sorted(route.path for route in routes if 'dependant' in vars(route))
print(len(routes), built())
app = create_app({str(tmp_path / 'sandbox.db')!r}, control_token='c')
async def ask():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url='http://sandbox') as client:
        return (await client.get('/sandbox/clock', headers={{'Sandbox-Control-Token': 'c'}})).status_code
print(asyncio.run(ask()), built())
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    before, after = done.stdout.splitlines()
    assert int(before.split()[0]) > 30 and before.endswith("[]")
    assert after == "200 ['/sandbox/clock']"


def _declare(router: APIRouter) -> APIRouter:
    @router.get("/items/{item}", response_model=dict, summary="One item")
    async def item(item: int, limit: int = Query(10, ge=1, le=100)) -> Response:
        return JSONResponse({"item": item, "limit": limit})

    return router


async def _answers(app: FastAPI) -> tuple[object, ...]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
        return ((await client.get("/x/items/3?limit=5")).json(), (await client.get("/x/items/3?limit=0")).json(),
                (await client.post("/x/items/3")).status_code, (await client.get("/openapi.json")).json())


def test_a_deferred_route_answers_and_documents_as_a_route_built_at_once() -> None:
    answers = []
    for router in (APIRouter(prefix="/x", route_class=DeferredRoute), APIRouter(prefix="/x")):
        app = FastAPI()
        app.include_router(_declare(router))
        answers.append(anyio.run(_answers, app))
    assert answers[0] == answers[1]
    assert answers[0][:3] == ({"item": 3, "limit": 5}, answers[0][1], 405)
    assert answers[0][1]["detail"][0]["loc"] == ["query", "limit"]


def test_a_route_is_built_once_however_many_threads_ask(monkeypatch) -> None:
    builds: list[str] = []
    build = fastapi.routing.APIRoute.__init__          # what DeferredRoute runs to build (public in every version)

    def counted(route, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        builds.append(path)
        time.sleep(0.01)                                  # a slow build: the other threads arrive meanwhile
        return build(route, path, *args, **kwargs)

    monkeypatch.setattr(fastapi.routing.APIRoute, "__init__", counted)
    router = APIRouter(route_class=DeferredRoute)

    @router.get("/one")
    async def one() -> Response:
        return Response(b"1")

    route = router.routes[0]
    assert builds == []
    start = threading.Barrier(8)
    seen: list[object] = []

    def ask() -> None:
        start.wait()
        seen.append(route.dependant)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert builds == ["/one"]
    assert len(seen) == 8 and all(each is seen[0] for each in seen)
    with pytest.raises(AttributeError):
        route.no_such_attribute  # noqa: B018 - built: a missing attribute is missing


def test_a_route_that_cannot_be_built_fails_the_same_way_each_time() -> None:
    router = APIRouter(route_class=DeferredRoute)

    @router.get("/empty", status_code=204, response_model=dict)   # a 204 has no body to describe
    async def empty() -> Response:
        return Response(status_code=204)

    route = router.routes[0]
    for name in ("app", "dependant", "app"):                # `dependant` is set before the check fails
        with pytest.raises(AssertionError, match="must not have a response body"):
            getattr(route, name)
