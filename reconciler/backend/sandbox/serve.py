"""Serving the sandbox over HTTP (`reconciler sandbox serve`), beneath the command line: the checks that come
before anything listens (a loopback address unless remote is allowed, a control token that cannot be guessed, a
free port), the app with its control token and its 503 for a held lock, and running it. Nothing here prints or
exits: a refusal is an exception whose message is the line the command prints. Light to import (the web stack
is loaded when it is needed), so the command line can import it at start."""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import socket
import sys
from dataclasses import dataclass
from typing import Any, Callable, Mapping

#: A chosen control token is at least this long, like a plan key: the controls hand out every admin's tokens.
MIN_CONTROL_TOKEN_LENGTH = 16


class ServeRefused(Exception):
    """The sandbox cannot be served as asked (a user's mistake or a busy port): one line, exit 1."""


class NoDatabase(ServeRefused):
    """Neither --db nor an embedded --backend says which database to serve: a usage mistake."""


@dataclass(frozen=True, slots=True)
class Served:
    """A sandbox ready to listen: what its start lines say, and the app to run."""

    app: Any
    host: str
    port: int
    db: str
    control_token: str
    token_given: bool          # from SANDBOX_CONTROL_TOKEN (never shown) rather than generated (shown once)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start_lines(self) -> list[tuple[str, bool]]:
        """What is said at start, each line with whether it goes to standard output: only a generated control
        token does (scripts read that line, people export it; it is shown nowhere else), the rest to stderr."""
        from reconciler.backend.sandbox.controls import CONTROL_TOKEN_ENV

        lines = [(f"sandbox backend on {self.url} (database {os.path.normpath(self.db)}); Ctrl-C stops it", False)]
        if self.token_given:
            return lines + [(f"control token: from {CONTROL_TOKEN_ENV}", False)]
        return lines + [(f"control token: {self.control_token}", True),
                        (f"(export it as {CONTROL_TOKEN_ENV} for `reconciler sandbox ... --backend {self.url}`)",
                         False)]


def check_host(host: str, allow_remote: bool) -> str | None:
    """Refuse an address other machines reach unless `allow_remote`; then the warning to give, else None."""
    from reconciler.backend.connect import is_loopback_host

    if is_loopback_host(host):
        return None
    if not allow_remote:
        raise ServeRefused(
            f"refusing --host {host}: it is not a loopback address, so other machines could reach this test "
            "backend (its controls, its tokens over plain http); serve on 127.0.0.1, or give --allow-remote "
            "if that is really meant")
    return (f"--allow-remote: the sandbox listens on {host}, reachable from other machines; it is a test backend "
            "(plain http, tokens in clear): never put real people or real tokens in it")


def check_control_token(given: str) -> None:
    """Refuse a guessable SANDBOX_CONTROL_TOKEN (`a`) and one a client cannot send in a header (not ASCII)."""
    from reconciler.backend.sandbox.controls import CONTROL_TOKEN_ENV

    if not given:
        return
    how = "(e.g. the output of `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`), or unset it " \
          "for a random one"
    if not (given.isascii() and given.isprintable()) or " " in given:
        raise ServeRefused(f"{CONTROL_TOKEN_ENV} must be printable ASCII without spaces: set it to a random value "
                           f"{how}")
    if len(given) < MIN_CONTROL_TOKEN_LENGTH:
        raise ServeRefused(f"{CONTROL_TOKEN_ENV} is too short ({len(given)} characters): use at least "
                           f"{MIN_CONTROL_TOKEN_LENGTH} {how}")


def check_port(host: str, port: int) -> None:
    """Bind the address once before uvicorn does, so a busy port (another `sandbox serve`) or one this user may
    not use is one line and exit 1, not uvicorn's log line and exit 3."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServeRefused(f"cannot listen on --host {host}: {exc.strerror}; give an address such as "
                           "127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)      # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeRefused(f"port {port} on {host} is already in use (another `reconciler sandbox "
                                   "serve`?): stop that, or give --port another number") from None
            raise ServeRefused(f"cannot listen on {host}:{port}: {exc.strerror or exc}; give another "
                               "--port (1024 or higher) or --host") from None


def answer_locks_with_503(app: Any) -> None:
    """A served sandbox whose database another process holds answers 503 (with Retry-After, which the client
    honours), not 500: nothing was done, and a later request can succeed."""
    from reconciler.backend.sandbox.problems import problem_response
    from reconciler.backend.sandbox.store import SandboxLocked

    async def locked(request: Any, exc: Exception) -> Any:
        return problem_response(503, "unavailable", str(exc), headers={"Retry-After": "5"})

    app.add_exception_handler(SandboxLocked, locked)


def prepare(db: str | None, backend: str | None, host: str, port: int, catalogues: tuple[str, ...] = (), *,
            allow_remote: bool = False, warn: Callable[[str], None] = lambda text: None,
            env: Mapping[str, str] | None = None) -> Served:
    """Everything short of listening, in the order its refusals are said: the address (`warn` is told when it
    is remote and allowed), the database (--db, else the embedded --backend), the control token
    (SANDBOX_CONTROL_TOKEN, else a random one), the app (a catalogue that is no catalogue is refused; the
    store's own errors, e.g. a locked or foreign database, pass through), the port."""
    from reconciler.backend.connect import parse_backend_spec
    from reconciler.backend.sandbox.app import CatalogueRejected, create_app
    from reconciler.backend.sandbox.controls import CONTROL_TOKEN_ENV

    warning = check_host(host, allow_remote)
    if warning:
        warn(warning)
    if db is None:
        spec = parse_backend_spec(backend)
        if not spec.embedded:
            raise NoDatabase("serve runs a sandbox database: give --db PATH or --backend sandbox:PATH")
        db = str(spec.db_path)
    given = (os.environ if env is None else env).get(CONTROL_TOKEN_ENV, "").strip()
    check_control_token(given)
    control = given or secrets.token_urlsafe(32)
    try:
        app = create_app(db, catalogue_files=list(catalogues), control_token=control)
    except CatalogueRejected as exc:
        raise ServeRefused(f"--catalogue {exc.file} is not a valid catalogue: {exc}; fix the file or leave the "
                           "option out") from None
    answer_locks_with_503(app)
    check_port(host, port)
    return Served(app=app, host=host, port=port, db=db, control_token=control, token_given=bool(given))


class _CoalescedWrites:
    """An asyncio transport whose writes within one turn of the event loop go out as one: uvicorn writes an
    answer's head and its body separately, two send(2) calls and two segments for the client to wake up to
    (a change's answer is a few hundred bytes). Everything else is the transport's own; closing sends what is
    held first (a dropped connection still sends what was written before the drop)."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._held: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._held:
            asyncio.get_running_loop().call_soon(self._flush)
        self._held.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def _flush(self) -> None:
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def http_protocol() -> type:
    """uvicorn's httptools protocol (its C parser: h11, the pure-Python one, was a fifth of the server's CPU per
    change) over `_CoalescedWrites`."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class CoalescedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(_CoalescedWrites(transport))

    return CoalescedHttpToolsProtocol


def uvicorn_options() -> dict[str, Any]:
    """How the sandbox is served (also by benchmarks/apply_scale.py): the protocol above; no access log (at the
    warning level its lines are formatted only to be dropped); no `X-Forwarded-*` taken from a client (uvicorn
    trusts them from loopback by default: the sandbox is reached directly, and a client's claimed address means
    nothing to it); no `server` header naming the software."""
    return {"http": http_protocol(), "access_log": False, "proxy_headers": False, "server_header": False}


def run(served: Served) -> None:
    """Serve until stopped (Ctrl-C); uvicorn failing to start after all (the port taken since) is a refusal.
    Standard output is flushed first, so a script reading the start lines has them before the server runs."""
    import uvicorn

    sys.stdout.flush()
    try:
        uvicorn.run(served.app, host=served.host, port=served.port, log_level="warning", **uvicorn_options())
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise ServeRefused(f"the sandbox server could not start on {served.host}:{served.port} (see the line "
                               "above); give another --port") from None
        raise
