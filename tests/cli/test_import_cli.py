"""`reconciler import` as a command: stdout or --out DIR (never overwriting without --force), usage errors,
and every failure as one `error: ...` line with exit 1 and no traceback (an unknown KvK, no sandbox database,
a backend that cannot be reached, no token), also against a served sandbox over HTTP."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from tests.importer.common import TODAY, Repo, invoke

KVK = "12345678"
CONFIG = ('version: 1\norganisation: {kvk: "12345678", name: Acme}\nusers:\n'
          '  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}\n'
          '  - {email: u@acme.nl, name: U, role: gebruiker, level: EH2}\n')


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    repo = Repo(tmp_path)
    repo.apply(repo.write("acme.yaml", CONFIG))
    return repo


def test_stdout_holds_only_the_yaml(repo: Repo) -> None:
    r = repo.import_(KVK)
    assert r.code == 0 and r.err == "", str(r)
    data = yaml.safe_load(r.out)
    assert [u["email"] for u in data["users"]] == ["admin@acme.nl", "u@acme.nl"]
    assert r.out.startswith(f"# KvK {KVK}: imported by `reconciler import` at ")


def test_out_writes_the_file_and_never_overwrites_without_force(repo: Repo, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    r = repo.import_(KVK, "--out", str(out))
    assert r.code == 0 and f"wrote {out / f'{KVK}.yaml'}" in r.err and r.out == "", str(r)
    assert "organisation 12345678: 2 users, 0 authorisations, 0 chain authorisations" in r.err
    target = out / f"{KVK}.yaml"
    target.write_text("# mine\n")
    r = repo.import_(KVK, "--out", str(out))
    assert r.code == 1 and f"error: {target} already exists; nothing was written (--force overwrites)" in r.err
    assert target.read_text() == "# mine\n"
    r = repo.import_(KVK, "--out", str(out), "--force")
    assert r.code == 0, str(r)
    assert yaml.safe_load(target.read_text())["organisation"]["kvk"] == KVK
    assert sorted(p.name for p in out.iterdir()) == [f"{KVK}.yaml"]            # no temporary files left behind
    (out / f"{KVK}.catalogue.yaml").write_text("services: []\n")               # a catalogue file blocks too
    target.unlink()
    r = repo.import_(KVK, "--out", str(out))
    assert r.code == 1 and f"{KVK}.catalogue.yaml already exists" in r.err and not target.exists()


def test_an_out_that_is_a_file(repo: Repo, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    r = repo.import_(KVK, "--out", str(tmp_path / "file"))
    assert r.code == 1 and "error: cannot create the directory" in r.err and "Traceback" not in r.err


def test_an_unknown_kvk_and_a_missing_sandbox_are_errors_that_change_nothing(repo: Repo, tmp_path: Path) -> None:
    r = repo.import_("11111111")
    assert r.code == 1 and r.out == "" and "Traceback" not in r.err
    assert r.err == f"error: organisation 11111111 is not known to the sandbox sandbox:{repo.db}\n"
    assert repo.import_("11111111").code == 1                                  # still unknown: nothing bootstrapped
    missing = tmp_path / "nowhere" / "sb.db"
    r = invoke("import", "--kvk", KVK, "--backend", f"sandbox:{missing}")
    assert r.code == 1 and f"error: there is no sandbox database at {missing}: nothing to import" in r.err
    assert not missing.parent.exists()


def test_usage_errors_exit_1(tmp_path: Path) -> None:
    for args, message in [
        (["import"], "Missing option '--kvk'"),
        (["import", "--kvk", "1234"], "--kvk '1234' is not a KvK number"),
        (["import", "--kvk", KVK, "--from-csv", "x.csv", "--backend", "sandbox:x.db"], "--backend is not used"),
        (["import", "--kvk", KVK, "--name", "Acme"], "--name is only for --from-csv"),
        (["import", "--kvk", KVK, "--backend", "ftp://x"], "invalid --backend value"),
    ]:
        r = invoke(*args)
        assert r.code == 1 and message in r.err and "Traceback" not in r.err, (args, str(r))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_remote_backend_that_cannot_be_reached_or_has_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.backend.client as client

    monkeypatch.setattr(client, "RetryPolicy", lambda: client.NO_RETRY)       # one attempt: the test stays fast
    url = f"http://127.0.0.1:{_closed_port()}"
    r = invoke("import", "--kvk", KVK, "--backend", url, env={"BEHEER_API_TOKEN": "t0ken-not-shown"})
    assert r.code == 1 and r.err.startswith("error: Could not reach the beheer backend"), str(r)
    assert "Traceback" not in r.err and "t0ken-not-shown" not in r.err
    r = invoke("import", "--kvk", KVK, "--backend", url, env={"BEHEER_API_TOKEN": ""})
    assert r.code == 1 and "BEHEER_API_TOKEN is not set" in r.err, str(r)


def test_over_http_with_a_token(tmp_path: Path) -> None:
    """A served sandbox: the import reads as the token's admin; the header names the URL, never the token; a KvK
    the admin is not linked to is an error; the result validates and plans 0 over HTTP too."""
    from tests.apply.served import Cli, run_cli, served_sandbox

    with served_sandbox(tmp_path) as sandbox:
        sandbox.set_today(TODAY)
        cli = Cli(sandbox, tmp_path)
        token = cli.init(KVK, "Acme", "admin@acme.nl")
        r = run_cli("import", "--kvk", KVK, "--backend", sandbox.url, "--out", "orgs", cwd=tmp_path, token=token)
        assert r.code == 0, str(r)
        text = (tmp_path / "orgs" / f"{KVK}.yaml").read_text()
        assert f"# from the beheer backend {sandbox.url}\n" in text and token not in text
        assert "read as admin@acme.nl" in text
        valid = run_cli("validate", "orgs", "--today", TODAY.isoformat(), cwd=tmp_path)
        assert valid.code == 0, str(valid)
        plan = run_cli("plan", "orgs", "--backend", sandbox.url, cwd=tmp_path, token=token)
        assert plan.code == 0, str(plan)
        r = run_cli("import", "--kvk", "11111111", "--backend", sandbox.url, cwd=tmp_path, token=token)
        assert r.code == 1 and "Traceback" not in r.err, str(r)
        assert f"error: organisation 11111111 is not known to the backend {sandbox.url}, or the token's admin is " \
               "not linked to it" in r.err
