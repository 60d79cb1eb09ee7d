"""The audit log never loses a committed step (issue #10, item 3): a line is written whole or not at all, an
intent line goes out before each request and a result line after, and when the log cannot be written the
apply stops before its next request and reports what the log is missing ("committed, not logged", with the
idempotency key). Exercised with a real file size limit (`ulimit -f`, EFBIG after a short write), a full
device (/dev/full, ENOSPC), a log that fails at each position of an apply on the embedded sandbox, and the CLI
against a served sandbox under `ulimit -f`."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest

from reconciler.apply.audit import AuditError, AuditLog
from reconciler.apply.executor import Executor, idempotency_key
from reconciler.apply.report import ApplyReport, Outcome, render_json, render_text
from reconciler.apply.saved import plan_id
from reconciler.backend.session import open_session
from reconciler.pipeline import plan_in_session
from reconciler.config.loader import load_paths

from tests.apply.served import (
    Cli, assert_each_bought_once, cli_command, cli_env, converge, expected_state, many_users_config,
    served_sandbox, write_config,
)

REPO = Path(__file__).resolve().parents[2]


def lines_of(path: Path) -> list[dict[str, Any]]:
    """Every line of the log parsed (a truncated line would raise here)."""
    return [json.loads(line) for line in path.read_bytes().decode("utf-8").splitlines()]


# ------------------------------------------------------------------------------------------- AuditLog
def test_a_line_past_the_file_size_limit_is_cut_back_whole(tmp_path: Path) -> None:
    """Under RLIMIT_FSIZE the kernel writes what fits (a short write) and then refuses (EFBIG): the file is cut
    back to where the line began, the error names the path, and the broken log takes no more lines."""
    log = tmp_path / "audit.jsonl"
    log.write_text('{"event":"earlier"}\n' * 50)                 # 1000 bytes
    script = textwrap.dedent(f"""
        import json, resource, sys
        from pathlib import Path
        from reconciler.apply.audit import AuditError, AuditLog
        resource.setrlimit(resource.RLIMIT_FSIZE, (1200, 1200))
        out = []
        with AuditLog(Path({str(log)!r})) as audit:
            audit.write("small", n=1)                            # fits
            for attempt in range(2):
                try:
                    audit.write("big", pad="x" * 400)            # 200 bytes fit, the rest does not
                    out.append("written")
                except AuditError as error:
                    out.append(str(error))
        print(json.dumps(out))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr                    # not killed by SIGXFSZ
    assert json.loads(done.stdout) == [f"audit log {log}: File too large"] * 2
    records = lines_of(log)
    assert [r["event"] for r in records] == ["earlier"] * 50 + ["small"]
    assert log.read_bytes().endswith(b"\n") and log.stat().st_size < 1200


def test_a_short_write_then_an_error_leaves_the_file_as_it_was(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "audit.jsonl"
    with AuditLog(log) as audit:
        audit.write("first")
        before = log.read_bytes()
        real_write = os.write
        calls: list[int] = []

        def short_then_full(fd: int, data: Any) -> int:
            calls.append(len(data))
            if len(calls) == 1:
                return real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "write", short_then_full)
        with pytest.raises(AuditError, match="No space left on device"):
            audit.write("second", pad="y" * 100)
        assert len(calls) == 2 and log.read_bytes() == before
        monkeypatch.setattr(os, "write", real_write)
        with pytest.raises(AuditError):                        # broken: no later line, not even one that fits
            audit.write("third")
    assert log.read_bytes() == before and audit.failure is not None


def test_a_full_device_fails_the_write_with_the_path() -> None:
    audit = AuditLog(Path("/dev/full")).open()
    try:
        with pytest.raises(AuditError, match="^audit log /dev/full: No space left on device$"):
            audit.write("apply-started")
    finally:
        assert audit.close() is audit.failure is not None


def test_a_log_that_ends_mid_line_gets_its_next_line_on_a_line_of_its_own(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    log.write_text('{"event":"whole"}\n{"event":"cut sho')
    with AuditLog(log) as audit:
        audit.write("next")
        audit.write("after")
    text = log.read_text().splitlines()
    assert text[1] == '{"event":"cut sho' and [json.loads(t)["event"] for t in text[2:]] == ["next", "after"]


@pytest.mark.parametrize("where", ["a directory", "under a regular file", "under /dev/null"])
def test_an_unwritable_path_is_refused_when_opened(tmp_path: Path, where: str) -> None:
    """Paths that fail even for root (the tests run as root, so permissions alone would not)."""
    (tmp_path / "file").write_text("x")
    path = {"a directory": tmp_path, "under a regular file": tmp_path / "file" / "audit.jsonl",
            "under /dev/null": Path("/dev/null/audit.jsonl")}[where]
    with pytest.raises(AuditError, match=f"^audit log {path}: "):
        AuditLog(path).open()


# ------------------------------------------------------------------------------ the executor, embedded
class FailingLog(AuditLog):
    """A real log file that is full after `fits` lines (as a disk is): the next appends raise ENOSPC."""

    def __init__(self, path: Path, fits: int) -> None:
        super().__init__(path)
        self.fits = fits

    def _append(self, data: bytes) -> None:
        if self.fits <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.fits -= 1
        super()._append(data)


ORGS = {"11111111": "Een", "22222222": "Twee"}


def org_config(tmp: Path, kvk: str, n_users: int) -> str:
    """An admin and `n_users` plain EH2 users: request_means steps only."""
    domain = f"org{kvk}.nl"
    users = [f"  - {{email: admin@{domain}, name: Admin, role: beheerder, level: EH3, second_factor: {{type: otp}}}}"]
    users += [f"  - {{email: u{i}@{domain}, name: U{i}, role: gebruiker, level: EH2}}" for i in range(n_users)]
    path = tmp / f"{kvk}.yaml"
    path.write_text(f'version: 1\norganisation: {{kvk: "{kvk}", name: {ORGS[kvk]}}}\nusers:\n'
                    + "\n".join(users) + "\n")
    return str(path)


def apply_embedded(tmp: Path, audit: AuditLog, n_users: int = 3) -> tuple[ApplyReport, dict[str, list[Any]], bool]:
    """Plan and apply both organisations (in parallel lanes) with `audit`; the backend's events afterwards and
    whether the backend still has work to do."""
    paths = [org_config(tmp, kvk, n_users) for kvk in ORGS]
    backend = f"sandbox:{tmp / 'sb.db'}"

    async def go() -> tuple[ApplyReport, dict[str, list[Any]], bool]:
        result = load_paths(paths, dt.date.today())
        assert result.ok
        async with open_session(backend, result.orgs) as session:
            planned = await plan_in_session(session, tuple(paths), result, None)
            with audit:
                report = await Executor(planned.plan, plan_id(planned.plan), planned.world.copy(), session.clients,
                                        session.actors, audit=audit, concurrency=2).run()
            events = {kvk: await session.clients[kvk].list_all_events(kvk) for kvk in ORGS}
            again = await plan_in_session(session, tuple(paths), load_paths(paths, dt.date.today()), None)
            return report, events, again.plan.has_work
    return anyio.run(go)


#: lines of an apply of 2 x 3 request_means: apply-started, (intent, result) x 6, apply-finished
ALL_LINES = 1 + 2 * 6 + 1


@pytest.mark.parametrize("fits", [0, 1, 2, 3, 4, 7, ALL_LINES - 1])
def test_a_log_that_fills_up_loses_no_committed_step(tmp_path: Path, fits: int) -> None:
    """Whichever line fails (the start, an intent, a result, the end): nothing is sent without its intent on
    disk, no lane sends after the failure, each step the backend committed is in the log as a result or in the
    report as "committed, not logged" with its key, and a second apply finishes the job."""
    log = tmp_path / "audit.jsonl"
    report, events, work_left = apply_embedded(tmp_path, FailingLog(log, fits))
    records = lines_of(log)
    assert len(records) == fits
    assert report.audit_failure == f"audit log {log}: No space left on device" and not report.ok

    steps = [s for o in report.organisations for s in o.steps]
    sent = {s.key for s in steps if s.key is not None}
    intents = {r["key"] for r in records if r["event"] == "step-intent"}
    results = {r["key"]: r for r in records if r["event"] == "step-result"}
    assert sent == intents                          # each request had its intent on disk first, and no other
    committed = {e.idempotency_key for kvk in ORGS for e in events[kvk]
                 if e.action == "request_means" and e.outcome == "ok" and e.idempotency_key}
    assert committed == {s.key for s in steps if s.outcome is Outcome.DONE}
    unlogged = {s.key for s in report.unlogged}
    for key in committed:
        assert (key in results and results[key]["outcome"] == "done") != (key in unlogged), key
    assert len(sent) <= max(fits - 1, 0)           # no intent, so no request, after the failing write
    for s in steps:
        if s.key is None:
            assert s.outcome is Outcome.SKIPPED and s.message.startswith("not attempted: the audit log"), s

    text, data = render_text(report), json.loads(render_json(report))
    assert f"audit log {log}: No space left on device; stopped before the next request" in text
    for s in report.unlogged:
        assert f"committed, not logged: {s.describe()} (step {s.change.id}, key {s.key})" in text
    assert data["audit_error"] == report.audit_failure and data["ok"] is False
    assert {u["key"] for u in data["unlogged"] if u["committed"]} == unlogged

    again, _, work_left = apply_embedded(tmp_path, AuditLog(tmp_path / "second.jsonl"))
    assert again.ok and not work_left
    assert again.count(Outcome.DONE) == 6 - len(committed)


def test_a_result_that_cannot_be_logged_is_reported_committed_not_logged(tmp_path: Path) -> None:
    """The log fills up after the first step's intent: that step is done and reported with its key; nothing
    else is sent, in either organisation."""
    log = tmp_path / "audit.jsonl"
    report, events, _ = apply_embedded(tmp_path, FailingLog(log, 2))               # start, first intent
    records = lines_of(log)
    assert [r["event"] for r in records] == ["apply-started", "step-intent"]
    [step] = report.unlogged
    assert step.outcome is Outcome.DONE and step.key == records[1]["key"]
    assert [e.idempotency_key for kvk in ORGS for e in events[kvk] if e.action == "request_means"] == [step.key]
    assert report.count(Outcome.DONE) == 1 and report.count(Outcome.SKIPPED) == 5
    for org in report.organisations:
        assert org.stopped and org.stopped.startswith("the audit log cannot be written")
    assert f"  committed, not logged: + request_means {step.change.target} (gebruiker, EH2) (step {step.change.id}, " \
           f"key {step.key})\n" in render_text(report)


def test_the_intent_is_written_before_the_request(tmp_path: Path) -> None:
    """A log with room for the start line only: nothing is sent at all."""
    report, events, work_left = apply_embedded(tmp_path, FailingLog(tmp_path / "audit.jsonl", 1))
    assert not any(e.action == "request_means" for kvk in ORGS for e in events[kvk])
    assert report.count(Outcome.DONE) == 0 and report.count(Outcome.SKIPPED) == 6 and work_left
    assert idempotency_key("p", "s") not in render_text(report) and not report.unlogged


# ------------------------------------------------------------------------------- the CLI, ulimit -f
def test_the_cli_under_a_file_size_limit_stops_cleanly_and_the_next_run_converges(tmp_path: Path) -> None:
    """`ulimit -f` hits the audit log in the middle of the third step's result line, in an apply against a
    served sandbox (in its own process, without the limit): exit 1 with the apply report, no internal error,
    the log ends with a whole line, the third step is reported as committed, not logged, with its key, and
    an apply without the limit does the rest, buying nobody twice."""
    kvk, admin = "31415926", "admin@org31415926.nl"
    with served_sandbox(tmp_path) as sandbox:
        cli = Cli(sandbox, tmp_path)
        cli.init(kvk, "Limit", admin)
        log = cli.audit_log(kvk)
        config = write_config(tmp_path / "org.yaml", many_users_config(kvk, 7, grants=False))
        first = cli.apply(config, kvk)                      # 6 steps: measures the lines an apply writes
        assert first.code == 0 and "Apply: 6 done" in first.out, str(first)
        lines = log.read_bytes().splitlines(keepends=True)
        assert len(lines) == 1 + 2 * 6 + 1, lines
        start, intent, result = len(lines[0]), len(lines[1]), len(lines[2])

        write_config(config, many_users_config(kvk, 15, grants=False))     # 8 more steps, lines as long
        room = start + 3 * intent + 2 * result + result // 2    # the limit falls inside the 3rd result line
        size = log.stat().st_size
        blocks = (size + room + 100) // 1024 + 1              # bash's ulimit -f counts 1024-byte blocks
        pad = blocks * 1024 - room - size
        with log.open("a") as f:                              # a whole padding line up to where it must fall
            f.write(json.dumps({"event": "padding", "x": "p" * (pad - 30)}).ljust(pad - 1) + "\n")
        assert log.stat().st_size == blocks * 1024 - room
        args = cli.apply_args(config, kvk)
        env = dict(cli_env(sandbox.tokens[kvk]), PYTHONDONTWRITEBYTECODE="1")
        done = subprocess.run(["bash", "-c", f'ulimit -f {blocks} && exec "$@"', "bash", *cli_command(*args)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        out = done.stdout + done.stderr
        assert done.returncode == 1, out
        assert "internal error" not in out and "Traceback" not in out, out
        assert f"audit log {log}: File too large; stopped before the next request" in done.stdout, out
        assert "Apply: 3 done, 0 failed, 5 skipped" in done.stdout, out
        assert log.stat().st_size <= blocks * 1024
        records = lines_of(log)                               # every line whole, the last one too
        assert records[-1]["event"] == "step-intent"

        keys_before = {r["key"] for r in records[:len(lines)] if "key" in r}
        committed = [e["idempotency_key"] for e in sandbox.events(kvk) if e["action"] == "request_means"
                     and e["outcome"] == "ok" and e["idempotency_key"] not in keys_before]
        results = {r["key"] for r in records if r["event"] == "step-result" and r["outcome"] == "done"}
        intents = {r["key"] for r in records if r["event"] == "step-intent"}
        assert len(committed) == 3 and set(committed) <= intents
        unlogged = [k for k in committed if k not in results]
        assert len(unlogged) == 1 and f"committed, not logged: + request_means" in done.stdout, out
        assert f"key {unlogged[0]})" in done.stdout, out

        rest = cli.apply(config, kvk)                         # without the limit: the other 5
        assert rest.code == 0 and "Apply: 5 done, 0 failed" in rest.out, str(rest)
        converge(cli, config, kvk, max_rounds=2)
        assert_each_bought_once(sandbox, expected_state(config, sandbox.today()), admin)
        assert lines_of(log)[-1]["event"] == "apply-finished"
