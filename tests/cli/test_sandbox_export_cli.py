"""`reconciler sandbox export (--kvk K | --all) --out DIR [--format csv|xlsx|both]`: one stderr line per file
written, exit 0; a user's mistake is one `error: ...` line, exit 1, nothing written; `import --from-csv` of the
written users file, then `plan` against the same sandbox, has nothing to do (the round trip); a served sandbox
(`--backend http://127.0.0.1:PORT`) exports the same files."""

from __future__ import annotations

from pathlib import Path

from tests.apply.served import Cli as ServedCli, served_sandbox
from tests.backend.sandbox.test_export import ACME, OTHER, build
from tests.importer.common import Repo, invoke

NAMES = ("gebruikers", "machtigingen", "ketenmachtigingen")


def test_kvk_writes_six_files_and_says_each(tmp_path: Path) -> None:
    repo = build(tmp_path)
    out = tmp_path / "out"
    r = repo.ok("sandbox", "export", "--kvk", ACME, "--out", str(out))
    assert r.out == ""
    assert r.err.splitlines() == [f"wrote {out / f'{name}.{fmt}'} ({rows} row{'s' * (rows != 1)})"
                                  for name, rows in zip(NAMES, (8, 3, 2)) for fmt in ("csv", "xlsx")]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.{f}" for n in NAMES for f in ("csv", "xlsx"))


def test_all_and_format_csv(tmp_path: Path) -> None:
    repo = build(tmp_path)
    out = tmp_path / "all"
    r = repo.ok("sandbox", "export", "--all", "--out", str(out), "--format", "csv")
    assert len(r.err.splitlines()) == 6 and all(line.startswith("wrote ") for line in r.err.splitlines())
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(
        f"{kvk}/{name}.csv" for kvk in (ACME, OTHER) for name in NAMES)
    r = repo.ok("sandbox", "export", "--kvk", OTHER, "--out", str(tmp_path / "x"), "--format", "xlsx")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == [f"{n}.xlsx" for n in sorted(NAMES)]


def test_mistakes_are_one_error_line_and_exit_1(tmp_path: Path) -> None:
    missing = f"sandbox:{tmp_path / 'none.db'}"
    out = tmp_path / "out"
    r = invoke("sandbox", "export", "--kvk", ACME, "--out", str(out), "--backend", missing)
    assert r.code == 1 and r.err.startswith("error: there is no sandbox database at") and len(r.err.splitlines()) == 1
    assert not (tmp_path / "none.db").exists()
    repo = Repo(tmp_path)
    repo.ok("sandbox", "init", "--kvk", ACME, "--name", "Acme", "--admin", "a@acme.nl")
    (tmp_path / "file.csv").write_text("x")
    for args, said in [(("--kvk", "11112222", "--out", str(out)), "error: organisation 11112222 is not known to the "
                                                                   f"sandbox {repo.backend}"),
                       (("--kvk", ACME, "--out", str(tmp_path / "file.csv")), f"error: --out: {tmp_path / 'file.csv'} "
                                                                               "is a file, not a folder"),
                       (("--kvk", "1234", "--out", str(out)), "error: --kvk '1234' is not a KvK number"),
                       (("--kvk", ACME, "--all", "--out", str(out)), "error: name one organisation with --kvk K, or "
                                                                      "give --all (not both)"),
                       (("--out", str(out)), "error: name one organisation with --kvk K, or give --all")]:
        r = repo.run("sandbox", "export", *args)
        assert r.code == 1 and r.err.startswith(said) and len(r.err.splitlines()) == 1, str(r)
        assert "Traceback" not in r.err and r.out == ""
    assert not out.exists()


def test_import_from_the_export_then_plan_has_nothing_to_do(tmp_path: Path) -> None:
    """The round trip: the users file (CSV and XLSX) imported is valid, and planning it against the sandbox it
    came from exits 0 (the export lacks authorisations and chains: with prune false they are only unmanaged)."""
    repo = build(tmp_path)
    out = tmp_path / "out"
    repo.ok("sandbox", "export", "--kvk", ACME, "--out", str(out))
    for fmt in ("csv", "xlsx"):
        imported = tmp_path / f"imported-{fmt}"
        r = invoke("import", "--from-csv", str(out / f"gebruikers.{fmt}"), "--kvk", ACME, "--name", "Acme B.V.",
                   "--out", str(imported))
        assert r.code == 0, str(r)
        path = imported / f"{ACME}.yaml"
        valid = invoke("validate", str(path), "--today", repo.today.isoformat())
        assert valid.code == 0 and "0 errors" in valid.out, str(valid) + path.read_text()
        plan = repo.run("plan", str(path))
        assert plan.code == 0, str(plan) + path.read_text()
        assert "0 to add, 0 to change, 0 to remove" in plan.out
        assert "lapsed@acme.nl" in path.read_text()                   # left out, commented (R5)


def test_a_served_sandbox_exports_the_same_files(tmp_path: Path) -> None:
    """`--backend http://127.0.0.1:PORT` with SANDBOX_CONTROL_TOKEN: the same bytes as the embedded export of
    the same database (CSV; the XLSX differs only in its time stamps)."""
    with served_sandbox(tmp_path) as sandbox:
        cli = ServedCli(sandbox, tmp_path)
        cli.init(ACME, "Acme B.V.", "admin@acme.nl", factor={"type": "sms", "phone": "+31612345678"})
        r = cli.run("sandbox", "export", "--kvk", ACME, "--out", str(tmp_path / "served"), "--format", "csv")
        assert r.code == 0 and len(r.err.splitlines()) == 3, str(r)
        served = (tmp_path / "served" / "gebruikers.csv").read_bytes()
        assert b";admin@acme.nl;Beheerder;Actief;;EH3;SMS | 0612345678\r\n" in served
        r = cli.run("sandbox", "export", "--kvk", OTHER, "--out", str(tmp_path / "none"))
        assert r.code == 1 and r.err.startswith(f"error: organisation {OTHER} is not known"), str(r)
    r = invoke("sandbox", "export", "--kvk", ACME, "--out", str(tmp_path / "embedded"), "--format", "csv",
               "--backend", f"sandbox:{tmp_path / 'sandbox.db'}")
    assert r.code == 0, str(r)
    for name in NAMES:
        assert (tmp_path / "embedded" / f"{name}.csv").read_bytes() == (tmp_path / "served" / f"{name}.csv").read_bytes()
