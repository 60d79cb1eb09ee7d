"""Diagnostics: one positioned finding (error or warning) about an input file, with its rule code."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

#: Where a value is in a document: keys and list indexes from the root, e.g. ('users', 3, 'email').
JsonPath = tuple[str | int, ...]


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"          # nothing wrong: a decision the reviewer should see (an override, a cap)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """`path:line:col: severity[code]: message`; `code` is a rule id (R8) or a named check."""

    path: str
    line: int
    column: int
    severity: Severity
    code: str
    message: str
    json_path: str = "$"

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def render(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.severity.value}[{self.code}]: {self.message}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line, self.column, self.code)


def format_json_path(path: JsonPath) -> str:
    """('users', 3, 'email') -> `$.users[3].email`."""
    out = ["$"]
    for part in path:
        out.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(out)
