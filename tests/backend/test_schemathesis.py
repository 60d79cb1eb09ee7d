"""Property-based conformance of the served sandbox to its own committed contract
(`schemas/beheer-api.openapi.yaml`), with schemathesis 4 over real HTTP.

The sandbox runs under uvicorn on 127.0.0.1 (a free port) in a background thread for the whole module. Set up
through HTTP: organisation KVK with an active admin (`POST /sandbox/organisations`), a second organisation of
the same admin (a target for links), seven users in KVK (five active, one awaiting activation, one whose
activation expired) and one chain authorisation. Every generated request carries the admin's bearer token and
names KVK (`kvk` is pinned), so the authenticated operations get past 401/403. About half of the positive
cases are steered to the sandbox's state (`flatmap_case`): known means ids, catalogue services, end dates in
range, a fresh e-mail, If-Match `*` or none; and every Idempotency-Key is made unique. So the changes also
reach the rules, and their 2xx answers are checked too, not only the refusals.

List requests get crafted cursors (`CURSORS`: arbitrary strings and base64url JSON arrays of arbitrary
scalars), so a malformed cursor answering 5xx is caught here too.

Every response must pass `CHECKS`: no 5xx, a documented status code, the documented content type, the
documented headers, and a body that matches the response schema.

Deterministic for CI: derandomized Hypothesis, no example database, a fixed schemathesis seed, a fixed
sandbox date. About 30 s on 2 cores. Needs `schemathesis>=4.32` (the `test` extra).
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import schemathesis  # noqa: E402  (the `test` extra pins >= 4.32)

import uvicorn  # noqa: E402
from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import Case, GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from reconciler.backend.sandbox.app import create_app  # noqa: E402
from reconciler.backend.sandbox.controls import CONTROL_HEADER  # noqa: E402
from reconciler.domain.catalogue import bundled_catalogue  # noqa: E402

SPEC = Path(__file__).resolve().parents[2] / "schemas" / "beheer-api.openapi.yaml"
#: The organisation every generated request names, and a second one of the same admin (a link target).
KVK = "12345678"
OTHER_KVK = "87654321"
INTERMEDIARY = "99966564"
TODAY = dt.date(2025, 6, 1)
#: Fuzzed examples per operation (the examples and coverage phases add their own fixed cases); 24
#: operations x 25 keeps the file around 30 s on 2 cores.
MAX_EXAMPLES = 25
SEED = 20250601

#: What every response is judged by, chosen explicitly instead of schemathesis' default set, whose other
#: checks judge how requests are handled and misfire here (seen with schemathesis 4.32):
#: - `positive_data_acceptance` wants schema-valid requests to succeed; this API refuses many schema-valid
#:   requests by design, with documented statuses: 409 rule refusals, 412 for a stale or empty If-Match,
#:   422 `unknown-service`, a cursor it did not hand out, a reused Idempotency-Key;
#: - `negative_data_rejection` counts a request without `Authorization` as invalid, but the token is added
#:   to every call here, and it expects unknown query parameters to be refused, which the contract does not
#:   ask (OpenAPI query parameters are not a closed set);
#: - `unsupported_method` / `allow_header_conformance` test 405 answers and their `Allow` header, which the
#:   contract does not cover (starlette lists only the first matching route's methods: `OPTIONS` on
#:   `.../means` answers `Allow: GET`, not `GET, POST`).
#: Whatever the request, an undocumented status is still caught by `status_code_conformance`.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

SERVICES = sorted(s.uuid for s in bundled_catalogue())

schema = schemathesis.openapi.from_path(SPEC)
schema.config.update(parameters={"path.kvk": KVK})
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, allow_x00=False)
schema.config.seed = SEED


@dataclass
class _State:
    """Filled by the `served` fixture, read by `flatmap_case` while cases are drawn (after the fixture ran)."""

    means_ids: list[str]


STATE = _State(means_ids=[])
_KEYS = itertools.count()
_EMAILS = itertools.count()


def _unique_idempotency_key(case: Case) -> None:
    """Generated keys repeat across operations and phases ('0', 'null'); the sandbox rightly answers a reused
    key with another body 422 `idempotency-mismatch`, which would hide the rules behind it. A run-wide counter
    keeps valid keys (1..255 characters) unique; invalid ones are left for the 422 they deserve."""
    headers = case.headers
    key = headers.get("Idempotency-Key") if headers else None
    if headers and isinstance(key, str) and 1 <= len(key) <= 255:
        headers["Idempotency-Key"] = f"{next(_KEYS)}-{key}"[:255]


@dataclass(frozen=True)
class _Steer:
    """Schema-valid values the sandbox knows, drawn by Hypothesis, to put into a positive case."""

    if_match: str | None            # None: drop the header; "*" matches any revision
    means_id: str
    means_ids: list[str]
    services: list[str]
    days: int                       # end dates: today + days, within the five years R9 allows
    factor: dict[str, str]
    role: str


def _steer(case: Case, steer: _Steer | None) -> Case:
    """Replace what the sandbox cannot know by chance (ids, catalogue services, its date, its revision);
    every replacement is itself schema-valid, so the case stays positive. None: leave the case as generated."""
    if steer is None:
        return case
    headers = case.headers
    if headers and "If-Match" in headers:
        if steer.if_match is None:
            del headers["If-Match"]
        else:
            headers["If-Match"] = steer.if_match
    path = case.path_parameters or {}
    if "means_id" in path:
        path["means_id"] = steer.means_id
    if "intermediary_kvk" in path:
        path["intermediary_kvk"] = INTERMEDIARY
    body: Any = case.body
    if isinstance(body, dict):
        if isinstance(body.get("means_ids"), list):
            body["means_ids"] = steer.means_ids
        if isinstance(body.get("services"), list):
            body["services"] = steer.services
        for field in ("end_date", "date"):
            if isinstance(body.get(field), str):
                body[field] = (TODAY + dt.timedelta(days=steer.days)).isoformat()
        if isinstance(body.get("kvk"), str):
            body["kvk"] = OTHER_KVK                              # a link target the admin also manages
        if isinstance(body.get("email"), str):
            body["email"] = f"fuzz{next(_EMAILS)}@acme.nl"      # one person, one means (R15): a fresh one
        if "level" in body:
            body["second_factor"] = steer.factor                # EH2+/EH3 need one (R19)
            if "role" in body:
                body["role"] = steer.role
    return case


def _b64_json(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


#: Cursors as this backend hands them out (base64url of a JSON array: the list's name, then its sort key),
#: but with arbitrary scalars inside, so generated cursors get past base64 and JSON and reach the type,
#: arity and integer-range checks (a plain generated string rarely does); and arbitrary strings.
_CURSOR_SCALARS = st.one_of(st.text(max_size=12), st.integers(), st.integers(2 ** 62, 2 ** 80), st.none(),
                            st.booleans(), st.floats())
_LIST_NAMES = st.sampled_from(["organisations", "means", "authorisations", "chains", "services", "events"])
_CURSOR_KEYS = st.lists(_CURSOR_SCALARS, min_size=1, max_size=3)
CURSORS = st.one_of(
    st.tuples(_LIST_NAMES, _CURSOR_KEYS).map(lambda t: _b64_json([t[0], *t[1]])),    # our shape, any list, any key
    _CURSOR_KEYS.map(_b64_json),                                                     # a bare key
    st.text(max_size=40),
)


def _has_cursor(case: Case) -> bool:
    return any(p.name == "cursor" for p in case.operation.query)


def _with_cursor(case: Case, cursor: str | None) -> Case:
    """A list request with `cursor` (None: as generated)."""
    if cursor is not None:
        case.query = {**(case.query or {}), "cursor": cursor}
    return case


@schema.hook
def flatmap_case(context: Any, case: Case) -> st.SearchStrategy[Case]:
    """Steer about half of the positive cases to the sandbox's state; negative cases stay as generated. List
    requests mostly get a crafted cursor (`CURSORS`) instead: a malformed cursor must be 422, never 5xx."""
    if _has_cursor(case):
        return st.one_of(CURSORS, st.none()).map(lambda c: _with_cursor(case, c))
    meta = case.meta
    if meta is None or meta.generation.mode is not GenerationMode.POSITIVE or not STATE.means_ids:
        return st.just(case)
    ids = st.sampled_from(STATE.means_ids)
    steer = st.builds(
        _Steer,
        if_match=st.sampled_from([None, "*"]),
        means_id=ids,
        means_ids=st.lists(ids, min_size=1, max_size=3, unique=True),
        services=st.lists(st.sampled_from(SERVICES), min_size=1, max_size=3, unique=True),
        days=st.integers(1, 5 * 365),
        factor=st.sampled_from([{"type": "otp"}, {"type": "sms", "phone": "+31612345678"}]),
        role=st.sampled_from(["gebruiker", "beheerder"]),
    )
    return st.one_of(st.none(), steer).map(lambda s: _steer(case, s))


# ----------------------------------------------------------------------------------------------- server
@dataclass(frozen=True)
class Served:
    url: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_accepting(port: int, server: uvicorn.Server, thread: threading.Thread,
                          timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the sandbox server thread exited during startup")
        if server.started:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                pass
        time.sleep(0.02)
    raise RuntimeError(f"the sandbox did not accept connections on 127.0.0.1:{port} within {timeout} s")


#: The users set up in KVK: (e-mail local part, lifecycle steps through the sandbox controls).
USERS: list[tuple[str, tuple[str, ...]]] = [
    *((f"user{i}", ("approve", "activate")) for i in range(5)),     # active
    ("invited", ("approve",)),                                       # wachten_op_activatie: e-mail changes (R11)
    ("expired", ("approve", "expire")),                              # activatie_verlopen: invitation (R5)
]


def _setup(url: str, control_token: str) -> Served:
    """Organisations KVK and OTHER_KVK with one admin, the USERS in KVK, and a chain to INTERMEDIARY."""
    admin = {"email": "anna@acme.nl", "name": "Anna", "level": "EH3"}
    with httpx.Client(base_url=url, timeout=10, headers={CONTROL_HEADER: control_token}) as http:
        assert http.post("/sandbox/clock", json={"today": TODAY.isoformat()}).status_code == 200
        r = http.post("/sandbox/organisations", json={"kvk": KVK, "name": "Acme", "admin": admin})
        assert r.status_code == 201, r.text
        token, admin_id = r.json()["token"], r.json()["means_id"]
        r = http.post("/sandbox/organisations", json={"kvk": OTHER_KVK, "name": "Acme Two", "admin": admin})
        assert r.status_code == 201 and r.json()["means_id"] == admin_id, r.text
        auth = {"Authorization": f"Bearer {token}"}
        users = []
        for name, steps in USERS:
            r = http.post(f"/v1/organisations/{KVK}/means", headers=auth, json={
                "email": f"{name}@acme.nl", "name": name, "role": "gebruiker", "level": "EH3",
                "second_factor": {"type": "sms", "phone": "+31612345678"}})
            assert r.status_code == 201, r.text
            means_id = r.json()["result"]["id"]
            for step in steps:
                r = http.post(f"/sandbox/means/{means_id}/{step}")
                assert r.status_code == 200, r.text
            users.append(means_id)
        r = http.post(f"/v1/organisations/{KVK}/chain-authorisations", headers=auth,
                      json={"intermediary_kvk": INTERMEDIARY, "services": SERVICES[:1]})
        assert r.status_code == 200, r.text
    STATE.means_ids[:] = [*users, admin_id]
    return Served(url, token)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The sandbox on a fresh database, served by uvicorn on a free loopback port; stopped afterwards."""
    app = create_app(tmp_path_factory.mktemp("schemathesis") / "sandbox.db")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                          lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, name="sandbox-uvicorn", daemon=True)
    thread.start()
    try:
        _wait_until_accepting(port, server, thread)
        yield _setup(f"http://127.0.0.1:{port}", app.state.control_token)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        STATE.means_ids.clear()
    assert not thread.is_alive(), "the sandbox server did not stop"


# ------------------------------------------------------------------------------------------------- test
@schema.parametrize()
# No shrink phase: a failure is reported as found, which keeps a failing run as bounded as a passing one.
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
          phases=[Phase.explicit, Phase.generate])
def test_served_sandbox_conforms_to_its_contract(case: Case, served: Served) -> None:
    _unique_idempotency_key(case)
    case.call_and_validate(base_url=served.url, headers=served.auth, checks=CHECKS, timeout=10)
