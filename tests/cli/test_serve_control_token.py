"""Issue 10, item 4: `sandbox serve` refuses a guessable SANDBOX_CONTROL_TOKEN (shorter than 16 characters,
like plan keys) or one no client can send in a header, with one line before anything listens."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_user_errors import assert_one_clear_line, invoke


@pytest.mark.parametrize("token", ["a", "short-token-15ch"[:15]])
def test_a_short_control_token_is_refused(tmp_path: Path, token: str) -> None:
    code, out, err = invoke("sandbox", "serve", "--db", str(tmp_path / "sb.db"), "--port", "1",
                            env={"SANDBOX_CONTROL_TOKEN": token})
    assert_one_clear_line(code, err, "SANDBOX_CONTROL_TOKEN is too short", f"({len(token)} characters)",
                          "at least 16")
    assert token not in out and not (tmp_path / "sb.db").exists()      # nothing started, nothing made


def test_a_control_token_that_is_not_ascii_is_refused(tmp_path: Path) -> None:
    code, _, err = invoke("sandbox", "serve", "--db", str(tmp_path / "sb.db"), "--port", "1",
                          env={"SANDBOX_CONTROL_TOKEN": "sleutel-met-één-accent"})
    assert_one_clear_line(code, err, "SANDBOX_CONTROL_TOKEN must be printable ASCII")
