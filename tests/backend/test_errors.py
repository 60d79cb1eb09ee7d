"""`backend.errors`: what the backend says stays on one line of ours; no data can forge a line under it."""

from __future__ import annotations

from reconciler.backend.errors import BackendError
from reconciler.render.safe import terminal_lines


def test_a_backend_detail_cannot_start_a_line_of_its_own() -> None:
    error = BackendError("refused\nwarning: everything is fine\x1b[2J", status=409, code="R1")
    shown = terminal_lines(str(error))                     # as `reconciler` prints an error
    assert "\n" not in shown and "\x1b" not in shown
    assert shown == ("The beheer backend reported an error (rule R1, HTTP 409): refused\\nwarning: everything is "
                     "fine\\x1b[2J")
