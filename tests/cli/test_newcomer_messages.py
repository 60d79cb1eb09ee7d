"""What a newcomer meets (issue 11, item 5), through the commands on an embedded sandbox: one error with the
fix for a Dutch date, a misspelt key and an unquoted phone number; a duplicate e-mail by line numbers; the
example's first plan without a warning nobody can act on; the acting admin's change said in the plan's
header; a confirmation that asks; and `.reconciler/` kept out of the config repository by `import`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from reconciler.cli.main import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "org.yaml"
TODAY = "2026-01-15"

ORG = """\
version: 1
organisation: {kvk: "12345678", name: Acme}
users:
  - email: a@acme.nl
    name: Anna
    role: beheerder
    level: EH3
    second_factor: {type: otp}
    authorisations:
      - {service: rvo/tenderned, until: 2027-06-30}
"""


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def validate(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    path = tmp_path / "org.yaml"
    path.write_text(text, encoding="utf-8")
    code, out, err = invoke("validate", str(path), "--today", TODAY)
    assert "Traceback" not in out + err
    return code, [line.replace(str(path), "org.yaml") for line in out.splitlines()]


# --- validate ------------------------------------------------------------------------------------------------

def test_a_dutch_date_is_one_error_with_the_date_it_means(tmp_path: Path) -> None:
    code, lines = validate(tmp_path, ORG.replace("until: 2027-06-30", "until: 30-06-2027"))
    assert code == 1
    assert lines == ["org.yaml:10:41: error[schema]: '30-06-2027' is not a date as YYYY-MM-DD or `rolling`; "
                     "did you mean 2027-06-30?",
                     "invalid: 1 error, 0 warnings in 1 file"]


@pytest.mark.parametrize(("written", "column"), [("0622222222", 39), ("+31622222222", 39)])
def test_an_unquoted_phone_number_gets_the_quoted_international_form(tmp_path: Path, written: str,
                                                                     column: int) -> None:
    # YAML reads both as numbers (the first as an octal one): the tip is the form the schema wants, quoted
    code, lines = validate(tmp_path, ORG.replace("{type: otp}", "{type: sms, phone: " + written + "}"))
    assert code == 1
    assert lines == [f"org.yaml:8:{column}: error[schema]: phone must be a string, not a whole number "
                     '(write it in quotes in international form: "+31622222222")',
                     "invalid: 1 error, 0 warnings in 1 file"]


def test_a_quoted_dutch_phone_number_gets_its_international_form(tmp_path: Path) -> None:
    code, lines = validate(tmp_path, ORG.replace("{type: otp}", '{type: sms, phone: "06-22222222"}'))
    assert code == 1 and len(lines) == 2
    assert lines[0].endswith('did you mean "+31622222222"?')


def test_a_misspelt_key_is_one_error_that_suggests_the_right_one(tmp_path: Path) -> None:
    code, lines = validate(tmp_path, ORG.replace("    role: beheerder", "    rol: beheerder"))
    assert code == 1
    assert len(lines) == 2 and lines[1] == "invalid: 1 error, 0 warnings in 1 file"      # not also "missing 'role'"
    assert lines[0].startswith("org.yaml:6:5: error[schema]: unknown key 'rol'; did you mean 'role'? (allowed here:")


def test_a_duplicate_email_names_the_line_of_the_first(tmp_path: Path) -> None:
    text = ORG + "  - {email: A@Acme.nl, name: Anna again, role: gebruiker, level: EH2}\n"
    code, lines = validate(tmp_path, text)
    assert code == 1
    assert lines[0] == ("org.yaml:11:13: error[duplicate-email]: A@Acme.nl is declared twice (first on line 4); "
                        "e-mail addresses identify people and are compared case-insensitively")


# --- plan and apply ------------------------------------------------------------------------------------------

def test_the_examples_first_plan_has_no_warning_and_the_admin_has_its_subscription(tmp_path: Path) -> None:
    backend = f"sandbox:{tmp_path / 'sb.db'}"
    code, out, err = invoke("plan", str(EXAMPLE), "--backend", backend)
    assert code == 2, err
    assert "warning" not in out            # was: "subscription is 1y in the backend, 3y in the config"
    code, out, err = invoke("import", "--kvk", "99966564", "--backend", backend)
    assert code == 0, err
    [admin] = [u for u in yaml.safe_load(out)["users"] if u["email"] == "j.bakker@ketelaarklip.nl"]
    assert admin["subscription"] == "3y"   # the sandbox created the first admin as the config declares it


def _taken_over(tmp_path: Path, config: str) -> tuple[str, Path]:
    """A sandbox whose organisation 12345678 was set up with x@acme.nl as its only admin, and `config`."""
    backend = f"sandbox:{tmp_path / 'sb.db'}"
    code, _, err = invoke("sandbox", "init", "--kvk", "12345678", "--name", "Acme", "--admin", "x@acme.nl",
                          "--backend", backend)
    assert code == 0, err
    path = tmp_path / "org.yaml"
    path.write_text(config, encoding="utf-8")
    return backend, path


def test_when_the_first_beheerder_is_gone_the_plan_header_says_who_acts_and_why(tmp_path: Path) -> None:
    config = ORG.replace("    authorisations:\n      - {service: rvo/tenderned, until: 2027-06-30}\n", "") + \
        "  - {email: X@acme.nl, name: X, role: beheerder, level: EH3, second_factor: {type: otp}}\n"
    backend, path = _taken_over(tmp_path, config)
    code, out, err = invoke("plan", str(path), "--backend", backend)
    assert code == 2, err
    assert out.splitlines()[0] == ("organisation 12345678 Acme (revision 1, acting as x@acme.nl because the first "
                                   "beheerder in the config, a@acme.nl, is not an active beheerder in the backend)")
    code, out, err = invoke("plan", str(path), "--backend", backend, "--format", "markdown")
    assert code == 2, err
    assert ("Planned on backend revision 1, acting as x@acme.nl because the first beheerder in the config, "
            "a@acme.nl, is not an active beheerder in the backend.") in out


def test_when_no_declared_beheerder_is_active_the_header_says_so(tmp_path: Path) -> None:
    config = ORG + "  - {email: b@acme.nl, name: B, role: beheerder, level: EH3, second_factor: {type: otp}}\n"
    backend, path = _taken_over(tmp_path, config)
    code, out, err = invoke("plan", str(path), "--backend", backend)
    assert code == 2, err
    assert out.splitlines()[0].endswith("acting as x@acme.nl because the first beheerder in the config, a@acme.nl, "
                                        "is not an active beheerder in the backend, nor is any other beheerder in "
                                        "the config)")


def test_the_configured_admin_acting_needs_no_explanation(tmp_path: Path) -> None:
    backend = f"sandbox:{tmp_path / 'sb.db'}"
    code, out, _ = invoke("plan", str(EXAMPLE), "--backend", backend)
    assert out.splitlines()[0] == ("organisation 99966564 Ketelaar Klip Installatietechniek B.V. (revision 1, "
                                   "acting as j.bakker@ketelaarklip.nl)")


def test_the_confirmation_is_a_question_and_only_yes_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import reconciler.cli.apply as apply_cli

    monkeypatch.setattr(apply_cli, "interactive", lambda: True)
    backend = f"sandbox:{tmp_path / 'sb.db'}"
    args = ("apply", str(EXAMPLE), "--backend", backend, "--audit-log", "-")
    code, _, err = invoke(*args, stdin="y\n")
    assert code == 1
    assert "\nApply these 9 changes to 1 organisation (99966564)? Type 'yes' to go on:" in err
    assert "apply cancelled: nothing was changed" in err
    code, out, err = invoke(*args, stdin="yes\n")
    assert code == 0 and "Apply: 9 done" in out, err


# --- import: .reconciler/ stays out of the config repository -------------------------------------------------

@pytest.fixture
def imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory (the current one) with a sandbox that knows organisation 12345678."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "org.yaml").write_text(ORG, encoding="utf-8")
    code, _, err = invoke("plan", "org.yaml")        # the default backend: sandbox:.reconciler/sandbox.db
    assert code == 2, err
    return work


def test_import_into_a_new_folder_at_a_repository_root_ignores_reconciler(imported: Path) -> None:
    (imported / ".git").mkdir()
    (imported / ".gitignore").write_text("*.pyc", encoding="utf-8")          # no final newline
    code, _, err = invoke("import", "--kvk", "12345678", "--out", "config")
    assert code == 0, err
    assert "added .reconciler/ to .gitignore (the embedded sandbox and the audit log are not configuration)" in err
    lines = (imported / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "*.pyc" and lines[-1] == ".reconciler/"
    (imported / "config" / "12345678.yaml").unlink()
    (imported / "config").rmdir()
    code, _, err = invoke("import", "--kvk", "12345678", "--out", "config")     # again: no second entry
    assert code == 0 and ".gitignore" not in err, err
    assert (imported / ".gitignore").read_text(encoding="utf-8").count(".reconciler/") == 1


def test_import_elsewhere_only_advises(imported: Path) -> None:
    code, _, err = invoke("import", "--kvk", "12345678", "--out", "config")
    assert code == 0, err
    assert ("note: .reconciler/ holds the embedded sandbox and the audit log, not configuration: add "
            "`.reconciler/` to the .gitignore of your config repository") in err
    assert not (imported / ".gitignore").exists()


def test_import_into_an_existing_folder_leaves_gitignore_alone(imported: Path) -> None:
    (imported / ".git").mkdir()
    (imported / "config").mkdir()
    code, _, err = invoke("import", "--kvk", "12345678", "--out", "config")
    assert code == 0, err
    assert ".gitignore" not in err and not (imported / ".gitignore").exists()
