"""`--backend` values and opening a `BeheerClient` on them.

`sandbox:PATH` runs the sandbox's ASGI app in this process (no server, no port) behind the very same
client, serialisation and rules as a remote server; `http(s)://HOST` talks to a real backend with the token
from `BEHEER_API_TOKEN`. The default is `RECONCILER_BACKEND`, else `sandbox:.reconciler/sandbox.db`.

The token travels only where it should: `http://` (no TLS) is refused before any connection unless the host
is loopback (127.0.0.0/8, ::1, `localhost`: a local `reconciler sandbox serve`), or `--allow-insecure-http`
was given (then with a warning).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Literal, Mapping
from urllib.parse import urlsplit

import anyio
import httpx

from reconciler.backend.client import REDACTION, BeheerClient, token_from_env
from reconciler.backend.errors import ConfigurationError
from reconciler.backend.sandbox.controls import CONTROL_HEADER, CONTROL_TOKEN_ENV
from reconciler.backend.types import Secret

BACKEND_ENV = "RECONCILER_BACKEND"
DEFAULT_BACKEND = "sandbox:.reconciler/sandbox.db"
#: The base URL the embedded app is addressed by; never resolved, only used to build request URLs.
EMBEDDED_BASE_URL = "http://sandbox.embedded"

#: Set by the `--allow-insecure-http` flag of a command (`reconciler.cli.options.backend_option`) for the rest
#: of that command; `parse_backend_spec(allow_insecure_http=...)` says it explicitly instead.
INSECURE_HTTP_ALLOWED: ContextVar[bool] = ContextVar("reconciler_insecure_http_allowed", default=False)

_ALLOWED = ("allowed: sandbox:PATH (the embedded sandbox, e.g. sandbox:.reconciler/sandbox.db), "
            "the http:// or https:// address of a beheer backend (e.g. https://beheer.example.nl), "
            "or export:DIR (the Beheermodule's downloads, read-only)")


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """A parsed `--backend` value: an embedded sandbox database, or a remote base URL."""

    kind: Literal["sandbox", "remote", "export"]
    db_path: Path | None = None
    url: str | None = None
    export_dir: Path | None = None         # export:DIR, the Beheermodule's downloads (read-only)

    @property
    def embedded(self) -> bool:
        return self.kind == "sandbox"

    def __str__(self) -> str:
        if self.kind == "export":
            return f"export:{self.export_dir}"
        return f"sandbox:{self.db_path}" if self.embedded else str(self.url)


def resolve_spec(spec: str | None, env: Mapping[str, str] | None = None) -> str:
    """The `--backend` value in force: the given one, else `RECONCILER_BACKEND`, else the default."""
    if spec is not None and spec.strip():
        return spec.strip()
    value = (os.environ if env is None else env).get(BACKEND_ENV, "").strip()
    return value or DEFAULT_BACKEND


def is_loopback_host(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1, and IPv4-mapped loopback). Exactly
    those: `localhost.` (a fully qualified name) is resolved through DNS, which may answer anything."""
    name = host.strip().lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def insecure_http(url: str) -> bool:
    """True when `url` is plain http to a host that is not loopback: a token sent there can be read on the way."""
    parts = urlsplit(url)
    return parts.scheme.lower() == "http" and not is_loopback_host(parts.hostname or "")


def parse_backend_spec(spec: str | None, env: Mapping[str, str] | None = None, *,
                       allow_insecure_http: bool | None = None) -> BackendSpec:
    """Parse a `--backend` value (None: the default); raises `ConfigurationError` naming what is allowed.

    `http://` to a host that is not loopback is refused here, before anything connects, unless
    `allow_insecure_http` (None: whether this command was given `--allow-insecure-http`)."""
    text = resolve_spec(spec, env)
    source = "--backend" if spec is not None and spec.strip() else (
        BACKEND_ENV if (os.environ if env is None else env).get(BACKEND_ENV, "").strip() else "default backend")
    if text.startswith("sandbox:"):
        raw = text[len("sandbox:"):].strip()
        if not raw or raw.startswith("//"):
            raise ConfigurationError(f"invalid {source} value {text!r}: sandbox: needs the path of the sandbox "
                                     f"database file; {_ALLOWED}")
        return BackendSpec("sandbox", db_path=Path(raw).expanduser())
    if text.startswith("export:"):
        folder = Path(text[len("export:"):].strip()).expanduser()
        if not str(folder) or not folder.is_dir():
            raise ConfigurationError(f"invalid {source} value {text!r}: export: needs a directory that holds a "
                                     "folder per organisation (named by KvK number) with its Beheermodule downloads "
                                     "(docs/exports.md)")
        return BackendSpec("export", export_dir=folder)
    scheme = text.split(":", 1)[0].lower() if ":" in text else ""
    if scheme in {"http", "https"}:
        parts = urlsplit(text)
        if not parts.hostname:
            raise ConfigurationError(f"invalid {source} value {text!r}: the address has no host; {_ALLOWED}")
        if parts.username or parts.password:
            raise ConfigurationError(f"invalid {source} value: the address must not contain a user or password "
                                     f"(the token comes from BEHEER_API_TOKEN); {_ALLOWED}")
        if parts.query or parts.fragment:
            raise ConfigurationError(f"invalid {source} value {text!r}: the address must not have a query or "
                                     f"fragment; {_ALLOWED}")
        allowed = INSECURE_HTTP_ALLOWED.get() if allow_insecure_http is None else allow_insecure_http
        if insecure_http(text) and not allowed:
            raise ConfigurationError(
                f"refusing {source} {text}: plain http to {parts.hostname}, which is not this machine, would send "
                f"the API token unencrypted; use https://, or a loopback address (127.0.0.1, ::1, localhost) for "
                f"a local sandbox, or give --allow-insecure-http if the network in between is trusted")
        return BackendSpec("remote", url=text.rstrip("/"))
    raise ConfigurationError(f"invalid {source} value {text!r}; {_ALLOWED}")


def embedded_db_path(spec: str | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The sandbox database of an embedded backend, None for a remote one (the CLI bootstraps only the former)."""
    parsed = parse_backend_spec(spec, env)
    return parsed.db_path if parsed.embedded else None


# ------------------------------------------------------------------------------------------ embedded app
class DroppedConnectionTransport(httpx.AsyncBaseTransport):
    """Wraps an in-process transport so the app's "commit, then drop the connection" fault reaches the client
    as what a network would give: `httpx.RemoteProtocolError`, which the client retries like any drop."""

    def __init__(self, inner: httpx.AsyncBaseTransport, dropped: tuple[type[BaseException], ...]) -> None:
        self._inner = inner
        self._dropped = dropped

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except BaseException as exc:
            if self._dropped and _is_drop(exc, self._dropped):
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                                request=request) from None
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


def _is_drop(exc: BaseException, dropped: tuple[type[BaseException], ...]) -> bool:
    """True for the drop exception itself, or a group (from task-group middleware) made only of drops."""
    if isinstance(exc, dropped):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_drop(e, dropped) for e in exc.exceptions)
    return False


def _load_sandbox() -> tuple[Callable[..., Any], tuple[type[BaseException], ...]]:
    """The sandbox's app factory and drop exception, imported only when an embedded backend is opened. FastAPI,
    the routes and their models (~70,000 objects) live as long as the process: imported with the cyclic GC paused,
    as its passes over them find nothing, and frozen, so the collections while a plan reads 100,000 objects do not
    walk them again (a third of the read's GC time)."""
    from reconciler.collector import gc_paused

    with gc_paused():
        from reconciler.backend.sandbox.app import ConnectionDropped, create_app

    return create_app, (ConnectionDropped,)


@asynccontextmanager
async def asgi_lifespan(app: Any) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan (startup before the first request, shutdown after the last), which
    `httpx.ASGITransport` does not do; an app that does not speak lifespan is simply used as is."""
    send_to_app, app_receives = anyio.create_memory_object_stream[dict[str, Any]](2)
    app_sends, receive_from_app = anyio.create_memory_object_stream[dict[str, Any]](2)
    failed: list[BaseException] = []

    async def run() -> None:
        try:
            await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                      app_receives.receive, app_sends.send)
        except Exception as exc:  # noqa: BLE001 - an app without lifespan support may raise on the scope
            failed.append(exc)
        finally:
            await app_sends.send({"type": "lifespan.done"})

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await send_to_app.send({"type": "lifespan.startup"})
        message = await receive_from_app.receive()
        if message["type"] == "lifespan.startup.failed":
            raise ConfigurationError(f"the embedded sandbox failed to start: {message.get('message', '')}")
        supported = message["type"] == "lifespan.startup.complete"
        try:
            yield
        finally:
            if supported:
                await send_to_app.send({"type": "lifespan.shutdown"})
                with anyio.move_on_after(10):
                    while (await receive_from_app.receive())["type"] not in {
                            "lifespan.shutdown.complete", "lifespan.shutdown.failed", "lifespan.done"}:
                        pass
            tg.cancel_scope.cancel()


# ------------------------------------------------------------------------------------------------- open
@asynccontextmanager
async def open_backend(spec: str | None = None, *, token: Secret | str | None = None,
                       env: Mapping[str, str] | None = None, app_options: Mapping[str, Any] | None = None,
                       require_token: bool = True, controls: bool = False, allow_insecure_http: bool | None = None,
                       **client_options: Any) -> AsyncIterator[BeheerClient]:
    """A `BeheerClient` on the backend named by `spec` (see `parse_backend_spec`), closed on exit.

    Embedded: `token` is the acting admin's token the caller got when bootstrapping (None until then; use
    `client.with_token` once known); `app_options` go to `create_app`; the app gets a control token made
    for this process, which the client sends on `/sandbox` requests (no user action). Remote: `token`, else
    `BEHEER_API_TOKEN` (a clear `ConfigurationError` when unset, unless `require_token` is false: the
    sandbox controls of a served sandbox need none); with `controls`, the served sandbox's control token
    from `SANDBOX_CONTROL_TOKEN` goes with `/sandbox` requests. `client_options` go to `BeheerClient`
    (timeouts, retry, sleep, rand).
    """
    parsed = parse_backend_spec(spec, env, allow_insecure_http=allow_insecure_http)
    if parsed.kind == "export":
        raise ConfigurationError(f"{parsed} is the Beheermodule's downloads: it can be read by plan, drift, report "
                                 "access and import, not talked to as an API")
    async with AsyncExitStack() as stack:
        if parsed.embedded:
            assert parsed.db_path is not None
            try:
                parsed.db_path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigurationError(f"cannot create the directory of the sandbox database "
                                         f"{parsed.db_path}: {exc.strerror or exc}") from None
            create_app, dropped = _load_sandbox()
            options = dict(app_options or {})
            control: Secret | None = Secret(options.setdefault("control_token", secrets.token_urlsafe(32)))
            app = create_app(parsed.db_path, **options)
            await stack.enter_async_context(asgi_lifespan(app))
            transport = DroppedConnectionTransport(httpx.ASGITransport(app=app), dropped)
            client = BeheerClient(EMBEDDED_BASE_URL, token, transport=transport, **client_options)
        else:
            assert parsed.url is not None
            secret = token if token is not None else (token_from_env(env) if require_token else None)
            control = control_token_from_env(env) if controls else None
            if insecure_http(parsed.url):   # allowed by --allow-insecure-http; said on stderr whatever logging does
                print(f"warning: --allow-insecure-http: the backend {parsed.url} is addressed over plain http; the "
                      "API token travels unencrypted and can be read on the way", file=sys.stderr, flush=True)
            client = BeheerClient(parsed.url, secret, **client_options)
        if control is not None:
            attach_control_token(client.http, control)
        await stack.enter_async_context(client)
        yield client


def control_token_from_env(env: Mapping[str, str] | None = None) -> Secret:
    """A served sandbox's control token from `SANDBOX_CONTROL_TOKEN` (never from an argument: `ps` shows those)."""
    value = (os.environ if env is None else env).get(CONTROL_TOKEN_ENV, "").strip()
    if not value:
        raise ConfigurationError(
            f"{CONTROL_TOKEN_ENV} is not set: the controls of a served sandbox need its control token, which "
            f"`reconciler sandbox serve` printed at start (`control token: ...`) or was given in {CONTROL_TOKEN_ENV}; "
            f"export it as {CONTROL_TOKEN_ENV}")
    return Secret(value)


def attach_control_token(http: httpx.AsyncClient, token: Secret) -> None:
    """Send `token` in the control header on `/sandbox` requests to this client's own base URL, and on no
    other request (a real backend, or the `/v1` API, never sees it); redacted from every log record."""
    REDACTION.add(token)
    base = http.base_url
    prefix = base.raw_path.rstrip(b"/") + b"/sandbox"

    async def add(request: httpx.Request) -> None:
        url = request.url
        path = url.raw_path.split(b"?", 1)[0]
        if (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port) and (
                path == prefix or path.startswith(prefix + b"/")):
            request.headers[CONTROL_HEADER] = token.reveal()

    hooks = http.event_hooks
    http.event_hooks = {"request": [*hooks.get("request", []), add], "response": list(hooks.get("response", []))}


__all__ = ["BACKEND_ENV", "BackendSpec", "DEFAULT_BACKEND", "DroppedConnectionTransport", "INSECURE_HTTP_ALLOWED",
           "attach_control_token", "control_token_from_env", "embedded_db_path", "insecure_http",
           "is_loopback_host", "open_backend", "parse_backend_spec", "resolve_spec"]
