"""The rules document (reconciler/data/rules.md, docs/rules.md): an entry per rule R1..R20 with the same parts,
every test it cites exists, and `rules_doc.entry` finds an entry however the id is written (issue #13)."""

from __future__ import annotations

import ast
import re
import tomllib
from functools import lru_cache
from pathlib import Path

import pytest

from reconciler.domain import rules_doc

ROOT = Path(__file__).resolve().parents[2]
RULES = [f"R{n}" for n in range(1, 21)]
PARTS = ("**Rule.**", "**Manual.**", "**Sandbox.**", "**Validate and plan.**", "**Tests.**")


def cited_tests(entry: str) -> list[tuple[str, str]]:
    """(file, test) for each test an entry cites: after `**Tests.**`, a `- `file`` line per file and a
    `  - `test_name`` line per test in it."""
    _, _, tests = entry.partition("**Tests.**")
    out: list[tuple[str, str]] = []
    current = ""
    for line in tests.splitlines():
        if m := re.fullmatch(r"- `(tests/[\w/]+\.py)`", line):
            current = m.group(1)
        elif m := re.fullmatch(r"  - `(test_\w+)`", line):
            assert current, f"test {m.group(1)} is listed before any file"
            out.append((current, m.group(1)))
        elif line.strip():
            pytest.fail(f"unexpected line in a Tests list: {line!r}")
    return out


@lru_cache(maxsize=None)
def defined_tests(path: str) -> frozenset[str]:
    """The names of the test functions (sync or async) and test methods defined in a test file."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return frozenset(node.name for node in ast.walk(tree)
                     if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"))


def test_every_rule_r1_to_r20_has_an_entry_with_every_part() -> None:
    assert rules_doc.ids() == RULES
    for rule in RULES:
        text = rules_doc.entry(rule)
        assert re.match(rf"## {rule} \S", text), text.splitlines()[0]
        positions = [text.find(part) for part in PARTS]
        assert -1 not in positions and positions == sorted(positions), (rule, positions)
        assert f"## R{int(rule[1:]) + 1} " not in text                  # one entry, not the next one too


@pytest.mark.parametrize("rule", RULES)
def test_every_cited_test_exists(rule: str) -> None:
    cited = cited_tests(rules_doc.entry(rule))
    assert cited, f"{rule} cites no test"
    for path, name in cited:
        assert (ROOT / path).is_file(), f"{rule} cites {path}, which does not exist"
        assert name in defined_tests(path), f"{rule} cites {path}::{name}, which is not a test in that file"


def test_a_missing_test_would_be_found() -> None:
    """The check above reads what the document says: a renamed test is reported, not skipped."""
    entry = "**Tests.**\n- `tests/domain/test_rules.py`\n  - `test_r6_one_mutation_at_a_time`\n  - `test_gone`\n"
    cited = cited_tests(entry)
    assert cited == [("tests/domain/test_rules.py", "test_r6_one_mutation_at_a_time"),
                     ("tests/domain/test_rules.py", "test_gone")]
    assert [name in defined_tests(path) for path, name in cited] == [True, False]


@pytest.mark.parametrize("spelling", ["R8", "r8", "8", " R8 ", "R08"])
def test_an_id_is_found_however_it_is_written(spelling: str) -> None:
    assert rules_doc.entry(spelling).startswith("## R8 Level covers the service\n")


@pytest.mark.parametrize("unknown", ["R21", "R0", "0", "", "RR8", "R8x", "rule 8", "-8"])
def test_an_unknown_id_names_the_valid_ones(unknown: str) -> None:
    with pytest.raises(ValueError) as caught:
        rules_doc.entry(unknown)
    message = str(caught.value)
    assert message.startswith(f"unknown rule {unknown!r}; the rules are R1, R2, R3, ")
    assert ", ".join(RULES) in message and "\n" not in message


def test_lines_fit_a_terminal() -> None:
    """`reconciler explain` prints entries as they are: every line under 100 characters."""
    long = [line for line in rules_doc.document().splitlines() if len(line) >= 100]
    assert long == []


def test_the_document_ships_in_the_package_and_docs_links_to_it() -> None:
    docs = ROOT / "docs" / "rules.md"
    assert docs.is_symlink() and Path(docs.readlink()) == Path("../reconciler/data/rules.md")
    assert docs.read_text(encoding="utf-8") == rules_doc.document()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "data/*.md" in package_data["reconciler"]


def test_the_readme_links_the_project_s_own_rules() -> None:
    """Readers of the repository do not have ../shared: the README points at docs/rules.md instead."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "shared/domain/RULES.md" not in readme
    assert "(docs/rules.md)" in readme and "reconciler explain R8" in readme
