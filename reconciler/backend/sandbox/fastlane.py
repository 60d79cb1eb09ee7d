"""The changes of `/v1` called straight from their routes' own declarations, for a request whose every part is
valid; FastAPI answers all others.

Why: for a change (one grant, one new end date) FastAPI spent about as much CPU finding the route (each route's
pattern in turn) and solving its dependencies (four per change) as the change itself took: SQL, the rules, the
idempotency record and the audit row. The lane finds the route once per path and checks each part with the
same declaration FastAPI uses (a `TypeAdapter` of the parameter's annotation, the body's model), then calls the
same endpoint with the same dependencies (`authenticate`, `mutation_headers`) and answers an exception with the
app's own handler, as FastAPI would. Anything it does not take whole (a part that fails its check, a repeated
header, a body that is not plain `application/json` or does not parse, an app under a root path, a parameter of a
kind it does not know) goes to FastAPI unchanged, body included, so an error's answer is FastAPI's own: the lane
adds no answer of its own.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from fastapi import FastAPI, Request
from fastapi.dependencies.utils import get_typed_signature
from fastapi.params import Depends
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.backend.sandbox.context import authenticate, bearer, mutation_headers

#: Paths remembered with their route: an organisation's bulk changes repeat one path; a change of one means
#: seldom repeats, so the memory is bounded.
PATHS_KEPT = 1024
#: Only paths up to this long are remembered (a change's path, with ids of at most 64 characters, is under 150): a
#: client's long paths (uvicorn takes 64 kB, an in-process client any length) would otherwise be kept 1024 times,
#: with copies of their parameters.
PATH_CHARS_KEPT = 256

#: Fills one parameter from the request, its path parameters, its headers and its body's JSON.
_Resolve = Callable[[Request, dict[str, str], dict[bytes, bytes], Any], Awaitable[tuple[str, Any]]]


class _NotTaken(Exception):
    """A part the lane does not take whole: FastAPI answers the request."""


def _alias(annotation: Any, name: str) -> str:
    info = next((m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, FieldInfo)), None)
    return (info.alias if info is not None and info.alias else name.replace("_", "-")).lower()


def _dependency(annotation: Any) -> Callable[..., Any] | None:
    """The callable of `Annotated[T, Depends(f)]` (also `Security`)."""
    if get_origin(annotation) is None or not hasattr(annotation, "__metadata__"):
        return None
    found = next((m for m in annotation.__metadata__ if isinstance(m, Depends)), None)
    return found.dependency if found is not None else None


class _Headers:
    """`mutation_headers`' parameters, each checked by its own declaration (alias, length)."""

    def __init__(self) -> None:
        self._params = [(name, _alias(p.annotation, name).encode("latin-1"), TypeAdapter(p.annotation),
                         p.default is inspect.Parameter.empty)
                        for name, p in get_typed_signature(mutation_headers).parameters.items()]

    async def __call__(self, headers: dict[bytes, bytes]) -> Any:
        values: dict[str, Any] = {}
        for name, alias, adapter, required in self._params:
            raw = headers.get(alias)
            if raw is None:
                if required:
                    raise _NotTaken
                continue
            try:
                values[name] = adapter.validate_python(raw.decode("latin-1"))
            except ValidationError:
                raise _NotTaken from None
        return await mutation_headers(**values)


@dataclass(frozen=True, slots=True)
class _Lane:
    """One route's endpoint and how to fill each of its parameters."""

    route: APIRoute
    fill: tuple[_Resolve, ...]
    reads_body: bool

    @classmethod
    def of(cls, route: APIRoute, headers: _Headers) -> _Lane | None:
        """The lane of a route whose every parameter is of a kind the lane fills; None for any other route."""
        # in FastAPI's order: the dependencies (whose refusal, a 401, comes first), the path, then the body
        stages: tuple[list[_Resolve], list[_Resolve], list[_Resolve]] = ([], [], [])
        for name, param in get_typed_signature(route.endpoint).parameters.items():
            kind, dependency = param.annotation, _dependency(param.annotation)
            if kind is Request:
                stages[0].append(_request(name))
            elif dependency is authenticate:
                stages[0].append(_actor(name))
            elif dependency is mutation_headers:
                stages[0].append(_conditional(name, headers))
            elif dependency is None and name in route.param_convertors and get_args(kind)[:1] == (str,):
                stages[1].append(_path(name, TypeAdapter(kind)))
            elif inspect.isclass(kind) and issubclass(kind, BaseModel) and not stages[2]:
                stages[2].append(_body(name, TypeAdapter(kind)))
            else:
                return None
        return cls(route, (*stages[0], *stages[1], *stages[2]), bool(stages[2]))


def _request(name: str) -> _Resolve:
    async def resolve(request: Request, params: dict[str, str], headers: dict[bytes, bytes], data: Any
                      ) -> tuple[str, Any]:
        return name, request
    return resolve


def _actor(name: str) -> _Resolve:
    async def resolve(request: Request, params: dict[str, str], headers: dict[bytes, bytes], data: Any
                      ) -> tuple[str, Any]:
        return name, await authenticate(request, await bearer(request))
    return resolve


def _conditional(name: str, check: _Headers) -> _Resolve:
    async def resolve(request: Request, params: dict[str, str], headers: dict[bytes, bytes], data: Any
                      ) -> tuple[str, Any]:
        return name, await check(headers)
    return resolve


def _path(name: str, adapter: TypeAdapter[Any]) -> _Resolve:
    async def resolve(request: Request, params: dict[str, str], headers: dict[bytes, bytes], data: Any
                      ) -> tuple[str, Any]:
        try:
            return name, adapter.validate_python(params[name])
        except ValidationError:
            raise _NotTaken from None
    return resolve


def _body(name: str, adapter: TypeAdapter[Any]) -> _Resolve:
    async def resolve(request: Request, params: dict[str, str], headers: dict[bytes, bytes], data: Any
                      ) -> tuple[str, Any]:
        try:
            return name, adapter.validate_python(data, from_attributes=True)
        except ValidationError:
            raise _NotTaken from None
    return resolve


def _json(body: bytes, headers: dict[bytes, bytes]) -> Any:
    """The body as FastAPI reads it before anything else (its JSON is checked before the token): taken only when
    plain `application/json` that parses."""
    content_type = headers.get(b"content-type")
    if not body or content_type is None or content_type.lower() != b"application/json":
        raise _NotTaken
    try:
        return json.loads(body)
    except (ValueError, RecursionError):    # not JSON, not UTF-8, or nested too deep: FastAPI's 422
        raise _NotTaken from None


#: Each route's lane, made at its first request (`None`: a route the lane does not take); routes are shared by
#: every app of the process (`app._share_routes`), and so are their lanes.
#: By the route's id (a route compares by its fields, and has no hash), with the route kept alive beside it.
_LANES: dict[int, tuple[APIRoute, _Lane | None]] = {}


@functools.cache
def _headers() -> _Headers:
    """`mutation_headers`' checks, made once, at the first change."""
    return _Headers()


def _lane(route: APIRoute) -> _Lane | None:
    found = _LANES.get(id(route))
    if found is None:
        found = _LANES[id(route)] = (route, _Lane.of(route, _headers()))
    return found[1]


class FastLane:
    """`/v1`'s changes (POST, DELETE) of `routes`, called directly; `app` (FastAPI's stack) answers the rest."""

    def __init__(self, api: FastAPI, routes: list[Any]) -> None:
        self._api = api
        self._routes = [r for r in routes if isinstance(r, APIRoute) and r.methods & {"POST", "DELETE"}]
        #: The methods of those routes: a request with another (GET, HEAD, ...) is not looked up, nor remembered.
        self._methods = frozenset(m for r in self._routes for m in r.methods)
        self._found: dict[tuple[str, str], tuple[_Lane, dict[str, str]] | None] = {}
        #: Requests the lane answered itself (the rest went to FastAPI): for tests that it takes what it should.
        self.taken = 0

    def _find(self, method: str, path: str) -> tuple[_Lane, dict[str, str]] | None:
        """The lane of the route FastAPI would choose (the first that matches), and the path's parameters."""
        if method not in self._methods:
            return None
        key = (method, path)
        if key in self._found:
            return self._found[key]
        found = None
        for route in self._routes:
            match = route.path_regex.match(path)
            if match is not None and method in route.methods:
                lane = _lane(route)
                found = (lane, match.groupdict()) if lane is not None else None
                break
        if len(path) <= PATH_CHARS_KEPT:
            if len(self._found) >= PATHS_KEPT:
                self._found.clear()
            self._found[key] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        # under a `root_path` (a mounted app, `uvicorn --root-path`) Starlette matches the path less that prefix:
        # FastAPI routes those
        found = self._find(scope["method"], scope["path"]) if scope["type"] == "http" and not scope.get(
            "root_path") else None
        if found is None:
            await app(scope, receive, send)
            return
        lane, params = found
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in headers:                    # a header said twice: which one counts is FastAPI's to say
                await app(scope, receive, send)
                return
            headers[name] = value
        messages: list[Message] = []
        body = b""
        if lane.reads_body:
            try:
                body, messages = await _read(receive)
            except _NotTaken as cut:
                await app(scope, _replaying(cut.args[0], receive), send)
                return
        routed = {**scope, "path_params": params, "route": lane.route, "endpoint": lane.route.endpoint}
        request = Request(routed, _replaying(messages, receive))
        try:
            data = _json(body, headers) if lane.reads_body else None
            arguments = dict([await fill(request, params, headers, data) for fill in lane.fill])
        except _NotTaken:
            await app(scope, _replaying(messages, receive), send)
            return
        except Exception as exc:                    # a dependency's refusal (401): the app's handler answers
            self.taken += 1
            await self._handled(exc, request, send)
            return
        self.taken += 1
        try:
            response = await lane.route.endpoint(**arguments)
        except Exception as exc:
            await self._handled(exc, request, send)
            return
        await response(routed, request.receive, send)

    async def _handled(self, exc: Exception, request: Request, send: Send) -> None:
        """`exc` answered by the handler the app has for its class, as FastAPI's exception middleware does (a plain
        function in a worker thread); without one it goes on up, to the server error middleware. A handler for
        `Exception` is that middleware's: it answers, then raises the exception again (the server logs it)."""
        handlers = self._api.exception_handlers
        handler = next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers and cls is not Exception), None)
        if handler is None:
            raise exc
        if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(getattr(handler, "__call__", None)):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        await response(request.scope, request.receive, send)


async def _read(receive: Receive) -> tuple[bytes, list[Message]]:
    """The request's body, and the messages that hand FastAPI the same: the body in one (a client that trickles it a
    byte a message had the lane keep a message per byte, 3x the memory FastAPI's own reading takes)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":      # the client went away: FastAPI says what that means
            raise _NotTaken([{"type": "http.request", "body": b"".join(chunks), "more_body": True}, message])
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            body = b"".join(chunks)
            return body, [{"type": "http.request", "body": body, "more_body": False}]


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """`receive` that first hands out `messages` again (read already), then what the connection says."""
    pending = list(reversed(messages))

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
