"""A lean HTTP/1.1 keep-alive transport for plain-http backends (a served sandbox on loopback), for the requests
`BeheerClient` sends straight to a transport (its changes).

Why: applying 10,000 changes, httpcore (its connection pool, anyio streams, a timeout scope per read and write,
h11's pure-Python state machine) was half of the applying process's CPU per change, and it wrote each request
in two segments (head, then body), so the server parsed and woke up twice. Here a request is one write, and
the answer is read with asyncio's stream reader: the status line and headers at once, then the body by its
Content-Length (or its chunks, or up to the end of the connection). What it keeps of httpx's contract: the
same exceptions for the same failures (`ConnectError`, `ConnectTimeout`, `ReadTimeout`, `WriteTimeout`,
`ReadError`, `WriteError`, `RemoteProtocolError` for a connection closed before a whole answer), a body read
in full before the response is returned (content-encoding is decoded by `Response.aread`), idle connections
kept for 5 s and at most 20 of them (httpx's defaults), and a connection never reused after an error or a
cancellation (its state is unknown). https, proxies and streaming bodies stay with httpx's own transport.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx

#: httpx's defaults (`httpx.Limits`): idle connections kept, and for how long.
MAX_IDLE = 20
IDLE_EXPIRY = 5.0
#: The most a status line and headers may take (h11's own limit is 16 kB of headers; a little room more).
MAX_HEAD = 64 * 1024


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default_factory=time.monotonic)

    def usable(self) -> bool:
        """Still open, nothing unread from the server (bytes between answers: the connection is out of step), and
        not idle too long."""
        reader = self.reader
        return (not self.writer.is_closing() and not reader.at_eof() and not reader._buffer  # type: ignore[attr-defined]
                and time.monotonic() - self.idle_since < IDLE_EXPIRY)

    def close(self) -> None:
        self.writer.close()


class PlainHTTP11Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over plain TCP with keep-alive, one request per connection at a time (as httpcore does)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"this transport speaks plain http, not {url.scheme!r}", request=request)
        timeout = request.extensions.get("timeout", {})
        address = (url.host, url.port or 80)
        connection = self._take(address) or await self._connect(address, timeout.get("connect"), request)
        try:
            await _write(connection, _head(request) + request.content, timeout.get("write"), request)
            response, reusable = await _read_response(connection, request, timeout.get("read"))
        except BaseException:
            connection.close()
            raise
        if reusable:
            self._give_back(address, connection)
        else:
            connection.close()
        return response

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _take(self, address: tuple[str, int]) -> _Connection | None:
        connections = self._idle.get(address)
        while connections:
            connection = connections.pop()
            if connection.usable():
                return connection
            connection.close()
        return None

    def _give_back(self, address: tuple[str, int], connection: _Connection) -> None:
        connections = self._idle.setdefault(address, [])
        if len(connections) >= MAX_IDLE:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        connections.append(connection)

    @staticmethod
    async def _connect(address: tuple[str, int], seconds: float | None, request: httpx.Request) -> _Connection:
        try:
            async with asyncio.timeout(seconds):
                reader, writer = await asyncio.open_connection(*address, limit=MAX_HEAD)
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out while connecting", request=request) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc), request=request) from None
        return _Connection(reader, writer)


def _head(request: httpx.Request) -> bytes:
    """The request line and headers, as httpx has them (Host, Content-Length and the rest, in its order)."""
    lines = [b"%s %s HTTP/1.1" % (request.method.encode("ascii"), request.url.raw_path)]
    lines.extend(name + b": " + value for name, value in request.headers.raw)
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def _write(connection: _Connection, data: bytes, seconds: float | None, request: httpx.Request) -> None:
    try:
        connection.writer.write(data)
        async with asyncio.timeout(seconds):
            await connection.writer.drain()
    except TimeoutError:
        raise httpx.WriteTimeout("timed out while sending the request", request=request) from None
    except OSError as exc:
        raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from None


async def _read(pending: Coroutine[Any, Any, bytes], seconds: float | None, request: httpx.Request,
                what: str) -> bytes:
    """One read, within the read timeout; a closed connection or a socket error as httpx names them."""
    try:
        async with asyncio.timeout(seconds):
            return await pending
    except TimeoutError:
        raise httpx.ReadTimeout("timed out while reading the response", request=request) from None
    except asyncio.IncompleteReadError as exc:
        if what == "head" and not exc.partial:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                            request=request) from None
        raise httpx.RemoteProtocolError(f"peer closed connection without sending complete message {what}",
                                        request=request) from None
    except asyncio.LimitOverrunError:
        raise httpx.RemoteProtocolError(f"the response's {what} is too large", request=request) from None
    except OSError as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from None


async def _read_response(connection: _Connection, request: httpx.Request,
                         seconds: float | None) -> tuple[httpx.Response, bool]:
    """The next final response (interim 1xx ones skipped) with its whole body; and whether the connection can
    carry another request."""
    reader = connection.reader
    while True:
        head = await _read(reader.readuntil(b"\r\n\r\n"), seconds, request, "head")
        status, reason, version, headers = _parse_head(head, request)
        if not 100 <= status < 200:
            break
    tokens = {t.strip().lower() for name, value in headers if name.lower() == b"connection" for t in value.split(b",")}
    reusable = version == b"HTTP/1.1" and b"close" not in tokens
    length = [value for name, value in headers if name.lower() == b"content-length"]
    chunked = any(name.lower() == b"transfer-encoding" and b"chunked" in value.lower() for name, value in headers)
    if request.method == "HEAD" or status in (204, 304):
        body = b""
    elif chunked:
        body = await _read_chunks(reader, seconds, request)
    elif length:
        try:
            size = int(length[0])
        except ValueError:
            raise httpx.RemoteProtocolError("the response's Content-Length is not a number", request=request) from None
        body = await _read(reader.readexactly(size), seconds, request, "body") if size else b""
    else:
        body = await _read(reader.read(), seconds, request, "body")        # up to the end of the connection
        reusable = False
    response = httpx.Response(status, headers=headers, stream=httpx.ByteStream(body), request=request,
                              extensions={"http_version": version, "reason_phrase": reason})
    return response, reusable


async def _read_chunks(reader: asyncio.StreamReader, seconds: float | None, request: httpx.Request) -> bytes:
    parts: list[bytes] = []
    while True:
        line = await _read(reader.readuntil(b"\r\n"), seconds, request, "body")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise httpx.RemoteProtocolError("a malformed chunk size in the response", request=request) from None
        if size == 0:
            while (await _read(reader.readuntil(b"\r\n"), seconds, request, "body")) != b"\r\n":
                pass                                                     # trailers, if any
            return b"".join(parts)
        chunk = await _read(reader.readexactly(size + 2), seconds, request, "body")
        parts.append(chunk[:-2])


def _parse_head(head: bytes, request: httpx.Request) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if not version.startswith(b"HTTP/1.") or not code.isdigit() or len(code) != 3:
        raise httpx.RemoteProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}", request=request)
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise httpx.RemoteProtocolError(f"a malformed response header: {line[:80]!r}", request=request)
        headers.append((name, value.strip()))
    return int(code), reason, version, headers
