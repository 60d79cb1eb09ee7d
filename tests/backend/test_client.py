"""BeheerClient against small scripted ASGI apps: retries, Retry-After, idempotency keys, problem mapping,
pagination, parsing and token redaction. Sleeps are recorded, never slept, so the tests are instant."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.backend.client import BeheerClient, RetryPolicy, Timeouts, _segment, token_from_env
from reconciler.backend.connect import DroppedConnectionTransport
from reconciler.backend.errors import (
    BackendError, BackendUnreachable, ConfigurationError, Forbidden, IdempotencyMismatch, InvalidRequest,
    NotFound, PreconditionFailed, RateLimited, RuleRefused, ServerError, Unauthorized, Unavailable,
    UnexpectedResponse,
)
from reconciler.backend.types import Secret, TerminationMode
from reconciler.config.models import MeansType, Role, SecondFactorType, Subscription
from reconciler.domain.levels import Level
from reconciler.domain.state import PendingKind, Status

pytestmark = pytest.mark.anyio

TOKEN = "tok-SUPER-secret-4711"
KVK = "12345678"


class Drop(Exception):
    """What the scripted app raises to play "the connection dropped" (like the sandbox's ConnectionDropped)."""


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


Reply = Response | Callable[[Request], Response] | type[BaseException]


@dataclass
class Script:
    """Per (method, path): replies handed out in order, the last one repeated; every request is recorded."""

    replies: dict[tuple[str, str], deque[Reply]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    def on(self, method: str, path: str, *replies: Reply) -> "Script":
        self.replies[(method, path)] = deque(replies)
        return self

    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        self.seen.append(Seen(request.method, request.url.path, dict(request.query_params),
                              {k.lower(): v for k, v in request.headers.items()},
                              json.loads(raw) if raw else None))
        queue = self.replies.get((request.method, request.url.path))
        if not queue:
            return problem(404, "not-found", f"nothing scripted for {request.method} {request.url.path}")
        reply = queue.popleft() if len(queue) > 1 else queue[0]
        if isinstance(reply, type) and issubclass(reply, BaseException):
            raise reply("scripted drop")
        if callable(reply) and not isinstance(reply, Response):
            return reply(request)
        return reply

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "POST", "DELETE"])])


def problem(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    body = {"type": f"urn:test:{code}", "title": code, "status": status, "detail": detail, "code": code}
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(data, status_code=status, headers=headers)


@dataclass
class Sleeps:
    calls: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(script: Script, sleeps: Sleeps) -> Callable[..., BeheerClient]:
    def make(**options: Any) -> BeheerClient:
        transport = DroppedConnectionTransport(httpx.ASGITransport(app=script.app()), (Drop,))
        options.setdefault("token", TOKEN)
        options.setdefault("sleep", sleeps)
        options.setdefault("rand", lambda: 0.5)
        return BeheerClient("http://backend.test", transport=transport, **options)
    return make


def means_json(i: int = 1, **overrides: Any) -> dict[str, Any]:
    data = {"id": f"m{i}", "email": f"u{i}@acme.nl", "name": f"User {i}", "role": "gebruiker", "level": "EH2+",
            "type": "regulier", "status": "actief", "second_factor": {"type": "sms", "phone": "+31612345678"},
            "subscription": "3y", "activation_deadline": None, "contract_start": "2025-01-02",
            "pending": None, "terminates_on": None, "organisations": [KVK]}
    data.update(overrides)
    return data


ME = {"means_id": "m1", "email": "a@acme.nl", "level": "EH3", "read_only": False}
MUTATION = {"revision": 8, "result": {"granted": 2}}


# ------------------------------------------------------------------------------------------------ retries
async def test_retries_503_twice_then_succeeds_with_jittered_backoff(script, sleeps, make_client):
    script.on("GET", "/v1/me", problem(503, "unavailable", "busy"), problem(503, "unavailable", "busy"), ok(ME))
    async with make_client() as client:
        me = await client.me()
    assert me.means_id == "m1" and me.level is Level.EH3
    # full jitter with rand() = 0.5: half of 0.5 * 2**n
    assert sleeps.calls == [0.25, 0.5]
    assert client.request_counts["GET"] == 3 and client.requests_total == 3


async def test_retry_after_is_honoured(script, sleeps, make_client):
    script.on("GET", "/v1/me", problem(429, "rate-limited", "slow down", {"Retry-After": "3"}), ok(ME))
    async with make_client() as client:
        await client.me()
    assert sleeps.calls == [3.0]


async def test_retry_after_beyond_the_delay_budget_gives_up_at_once(script, sleeps, make_client):
    script.on("GET", "/v1/me", problem(429, "rate-limited", "budget spent", {"Retry-After": "120"}), ok(ME))
    async with make_client(retry=RetryPolicy(max_total_delay=30)) as client:
        with pytest.raises(RateLimited) as info:
            await client.me()
    assert sleeps.calls == []
    assert info.value.retry_after == 120 and info.value.attempts == 1
    assert "120 seconds" in str(info.value)


async def test_attempts_are_bounded(script, sleeps, make_client):
    script.on("GET", "/v1/me", problem(503, "unavailable", "down for maintenance"))
    async with make_client() as client:
        with pytest.raises(Unavailable) as info:
            await client.me()
    assert info.value.attempts == 5 and info.value.status == 503
    assert len(script.seen) == 5 and len(sleeps.calls) == 4
    assert client.request_counts["GET"] == 5
    assert "down for maintenance" in str(info.value) and "5 attempt" in str(info.value)


async def test_total_delay_is_bounded(script, sleeps, make_client):
    script.on("GET", "/v1/me", problem(503, "unavailable", "down"))
    policy = RetryPolicy(attempts=10, base_delay=1.0, max_delay=100.0, max_total_delay=5.0)
    async with make_client(retry=policy, rand=lambda: 1.0) as client:
        with pytest.raises(Unavailable):
            await client.me()
    assert sleeps.calls == [1.0, 2.0, 2.0]          # the third delay is cut to what is left of 5 s
    assert len(script.seen) == 4


async def test_the_idempotency_key_stays_the_same_across_retries(script, sleeps, make_client):
    path = f"/v1/organisations/{KVK}/authorisations"
    script.on("POST", path, problem(503, "unavailable", "busy"), Drop, ok(MUTATION))
    async with make_client() as client:
        result = await client.grant(KVK, ["m1", "m2"], ["uuid-a"], end_date=dt.date(2026, 1, 31))
    assert result.revision == 8 and result.result == {"granted": 2}
    keys = {s.headers.get("idempotency-key") for s in script.seen}
    assert len(script.seen) == 3 and len(keys) == 1 and None not in keys
    assert {json.dumps(s.body) for s in script.seen} == {json.dumps(script.seen[0].body)}


async def test_each_call_gets_a_fresh_key_unless_one_is_given(script, make_client):
    path = f"/v1/organisations/{KVK}/authorisations/revoke"
    script.on("POST", path, ok(MUTATION))
    async with make_client() as client:
        await client.revoke(KVK, ["m1"], ["uuid-a"])
        await client.revoke(KVK, ["m1"], ["uuid-a"])
        await client.revoke(KVK, ["m1"], ["uuid-a"], idempotency_key="plan-abc:3")
    keys = [s.headers["idempotency-key"] for s in script.seen]
    assert keys[0] != keys[1] and keys[2] == "plan-abc:3"


async def test_reads_carry_no_idempotency_key(script, make_client):
    script.on("GET", "/v1/me", ok(ME))
    async with make_client() as client:
        await client.me()
    assert "idempotency-key" not in script.seen[0].headers and "if-match" not in script.seen[0].headers


async def test_a_dropped_connection_after_commit_is_retried_and_applied_once(sleeps, make_client, script):
    """The server commits, then drops; the retry with the same key gets the first answer, not a second effect."""
    effects: list[str] = []
    answers: dict[str, Response] = {}
    dropped = [False]

    def terminate(request: Request) -> Response:
        key = request.headers["idempotency-key"]
        if key in answers:
            return answers[key]
        effects.append(key)
        answers[key] = ok({"revision": 3, "result": means_json(2)}, headers={"ETag": '"3"'})
        if not dropped[0]:
            dropped[0] = True
            raise Drop("committed, then the connection dropped")
        return answers[key]

    script.on("POST", f"/v1/organisations/{KVK}/means/m2/terminate", terminate)
    async with make_client() as client:
        result = await client.terminate_means(KVK, "m2", mode=TerminationMode.NOW, if_match=2)
    assert len(effects) == 1 and len(script.seen) == 2
    assert result.revision == 3 and result.means().id == "m2"
    assert script.seen[0].headers["if-match"] == '"2"' == script.seen[1].headers["if-match"]
    assert len(sleeps.calls) == 1


async def test_transport_errors_are_retried_then_reported_as_unreachable(sleeps):
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        raise httpx.ConnectTimeout("timed out", request=request)

    client = BeheerClient("http://backend.test", TOKEN, transport=httpx.MockTransport(handler), sleep=sleeps,
                          rand=lambda: 0.0, retry=RetryPolicy(attempts=3))
    async with client:
        with pytest.raises(BackendUnreachable) as info:
            await client.me()
    assert len(calls) == 3 and info.value.attempts == 3 and info.value.status is None
    message = str(info.value)
    assert message.startswith("Could not reach the beheer backend") and "timed out" in message
    assert "Traceback" not in message and info.value.__cause__ is None


async def test_read_timeout_then_success(sleeps):
    replies = deque([httpx.ReadTimeout("read timed out"), httpx.Response(200, json=ME)])

    def handler(request: httpx.Request) -> httpx.Response:
        reply = replies.popleft()
        if isinstance(reply, Exception):
            raise reply
        return reply

    async with BeheerClient("http://backend.test", TOKEN, transport=httpx.MockTransport(handler),
                            sleep=sleeps, rand=lambda: 0.0) as client:
        assert (await client.me()).email == "a@acme.nl"
    assert sleeps.calls == [0.0]


def test_timeouts_are_configurable() -> None:
    client = BeheerClient("http://backend.test", TOKEN, timeouts=Timeouts(connect=1.5, read=7.0))
    assert client.http.timeout.connect == 1.5 and client.http.timeout.read == 7.0


# ------------------------------------------------------------------------------------------------ problems
@pytest.mark.parametrize(("status", "code", "cls"), [
    (409, "R1", RuleRefused), (412, "precondition-failed", PreconditionFailed), (401, "unauthorized", Unauthorized),
    (403, "forbidden", Forbidden), (404, "not-found", NotFound), (422, "invalid", InvalidRequest),
    (422, "idempotency-mismatch", IdempotencyMismatch), (500, "internal", ServerError),
])
async def test_problems_map_to_typed_errors_and_are_not_retried(script, sleeps, make_client, status, code, cls):
    path = f"/v1/organisations/{KVK}/means/m1/role"
    script.on("POST", path, problem(status, code, "the explanation"))
    async with make_client() as client:
        with pytest.raises(cls) as info:
            await client.change_role(KVK, "m1", Role.GEBRUIKER)
    error = info.value
    assert isinstance(error, BackendError)
    assert (error.status, error.code, error.detail) == (status, code, "the explanation")
    assert len(script.seen) == 1 and sleeps.calls == []
    assert "the explanation" in str(error) and f"POST {path}" in str(error)


async def test_a_rule_refusal_reads_well(script, make_client):
    script.on("POST", f"/v1/organisations/{KVK}/means/m1/role",
              problem(409, "R1", "the organisation would be left without an active admin"))
    async with make_client() as client:
        with pytest.raises(RuleRefused) as info:
            await client.change_role(KVK, "m1", "gebruiker")
    assert str(info.value).startswith("The backend refused the change (rule R1): the organisation would be "
                                      "left without an active admin")


async def test_a_non_json_error_body_still_maps(script, make_client):
    script.on("GET", "/v1/me", Response("<html>Bad Gateway</html>", status_code=404, media_type="text/html"))
    async with make_client() as client:
        with pytest.raises(NotFound) as info:
            await client.me()
    assert info.value.code == "not-found" and "Bad Gateway" in info.value.detail


async def test_off_contract_success_bodies_raise_unexpected_response(script, make_client):
    script.on("GET", "/v1/me", ok({"means_id": "m1", "email": "a@acme.nl", "level": "EH9"}))
    script.on("GET", f"/v1/organisations/{KVK}", Response("not json", media_type="text/plain"))
    async with make_client() as client:
        with pytest.raises(UnexpectedResponse, match="EH9"):
            await client.me()
        with pytest.raises(UnexpectedResponse, match="not JSON"):
            await client.get_organisation(KVK)


# --------------------------------------------------------------------------------------------- pagination
async def test_pagination_follows_cursors(script, make_client):
    pages = {None: ([1, 2], "c2"), "c2": ([3, 4], "c3"), "c3": ([5], None)}

    def page(request: Request) -> Response:
        items, nxt = pages[request.query_params.get("cursor")]
        return ok({"items": [means_json(i) for i in items], "next_cursor": nxt})

    script.on("GET", f"/v1/organisations/{KVK}/means", page)
    async with make_client() as client:
        every = await client.list_all_means(KVK)
        first = await client.list_means(KVK, limit=2)
        streamed = [m.id async for m in client.iter_means(KVK)]
    assert [m.id for m in every] == ["m1", "m2", "m3", "m4", "m5"] == streamed
    assert [s.query.get("cursor") for s in script.seen[:3]] == [None, "c2", "c3"]
    assert {s.query["limit"] for s in script.seen[:3]} == {"2000"} and script.seen[3].query["limit"] == "2"
    assert first.next_cursor == "c2" and len(first.items) == 2


async def test_a_cursor_loop_is_detected(script, make_client):
    script.on("GET", f"/v1/organisations/{KVK}/events", ok({"items": [], "next_cursor": "again"}))
    async with make_client() as client:
        with pytest.raises(UnexpectedResponse, match="twice"):
            await client.list_all_events(KVK)
    assert len(script.seen) == 2


async def test_list_helpers_for_authorisations_chains_events(script, make_client):
    org = f"/v1/organisations/{KVK}"
    script.on("GET", f"{org}/authorisations", ok({"items": [
        {"means_id": "m1", "email": "u1@acme.nl", "service": "2B7C-UUID", "service_key": "rvo/tenderned",
         "end_date": "2027-02-14"}], "next_cursor": None}))
    script.on("GET", f"{org}/chain-authorisations", ok({"items": [
        {"intermediary_kvk": "47474747", "name": "Vries", "services": [
            {"service": "U1", "end_date": "2029-10-14"}, {"service": "u2", "end_date": "2027-01-31"}]}],
        "next_cursor": None}))
    script.on("GET", f"{org}/events", ok({"items": [
        {"id": "e1", "at": "2025-06-01T10:00:00+00:00", "today": "2025-06-01", "actor": "m1", "action": "grant",
         "target": ["m1", "m2"], "outcome": "ok", "code": None, "idempotency_key": "k"}], "next_cursor": None}))
    async with make_client() as client:
        [auth] = await client.list_all_authorisations(KVK)
        [chain] = await client.list_all_chains(KVK)
        [event] = await client.list_all_events(KVK)
    assert auth.service == "2b7c-uuid" and auth.end_date == dt.date(2027, 2, 14)
    assert chain.services == frozenset({"u1", "u2"}) and chain.to_chain().intermediary_kvk == "47474747"
    assert chain.ends == {"u1": dt.date(2029, 10, 14), "u2": dt.date(2027, 1, 31)}      # each its own (R18)
    assert event.target == ("m1", "m2") and event.at.tzinfo is not None


async def test_authorisation_ends_follow_the_pages_and_check_every_item(script, make_client):
    """`authorisation_ends` (what reading the state uses) gives what `list_all_authorisations` gives, folded by
    means and service, over every page; an off-contract item fails as loudly, naming the field."""
    org = f"/v1/organisations/{KVK}"

    def item(means_id: str, service: str, end: Any = "2027-02-14", key: Any = "rvo/tenderned") -> dict[str, Any]:
        return {"means_id": means_id, "email": f"{means_id}@acme.nl", "service": service, "service_key": key,
                "end_date": end}

    pages = {None: ([item("m1", "S-A"), item("m1", "s-b", "2028-01-01", None)], "c2"),
             "c2": ([item("m2", "s-a")], None)}
    script.on("GET", f"{org}/authorisations",
              lambda request: ok(dict(zip(("items", "next_cursor"), pages[request.query_params.get("cursor")]))))
    async with make_client() as client:
        ends = await client.authorisation_ends(KVK)
        every = await client.list_all_authorisations(KVK)
    assert ends == {"m1": {"s-a": dt.date(2027, 2, 14), "s-b": dt.date(2028, 1, 1)},
                    "m2": {"s-a": dt.date(2027, 2, 14)}}
    assert ends == {m: {a.service: a.end_date for a in every if a.means_id == m} for m in ("m1", "m2")}
    for bad, field_name in ((item("m1", "s-a", end=20270214), "end_date"), (item("m1", 7), "service"),
                            (item("m1", "s-a", key=["x"]), "service_key")):
        script.on("GET", f"{org}/authorisations", ok({"items": [bad], "next_cursor": None}))
        async with make_client() as client:
            with pytest.raises(UnexpectedResponse, match=field_name):
                await client.authorisation_ends(KVK)
            with pytest.raises(UnexpectedResponse, match=field_name):
                await client.list_all_authorisations(KVK)


async def test_limit_is_validated(make_client):
    async with make_client() as client:
        with pytest.raises(ValueError, match="1..2000"):
            await client.list_means(KVK, limit=2001)


# ------------------------------------------------------------------------------------ parsing, serialising
async def test_means_are_parsed_into_domain_types(script, make_client):
    script.on("GET", f"/v1/organisations/{KVK}/means/m7", ok(means_json(
        7, status="wachten_op_activatie", activation_deadline="2025-07-01", terminates_on="2025-12-31",
        pending={"kind": "level", "level": "EH3"})))
    async with make_client() as client:
        means = await client.get_means(KVK, "m7")
    assert means.status is Status.WACHTEN_OP_ACTIVATIE and means.level is Level.EH2PLUS
    assert means.role is Role.GEBRUIKER and means.type is MeansType.REGULIER
    assert means.second_factor is SecondFactorType.SMS and means.phone == "+31612345678"
    assert means.subscription is Subscription.THREE_YEARS
    assert means.activation_deadline == dt.date(2025, 7, 1) and means.terminates_on == dt.date(2025, 12, 31)
    assert means.pending is not None and means.pending.kind is PendingKind.LEVEL
    assert means.to_means().id == "m7" and means.to_membership().terminates_on == dt.date(2025, 12, 31)


async def test_organisation_revision_comes_from_the_body_or_the_etag(script, make_client):
    script.on("GET", f"/v1/organisations/{KVK}", ok({"kvk": KVK, "name": "Acme", "branch_number": None},
                                                    headers={"ETag": '"41"'}))
    script.on("GET", "/v1/organisations", ok({"items": [
        {"kvk": KVK, "name": "Acme", "branch_number": None, "revision": 5}], "next_cursor": None}))
    async with make_client() as client:
        org = await client.get_organisation(KVK)
        [listed] = await client.list_organisations()
    assert org.revision == 41 and org.to_info().name == "Acme"
    assert listed.revision == 5


async def test_request_means_serialises_enums_and_options(script, make_client):
    script.on("POST", f"/v1/organisations/{KVK}/means", ok({"revision": 2, "result": means_json(9)}, status=201))
    async with make_client() as client:
        result = await client.request_means(KVK, email="n@acme.nl", name="N", role=Role.BEHEERDER,
                                            level=Level.EH2PLUS, second_factor=SecondFactorType.SMS,
                                            phone="+31600000000", subscription=Subscription.THREE_YEARS,
                                            if_match=1, idempotency_key="k1")
    sent = script.seen[0]
    assert sent.body == {"email": "n@acme.nl", "name": "N", "role": "beheerder", "level": "EH2+",
                         "second_factor": {"type": "sms", "phone": "+31600000000"}, "subscription": "3y"}
    assert sent.headers["if-match"] == '"1"' and sent.headers["idempotency-key"] == "k1"
    assert sent.headers["content-type"] == "application/json"
    assert result.status == 201 and not result.pending and result.means().id == "m9"


async def test_pending_mutations_and_etag_fallback(script, make_client):
    script.on("POST", f"/v1/organisations/{KVK}/means/m1/level",
              ok({"result": means_json(1, pending={"kind": "level", "level": "EH3"})}, status=202,
                 headers={"ETag": '"12"'}))
    script.on("DELETE", f"/v1/organisations/{KVK}/chain-authorisations/47474747", ok({"revision": 13, "result": {}}))
    async with make_client() as client:
        level = await client.change_level(KVK, "m1", Level.EH3)
        removed = await client.remove_intermediary(KVK, "47474747")
    assert level.pending and level.revision == 12 and script.seen[0].body == {"level": "EH3"}
    assert removed.revision == 13 and script.seen[1].method == "DELETE"


async def test_every_mutation_hits_its_contract_path(script, make_client):
    org = f"/v1/organisations/{KVK}"
    for path in ["/means/m1/type", "/means/m1/phone", "/means/m1/email", "/means/m1/invitation",
                 "/means/m1/links", "/means/m1/terminate", "/authorisations/end-date",
                 "/chain-authorisations", "/chain-authorisations/47474747/end-date"]:
        script.on("POST", org + path, ok(MUTATION))
    end = dt.date(2027, 1, 1)
    async with make_client() as client:
        await client.change_type(KVK, "m1", MeansType.BELASTINGDIENST, subscription=Subscription.ONE_YEAR)
        await client.change_phone(KVK, "m1", "+31611111111")
        await client.change_email(KVK, "m1", "new@acme.nl")
        await client.resend_invitation(KVK, "m1")
        await client.link_means(KVK, "m1", to_kvk="87654321", role=Role.GEBRUIKER)
        await client.terminate_means(KVK, "m1", mode="date", date=end)
        await client.set_end_date(KVK, ["m1"], ["u1"], end)
        await client.issue_chain(KVK, "47474747", ["u1"], name="Vries", end_date=end)
        await client.set_chain_end_date(KVK, "47474747", end)
    bodies = [s.body for s in script.seen]
    assert bodies == [
        {"type": "belastingdienst", "subscription": "1y"}, {"phone": "+31611111111"}, {"email": "new@acme.nl"},
        None, {"kvk": "87654321", "role": "gebruiker"}, {"mode": "date", "date": "2027-01-01"},
        {"means_ids": ["m1"], "services": ["u1"], "end_date": "2027-01-01"},
        {"intermediary_kvk": "47474747", "name": "Vries", "services": ["u1"], "end_date": "2027-01-01"},
        {"end_date": "2027-01-01"}]
    assert all("idempotency-key" in s.headers for s in script.seen)
    assert client.request_counts == {"POST": 9}


async def test_terminate_checks_mode_and_date(make_client):
    async with make_client() as client:
        with pytest.raises(ValueError):
            await client.terminate_means(KVK, "m1", mode="date")
        with pytest.raises(ValueError):
            await client.terminate_means(KVK, "m1", mode="sometime")


async def test_path_identifiers_cannot_escape(make_client):
    async with make_client() as client:
        with pytest.raises(ValueError):
            await client.get_means(KVK, "../x")


@pytest.mark.parametrize("means_id", ["m1#x", "m1?role=beheerder", "m1%2F..%2Fm2", "m1%23", "m 1", "mé"])
async def test_an_identifier_that_would_end_the_path_early_is_escaped_and_names_only_itself(means_id: str) -> None:
    """A means id from the backend is hostile too: `m1#x` must not act on `m1` (a `#` or `?` would end the path
    there) and `%2F` must not be read as an escape; the server decodes the segment back to the id itself."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"revision": 2, "result": {}})

    async with BeheerClient("http://127.0.0.1:8700", TOKEN, transport=httpx.MockTransport(handler)) as client:
        await client.change_role(KVK, means_id, Role.BEHEERDER)
    [request] = seen
    assert request.url.path == f"/v1/organisations/{KVK}/means/{means_id}/role"    # decoded: the id, whole
    assert request.url.query == b"" and request.url.fragment == ""


# ----------------------------------------------------------------------------------------------- tokens
async def test_the_bearer_token_is_sent(script, make_client):
    script.on("GET", "/v1/me", ok(ME))
    async with make_client() as client:
        await client.me()
    assert script.seen[0].headers["authorization"] == f"Bearer {TOKEN}"


async def test_with_token_acts_as_another_admin_and_shares_the_counter(script, make_client):
    script.on("GET", "/v1/me", ok(ME))
    async with make_client(token=None) as client:
        other = client.with_token("other-token")
        await other.me()
        await other.aclose()                   # does not close the shared connection
        await client.me()
    assert script.seen[0].headers["authorization"] == "Bearer other-token"
    assert "authorization" not in script.seen[1].headers
    assert client.request_counts["GET"] == 2


async def test_the_token_never_appears_in_errors_reprs_or_logs(script, sleeps, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    script.on("GET", "/v1/me", problem(401, "unauthorized", f"token {TOKEN} is not valid"))
    script.on("GET", f"/v1/organisations/{KVK}", problem(503, "unavailable", f"busy for {TOKEN}"))
    client = make_client(retry=RetryPolicy(attempts=2))
    texts: list[str] = [repr(client), str(client)]
    async with client:
        for call in (client.me(), client.get_organisation(KVK)):
            with pytest.raises(BackendError) as info:
                await call
            texts += [str(info.value), repr(info.value), info.value.detail, str(info.value.args)]
    assert script.seen[0].headers["authorization"] == f"Bearer {TOKEN}"       # it was really used
    assert "token *** is not valid" in texts[2]
    texts += [record.getMessage() for record in caplog.records]
    assert caplog.records, "the client should log its retries"
    assert not [t for t in texts if TOKEN in t]


async def test_the_token_is_redacted_from_transport_errors(sleeps, caplog):
    caplog.set_level(logging.DEBUG)

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused while sending {request.headers['authorization']}", request=request)

    async with BeheerClient("http://backend.test", Secret(TOKEN), transport=httpx.MockTransport(handler),
                            sleep=sleeps, retry=RetryPolicy(attempts=2)) as client:
        with pytest.raises(BackendUnreachable) as info:
            await client.me()
    texts = [str(info.value), repr(info.value)] + [r.getMessage() for r in caplog.records]
    assert not [t for t in texts if TOKEN in t] and "Bearer ***" in str(info.value)


def test_secret_and_token_from_env() -> None:
    secret = token_from_env({"BEHEER_API_TOKEN": f" {TOKEN} "})
    assert secret.reveal() == TOKEN and TOKEN not in f"{secret} {secret!r} {[secret]}"
    with pytest.raises(ConfigurationError, match="BEHEER_API_TOKEN"):
        token_from_env({})
    with pytest.raises(ConfigurationError):
        token_from_env({"BEHEER_API_TOKEN": "  "})


def test_a_token_is_blanked_in_any_log_record(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from reconciler.backend.client import BeheerClient

    token = "tok-" + "s3cr3t" * 5
    BeheerClient("http://127.0.0.1:9", token)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("httpx").info("sending Authorization: Bearer %s", token)
        logging.getLogger("somebody.else").warning(f"oops {token}")
    assert len(caplog.records) == 2
    assert all(token not in r.getMessage() and "***" in r.getMessage() for r in caplog.records)


def test_httpcore_does_not_search_the_path_for_sniffio_on_every_lock() -> None:
    """httpcore asks `import sniffio` for each lock, event and semaphore (about four per request); without sniffio
    installed each ask was a failed import walking sys.path (~75 us, a fifth of the apply's CPU per change)."""
    import importlib.abc
    import sys

    from httpcore._synchronization import current_async_library

    searched: list[str] = []

    class Spy(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
            searched.append(name)

    async def ask() -> str:                 # in a running loop, as httpcore asks (an installed sniffio needs one)
        return current_async_library()

    sys.meta_path.insert(0, Spy())
    try:
        assert asyncio.run(ask()) == "asyncio"
    finally:
        sys.meta_path.pop(0)
    assert searched == []


_BODIES = [b'{"items":[{"a":"\\u00e9\\ud83d\\ude00","n":123456789012345678901234567890,"f":0.30000000000000004}],'
           b'"next_cursor":null}', b'"\\ud800"', b'\xef\xbb\xbf{"a":1}', '{"a":1}'.encode("utf-16"), b'{"a":1,"a":2}',
           b'[1e400, -0, NaN, 5e-324]', b'{"a": "\xc3\xa9"}', b'[1,2,]', b'{"a":1} x', b'', b'"\x01"']


@pytest.mark.parametrize("body", _BODIES)
@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=latin-1"])
def test_the_json_of_an_answer_is_what_response_json_gives(body: bytes, content_type: str) -> None:
    """Bodies are parsed by pydantic-core's parser when it can (a third faster on a large read), else by
    `response.json()`: the value, or the failure, is the same either way."""
    from reconciler.backend.client import _decode_json

    response = httpx.Response(200, content=body, headers={"Content-Type": content_type})
    try:
        expected: Any = ("value", repr(response.json()))
    except ValueError as exc:
        expected = ("error", type(exc))
    try:
        got: Any = ("value", repr(_decode_json(response)))
    except ValueError as exc:
        got = ("error", type(exc))
    assert got == expected


# ------------------------------------------------------------------------------------- URLs and cookies
@pytest.mark.parametrize("base", ["http://127.0.0.1:8700", "https://beheer.example/api/", "https://b.example/a b"])
@pytest.mark.parametrize("path", ["/v1/me", "/v1/organisations/12345678/means/m%201/role", "/v1/x/é y/ü?",
                                  "v1/relative"])
def test_a_path_becomes_the_url_httpx_would_make_of_it(base: str, path: str) -> None:
    """The client parses each path once; the URL is the one httpx's own joining with the base URL gives."""
    client = BeheerClient(base, TOKEN)
    assert client._url(path) == client.http.build_request("GET", path).url
    assert client._url(path) is client._url(path)


def test_the_kept_urls_stay_bounded() -> None:
    client = BeheerClient("http://127.0.0.1:8700", TOKEN)
    for i in range(3000):
        client._url(f"/v1/organisations/12345678/means/m{i}/role")
    assert 0 < len(client._urls) <= 512


async def test_a_cookie_the_server_sets_is_never_sent_back() -> None:
    """The API authenticates by token: a cookie from an answer (a session, a tracker) is not kept or replayed."""
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Cookie"))
        return httpx.Response(200, json={"means_id": "m1", "email": "a@example.nl", "level": "EH3",
                                         "read_only": False},
                              headers={"Set-Cookie": "session=stolen; Path=/"})

    async with BeheerClient("http://127.0.0.1:8700", TOKEN, transport=httpx.MockTransport(handler)) as client:
        client.http.cookies = {"preset": "1"}           # a cookie set on the client is not kept either
        await client.me()
        await client.me()
        assert len(client.http.cookies) == 0
    assert seen == [None, None]


def test_a_new_connection_is_made_like_the_client_s_own_and_over_shares_token_and_counter() -> None:
    client = BeheerClient("https://beheer.example/api", TOKEN, timeouts=Timeouts(connect=1.5))
    other = client.with_token("other-token").new_connection()       # a sibling makes one too
    assert other is not None and other is not client.http
    assert other.base_url == client.http.base_url and other.trust_env and other.timeout == client.http.timeout
    assert BeheerClient("http://127.0.0.1:8700", TOKEN).new_connection().trust_env is False  # type: ignore[union-attr]
    moved = client.over(other)
    assert moved.http is other and moved.request_counts is client.request_counts and moved.has_token
    assert BeheerClient("http://127.0.0.1:8700", TOKEN, http=httpx.AsyncClient()).new_connection() is None


# ---------------------------------------------------------------- URLs and per-lane pools, attacked (issue #15)
BASES = ["http://127.0.0.1:8700", "http://127.0.0.1:8700/", "https://beheer.example/api", "https://beheer.example/a/b/",
         "https://b.example:8443/x%20y/", "http://[::1]:9/p?q=1"]
#: identifiers `_segment` takes: anything without a slash, including ?, #, %, spaces and non-ASCII (it escapes them)
IDS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/"), min_size=1, max_size=12).filter(
    lambda s: s not in {".", ".."})


def _joined(client: BeheerClient, target: str | httpx.URL, params: dict[str, str]) -> Any:
    """The URL a request to `target` goes to, or the kind of error it raises (the old and new path must agree)."""
    try:
        return client.http.build_request("POST", target, params=params or None).url
    except Exception as exc:  # noqa: BLE001 - the same refusal is what is compared
        return type(exc)


_CLIENTS: dict[str, BeheerClient] = {}


def _client_for(base: str) -> BeheerClient:
    """One client per base URL for all examples: making one loads the CA bundle (~20 ms)."""
    if base not in _CLIENTS:
        _CLIENTS[base] = BeheerClient(base, TOKEN)
    return _CLIENTS[base]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(BASES), kvk=IDS, means_id=IDS, cursor=st.none() | st.text(max_size=6))
def test_any_identifier_goes_to_the_url_httpx_s_own_joining_gives(base: str, kvk: str, means_id: str,
                                                                  cursor: str | None) -> None:
    """Whatever an id holds (`?`, `#`, `%2F`, spaces, non-ASCII), the kept URL, with the query on top, is the one
    httpx made of the path before the URLs were kept: no request goes to another path, query or host."""
    client = _client_for(base)
    path = f"/v1/organisations/{_segment(kvk)}/means/{_segment(means_id)}/role"
    params = {"cursor": cursor} if cursor is not None else {}
    try:
        kept: Any = client._url(path)
    except Exception as exc:  # noqa: BLE001
        kept = type(exc)
    expected = _joined(client, path, params)
    assert (_joined(client, kept, params) if isinstance(kept, httpx.URL) else kept) == expected
    if isinstance(kept, httpx.URL):
        assert (kept.scheme, kept.host, kept.port) == (client.http.base_url.scheme, client.http.base_url.host,
                                                       client.http.base_url.port)


def test_clients_on_other_base_urls_never_share_a_kept_url() -> None:
    """The URLs are kept per client: a client (or its sibling over another pool) never sends to a URL kept by a
    client of another backend, even for the same path."""
    one = BeheerClient("https://one.example/api/", TOKEN)
    two = BeheerClient("https://two.example/other/", TOKEN)
    path = f"/v1/organisations/{KVK}/means"
    assert str(one._url(path)) == f"https://one.example/api/v1/organisations/{KVK}/means"
    assert str(two._url(path)) == f"https://two.example/other/v1/organisations/{KVK}/means"
    pool = two.new_connection()
    assert pool is not None
    moved = one.over(pool)                            # over another backend's pool: that pool's base decides
    assert str(moved._url(path)) == str(two._url(path))
    assert str(one._url(path)).startswith("https://one.example/api/")


@pytest.mark.parametrize("path", ["//evil.example/v1/me", "https://evil.example/v1/me"])
def test_a_path_that_names_a_host_stays_on_the_backend(path: str) -> None:
    client = BeheerClient("https://beheer.example/api/", TOKEN)
    assert client._url(path).host == "beheer.example"


async def test_a_lane_s_pool_sends_each_organisation_s_own_token_and_keeps_no_cookie() -> None:
    """`over` moves a client, its token and nothing else, onto a lane's pool: the requests of two organisations'
    clients over one pool each carry their own token; a cookie set over the pool is never replayed."""
    seen: list[tuple[str | None, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers.get("Authorization"), request.headers.get("Cookie")))
        return httpx.Response(200, json={"means_id": "m1", "email": "a@example.nl", "level": "EH3", "read_only": False},
                              headers={"Set-Cookie": "session=stolen; Path=/"})

    async with BeheerClient("http://127.0.0.1:8700", TOKEN, transport=httpx.MockTransport(handler)) as session:
        other = session.with_token("other-org-token")
        pool = other.new_connection()
        assert pool is not None
        try:
            await session.over(pool).me()
            await other.over(pool).me()
            await session.over(pool).me()
            assert len(pool.cookies) == 0 and not pool.is_closed
        finally:
            await pool.aclose()
        assert not session.http.is_closed
    assert seen == [(f"Bearer {TOKEN}", None), ("Bearer other-org-token", None), (f"Bearer {TOKEN}", None)]


@pytest.mark.parametrize("base, proxied", [("http://10.1.2.3:8700", False), ("https://beheer.example", True)])
def test_a_lane_s_pool_follows_the_proxy_rule_of_the_session(monkeypatch: pytest.MonkeyPatch, base: str,
                                                             proxied: bool) -> None:
    """Plain http (loopback or --allow-insecure-http) never goes through HTTP(S)_PROXY / ALL_PROXY, where the
    token would travel in clear to another host; https may. A lane's pool is made by the same rule."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = BeheerClient(base, TOKEN)
    pool = client.with_token("other").new_connection()
    assert pool is not None
    for http in (client.http, pool):
        url = client._url("/v1/me")
        assert (http._transport_for_url(url) is not http._transport) is proxied, http


async def test_a_cookie_put_into_the_client_s_jar_is_never_sent() -> None:
    """The jar keeps nothing however a cookie is put in (item, `set`, `update`), on the session's pool and on a
    lane's: before, only a server's Set-Cookie and a replaced jar were dropped, and these three were sent."""
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Cookie"))
        return httpx.Response(200, json={"means_id": "m1", "email": "a@example.nl", "level": "EH3", "read_only": False})

    async with BeheerClient("http://127.0.0.1:8700", TOKEN, transport=httpx.MockTransport(handler)) as client:
        pool = client.new_connection()
        assert pool is not None
        try:
            for http in (client.http, pool):
                http.cookies["planted"] = "1"
                http.cookies.set("other", "2", domain="127.0.0.1")
                http.cookies.update({"third": "3"})
                assert len(http.cookies) == 0
            await client.me()
            await client.over(pool).me()
        finally:
            await pool.aclose()
    assert seen == [None, None]


# --------------------------------------------------------------------------------- a hostile backend's headers
@pytest.mark.parametrize("etag", ['"\xb2"'.encode("latin-1"), '"\u00b2"'.encode(), '"\u0663"'.encode(),
                                  b'"' + b"9" * 5000 + b'"', b'W/"-3"'])
async def test_an_etag_that_is_no_ascii_number_is_no_revision(etag: bytes) -> None:
    """`str.isdigit` takes `²` and `٣`; `int` refuses the first (and 5,000 digits), misreads the second: such an
    ETag is no revision (None), never an internal error. Without one in the body, that is UnexpectedResponse."""
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"kvk": KVK, "name": "Acme"} if request.method == "GET" else {"result": {}}
        return httpx.Response(200, json=body, headers=[(b"ETag", etag)])

    async with BeheerClient("http://backend.test", TOKEN, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(UnexpectedResponse, match="revision"):
            await client.get_organisation(KVK)
        with pytest.raises(UnexpectedResponse, match="revision"):
            await client.change_role(KVK, "m1", Role.BEHEERDER)


@pytest.mark.parametrize("value", ["Mon, 01 Jan 99999999999 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 -2359",
                                   "1e999", "-5", "nan"])
async def test_a_retry_after_out_of_any_range_is_no_crash(script, sleeps, make_client, value: str) -> None:
    """A date past the calendar (OverflowError in `email.utils`), infinity, a negative or NaN wait: the client
    either gives up with RateLimited or waits within its budget, never an internal error."""
    script.on("GET", "/v1/me", problem(429, "rate-limited", "slow down", {"Retry-After": value}), ok(ME))
    async with make_client(retry=RetryPolicy(max_total_delay=30)) as client:
        try:
            await client.me()
        except RateLimited as exc:
            assert exc.attempts == 1 and sleeps.calls == []
    assert all(0 <= s <= 30 for s in sleeps.calls)


# ----------------------------------------------------------------------------- a hostile backend's problem text
async def test_a_problem_code_of_another_shape_is_not_repeated(script, make_client) -> None:
    """The code is named in the message as it is: a code with a line break would forge a line of its own under
    ours, and one that echoes the token would show it. Only a code shaped like `R4` or `not-found` is kept."""
    code = f"x{TOKEN}\nerror: all changes applied\x1b[2J"
    script.on("GET", "/v1/me", problem(400, code, "d"))
    async with make_client() as client:
        with pytest.raises(BackendError) as info:
            await client.me()
    assert info.value.code is None
    assert TOKEN not in str(info.value) and "\n" not in str(info.value) and "\x1b" not in str(info.value)


@pytest.mark.parametrize("body", [
    {"detail": ["a" * 487, TOKEN]},                      # cut at 500 characters of its JSON
    "b" * 290 + TOKEN,                                   # a plain body, cut at 300
])
async def test_a_long_body_is_redacted_before_it_is_cut(body: Any) -> None:
    """Cutting first kept the token's first half (`tok-SUP`), which redaction then no longer recognised."""
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(400, text=body)
        return httpx.Response(400, json=body)

    async with BeheerClient("http://backend.test", TOKEN, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(BackendError) as info:
            await client.me()
    assert TOKEN[:7] not in str(info.value) and "***" in str(info.value)


async def test_a_repeated_cursor_is_redacted_and_shortened(script, make_client) -> None:
    """The cursor a backend repeats is its own text: the message redacts the token and shows at most 500
    characters of it."""
    cursor = TOKEN + "x" * 4000
    script.on("GET", f"/v1/organisations/{KVK}/events", ok({"items": [], "next_cursor": cursor}))
    async with make_client() as client:
        with pytest.raises(UnexpectedResponse, match="twice") as info:
            await client.list_all_events(KVK)
    assert TOKEN not in str(info.value) and len(str(info.value)) < 1_000


async def test_a_cursor_too_long_for_a_url_is_refused(script, make_client) -> None:
    """A cursor goes back in the next URL: past httpx's 65,536 characters that was `httpx.InvalidURL`, an internal
    error; a cursor past 4,096 characters is an off-contract answer instead, and no second request is sent."""
    script.on("GET", f"/v1/organisations/{KVK}/events", ok({"items": [], "next_cursor": "c" * 70_000}))
    async with make_client() as client:
        with pytest.raises(UnexpectedResponse, match="next_cursor"):
            await client.list_all_events(KVK)
    assert len(script.seen) == 1


@pytest.mark.parametrize("bad", ["a/b", "..", ".", ""])
async def test_an_identifier_no_path_can_name_is_refused_when_read(script, make_client, bad: str) -> None:
    """A means id or intermediary KvK number the client could never put in a path is off-contract at once (an
    UnexpectedResponse naming it), not a ValueError from `_segment` halfway through an apply; so is a means id
    that is no string (`null` was read as the id "None")."""
    script.on("GET", f"/v1/organisations/{KVK}/means", ok({"items": [means_json(id=bad)], "next_cursor": None}))
    script.on("GET", f"/v1/organisations/{KVK}/chain-authorisations",
              ok({"items": [{"intermediary_kvk": bad, "name": None, "services": []}], "next_cursor": None}))
    async with make_client() as client:
        with pytest.raises(UnexpectedResponse, match="'id' is"):
            await client.list_all_means(KVK)
        with pytest.raises(UnexpectedResponse, match="'intermediary_kvk' is"):
            await client.list_all_chains(KVK)
    script.on("GET", f"/v1/organisations/{KVK}/means", ok({"items": [means_json(id=None)], "next_cursor": None}))
    async with make_client() as client:
        with pytest.raises(UnexpectedResponse, match="'id' should be a string"):
            await client.list_all_means(KVK)


@pytest.mark.parametrize("items", [[means_json(1)], []])
async def test_a_list_that_never_ends_under_fresh_cursors_is_refused(items: list[Any]) -> None:
    """A new cursor each time defeats the "cursor seen twice" check: the same page again, or empty page after
    empty page, went on for ever (plan hung). Both are refused after a bounded number of requests."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if len(sent) > 500:
            raise AssertionError("still reading")
        return httpx.Response(200, json={"items": items, "next_cursor": f"c{len(sent)}"})

    async with BeheerClient("http://backend.test", TOKEN, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(UnexpectedResponse, match="same page twice|empty pages in a row"):
            await client.list_all_means(KVK)
    assert len(sent) == (2 if items else 101)


@pytest.mark.parametrize("result", [{}, {"granted": 2}, means_json(1, id="a/b"), means_json(1, email=None)])
async def test_a_request_means_answer_that_is_no_means_is_an_unexpected_response(script, make_client,
                                                                                  result: Any) -> None:
    """The apply takes the new means' id from the answer (`MutationResult.means()`): an answer without a means
    raised KeyError there, an internal error after the step was sent. The client now says UnexpectedResponse
    (the apply's "outcome unknown"), redacted like every other."""
    script.on("POST", f"/v1/organisations/{KVK}/means", ok({"revision": 3, "result": result}, status=201))
    async with make_client() as client:
        with pytest.raises(UnexpectedResponse):
            await client.request_means(KVK, email="u@acme.nl", name="U", role=Role.GEBRUIKER, level=Level.EH3)


@pytest.mark.parametrize("status", [200, 400, 503])
@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000,
                                  b'{"detail": ' + b"[" * 990 + b"]" * 990 + b"}"])
async def test_json_nested_past_the_recursion_limit_is_no_internal_error(status: int, body: bytes) -> None:
    """`json.loads` raises RecursionError (no ValueError) on arrays nested 100,000 deep, and `json.dumps` on a
    detail nested nearly as deep as it can read: an answer is then not understood, or has no readable detail."""
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})

    async with BeheerClient("http://backend.test", TOKEN, transport=httpx.MockTransport(handler),
                            retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(BackendError) as info:
            await client.me()
    if status == 200:
        assert isinstance(info.value, UnexpectedResponse)
    assert len(str(info.value)) < 1_000


async def test_a_megabyte_of_detail_is_shortened_after_redaction(script, make_client) -> None:
    """A string detail or title was repeated whole: a megabyte on the terminal and in the audit log."""
    body = {"code": "invalid", "title": "t" * 1_000_000, "detail": "d" * 1990 + TOKEN + "d" * 1_000_000}
    script.on("GET", "/v1/me", ok(body, status=422))
    async with make_client() as client:
        with pytest.raises(InvalidRequest) as info:
            await client.me()
    assert len(str(info.value)) < 2_500 and len(info.value.title or "") < 2_500
    assert TOKEN[:7] not in str(info.value) and str(info.value).count("***") == 1
