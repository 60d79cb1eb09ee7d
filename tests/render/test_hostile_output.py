"""Whatever a backend or a config holds, no output subverts where it is shown (issue #10, item 2): the hostile
corpus of `hostile.py`, put in through the sandbox's API and through the config, comes out of every format of
`plan`, `drift`, `report access` and `apply` (report and progress) escaped, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import cli

from .hostile import (BACKEND_CHAIN, BACKEND_EMAIL, BACKEND_NAME, BACKEND_ORG, CONFIG_EMAIL, CONFIG_NAME, CONFIG_ORG,
                      EVIDENCE, assert_csv_safe, assert_html_safe, assert_json_safe, assert_markdown_safe,
                      assert_terminal_safe, hostile_setup, write_config)

REPO = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def unpruned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The hostile sandbox and config, `policy.prune: false` (the backend's means is listed as unmanaged);
    shared by the read-only commands."""
    return hostile_setup(tmp_path_factory.mktemp("hostile"))


# ------------------------------------------------------------------------------------------------- plan
def test_plan_text_shows_every_hostile_string_escaped(unpruned: tuple[Path, list[str]]) -> None:
    config, backend = unpruned
    code, out, err = invoke("plan", str(config), *backend)
    assert code == 2
    assert_terminal_safe(out)
    assert_terminal_safe(err)
    assert "\\x1b]0;pwned\\x07" in out and "\\u202e" in out and "\\x9b1m" in out      # shown, visibly
    assert CONFIG_EMAIL in out                                                           # markup is text here
    assert all(line.startswith(("organisation ", "  ", "Plan: ")) or not line for line in out.split("\n"))


def test_plan_markdown_escapes_every_value(unpruned: tuple[Path, list[str]]) -> None:
    config, backend = unpruned
    code, out, _ = invoke("plan", str(config), *backend, "--format", "markdown")
    assert code == 2
    assert_markdown_safe(out, comments=1)                       # only the tool's own marker comment
    assert "pwned" in out and "&lt;script&gt;" in out and "\\\\u202e" in out


def test_plan_json_reads_back_every_string_exactly(unpruned: tuple[Path, list[str]], tmp_path: Path) -> None:
    config, backend = unpruned
    saved = tmp_path / "plan.json"
    code, out, _ = invoke("plan", str(config), *backend, "--format", "json", "--out", str(saved))
    assert code == 2
    assert_json_safe(out, BACKEND_EMAIL, CONFIG_ORG, CONFIG_NAME, CONFIG_EMAIL)
    assert_json_safe(saved.read_text(encoding="utf-8"), BACKEND_EMAIL, CONFIG_ORG)


# ------------------------------------------------------------------------------------------------ drift
@pytest.mark.parametrize("fmt", ["text", "markdown", "html", "json"])
def test_drift_in_every_format(unpruned: tuple[Path, list[str]], fmt: str) -> None:
    config, backend = unpruned
    code, out, err = invoke("drift", str(config), *backend, "--format", fmt)
    assert code == 2
    assert_terminal_safe(err)
    assert EVIDENCE in out                                   # the backend's unmanaged means is in the report
    if fmt == "text":
        assert_terminal_safe(out)
    elif fmt == "markdown":
        assert_markdown_safe(out)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out and "\\|" in out and "\\[x\\]" in out
    elif fmt == "html":
        assert_html_safe(out)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out and "\\x1b]0;pwned\\x07" in out
    else:
        assert_json_safe(out, BACKEND_EMAIL, CONFIG_ORG, CONFIG_NAME)


# --------------------------------------------------------------------------------------- report access
@pytest.mark.parametrize("fmt", ["csv", "markdown", "html"])
def test_report_access_in_every_format(unpruned: tuple[Path, list[str]], fmt: str) -> None:
    config, backend = unpruned
    code, out, err = invoke("report", "access", str(config), *backend, "--format", fmt)
    assert code == 0
    assert_terminal_safe(err)
    assert EVIDENCE in out and "Dienst" in out and "SUM(1+1)" in out     # backend and catalogue strings shown
    if fmt == "csv":
        rows = assert_csv_safe(out)
        shown = {cell for row in rows for cell in row}
        assert "'" + BACKEND_CHAIN.replace("\x1b", "\\x1b").replace("\x07", "\\x07").replace("\x9b", "\\x9b") \
            .replace("\u202e", "\\u202e").replace("\r", "\\r") in shown     # a formula kept as text, visibly
        assert any(cell.startswith("'=evil\\x1b[31m") for cell in shown)
        assert any(cell.startswith("'-2+3 ") for cell in shown)              # the catalogue's provider
    elif fmt == "markdown":
        assert_markdown_safe(out)
    else:
        assert_html_safe(out)


# ------------------------------------------------------------------------------------------------ apply
def test_apply_text_report_and_progress_lines(tmp_path: Path) -> None:
    """prune: the backend's hostile means is terminated, the config's hostile user requested and its
    intermediary issued: every step names a hostile string, in the plan, the progress lines and the report."""
    config, backend = hostile_setup(tmp_path, prune=True)
    code, out, err = invoke("apply", str(config), *backend, "--auto-approve", "--audit-log", str(tmp_path / "a.jsonl"))
    assert code == 0, err
    assert_terminal_safe(out)
    assert_terminal_safe(err)
    report = out[out.index("\norganisation ", out.index("Plan: ")):]
    assert "done     - terminate_means =evil\\x1b[31m\\x1b]0;pwned\\x07" in report
    progress = [line for line in err.split("\n") if line.startswith("[")]
    assert len(progress) == 3 and any("terminate_means =evil\\x1b[31m" in line for line in progress)


def test_apply_json_report(tmp_path: Path) -> None:
    config, backend = hostile_setup(tmp_path, prune=True)
    code, out, _ = invoke("apply", str(config), *backend, "--auto-approve", "--quiet", "--format", "json",
                          "--audit-log", str(tmp_path / "a.jsonl"))
    assert code == 0
    data = assert_json_safe(out, BACKEND_EMAIL, CONFIG_EMAIL)
    assert data["organisations"][0]["name"] == CONFIG_ORG


def test_progress_to_a_pipe_has_no_escape_byte(tmp_path: Path) -> None:
    """A real process whose stderr and stdout are pipes: plain lines, not one ESC byte (neither the bar's
    cursor codes nor the data's)."""
    config, backend = hostile_setup(tmp_path, prune=True)
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")}
    env["FORCE_COLOR"] = ""
    done = subprocess.run([sys.executable, "-m", "reconciler", "apply", str(config), *backend, "--auto-approve",
                           "--audit-log", str(tmp_path / "a.jsonl")], capture_output=True, cwd=tmp_path, env=env,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"\x1b" not in done.stderr and b"\x1b" not in done.stdout
    assert b"\x9b" not in done.stderr and "\u202e".encode() not in done.stdout
    assert done.stderr.count(b"\n[") + done.stderr.startswith(b"[") == 3      # the plain lines, one per step


# ----------------------------------------------------------------------------------------------- import
def test_import_writes_yaml_that_reads_back_and_prints_nothing_raw(tmp_path: Path) -> None:
    config, backend = hostile_setup(tmp_path)
    code, out, err = invoke("import", "--kvk", "12345678", *backend)
    assert code == 0
    assert_terminal_safe(out)
    assert_terminal_safe(err)
    import yaml

    data = yaml.safe_load(out)
    assert data["organisation"]["name"] == BACKEND_ORG
    assert {u["name"] for u in data["users"]} >= {BACKEND_NAME}


# --------------------------------------------------------------------------------------------- validate
def test_validate_refuses_control_characters_in_an_email_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    for raw, shown in (("\\e[31m", "\\x1b[31m"), ("\\u202e", "\\u202e"), ("\\x9b", "\\x9b"), ("\\0", "\\x00")):
        path.write_text('version: 1\norganisation: {kvk: "12345678", name: Acme}\nusers:\n'
                        f'  - {{email: "a{raw}b@acme.nl", name: A, role: beheerder, level: EH3, '
                        'second_factor: {type: otp}}\n', encoding="utf-8")
        code, out, _ = invoke("validate", str(path))
        assert code == 1, raw
        assert_terminal_safe(out)
        assert f"{path}:4:13: error[schema]: 'a{shown}b@acme.nl' is not a valid email: " in out, out
        assert "control characters" in out


def test_validate_output_escapes_a_hostile_file_name(tmp_path: Path) -> None:
    """A diagnostic quotes the file's path: a name with an escape sequence does not retitle the terminal."""
    path = tmp_path / "org\x1b]0;pwned\x07\u202e.yaml"
    path.write_text('version: 1\norganisation: {kvk: "1234", name: Acme}\n', encoding="utf-8")
    code, out, _ = invoke("validate", str(path))
    assert code == 1
    assert_terminal_safe(out)
    assert "org\\x1b]0;pwned\\x07\\u202e.yaml:2:" in out
    code, out, _ = invoke("validate", "--format", "json", str(path))
    assert_json_safe(out, str(path))


def test_the_config_carries_what_its_schema_allows(tmp_path: Path) -> None:
    """The config strings of the corpus are valid: the tests above put them through, not an error."""
    code, out, _ = invoke("validate", str(write_config(tmp_path, prune=False)))
    assert code == 0 and out.endswith("valid: 0 errors, 0 warnings in 1 file\n"), out


# ------------------------------------------------------------------------------- removals and what happens next
def test_a_hostile_termination_and_what_happens_next_stay_escaped(tmp_path: Path) -> None:
    """prune: the hostile means is terminated; the plan comment's removals section lists what it loses (the
    hostile name, e-mail and catalogue service), the apply's what-happens-next names the config's hostile user
    (its request waits for approval): in markdown (the comment, `--summary`) and the text report."""
    config, backend = hostile_setup(tmp_path, prune=True)
    code, out, _ = invoke("plan", str(config), *backend, "--format", "markdown")
    assert code == 2
    assert_markdown_safe(out, comments=1)
    removals = out[out.index("#### Removals"):out.index("<details>")]
    assert "pwned" in removals and "loses " in removals and "evil/dienst" in removals
    summary = tmp_path / "summary.md"
    code, out, err = invoke("apply", str(config), *backend, "--auto-approve", "--audit-log", str(tmp_path / "a.jsonl"),
                            "--summary", str(summary))
    assert code == 0, err
    assert_terminal_safe(out)
    assert "\nWhat happens next:\n  Waiting for the supplier's approval" in out
    assert "&lt;script&gt;" in summary.read_text()
    assert_markdown_safe(summary.read_text())
