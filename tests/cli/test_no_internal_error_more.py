"""Issue 10, item 3: more user mistakes that ended in `internal error` are one clear line and exit 1: an
`--out` name too long for the system, a `--catalogue` that is no catalogue, a `--today` or sandbox clock so far
ahead that five years later (R9) leaves the calendar, and a lock timeout that is not a number of seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_user_errors import EXAMPLE, assert_one_clear_line, invoke


def _no_internal_error(code: int, err: str, *needles: str) -> None:
    assert code == 1, err
    assert "internal error" not in err and "Traceback" not in err and "please report" not in err
    for needle in needles:
        assert needle in err, err


def test_import_out_with_a_name_too_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "sb.db"
    code, _, err = invoke("sandbox", "init", "--kvk", "99966564", "--name", "Acme", "--admin", "a@acme.nl",
                          "--backend", f"sandbox:{db}")
    assert code == 0, err
    name = "a" * 300
    code, _, err = invoke("import", "--kvk", "99966564", "--backend", f"sandbox:{db}", "--out", name)
    assert_one_clear_line(code, err, f"cannot use --out {name}", "File name too long", "shorter name")


@pytest.mark.parametrize("content", ["kind: not-a-catalogue\n", None])
def test_sandbox_serve_with_a_catalogue_that_is_none(tmp_path: Path, content: str | None) -> None:
    if content is None:
        catalogue = "/dev/zero"
    else:
        (tmp_path / "bad.yaml").write_text(content)
        catalogue = str(tmp_path / "bad.yaml")
    code, _, err = invoke("sandbox", "serve", "--db", str(tmp_path / "sb.db"), "--catalogue", catalogue,
                          "--port", "1")
    assert_one_clear_line(code, err, f"--catalogue {catalogue} is not a valid catalogue", f"{catalogue}:1:1:")


@pytest.mark.parametrize("command", ["validate", "plan", "drift"])
@pytest.mark.parametrize("day", ["9995-01-01", "9999-12-31", "9001-01-01"])
def test_today_too_far_ahead_is_refused(tmp_path: Path, command: str, day: str) -> None:
    extra = [] if command == "validate" else ["--backend", f"sandbox:{tmp_path / 'sb.db'}"]
    code, _, err = invoke(command, str(EXAMPLE), "--today", day, *extra)
    _no_internal_error(code, err, f"{day} is too far ahead", "up to 9000-12-31")


def test_today_at_the_latest_day_still_validates() -> None:
    code, _, err = invoke("validate", str(EXAMPLE), "--today", "9000-12-31")
    assert "internal error" not in err and "too far ahead" not in err


def test_sandbox_clock_cannot_leave_the_calendar(tmp_path: Path) -> None:
    backend = f"sandbox:{tmp_path / 'sb.db'}"
    code, _, err = invoke("sandbox", "clock", "--backend", backend, "set", "9999-12-31")
    _no_internal_error(code, err, "9999-12-31 is too far ahead")
    code, out, err = invoke("sandbox", "clock", "--backend", backend, "set", "9000-12-01")
    assert code == 0, err
    code, _, err = invoke("sandbox", "clock", "--backend", backend, "advance", "60d")
    assert_one_clear_line(code, err, "advancing 60 days from 9000-12-01 passes 9000-12-31")
    code, out, err = invoke("plan", str(EXAMPLE), "--backend", backend)
    assert code in (0, 2) and "internal error" not in err, err


@pytest.mark.parametrize("value", ["inf", "1e400", "abc", "nan", "-1"])
def test_lock_timeout_that_is_no_number_of_seconds(tmp_path: Path, value: str) -> None:
    env = {"RECONCILER_SANDBOX_LOCK_TIMEOUT": value}
    code, _, err = invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{tmp_path / 'sb.db'}", env=env)
    assert_one_clear_line(code, err, f"RECONCILER_SANDBOX_LOCK_TIMEOUT={value!r} is not a number of seconds",
                          "unset it")
    code, _, err = invoke("sandbox", "serve", "--db", str(tmp_path / "sb.db"), "--port", "1", env=env)
    assert_one_clear_line(code, err, f"RECONCILER_SANDBOX_LOCK_TIMEOUT={value!r} is not a number of seconds")


@pytest.mark.parametrize("command", ["plan", "drift"])
def test_a_sandbox_clock_left_past_the_latest_day_by_an_older_version(tmp_path: Path, command: str) -> None:
    from reconciler.backend.sandbox.store import SandboxStore

    db = tmp_path / "sb.db"
    store = SandboxStore(db)
    store.set_setting("clock", "9999-12-31")          # what `clock set 9999-12-31` wrote before the limit
    store.close()
    code, _, err = invoke(command, str(EXAMPLE), "--backend", f"sandbox:{db}")
    assert_one_clear_line(code, err, "the backend's today is 9999-12-31, past 9000-12-31",
                          "reconciler sandbox clock set YYYY-MM-DD")
    code, out, err = invoke("sandbox", "clock", "--backend", f"sandbox:{db}", "set", "2030-01-01")
    assert code == 0 and "2030-01-01" in out, err
    code, _, err = invoke(command, str(EXAMPLE), "--backend", f"sandbox:{db}")
    assert code in (0, 2) and "internal error" not in err, err
