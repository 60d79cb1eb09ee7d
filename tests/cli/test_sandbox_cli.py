"""`reconciler sandbox ...` against an embedded sandbox database: init, lifecycle steps, the clock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import anyio
from click.testing import CliRunner

from reconciler.backend.connect import open_backend
from reconciler.cli.main import cli


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
