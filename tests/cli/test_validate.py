"""`reconciler validate` through the command line: exit codes, output formats, and no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner, Result

from reconciler.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "org.yaml"
TODAY = "2025-06-01"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def output(result: Result) -> str:
    """stdout and stderr together, whichever click version is installed."""
    try:
        return result.stdout + result.stderr
    except ValueError:  # pragma: no cover - older click without separate stderr
        return result.output


def test_valid_file_exits_0(minimal_org: str, write: Callable[..., Path]) -> None:
    path = write("org.yaml", minimal_org)
    result = run("validate", str(path), "--today", TODAY)
    assert result.exit_code == 0
    assert result.stdout == "valid: 0 errors, 0 warnings in 1 file\n"


def test_example_is_valid() -> None:
    result = run("validate", str(EXAMPLE), "--today", TODAY)
    assert result.exit_code == 0, result.stdout
    assert result.stdout.strip().endswith("valid: 0 errors, 0 warnings in 1 file")


def test_warnings_alone_still_exit_0(minimal_org: str, write: Callable[..., Path]) -> None:
    path = write("org.yaml", minimal_org + "groups:\n  spare:\n    authorisations: []\n")
    result = run("validate", str(path), "--today", TODAY)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{path}:12:3: warning[unused-group]: group 'spare' is given to no user",
        "valid: 0 errors, 1 warning in 1 file",
    ]


def test_invalid_file_exits_1_with_positioned_lines(minimal_org: str, write: Callable[..., Path]) -> None:
    path = write("org.yaml", minimal_org.replace("level: EH3", "level: EH5").replace('"12345678"', '"1"'))
    result = run("validate", str(path), "--today", TODAY)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{path}:3:8: error[schema]: '1' is not a valid kvk")
    assert lines[1].startswith(f"{path}:9:12: error[schema]: 'EH5' is not allowed for level")
    assert lines[-1] == "invalid: 2 errors, 0 warnings in 1 file"


def test_summary_counts_files_errors_and_warnings(tmp_path: Path, write: Callable[..., Path],
                                                 minimal_org: str) -> None:
    write("a.yaml", minimal_org + "groups:\n  spare:\n    authorisations: []\n")
    write("b.yaml", minimal_org.replace("12345678", "87654321").replace("a@acme", "b@acme")
          .replace("role: beheerder", "role: gebruiker"))
    write("c.yml", minimal_org.replace("12345678", "11111111").replace("a@acme", "c@acme")
          .replace("{type: otp}", "{type: sms}"))
    result = run("validate", str(tmp_path), "--today", TODAY)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "invalid: 2 errors, 1 warning in 3 files"


def test_relative_paths_are_shown_as_given(minimal_org: str, write: Callable[..., Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write("orgs/org.yaml", minimal_org.replace("role: beheerder", "role: gebruiker"))
    monkeypatch.chdir(tmp_path)
    result = run("validate", "orgs/org.yaml", "--today", TODAY)
    assert result.stdout.startswith("orgs/org.yaml:6:3: error[R1]:")


def test_json_format(minimal_org: str, write: Callable[..., Path]) -> None:
    path = write("org.yaml", minimal_org.replace("role: beheerder", "role: gebruiker")
                 + "groups:\n  spare:\n    authorisations: []\n")
    result = run("validate", str(path), "--format", "json", "--today", TODAY)
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert isinstance(data, list) and len(data) == 2
    for item in data:
        assert set(item) == {"path", "line", "column", "severity", "code", "message", "json_path"}
        assert item["path"] == str(path)
        assert isinstance(item["line"], int) and isinstance(item["column"], int)
    assert [(d["line"], d["column"], d["severity"], d["code"], d["json_path"]) for d in data] == [
        (6, 3, "error", "R1", "$.users"), (12, 3, "warning", "unused-group", "$.groups.spare")]


def test_json_format_valid_is_an_empty_list() -> None:
    result = run("validate", str(EXAMPLE), "--format", "json", "--today", TODAY)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_today_changes_the_verdict(minimal_org: str, write: Callable[..., Path]) -> None:
    path = write("org.yaml", minimal_org + "    authorisations:\n      - {service: rvo/tenderned, until: 2030-06-01}\n")
    assert run("validate", str(path), "--today", "2025-06-01").exit_code == 0
    late = run("validate", str(path), "--today", "2025-05-31")
    assert late.exit_code == 1
    assert "error[R9]" in late.stdout


@pytest.mark.parametrize("args", [
    ["validate"],                                   # no PATH
    ["validate", "--bogus", "x.yaml"],              # unknown option
    ["validate", str(EXAMPLE), "--format", "xml"],  # bad choice
    ["validate", str(EXAMPLE), "--today", "2025-13-01"],
    ["validate", str(EXAMPLE), "--today", "tomorrow"],
    ["nonsense"],                                   # unknown command
])
def test_usage_errors_exit_1_not_2(args: list[str]) -> None:
    result = run(*args)
    assert result.exit_code == 1
    assert "Traceback" not in output(result)
    assert "Error" in output(result)


def test_today_parse_error_message() -> None:
    result = run("validate", str(EXAMPLE), "--today", "2025-02-30")
    assert result.exit_code == 1
    assert "'2025-02-30' is not a date; write YYYY-MM-DD" in output(result)


@pytest.mark.parametrize("case", ["binary", "empty", "empty-dir", "missing", "nul", "bom-latin1", "dir-named-yaml"])
def test_bad_input_gives_a_finding_not_a_traceback(case: str, tmp_path: Path) -> None:
    target = tmp_path / "input.yaml"
    if case == "binary":
        target.write_bytes(os.urandom(2048) + b"\x00\xff")
    elif case == "empty":
        target.write_bytes(b"")
    elif case == "empty-dir":
        target = tmp_path / "configs"
        target.mkdir()
        (target / "README.md").write_text("nothing")
    elif case == "nul":
        target.write_bytes(b"version: 1\x00\n")
    elif case == "bom-latin1":
        target.write_bytes(b"\xef\xbb\xbfversion: 1\nname: caf\xe9\n")
    elif case == "dir-named-yaml":
        target.mkdir()
    # "missing": never created
    result = run("validate", str(target), "--today", TODAY)
    text = output(result)
    assert result.exit_code == 1
    assert "Traceback" not in text and "internal error" not in text
    assert text.startswith(f"{target}:")
    assert ": error[" in text
    assert text.splitlines()[-1].startswith("invalid: 1 error, 0 warnings in ")


def test_several_paths_report_every_file(tmp_path: Path, write: Callable[..., Path], minimal_org: str) -> None:
    good = write("good.yaml", minimal_org)
    bad = write("bad.yaml", b"\xff\xfe")
    result = run("validate", str(good), str(tmp_path / "missing.yaml"), str(bad), "--today", TODAY)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == "invalid: 2 errors, 0 warnings in 2 files"


def test_python_m_reconciler_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "reconciler", "--help"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0
    assert "validate" in proc.stdout
    assert "Usage:" in proc.stdout


def test_python_m_reconciler_validate_end_to_end(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(bytes(range(256)))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(garbage), str(EXAMPLE),
                           "--today", TODAY], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "invalid: 1 error, 0 warnings in 2 files"


def test_validate_help() -> None:
    result = run("validate", "--help")
    assert result.exit_code == 0
    assert "--today" in result.stdout and "--format" in result.stdout
