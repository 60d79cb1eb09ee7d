"""The fast lane (`sandbox/fastlane.py`) answers exactly as FastAPI does: two apps on copies of one database, one
with the lane and one without, get the same requests (valid ones, and each part of a request made invalid, alone
and combined) and must give the same status, headers and body, and leave the same state; the lane must take
the valid ones itself and leave every request it does not take whole to FastAPI."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sqlite3
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.responses import Response

from reconciler.backend.sandbox import routes_v1
from reconciler.backend.sandbox import fastlane
from reconciler.backend.sandbox.fastlane import FastLane
from reconciler.backend.sandbox.problems import ApiError
from reconciler.backend.sandbox.store import SandboxStore

from tests.backend.sandbox.conftest import KVK, TODAY, open_sandbox, seed_means

pytestmark = pytest.mark.anyio

END = (TODAY + dt.timedelta(days=200)).isoformat()
OTHER_END = (TODAY + dt.timedelta(days=300)).isoformat()
INTERMEDIARY = "87654321"


@dataclass
class Twin:
    """One app of the pair and its client."""

    app: Any
    client: httpx.AsyncClient

    @property
    def lane(self) -> FastLane | None:
        return self.app.state.fast_lane  # type: ignore[no-any-return]


@dataclass
class Pair:
    fast: Twin
    plain: Twin
    token: str
    users: list[str]
    ids: itertools.count[int]

    async def both(self, method: str, path: str, *, body: bytes | None = None,
                   headers: list[tuple[str, str]] | None = None) -> tuple[httpx.Response, httpx.Response]:
        """The same request to both apps; a new means gets the same id in both (it is the server's choice)."""
        answers = []
        start = next(self.ids) * 1000
        for twin in (self.fast, self.plain):
            counter = itertools.count(start)
            original = routes_v1.uuid.uuid4
            routes_v1.uuid.uuid4 = lambda: uuid.UUID(int=next(counter))  # type: ignore[assignment]
            try:
                answers.append(await twin.client.request(method, path, content=body, headers=headers or []))
            finally:
                routes_v1.uuid.uuid4 = original  # type: ignore[assignment]
        return answers[0], answers[1]


def _copy(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    first = tmp_path / "fast.db"
    app, client = await open_sandbox(first)
    async with client:
        assert (await client.post("/sandbox/clock", json={"today": TODAY.isoformat()})).status_code == 200
        r = await client.post("/sandbox/organisations", json={
            "kvk": KVK, "name": "Acme", "admin": {"email": "anna@acme.nl", "name": "Anna", "level": "EH3"}})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        r = await client.post("/sandbox/organisations", json={
            "kvk": INTERMEDIARY, "name": "Boekhouder", "admin": {"email": "bob@boek.nl", "name": "Bob",
                                                                  "level": "EH3"}})
        assert r.status_code == 201, r.text
    users = seed_means(app.state.store, KVK, 4)
    app.state.store.close()
    second = tmp_path / "plain.db"
    _copy(first, second)
    fast_app, fast_client = await open_sandbox(first)
    plain_app, plain_client = await open_sandbox(second)
    plain_app.state.fast_lane = None
    async with fast_client, plain_client:
        yield Pair(Twin(fast_app, fast_client), Twin(plain_app, plain_client), token, users, itertools.count(1))
    fast_app.state.store.close()
    plain_app.state.store.close()


def _same(a: httpx.Response, b: httpx.Response) -> None:
    assert (a.status_code, a.content) == (b.status_code, b.content)
    assert a.headers.multi_items() == b.headers.multi_items()


def _service() -> str:
    from reconciler.domain.catalogue import bundled_catalogue
    from reconciler.domain.levels import Level
    return next(s.uuid for s in bundled_catalogue() if not s.belastingdienst and s.level <= Level.EH3)


def _headers(token: str | None, *, content_type: str | None = "application/json", key: str | None = "k-1",
             if_match: str | None = None, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    out = []
    if token is not None:
        out.append(("Authorization", token))
    if content_type is not None:
        out.append(("Content-Type", content_type))
    if key is not None:
        out.append(("Idempotency-Key", key))
    if if_match is not None:
        out.append(("If-Match", if_match))
    return out + (extra or [])


async def _state(twin: Twin, token: str) -> list[Any]:
    """What the organisation holds and its trail, as the API reads them."""
    out = []
    for path in (f"/v1/organisations/{KVK}", f"/v1/organisations/{KVK}/means", f"/v1/organisations/{KVK}/authorisations",
                 f"/v1/organisations/{KVK}/chain-authorisations"):
        r = await twin.client.get(path, headers={"Authorization": f"Bearer {token}"})
        out.append((r.status_code, r.json()))
    return out


async def test_valid_changes_are_taken_by_the_lane_and_answered_as_fastapi_does(pair: Pair) -> None:
    bearer = f"Bearer {pair.token}"
    u = pair.users
    service = _service()
    steps: list[tuple[str, str, Any]] = [
        ("POST", f"/v1/organisations/{KVK}/authorisations", {"means_ids": u[:2], "services": [service],
                                                              "end_date": END}),
        ("POST", f"/v1/organisations/{KVK}/authorisations/end-date", {"means_ids": u[:1], "services": [service],
                                                                      "end_date": OTHER_END}),
        ("POST", f"/v1/organisations/{KVK}/authorisations/revoke", {"means_ids": u[1:2], "services": [service]}),
        ("POST", f"/v1/organisations/{KVK}/means/{u[2]}/role", {"role": "beheerder"}),
        ("POST", f"/v1/organisations/{KVK}/means/{u[3]}/phone", {"phone": "+31611111111"}),
        ("POST", f"/v1/organisations/{KVK}/means", {"email": "new@acme.nl", "name": "New", "role": "gebruiker",
                                                     "level": "EH2"}),
        ("POST", f"/v1/organisations/{KVK}/chain-authorisations", {"intermediary_kvk": INTERMEDIARY,
                                                                    "services": [service], "end_date": END}),
        ("POST", f"/v1/organisations/{KVK}/chain-authorisations/{INTERMEDIARY}/end-date", {"end_date": OTHER_END}),
        ("DELETE", f"/v1/organisations/{KVK}/chain-authorisations/{INTERMEDIARY}", None),
        ("POST", f"/v1/organisations/{KVK}/means/{u[3]}/terminate", {"mode": "now"}),
        # refusals by the rules and by the endpoint, answered through the app's handlers
        ("POST", f"/v1/organisations/{KVK}/means/{u[3]}/role", {"role": "beheerder"}),          # terminated: 404
        ("POST", f"/v1/organisations/{KVK}/authorisations", {"means_ids": u[:1], "services": [service],
                                                              "end_date": "2099-01-01"}),    # R9: 5 years
        ("POST", "/v1/organisations/99999999/authorisations", {"means_ids": u[:1], "services": [service],
                                                               "end_date": END}),            # no such org
    ]
    for n, (method, path, body) in enumerate(steps):
        before = pair.fast.lane.taken if pair.fast.lane else 0
        content = json.dumps(body).encode() if body is not None else None
        a, b = await pair.both(method, path, body=content,
                               headers=_headers(bearer, key=f"step-{n}",
                                                content_type="application/json" if body is not None else None))
        _same(a, b)
        assert pair.fast.lane is not None and pair.fast.lane.taken == before + 1, (method, path, a.text)
    statuses = [s for s in (await _state(pair.fast, pair.token))]
    assert statuses == await _state(pair.plain, pair.token)
    # a repeat with the same key replays; the same key with another body is refused
    a, b = await pair.both(*steps[0][:2], body=json.dumps(steps[0][2]).encode(), headers=_headers(bearer, key="step-0"))
    _same(a, b)
    assert a.headers["Idempotent-Replayed"] == "true"
    a, b = await pair.both(*steps[0][:2], body=b'{"means_ids": [], "services": [], "end_date": null}',
                           headers=_headers(bearer, key="step-0"))
    _same(a, b)


async def test_a_stale_if_match_is_refused_alike(pair: Pair) -> None:
    bearer = f"Bearer {pair.token}"
    body = json.dumps({"role": "beheerder"}).encode()
    a, b = await pair.both("POST", f"/v1/organisations/{KVK}/means/{pair.users[0]}/role", body=body,
                           headers=_headers(bearer, if_match='"1"'))
    assert a.status_code == 412
    _same(a, b)


# each part of a grant: a valid value first, then ways to get it wrong
TOKENS = ["valid", None, "Bearer nope", "Basic abc", "Bearer ", "bearer valid", "Bearer  valid "]
KVKS = [KVK, "1234", "1234567a", "99999999"]
CONTENT_TYPES = ["application/json", None, "text/plain", "application/json; charset=utf-8", "APPLICATION/JSON",
                 "application/merge-patch+json"]
#: JSON nested deeper than Python's recursion limit: json.loads raises RecursionError, not a ValueError
DEEP = b"[" * 5000 + b"]" * 5000
BODIES = ["valid", b"", b"{", b"[]", b"null", b'"x"', b'{"means_ids": ["a"]}', "extra", "bad-date", "\xff",
          "too-many", DEEP]
KEYS = ["k-1", None, "", "x" * 256, "x" * 255]
IF_MATCH = [None, "*", '"1"', "garbage", 'W/"2"']
EXTRA = [[], [("Idempotency-Key", "k-2")], [("Content-Type", "application/json")], [("X-Other", "1")],
         [("Authorization", "Bearer other")]]


def _body(kind: str | bytes, users: list[str]) -> bytes:
    if isinstance(kind, bytes):
        return kind
    valid = {"means_ids": users[:2], "services": [_service()], "end_date": END}
    if kind == "valid":
        return json.dumps(valid).encode()
    if kind == "extra":
        return json.dumps({**valid, "surprise": 1}).encode()
    if kind == "bad-date":
        return json.dumps({**valid, "end_date": "tomorrow"}).encode()
    if kind == "too-many":
        return json.dumps({**valid, "means_ids": [f"m{i}" for i in range(3000)]}).encode()
    return kind.encode("latin-1")


PARTS: dict[str, list[Any]] = {"token": TOKENS, "kvk": KVKS, "content_type": CONTENT_TYPES, "body": BODIES, "key": KEYS,
                               "if_match": IF_MATCH, "extra": EXTRA}


async def _grant_request(pair: Pair, token: str | None, kvk: str, content_type: str | None, body: str | bytes,
                         key: str | None, if_match: str | None, extra: list[tuple[str, str]]) -> None:
    authorization = token.replace("valid", pair.token) if token is not None else None
    if key is not None and 0 < len(key) < 200:
        key = f"{key}-{next(pair.ids)}"         # a fresh key: a replay is tested on its own
    a, b = await pair.both("POST", f"/v1/organisations/{kvk}/authorisations", body=_body(body, pair.users),
                           headers=_headers(authorization, content_type=content_type, key=key,
                                            if_match=if_match, extra=extra))
    _same(a, b)


async def test_each_part_or_two_parts_wrong_gets_fastapi_s_answer(pair: Pair) -> None:
    """Every wrong value of a part with the rest valid, and every pair of wrong values of two parts: FastAPI
    checks the JSON before the token, the token before the path and the body, and the lane must agree."""
    valid = {name: values[0] for name, values in PARTS.items()}
    names = list(PARTS)
    cases = [{**valid, name: bad} for name in names for bad in PARTS[name][1:]]
    cases += [{**valid, first: x, second: y} for i, first in enumerate(names) for second in names[i + 1:]
              for x in PARTS[first][1:] for y in PARTS[second][1:]]
    for case in cases:
        await _grant_request(pair, **case)
    assert pair.fast.lane is not None and pair.fast.lane.taken > 0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.sampled_from(TOKENS), kvk=st.sampled_from(KVKS), content_type=st.sampled_from(CONTENT_TYPES),
       body=st.sampled_from(BODIES), key=st.sampled_from(KEYS), if_match=st.sampled_from(IF_MATCH),
       extra=st.sampled_from(EXTRA))
async def test_any_grant_request_gets_fastapi_s_answer(pair: Pair, token: str | None, kvk: str,
                                                       content_type: str | None, body: str | bytes, key: str | None,
                                                       if_match: str | None, extra: list[tuple[str, str]]) -> None:
    await _grant_request(pair, token, kvk, content_type, body, key, if_match, extra)


async def test_parts_the_lane_does_not_take_whole_go_to_fastapi(pair: Pair) -> None:
    """A request with any doubtful part is FastAPI's: the lane answers none of these (its count stays)."""
    assert pair.fast.lane is not None
    bearer = f"Bearer {pair.token}"
    path = f"/v1/organisations/{KVK}/authorisations"
    valid = _body("valid", pair.users)
    cases: list[tuple[str, bytes, list[tuple[str, str]]]] = [
        (path, valid, _headers(bearer, content_type="text/plain")),
        (path, valid, _headers(bearer, content_type=None)),
        (path, valid, _headers(bearer, content_type="application/json; charset=utf-8")),
        (path, b"{", _headers(bearer)),
        (path, b"{", _headers("Bearer nope")),                  # FastAPI reads the JSON before the token
        (path, b"[]", _headers(bearer)),
        (path, _body("bad-date", pair.users), _headers(bearer)),
        (path, valid, _headers(bearer, key="")),
        (path, valid, _headers(bearer, key="x" * 256)),
        (path, valid, _headers(bearer, extra=[("Idempotency-Key", "again")])),
        ("/v1/organisations/1234/authorisations", valid, _headers(bearer)),
        (f"/v1/organisations/{KVK}/means/{'m' * 65}/role", b'{"role": "beheerder"}', _headers(bearer)),
    ]
    for target, body, headers in cases:
        before = pair.fast.lane.taken
        a, b = await pair.both("POST", target, body=body, headers=headers)
        _same(a, b)
        assert pair.fast.lane.taken == before, (target, headers, a.status_code)


async def test_a_bad_token_with_a_valid_body_is_refused_by_the_lane_as_fastapi_does(pair: Pair) -> None:
    assert pair.fast.lane is not None
    before = pair.fast.lane.taken
    a, b = await pair.both("POST", f"/v1/organisations/{KVK}/authorisations", body=_body("valid", pair.users),
                           headers=_headers("Bearer nope"))
    assert a.status_code == 401
    _same(a, b)
    assert pair.fast.lane.taken == before + 1


async def test_reads_and_controls_are_not_the_lane_s(pair: Pair) -> None:
    assert pair.fast.lane is not None
    before = pair.fast.lane.taken
    a, b = await pair.both("GET", f"/v1/organisations/{KVK}/means", headers=_headers(f"Bearer {pair.token}"))
    _same(a, b)
    assert pair.fast.lane.taken == before


async def test_json_nested_too_deep_is_fastapi_s_422_not_a_500(pair: Pair) -> None:
    """json.loads raises RecursionError for JSON nested past Python's recursion limit; FastAPI answers any failure
    to read the body with its 400 (this contract's 422 `invalid`), before the token is looked at. The lane let the
    RecursionError through as a 500 with a traceback, for a valid token and a wrong one alike."""
    assert pair.fast.lane is not None
    path = f"/v1/organisations/{KVK}/authorisations"
    for authorization in (f"Bearer {pair.token}", "Bearer nope", None):
        before = pair.fast.lane.taken
        a, b = await pair.both("POST", path, body=b"[" * 100_000 + b"]" * 100_000, headers=_headers(authorization))
        assert a.status_code == 422 and a.json()["code"] == "invalid", a.text
        _same(a, b)
        assert pair.fast.lane.taken == before
    assert await _state(pair.fast, pair.token) == await _state(pair.plain, pair.token)


async def test_under_a_root_path_fastapi_routes_the_request(pair: Pair) -> None:
    """With a `root_path` (the app mounted, or `uvicorn --root-path`) Starlette matches the path less that prefix:
    under root path `/v1`, `POST /v1/organisations/{kvk}/authorisations` is `/organisations/...` to FastAPI, no
    route (404). The lane matched the whole path and made the grant FastAPI refuses."""
    assert pair.fast.lane is not None
    body = _body("valid", pair.users)
    for root, path in (("/v1", f"/v1/organisations/{KVK}/authorisations"),
                       ("/api", f"/api/v1/organisations/{KVK}/authorisations"),
                       ("/x", f"/v1/organisations/{KVK}/authorisations")):
        answers = []
        for twin in (pair.fast, pair.plain):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=twin.app, root_path=root),
                                         base_url="http://sandbox.test") as client:
                answers.append(await client.post(path, content=body,
                                                 headers=_headers(f"Bearer {pair.token}", key=f"root-{root}")))
        _same(*answers)
    assert answers[0].status_code == 200                     # a root path that is no prefix of the path: routed
    assert pair.fast.lane.taken == 0
    assert await _state(pair.fast, pair.token) == await _state(pair.plain, pair.token)


async def test_the_path_cache_keeps_no_long_paths_and_no_reads(pair: Pair) -> None:
    """The lane remembers at most PATHS_KEPT paths, but each was kept whole, with a copy of its parameters: 1024
    paths of 64 kB (what uvicorn takes; an in-process client sends any length) held ~130 MB. Reads, which the lane
    never takes, were remembered too, pushing out the changes' paths."""
    lane = pair.fast.lane
    assert lane is not None
    long_id = "m" * 20_000
    for n in range(30):
        a, b = await pair.both("POST", f"/v1/organisations/{KVK}/means/{long_id}{n}/role",
                               body=b'{"role": "beheerder"}', headers=_headers(f"Bearer {pair.token}"))
        _same(a, b)
        assert a.status_code == 422
        a, b = await pair.both("GET", f"/v1/organisations/{KVK}/means/user-{n}",
                               headers=_headers(f"Bearer {pair.token}"))
        _same(a, b)
    a, b = await pair.both("POST", f"/v1/organisations/{KVK}/means/{pair.users[2]}/role",
                           body=b'{"role": "beheerder"}', headers=_headers(f"Bearer {pair.token}"))
    _same(a, b)
    assert a.status_code == 200 and lane.taken == 1, a.text
    kept = list(lane._found)
    assert all(len(path) <= fastlane.PATH_CHARS_KEPT and method in ("POST", "DELETE") for method, path in kept), (
        sum(len(path) for _, path in kept))
    assert ("POST", f"/v1/organisations/{KVK}/means/{pair.users[2]}/role") in kept


async def _asgi(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]],
                messages: Iterable[dict[str, Any]]) -> tuple[Any, ...]:
    """One request straight to the app, its body in `messages` as a server would hand them (each made when asked
    for, as uvicorn does); then the client is gone. The answer's status, headers and body, or the exception that
    left the app."""
    pending = iter(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(pending, {"type": "http.disconnect"})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("sandbox.test", 80)}
    try:
        await app(scope, receive, send)
    except Exception as exc:  # noqa: BLE001 - what left the app is compared
        return ("raised", type(exc).__name__)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return (start["status"], sorted(start["headers"]),
            b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


def _trickled(body: bytes) -> Iterator[dict[str, Any]]:
    return ({"type": "http.request", "body": body[i:i + 1], "more_body": i < len(body) - 1} for i in range(len(body)))


async def test_a_body_in_many_messages_or_cut_off_is_answered_as_fastapi_does_and_kept_once(pair: Pair) -> None:
    """A body a byte a message (a client trickling it) and one cut off by the client: FastAPI's answers. The lane
    kept every message to replay them, a dict per byte: 3x the memory FastAPI's own reading takes."""
    assert pair.fast.lane is not None
    path = f"/v1/organisations/{KVK}/authorisations"
    headers = [(b"authorization", f"Bearer {pair.token}".encode()), (b"content-type", b"application/json")]
    valid = _body("valid", pair.users)
    cut = {"type": "http.request", "body": valid[:20], "more_body": True}
    for n, messages in enumerate([list(_trickled(valid)), [cut, {"type": "http.disconnect"}], [cut]]):
        before = pair.fast.lane.taken
        keyed = [*headers, (b"idempotency-key", f"split-{n}".encode())]
        a = await _asgi(pair.fast.app, "POST", path, keyed, list(messages))
        b = await _asgi(pair.plain.app, "POST", path, keyed, list(messages))
        assert a == b
        assert pair.fast.lane.taken == before + (1 if n == 0 else 0), a
    assert await _state(pair.fast, pair.token) == await _state(pair.plain, pair.token)
    # memory: a 30 kB bulk body a byte a message, after a first request each (routes built, caches warm)
    big = json.dumps({"means_ids": [f"m{i:05d}" for i in range(2500)], "services": [_service()]}).encode()
    peaks = []
    for twin in (pair.fast, pair.plain):
        tracemalloc.start()
        try:
            answer = await _asgi(twin.app, "POST", f"{path}/revoke", headers, _trickled(big))
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert answer[0] == 404, answer
    assert peaks[0] < 1.5 * peaks[1], peaks


async def test_the_app_s_exception_handlers_are_used_as_fastapi_uses_them(pair: Pair,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The lane answers an exception with the app's handler, as FastAPI's exception middleware would; but a handler
    for `Exception` belongs to the server error middleware, which answers and then raises the exception again (so
    the server logs the traceback; in-process the client sees it), and a plain function is called in a thread. The
    lane answered with the first and returned quietly, and awaited the second (a TypeError, a 500)."""
    assert pair.fast.lane is not None

    async def internal(request: Any, exc: Exception) -> Response:
        return Response(b"internal", status_code=500)

    def refused(request: Any, exc: ApiError) -> Response:
        return Response(exc.code.encode(), status_code=exc.status)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the disk is full")

    for twin in (pair.fast, pair.plain):
        twin.app.add_exception_handler(Exception, internal)
        twin.app.add_exception_handler(ApiError, refused)
    path = f"/v1/organisations/{KVK}/authorisations"
    a, b = await pair.both("POST", path, body=_body("valid", pair.users), headers=_headers("Bearer nope"))
    assert (a.status_code, a.text) == (401, "unauthorized")
    _same(a, b)
    assert pair.fast.lane.taken == 1
    monkeypatch.setattr(SandboxStore, "prefetch_members", broken)
    for twin in (pair.fast, pair.plain):
        with pytest.raises(RuntimeError, match="the disk is full"):
            await twin.client.post(path, content=_body("valid", pair.users), headers=_headers(f"Bearer {pair.token}"))
    assert pair.fast.lane.taken == 2
