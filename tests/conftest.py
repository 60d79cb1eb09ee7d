"""Shared fixtures: a fixed "today", a minimal valid organisation file, and helpers that write files into
`tmp_path` and run the loader on them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

import pytest

from reconciler.config.loader import LoadResult, load_paths
from reconciler.diagnostics import Diagnostic

#: "Today" for every test that judges end dates; 2025-06-01 + 5 years = 2030-06-01.
TODAY = dt.date(2025, 6, 1)

#: A minimal organisation file without findings (line numbers below are relied on by tests):
#:  1 version: 1
#:  2 organisation:
#:  3   kvk: "12345678"
#:  4   name: Acme
#:  5 users:
#:  6   - email: a@acme.nl
#:  7     name: Anna
#:  8     role: beheerder
#:  9     level: EH3
#: 10     second_factor: {type: otp}
MINIMAL_ORG = """\
version: 1
organisation:
  kvk: "12345678"
  name: Acme
users:
  - email: a@acme.nl
    name: Anna
    role: beheerder
    level: EH3
    second_factor: {type: otp}
"""

EXAMPLE_ORG = Path(__file__).resolve().parents[1] / "examples" / "org.yaml"


@pytest.fixture
def today() -> dt.date:
    return TODAY


@pytest.fixture
def minimal_org() -> str:
    return MINIMAL_ORG


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """write("name.yaml", text_or_bytes) -> the path, under tmp_path (parents created)."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def load_text(write: Callable[..., Path]) -> Callable[..., LoadResult]:
    """load_text(text, name="org.yaml", today=TODAY, **other_files) -> LoadResult of that one file."""

    def _load(text: str | bytes, name: str = "org.yaml", *, today: dt.date = TODAY,
              extra: dict[str, str | bytes] | None = None) -> LoadResult:
        for other, content in (extra or {}).items():
            write(other, content)
        path = write(name, text)
        return load_paths([str(path)], today)

    return _load


def positions(diagnostics: list[Diagnostic], code: str | None = None) -> list[tuple[int, int]]:
    """(line, column) of each diagnostic (with `code`, when given)."""
    return [(d.line, d.column) for d in diagnostics if code is None or d.code == code]


@pytest.fixture
def where() -> Callable[..., list[tuple[int, int]]]:
    return positions
