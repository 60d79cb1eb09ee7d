"""`reconciler apply` end to end on the embedded sandbox: confirmation, exit codes, saved plans (fresh and
stale), the removal threshold, the report formats and the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli.main import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "org.yaml"
HEAD = 'version: 1\norganisation: {kvk: "12345678", name: Acme}\n'
ADMIN = "  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}\n"
ADMIN_UNTIL = ("  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp},\n"
               "     authorisations: [{service: rvo/tenderned, until: 2027-03-01}]}\n")


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


class Repo:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.backend = f"sandbox:{tmp / 'sb.db'}"
        self.audit = tmp / "audit.jsonl"

    def config(self, body: str, name: str = "org.yaml") -> str:
        path = self.tmp / name
        path.write_text(body)
        return str(path)

    def run(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        return invoke(*args, "--backend", self.backend, stdin=stdin)

    def apply(self, *args: str) -> tuple[int, str, str]:
        return self.run("apply", *args, "--auto-approve", "--audit-log", str(self.audit))

    def settle(self) -> None:
        assert self.run("sandbox", "approve", "--all")[0] == 0
        assert self.run("sandbox", "activate", "--all")[0] == 0


def users(n: int, prefix: str = "u") -> str:
    return "".join(f"  - {{email: {prefix}{i}@acme.nl, name: {prefix.upper()}{i}, role: gebruiker, level: EH2}}\n"
                   for i in range(n))


def test_the_example_converges_plan_apply_approve_activate_apply(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    code, out, _ = repo.apply(str(EXAMPLE))
    assert code == 0 and "Apply: 9 done, 0 failed, 0 skipped; not attempted: 7 deferred, 0 manual." in out
    repo.settle()
    code, out, _ = repo.apply(str(EXAMPLE))
    assert code == 0 and "Apply: 7 done, 0 failed" in out
    assert repo.run("plan", str(EXAMPLE))[0] == 0
    code, out, _ = repo.apply(str(EXAMPLE))
    assert code == 0 and out.rstrip().endswith("Nothing to apply: the backend matches the config (or only deferred "
                                                 "and manual steps remain).")


def test_without_a_terminal_and_without_auto_approve_nothing_happens(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    path = repo.config(HEAD + "users:\n" + ADMIN + users(2))
    code, out, err = repo.run("apply", path)
    assert code == 1 and "stdin is not a terminal" in err and "--auto-approve" in err
    assert "+ request_means" in out                        # the plan was shown
    code, out, _ = repo.run("plan", path)
    assert code == 2 and "Plan: 2 to add" in out           # and nothing was done


def test_a_saved_plan_is_applied_exactly_and_refused_once_stale(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    path = repo.config(HEAD + "users:\n" + ADMIN + users(2))
    plan_file = tmp_path / "plan.json"
    assert repo.run("plan", path, "--out", str(plan_file))[0] == 2
    code, out, _ = repo.apply("--plan", str(plan_file), path)
    assert code == 0 and "Apply: 2 done" in out
    code, _, err = repo.apply("--plan", str(plan_file), path)    # the backend moved on: the plan is stale now
    assert code == 1 and "the saved plan is stale; nothing was changed" in err
    assert "organisation 12345678 changed since the plan was made" in err


def test_a_saved_plan_made_before_a_renewal_window_opens_is_refused_after(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    path = repo.config(HEAD + "users:\n" + ADMIN_UNTIL + users(1))
    assert repo.run("sandbox", "clock", "set", "2026-11-21")[0] == 0
    assert repo.apply(path)[0] == 0                                  # grants rvo/tenderned until 2027-03-01
    path = repo.config(HEAD + "users:\n" + ADMIN_UNTIL + users(2))
    plan_file = tmp_path / "plan.json"
    assert repo.run("plan", path, "--out", str(plan_file))[0] == 2
    data = json.loads(plan_file.read_text())
    assert data["organisations"][0]["valid_until"] == "2027-03-01"
    assert repo.run("sandbox", "clock", "set", "2027-03-01")[0] == 0
    code, _, err = repo.apply("--plan", str(plan_file), path)
    assert code == 1 and "reaches its end date 2027-03-01" in err


def test_the_removal_threshold_needs_force(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    assert repo.apply(repo.config(HEAD + "users:\n" + ADMIN + users(12)))[0] == 0
    repo.settle()
    pruned = repo.config(HEAD + "policy: {prune: true, max_removals: 3}\nusers:\n" + ADMIN + users(2))
    code, _, err = repo.apply(pruned)
    assert code == 1 and "more than policy.max_removals allows; nothing was changed" in err
    assert "10 removals" in err
    assert repo.run("plan", pruned)[0] == 2                          # still all there
    code, out, _ = repo.apply(pruned, "--force")
    assert code == 0 and "Apply: 10 done" in out
    assert repo.run("plan", pruned)[0] == 0


def test_json_report_and_audit_log(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    code, out, _ = repo.apply(repo.config(HEAD + "users:\n" + ADMIN + users(2)), "--format", "json", "-q")
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True and data["summary"]["done"] == 2
    assert [s["outcome"] for s in data["organisations"][0]["steps"]] == ["done", "done"]
    events = [json.loads(line)["event"] for line in repo.audit.read_text().splitlines()]
    assert events == ["apply-started", "step-intent", "step-result", "step-intent", "step-result", "apply-finished"]


def _revision(repo: Repo, path: str) -> int:
    """The organisation's revision as `plan --format json` reads it (the plan still has work: exit 2)."""
    code, out, _ = repo.run("plan", path, "--format", "json")
    assert code == 2
    return int(json.loads(out)["organisations"][0]["revision"])


@pytest.mark.parametrize("where", ["a directory", "under a regular file"])
def test_an_unwritable_audit_log_is_refused_before_anything_is_sent(tmp_path: Path, where: str) -> None:
    """Paths that fail even for root (the tests run as root): one line naming the path and what to do."""
    repo = Repo(tmp_path)
    path = repo.config(HEAD + "users:\n" + ADMIN + users(2))
    before = _revision(repo, path)
    (tmp_path / "file").write_text("x")
    audit = {"a directory": tmp_path, "under a regular file": tmp_path / "file" / "audit.jsonl"}[where]
    code, out, err = repo.run("apply", path, "--auto-approve", "-q", "--audit-log", str(audit))
    assert code == 1 and "internal error" not in out + err and "Apply:" not in out
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: audit log {audit}: ") and "nothing was changed" in line
    assert "--audit-log FILE" in line and "--audit-log - for no audit log" in line
    assert _revision(repo, path) == before


def test_an_audit_log_that_takes_no_line_stops_before_the_first_request(tmp_path: Path) -> None:
    """/dev/full opens but takes nothing (ENOSPC): the report says so, every step is not attempted."""
    repo = Repo(tmp_path)
    path = repo.config(HEAD + "users:\n" + ADMIN + users(2))
    before = _revision(repo, path)
    code, out, err = repo.run("apply", path, "--auto-approve", "-q", "--audit-log", "/dev/full")
    assert code == 1 and "internal error" not in out + err
    assert "audit log /dev/full: No space left on device; stopped before the next request" in out
    assert "Apply: 0 done, 0 failed, 2 skipped" in out and "not logged" not in out
    code, out, _ = repo.run("apply", path, "--auto-approve", "-q", "--audit-log", "/dev/full", "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and data["unlogged"] == []
    assert data["audit_error"] == "audit log /dev/full: No space left on device"
    assert _revision(repo, path) == before


def test_usage_errors_exit_1(tmp_path: Path) -> None:
    code, _, err = invoke("apply")
    assert code == 1 and "give the config (PATH...) or a saved plan" in err
    code, _, err = invoke("apply", "x.yaml", "--plan", str(tmp_path / "p.json"))
    assert code == 1 and "p.json: cannot read the plan" in err
    bad = tmp_path / "plan.json"
    bad.write_text("{")
    code, _, err = invoke("apply", "--plan", str(bad), "--backend", f"sandbox:{tmp_path / 'sb.db'}")
    assert code == 1 and "plan.json:1:2: not valid JSON" in err and "Traceback" not in err


def test_on_a_terminal_only_yes_goes_on(tmp_path: Path, monkeypatch: object) -> None:
    import reconciler.cli.apply as apply_cli

    monkeypatch.setattr(apply_cli, "interactive", lambda: True)  # type: ignore[attr-defined]
    repo = Repo(tmp_path)
    path = repo.config(HEAD + "users:\n" + ADMIN + users(1))
    code, _, err = repo.run("apply", path, stdin="y\n")
    assert code == 1 and "apply cancelled: nothing was changed" in err
    assert "\nApply this change to 1 organisation (12345678)? Type 'yes' to go on:" in err     # a question
    assert repo.run("plan", path)[0] == 2
    code, out, _ = repo.run("apply", path, stdin="yes\n")
    assert code == 0 and "Apply: 1 done" in out
