"""httpx's transport over aiohttp, for a backend reached over the network.

Why: httpx's own transport (httpcore over anyio, h11's pure-Python parser) cost about 0.4 ms of CPU per
request, half of what an apply spends per change; aiohttp parses with llhttp (C) and costs a fifth of that.
The client keeps speaking httpx (its requests, answers, errors and in-process ASGI transport are unchanged):
only the bytes on the wire go through aiohttp. Each answer is read whole here, at most `MAX_ANSWER_BYTES`,
and aiohttp's failures become the httpx errors they are (a dropped connection, a timeout, a refused connect),
so retries and messages stay as they were. One limit is added: an answer's head must come within the sum of
the timeouts (an endless run of interim `1xx` answers hung httpx's transport for ever, as it does aiohttp's).

Not taken from aiohttp: its cookie jar (a server's cookies are neither kept nor sent, as with `_Http`), its
redirects, its decompression and its proxy settings (httpx routes proxied URLs through its own transports, as
before). A compressed answer (gzip or deflate, what the client accepts) is decoded here, to at most
`MAX_ANSWER_BYTES` too: a few megabytes of gzip can hold gigabytes, which httpx would decode whole.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import zlib
from typing import Any

import aiohttp
import httpx
from yarl import URL

#: The largest answer read: a page of 2,000 means that each hold many authorisations stays far below it; an
#: endless or huge body from a broken or hostile backend ends as a transport error rather than filling memory.
MAX_ANSWER_BYTES = 64 * 1024 * 1024

_CHUNK = 256 * 1024

#: The longest status or header line taken. aiohttp's default is 8 kB. httpx (httpcore) took a head of up to
#: 100 kB, and a gateway in front of a backend can send a long policy or cookie header. aiohttp also caps the
#: number of header lines, so a head stays bounded.
MAX_HEADER_LINE = 64 * 1024


class AnswerTooLarge(httpx.RemoteProtocolError):
    """The backend's answer passed `MAX_ANSWER_BYTES`."""


#: zlib's window bits per content coding taken; deflate is tried raw as well (servers send both forms).
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _decoded(content: bytes, coding: str, request: httpx.Request) -> bytes:
    """`content` decoded from `coding`, at most `MAX_ANSWER_BYTES` of it."""
    if coding not in _CODINGS:
        raise httpx.RemoteProtocolError(f"the answer is encoded as {coding[:40]!r}, which is not taken (gzip and "
                                        "deflate are)", request=request)
    for wbits in (_CODINGS[coding], -zlib.MAX_WBITS) if coding == "deflate" else (_CODINGS[coding],):
        decoder = zlib.decompressobj(wbits)
        try:
            out = decoder.decompress(content, MAX_ANSWER_BYTES + 1)
        except zlib.error as exc:
            error = exc
            continue
        if len(out) > MAX_ANSWER_BYTES or decoder.unconsumed_tail:
            raise AnswerTooLarge(f"the answer decodes to more than the {MAX_ANSWER_BYTES} bytes taken",
                                 request=request)
        return out
    raise httpx.RemoteProtocolError(f"the answer's {coding} does not decode ({error})", request=request)


def _cert_env() -> tuple[str | None, str | None]:
    """Where httpx looks for trusted certificates besides certifi's bundle, when it trusts the environment."""
    return os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")


@functools.lru_cache(maxsize=8)
def _context(verify: bool, trust_env: bool, cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """httpx's TLS context, made once per setting (loading the trusted certificates took 20 ms, for each of an
    apply's connection pools); aiohttp only reads it. The certificate settings are part of the key."""
    return httpx.create_ssl_context(verify=verify, trust_env=trust_env)


def _mapped(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    """aiohttp's failure as the httpx error the client knows how to retry and describe."""
    text = str(exc) or type(exc).__name__
    kind: type[httpx.TransportError]
    if isinstance(exc, (aiohttp.InvalidUrlClientError, aiohttp.NonHttpUrlClientError)):
        kind = httpx.UnsupportedProtocol
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout
    elif isinstance(exc, (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        kind = httpx.ReadTimeout
    elif isinstance(exc, aiohttp.ClientConnectorError):        # refused, unknown host, TLS handshake refused
        kind = httpx.ConnectError
    elif isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                          aiohttp.ClientResponseError)):      # closed early, a broken body, an answer not HTTP
        kind = httpx.RemoteProtocolError
    elif isinstance(exc, (aiohttp.ClientOSError, ConnectionError)):
        kind = httpx.ReadError
    else:
        kind = httpx.TransportError
    return kind(text, request=request)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (one connection pool) per transport, made at the first request (it needs the running
    event loop). `limit` caps its connections, as httpx's pool limits did."""

    def __init__(self, *, verify: ssl.SSLContext | bool = True, trust_env: bool = True,
                 timeout: httpx.Timeout | None = None, limit: int = 100) -> None:
        self._ssl: ssl.SSLContext = (verify if isinstance(verify, ssl.SSLContext) else
                                     _context(verify, trust_env, *(_cert_env() if trust_env else (None, None))))
        self._limit = limit
        self._default = timeout or httpx.Timeout(5.0)
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[Any, ...], tuple[aiohttp.ClientTimeout, float | None]] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._limit)
        self._session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, trust_env=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            max_line_size=MAX_HEADER_LINE, max_field_size=MAX_HEADER_LINE)
        return self._session

    def _timeout(self, request: httpx.Request) -> tuple[aiohttp.ClientTimeout, float | None]:
        """httpx's per-request timeouts in aiohttp's terms (aiohttp has no separate write timeout: a write that
        cannot finish ends in the read timeout that follows it), and the most the answer's head may take: the
        timeouts' sum. An answer that sends its head at once is never near it; one that sends interim `1xx`
        answers (or header lines) without end would otherwise hold the request for ever, as every read gets
        bytes before the read timeout."""
        given = request.extensions.get("timeout") or {}
        key = (given.get("connect"), given.get("read"), given.get("write"), given.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            connect, read, write, pool = (key[0] if "connect" in given else self._default.connect,
                                          key[1] if "read" in given else self._default.read,
                                          key[2] if "write" in given else self._default.write,
                                          key[3] if "pool" in given else self._default.pool)
            head = None if None in (connect, read, pool) else connect + read + pool + (write or 0.0)
            found = self._timeouts[key] = (aiohttp.ClientTimeout(
                total=None, connect=None if connect is None or pool is None else connect + pool,
                sock_connect=connect, sock_read=read), head)
        return found

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        timeout, head = self._timeout(request)
        deadline = asyncio.timeout(head)
        try:
            async with deadline, session.request(
                    request.method, URL(str(request.url), encoded=True), headers=request.headers.multi_items(),
                    data=body or None, allow_redirects=False, timeout=timeout) as answer:
                deadline.reschedule(None)           # the head is in: from here each read has its own timeout
                content = await self._read(answer, request)
                status, headers, reason = answer.status, answer.raw_headers, answer.reason
                coding = answer.headers.get("Content-Encoding", "").strip().lower()
        except httpx.TransportError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
            if deadline.expired():
                raise httpx.ReadTimeout(f"no complete answer head within {head:g} s", request=request) from None
            raise _mapped(exc, request) from None
        if coding and coding != "identity":
            content = _decoded(content, coding, request)
            headers = [(k, v) for k, v in headers if k.lower() not in (b"content-encoding", b"content-length")]
        extensions = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason.encode("latin-1", "replace")
        return httpx.Response(status, headers=list(headers), content=content, request=request,
                              extensions=extensions)

    @staticmethod
    async def _read(answer: aiohttp.ClientResponse, request: httpx.Request) -> bytes:
        length = answer.content_length
        if length is not None and length > MAX_ANSWER_BYTES:
            raise AnswerTooLarge(f"the answer announces {length} bytes, more than the {MAX_ANSWER_BYTES} taken",
                                 request=request)
        if length is not None:
            return await answer.read()
        parts: list[bytes] = []
        size = 0
        async for chunk in answer.content.iter_chunked(_CHUNK):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise AnswerTooLarge(f"the answer is longer than the {MAX_ANSWER_BYTES} bytes taken",
                                     request=request)
            parts.append(chunk)
        return b"".join(parts)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
