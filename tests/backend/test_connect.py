"""`--backend` parsing and `open_backend`: embedded (an in-test app stands in for the sandbox) and remote."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from reconciler.backend import connect
from reconciler.backend.client import BeheerClient, RetryPolicy
from reconciler.backend.connect import (
    BackendSpec, DEFAULT_BACKEND, embedded_db_path, open_backend, parse_backend_spec,
)
from reconciler.backend.errors import BackendUnreachable, ConfigurationError

TOKEN = "tok-connect-secret-99"


# ---------------------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(("spec", "expected"), [
    ("sandbox:x.db", BackendSpec("sandbox", db_path=Path("x.db"))),
    ("sandbox:/tmp/a b/s.db", BackendSpec("sandbox", db_path=Path("/tmp/a b/s.db"))),
    ("https://beheer.example.nl", BackendSpec("remote", url="https://beheer.example.nl")),
    ("https://beheer.example.nl/api/", BackendSpec("remote", url="https://beheer.example.nl/api")),
    ("http://127.0.0.1:8321", BackendSpec("remote", url="http://127.0.0.1:8321")),
    ("HTTPS://Beheer.example.nl", BackendSpec("remote", url="HTTPS://Beheer.example.nl")),
])
def test_valid_specs(spec: str, expected: BackendSpec) -> None:
    assert parse_backend_spec(spec, env={}) == expected


@pytest.mark.parametrize("spec", ["ftp://host", "sandbox:", "sandbox:  ", "sandbox://x", "https://",
                                  "beheer.example.nl", "/tmp/sandbox.db", "https://u:p@host",
                                  "https://host/?token=x"])
def test_invalid_specs_name_what_is_allowed(spec: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_backend_spec(spec, env={})
    message = str(info.value)
    assert "sandbox:PATH" in message and "https://" in message and "--backend" in message
    assert "u:p" not in message


def test_default_and_environment() -> None:
    assert parse_backend_spec(None, env={}) == BackendSpec("sandbox", db_path=Path(".reconciler/sandbox.db"))
    assert DEFAULT_BACKEND == "sandbox:.reconciler/sandbox.db"
    env = {"RECONCILER_BACKEND": "https://env.example.nl"}
    assert parse_backend_spec(None, env=env).url == "https://env.example.nl"
    assert parse_backend_spec("", env=env).url == "https://env.example.nl"
    assert parse_backend_spec("sandbox:a.db", env=env).db_path == Path("a.db")      # the flag wins
    with pytest.raises(ConfigurationError, match="RECONCILER_BACKEND"):
        parse_backend_spec(None, env={"RECONCILER_BACKEND": "nonsense"})


def test_embedded_db_path() -> None:
    assert embedded_db_path("sandbox:data/s.db", env={}) == Path("data/s.db")
    assert embedded_db_path("https://beheer.example.nl", env={}) is None
    assert embedded_db_path(None, env={}) == Path(".reconciler/sandbox.db")
    assert embedded_db_path(None, env={"RECONCILER_BACKEND": "http://localhost:1"}) is None


# ------------------------------------------------------------------------------------------------- remote
@pytest.mark.anyio
async def test_remote_needs_the_token_from_the_environment() -> None:
    with pytest.raises(ConfigurationError, match="BEHEER_API_TOKEN"):
        async with open_backend("https://beheer.example.nl", env={}):
            pass


@pytest.mark.anyio
async def test_remote_uses_the_environment_token() -> None:
    async with open_backend("https://beheer.example.nl/api", env={"BEHEER_API_TOKEN": TOKEN}) as client:
        assert isinstance(client, BeheerClient) and client.has_token
        assert str(client.http.base_url) == "https://beheer.example.nl/api/"
        assert TOKEN not in repr(client)
    assert client.http.is_closed


# ---------------------------------------------------------------------------------------------- embedded
class FakeDropped(Exception):
    """Stands in for reconciler.backend.sandbox.faults.ConnectionDropped."""


class FakeSandbox:
    """A tiny app factory in the shape of `create_app(db_path, ...)`; it commits, then drops, once."""

    def __init__(self) -> None:
        self.created: list[tuple[Path, dict[str, Any]]] = []
        self.lifespan: list[str] = []
        self.effects: dict[str, Any] = {}
        self.auth: list[str | None] = []
        self.control: list[str | None] = []                       # the control header of each request

    def create_app(self, db_path: Path, **options: Any) -> Starlette:
        self.created.append((db_path, options))
        sandbox = self

        async def org(request: Request) -> JSONResponse:
            sandbox.control.append(request.headers.get("sandbox-control-token"))
            return JSONResponse({"kvk": "12345678", "means_id": "m1", "token": TOKEN})

        async def me(request: Request) -> JSONResponse:
            sandbox.auth.append(request.headers.get("authorization"))
            sandbox.control.append(request.headers.get("sandbox-control-token"))
            return JSONResponse({"means_id": "m1", "email": "a@acme.nl", "level": "EH3", "read_only": False})

        async def role(request: Request) -> JSONResponse:
            key = request.headers["idempotency-key"]
            first = key not in sandbox.effects
            sandbox.effects.setdefault(key, json.loads(await request.body()))
            if first:
                raise FakeDropped("committed, then dropped")
            return JSONResponse({"revision": 2, "result": {}})

        async def lifespan(app: Starlette) -> Any:
            sandbox.lifespan.append("startup")
            yield
            sandbox.lifespan.append("shutdown")

        from contextlib import asynccontextmanager
        return Starlette(routes=[Route("/sandbox/organisations", org, methods=["POST"]),
                                 Route("/v1/me", me),
                                 Route("/v1/organisations/{kvk}/means/{id}/role", role, methods=["POST"])],
                         lifespan=asynccontextmanager(lifespan))


@pytest.fixture
def fake_sandbox(monkeypatch: pytest.MonkeyPatch) -> FakeSandbox:
    fake = FakeSandbox()
    monkeypatch.setattr(connect, "_load_sandbox", lambda: (fake.create_app, (FakeDropped,)))
    return fake


async def _no_sleep(seconds: float) -> None:
    return None


@pytest.mark.anyio
async def test_embedded_runs_the_app_in_process(fake_sandbox: FakeSandbox, tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "s.db"
    async with open_backend(f"sandbox:{db}", env={}, app_options={"seed": 1}, sleep=_no_sleep) as client:
        assert db.parent.is_dir()                                   # the directory is created
        [(path, options)] = fake_sandbox.created
        control = options.pop("control_token")
        assert (path, options) == (db, {"seed": 1}) and len(control) >= 32
        assert fake_sandbox.lifespan == ["startup"]
        assert not client.has_token
        answer = await client.http.post("/sandbox/organisations", json={"kvk": "12345678"})
        admin = client.with_token(answer.json()["token"])
        me = await admin.me()
        assert me.means_id == "m1"
    assert fake_sandbox.auth == [f"Bearer {TOKEN}"]
    assert fake_sandbox.control == [control, None]          # the control token goes to /sandbox only, not /v1
    assert fake_sandbox.lifespan == ["startup", "shutdown"]


@pytest.mark.anyio
async def test_embedded_drop_becomes_a_retried_connection_error(fake_sandbox: FakeSandbox, tmp_path: Path) -> None:
    async with open_backend(f"sandbox:{tmp_path / 's.db'}", token=TOKEN, env={}, sleep=_no_sleep) as client:
        result = await client.change_role("12345678", "m1", "gebruiker", idempotency_key="k1")
    assert result.revision == 2
    assert fake_sandbox.effects == {"k1": {"role": "gebruiker"}}
    assert client.request_counts["POST"] == 2


@pytest.mark.anyio
async def test_embedded_drop_reported_after_the_last_attempt(fake_sandbox: FakeSandbox, tmp_path: Path) -> None:
    async with open_backend(f"sandbox:{tmp_path / 's.db'}", token=TOKEN, env={}, sleep=_no_sleep,
                            retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(Exception) as info:
            await client.change_role("12345678", "m1", "gebruiker")
    assert type(info.value).__name__ == "BackendUnreachable"
    assert "connection dropped" in str(info.value)


@pytest.mark.anyio
async def test_embedded_default_uses_the_reconciler_directory(fake_sandbox: FakeSandbox, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with open_backend(None, env={}):
        pass
    assert fake_sandbox.created[0][0] == Path(".reconciler/sandbox.db")
    assert (tmp_path / ".reconciler").is_dir()


@pytest.mark.anyio
async def test_an_app_without_lifespan_support_is_used_as_is(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("only http")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body",
                    "body": b'{"means_id": "m1", "email": "a@acme.nl", "level": "EH2", "read_only": true}'})

    monkeypatch.setattr(connect, "_load_sandbox", lambda: (lambda path, **kw: bare_app, ()))
    async with open_backend(f"sandbox:{tmp_path / 's.db'}", token=TOKEN, env={}) as client:
        assert (await client.me()).read_only is True


@pytest.mark.anyio
async def test_smoke_against_the_real_embedded_sandbox(tmp_path: Path) -> None:
    """The same client, serialisation and rules as a remote server: bootstrap, read as that admin, and survive
    an injected "commit, then drop" through the idempotency key."""
    assert connect._load_sandbox()[1], "the sandbox's ConnectionDropped should be found"
    async with open_backend(f"sandbox:{tmp_path / 'sandbox.db'}", env={}, sleep=_no_sleep,
                            retry=RetryPolicy(attempts=1)) as client:
        answer = await client.http.post("/sandbox/organisations", json={
            "kvk": "12345678", "name": "Acme",
            "admin": {"email": "a@acme.nl", "name": "Anna", "level": "EH3", "second_factor": "otp"}})
        assert answer.status_code in (200, 201), answer.text
        admin = client.with_token(answer.json()["token"])
        me = await admin.me()
        org = await admin.get_organisation("12345678")
        means = await admin.list_all_means("12345678")
        uuid = next(s.uuid for s in await admin.list_services() if s.key == "algemene-bevoegdheid-3")

        await client.http.post("/sandbox/faults", json={"p_drop": 1.0, "seed": 7})
        with pytest.raises(BackendUnreachable, match="connection dropped"):
            await admin.grant("12345678", [me.means_id], [uuid], idempotency_key="smoke-1")
        await client.http.post("/sandbox/faults", json={"p_drop": 0.0})
        replay = await admin.grant("12345678", [me.means_id], [uuid], idempotency_key="smoke-1")
        after = await admin.get_organisation("12345678")
        authorisations = await admin.list_all_authorisations("12345678")
    assert me.email == "a@acme.nl" and org.kvk == "12345678"
    assert [m.email for m in means] == ["a@acme.nl"]
    assert replay.revision == after.revision == org.revision + 1        # applied once, not twice
    assert [(a.means_id, a.service) for a in authorisations] == [(me.means_id, uuid)]


def test_transport_wrapper_passes_other_errors_through() -> None:
    class Boom(Exception):
        pass

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise Boom("a sandbox bug")

    transport = connect.DroppedConnectionTransport(httpx.ASGITransport(app=app), (FakeDropped,))

    async def call() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as http:
            await http.get("/")

    import anyio
    with pytest.raises(Boom):
        anyio.run(call)


# ------------------------------------------------------------------------- the token travels only to TLS
@pytest.mark.parametrize("spec", ["http://beheer.example.nl", "http://10.0.0.7:8700", "http://[2001:db8::1]:80",
                                  "http://192.168.1.20/api", "http://localhost.example.nl", "http://127.0.0.1.nip.io",
                                  "HTTP://Beheer.Example.NL"])
def test_plain_http_to_another_host_is_refused(spec: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_backend_spec(spec, env={})
    message = str(info.value)
    assert "--backend" in message and "unencrypted" in message and "--allow-insecure-http" in message
    assert parse_backend_spec(spec, env={}, allow_insecure_http=True).kind == "remote"


def test_plain_http_from_the_environment_is_refused_the_same_way() -> None:
    with pytest.raises(ConfigurationError, match="RECONCILER_BACKEND.*unencrypted"):
        parse_backend_spec(None, env={"RECONCILER_BACKEND": "http://beheer.example.nl"})
    with pytest.raises(ConfigurationError, match="unencrypted"):
        embedded_db_path(None, env={"RECONCILER_BACKEND": "http://beheer.example.nl"})


@pytest.mark.parametrize("spec", ["http://localhost.:1", "http://LOCALHOST.:1", "http://127.0.0.1.:8700"])
def test_a_trailing_dot_is_not_loopback(spec: str) -> None:
    """`localhost.` is a fully qualified name: DNS answers it, and may answer with any address."""
    with pytest.raises(ConfigurationError, match="unencrypted"):
        parse_backend_spec(spec, env={})


@pytest.mark.parametrize("spec", ["http://127.0.0.1:8700", "http://127.9.8.7", "http://localhost:1",
                                  "http://LOCALHOST:1", "http://[::1]:8700", "http://[::ffff:127.0.0.1]:1",
                                  "https://beheer.example.nl", "https://10.0.0.7"])
def test_loopback_and_https_are_allowed(spec: str) -> None:
    assert parse_backend_spec(spec, env={}).kind == "remote"


class Tripwire:
    """Records every attempt to resolve or connect (and fails it at once); not a backend, only a wire."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.attempts: list[str] = []
        real_getaddrinfo = socket.getaddrinfo

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if host not in (None, "localhost", "127.0.0.1", "::1"):
                self.attempts.append(f"resolve {host}")
                raise socket.gaierror("tripwire: no resolving in this test")
            return real_getaddrinfo(host, *args, **kwargs)

        def connect(sock: socket.socket, address: Any) -> None:
            self.attempts.append(f"connect {address}")
            raise ConnectionRefusedError("tripwire: no connecting in this test")

        def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
            self.attempts.append(f"create_connection {address}")
            raise ConnectionRefusedError("tripwire: no connecting in this test")

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect)
        monkeypatch.setattr(socket, "create_connection", create_connection)


def _invoke(args: list[str], env: dict[str, str]) -> tuple[int, str, str, float]:
    from click.testing import CliRunner

    from reconciler.cli.main import cli

    started = time.monotonic()
    result = CliRunner().invoke(cli, args, env={"RECONCILER_BACKEND": None, **env}, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr, time.monotonic() - started


EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "org.yaml")


@pytest.mark.parametrize(("args", "env"), [
    (["plan", EXAMPLE, "--backend", "http://beheer.example.nl:8700"], {}),
    (["apply", EXAMPLE, "--auto-approve", "--backend", "http://10.1.2.3"], {}),
    (["drift", EXAMPLE], {"RECONCILER_BACKEND": "http://beheer.example.nl"}),
    (["sandbox", "clock", "--backend", "http://10.1.2.3:8700"], {"SANDBOX_CONTROL_TOKEN": "c" * 40}),
])
def test_the_cli_refuses_plain_http_before_any_connection(args: list[str], env: dict[str, str],
                                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    wire = Tripwire(monkeypatch)
    code, out, err, took = _invoke(args, {"BEHEER_API_TOKEN": TOKEN, **env})
    assert code == 1 and wire.attempts == [] and took < 5, (code, err, wire.attempts)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing ") and "unencrypted" in lines[0], err
    assert TOKEN not in out + err and "Traceback" not in err


def test_allow_insecure_http_overrides_with_a_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The flag lets the request go (the tripwire sees it) and says on stderr that the token is unencrypted."""
    from reconciler.backend import client as client_module

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(client_module, "RetryPolicy", lambda: RetryPolicy(attempts=1))     # fail fast
    wire = Tripwire(monkeypatch)
    code, out, err, _ = _invoke(["plan", EXAMPLE, "--backend", "http://beheer.example.nl:8700",
                                 "--allow-insecure-http"], {"BEHEER_API_TOKEN": TOKEN})
    assert code == 1 and wire.attempts, (err, wire.attempts)                   # it did try to connect
    assert "--allow-insecure-http" in err and "unencrypted" in err and "refusing" not in err, err
    assert TOKEN not in out + err
    # the flag is this command's only: the next command without it is refused again
    wire.attempts.clear()
    code, _, err, _ = _invoke(["plan", EXAMPLE, "--backend", "http://beheer.example.nl:8700"],
                              {"BEHEER_API_TOKEN": TOKEN})
    assert code == 1 and "refusing" in err and wire.attempts == []


def test_every_command_with_backend_takes_allow_insecure_http() -> None:
    from reconciler.cli.main import cli

    def walk(command: Any, path: str) -> Iterator[tuple[str, Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    with_backend = [(path, c) for path, c in walk(cli, "reconciler")
                    if any(p.name == "backend" for p in getattr(c, "params", []))]
    assert len(with_backend) >= 10
    for path, command in with_backend:
        assert any("--allow-insecure-http" in p.opts for p in command.params), path


def test_a_loopback_server_under_another_name_works_end_to_end(tmp_path: Path) -> None:
    """`http://localhost:PORT` while the server binds 127.0.0.1: no flag needed, init, plan and apply run."""
    from tests.apply.served import EXAMPLE as EXAMPLE_ORG, Cli, served_sandbox

    with served_sandbox(tmp_path, host="localhost") as sandbox:
        assert sandbox.url.startswith("http://localhost:")
        cli = Cli(sandbox, tmp_path)
        cli.init("99966564", "Ketelaar Klip", "j.bakker@ketelaarklip.nl")
        plan = cli.plan(EXAMPLE_ORG, "99966564")
        assert plan.code == 2 and "refusing" not in plan.err and "unencrypted" not in plan.err, str(plan)
        applied = cli.apply(EXAMPLE_ORG, "99966564")
        assert applied.code == 0 and "unencrypted" not in applied.err, str(applied)
        assert len(sandbox.means("99966564")) > 1


def test_a_proxy_in_the_environment_never_carries_a_plain_http_token(tmp_path: Path) -> None:
    """HTTP_PROXY / ALL_PROXY point at another host: a loopback http backend is still talked to directly, and
    the proxy sees nothing (through it the bearer token would travel in clear)."""
    import threading

    from tests.apply.served import EXAMPLE as EXAMPLE_ORG, Cli, served_sandbox

    seen: list[bytes] = []
    proxy = socket.socket()
    proxy.bind(("127.0.0.1", 0))
    proxy.listen(5)
    proxy.settimeout(0.2)
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            try:
                conn, _ = proxy.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    seen.append(conn.recv(4096))
                except OSError:
                    seen.append(b"(connected)")

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{proxy.getsockname()[1]}"
    try:
        with served_sandbox(tmp_path) as sandbox:
            cli = Cli(sandbox, tmp_path)
            token = cli.init("99966564", "Ketelaar Klip", "j.bakker@ketelaarklip.nl")
            for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
                os.environ[name] = url
            try:
                plan = cli.run("plan", str(EXAMPLE_ORG), token=token)
            finally:
                for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
                    os.environ.pop(name, None)
    finally:
        stop.set()
        thread.join(timeout=5)
        proxy.close()
    assert plan.code == 2, str(plan)
    assert seen == []


def test_the_embedded_sandbox_is_imported_with_the_collector_paused_and_then_frozen() -> None:
    """FastAPI, the routes and the models live as long as the process: frozen, the collections of a later read do
    not walk them again; the collector is on again afterwards."""
    probe = ("import gc\nfrom reconciler.backend import connect\nbefore = gc.get_freeze_count()\n"
             "connect._load_sandbox()\nprint(gc.get_freeze_count() - before > 20000, gc.isenabled())")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True"]
