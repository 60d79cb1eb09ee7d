"""Issue 10, item 6: `sandbox serve` on a port that is in use is one clear line and exit 1 (it was uvicorn's
`ERROR:` log line and exit 3)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tests.apply.served import cli_command, cli_env


def test_serve_on_a_busy_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(cli_command("sandbox", "serve", "--db", str(tmp_path / "sb.db"), "--port", str(port)),
                              cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: port {port} on 127.0.0.1 is already in use (another `reconciler sandbox serve`?): "
                      "stop that, or give --port another number"], done.stderr
    assert "ERROR:" not in done.stderr and "Traceback" not in done.stderr
    assert "control token:" not in done.stdout          # nothing announced as running
