"""reconciler.backend.sandbox.serve: everything short of listening, with refusals as exceptions carrying the
line `sandbox serve` prints; nothing is printed and nothing is created before the checks pass."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from reconciler.backend.sandbox import serve


def test_a_remote_host_is_refused_unless_allowed_and_then_warned_about() -> None:
    assert serve.check_host("127.0.0.1", False) is None and serve.check_host("localhost", False) is None
    with pytest.raises(serve.ServeRefused, match=r"^refusing --host 0\.0\.0\.0: it is not a loopback address"):
        serve.check_host("0.0.0.0", False)
    warning = serve.check_host("0.0.0.0", True)
    assert warning is not None and warning.startswith("--allow-remote: the sandbox listens on 0.0.0.0")


@pytest.mark.parametrize(("token", "says"), [("a", "is too short (1 characters)"), ("x" * 15, "(15 characters)"),
                                              ("met spaties erin hier", "printable ASCII"),
                                              ("sleutel-met-één-accent", "printable ASCII")])
def test_a_guessable_or_unsendable_control_token_is_refused(tmp_path: Path, token: str, says: str) -> None:
    with pytest.raises(serve.ServeRefused, match=r"^SANDBOX_CONTROL_TOKEN ") as caught:
        serve.prepare(str(tmp_path / "sb.db"), None, "127.0.0.1", 1, env={"SANDBOX_CONTROL_TOKEN": token})
    assert says in str(caught.value)
    assert not (tmp_path / "sb.db").exists()


def test_without_a_database_it_is_a_usage_mistake() -> None:
    with pytest.raises(serve.NoDatabase, match="give --db PATH or --backend sandbox:PATH"):
        serve.prepare(None, "http://127.0.0.1:1", "127.0.0.1", 1, env={})


def test_a_busy_port_is_refused(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(serve.ServeRefused, match=rf"^port {port} on 127\.0\.0\.1 is already in use"):
            serve.prepare(str(tmp_path / "sb.db"), None, "127.0.0.1", port, env={})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_prepared_start_lines_show_a_generated_token_once_on_stdout(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    warned: list[str] = []
    served = serve.prepare(str(tmp_path / "sb.db"), None, "localhost", _free_port(), env={}, warn=warned.append)
    assert warned == [] and len(served.control_token) >= 32 and not served.token_given
    lines = served.start_lines()
    assert [text for text, to_stdout in lines if to_stdout] == [f"control token: {served.control_token}"]
    assert sum(served.control_token in text for text, _ in lines) == 1
    assert capsys.readouterr() == ("", "")


def test_a_given_token_is_used_and_never_shown(tmp_path: Path) -> None:
    given = "c" * 32
    served = serve.prepare(None, f"sandbox:{tmp_path / 'sb.db'}", "127.0.0.1", _free_port(),
                           env={"SANDBOX_CONTROL_TOKEN": f" {given} "})
    assert served.control_token == given and served.token_given and served.db == str(tmp_path / "sb.db")
    lines = served.start_lines()
    assert all(not to_stdout and given not in text for text, to_stdout in lines)
    assert lines[-1] == ("control token: from SANDBOX_CONTROL_TOKEN", False)


def test_run_serves_with_the_c_parser_and_no_access_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """httptools is a dependency: uvicorn's pure-Python parser (h11) was a fifth of the server's CPU per change;
    the access log's lines were formatted only to be dropped below the warning level."""
    import uvicorn
    from uvicorn.config import Config

    served = serve.prepare(str(tmp_path / "sb.db"), None, "127.0.0.1", _free_port(), env={})
    called: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: called.update(options, app=app))
    serve.run(served)
    assert called["app"] is served.app and called["http"] == "httptools" and called["access_log"] is False
    config = Config(served.app, http=called["http"], access_log=False)   # what uvicorn makes of it: importable
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
