"""Pagination cursors are untrusted input: every cursor this backend did not hand out for that very list is
422 problem+json `invalid`, never a 500 (a crafted cursor used to reach SQLite or a Python comparison with
the wrong type, or overflow SQLite's 64-bit integers). Every list endpoint, every kind of forgery, and a
Hypothesis run over arbitrary strings and arbitrary base64url(JSON) arrays."""

from __future__ import annotations

import base64
import json
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.backend.sandbox.app import create_app
from reconciler.backend.sandbox.controls import CONTROL_HEADER

from .conftest import ADMIN, KVK, TODAY, Sandbox, uuid_of

pytestmark = pytest.mark.anyio

OTHER = "87654321"
#: Every list endpoint, with the list name its cursors carry and the types of its sort key.
LISTS: dict[str, tuple[str, tuple[type, ...]]] = {
    "/v1/organisations": ("organisations", (str,)),
    f"/v1/organisations/{KVK}/means": ("means", (str,)),
    f"/v1/organisations/{KVK}/authorisations": ("authorisations", (str, str)),
    f"/v1/organisations/{KVK}/chain-authorisations": ("chains", (str,)),
    "/v1/services": ("services", (str,)),
    f"/v1/organisations/{KVK}/events": ("events", (int,)),
}


def b64(raw: bytes | str) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def js(value: Any) -> str:
    return b64(json.dumps(value))


#: Cursors that are wrong for every list: the issue's examples (`["x"]`, `[1]`, a huge number), broken
#: base64 and JSON, other shapes, non-scalars, bools, NaN/Infinity, a lone surrogate, deep nesting.
FORGED: dict[str, str] = {
    "issue: events cursor ['x']": "WyJ4Il0",
    "issue: services cursor [1]": "WzFd",
    "huge float [1e999]": b64("[1e999]"),
    "huge int": b64("[99999999999999999999999]"),
    "not base64": "!!!***",
    "base64 of no JSON": "bm9wZQ",
    "not UTF-8": b64(b"\xff\xfe\x00["),
    "empty list": js([]),
    "an object": js({"k": 1}),
    "a string": js("x"),
    "null element": js([None]),
    "bool element": js([True]),
    "float element": js([1.5]),
    "NaN": b64("[NaN]"),
    "Infinity": b64("[Infinity]"),
    "nested list": js([["x"]]),
    "lone surrogate": b64('["\\ud800"]'),
    "deep nesting": b64("[" * 5000 + "]" * 5000)[:2000],
    "long digits": b64("[" + "9" * 1400 + "]")[:2000],
}


def forged_for(kind: str, types: tuple[type, ...]) -> dict[str, str]:
    """Cursors with this list's own name but a key of the wrong arity or types, or out of SQLite's range."""
    good = ["m" if t is str else 1 for t in types]
    out = {
        "no key": js([kind]),
        "one element too many": js([kind, *good, *good[:1]]),
        "one element too few": js([kind, *good[:-1]]),
        "another list's name": js(["elsewhere", *good]),
        "name only as bool": js([True, *good]),
    }
    for i, t in enumerate(types):
        wrong: list[Any] = [1, True, None, 1.5, ["x"]] if t is str else ["x", True, None, 1.5, 2 ** 63, -(2 ** 63) - 1,
                                                                          10 ** 30, ["1"]]
        for value in wrong:
            key = list(good)
            key[i] = value
            out[f"element {i} = {value!r}"] = js([kind, *key])
    if int in types:
        out["huge float"] = b64(f'["{kind}", 1e999]')
    return out


async def _rich(sandbox: Sandbox) -> None:
    """At least two items in every list, so `limit=1` hands out a cursor for each."""
    r = await sandbox.client.post("/sandbox/organisations", json={
        "kvk": OTHER, "name": "Other", "admin": {"email": ADMIN, "name": "Anna", "level": "EH3"}})
    assert r.status_code == 201, r.text
    user = await sandbox.new_means("u1@acme.nl")
    r = await sandbox.post(f"/v1/organisations/{KVK}/authorisations",
                           {"means_ids": [user], "services": [uuid_of("rvo/tenderned"), uuid_of("algemene-bevoegdheid-3")]})
    assert r.status_code == 200, r.text
    end = TODAY.replace(year=TODAY.year + 1).isoformat()
    for intermediary in ("11111111", "22222222"):
        r = await sandbox.post(f"/v1/organisations/{KVK}/chain-authorisations",
                               {"intermediary_kvk": intermediary, "services": [uuid_of("rvo/tenderned")],
                                "end_date": end})
        assert r.status_code == 200, r.text


async def _assert_invalid(sandbox: Sandbox, path: str, cursor: str, why: str) -> None:
    r = await sandbox.get(path, params={"cursor": cursor, "limit": 1})
    assert r.status_code == 422, (path, why, cursor, r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json", (path, why)
    assert r.json()["code"] == "invalid" and "cursor" in r.json()["detail"], (path, why, r.text)


async def test_every_forged_cursor_on_every_list_is_422(sandbox: Sandbox) -> None:
    await _rich(sandbox)
    for path, (kind, types) in LISTS.items():
        for why, cursor in {**FORGED, **forged_for(kind, types)}.items():
            await _assert_invalid(sandbox, path, cursor, why)


async def test_a_cursor_of_one_list_is_refused_by_every_other(sandbox: Sandbox) -> None:
    await _rich(sandbox)
    handed_out: dict[str, str] = {}
    for path in LISTS:
        r = await sandbox.get(path, params={"limit": 1})
        assert r.status_code == 200 and r.json()["next_cursor"], (path, r.text)
        handed_out[path] = r.json()["next_cursor"]
    for path in LISTS:
        r = await sandbox.get(path, params={"limit": 1, "cursor": handed_out[path]})
        assert r.status_code == 200, (path, r.text)                       # its own list takes it
        for other in LISTS:
            if other != path:
                await _assert_invalid(sandbox, other, handed_out[path], f"the cursor of {path}")
    # a means filter on authorisations is the same list: its cursor stays valid
    r = await sandbox.get(f"/v1/organisations/{KVK}/authorisations",
                          params={"limit": 1, "cursor": handed_out[f"/v1/organisations/{KVK}/authorisations"],
                                  "means_id": sandbox.admin_id})
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------------------------------- property
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
                    st.integers(min_value=2 ** 62, max_value=2 ** 70), st.sampled_from(list({k for k, _ in LISTS.values()})))
json_arrays = st.lists(st.one_of(scalars, st.lists(scalars, max_size=2)), max_size=4)
cursors = st.one_of(
    st.text(max_size=60),
    json_arrays.map(lambda v: js(v)),
    st.binary(max_size=40).map(b64),
)


class SyncSandbox:
    """The sandbox app with organisation KVK and its admin, called synchronously (Hypothesis drives it); a
    server error comes back as a 500 response, not as an exception."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers = {CONTROL_HEADER: app.state.control_token}

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test",
                                         headers=self.headers) as client:
                return await client.request(method, path, **kw)

        return anyio.run(call)


@pytest.fixture(scope="module")
def sync_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Any:
    app = create_app(tmp_path_factory.mktemp("cursors") / "sandbox.db")
    sandbox = SyncSandbox(app)
    r = sandbox.request("POST", "/sandbox/organisations", json={
        "kvk": KVK, "name": "Acme", "admin": {"email": ADMIN, "name": "Anna", "level": "EH3"}})
    assert r.status_code == 201, r.text
    sandbox.headers["Authorization"] = f"Bearer {r.json()['token']}"
    yield sandbox
    app.state.store.close()


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(path=st.sampled_from(list(LISTS)), cursor=cursors)
def test_no_cursor_ever_makes_a_server_error(sync_sandbox: SyncSandbox, path: str, cursor: str) -> None:
    r = sync_sandbox.request("GET", path, params={"cursor": cursor, "limit": 2})
    assert r.status_code in (200, 422), (path, cursor, r.status_code, r.text)
    if r.status_code == 422:
        assert r.headers["content-type"] == "application/problem+json"
