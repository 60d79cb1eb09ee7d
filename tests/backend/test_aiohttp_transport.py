"""`AiohttpTransport` against real sockets: loopback servers that write exactly the bytes a test chooses. The
transport must behave like httpx's own for everything `BeheerClient` relies on: which httpx error a failure
becomes (so the client retries it and names it), no cookies, no redirects, httpx decoding gzip, the request's
bytes on the wire unchanged, a bounded answer, a closed session. Each test drives it the way users hit it
(through `BeheerClient`) or, for the transport's own contract, through `httpx.AsyncClient`."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import os
import socket
import time
import warnings
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import pytest

from reconciler.backend import aiohttp_transport
from reconciler.backend.aiohttp_transport import AiohttpTransport, AnswerTooLarge
from reconciler.backend.client import BeheerClient, RetryPolicy, Timeouts
from reconciler.backend.errors import BackendError, BackendUnreachable
from reconciler.config.models import Role

pytestmark = pytest.mark.anyio

TOKEN = "tok-SUPER-secret-4711"
KVK = "12345678"
ME = {"means_id": "m1", "email": "a@acme.nl", "level": "EH3", "read_only": False}
#: Fast failures: a test that hangs fails in about a second instead of thirty.
QUICK = Timeouts(connect=1.0, read=1.0, write=1.0, pool=1.0)


# --------------------------------------------------------------------------------------------- raw server
@dataclass
class Wire:
    """One request as it arrived on the socket, unparsed beyond the framing."""

    line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    connection: int

    def values(self, name: str) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name.lower().encode()]


#: What a server does with one request: write bytes to the writer; True keeps the connection for another request.
Answer = Callable[["RawServer", Wire, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class RawServer:
    """An HTTP/1.1 server on 127.0.0.1 (a free port) that records each request and answers as `answer` says."""

    answer: Answer
    requests: list[Wire] = field(default_factory=list)
    connections: int = 0
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _server: asyncio.Server | None = None
    url: str = ""

    async def __aenter__(self) -> "RawServer":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        number = self.connections
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return                                  # the client closed its connection
                line, *rest = head[:-4].split(b"\r\n")
                headers = [(k.strip(), v.strip()) for k, _, v in (h.partition(b":") for h in rest)]
                length = next((int(v) for k, v in headers if k.lower() == b"content-length"), 0)
                wire = Wire(line, headers, await reader.readexactly(length), number)
                self.requests.append(wire)
                keep = await self.answer(self, wire, writer)
                await writer.drain()
                if not keep:
                    return
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            return                                          # the test is over, or the client went away
        finally:
            writer.close()
            self._tasks.discard(task)


def raw(data: bytes, *, keep: bool = False) -> Answer:
    """Write `data` as it is; close the connection afterwards unless `keep`."""
    async def answer(server: RawServer, wire: Wire, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        return keep
    return answer


def answer_bytes(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def json_answer(data: Any, status: str = "200 OK", *headers: str) -> bytes:
    return answer_bytes(status, json.dumps(data).encode(), "Content-Type: application/json", *headers)


def chunked(body: bytes, size: int = 100) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


@dataclass
class Sleeps:
    calls: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def client_for(server: RawServer, **options: Any) -> BeheerClient:
    """A client on the raw server, as a user gets one (no transport given: `_pool` picks aiohttp)."""
    options.setdefault("timeouts", QUICK)
    options.setdefault("retry", RetryPolicy(attempts=1))
    host = options.pop("host", "127.0.0.1")
    client = BeheerClient(server.url.replace("127.0.0.1", host), TOKEN, **options)
    assert isinstance(client.http._transport, AiohttpTransport)    # what every test below is about
    return client


def plain_http(server: RawServer, timeout: httpx.Timeout | None = None) -> httpx.AsyncClient:
    """httpx over the transport alone, for the transport's own contract."""
    timeout = timeout or QUICK.to_httpx()
    return httpx.AsyncClient(base_url=server.url, transport=AiohttpTransport(timeout=timeout), timeout=timeout)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------- failures, as httpx's
async def test_a_connection_dropped_mid_answer_is_retried_then_reported_as_dropped() -> None:
    """Status line, headers announcing 100 bytes, 10 bytes, close: httpx's RemoteProtocolError, which the client
    retries per its policy and names as a dropped connection (not an internal error, not a timeout)."""
    sleeps = Sleeps()
    drop = raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"means_id\"")
    async with RawServer(drop) as server:
        async with client_for(server, retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.01),
                              sleep=sleeps, rand=lambda: 1.0) as client:
            with pytest.raises(BackendUnreachable) as info:
                await client.me()
    assert "connection dropped before a complete response (RemoteProtocolError" in str(info.value)
    assert info.value.attempts == 3 and sleeps.calls == [0.01, 0.01]
    assert len(server.requests) == 3 and server.connections == 3      # each attempt on a fresh connection
    assert all(w.line == b"GET /v1/me HTTP/1.1" for w in server.requests)


async def test_a_dropped_connection_then_an_answer_succeeds_on_a_fresh_connection() -> None:
    """A retry after a drop is not stuck on the broken connection: the second attempt gets the answer."""
    async def answer(server: RawServer, wire: Wire, writer: asyncio.StreamWriter) -> bool:
        if len(server.requests) == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            return False
        writer.write(json_answer(ME))
        return True

    async with RawServer(answer) as server:
        async with client_for(server, retry=RetryPolicy(attempts=2), sleep=Sleeps()) as client:
            assert (await client.me()).email == "a@acme.nl"
    assert len(server.requests) == 2 and server.connections == 2


async def test_a_refused_connection_is_a_connection_failure_not_a_timeout() -> None:
    port = closed_port()
    sleeps = Sleeps()
    async with BeheerClient(f"http://127.0.0.1:{port}", TOKEN, timeouts=QUICK, sleep=sleeps,
                            retry=RetryPolicy(attempts=2)) as client:
        assert isinstance(client.http._transport, AiohttpTransport)
        with pytest.raises(BackendUnreachable) as info:
            await client.me()
    message = str(info.value)
    assert "connection failed (ConnectError" in message and "timed out" not in message
    assert info.value.attempts == 2 and len(sleeps.calls) == 1
    async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/v1/me")


async def test_a_backend_that_never_answers_times_out_after_the_read_timeout() -> None:
    """The server reads the request and says nothing: the read timeout (0.2 s) ends it, as "timed out"."""
    async def silent(server: RawServer, wire: Wire, writer: asyncio.StreamWriter) -> bool:
        return True                                     # keep the connection, answer nothing

    async with RawServer(silent) as server:
        async with client_for(server, timeouts=Timeouts(connect=1.0, read=0.2, write=1.0, pool=1.0)) as client:
            started = time.monotonic()
            with pytest.raises(BackendUnreachable) as info:
                await client.me()
            took = time.monotonic() - started
    assert "timed out (ReadTimeout" in str(info.value)
    assert 0.15 <= took < 1.0, took
    assert len(server.requests) == 1


async def test_a_read_timeout_given_per_request_wins_over_the_client_s() -> None:
    async def silent(server: RawServer, wire: Wire, writer: asyncio.StreamWriter) -> bool:
        return True

    async with RawServer(silent) as server, plain_http(server, httpx.Timeout(5.0)) as http:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/v1/me", timeout=httpx.Timeout(5.0, read=0.2))
        assert time.monotonic() - started < 1.0


# ------------------------------------------------------------------------------------- malformed answers
@pytest.mark.parametrize("data", [
    b"HELLO WORLD\r\n\r\n",                                                      # no status line at all
    b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",                             # a status that is no number
    b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nabc",                         # a negative length
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",   # two lengths that disagree
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\nContent-Length: 0\r\n\r\n",  # a header past the limit
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",      # a chunk size no hex
], ids=["garbage-status-line", "status-no-number", "negative-length", "two-lengths", "huge-header", "bad-chunk"])
async def test_a_malformed_answer_is_a_protocol_error(data: bytes) -> None:
    async with RawServer(raw(data)) as server:
        async with plain_http(server) as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get("/v1/me")
        async with client_for(server) as client:
            with pytest.raises(BackendUnreachable) as info:
                await client.me()
    assert "connection dropped before a complete response (RemoteProtocolError" in str(info.value)


async def test_an_endless_stream_of_interim_answers_ends_as_a_timeout() -> None:
    """`100 Continue` after `100 Continue`, faster than any read timeout: each read gets bytes, so a per-read
    timeout never fires; the answer's head must still come within the timeouts' sum, or the request ends."""
    async def interim(server: RawServer, wire: Wire, writer: asyncio.StreamWriter) -> bool:
        while True:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" * 20)
            await writer.drain()
            await asyncio.sleep(0.005)

    timeouts = Timeouts(connect=0.1, read=0.2, write=0.1, pool=0.1)
    async with RawServer(interim) as server:
        async with client_for(server, timeouts=timeouts) as client:
            started = time.monotonic()
            with pytest.raises(BackendUnreachable) as info, anyio.fail_after(5):    # a hang fails, in 5 s
                await client.me()
            took = time.monotonic() - started
    assert "timed out (ReadTimeout" in str(info.value)
    assert 0.4 <= took < 2.0, took                           # the sum of the timeouts, not a hang


async def test_an_endless_head_ends_as_an_error_whatever_aiohttp_s_header_limits() -> None:
    """Header line after header line, each short: aiohttp before 3.13.4 counts none of them, later ones refuse
    past 128. Either way it ends (as a protocol error or a timeout), without waiting for the head's end."""
    async def endless(server: RawServer, wire: Wire, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        while True:
            writer.write(b"X-A: b\r\n" * 500)
            await writer.drain()
            await asyncio.sleep(0.005)

    timeouts = httpx.Timeout(connect=0.1, read=0.2, write=0.1, pool=0.1)
    async with RawServer(endless) as server, plain_http(server, timeouts) as http:
        started = time.monotonic()
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadTimeout)), anyio.fail_after(5):
            await http.get("/v1/me")
        assert time.monotonic() - started < 2.0


# --------------------------------------------------------------------------------------- the answer's size
@pytest.mark.parametrize("framing", ["length", "chunked", "until-close"])
async def test_an_answer_past_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch, framing: str) -> None:
    """Announced by Content-Length, or only found out while reading (chunked, or read until the close): both
    are refused as AnswerTooLarge (a RemoteProtocolError), and the client gives up as unreachable."""
    monkeypatch.setattr(aiohttp_transport, "MAX_ANSWER_BYTES", 1000)
    body = b'{"x": "' + b"a" * 4000 + b'"}'
    data = {"length": answer_bytes("200 OK", body),
            "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body),
            "until-close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body}[framing]
    async with RawServer(raw(data)) as server:
        async with plain_http(server) as http:
            with pytest.raises(AnswerTooLarge) as refused:
                await http.get("/v1/x")
        assert isinstance(refused.value, httpx.RemoteProtocolError)
        assert "1000" in str(refused.value)
        async with client_for(server) as client:
            with pytest.raises(BackendUnreachable) as info:
                await client.call("GET", "/v1/x")
    assert "connection dropped before a complete response (AnswerTooLarge" in str(info.value)


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_an_answer_at_the_limit_is_taken_whole(monkeypatch: pytest.MonkeyPatch, framing: str) -> None:
    monkeypatch.setattr(aiohttp_transport, "MAX_ANSWER_BYTES", 1000)
    body = b'{"x": "' + b"a" * 990 + b'"} '                # 1000 bytes, the trailing space included
    assert len(body) == 1000
    data = (answer_bytes("200 OK", body, "Content-Type: application/json") if framing == "length" else
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(body))
    async with RawServer(raw(data, keep=True)) as server, client_for(server) as client:
        assert await client.call("GET", "/v1/x") == {"x": "a" * 990}


async def test_a_refused_answer_leaves_the_pool_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection a refused answer is still streaming on is closed, not handed to the next request (which
    would read the rest of that answer as its own)."""
    monkeypatch.setattr(aiohttp_transport, "MAX_ANSWER_BYTES", 1000)

    async def answer(server: RawServer, wire: Wire, writer: asyncio.StreamWriter) -> bool:
        if len(server.requests) > 1:
            writer.write(json_answer(ME))
            return True
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:                                     # until the client hangs up
            writer.write(chunked(b"a" * 500)[:-5])
            await writer.drain()
            await asyncio.sleep(0.001)

    async with RawServer(answer) as server, plain_http(server) as http:
        with pytest.raises(AnswerTooLarge), anyio.fail_after(5):
            await http.get("/v1/x")
        assert (await http.get("/v1/me")).json() == ME
    assert server.connections == 2


# ------------------------------------------------------------------------------- what httpx did, kept as is
async def test_a_cookie_the_server_sets_is_never_sent_back() -> None:
    """By a host name: aiohttp's own jar would take no cookie from an IP address anyway."""
    async with RawServer(raw(json_answer(ME, "200 OK", "Set-Cookie: s=1; Path=/"), keep=True)) as server:
        async with client_for(server, host="localhost") as client:
            await client.me()
            await client.me()
            await client.call("GET", "/v1/me")
    assert len(server.requests) == 3 and server.connections == 1         # one kept-alive connection
    assert all(w.values("cookie") == [] for w in server.requests)


async def test_a_redirect_is_not_followed() -> None:
    """A 302 is the client's error for that status (`error_class_for(302)`: the base BackendError); the server
    saw one request, and nothing went to where the Location points."""
    redirect = answer_bytes("302 Found", b"", "Location: /v1/elsewhere")
    async with RawServer(raw(redirect, keep=True)) as server:
        async with client_for(server, retry=RetryPolicy(attempts=3), sleep=Sleeps()) as client:
            with pytest.raises(BackendError) as info:
                await client.me()
        async with plain_http(server) as http:
            answer = await http.get("/v1/me")
    assert type(info.value) is BackendError and info.value.status == 302
    assert answer.status_code == 302 and answer.headers["location"] == "/v1/elsewhere"
    assert [w.line for w in server.requests] == [b"GET /v1/me HTTP/1.1"] * 2


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_a_gzip_answer_is_decoded_once(framing: str) -> None:
    """httpx decodes (it asked for gzip); aiohttp must not decode first, or httpx would gunzip plain JSON."""
    body = gzip.compress(json.dumps(ME).encode())
    data = (answer_bytes("200 OK", body, "Content-Type: application/json", "Content-Encoding: gzip")
            if framing == "length" else
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body, 7))
    async with RawServer(raw(data, keep=True)) as server, client_for(server) as client:
        assert await client.call("GET", "/v1/me") == ME
        assert (await client.me()).email == "a@acme.nl"
    assert b"gzip" in server.requests[0].values("accept-encoding")[0]


def _raw_deflate(data: bytes) -> bytes:
    encoder = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return encoder.compress(data) + encoder.flush()


@pytest.mark.parametrize("coding, encode", [("deflate", zlib.compress), ("deflate", _raw_deflate),
                                            ("x-gzip", gzip.compress)])
async def test_deflate_in_both_forms_and_x_gzip_are_decoded(coding: str, encode: Callable[[bytes], bytes]) -> None:
    body = encode(json.dumps(ME).encode())
    data = answer_bytes("200 OK", body, "Content-Type: application/json", f"Content-Encoding: {coding}")
    async with RawServer(raw(data, keep=True)) as server, client_for(server) as client:
        assert await client.call("GET", "/v1/me") == ME
    assert server.requests[0].values("accept-encoding") == [b"gzip, deflate"]     # nothing it cannot bound


async def test_a_compression_bomb_is_refused_by_what_it_decodes_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small gzip body that decodes to far more than the limit ends as AnswerTooLarge, before httpx would decode
    it whole into memory."""
    monkeypatch.setattr(aiohttp_transport, "MAX_ANSWER_BYTES", 100_000)
    bomb = gzip.compress(b"0" * 5_000_000)
    assert len(bomb) < 100_000
    data = answer_bytes("200 OK", bomb, "Content-Type: application/json", "Content-Encoding: gzip")
    async with RawServer(raw(data)) as server:
        async with plain_http(server) as http:
            with pytest.raises(AnswerTooLarge, match="decodes to more than"):
                await http.get("/v1/me")
        async with client_for(server) as client:
            with pytest.raises(BackendUnreachable, match="AnswerTooLarge"):
                await client.me()


@pytest.mark.parametrize("coding, body, said", [
    ("br", b"\x0b\x02\x80{}\x03", "not taken"),
    ("gzip", b"not gzip at all", "does not decode"),
    ("gzip, gzip", gzip.compress(gzip.compress(b"{}")), "not taken"),
])
async def test_an_answer_in_a_coding_not_taken_or_broken_is_a_protocol_error(coding: str, body: bytes,
                                                                              said: str) -> None:
    data = answer_bytes("200 OK", body, "Content-Type: application/json", f"Content-Encoding: {coding}")
    async with RawServer(raw(data)) as server:
        async with plain_http(server) as http:
            with pytest.raises(httpx.RemoteProtocolError, match=said):
                await http.get("/v1/me")
        async with client_for(server) as client:
            with pytest.raises(BackendUnreachable, match=said):
                await client.me()


async def test_a_broken_gzip_from_any_transport_is_unreachable_not_an_internal_error() -> None:
    """httpx decodes for an in-process transport: its DecodingError (not a TransportError) is a backend failure the
    client retries and names, like any broken answer."""
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
                              content=b"not gzip at all")
    sleeps = Sleeps()
    client = BeheerClient("http://sandbox.test", TOKEN, transport=httpx.MockTransport(handler),
                          retry=RetryPolicy(attempts=2, base_delay=0.01), sleep=sleeps)
    async with client:
        with pytest.raises(BackendUnreachable, match="does not decode") as info:
            await client.me()
    assert info.value.attempts == 2 and len(sleeps.calls) == 1
    assert TOKEN not in str(info.value)


def test_no_proxy_alone_keeps_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_PROXY names hosts not to proxy; by itself it routes nothing through a proxy."""
    _no_proxy_env(monkeypatch)
    monkeypatch.setenv("NO_PROXY", "internal.example")
    assert isinstance(BeheerClient("https://beheer.example", TOKEN).http._transport, AiohttpTransport)


async def test_status_reason_and_repeated_headers_come_through() -> None:
    data = answer_bytes("409 Conflict Here", b'{"code": "rule-refused"}', "Content-Type: application/problem+json",
                        "X-Twice: 1", "X-Twice: 2", "ETag: \"7\"")
    async with RawServer(raw(data, keep=True)) as server, plain_http(server) as http:
        answer = await http.get("/v1/me")
    assert answer.status_code == 409 and answer.reason_phrase == "Conflict Here"
    assert answer.headers.get_list("x-twice") == ["1", "2"] and answer.headers["etag"] == '"7"'
    assert answer.json() == {"code": "rule-refused"} and answer.http_version == "HTTP/1.1"


# ------------------------------------------------------------------------------------------ the request
ODD_ID = "m 1%?#é\u263a"          # a space, %, ?, #, non-ASCII: each escaped by the client


async def _as_httpx_sends(call: Callable[[BeheerClient], Awaitable[Any]]) -> httpx.Request:
    """The request the client hands to a transport (what must reach the wire unchanged)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"revision": 8, "result": {}, "items": [], "next_cursor": None})

    async with BeheerClient("http://127.0.0.1:8700", TOKEN, transport=httpx.MockTransport(handler)) as client:
        await call(client)
    [request] = seen
    return request


async def test_a_mutation_reaches_the_wire_exactly_as_httpx_built_it() -> None:
    async def change(client: BeheerClient) -> Any:
        return await client.change_role(KVK, ODD_ID, Role.BEHEERDER, if_match=7, idempotency_key="key-1")

    sent = await _as_httpx_sends(change)
    async with RawServer(raw(json_answer({"revision": 8, "result": {}}), keep=True)) as server:
        async with client_for(server) as client:
            result = await change(client)
    assert result.revision == 8
    [wire] = server.requests
    target = "/v1/organisations/12345678/means/m%201%25%3F%23%C3%A9%E2%98%BA/role"
    assert wire.line == f"POST {target} HTTP/1.1".encode() and sent.url.raw_path == target.encode()
    assert wire.body == b'{"role":"beheerder"}' == sent.content
    for name, value in [("authorization", f"Bearer {TOKEN}".encode()), ("idempotency-key", b"key-1"),
                        ("if-match", b'"7"'), ("content-type", b"application/json"),
                        ("content-length", str(len(wire.body)).encode()), ("accept", b"application/json"),
                        ("host", server.url.removeprefix("http://").encode())]:
        assert wire.values(name) == [value], (name, wire.headers)
    names = [k.lower() for k, _ in wire.headers]
    assert len(names) == len(set(names)), wire.headers               # no header twice
    assert set(names) == {k.lower().encode() for k in sent.headers}    # none added, none lost


async def test_a_query_reaches_the_wire_exactly_as_httpx_built_it() -> None:
    cursor = "a b&c=d/é+%2F?#"

    async def page(client: BeheerClient) -> Any:
        return await client.list_means(KVK, limit=7, cursor=cursor)

    sent = await _as_httpx_sends(page)
    async with RawServer(raw(json_answer({"items": [], "next_cursor": None}), keep=True)) as server:
        async with client_for(server) as client:
            assert (await page(client)).items == ()
    [wire] = server.requests
    assert wire.line == b"GET " + sent.url.raw_path + b" HTTP/1.1"
    assert sent.url.raw_path.startswith(b"/v1/organisations/12345678/means?limit=7&cursor=")
    assert httpx.URL(wire.line.split()[1].decode()).params["cursor"] == cursor
    assert wire.body == b"" and wire.values("content-length") in ([], [b"0"])


async def test_a_base_url_with_a_path_and_an_escape_keeps_both() -> None:
    async with RawServer(raw(json_answer(ME), keep=True)) as server:
        async with BeheerClient(f"{server.url}/api%20v/x/", TOKEN, timeouts=QUICK) as client:
            assert isinstance(client.http._transport, AiohttpTransport)
            await client.me()
    assert server.requests[0].line == b"GET /api%20v/x/v1/me HTTP/1.1"


# ----------------------------------------------------------------------------------- which transport, when
PROXY_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable at all (`getproxies` counts any `*_proxy`, NO_PROXY included)."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)


def test_https_without_a_proxy_goes_through_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_proxy_env(monkeypatch)
    client = BeheerClient("https://beheer.example/api", TOKEN)
    pool = client.new_connection()
    assert pool is not None
    assert isinstance(client.http._transport, AiohttpTransport) and isinstance(pool._transport, AiohttpTransport)
    assert pool._transport is not client.http._transport              # a lane's pool is its own
    assert client.http._transport_for_url(client._url("/v1/me")) is client.http._transport


def test_https_with_a_proxy_in_the_environment_goes_through_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    client = BeheerClient("https://beheer.example/api", TOKEN)
    pool = client.new_connection()
    assert pool is not None
    for http in (client.http, pool):
        assert not isinstance(http._transport, AiohttpTransport)
        assert http._transport_for_url(client._url("/v1/me")) is not http._transport    # httpx's proxy route


def test_plain_http_goes_through_aiohttp_even_with_a_proxy_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain http ignores proxies (the token would travel in clear to another host), so aiohttp, which is told
    to ignore them too, takes it."""
    for name in PROXY_NAMES:
        monkeypatch.setenv(name, "http://proxy.example:3128")
    client = BeheerClient("http://10.1.2.3:8700", TOKEN)
    pool = client.new_connection()
    assert pool is not None
    for http in (client.http, pool):
        assert isinstance(http._transport, AiohttpTransport)
        assert http._transport_for_url(client._url("/v1/me")) is http._transport


def test_a_transport_given_is_used_as_given() -> None:
    mock = httpx.MockTransport(lambda request: httpx.Response(200))
    client = BeheerClient("http://127.0.0.1:8700", TOKEN, transport=mock)
    assert client.http._transport is mock
    pool = client.new_connection()
    assert pool is not None and pool._transport is mock


async def test_a_proxy_in_the_environment_does_not_reach_aiohttp(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain-http request with HTTP_PROXY pointing at a dead port still goes straight to the backend."""
    for name in PROXY_NAMES:
        monkeypatch.setenv(name, f"http://127.0.0.1:{closed_port()}")
    async with RawServer(raw(json_answer(ME), keep=True)) as server, client_for(server) as client:
        assert (await client.me()).email == "a@acme.nl"
    assert server.requests[0].line == b"GET /v1/me HTTP/1.1"


# ---------------------------------------------------------------------------------------------- closing
async def test_aclose_closes_the_session_and_a_second_aclose_is_harmless() -> None:
    async with RawServer(raw(json_answer(ME), keep=True)) as server:
        transport = AiohttpTransport(timeout=QUICK.to_httpx())
        async with httpx.AsyncClient(transport=transport, base_url=server.url) as http:
            assert (await http.get("/v1/me")).json() == ME
            session = transport._session
            assert session is not None and not session.closed
        assert session.closed and transport._session is None
        await transport.aclose()                                          # again: nothing to do, no error
        await AiohttpTransport().aclose()                                 # never used: nothing to close


async def test_a_client_s_pools_leave_no_unclosed_session_behind() -> None:
    """`BeheerClient.aclose` and a lane pool's `aclose` close their aiohttp sessions: nothing is left for the
    garbage collector to warn about ("Unclosed client session", "Unclosed connector")."""
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    before = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with RawServer(raw(json_answer(ME), keep=True)) as server:
                async with client_for(server) as client:
                    pool = client.new_connection()
                    assert pool is not None
                    await client.me()
                    await client.over(pool).me()
                    sessions = [client.http._transport._session, pool._transport._session]  # type: ignore[attr-defined]
                    await pool.aclose()
                assert all(s is not None and s.closed for s in sessions)
                del sessions, client, pool
                gc.collect()
                await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(before)
    unclosed = [str(w.message) for w in caught if "nclosed" in str(w.message)]
    assert unclosed == [] and [c.get("message") for c in reported] == []



def test_pools_share_one_tls_context_per_certificate_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Loading the trusted certificates is done once, not per lane; a different SSL_CERT_FILE is another setting,
    loaded for itself."""
    _no_proxy_env(monkeypatch)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    client = BeheerClient("https://beheer.example", TOKEN)
    pools = [client.new_connection() for _ in range(3)]
    contexts = {id(pool._transport._ssl) for pool in pools if pool is not None}      # type: ignore[union-attr]
    assert len(contexts) == 1 and client.http._transport._ssl is pools[0]._transport._ssl  # type: ignore
    import certifi

    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    other = BeheerClient("https://beheer.example", TOKEN)
    assert other.http._transport._ssl is not client.http._transport._ssl      # type: ignore[attr-defined]
    assert BeheerClient("https://beheer.example", TOKEN).http._transport._ssl is other.http._transport._ssl  # type: ignore


async def test_a_long_header_line_httpx_took_is_taken() -> None:
    """A gateway's long header (a policy, a cookie) of 20 kB: httpx's own transport took it, and so does this one;
    aiohttp's default limit of 8 kB would have made it a protocol error."""
    data = json_answer(ME, "200 OK", "X-Policy: " + "a" * 20_000)
    async with RawServer(raw(data, keep=True)) as server, client_for(server) as client:
        assert await client.call("GET", "/v1/me") == ME
