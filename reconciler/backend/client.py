"""`BeheerClient`: the one way the reconciler talks to a beheer backend (docs/beheer-api.md, API v1).

Everything that is not about eHerkenning lives here, once: the bearer token (kept in a `Secret` and
redacted from every message), timeouts, retries with exponential backoff and full jitter (429, 502-504,
timeouts, dropped connections), `Retry-After`, an `Idempotency-Key` on every mutation that stays the same
across retries (so a retry after "committed, then the connection dropped" cannot apply a step twice),
`If-Match` revisions, pagination, and the mapping of problem+json answers onto `reconciler.backend.errors`.
The embedded sandbox and a remote server are reached through this same code (`reconciler.backend.connect`).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import os
import random as _random
import re
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from collections.abc import Mapping    # not typing.Mapping: an isinstance through it costs 4x
from http.cookiejar import Cookie, CookieJar
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, TypeVar
from urllib.parse import quote
from urllib.request import getproxies

import anyio
import httpx
from pydantic_core import from_json

from reconciler.backend.errors import (
    BackendError, BackendUnreachable, ConfigurationError, UnexpectedResponse, error_class_for,
)
from reconciler.backend.types import (
    Me, MutationResult, Page, RemoteAuthorisation, RemoteChain, RemoteEvent, RemoteMeans, RemoteOrganisation,
    RemoteService, Secret, TerminationMode, authorisation_fields,
)
from reconciler.config.models import MeansType, Role, SecondFactorType, Subscription
from reconciler.domain.wire import json_value
from reconciler.domain.levels import Level

log = logging.getLogger("reconciler.backend")

T = TypeVar("T")

#: The environment variable a remote backend's token is read from (never from a file or an argument).
TOKEN_ENV = "BEHEER_API_TOKEN"
#: Largest page the contract allows (docs/beheer-api.md); the helpers always ask for it to keep round trips down:
#: reading 100,000 authorisations took 200 pages of 500, a fifth of the read spent on the round trips.
MAX_LIMIT = 2000
#: Statuses worth retrying: the server said "not now", not "no".
RETRY_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})
#: Transport failures that retrying cannot heal (a bad URL scheme, a request httpx cannot even build).
_NOT_RETRIED = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)

SleepFn = Callable[[float], Awaitable[None]]
RandomFn = Callable[[], float]


def _sniffio_absent_once() -> None:
    """httpcore asks `import sniffio` which async library runs, for every lock, event and semaphore it makes
    (about four per request). anyio no longer installs sniffio, so each ask was a failed import searching
    sys.path: ~75 us each, a fifth of the applying process's CPU per change. A None in sys.modules makes
    that import fail at once, with the same outcome (httpcore then takes asyncio); an installed sniffio is
    imported as before."""
    try:
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules.setdefault("sniffio", None)  # type: ignore[arg-type]


_sniffio_absent_once()


def token_from_env(env: Mapping[str, str] | None = None) -> Secret:
    """The remote backend's token from `BEHEER_API_TOKEN`, wrapped at once so it cannot leak into output."""
    value = (os.environ if env is None else env).get(TOKEN_ENV, "").strip()
    if not value:
        raise ConfigurationError(
            f"{TOKEN_ENV} is not set: a remote beheer backend needs the API token of an admin in the "
            f"environment variable {TOKEN_ENV} (it is never read from a file or an argument)")
    return Secret(value)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: `attempts` in total (first try included), backoff `base_delay * 2**n` capped at
    `max_delay` with full jitter, and at most `max_total_delay` seconds of sleeping over one request."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_total_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    def backoff(self, retry: int, rand: RandomFn) -> float:
        """Full jitter (uniform in [0, cap]) spreads clients out instead of having them retry in lockstep."""
        cap = min(self.max_delay, self.base_delay * (2 ** retry))
        return rand() * cap


NO_RETRY = RetryPolicy(attempts=1)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds to wait for a connection and for each read/write; a hung backend must not hang an apply."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 5.0

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


class _Redactor:
    """Replaces known secrets in text; applied to everything the backend or httpx says before we repeat it."""

    def __init__(self, *secrets: Secret | None) -> None:
        self._values = sorted({s.reveal() for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, "***")
        return text


class _TokenRedaction:
    """Blanks every token a client was given in every log record made in this process (message and
    arguments), whichever logger makes it: a token must not reach a log even through another library's
    log call. Installed as a wrapper of the log record factory."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(self._record)

    def add(self, secret: Secret | None) -> None:
        if secret:
            self._secrets.add(secret.reveal())

    def _record(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self._factory(*args, **kwargs)
        if self._secrets:
            try:
                text = record.getMessage()
            except Exception:  # a malformed record is not ours to fix
                return record
            if any(s in text for s in self._secrets):
                for s in sorted(self._secrets, key=len, reverse=True):
                    text = text.replace(s, "***")
                record.msg, record.args = text, None
        return record


REDACTION = _TokenRedaction()


class _NoCookies(CookieJar):
    """A jar that takes no cookie, however it is offered (`cookies[...] =`, `.set`, `.update` all end here)."""

    def set_cookie(self, cookie: Cookie) -> None:
        return None


class _Jarless(httpx.Cookies):
    """A cookie jar that keeps nothing (see `_Http`): not a server's Set-Cookie, nor a cookie put in by code."""

    def __init__(self) -> None:
        super().__init__(_NoCookies())

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _Http(httpx.AsyncClient):
    """httpx's client without a cookie jar. The API authenticates every request by its token, so a cookie a
    server sets is neither kept nor sent back; reading each answer's Set-Cookie through `http.cookiejar` was
    also 5% of an apply's CPU."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._jarless = _Jarless()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._jarless

    @cookies.setter
    def cookies(self, value: Any) -> None:
        """Cookies set on the client are not kept either."""


def _pool(options: dict[str, Any]) -> _Http:
    """A connection pool made from `BeheerClient`'s options. A backend on the network is reached through aiohttp
    (`aiohttp_transport`: a fifth of httpcore's CPU per request), a fresh pool each time, unless a proxy from
    the environment applies (https only): httpx's own transports take those, by httpx's rules, as before. A
    transport the caller gave (an in-process app, a test's) is used as given."""
    if (options["transport"] is None and str(options["base_url"]).lower().startswith(("http://", "https://"))
            and not (options["trust_env"] and any(scheme != "no" for scheme in getproxies()))):
        from reconciler.backend.aiohttp_transport import AiohttpTransport   # aiohttp's import only when used

        transport = AiohttpTransport(trust_env=options["trust_env"], timeout=options["timeout"])
        return _Http(**{**options, "transport": transport})
    return _Http(**options)


#: Absolute URLs kept per client (`BeheerClient._url`): enough for the paths that repeat (an organisation's
#: lists and bulk steps); a path of one means is seldom asked twice.
_URLS_KEPT = 512


class _BearerAuth(httpx.Auth):
    """Adds the bearer header at send time, so the token lives in no default header a repr could show."""

    def __init__(self, token: Secret) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


def _wire(value: Any) -> Any:
    """The JSON the contract expects; None values are left out (the backend's defaults apply)."""
    return json_value(value, drop_none=True)


def _second_factor(kind: SecondFactorType | str | None, phone: str | None) -> dict[str, Any] | None:
    if kind is None:
        if phone is not None:
            raise ValueError("a phone number needs second_factor=sms")
        return None
    return {"type": _wire(kind), "phone": phone}


#: Most digits a revision read from an ETag may have: a longer one is no revision (and `int` refuses one of
#: 4,300 digits with a ValueError of its own).
_MAX_REVISION_DIGITS = 19


def _revision_from_etag(value: str | None) -> int | None:
    """`"12"` or `W/"12"` -> 12; None when absent or not a number. Only ASCII digits count: `str.isdigit` also
    takes `²` or `٣` (a header decoded as Latin-1 or UTF-8 can hold them), which `int` refuses or misreads."""
    if not value:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_REVISION_DIGITS):
        return None
    return int(text)


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (the contract), or an HTTP date (RFC 9110 allows it); None if unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:                                    # a year past 9999 or the C int range is OverflowError, not ValueError
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        return max(0.0, (when - dt.datetime.now(dt.timezone.utc)).total_seconds())
    except (TypeError, ValueError, OverflowError):
        return None


def _decode_json(response: httpx.Response) -> Any:
    """The body's JSON as `response.json()` gives it. pydantic-core's parser takes a UTF-8 body first, a third
    faster (a read of 10,000 means and their 100,000 authorisations is 20 MB of JSON: 0.14 -> 0.10 s); what it
    refuses (a BOM, UTF-16, a lone surrogate escape, bad JSON) goes to `response.json()`, which then answers or
    fails as it always did. Where both parse, the values are the same (tested)."""
    charset = response.charset_encoding
    if charset is None or charset.lower() in ("utf-8", "utf8"):
        try:
            return from_json(response.content)
        except ValueError:
            pass
    try:
        return response.json()
    except RecursionError:              # arrays nested past Python's recursion limit: not JSON we can read
        raise ValueError("the JSON is nested too deeply") from None


#: What a problem's `code` may look like (`R4`, `not-found`, `idempotency-mismatch`): the message names it as it
#: is, so a code of another shape (a line break, an escape, the token echoed back) is not kept.
_PROBLEM_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Most characters of a backend's explanation, or a cursor, that a message repeats.
_MAX_DETAIL = 500
#: Most characters of a problem's string `detail` or `title` a message repeats.
_MAX_SHOWN = 2000
#: Longest `next_cursor` taken: it is sent back in the next page's URL, and a URL past httpx's 65,536 characters
#: is `httpx.InvalidURL` (no transport error: an internal error).
_MAX_CURSOR = 4096
#: Empty pages in a row, each with a next cursor, after which a list is taken to never end.
_MAX_EMPTY_PAGES = 100

#: What a path segment may hold as it is (RFC 3986 `pchar` but `%`): everything else is percent-escaped.
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"


def _segment(value: str) -> str:
    """A path segment from an identifier (the backend's own ids are hostile too): refuses what would change the
    path's shape (a slash, `.`, `..`), and escapes what would end the path early (`?`, `#`) or be read as an
    escape (`%`), so the request names exactly that id and no other (an id `m1#x` must not act on `m1`)."""
    text = str(value)
    if not text or "/" in text or text in {".", ".."}:
        raise ValueError(f"invalid identifier in a URL path: {text!r}")
    return quote(text, safe=_SEGMENT_SAFE)


def _org_list(name: str, parse: Callable[[Any], T], resource: str | None = None) -> tuple[
        Callable[..., Awaitable[Page[T]]], Callable[..., AsyncIterator[T]], Callable[..., Awaitable[list[T]]]]:
    """The three ways to read one of an organisation's lists (`/v1/organisations/{kvk}/<resource>`), as client
    methods: one page (`list_<name>(kvk, limit=, cursor=)`), every item streamed page by page (`iter_<name>(kvk,
    limit=)`) and every item at once (`list_all_<name>(kvk, limit=)`). Declared once, so each list only names
    its name, its parser and, where it differs from the name, its path."""
    resource = resource or name

    async def page(self: BeheerClient, kvk: str, *, limit: int = MAX_LIMIT, cursor: str | None = None) -> Page[T]:
        return await self._page(f"{self._org(kvk)}/{resource}", parse, limit, cursor)

    def stream(self: BeheerClient, kvk: str, *, limit: int = MAX_LIMIT) -> AsyncIterator[T]:
        return self._iter(f"{self._org(kvk)}/{resource}", parse, limit)

    async def every(self: BeheerClient, kvk: str, *, limit: int = MAX_LIMIT) -> list[T]:
        return await self._all(f"{self._org(kvk)}/{resource}", parse, limit)

    for method, prefix in ((page, "list_"), (stream, "iter_"), (every, "list_all_")):
        method.__name__ = prefix + name
        method.__qualname__ = f"BeheerClient.{method.__name__}"
    return page, stream, every


class BeheerClient:
    """An async client for the beheer API v1. Use as `async with BeheerClient(...) as client:`.

    Reads return typed objects (`reconciler.backend.types`); mutations return `MutationResult` and take
    `if_match=` (the revision the plan was made on) and `idempotency_key=` (derived from the plan by the
    apply step; a fresh uuid4 otherwise). Failures raise `reconciler.backend.errors.BackendError`
    subclasses. `request_counts` counts the HTTP requests sent through the typed methods, by method,
    retries included.
    """

    def __init__(self, base_url: str, token: Secret | str | None = None, *,
                 transport: httpx.AsyncBaseTransport | None = None, http: httpx.AsyncClient | None = None,
                 timeouts: Timeouts | None = None, retry: RetryPolicy | None = None,
                 sleep: SleepFn | None = None, rand: RandomFn | None = None,
                 request_counts: Counter[str] | None = None) -> None:
        self._token = Secret(token) if token is not None and not isinstance(token, Secret) else token
        self._redact = _Redactor(self._token)
        REDACTION.add(self._token)
        self._auth: httpx.Auth | None = _BearerAuth(self._token) if self._token else None
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self._sleep: SleepFn = sleep or anyio.sleep
        self._rand: RandomFn = rand or _random.random
        self.request_counts: Counter[str] = request_counts if request_counts is not None else Counter()
        self._owns_http = http is None
        #: How this client's own connection pool was made (`new_connection` makes more like it); None for a pool
        #: given by the caller.
        self._http_options: dict[str, Any] | None = None
        if http is None:
            # Plain http (loopback only, or --allow-insecure-http) ignores HTTP_PROXY / ALL_PROXY / NO_PROXY:
            # through a proxy the token would travel in clear to another host. https keeps them (CONNECT
            # tunnels keep TLS end to end; CI runners often need a proxy).
            plain = base_url.lower().startswith("http://")
            self._http_options = {"base_url": base_url, "transport": transport, "timeout": self.timeouts.to_httpx(),
                                  "headers": {"Accept": "application/json", "Accept-Encoding": "gzip, deflate"},
                                  "follow_redirects": False,
                                  "trust_env": not plain}
            http = _pool(self._http_options)
        #: The underlying httpx client (same transport, no token attached): for `/sandbox` control calls.
        self.http: httpx.AsyncClient = http
        self._urls: dict[str, httpx.URL] = {}

    # ------------------------------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> "BeheerClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool, unless it is shared with the client this one was derived from."""
        if self._owns_http:
            await self.http.aclose()

    def with_token(self, token: Secret | str | None) -> "BeheerClient":
        """A client acting as another admin over the same connection (one token per organisation);
        shares the request counter. Closing it leaves the connection open; close the original."""
        return self._sibling(token, self.http)

    def over(self, http: httpx.AsyncClient) -> "BeheerClient":
        """This client (its token, retries and request counter) over another connection pool, one from
        `new_connection`; closing it leaves that pool open: its maker closes it."""
        return self._sibling(self._token, http)

    def new_connection(self) -> httpx.AsyncClient | None:
        """A connection pool made like this client's own (base URL, transport, timeouts, proxies), for one of
        several tasks that send at once, so they do not wait on each other for a connection. With httpx's own
        transport (an https backend behind a proxy) it is also cheaper: httpcore looks at each connection of its
        pool at every request, and four tasks over four pools of one connection cost less than over one pool of
        four (5% of an apply's CPU). The caller closes it. None when this client was given its pool (there is nothing to copy)."""
        return _pool(self._http_options) if self._http_options is not None else None

    def _sibling(self, token: Secret | str | None, http: httpx.AsyncClient) -> "BeheerClient":
        sibling = BeheerClient(str(http.base_url), token, http=http, timeouts=self.timeouts, retry=self.retry,
                               sleep=self._sleep, rand=self._rand, request_counts=self.request_counts)
        sibling._owns_http = False
        sibling._http_options = self._http_options
        return sibling

    def redact(self, text: str) -> str:
        """`text` with this client's token blanked: for a message made elsewhere of what the backend sent."""
        return self._redact(text)

    @property
    def has_token(self) -> bool:
        return bool(self._token)

    @property
    def requests_total(self) -> int:
        return sum(self.request_counts.values())

    def __repr__(self) -> str:
        return f"BeheerClient(base_url={str(self.http.base_url)!r}, token={'***' if self._token else None})"

    # ------------------------------------------------------------------------------------------- transport
    async def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                       body: Mapping[str, Any] | None = None, mutating: bool = False,
                       if_match: int | None = None, idempotency_key: str | None = None) -> httpx.Response:
        """Send one logical request, retrying what is retryable; returns a 2xx response or raises."""
        response, _ = await self._send(method, path, params=params, body=body, mutating=mutating,
                                       if_match=if_match, idempotency_key=idempotency_key)
        return response

    async def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                    body: Mapping[str, Any] | None = None, mutating: bool = False,
                    if_match: int | None = None, idempotency_key: str | None = None) -> tuple[httpx.Response, int]:
        """`_request`, also returning how many attempts it took (the audit log records it)."""
        headers: dict[str, str] = {}
        if mutating:
            headers["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
            if if_match is not None:
                headers["If-Match"] = f'"{int(if_match)}"'
        elif if_match is not None or idempotency_key is not None:
            raise ValueError("if_match and idempotency_key apply to mutating requests only")
        content = json.dumps(_wire(body), separators=(",", ":")).encode() if body is not None else None
        if content is not None:
            headers["Content-Type"] = "application/json"
        query = {k: _wire(v) for k, v in (params or {}).items() if v is not None}

        policy = self.retry
        slept = 0.0
        attempt = 0
        while True:
            attempt += 1
            self.request_counts[method] += 1
            failure: BackendError
            wait: float | None = None
            try:
                response = await self.http.request(method, self._url(path), params=query or None, content=content,
                                                   headers=headers, auth=self._auth or httpx.USE_CLIENT_DEFAULT)
            except _NOT_RETRIED as exc:
                raise BackendUnreachable(self._transport_detail(exc), method=method, path=path,
                                         attempts=attempt) from None
            except (httpx.TransportError, httpx.DecodingError) as exc:     # a body that does not decode too
                failure = BackendUnreachable(self._transport_detail(exc), method=method, path=path,
                                             attempts=attempt)
                log.debug("%s %s: attempt %d failed: %s", method, path, attempt, self._transport_detail(exc))
            else:
                log.debug("%s %s -> %d (attempt %d)", method, path, response.status_code, attempt)
                if response.is_success:
                    return response, attempt
                failure = self._problem(response, method, path, attempt)
                if response.status_code not in RETRY_STATUSES:
                    raise failure
                wait = failure.retry_after

            if attempt >= policy.attempts:
                raise failure
            delay = wait if wait is not None else policy.backoff(attempt - 1, self._rand)
            remaining = policy.max_total_delay - slept
            if wait is not None and wait > remaining:
                log.info("%s %s: backend asks to wait %.1fs, more than the retry budget; giving up",
                         method, path, wait)
                raise failure
            if wait is None and remaining <= 0:
                raise failure               # the delay budget is spent: do not hammer without pause
            delay = min(delay, remaining)
            log.info("%s %s: %s; retrying in %.2fs (attempt %d of %d)", method, path,
                     failure.code or failure.status, delay, attempt + 1, policy.attempts)
            await self._sleep(delay)
            slept += delay

    def _url(self, path: str) -> httpx.URL:
        """`path` under the base URL, as httpx joins them, parsed once: a path repeats for every step of its kind
        in an organisation, and parsing it again for each request was 5% of an apply's CPU."""
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _URLS_KEPT:
                self._urls.clear()
            base = self.http.base_url
            url = self._urls[path] = base.copy_with(raw_path=base.raw_path + httpx.URL(path).raw_path.lstrip(b"/"))
        return url

    def _transport_detail(self, exc: httpx.TransportError | httpx.DecodingError) -> str:
        kind = {httpx.TimeoutException: "timed out", httpx.ConnectError: "connection failed",
                httpx.RemoteProtocolError: "connection dropped before a complete response",
                httpx.DecodingError: "an answer that does not decode"}
        what = next((text for cls, text in kind.items() if isinstance(exc, cls)), "transport error")
        text = self._redact(str(exc)).strip()
        return f"{what} ({type(exc).__name__}{': ' + text if text else ''})"

    def _problem(self, response: httpx.Response, method: str, path: str, attempt: int) -> BackendError:
        """An error response as the typed exception: problem+json fields when present, else the body text."""
        code: str | None = None
        title: str | None = None
        detail = ""
        try:
            data = _decode_json(response)
        except ValueError:                      # not JSON, or arrays nested past the recursion limit
            data = None
        if isinstance(data, Mapping):
            raw_code = data.get("code")
            code = raw_code if isinstance(raw_code, str) and _PROBLEM_CODE.fullmatch(raw_code) else None
            title = data.get("title") if isinstance(data.get("title"), str) else None
            raw = data.get("detail")
            if isinstance(raw, str):
                detail = raw
            elif raw is not None:           # e.g. a framework's list of validation errors
                try:
                    detail = self._redact(json.dumps(raw, ensure_ascii=False))[:_MAX_DETAIL]
                except RecursionError:
                    detail = "(a detail nested too deeply to show)"
        elif response.text:                 # redacted before it is cut: a cut could keep the token's first half
            detail = self._redact(response.text.strip())[:300]
        cls = error_class_for(response.status_code, code)
        return cls(self._shown(detail), status=response.status_code, code=code,
                   title=self._shown(title) if title else None, method=method, path=path, attempts=attempt,
                   retry_after=_retry_after(response.headers.get("Retry-After")))

    def _shown(self, text: str) -> str:
        """A backend's detail or title as a message repeats it: redacted, then at most `_MAX_SHOWN` characters (a
        megabyte of detail would be a megabyte on the terminal and in the audit log, once per attempt)."""
        text = self._redact(text)
        return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "\u2026"

    def _json(self, response: httpx.Response, method: str, path: str) -> Any:
        try:
            return _decode_json(response)
        except ValueError:
            raise UnexpectedResponse("the body is not JSON", status=response.status_code, method=method,
                                     path=path) from None

    def _parse(self, parse: Callable[[Any], T], data: Any, method: str, path: str, status: int) -> T:
        """Run a `types` parser; off-contract data becomes `UnexpectedResponse` (one place fails loudly)."""
        try:
            return parse(data)
        except (ValueError, KeyError, TypeError) as exc:
            detail = self._redact(f"{type(exc).__name__}: {exc}")
            raise UnexpectedResponse(detail, status=status, method=method, path=path) from None

    async def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                   body: Mapping[str, Any] | None = None) -> Any:
        """A raw JSON call with the same retries and error mapping, for paths outside the contract (the
        sandbox's `/sandbox` controls)."""
        response = await self._request(method, path, params=params, body=body)
        return self._json(response, method, path)

    async def _get(self, path: str, parse: Callable[[Any], T], params: Mapping[str, Any] | None = None) -> T:
        response = await self._request("GET", path, params=params)
        return self._parse(parse, self._json(response, "GET", path), "GET", path, response.status_code)

    async def _mutate(self, method: str, path: str, body: Mapping[str, Any] | None, *, if_match: int | None,
                      idempotency_key: str | None) -> MutationResult:
        response, attempts = await self._send(method, path, body=body, mutating=True, if_match=if_match,
                                              idempotency_key=idempotency_key)
        data: Any = self._json(response, method, path) if response.content else {}
        etag = _revision_from_etag(response.headers.get("ETag"))

        def parse(d: Any) -> MutationResult:
            if not isinstance(d, Mapping):
                raise ValueError("a mutation answer should be a JSON object {revision, result}")
            revision = d.get("revision", etag)
            if isinstance(revision, bool) or not isinstance(revision, int):
                raise ValueError(f"'revision' should be an integer, got {revision!r}")
            result = d.get("result") or {}
            if not isinstance(result, Mapping):
                raise ValueError("'result' should be a JSON object")
            return MutationResult(revision=revision, result=result, status=response.status_code, attempts=attempts,
                                  replayed=response.headers.get("Idempotent-Replayed") == "true")

        return self._parse(parse, data, method, path, response.status_code)

    async def _page(self, path: str, parse_item: Callable[[Any], T], limit: int, cursor: str | None) -> Page[T]:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}, got {limit}")

        def parse(data: Any) -> Page[T]:
            if not isinstance(data, Mapping) or not isinstance(data.get("items"), list):
                raise ValueError("a list answer should be a JSON object with an 'items' list")
            nxt = data.get("next_cursor")
            if nxt is not None and not isinstance(nxt, str):
                raise ValueError("'next_cursor' should be a string or null")
            if nxt is not None and len(nxt) > _MAX_CURSOR:   # it goes into the next URL, which httpx caps at 64 KiB
                raise ValueError(f"'next_cursor' is {len(nxt)} characters long, more than {_MAX_CURSOR}")
            return Page(items=tuple(map(parse_item, data["items"])), next_cursor=nxt or None)

        return await self._get(path, parse, {"limit": limit, "cursor": cursor})

    async def _pages(self, path: str, parse_item: Callable[[Any], T], limit: int) -> AsyncIterator[Page[T]]:
        """Every page of a list endpoint, following `next_cursor`. A backend that would keep this going for ever is
        refused: a cursor seen twice, a page seen twice under a fresh cursor each time (its first item opened an
        earlier page: items of a list are distinct), or more than `_MAX_EMPTY_PAGES` empty pages in a row."""
        cursor: str | None = None
        seen: set[str] = set()
        firsts: set[str] = set()
        empty = 0
        while True:
            page = await self._page(path, parse_item, limit, cursor)
            yield page
            if page.next_cursor is None:
                return
            if page.next_cursor in seen:
                cursor_text = self._redact(repr(page.next_cursor))[:_MAX_DETAIL]
                raise UnexpectedResponse(f"the backend returned cursor {cursor_text} twice", method="GET", path=path)
            seen.add(page.next_cursor)
            cursor = page.next_cursor
            if page.items:
                empty = 0
                first = repr(page.items[0])
                if first in firsts:
                    raise UnexpectedResponse("the backend returned the same page twice (under another cursor)",
                                             method="GET", path=path)
                firsts.add(first)
            else:
                empty += 1
                if empty > _MAX_EMPTY_PAGES:
                    raise UnexpectedResponse(f"the backend returned {empty} empty pages in a row, each with a next "
                                             "cursor", method="GET", path=path)

    async def _iter(self, path: str, parse_item: Callable[[Any], T], limit: int) -> AsyncIterator[T]:
        """Every item of a list endpoint, page by page."""
        async for page in self._pages(path, parse_item, limit):
            for item in page.items:
                yield item

    async def _all(self, path: str, parse_item: Callable[[Any], T], limit: int) -> list[T]:
        """Every item of a list endpoint at once (collected by page: an async step per item cost more)."""
        items: list[T] = []
        async for page in self._pages(path, parse_item, limit):
            items.extend(page.items)
        return items

    @staticmethod
    def _org(kvk: str) -> str:
        return f"/v1/organisations/{_segment(kvk)}"

    # -------------------------------------------------------------------------------------------- reads
    async def me(self) -> Me:
        """The acting admin the token belongs to."""
        return await self._get("/v1/me", Me.parse)

    async def list_organisations(self, *, limit: int = MAX_LIMIT) -> list[RemoteOrganisation]:
        """Organisations the acting admin is linked to (follows cursors if the backend pages them)."""
        return await self._all("/v1/organisations", RemoteOrganisation.parse, limit)

    async def get_organisation(self, kvk: str) -> RemoteOrganisation:
        """One organisation with its revision (from the body, else the ETag)."""
        path = self._org(kvk)
        response = await self._request("GET", path)
        etag = _revision_from_etag(response.headers.get("ETag"))
        return self._parse(lambda d: RemoteOrganisation.parse(d, etag_revision=etag),
                           self._json(response, "GET", path), "GET", path, response.status_code)

    list_means, iter_means, list_all_means = _org_list("means", RemoteMeans.parse)

    async def get_means(self, kvk: str, means_id: str) -> RemoteMeans:
        return await self._get(f"{self._org(kvk)}/means/{_segment(means_id)}", RemoteMeans.parse)

    list_authorisations, iter_authorisations, list_all_authorisations = _org_list(
        "authorisations", RemoteAuthorisation.parse)
    async def authorisation_ends(self, kvk: str, *, limit: int = MAX_LIMIT) -> dict[str, dict[str, dt.date]]:
        """Every authorisation of the organisation as means id -> service (ServiceUUID) -> end date, in the
        backend's order: what reading the state needs, each item checked as `list_all_authorisations` checks it
        but without an object per authorisation (100,000 in a large organisation: the objects were a tenth of
        reading it)."""
        ends: dict[str, dict[str, dt.date]] = {}
        async for page in self._pages(f"{self._org(kvk)}/authorisations", authorisation_fields, limit):
            for means_id, _, service, _, end_date in page.items:
                held = ends.get(means_id)
                if held is None:
                    held = ends[means_id] = {}
                held[service] = end_date
        return ends

    list_chains, iter_chains, list_all_chains = _org_list("chains", RemoteChain.parse,
                                                             "chain-authorisations")

    async def list_services(self, *, limit: int = MAX_LIMIT) -> list[RemoteService]:
        """The backend's catalogue (follows cursors if the backend pages it)."""
        return await self._all("/v1/services", RemoteService.parse, limit)

    list_events, iter_events, list_all_events = _org_list("events", RemoteEvent.parse)

    # ---------------------------------------------------------------------------------------- mutations
    async def request_means(self, kvk: str, *, email: str, name: str, role: Role | str, level: Level | str,
                            type: MeansType | str | None = None,
                            second_factor: SecondFactorType | str | None = None, phone: str | None = None,
                            subscription: Subscription | str | None = None, if_match: int | None = None,
                            idempotency_key: str | None = None) -> MutationResult:
        """Request a new means (201; it then waits for the supplier's approval). The answer's result is checked to
        be a means here, where off-contract is UnexpectedResponse (the outcome unknown): the apply reads the new
        id from it (`MutationResult.means()`), and a KeyError there stopped the apply as an internal error."""
        body = {"email": email, "name": name, "role": role, "level": level, "type": type,
                "second_factor": _second_factor(second_factor, phone), "subscription": subscription}
        path = f"{self._org(kvk)}/means"
        answer = await self._mutate("POST", path, body, if_match=if_match, idempotency_key=idempotency_key)
        self._parse(RemoteMeans.parse, answer.result, "POST", path, answer.status)
        return answer

    async def change_role(self, kvk: str, means_id: str, role: Role | str, *, if_match: int | None = None,
                          idempotency_key: str | None = None) -> MutationResult:
        return await self._mutate("POST", f"{self._org(kvk)}/means/{_segment(means_id)}/role", {"role": role},
                                  if_match=if_match, idempotency_key=idempotency_key)

    async def change_level(self, kvk: str, means_id: str, level: Level | str, *,
                           second_factor: SecondFactorType | str | None = None, phone: str | None = None,
                           if_match: int | None = None, idempotency_key: str | None = None) -> MutationResult:
        """Change the level; 202, pending until the supplier processes it (`result.pending`)."""
        body = {"level": level, "second_factor": _second_factor(second_factor, phone)}
        return await self._mutate("POST", f"{self._org(kvk)}/means/{_segment(means_id)}/level", body,
                                  if_match=if_match, idempotency_key=idempotency_key)

    async def change_type(self, kvk: str, means_id: str, type: MeansType | str, *,
                          subscription: Subscription | str | None = None, if_match: int | None = None,
                          idempotency_key: str | None = None) -> MutationResult:
        """Change the type; the backend drops the means' authorisations (R13)."""
        return await self._mutate("POST", f"{self._org(kvk)}/means/{_segment(means_id)}/type",
                                  {"type": type, "subscription": subscription}, if_match=if_match,
                                  idempotency_key=idempotency_key)

    async def change_phone(self, kvk: str, means_id: str, phone: str, *, if_match: int | None = None,
                           idempotency_key: str | None = None) -> MutationResult:
        return await self._mutate("POST", f"{self._org(kvk)}/means/{_segment(means_id)}/phone", {"phone": phone},
                                  if_match=if_match, idempotency_key=idempotency_key)

    async def change_email(self, kvk: str, means_id: str, email: str, *, if_match: int | None = None,
                           idempotency_key: str | None = None) -> MutationResult:
        return await self._mutate("POST", f"{self._org(kvk)}/means/{_segment(means_id)}/email", {"email": email},
                                  if_match=if_match, idempotency_key=idempotency_key)

    async def resend_invitation(self, kvk: str, means_id: str, *, if_match: int | None = None,
                                idempotency_key: str | None = None) -> MutationResult:
        """A new activation letter after expiry (costs money: keep the idempotency key stable)."""
        return await self._mutate("POST", f"{self._org(kvk)}/means/{_segment(means_id)}/invitation", None,
                                  if_match=if_match, idempotency_key=idempotency_key)

    async def link_means(self, kvk: str, means_id: str, *, to_kvk: str, role: Role | str,
                         subscription: Subscription | str | None = None, if_match: int | None = None,
                         idempotency_key: str | None = None) -> MutationResult:
        """Link the means (known in `kvk`) to organisation `to_kvk`; 202, pending until processed."""
        body = {"kvk": to_kvk, "role": role, "subscription": subscription}
        return await self._mutate("POST", f"{self._org(kvk)}/means/{_segment(means_id)}/links", body,
                                  if_match=if_match, idempotency_key=idempotency_key)

    async def terminate_means(self, kvk: str, means_id: str, *, mode: TerminationMode | str = TerminationMode.NOW,
                              date: dt.date | None = None, if_match: int | None = None,
                              idempotency_key: str | None = None) -> MutationResult:
        mode = TerminationMode(_wire(mode))
        if (mode is TerminationMode.DATE) != (date is not None):
            raise ValueError("terminate_means: a date is required with mode=date, and only then")
        return await self._mutate("POST", f"{self._org(kvk)}/means/{_segment(means_id)}/terminate",
                                  {"mode": mode, "date": date}, if_match=if_match, idempotency_key=idempotency_key)

    async def grant(self, kvk: str, means_ids: Iterable[str], services: Iterable[str], *,
                    end_date: dt.date | None = None, if_match: int | None = None,
                    idempotency_key: str | None = None) -> MutationResult:
        """Bulk grant (services x means, one end date); overwrites end dates of existing ones."""
        body = {"means_ids": list(means_ids), "services": list(services), "end_date": end_date}
        return await self._mutate("POST", f"{self._org(kvk)}/authorisations", body, if_match=if_match,
                                  idempotency_key=idempotency_key)

    async def set_end_date(self, kvk: str, means_ids: Iterable[str], services: Iterable[str], end_date: dt.date,
                           *, if_match: int | None = None, idempotency_key: str | None = None) -> MutationResult:
        body = {"means_ids": list(means_ids), "services": list(services), "end_date": end_date}
        return await self._mutate("POST", f"{self._org(kvk)}/authorisations/end-date", body, if_match=if_match,
                                  idempotency_key=idempotency_key)

    async def revoke(self, kvk: str, means_ids: Iterable[str], services: Iterable[str], *,
                     if_match: int | None = None, idempotency_key: str | None = None) -> MutationResult:
        """Bulk revoke: immediate and final."""
        body = {"means_ids": list(means_ids), "services": list(services)}
        return await self._mutate("POST", f"{self._org(kvk)}/authorisations/revoke", body, if_match=if_match,
                                  idempotency_key=idempotency_key)

    async def issue_chain(self, kvk: str, intermediary_kvk: str, services: Iterable[str], *,
                          name: str | None = None, end_date: dt.date | None = None, if_match: int | None = None,
                          idempotency_key: str | None = None) -> MutationResult:
        """Issue chain authorisations: the services get the end date, the intermediary's others keep theirs (R18)."""
        body = {"intermediary_kvk": intermediary_kvk, "name": name, "services": list(services),
                "end_date": end_date}
        return await self._mutate("POST", f"{self._org(kvk)}/chain-authorisations", body, if_match=if_match,
                                  idempotency_key=idempotency_key)

    async def set_chain_end_date(self, kvk: str, intermediary_kvk: str, end_date: dt.date, *,
                                 services: Iterable[str] = (), if_match: int | None = None,
                                 idempotency_key: str | None = None) -> MutationResult:
        """A new end date for the listed chain authorisations of the intermediary (none listed: all, R18)."""
        body = {"end_date": end_date, "services": list(services) or None}
        return await self._mutate(
            "POST", f"{self._org(kvk)}/chain-authorisations/{_segment(intermediary_kvk)}/end-date",
            body, if_match=if_match, idempotency_key=idempotency_key)

    async def revoke_chain(self, kvk: str, intermediary_kvk: str, services: Iterable[str], *,
                           if_match: int | None = None, idempotency_key: str | None = None) -> MutationResult:
        """End the listed chain authorisations of the intermediary now; with its last the intermediary goes."""
        return await self._mutate(
            "POST", f"{self._org(kvk)}/chain-authorisations/{_segment(intermediary_kvk)}/revoke",
            {"services": list(services)}, if_match=if_match, idempotency_key=idempotency_key)

    async def remove_intermediary(self, kvk: str, intermediary_kvk: str, *, if_match: int | None = None,
                                  idempotency_key: str | None = None) -> MutationResult:
        """Remove the intermediary and all its chain authorisations."""
        return await self._mutate("DELETE", f"{self._org(kvk)}/chain-authorisations/{_segment(intermediary_kvk)}",
                                  None, if_match=if_match, idempotency_key=idempotency_key)


__all__ = ["BeheerClient", "MAX_LIMIT", "NO_RETRY", "RETRY_STATUSES", "RetryPolicy", "TOKEN_ENV", "Timeouts",
           "token_from_env"]
