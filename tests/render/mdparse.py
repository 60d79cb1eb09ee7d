"""A small reader of the markdown comment, for assertions: table rows split into cells the way GitHub does
(a pipe preceded by a backslash is part of a cell), and the section each row or list item belongs to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_SUMMARY_KVK = re.compile(r"\(KvK (\d{8})\)")
_NOTE = re.compile(r"\*\*Cut short\*\*: (\d+) of the plan's (\d+) items")


def cells(line: str) -> list[str]:
    assert line.startswith("| ") and line.endswith(" |"), f"not a whole table row: {line!r}"
    return [c.strip() for c in _CELL_SPLIT.split(line[1:-1])]


@dataclass
class Table:
    section: str
    org: str | None
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)


@dataclass
class Doc:
    tables: list[Table]
    bullets: list[tuple[str, str | None, str]]      # (section, org kvk, text)

    def table(self, section: str, org: str | None = None) -> Table:
        [found] = [t for t in self.tables if t.section == section and t.org == org]
        return found


def section_of(line: str) -> str | None:
    if line.startswith("#### ") and "Privilege escalations" in line:
        return "escalations"
    if line.startswith("#### Removals"):
        return "removals"
    if line.startswith("#### Warnings"):
        return "plan-warnings"
    for word in ("Changes", "Deferred", "Manual", "Unmanaged", "Warnings"):
        if line.startswith(f"**{word}** ("):
            return word.lower()
    return None


def parse(text: str) -> Doc:
    """Every table (header row checked against the delimiter row) and list item, with its section."""
    lines = text.split("\n")
    tables: list[Table] = []
    bullets: list[tuple[str, str | None, str]] = []
    section, org, i = "", None, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("<summary>"):
            match = _SUMMARY_KVK.search(line)
            assert match, line
            org, section = match.group(1), ""
        elif line == "</details>":
            org, section = None, ""
        elif (found := section_of(line)) is not None:
            section = found
        elif line.startswith("|"):
            header = cells(line)
            assert cells(lines[i + 1]) == ["---"] * len(header), "a table starts with a header and a delimiter"
            table = Table(section, org, header)
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                row = cells(lines[i])
                assert len(row) == len(header), f"row has {len(row)} cells, header {len(header)}: {lines[i]!r}"
                table.rows.append(row)
                i += 1
            assert i < len(lines) and lines[i] == "", "a table ends with a blank line"
            tables.append(table)
            continue
        elif line.startswith("- ") and section:
            bullets.append((section, org, line[2:]))
        i += 1
    return Doc(tables, bullets)


def note(text: str) -> tuple[int, int] | None:
    match = _NOTE.search(text)
    return (int(match.group(1)), int(match.group(2))) if match else None
