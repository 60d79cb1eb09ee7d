"""The lean HTTP/1.1 transport a `BeheerClient` sends its changes through to a plain-http backend
(`reconciler.backend.http11`): what reaches the wire, how answers are framed, keep-alive, and the httpx
exceptions (and so the client's retries) for a connection that fails."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from reconciler.backend.client import BeheerClient, RetryPolicy
from reconciler.backend.errors import BackendUnreachable
from reconciler.backend.http11 import PlainHTTP11Transport

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
ANSWER = json.dumps({"revision": 8, "result": {"means": None}}).encode()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes] | None:
    """One request off the connection: (request line, headers by lower-case name, body); None at its end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    line, *rest = head[:-4].split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(b":") for h in rest)}
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return line, headers, body


def answer(status: int = 200, body: bytes = ANSWER, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", "content-type: application/json", 'etag: "8"', *extra]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in extra):
        head.append(f"content-length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A raw TCP server on loopback running `handler` per connection; yields (its base URL, the connections
    accepted)."""
    accepted: list[int] = []

    async def each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    srv = await asyncio.start_server(each, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", accepted
    finally:
        srv.close()
        await srv.wait_closed()


def keep_answering(reply: bytes, seen: list[tuple[bytes, dict[bytes, bytes], bytes]]) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            seen.append(request)
            writer.write(reply)
            await writer.drain()
    return handler


async def test_a_change_goes_through_the_lean_transport_with_every_header_and_one_connection() -> None:
    seen: list[tuple[bytes, dict[bytes, bytes], bytes]] = []
    async with server(keep_answering(answer(), seen)) as (url, accepted):
        client = BeheerClient(url, "tok-123")
        assert isinstance(client._lean, PlainHTTP11Transport)
        sibling = client.with_token("tok-456")
        try:
            first = await client.change_role("12345678", "m1", "beheerder", if_match=7, idempotency_key="k1")
            second = await sibling.change_role("12345678", "m2", "gebruiker", if_match=8, idempotency_key="k2")
        finally:
            await client.aclose()
    assert (first.revision, second.revision, first.status, first.attempts) == (8, 8, 200, 1)
    assert len(accepted) == 1                                   # kept alive, shared with the sibling
    line, headers, body = seen[0]
    assert line == b"POST /v1/organisations/12345678/means/m1/role HTTP/1.1"
    assert headers[b"authorization"] == b"Bearer tok-123" and seen[1][1][b"authorization"] == b"Bearer tok-456"
    assert headers[b"if-match"] == b'"7"' and headers[b"idempotency-key"] == b"k1"
    assert headers[b"content-type"] == b"application/json" and headers[b"accept"] == b"application/json"
    assert headers[b"host"] == url.removeprefix("http://").encode()
    assert json.loads(body) == {"role": "beheerder"}


async def test_chunked_gzip_and_connection_close_answers_are_read_whole() -> None:
    packed = gzip.compress(ANSWER)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (packed[:10], packed[10:])) + b"0\r\n\r\n"
    replies = [answer(200, chunked, "transfer-encoding: chunked", "content-encoding: gzip"),
               answer(200, ANSWER, "connection: close")]
    seen: list[tuple[bytes, dict[bytes, bytes], bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await read_request(reader)) is not None:
            seen.append(request)
            writer.write(replies.pop(0))
            await writer.drain()

    async with server(handler) as (url, accepted):
        transport = PlainHTTP11Transport()
        try:
            for _ in range(2):
                response = await transport.handle_async_request(httpx.Request("POST", url + "/x", content=b"{}"))
                await response.aread()
                assert response.json() == json.loads(ANSWER)
            assert len(accepted) == 1 and transport._idle[("127.0.0.1", int(url.rsplit(":", 1)[1]))] == []
        finally:
            await transport.aclose()


async def test_a_connection_dropped_before_the_answer_is_retried_and_reported() -> None:
    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)                                  # read, then hang up without a word

    async with server(drop) as (url, accepted):
        client = BeheerClient(url, "tok", retry=RetryPolicy(attempts=2, base_delay=0.0))
        try:
            with pytest.raises(BackendUnreachable) as caught:
                await client.change_role("12345678", "m1", "beheerder", if_match=1, idempotency_key="k")
        finally:
            await client.aclose()
    assert caught.value.attempts == 2 and len(accepted) == 2         # the broken connection is not reused
    assert "connection dropped before a complete response (RemoteProtocolError: Server disconnected" in str(
        caught.value)


async def test_a_body_cut_short_and_a_silent_server_are_httpx_errors() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(200, ANSWER, f"content-length: {len(ANSWER) + 5}"))
        await writer.drain()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    transport = PlainHTTP11Transport()
    try:
        async with server(short) as (url, _):
            with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
                await transport.handle_async_request(httpx.Request("POST", url + "/x", content=b"{}"))
        async with server(silent) as (url, _):
            request = httpx.Request("POST", url + "/x", content=b"{}", extensions={"timeout": {"read": 0.05}})
            with pytest.raises(httpx.ReadTimeout):
                await transport.handle_async_request(request)
        with pytest.raises(httpx.ConnectError):
            await transport.handle_async_request(httpx.Request("POST", url + "/x", content=b"{}"))  # closed now
    finally:
        await transport.aclose()


async def test_https_and_a_given_transport_keep_httpx_own_path() -> None:
    assert BeheerClient("https://beheer.example", "tok")._lean is None
    given = BeheerClient("http://127.0.0.1:9", "tok", transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    assert given._lean is None
    await given.aclose()
