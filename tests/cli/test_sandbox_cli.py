"""`reconciler sandbox ...` against an embedded sandbox database: init, lifecycle steps, the clock; and
`sandbox serve`: loopback only unless --allow-remote, and its controls guarded by a control token."""

from __future__ import annotations

import datetime as dt
import signal
import socket
import subprocess
import time
from pathlib import Path

import anyio
import httpx
import pytest
from click.testing import CliRunner

from reconciler.backend.connect import open_backend
from reconciler.cli.main import cli
from tests.apply.served import Cli as ServedCli, cli_command, cli_env, run_cli, served_sandbox


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def request_means(db: Path, token: str, email: str) -> None:
    async def work() -> None:
        async with open_backend(f"sandbox:{db}", token=token) as client:
            await client.request_means("12345678", email=email, name="N", role="gebruiker", level="EH2")

    anyio.run(work)


def test_init_prints_only_the_token_on_stdout(tmp_path: Path) -> None:
    backend = f"sandbox:{tmp_path / 'sb.db'}"
    code, out, err = invoke("sandbox", "init", "--kvk", "12345678", "--name", "Acme", "--admin", "a@acme.nl",
                            "--backend", backend)
    assert code == 0
    token = out.strip()
    assert len(token) >= 32 and "\n" not in token
    assert "a@acme.nl" in err and token not in err

    async def me() -> str:
        async with open_backend(backend, token=token) as client:
            return (await client.me()).email

    assert anyio.run(me) == "a@acme.nl"


def test_init_twice_is_a_clear_error(tmp_path: Path) -> None:
    backend = f"sandbox:{tmp_path / 'sb.db'}"
    args = ("sandbox", "init", "--kvk", "12345678", "--name", "Acme", "--admin", "a@acme.nl", "--backend", backend)
    assert invoke(*args)[0] == 0
    code, out, err = invoke(*args)
    assert code == 1 and "already exists" in err and "Traceback" not in err


def test_approve_activate_by_email_and_all(tmp_path: Path) -> None:
    db = tmp_path / "sb.db"
    backend = f"sandbox:{db}"
    token = invoke("sandbox", "init", "--kvk", "12345678", "--name", "Acme", "--admin", "a@acme.nl",
                   "--backend", backend)[1].strip()
    request_means(db, token, "u1@acme.nl")
    request_means(db, token, "u2@acme.nl")
    code, out, _ = invoke("sandbox", "approve", "u1@acme.nl", "--backend", backend)
    assert code == 0 and out.startswith("approved u1@acme.nl: wachten_op_activatie, to activate by ")
    code, out, _ = invoke("sandbox", "approve", "--all", "--kvk", "12345678", "--backend", backend)
    assert code == 0 and "u2@acme.nl" in out and "u1@acme.nl" not in out
    code, out, _ = invoke("sandbox", "activate", "--all", "--backend", backend)
    assert code == 0 and out.count("actief") == 2
    code, _, err = invoke("sandbox", "activate", "nobody@acme.nl", "--backend", backend)
    assert code == 1 and "no means for nobody@acme.nl" in err


def test_reject_makes_the_request_disappear(tmp_path: Path) -> None:
    db = tmp_path / "sb.db"
    backend = f"sandbox:{db}"
    token = invoke("sandbox", "init", "--kvk", "12345678", "--name", "Acme", "--admin", "a@acme.nl",
                   "--backend", backend)[1].strip()
    request_means(db, token, "u1@acme.nl")
    code, out, _ = invoke("sandbox", "reject", "u1@acme.nl", "--backend", backend)
    assert code == 0 and "the request is gone" in out
    assert invoke("sandbox", "approve", "u1@acme.nl", "--backend", backend)[0] == 1


def test_clock_set_and_advance_expire_activations(tmp_path: Path) -> None:
    db = tmp_path / "sb.db"
    backend = f"sandbox:{db}"
    token = invoke("sandbox", "init", "--kvk", "12345678", "--name", "Acme", "--admin", "a@acme.nl",
                   "--backend", backend)[1].strip()
    assert invoke("sandbox", "clock", "set", "2027-01-01", "--backend", backend)[1].startswith("today is 2027-01-01")
    request_means(db, token, "u1@acme.nl")
    invoke("sandbox", "approve", "u1@acme.nl", "--backend", backend)
    code, out, _ = invoke("sandbox", "clock", "advance", "31d", "--backend", backend)
    assert code == 0 and out.startswith(f"today is {dt.date(2027, 2, 1)}")
    assert invoke("sandbox", "clock", "--backend", backend)[1].strip() == "2027-02-01"
    code, out, err = invoke("sandbox", "activate", "--all", "--backend", backend)
    assert code == 0 and out == "" and "nothing to activate" in err  # the 30 days lapsed (R5)
    code, out, err = invoke("sandbox", "activate", "u1@acme.nl", "--backend", backend)
    assert code == 1 and "activatie_verlopen" in err


def test_usage_errors_exit_1(tmp_path: Path) -> None:
    backend = f"sandbox:{tmp_path / 'sb.db'}"
    assert invoke("sandbox", "approve", "--backend", backend)[0] == 1            # neither e-mails nor --all
    assert invoke("sandbox", "clock", "advance", "soon", "--backend", backend)[0] == 1
    assert invoke("sandbox", "clock", "set", "2027-13-01", "--backend", backend)[0] == 1


# -------------------------------------------------------------------------------------- a served sandbox
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    proc = subprocess.Popen(cli_command("sandbox", "serve", "--db", str(tmp_path / "served.db"), "--port", str(port),
                                        *args), cwd=tmp_path, env=env or cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, port


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def _wait_until_up(url: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/openapi.json", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not come up")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "sandbox.example.nl"])
def test_serve_refuses_a_host_other_machines_reach(tmp_path: Path, host: str) -> None:
    proc, port = _serve(tmp_path, "--host", host)
    try:
        code = proc.wait(30)                               # before binding: it does not start serving at all
    finally:
        out, err = _stop(proc)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"error: refusing --host {host}"), err
    assert "--allow-remote" in lines[0] and "control token" not in out + err
    assert not (tmp_path / "served.db").exists()


def test_serve_with_allow_remote_warns_that_it_is_a_test_backend(tmp_path: Path) -> None:
    proc, port = _serve(tmp_path, "--host", "0.0.0.0", "--allow-remote")
    try:
        _wait_until_up(f"http://127.0.0.1:{port}", {})
    finally:
        out, err = _stop(proc)
    assert "warning: --allow-remote" in err and "test backend" in err, err
    assert out.startswith("control token: ")


def test_serve_prints_its_control_token_once_and_the_controls_need_it(tmp_path: Path) -> None:
    proc, port = _serve(tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()                       # printed at start, before serving
        assert line.startswith("control token: "), line
        control = line.split(": ", 1)[1].strip()
        assert len(control) >= 32
        _wait_until_up(url, {})
        assert httpx.get(f"{url}/sandbox/clock").status_code == 401
        assert httpx.get(f"{url}/sandbox/means").status_code == 401
        assert httpx.get(f"{url}/sandbox/clock", headers={"Sandbox-Control-Token": control}).status_code == 200

        # the control commands read it from SANDBOX_CONTROL_TOKEN (never an argument)
        r = run_cli("sandbox", "clock", "--backend", url, cwd=tmp_path)
        assert r.code == 1 and "SANDBOX_CONTROL_TOKEN is not set" in r.err and "Traceback" not in r.err, str(r)
        r = run_cli("sandbox", "clock", "--backend", url, cwd=tmp_path, control_token="not-the-token")
        assert r.code == 1 and "refused the control token in SANDBOX_CONTROL_TOKEN" in r.err, str(r)
        assert len(r.err.strip().splitlines()) == 1 and "not-the-token" not in r.err, str(r)
        r = run_cli("sandbox", "clock", "set", "2027-01-01", "--backend", url, cwd=tmp_path, control_token=control)
        assert r.code == 0 and r.out.startswith("today is 2027-01-01"), str(r)
        r = run_cli("sandbox", "init", "--kvk", "12345678", "--name", "Acme", "--admin", "a@acme.nl",
                    "--backend", url, cwd=tmp_path, control_token=control)
        assert r.code == 0 and len(r.out.strip()) >= 32 and control not in r.out + r.err, str(r)
    finally:
        out, err = _stop(proc)
    assert (line + out + err).count(control) == 1                   # only the start line shows it


def test_serve_takes_the_control_token_from_the_environment_and_does_not_print_it(tmp_path: Path) -> None:
    with served_sandbox(tmp_path) as sandbox:
        assert sandbox.today()                                      # its http client sends the token
        r = sandbox.http.get("/sandbox/clock", headers={"Sandbox-Control-Token": "wrong"})
        assert r.status_code == 401
        cli = ServedCli(sandbox, tmp_path)
        cli.init("12345678", "Acme", "a@acme.nl")
        assert cli.run("sandbox", "approve", "--all").code == 0
    log = (tmp_path / "serve.log").read_text()
    assert "control token: from SANDBOX_CONTROL_TOKEN" in log and sandbox.control_token not in log
