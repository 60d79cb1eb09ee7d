"""reconciler.backend.sandbox.operations: the sandbox commands' work beneath the command line, on an embedded
sandbox. It prints nothing: what was done comes back (or to the `done` callback), a mistake is an exception."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from reconciler.backend.connect import open_backend
from reconciler.backend.sandbox import operations
from reconciler.cli.runner import leaves

pytestmark = pytest.mark.anyio


async def _org_with_requests(db: Path, *emails: str) -> str:
    backend = f"sandbox:{db}"
    await operations.move_clock(backend, day=dt.date(2027, 1, 1))
    created = await operations.init(backend, "12345678", "Acme", admin_email="a@acme.nl", admin_name=None,
                                    level="EH3", branch_number=None)
    async with open_backend(backend, token=created.token) as client:
        assert (await client.me()).email == "a@acme.nl"              # its token is the admin's
        for email in emails:
            await client.request_means("12345678", email=email, name="N", role="gebruiker", level="EH2")
    return backend


async def test_lifecycle_says_each_step_as_taken_and_counts_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                                 ) -> None:
    backend = await _org_with_requests(tmp_path / "sb.db", "u1@acme.nl", "u2@acme.nl")
    said: list[str] = []
    assert await operations.lifecycle(backend, "approve", ("U1@acme.nl",), kvk=None, done=said.append) == 1
    assert await operations.lifecycle(backend, "reject", (), kvk="12345678", done=said.append) == 1
    assert await operations.lifecycle(backend, "approve", (), kvk=None, done=said.append) == 0
    assert said == ["approved u1@acme.nl: wachten_op_activatie, to activate by 2027-01-31",
                    "rejected u2@acme.nl: the request is gone"]
    assert capsys.readouterr() == ("", "")                             # the library prints nothing


async def test_an_unknown_holder_is_refused_before_any_step(tmp_path: Path) -> None:
    backend = await _org_with_requests(tmp_path / "sb.db", "u1@acme.nl")
    said: list[str] = []
    for emails, kvk, message in [(("x@y.nl",), "87654321", "no means for x@y.nl in organisation 87654321"),
                                 (("u1@acme.nl", "x@y.nl"), None, "no means for x@y.nl")]:
        with pytest.raises(BaseException) as caught:
            await operations.lifecycle(backend, "approve", emails, kvk=kvk, done=said.append)
        [leaf] = leaves(caught.value)          # the embedded sandbox's task group wraps it (the runner unwraps)
        assert isinstance(leaf, operations.UnknownHolders) and str(leaf) == message
    assert said == []
    assert await operations.lifecycle(backend, "approve", (), kvk=None, done=said.append) == 1   # still requested


async def test_the_clock_moves_and_says_what_it_swept(tmp_path: Path) -> None:
    backend = await _org_with_requests(tmp_path / "sb.db", "u1@acme.nl")
    await operations.lifecycle(backend, "approve", (), kvk=None, done=lambda line: None)
    assert await operations.move_clock(backend, days=31) == ["today is 2027-02-01", "  activations_expired: 1"]
    assert await operations.today(backend) == dt.date(2027, 2, 1)


def test_clock_lines_leave_out_what_was_not_swept() -> None:
    assert operations.clock_lines({"today": "2027-01-01", "swept": {"a": 0, "b": 2}}) == ["today is 2027-01-01",
                                                                                          "  b: 2"]
    assert operations.clock_lines({"today": "2027-01-01"}) == ["today is 2027-01-01"]


def test_a_refused_control_token_is_a_configuration_error() -> None:
    from reconciler.backend.errors import ConfigurationError

    assert issubclass(operations.ControlTokenRefused, ConfigurationError)   # so the runner says it in one line


def test_days_are_parsed_with_what_to_write_when_they_are_not() -> None:
    assert [operations.parse_days(v) for v in ("30d", "2w", " 7 ", 5)] == [30, 14, 7, 5]
    with pytest.raises(ValueError, match=r"^'a month' is not a duration; write days like 30d \(or weeks like 2w\)$"):
        operations.parse_days("a month")
