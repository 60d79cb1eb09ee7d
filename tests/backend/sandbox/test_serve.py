"""reconciler.backend.sandbox.serve: everything short of listening, with refusals as exceptions carrying the
line `sandbox serve` prints; nothing is printed and nothing is created before the checks pass."""

from __future__ import annotations

import asyncio
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
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    served = serve.prepare(str(tmp_path / "sb.db"), None, "127.0.0.1", _free_port(), env={})
    called: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: called.update(options, app=app))
    serve.run(served)
    assert called["app"] is served.app and called["access_log"] is False
    config = Config(served.app, http=called["http"], access_log=False)   # what uvicorn makes of it
    config.load()
    assert issubclass(config.http_protocol_class, HttpToolsProtocol)


class _Transport:
    """What the coalescing wrapper writes to, and what else it is asked."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.events: list[str] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return "close" in self.events

    def close(self) -> None:
        self.events.append("close")

    def abort(self) -> None:
        self.events.append("abort")

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def _turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def test_an_answers_head_and_body_leave_in_one_write() -> None:
    """uvicorn writes a head and a body apart: two send(2) calls and two wake-ups for the client per change."""

    async def scenario() -> None:
        inner = _Transport()
        wrapped = serve._CoalescedWrites(inner)
        wrapped.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        wrapped.write(b"{}")
        assert inner.writes == []
        await _turn()
        assert inner.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        assert wrapped.get_extra_info("peername") == "info:peername"
        wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")          # a drop: the head written, then closed
        wrapped.close()
        assert inner.writes[-1] == b"HTTP/1.1 200 OK\r\n\r\n" and inner.events == ["close"]
        await _turn()
        assert len(inner.writes) == 2                          # nothing sent twice, nothing after the close
        aborted = _Transport()
        cut = serve._CoalescedWrites(aborted)
        cut.write(b"held")
        cut.abort()
        await _turn()
        assert aborted.writes == [] and aborted.events == ["abort"]

    asyncio.run(scenario())
