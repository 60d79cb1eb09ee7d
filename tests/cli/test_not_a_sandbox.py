"""Issue 10: a sandbox database that is not one is a clear line naming the path and what to do (exit 1),
never `internal error`, both as `--backend sandbox:PATH` and as `sandbox serve --db PATH`; another program's
SQLite file is refused, not given the sandbox's tables."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable

import pytest

from .test_user_errors import EXAMPLE, assert_one_clear_line, invoke


def _text(tmp_path: Path) -> str:
    (tmp_path / "txt.db").write_text("hello, not a database\n")
    return str(tmp_path / "txt.db")


def _random(tmp_path: Path) -> str:
    (tmp_path / "rnd.db").write_bytes(os.urandom(8192))
    return str(tmp_path / "rnd.db")


def _future(tmp_path: Path) -> str:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("PRAGMA user_version = 99")
    return str(path)


def _directory(tmp_path: Path) -> str:
    (tmp_path / "dir.db").mkdir()
    return str(tmp_path / "dir.db")


CASES: dict[str, tuple[Callable[[Path], str], str]] = {
    "text": (_text, "not a SQLite database"),
    "random bytes": (_random, "not a SQLite database"),
    "/dev/null": (lambda _: "/dev/null", "not a regular file"),
    "/dev/zero": (lambda _: "/dev/zero", "not a regular file"),
    "future schema": (_future, "schema 99 is not 3"),
}


def _foreign(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    return path


@pytest.mark.parametrize("case", list(CASES) + ["directory"])
def test_backend_sandbox_path_that_is_no_sandbox_database(tmp_path: Path, case: str) -> None:
    make, why = CASES.get(case, (_directory, "is a directory"))
    db = make(tmp_path)
    code, _, err = invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{db}")
    assert_one_clear_line(code, err, f"the sandbox database {db} cannot be used", why)


@pytest.mark.parametrize("case", list(CASES))
def test_sandbox_serve_db_that_is_no_sandbox_database(tmp_path: Path, case: str) -> None:
    make, why = CASES[case]
    db = make(tmp_path)
    code, _, err = invoke("sandbox", "serve", "--db", db, "--port", "1")
    assert_one_clear_line(code, err, f"the sandbox database {db} cannot be used", why)


@pytest.mark.parametrize("how", ["backend", "serve"])
def test_another_programs_sqlite_file_is_refused_and_left_alone(tmp_path: Path, how: str) -> None:
    db = _foreign(tmp_path)
    if how == "backend":
        code, _, err = invoke("plan", str(EXAMPLE), "--backend", f"sandbox:{db}")
    else:
        code, _, err = invoke("sandbox", "serve", "--db", str(db), "--port", "1")
    assert_one_clear_line(code, err, f"the sandbox database {db} cannot be used", "another program's SQLite "
                          "database (tables customers)", "a new file")
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert tables == ["customers"]
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0


def test_sandbox_serve_db_under_a_file_is_one_line() -> None:
    code, _, err = invoke("sandbox", "serve", "--db", "/dev/full/x.db", "--port", "1")
    assert_one_clear_line(code, err, "the sandbox database /dev/full/x.db cannot be used",
                          "cannot create its directory /dev/full")
