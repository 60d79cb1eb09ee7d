"""Issue 10, item 6: a user's mistake is one clear line and exit 1, never `internal error` or a traceback.

Each case goes through the real command line: `--out` into a folder that does not exist, a YAML integer
of more than 4,300 digits, `validate` of an endless device or a pipe, an embedded sandbox another process
keeps locked, and a `catalogue:` that points outside the config's folder or at a file of secrets.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import cli
from reconciler.config import yamlpos

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "org.yaml"
XML = ROOT / "examples" / "etoegang-catalog.xml"
TODAY = "2025-06-01"

ORG = """\
version: 1
catalogue: {catalogue}
organisation: {{kvk: "12345678", name: Acme}}
users:
  - {{email: a@acme.nl, name: Anna, role: beheerder, level: EH3, second_factor: {{type: otp}}}}
"""


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def assert_one_clear_line(code: int, err: str, *needles: str) -> None:
    """Exit 1 with an `error:` line that holds every needle, and nothing of an internal error."""
    assert code == 1, err
    assert "internal error" not in err and "Traceback" not in err and "please report" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


# --- --out into a folder that does not exist -------------------------------------------------------------

@pytest.mark.parametrize("command", [["plan"], ["drift"], ["report", "access"]])
def test_out_into_a_missing_folder_is_refused_before_the_backend_is_read(tmp_path: Path,
                                                                         command: list[str]) -> None:
    db = tmp_path / "sb.db"
    target = tmp_path / "nope" / "out.txt"
    code, out, err = invoke(*command, str(EXAMPLE), "--backend", f"sandbox:{db}", "--out", str(target))
    assert_one_clear_line(code, err, str(target), f"the folder {tmp_path / 'nope'} does not exist",
                          "create it or choose another --out")
    assert not db.exists()          # nothing was done in vain: the embedded sandbox was never opened
    assert out == ""


def test_catalogue_import_out_into_a_missing_folder(tmp_path: Path) -> None:
    target = tmp_path / "nope" / "cat.yaml"
    code, out, err = invoke("catalogue", "import", str(XML), "--out", str(target))
    assert_one_clear_line(code, err, str(target), "does not exist", "--out")
    assert out == ""


def test_import_out_that_is_a_file_is_refused_before_the_backend_is_read(tmp_path: Path) -> None:
    db, target = tmp_path / "sb.db", tmp_path / "a-file"
    target.write_text("")
    code, _, err = invoke("import", "--kvk", "99966564", "--backend", f"sandbox:{db}", "--out", str(target))
    assert_one_clear_line(code, err, str(target), "is a file", "give --out a folder")
    assert not db.exists()


# --- YAML integers Python will not convert -----------------------------------------------------------------

def test_integer_of_more_than_4300_digits_is_a_positioned_error(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text('version: 1\norganisation: {kvk: "12345678", name: Acme}\npolicy:\n  max_removals: '
                    + "9" * 5000 + "\n")
    code, out, err = invoke("validate", str(path), "--today", TODAY)
    assert code == 1 and "internal error" not in out + err and "Traceback" not in out + err
    [line] = [line for line in out.splitlines() if "error" in line and not line.startswith("invalid")]
    assert line.startswith(f"{path}:4:17: error[yaml]: integer too long: 5,000 digits")
    assert "quotes" in line and "9" * 100 not in line


def test_integer_of_more_than_4300_digits_in_a_tariff_file(tmp_path: Path) -> None:
    tariffs = tmp_path / "tariffs.yaml"
    tariffs.write_text("otp_device: " + "9" * 5000 + "\n")
    db = tmp_path / "sb.db"
    code, _, err = invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{db}", "--tariffs", str(tariffs))
    assert_one_clear_line(code, err, str(tariffs), "too long")
    assert not db.exists()


# --- reading is capped whatever the file is ------------------------------------------------------------------

@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_validate_dev_zero_stops_at_the_byte_cap() -> None:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "reconciler", "validate", "/dev/zero"], capture_output=True,
                          text=True, timeout=30)
    assert time.monotonic() - start < 30
    assert proc.returncode == 1
    assert "internal error" not in proc.stderr + proc.stdout
    assert f"/dev/zero:1:1: error[yaml]: file is larger than {yamlpos.MAX_BYTES:,} bytes" in proc.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_validate_of_a_pipe_reads_at_most_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlpos, "MAX_BYTES", 10_000)
    fifo = tmp_path / "endless.yaml"
    os.mkfifo(fifo)
    written = [0]

    def feed() -> None:                 # an endless writer, as `validate <(yes)` would be
        try:
            with open(fifo, "wb") as pipe:
                while written[0] < 100_000_000:
                    pipe.write(b"a: 1\n" * 1000)
                    written[0] += 5000
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    code, out, err = invoke("validate", str(fifo), "--today", TODAY)
    writer.join(timeout=30)
    assert code == 1 and "internal error" not in err
    assert f"{fifo}:1:1: error[yaml]: file is larger than 10,000 bytes" in out
    assert written[0] < 10_000_000     # the reader stopped; the writer did not fill memory


# --- an embedded sandbox locked by another process -----------------------------------------------------------

def test_sandbox_database_locked_longer_than_the_timeout(tmp_path: Path) -> None:
    db = tmp_path / "sb.db"
    code, _, err = invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{db}")
    assert code == 2, err                                   # the database exists, with its schema
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\n"
                               "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                               "c.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(60)\n",
         str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        code, out, err = invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{db}",
                                env={"RECONCILER_SANDBOX_LOCK_TIMEOUT": "1"})
        assert time.monotonic() - start < 30
    finally:
        holder.kill()
        holder.wait()
    assert_one_clear_line(code, err, f"the sandbox database {db} is locked by another process", "waited 1 s",
                          "try again when it is done")
    with sqlite3.connect(db) as conn:                      # nothing was harmed: the next run works
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 1


# --- catalogue: only the config's folder, and nothing of a non-catalogue echoed ----------------------------

def _validate_with_catalogue(tmp_path: Path, value: str) -> tuple[int, str, str]:
    folder = tmp_path / "configs"
    folder.mkdir(exist_ok=True)
    path = folder / "org.yaml"
    path.write_text(ORG.format(catalogue=value))
    return invoke("validate", str(path), "--today", TODAY)


SECRETS = "db_password: Hunter2Secret\napi_token: tok-SECRET-42\nservices: [{key: Xsecret-KEY, uuid: s3cr3t}]\n"


@pytest.mark.parametrize("value", ["{outside}", "../outside.yaml", "sub/../../outside.yaml"],
                         ids=["absolute", "dotdot", "dotdot-inside"])
def test_catalogue_outside_the_config_folder_is_refused(tmp_path: Path, value: str) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(SECRETS)
    code, out, err = _validate_with_catalogue(tmp_path, value.format(outside=outside))
    assert code == 1 and "internal error" not in out + err
    [line] = [line for line in out.splitlines() if "error[catalogue]" in line]
    assert line.startswith(f"{tmp_path / 'configs' / 'org.yaml'}:2:12: error[catalogue]: catalogue path")
    assert "a catalogue must be in the config's folder" in line and "or below" in line
    for secret in ("Hunter2", "SECRET", "Xsecret", "s3cr3t", "db_password"):
        assert secret not in out + err, secret


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_catalogue_symlink_leading_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(SECRETS)
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "cat.yaml").symlink_to(outside)
    code, out, err = _validate_with_catalogue(tmp_path, "cat.yaml")
    assert code == 1
    [line] = [line for line in out.splitlines() if "error[catalogue]" in line]
    assert ":2:12: error[catalogue]: catalogue path 'cat.yaml' leads outside the config's folder" in line
    for secret in ("Hunter2", "SECRET", "Xsecret", "s3cr3t", "db_password"):
        assert secret not in out + err, secret


def test_catalogue_that_is_not_one_is_not_echoed(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    for content, problem in ((SECRETS + "db_password: again\n", "secrets.yaml:4:1: error[duplicate-key]"),
                             (SECRETS, "secrets.yaml:3:18: error[schema]: key is not valid")):
        (tmp_path / "configs" / "secrets.yaml").write_text(content)
        code, out, err = _validate_with_catalogue(tmp_path, "secrets.yaml")
        assert code == 1 and "internal error" not in out + err
        assert "org.yaml:2:12: error[catalogue]" in out        # the config says where it points
        assert problem in out                                   # the catalogue's problems, positioned
        for secret in ("Hunter2", "SECRET", "Xsecret", "s3cr3t", "db_password", "api_token", "again"):
            assert secret not in out + err, secret
    code, out, err = invoke("catalogue", "list", "--catalogue", str(tmp_path / "configs" / "secrets.yaml"))
    assert code == 1 and "error[schema]" in err
    assert "Hunter2" not in out + err and "db_password" not in out + err


def test_catalogue_in_a_subfolder_still_works(tmp_path: Path) -> None:
    (tmp_path / "configs" / "cats").mkdir(parents=True)
    (tmp_path / "configs" / "cats" / "cat.yaml").write_text(
        "services:\n  - {key: acme/portal, uuid: 3f2c1a7e-1111-4222-8333-944455556666, provider: Acme, "
        "name: Portal, level: EH2}\n")
    code, out, _ = _validate_with_catalogue(tmp_path, "cats/cat.yaml")
    assert code == 0, out


# --- the rest of the class: saved plans, sandbox serve, a served sandbox, catalogue import, pipes ---------------

def test_a_saved_plan_with_a_number_of_5000_digits_is_refused_in_one_line(tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text('{"format_version": 1, "today": ' + "9" * 5000 + "}")
    code, _, err = invoke("apply", "--plan", str(plan_file), "--backend", f"sandbox:{tmp_path / 'sb.db'}")
    assert_one_clear_line(code, err, f"{plan_file}: not a plan file (a number too long")


def _hold_lock(db: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\n"
                               "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                               "c.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(60)\n",
         str(db)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_served_sandbox_answers_a_held_lock_with_503_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    from reconciler.backend.sandbox.app import create_app
    from reconciler.backend.sandbox.serve import answer_locks_with_503

    db = tmp_path / "sb.db"
    assert invoke("sandbox", "init", "--kvk", "12345678", "--name", "Acme", "--admin", "a@acme.nl",
                  "--backend", f"sandbox:{db}")[0] == 0
    monkeypatch.setenv("RECONCILER_SANDBOX_LOCK_TIMEOUT", "0.5")   # before the app opens its database
    app = create_app(db, control_token="c" * 32)
    answer_locks_with_503(app)
    holder = _hold_lock(db)
    try:
        transport = httpx.ASGITransport(app=app)

        async def ask() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
                return await client.post("/sandbox/clock", json={"advance_days": 1},
                                         headers={"Sandbox-Control-Token": "c" * 32})

        import anyio
        response = anyio.run(ask)
    finally:
        holder.kill()
        holder.wait()
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "is locked by another process (waited 0.5 s)" in response.json()["detail"]
    assert response.headers["Retry-After"] == "5"


def test_catalogue_import_of_an_endless_device_is_refused_quickly() -> None:
    start = time.monotonic()
    code, _, err = invoke("catalogue", "import", "/dev/zero")
    assert time.monotonic() - start < 30
    assert code == 1 and "/dev/zero: file is larger than" in err and "internal error" not in err


def test_a_plan_from_a_pipe_reads_the_pipe_once(tmp_path: Path) -> None:
    fifo = tmp_path / "org.yaml"
    os.mkfifo(fifo)
    text = EXAMPLE.read_text()

    def feed() -> None:
        with open(fifo, "w") as handle:
            handle.write(text)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    proc = subprocess.run([sys.executable, "-m", "reconciler", "plan", str(fifo), "--backend",
                           f"sandbox:{tmp_path / 'sb.db'}", "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    writer.join(timeout=5)
    assert proc.returncode == 2, proc.stderr
    assert '"config_digest": "sha256:' in proc.stdout


def test_sandbox_serve_on_a_locked_database_says_so_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "sb.db"
    assert invoke("sandbox", "init", "--kvk", "12345678", "--name", "Acme", "--admin", "a@acme.nl",
                  "--backend", f"sandbox:{db}")[0] == 0
    holder = _hold_lock(db)
    try:
        proc = subprocess.run([sys.executable, "-m", "reconciler", "sandbox", "serve", "--db", str(db), "--port", "8798"],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "RECONCILER_SANDBOX_LOCK_TIMEOUT": "1"})
    finally:
        holder.kill()
        holder.wait()
    assert_one_clear_line(proc.returncode, proc.stderr, f"the sandbox database {db} is locked by another process")


def test_a_catalogue_with_control_characters_in_a_name_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "cat.yaml").write_text('services:\n  - {key: x/y, uuid: 0f0e0d0c-0b0a-4909-8807-060504030201, '
                                     'provider: "P\\e]0;pwned\\a", name: "ok", level: EH2}\n')
    code, out, err = _validate_with_catalogue(tmp_path, "cat.yaml")
    assert code == 1 and "cat.yaml:2:" in out + err and "\x1b" not in out + err
