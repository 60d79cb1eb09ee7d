"""`reconciler explain RULE` (issue #13): prints the rule's entry of docs/rules.md; an unknown id is one
`error:` line and exit 1. The command object is invoked directly (it is registered in cli.main)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli.explain import explain
from reconciler.domain import rules_doc


def run(*args: str) -> Result:
    return CliRunner().invoke(explain, list(args), catch_exceptions=False)


def test_prints_the_rules_entry() -> None:
    result = run("R8")
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout == rules_doc.entry("R8")
    lines = result.stdout.splitlines()
    assert lines[0] == "## R8 Level covers the service"
    assert "`409 R8`" in result.stdout and "`error[R8]`" in result.stdout
    assert not any(line.startswith("## ") for line in lines[1:])          # R8 only, not R9 after it
    assert max(len(line) for line in lines) < 100


@pytest.mark.parametrize("spelling", ["r8", "8"])
def test_the_id_may_be_written_as_users_do(spelling: str) -> None:
    assert run(spelling).stdout == run("R8").stdout


def test_every_rule_can_be_explained() -> None:
    for n in range(1, 21):
        result = run(f"R{n}")
        assert result.exit_code == 0 and result.stdout.startswith(f"## R{n} "), result.stdout[:40]


def test_an_unknown_rule_is_one_error_line_naming_the_rules() -> None:
    result = run("R21")
    assert result.exit_code == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: unknown rule 'R21'; the rules are R1, R2, ") and "R20" in line


def test_what_the_user_typed_is_shown_escaped() -> None:
    result = run("R\x1b[2J")
    assert result.exit_code == 1
    assert "\x1b" not in result.stderr and "\\x1b[2J" in result.stderr


def test_a_missing_rule_is_a_usage_error_not_a_traceback() -> None:
    result = CliRunner().invoke(explain, [])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert "Missing argument 'RULE'" in result.stderr and "Traceback" not in result.stderr


def test_validate_points_at_the_rules_it_cites() -> None:
    """Issue #13: every error[Rn] leads to its explanation; the hint goes to stderr, so scripts reading the
    findings on stdout see the same lines as before."""
    from click.testing import CliRunner

    from reconciler.cli.main import cli

    examples = Path(__file__).resolve().parents[2] / "examples" / "invalid"
    result = CliRunner().invoke(cli, ["validate", str(examples / "r8-level-below-service.yaml"),
                                      str(examples / "r19-eh3-without-second-factor.yaml"), "--today", "2026-12-01"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == "explain: reconciler explain R8 (and R15, R19), or docs/rules.md"
    assert "explain" not in result.stdout
    clean = CliRunner().invoke(cli, ["validate", str(examples / "unknown-service.yaml")])
    assert "explain" not in clean.stderr                    # no rule cited, no hint
