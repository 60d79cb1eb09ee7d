"""The GitOps pipelines: the GitHub Actions workflows (plan on pull requests, apply on main, nightly drift),
the pre-commit hook and the sharding docs.

- actionlint (with shellcheck on `run:` blocks when shellcheck is installed) on every workflow and on the
  sharding docs' example workflow, and proof that it does find mistakes;
- the workflows' structure (triggers, permissions, concurrency, environment, artifacts, the sticky-comment
  marker, where secrets go);
- the `run:` scripts executed with bash as GitHub runs them (`bash --noprofile --norc -eo pipefail`), with
  a stub `reconciler` that exits 0, 1 or 2: which exit codes pass, what reaches the step outputs and the job
  summary, and that the token never appears in anything they print or write;
- the pre-commit hook's entry run on the example files;
- the sharding docs: their commands parse, the Kubernetes command gives every index its shard, and 20
  generated organisations are covered exactly once by 4 shards (also through `reconciler plan --shard`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.config.loader import load_paths
from reconciler.config.shard import parse_shard, pick_orgs
from reconciler.render.markdown import MARKER as PLAN_MARKER

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
NEW_WORKFLOWS = ("plan.yml", "apply.yml", "drift.yml")
SHARDING_DOC = ROOT / "docs" / "sharding.md"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
SECRET = "sentinel-token-0f3c9a"          # stands in for a token; must never appear in any output


# ------------------------------------------------------------------------------------------------- helpers
def tool(name: str) -> str:
    """The console script `name` installed with this Python (the test extra), else the one on PATH."""
    search = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    assert found, f"{name} is not installed: python3 -m pip install -e '.[test]'"
    return found


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict), name
    return data


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    """The `on:` mapping (YAML 1.1 reads the bare key `on` as True)."""
    on = workflow.get("on", workflow.get(True))
    assert isinstance(on, dict), f"`on:` is not a mapping: {on!r}"
    return on


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def step(workflow: dict[str, Any], name: str) -> dict[str, Any]:
    matches = [s for s in steps(workflow) if s.get("name") == name]
    assert len(matches) == 1, f"expected one step named {name!r}, found {len(matches)}"
    return matches[0]


def uses(workflow: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(workflow) if str(s.get("uses", "")).split("@")[0] == action]


def run_actionlint(*files: Path, ignore: tuple[str, ...] = (), cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    args = [tool("actionlint"), "-no-color"]
    for pattern in ignore:
        args += ["-ignore", pattern]
    return subprocess.run([*args, *map(str, files)], cwd=cwd, capture_output=True, text=True, timeout=120)


def doc_blocks(lang: str) -> list[str]:
    text = SHARDING_DOC.read_text(encoding="utf-8")
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, flags=re.M | re.S)


STUB = """#!/usr/bin/env bash
# A stand-in for reconciler: says what it was asked, writes --out, appends to --summary, exits with $STUB_EXIT.
echo "stub reconciler $*"
echo "stub note on stderr" >&2
out=""
summary=""
while [ $# -gt 0 ]; do
  if [ "$1" = "--out" ]; then out="$2"; shift; fi
  if [ "$1" = "--summary" ]; then summary="$2"; shift; fi
  shift
done
if [ -n "$out" ]; then echo "stub report" > "$out"; fi
if [ -n "$summary" ]; then printf '### What happens next\n\n- stub waits on carl@acme.nl\n' >> "$summary"; fi
exit "${STUB_EXIT:-0}"
"""


class StepRun:
    """One `run:` script executed like GitHub's `shell: bash`, in a work directory with a stub reconciler."""

    def __init__(self, workdir: Path, result: subprocess.CompletedProcess[str]) -> None:
        self.workdir = workdir
        self.code = result.returncode
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.outputs = (workdir / "_output").read_text() if (workdir / "_output").exists() else ""
        self.summary = (workdir / "_summary").read_text() if (workdir / "_summary").exists() else ""

    def everything(self) -> str:
        written = "".join(p.read_text(errors="replace") for p in self.workdir.rglob("*")
                          if p.is_file() and ".git" not in p.parts)
        return self.stdout + self.stderr + written


def run_step(workflow_name: str, step_name: str, workdir: Path, *, stub_exit: int = 0,
             values: dict[str, str] | None = None) -> StepRun:
    """Run a step's script; `values` replaces the step env's `${{ ... }}` expressions by key (a key left out
    is unset, like an unset secret or variable)."""
    workflow = load(workflow_name)
    the_step = step(workflow, step_name)
    bin_dir = workdir / "_bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "reconciler"
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    script = workdir / "_step.sh"
    script.write_text(the_step["run"])
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(workdir),
           "STUB_EXIT": str(stub_exit),
           "GITHUB_OUTPUT": str(workdir / "_output"), "GITHUB_STEP_SUMMARY": str(workdir / "_summary")}
    env.update({k: str(v) for k, v in workflow.get("env", {}).items()})
    for key, value in the_step.get("env", {}).items():
        if "${{" not in str(value):
            env[key] = str(value)
        elif values and key in values:
            env[key] = values[key]
    result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=workdir,
                            env=env, capture_output=True, text=True, timeout=60)
    script.unlink()
    return StepRun(workdir, result)


CONFIGURED = {"RECONCILER_BACKEND": "https://beheer.test", "BEHEER_API_TOKEN": SECRET}


# ------------------------------------------------------------------------------------------------ actionlint
@pytest.mark.parametrize("name", NEW_WORKFLOWS)
def test_actionlint_passes_the_new_workflows(name: str) -> None:
    result = run_actionlint(WORKFLOWS / name)
    assert result.returncode == 0, f"actionlint on {name}:\n{result.stdout}{result.stderr}"


def test_actionlint_passes_ci_yml() -> None:
    """With nothing ignored: an action pinned to a major that runs on the removed node20 fails here."""
    result = run_actionlint(WORKFLOWS / "ci.yml")
    assert result.returncode == 0, f"actionlint on ci.yml:\n{result.stdout}{result.stderr}"


def test_actionlint_finds_mistakes(tmp_path: Path) -> None:
    """The lint above means something: a workflow with a broken expression and a bad key fails."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n"
                      "    steps:\n      - run: echo ${{ github.event.nope( }}\n")
    result = run_actionlint(broken, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "stepz" in result.stdout


def test_actionlint_passes_the_sharding_docs_workflow(tmp_path: Path) -> None:
    [example] = [block for block in doc_blocks("yaml") if "strategy:" in block]
    target = tmp_path / ".github" / "workflows" / "sharded.yml"
    target.parent.mkdir(parents=True)
    target.write_text(example)
    result = run_actionlint(target, cwd=tmp_path)
    assert result.returncode == 0, f"actionlint on the docs' matrix example:\n{result.stdout}{result.stderr}"


# ------------------------------------------------------------------------------------ ci.yml and .ci/run
CI_RUN = ROOT / ".ci" / "run"


def readme_test_command() -> list[str]:
    """The README's "install and run the tests" line, split at `&&` into its commands."""
    [line] = [line for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
              if line.rstrip().endswith("# install and run the tests")]
    return [part.strip() for part in line.split("#")[0].split("&&")]


def test_ci_run_runs_the_readme_command_then_the_lowest_versions() -> None:
    script = CI_RUN.read_text(encoding="utf-8")
    lines = [line.strip() for line in script.splitlines()]
    install, test = readme_test_command()
    assert install == "python3 -m pip install -e '.[test]'" and test == "python3 -m pytest"
    assert lines.index(install) < lines.index(test)          # the README's command, word for word, in order
    [compile_line] = [line for line in lines if "--resolution lowest-direct" in line]
    assert "pip compile" in compile_line and "pyproject.toml --extra test" in compile_line
    assert lines.index(test) < lines.index(compile_line)     # then the same suite at the lowest versions
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script


def test_ci_yml_runs_both_resolutions_through_ci_run() -> None:
    workflow = load("ci.yml")
    [job] = workflow["jobs"].values()
    resolutions = job["strategy"]["matrix"]["resolution"]
    assert resolutions == ["highest", "lowest-direct"]
    assert job["strategy"]["fail-fast"] is False              # one end failing still shows the other
    [run] = [s for s in job["steps"] if "run" in s]
    assert run["env"] == {"RESOLUTION": "${{ matrix.resolution }}"}
    assert run["run"].strip() == 'bash .ci/run "$RESOLUTION"'
    assert all(c.get("with", {}).get("persist-credentials") is False for c in uses(workflow, "actions/checkout"))
    # .ci/run takes each matrix value, and refuses anything else before installing anything
    refused = subprocess.run(["bash", str(CI_RUN), "newest"], capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2 and refused.stdout == ""
    accepted = re.search(r"give (.*)$", refused.stderr.strip()).group(1)  # type: ignore[union-attr]
    assert set(resolutions) <= set(re.split(r", | or ", accepted)), refused.stderr


# ------------------------------------------------------------------------------------ all three workflows
@pytest.mark.parametrize("name", NEW_WORKFLOWS)
def test_only_actions_from_actions_org(name: str) -> None:
    used = [str(s["uses"]) for s in steps(load(name)) if "uses" in s]
    assert used, name
    for action in used:
        assert action.startswith("actions/"), f"{name}: third-party action {action}"
        assert re.fullmatch(r"actions/[\w.-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", action), f"{name}: pin {action}"


@pytest.mark.parametrize("name", NEW_WORKFLOWS)
def test_checkouts_do_not_keep_credentials(name: str) -> None:
    checkouts = uses(load(name), "actions/checkout")
    assert checkouts
    for checkout in checkouts:
        assert checkout.get("with", {}).get("persist-credentials") is False, f"{name}: {checkout}"


@pytest.mark.parametrize("name", NEW_WORKFLOWS)
def test_installs_reconciler_from_a_marked_variable(name: str) -> None:
    workflow = load(name)
    assert workflow["env"]["RECONCILER_PIP_SPEC"] == "."
    assert "CHANGE ME" in (WORKFLOWS / name).read_text()
    install = step(workflow, "Install reconciler")
    assert 'pip install' in install["run"] and '"$RECONCILER_PIP_SPEC"' in install["run"]
    assert uses(workflow, "actions/setup-python")


@pytest.mark.parametrize("name", NEW_WORKFLOWS)
def test_no_secret_is_echoed_or_exposed(name: str) -> None:
    workflow = load(name)
    text = (WORKFLOWS / name).read_text()
    assert "set -x" not in text
    for scope in [workflow, *workflow["jobs"].values()]:   # workflow- and job-level env: every step sees it
        assert "secrets." not in json.dumps(scope.get("env", {})), f"{name}: a secret in a shared env"
    secret_steps = 0
    for s in steps(workflow):
        run = s.get("run", "")
        assert "${{" not in run, f"{name}: an expression inside a script (pass it through env): {run[:80]}"
        assert "secrets." not in json.dumps(s.get("with", {})), f"{name}: a secret in `with:`"
        for line in run.splitlines():
            if re.search(r"\b(echo|printf|tee|cat)\b", line):
                assert not re.search(r"\$\{?BEHEER_API_TOKEN", line), f"{name}: prints the token: {line}"
        secret_steps += "secrets." in json.dumps(s.get("env", {}))
    assert secret_steps == 1, f"{name}: exactly one step gets the token, not {secret_steps}"


def test_write_token_only_in_apply() -> None:
    for name in NEW_WORKFLOWS:
        text = (WORKFLOWS / name).read_text()
        uses_write_token = "secrets.BEHEER_API_TOKEN }}" in text
        assert uses_write_token == (name == "apply.yml"), name
    for name in ("plan.yml", "drift.yml"):
        assert "secrets.BEHEER_API_TOKEN_READONLY }}" in (WORKFLOWS / name).read_text(), name


# ---------------------------------------------------------------------------------------------- plan.yml
def test_plan_triggers_and_permissions() -> None:
    workflow = load("plan.yml")
    on = triggers(workflow)
    assert set(on) == {"pull_request"}
    assert {"config/**", ".github/workflows/plan.yml"} <= set(on["pull_request"]["paths"])
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert workflow["env"]["CONFIG_DIR"] == "config"
    assert workflow["concurrency"]["cancel-in-progress"] is True
    assert "pull_request.number" in workflow["concurrency"]["group"]


def test_plan_checks_out_the_base_branch_into_base() -> None:
    workflow = load("plan.yml")
    [base] = [s for s in uses(workflow, "actions/checkout") if s.get("with", {}).get("path") == "base"]
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}"
    run = step(workflow, "reconciler plan")["run"]
    assert '--compare-to "base/$CONFIG_DIR"' in run
    assert "--format markdown" in run and "--out plan.json" in run and "> plan.md" in run


def test_plan_sticky_comment_finds_itself_by_the_marker() -> None:
    workflow = load("plan.yml")
    comment = step(workflow, "Post or update the plan comment")
    assert str(comment["uses"]).startswith("actions/github-script@")
    script = comment["with"]["script"]
    assert f"const marker = '{PLAN_MARKER}'" in script          # the marker reconciler's markdown starts with
    assert ".includes(marker)" in script and "body.startsWith(marker)" in script
    assert "issues.updateComment" in script and "issues.createComment" in script
    assert script.index("updateComment") < script.index("createComment")   # update first, else create
    assert "cancelled()" in comment["if"]                     # also after a failed validate or plan


def test_plan_uploads_plan_json() -> None:
    [upload] = uses(load("plan.yml"), "actions/upload-artifact")
    assert "plan.json" in upload["with"]["path"]
    assert upload["if"] == "steps.plan.outcome == 'success'"


@pytest.mark.parametrize("stub_exit, step_code", [(0, 0), (2, 0), (1, 1), (3, 1)])
def test_plan_step_treats_2_as_success_and_1_as_failure(tmp_path: Path, stub_exit: int, step_code: int) -> None:
    result = run_step("plan.yml", "reconciler plan", tmp_path, stub_exit=stub_exit, values=CONFIGURED)
    assert result.code == step_code, result.stdout + result.stderr
    assert f"exit-code={stub_exit}" in result.outputs
    assert "stub reconciler plan config --compare-to base/config --format markdown --out plan.json" \
        in (tmp_path / "plan.md").read_text()
    assert (tmp_path / "plan.json").read_text() == "stub report\n"
    assert ("stub reconciler plan" in result.summary) == (step_code == 0)
    assert SECRET not in result.everything()


@pytest.mark.parametrize("missing, message", [("RECONCILER_BACKEND", "RECONCILER_BACKEND"),
                                              ("BEHEER_API_TOKEN", "BEHEER_API_TOKEN_READONLY")])
def test_plan_step_says_what_to_set(tmp_path: Path, missing: str, message: str) -> None:
    values = {k: v for k, v in CONFIGURED.items() if k != missing}
    result = run_step("plan.yml", "reconciler plan", tmp_path, values=values)
    assert result.code == 1
    assert "::error::" in result.stdout and message in result.stdout
    assert not (tmp_path / "plan.md").exists()                 # stopped before planning
    assert SECRET not in result.everything()


@pytest.mark.parametrize("stub_exit", [0, 1])
def test_plan_validate_step_fails_on_invalid_config_with_the_output_in_the_summary(
        tmp_path: Path, stub_exit: int) -> None:
    result = run_step("plan.yml", "reconciler validate", tmp_path, stub_exit=stub_exit)
    assert result.code == stub_exit
    assert f"reconciler validate (exit {stub_exit})" in result.summary
    assert "stub reconciler validate config" in result.summary
    assert "stub note on stderr" in result.summary


# --------------------------------------------------------------------------------------------- apply.yml
def test_apply_triggers_environment_and_concurrency() -> None:
    workflow = load("apply.yml")
    on = triggers(workflow)
    assert on["push"]["branches"] == ["main"]
    assert "config/**" in on["push"]["paths"]
    assert "workflow_dispatch" in on and "pull_request" not in on
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["group"] == "reconciler-apply"
    assert workflow["concurrency"]["cancel-in-progress"] is False
    [job] = workflow["jobs"].values()
    assert job["environment"] == "production"
    assert job["if"] == "github.ref == 'refs/heads/main'"
    [checkout] = uses(workflow, "actions/checkout")
    assert checkout["with"]["ref"] == "refs/heads/main"       # the newest main: a re-run never rolls back


def test_apply_uses_the_token_and_backend_variable() -> None:
    apply = step(load("apply.yml"), "reconciler apply")
    assert apply["env"] == {"RECONCILER_BACKEND": "${{ vars.RECONCILER_BACKEND }}",
                            "BEHEER_API_TOKEN": "${{ secrets.BEHEER_API_TOKEN }}"}
    assert "--auto-approve" in apply["run"] and "--audit-log audit.jsonl" in apply["run"]


def test_apply_uploads_the_audit_log_always() -> None:
    [upload] = uses(load("apply.yml"), "actions/upload-artifact")
    assert upload["if"].startswith("always()")
    assert "audit.jsonl" in upload["with"]["path"]


def git_repo(path: Path) -> None:
    for args in (["init", "-q"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q",
                                  "--allow-empty", "-m", "config"]):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)


@pytest.mark.parametrize("stub_exit", [0, 1])
def test_apply_step_passes_on_the_exit_code_and_writes_the_summary(tmp_path: Path, stub_exit: int) -> None:
    git_repo(tmp_path)
    result = run_step("apply.yml", "reconciler apply", tmp_path, stub_exit=stub_exit, values=CONFIGURED)
    assert result.code == stub_exit, result.stdout + result.stderr
    assert "stub reconciler apply config --auto-approve --audit-log audit.jsonl" in result.stdout
    assert f"(exit {stub_exit})" in result.summary and "stub reconciler apply" in result.summary
    assert "--summary next.md" in result.stdout             # what happens next, first in the job summary
    assert result.summary.index("### What happens next\n\n- stub waits on carl@acme.nl\n") < \
        result.summary.index("stub reconciler apply")
    assert "stub note on stderr" in (tmp_path / "apply.txt").read_text()
    assert SECRET not in result.everything()


def test_apply_step_refuses_without_a_token(tmp_path: Path) -> None:
    git_repo(tmp_path)
    result = run_step("apply.yml", "reconciler apply", tmp_path,
                      values={"RECONCILER_BACKEND": "https://beheer.test"})
    assert result.code == 1 and "BEHEER_API_TOKEN" in result.stdout
    assert not (tmp_path / "apply.txt").exists()


# --------------------------------------------------------------------------------------------- drift.yml
def test_drift_triggers_and_permissions() -> None:
    workflow = load("drift.yml")
    on = triggers(workflow)
    [schedule] = on["schedule"]
    assert len(schedule["cron"].split()) == 5 and schedule["cron"].split()[2:] == ["*", "*", "*"]  # daily
    assert "workflow_dispatch" in on
    assert workflow["permissions"] == {"contents": "read", "issues": "write"}


def test_drift_issue_by_label_opened_updated_closed() -> None:
    workflow = load("drift.yml")
    assert workflow["env"]["DRIFT_LABEL"] == "reconciler-drift"
    issue = step(workflow, "Open, update or close the drift issue")
    assert issue["if"] == "steps.drift.outcome == 'success'"
    assert issue["env"]["DRIFT_EXIT"] == "${{ steps.drift.outputs.exit-code }}"
    script = issue["with"]["script"]
    assert "labels: label" in script and "labels: [label]" in script     # found and created by the label
    assert "DRIFT_EXIT === '0'" in script and "state: 'closed'" in script
    assert "issues.update(" in script and "issues.create(" in script
    [upload] = uses(workflow, "actions/upload-artifact")
    assert "drift.html" in upload["with"]["path"]


@pytest.mark.parametrize("stub_exit, step_code", [(0, 0), (2, 0), (1, 1)])
def test_drift_step_exit_codes(tmp_path: Path, stub_exit: int, step_code: int) -> None:
    result = run_step("drift.yml", "reconciler drift", tmp_path, stub_exit=stub_exit, values=CONFIGURED)
    assert result.code == step_code, result.stdout + result.stderr
    assert f"exit-code={stub_exit}" in result.outputs
    assert "stub reconciler drift config --format markdown" in (tmp_path / "drift.md").read_text()
    assert (tmp_path / "drift.html").exists() == (step_code == 0)
    assert ("stub reconciler drift" in result.summary) == (step_code == 0)
    assert SECRET not in result.everything()


# ------------------------------------------------------------------------------------------ pre-commit
def test_pre_commit_hook_manifest() -> None:
    [hook] = yaml.safe_load(HOOKS.read_text())
    assert hook["id"] == "reconciler-validate"
    assert hook["entry"] == "reconciler validate"
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is True
    files = re.compile(hook["files"])
    for path in ("config/acme.yaml", "config/b-holding.yml"):
        assert files.search(path), path
    for path in ("docs/acme.yaml", "config/README.md", "config/sub/acme.yaml", "examples/org.yaml"):
        assert not files.search(path), path


@pytest.mark.parametrize("example, code", [("examples/org.yaml", 0),
                                           ("examples/invalid/r1-no-beheerder.yaml", 1)])
def test_pre_commit_hook_entry_runs(example: str, code: int) -> None:
    [hook] = yaml.safe_load(HOOKS.read_text())
    command = shlex.split(hook["entry"])
    command[0] = tool(command[0])
    result = subprocess.run([*command, example], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


# -------------------------------------------------------------------------------------------- sharding
@pytest.mark.parametrize("command", ["plan", "apply", "drift"])
def test_shard_option_parses(command: str) -> None:
    result = subprocess.run([tool("reconciler"), command, "--shard", "1/4", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--shard K/N" in result.stdout


@pytest.mark.parametrize("value, message", [("5/4", "K must be between 1 and N"),
                                            ("0/4", "K must be between 1 and N"),
                                            ("two", "write K/N")])
def test_shard_out_of_range_is_refused_clearly(tmp_path: Path, value: str, message: str) -> None:
    result = subprocess.run([tool("reconciler"), "plan", "--shard", value, str(ROOT / "examples" / "org.yaml"),
                             "--backend", f"sandbox:{tmp_path / 'sb.db'}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Invalid value for '--shard'" in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "sb.db").exists()                   # refused before touching the backend


def test_sharding_docs_commands_parse() -> None:
    """Every command of the docs' shell block: its options exist (--help after them) and its shard is valid."""
    [block] = doc_blocks("sh")
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    assert len(commands) == 3 and all(c[0] == "reconciler" for c in commands)
    for command in commands:
        parse_shard(command[command.index("--shard") + 1])
        result = subprocess.run([tool("reconciler"), *command[1:], "--help"], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, f"{command}: {result.stderr}"
    text = SHARDING_DOC.read_text()
    assert "completionMode: Indexed" in text and "--shard $((JOB_COMPLETION_INDEX+1))/4" in text
    assert "--shard ${{ matrix.shard }}/4" in text


def test_sharding_docs_matrix_example() -> None:
    [example] = [block for block in doc_blocks("yaml") if "strategy:" in block]
    workflow = yaml.safe_load(example)
    [job] = workflow["jobs"].values()
    assert job["strategy"]["matrix"]["shard"] == [1, 2, 3, 4]
    assert job["strategy"]["fail-fast"] is False
    runs = [s["run"] for s in job["steps"] if "--shard" in s.get("run", "")]
    assert runs and all("--shard ${{ matrix.shard }}/4" in r for r in runs)
    for k in job["strategy"]["matrix"]["shard"]:
        assert parse_shard(f"{k}/4").index == k


def test_sharding_docs_kubernetes_indexed_job() -> None:
    [example] = [block for block in doc_blocks("yaml") if "kind: Job" in block]
    job = yaml.safe_load(example)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    n = spec["completions"]
    [container] = spec["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "-c"]
    [command] = container["args"]
    assert "--shard $((JOB_COMPLETION_INDEX+1))/" in command
    seen = []
    for index in range(n):          # what each pod runs: sh expands the index; reconciler just echoes
        out = subprocess.run(["/bin/sh", "-c", 'reconciler() { printf "%s\\n" "$@"; }; ' + command],
                             env={"JOB_COMPLETION_INDEX": str(index), "PATH": os.environ["PATH"]},
                             capture_output=True, text=True, timeout=30, check=True).stdout.split()
        shard = parse_shard(out[out.index("--shard") + 1])
        assert shard.count == n, "N in --shard must equal completions"
        seen.append(shard.index)
    assert seen == list(range(1, n + 1))


def org_yaml(kvk: str, users: list[str]) -> str:
    lines = ["version: 1", "organisation:", f'  kvk: "{kvk}"', f"  name: Org {kvk}", "users:"]
    for i, email in enumerate(users):
        role = "beheerder" if i == 0 else "gebruiker"
        lines += [f"  - email: {email}", f"    name: Person {i}", f"    role: {role}", "    level: EH3",
                  "    second_factor: {type: otp}"]
    return "\n".join(lines) + "\n"


def kvk_of(n: int) -> str:
    return f"{30000000 + n * 7919:08}"


#: Organisations (by number) that share a person: each group must land in one shard.
SHARED = [(0, 7, 13), (4, 5), (11, 19)]


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    for n in range(20):
        users = [f"admin{n}@org{n}.nl"]
        users += [f"shared{g}@accountant.nl" for g, group in enumerate(SHARED) if n in group]
        (config / f"org-{n:02}.yaml").write_text(org_yaml(kvk_of(n), users))
    return config


def test_four_shards_cover_twenty_organisations_exactly_once(estate: Path) -> None:
    loaded = load_paths([str(estate)], None)
    assert loaded.ok, [str(d) for d in loaded.diagnostics]
    orgs = loaded.orgs
    assert len(orgs) == 20
    kvk = {org.path.name: org.config.organisation.kvk for org in orgs}
    shards = {k: [org.config.organisation.kvk for org in pick_orgs(orgs, parse_shard(f"{k}/4"))]
              for k in range(1, 5)}
    everything = [kvk_ for picked in shards.values() for kvk_ in picked]
    assert sorted(everything) == sorted(kvk.values())               # each exactly once
    assert sum(1 for picked in shards.values() if picked) > 1       # really split
    shard_of = {kvk_: k for k, picked in shards.items() for kvk_ in picked}
    for group in SHARED:
        assert len({shard_of[kvk[f"org-{n:02}.yaml"]] for n in group}) == 1, f"group {group} was split"
    assert [o.config.organisation.kvk for o in pick_orgs(orgs, None)] == [o.config.organisation.kvk for o in orgs]


def test_plan_shards_cover_twenty_organisations_exactly_once(estate: Path, tmp_path: Path) -> None:
    """The same through the command line, as the N jobs of the docs would run it."""
    backend = f"sandbox:{tmp_path / 'sandbox.db'}"
    planned: list[str] = []
    for k in range(1, 5):
        result = subprocess.run([tool("reconciler"), "plan", str(estate), "--shard", f"{k}/4",
                                 "--format", "json", "--backend", backend],
                                capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert result.returncode in (0, 2), result.stderr
        planned += [org["kvk"] for org in json.loads(result.stdout)["organisations"]]
    assert sorted(planned) == sorted(kvk_of(n) for n in range(20))

