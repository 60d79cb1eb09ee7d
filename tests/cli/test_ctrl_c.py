"""Issue 10, item 5: Ctrl-C during a command says what state things are in and what to do (exit 130), not a
bare `aborted`: click turns KeyboardInterrupt into Abort, which the CLI now tells apart from a refused prompt."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from reconciler.backend.sandbox.store import SandboxStore

from tests.apply.served import cli_command, cli_env

from .test_user_errors import EXAMPLE

INTERRUPTED = "interrupted: nothing more is sent. Run the command again to finish"


def _has_open(pid: int, path: Path) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.path.realpath(fd) == str(path.resolve()) for fd in fds.iterdir())
    except OSError:
        return False


def _interrupt_when_open(proc: subprocess.Popen[str], path: Path) -> tuple[str, str]:
    """Send SIGINT once the command has opened `path` (past its imports, inside its work)."""
    deadline = time.monotonic() + 60
    while not _has_open(proc.pid, path):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the command never opened " + str(path)
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=30)


def test_ctrl_c_while_plan_waits_for_a_slow_backend(tmp_path: Path) -> None:
    db = tmp_path / "slow.db"
    store = SandboxStore(db)
    store.set_setting("faults", {"p_503": 0.0, "p_429": 0.0, "p_drop": 0.0, "delay_ms": 60000, "seed": None})
    store.close()
    proc = subprocess.Popen(cli_command("plan", str(EXAMPLE), "--backend", f"sandbox:{db}"), cwd=tmp_path,
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = _interrupt_when_open(proc, db)
    assert proc.returncode == 130, err
    assert INTERRUPTED in err and "audit log" in err
    assert "Traceback" not in err and "internal error" not in err and "aborted" not in err


def test_ctrl_c_while_validate_reads_a_pipe(tmp_path: Path) -> None:
    fifo = tmp_path / "org.yaml"
    os.mkfifo(fifo)
    proc = subprocess.Popen(cli_command("validate", str(fifo)), cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = None
    try:
        writer = open(fifo, "w")            # the command has opened the pipe for reading once this returns
        writer.write("version: 1\n")
        writer.flush()
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if writer is not None:
            writer.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert INTERRUPTED in err and "Traceback" not in err and "aborted" not in err
