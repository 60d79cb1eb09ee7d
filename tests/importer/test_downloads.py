"""`--backend export:DIR` (issue 14): the Beheermodule's downloads as a read-only backend. The downloads are the
sandbox's own (`reconciler sandbox export`), so every claim is checked against ground truth: the plan through
`export:` is the plan through the sandbox's API, apply refuses and points at the runbook, and a bad download is
one positioned message and exit 1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconciler.cli.main import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "org.yaml"
KVK = "99966564"
TODAY = "2026-12-01"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    shutil.copy(EXAMPLE, tmp_path / "org.yaml")
    return tmp_path


def sandbox(repo: Path) -> str:
    return f"sandbox:{repo / 'sb.db'}"


def export(repo: Path, fmt: str = "csv") -> str:
    """The sandbox's downloads of the example organisation under repo/dl/KVK; the --backend value for them."""
    target = repo / "dl" / KVK
    if target.exists():
        shutil.rmtree(target)
    done = run("sandbox", "export", "--kvk", KVK, "--out", str(target), "--format", fmt, "--backend", sandbox(repo))
    assert done.exit_code == 0, done.output
    return f"export:{repo / 'dl'}"


def plan_json(repo: Path, backend: str) -> dict[str, Any]:
    made = run("plan", "org.yaml", "--format", "json", "--today", TODAY, "--backend", backend)
    assert made.exit_code in (0, 2), made.output
    return json.loads(made.stdout)


def comparable(plan: dict[str, Any]) -> list[Any]:
    """What the plan decides, without what only an API has (the revision, the backend's name)."""
    [org] = plan["organisations"]
    return [[(c["action"], c["target"], c["services"], c["params"], c["stage"]) for c in org["changes"]],
            [(d["action"], d["target"], d["services"], d["rule"]) for d in org["deferred"]],
            [(m["action"], m["target"], m["rule"]) for m in org["manual"]]]


def test_the_plan_through_the_downloads_is_the_plan_through_the_api(repo: Path) -> None:
    """At each stage of the example's way in (requested, approved and activated, converged) the downloads give
    the same changes, deferred and manual steps as the sandbox's API, means ids and all."""
    applied = run("apply", "org.yaml", "--auto-approve", "-q", "--audit-log", "-", "--today", TODAY,
                  "--backend", sandbox(repo))
    assert applied.exit_code == 0, applied.output
    for step in (None, "approve", "activate"):
        if step:
            assert run("sandbox", step, "--all", "--backend", sandbox(repo)).exit_code == 0
        via_api, via_export = plan_json(repo, sandbox(repo)), plan_json(repo, export(repo))
        assert comparable(via_export) == comparable(via_api), step
        assert via_export["organisations"][0]["revision"] is None
    assert run("apply", "org.yaml", "--auto-approve", "-q", "--audit-log", "-", "--today", TODAY,
               "--backend", sandbox(repo)).exit_code == 0
    backend = export(repo, "xlsx")
    converged = run("plan", "org.yaml", "--today", TODAY, "--backend", backend)
    assert converged.exit_code == 0, converged.output          # the belastingdienst means too: its type is unknown
    assert "the downloads do not show a means' type or subscription term" in converged.stderr
    drift = run("drift", "org.yaml", "--backend", backend)
    assert drift.exit_code == 0 and "in sync" in drift.stdout and "revision" not in drift.stdout, drift.output
    access = run("report", "access", "org.yaml", "--backend", backend)
    assert access.exit_code == 0 and "a.smit@ketelaarklip.nl" in access.stdout


def test_apply_refuses_and_points_at_the_runbook(repo: Path) -> None:
    run("sandbox", "init", "--kvk", KVK, "--name", "Ketelaar Klip", "--admin", "j.bakker@ketelaarklip.nl",
        "--second-factor", "sms", "--phone", "+31612345678", "--backend", sandbox(repo))
    backend = export(repo)
    refused = run("apply", "org.yaml", "--auto-approve", "--audit-log", "-", "--backend", backend)
    assert refused.exit_code == 1, refused.output
    assert "is the Beheermodule's downloads" in refused.stderr and "--format runbook" in refused.stderr
    assert "Traceback" not in refused.output


def test_import_from_the_downloads_plans_nothing_against_them(repo: Path) -> None:
    assert run("apply", "org.yaml", "--auto-approve", "-q", "--audit-log", "-", "--backend", sandbox(repo)
               ).exit_code == 0
    backend = export(repo)
    imported = run("import", "--kvk", KVK, "--backend", backend, "--out", str(repo / "imported"))
    assert imported.exit_code == 0, imported.output
    again = run("plan", str(repo / "imported" / f"{KVK}.yaml"), "--backend", backend)
    assert again.exit_code == 0, again.output


# ------------------------------------------------------------------------------------------- bad downloads
def _downloads(repo: Path) -> Path:
    assert run("apply", "org.yaml", "--auto-approve", "-q", "--audit-log", "-", "--backend", sandbox(repo)
               ).exit_code == 0
    export(repo)
    return repo / "dl" / KVK


def _refused(repo: Path, *says: str) -> None:
    made = run("plan", "org.yaml", "--backend", f"export:{repo / 'dl'}")
    assert made.exit_code == 1, made.output
    assert "Traceback" not in made.output and made.stdout == ""
    for text in says:
        assert text in made.stderr, made.stderr


def test_a_users_file_without_a_column_says_which(repo: Path) -> None:
    folder = _downloads(repo)
    users = folder / "gebruikers.csv"
    users.write_text(users.read_text(encoding="utf-8-sig").replace(";Niveau;", ";Level2;"), encoding="utf-8")
    _refused(repo, "gebruikers.csv: row 1 (the header)", "missing column Niveau")


def test_a_date_in_another_format_is_positioned(repo: Path) -> None:
    folder = _downloads(repo)
    auths = folder / "machtigingen.csv"
    lines = auths.read_text(encoding="utf-8-sig").splitlines()
    lines[1] = lines[1].rsplit(";", 1)[0] + ";31 februari 2030"
    auths.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _refused(repo, "machtigingen.csv: row 2, column G")


def test_a_file_of_another_kind_and_a_second_users_file_are_refused(repo: Path) -> None:
    folder = _downloads(repo)
    (folder / "notes.csv").write_text("Datum;Opmerking\n01-01-2026;iets\n", encoding="utf-8")
    _refused(repo, "notes.csv: row 1 (the header): not a download reconciler knows", "Found: 'Datum', 'Opmerking'")
    (folder / "notes.csv").unlink()
    shutil.copy(folder / "gebruikers.csv", folder / "gebruikers-oud.csv")
    _refused(repo, "a second users file")


def test_a_service_the_catalogue_does_not_have_is_positioned(repo: Path) -> None:
    folder = _downloads(repo)
    auths = folder / "machtigingen.csv"
    lines = auths.read_text(encoding="utf-8-sig").splitlines()
    cells = lines[1].split(";")
    service, provider = cells[3], cells[4]
    cells[3] = service + " X"
    auths.write_text("\n".join([lines[0], ";".join(cells), *lines[2:]]) + "\n", encoding="utf-8")
    _refused(repo, "machtigingen.csv: row 2, column D", f"service '{service} X' of '{provider}' is not in the catalogue")


def test_an_empty_users_file_and_a_missing_folder(repo: Path) -> None:
    folder = _downloads(repo)
    (folder / "gebruikers.csv").write_text("", encoding="utf-8")
    made = run("plan", "org.yaml", "--backend", f"export:{repo / 'dl'}")
    assert made.exit_code == 1 and "Traceback" not in made.output and "gebruikers.csv" in made.stderr, made.output
    missing = run("plan", "org.yaml", "--backend", f"export:{repo / 'nothing-here'}")
    assert missing.exit_code == 1 and "export: needs a directory" in missing.stderr


def test_one_person_in_two_exported_organisations_is_one_means(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    """examples/multi-org: the director and the controller are in both organisations (R15, one means each). Both
    organisations' downloads (`sandbox export --all`) give the same plan as the API at every stage, and the
    shared people are one means across the two folders."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    shutil.copytree(EXAMPLE.parent / "multi-org", tmp_path / "orgs")
    db = f"sandbox:{tmp_path / 'sb.db'}"

    def both() -> tuple[dict[str, Any], dict[str, Any]]:
        if (tmp_path / "dl").exists():
            shutil.rmtree(tmp_path / "dl")
        assert run("sandbox", "export", "--all", "--out", str(tmp_path / "dl"), "--format", "csv",
                   "--backend", db).exit_code == 0
        plans = []
        for backend in (db, f"export:{tmp_path / 'dl'}"):
            made = run("plan", "orgs", "--format", "json", "--today", TODAY, "--backend", backend)
            assert made.exit_code in (0, 2), made.output
            plans.append(json.loads(made.stdout))
        return plans[0], plans[1]

    def decided(plan: dict[str, Any]) -> list[Any]:
        return [[(c["action"], c["target"], c["params"]) for c in o["changes"]]
                + [(d["action"], d["target"], d["rule"]) for d in o["deferred"] + o["manual"]]
                for o in plan["organisations"]]

    assert run("apply", "orgs", "--auto-approve", "-q", "--audit-log", "-", "--today", TODAY,
               "--backend", db).exit_code == 0
    for step in ("approve", "activate", "apply", "approve", "activate", "apply"):
        if step == "apply":                               # the links to the other organisation (R15)
            assert run("apply", "orgs", "--auto-approve", "-q", "--audit-log", "-", "--today", TODAY,
                       "--backend", db).exit_code == 0
        else:
            assert run("sandbox", step, "--all", "--backend", db).exit_code == 0
        via_api, via_export = both()
        assert decided(via_export) == decided(via_api), step
    # the sandbox's two organisations have no person in common yet (each link is a manual step here, R4), so
    # the shared director is written into both folders as the Beheermodule would list her: one means
    from reconciler.domain.catalogue import bundled_catalogue
    from reconciler.importer.downloads import read_downloads

    header = "ID;Naam;E-mailadres;Rol;Status;Activatie einddatum;Niveau;Tweede factor\n"
    for kvk, role in (("11111111", "Beheerder"), ("22222222", "Gebruiker")):
        (tmp_path / "two" / kvk).mkdir(parents=True)
        (tmp_path / "two" / kvk / "gebruikers.csv").write_text(
            header + f"m-eva;Eva van Dijk;{'E.vanDijk' if role == 'Gebruiker' else 'e.vandijk'}@vandijk-groep.nl;"
            f"{role};Actief;;EH3;OTP\n", encoding="utf-8")
    made = read_downloads(tmp_path / "two", ["11111111", "22222222"], bundled_catalogue())
    [eva] = made.actual.world.means.values()
    assert made.actual.world.linked[eva.id] == ("11111111", "22222222")
    assert {k: s.members[eva.id].role.value for k, s in made.actual.world.orgs.items()} == {
        "11111111": "beheerder", "22222222": "gebruiker"}
