"""`reconciler apply --executor runbook` on the example config against an embedded sandbox (issue #14, section 2):
the plan is made and shown, its steps are walked in plan order with their ids, nothing is sent, the walk resumes,
and it refuses without a terminal or with --auto-approve."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import reconciler.cli.apply as apply_cli
from reconciler.cli.main import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "org.yaml"


class Repo:
    def __init__(self, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp)                       # the walk keeps its state in ./.reconciler
        self.tmp = tmp
        self.backend = f"sandbox:{tmp / 'sb.db'}"
        self.audit = tmp / "audit.jsonl"

    def run(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, [*args, "--backend", self.backend], input=stdin, catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    def walk(self, stdin: str, *extra: str) -> tuple[int, str, str]:
        return self.run("apply", str(EXAMPLE), "--executor", "runbook", "--audit-log", str(self.audit), *extra,
                        stdin=stdin)

    def plan(self) -> dict[str, object]:
        code, out, _ = self.run("plan", str(EXAMPLE), "--format", "json")
        assert code == 2                                    # changes pending
        return json.loads(out)


def shown_steps(out: str) -> list[tuple[int, str]]:
    """(number, step id) of each step the walk showed."""
    return [(int(n), ident) for n, ident in
            re.findall(r"^Step (\d+) of \d+: .*\n  .*\n  .*stap-id (\w+)$", out, re.M)]


@pytest.fixture
def on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apply_cli, "interactive", lambda: True)


@pytest.mark.usefixtures("on_a_terminal")
def test_the_walk_shows_the_plans_steps_in_order_and_sends_nothing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repo(tmp_path, monkeypatch)
    before = repo.plan()                                # the sandbox makes the organisation: revision 1
    ids = [c["id"] for org in before["organisations"] for c in org["changes"]]
    assert len(ids) == 9
    code, out, err = repo.walk("d\n" * 9)
    assert code == 0, err
    assert "Plan: 9 to add, 0 to change, 0 to remove, 7 deferred" in out          # the plan, shown first
    assert out.index("Plan: 9 to add") < out.index("Step 1 of 9")
    assert shown_steps(out) == list(enumerate(ids, start=1))
    assert "Runbook walked: 9 done, 0 skipped, 0 failed (of 9 steps)." in out
    assert f"  reconciler drift {EXAMPLE} --backend export:exports" in out
    after = repo.plan()
    assert after["organisations"][0]["revision"] == before["organisations"][0]["revision"]     # nothing sent
    assert [c["id"] for org in after["organisations"] for c in org["changes"]] == ids
    records = [json.loads(line) for line in repo.audit.read_text().splitlines()]
    assert [(r["event"], r["step_id"], r["answer"]) for r in records] == [("runbook-step", i, "done") for i in ids]


@pytest.mark.usefixtures("on_a_terminal")
def test_quit_then_resume_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repo(tmp_path, monkeypatch)
    code, out, _ = repo.walk("d\nf\nno letter came\nq\n")
    assert code == 1 and [n for n, _ in shown_steps(out)] == [1, 2, 3]
    assert f"  reconciler apply {EXAMPLE} --executor runbook --backend {repo.backend}" in out
    files = list((tmp_path / ".reconciler").glob("runbook-*.json"))
    assert len(files) == 1 and len(json.loads(files[0].read_text())["steps"]) == 2
    code, out, _ = repo.walk("d\n" * 7)
    assert code == 1                                           # a failed step: exit 1
    assert "Resuming at step 3 of 9" in out and [n for n, _ in shown_steps(out)] == list(range(3, 10))
    assert "Runbook walked: 8 done, 0 skipped, 1 failed (of 9 steps)." in out
    assert re.search(r"  failed: step 2 \(.*\): no letter came", out)


def test_without_a_terminal_it_refuses_before_reading_the_backend(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repo(tmp_path, monkeypatch)
    code, out, err = repo.walk("d\n")
    assert code == 1 and out == ""
    assert err == ("error: refusing to walk the runbook: stdin is not a terminal, and each step needs a person's "
                   "answer. Print the runbook instead: `reconciler plan PATH... --format runbook`\n")
    assert not (tmp_path / "sb.db").exists() and not (tmp_path / ".reconciler").exists()


@pytest.mark.usefixtures("on_a_terminal")
@pytest.mark.parametrize("extra, message", [
    (("--auto-approve",), "--auto-approve cannot go with --executor runbook: a person answers each step"),
    (("--plan", "plan.json"), "--executor runbook walks a fresh plan of PATH...; --plan is for --executor api"),
])
def test_what_cannot_go_with_the_runbook_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          extra: tuple[str, ...], message: str) -> None:
    repo = Repo(tmp_path, monkeypatch)
    code, out, err = repo.walk("", *extra)
    assert code == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "sb.db").exists()


@pytest.mark.usefixtures("on_a_terminal")
def test_the_end_of_input_keeps_the_answers_and_says_how_to_resume(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repo(tmp_path, monkeypatch)
    code, out, err = repo.walk("d\n")                    # then the input ends: like Ctrl-C at the prompt
    assert code == 130 and "Traceback" not in err
    assert "Stopped before answering step 2; the answers so far are kept in " in out
    code, out, _ = repo.walk("q\n")
    assert "Resuming at step 2 of 9" in out


@pytest.mark.usefixtures("on_a_terminal")
def test_the_walk_plans_from_the_beheermodules_downloads_and_verifies_with_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repo(tmp_path, monkeypatch)
    ids = [c["id"] for org in repo.plan()["organisations"] for c in org["changes"]]
    assert repo.run("sandbox", "export", "--all", "--out", str(tmp_path / "dl"))[0] == 0
    result = CliRunner().invoke(cli, ["apply", str(EXAMPLE), "--executor", "runbook", "--audit-log", "-",
                                      "--backend", f"export:{tmp_path / 'dl'}"], input="s\n" * 9,
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert shown_steps(result.stdout) == list(enumerate(ids, start=1))
    assert "Runbook walked: 0 done, 9 skipped, 0 failed (of 9 steps)." in result.stdout
    assert f"  reconciler drift {EXAMPLE} --backend export:{tmp_path / 'dl'}" in result.stdout
    assert f"named by its KvK: {tmp_path / 'dl'}/99966564/" in result.stdout
