"""The example files under `examples/` run through the real `reconciler validate` command.

`examples/org.yaml` and `examples/multi-org/` must be valid. Every file under `examples/invalid/` (and every
subdirectory there, validated as one estate) states the diagnostics it must produce in comment lines

    # expect: LINE:COL severity[CODE] substring-of-the-message

and validation must produce exactly those: no more, no fewer, at exactly those positions. The exit code is 1
when an error is expected, else 0.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from reconciler.cli.main import cli

TODAY = "2026-11-21"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
INVALID = EXAMPLES / "invalid"
MULTI_ORG = EXAMPLES / "multi-org"

_EXPECT = re.compile(r"^#\s*expect:\s*(\d+):(\d+)\s+(error|warning)\[([^\]\s]+)\]\s+(\S.*?)\s*$")
_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): (?P<severity>error|warning)\[(?P<code>[^\]]+)\]: "
                   r"(?P<message>.*)$")
_SUMMARY = re.compile(r"^(valid|invalid): (\d+) errors?, (\d+) warnings? in (\d+) files?$")
_JSON_KEYS = {"path", "line", "column", "severity", "code", "message", "json_path"}


@dataclass(frozen=True)
class Found:
    """One diagnostic as printed by `validate`."""

    path: Path
    line: int
    column: int
    severity: str
    code: str
    message: str

    @property
    def where(self) -> tuple[str, int, int, str, str]:
        return (self.path.name, self.line, self.column, self.severity, self.code)

    def __str__(self) -> str:
        return f"{self.path.name}:{self.line}:{self.column}: {self.severity}[{self.code}]: {self.message}"


@dataclass(frozen=True)
class Expected:
    """One `# expect:` line of an example file."""

    path: Path
    line: int
    column: int
    severity: str
    code: str
    substring: str

    @property
    def where(self) -> tuple[str, int, int, str, str]:
        return (self.path.name, self.line, self.column, self.severity, self.code)

    def __str__(self) -> str:
        return f"{self.path.name}:{self.line}:{self.column}: {self.severity}[{self.code}]: ...{self.substring}..."


def yaml_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))


def expectations(path: Path) -> list[Expected]:
    """The `# expect:` lines of the comment block that opens the file."""
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.startswith("#"):
            break
        if raw.lstrip("# ").startswith("expect"):
            match = _EXPECT.match(raw)
            assert match, f"{path.name}: malformed expectation line {raw!r}"
            line, column, severity, code, substring = match.groups()
            out.append(Expected(path.resolve(), int(line), int(column), severity, code, substring))
    return out


def invalid_cases() -> list[Path]:
    """Every file directly under examples/invalid/, and every subdirectory (validated as a whole)."""
    return sorted(p for p in INVALID.iterdir() if p.is_dir() or p.suffix in (".yaml", ".yml"))


def case_expectations(case: Path) -> list[Expected]:
    files = yaml_files(case) if case.is_dir() else [case]
    return [e for f in files for e in expectations(f)]


def validate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["validate", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout


def run_text(*paths: Path) -> tuple[int, list[Found], str]:
    """Exit code, the diagnostic lines and the summary line of `validate --format text`."""
    code, out = validate(*(str(p) for p in paths), "--today", TODAY)
    lines = out.splitlines()
    assert lines, "validate printed nothing"
    found = []
    for text in lines[:-1]:
        match = _LINE.match(text)
        assert match, f"not a diagnostic line: {text!r}"
        found.append(Found(Path(match["path"]).resolve(), int(match["line"]), int(match["column"]),
                           match["severity"], match["code"], match["message"]))
    assert "Traceback" not in out
    return code, found, lines[-1]


def run_json(*paths: Path) -> tuple[int, list[dict]]:
    code, out = validate(*(str(p) for p in paths), "--today", TODAY, "--format", "json")
    return code, json.loads(out)


def unmatched(expected: list[Expected], found: list[Found]) -> tuple[list[Expected], list[Found]]:
    """Pair each expectation with a distinct diagnostic at the same place with the same severity and code
    whose message contains the expected text; return what is left on either side."""
    left = list(found)
    missing = []
    for exp in expected:
        hit = next((f for f in left if f.path == exp.path and f.where == exp.where and exp.substring in f.message),
                   None)
        if hit is None:
            missing.append(exp)
        else:
            left.remove(hit)
    return missing, left


def check_summary(summary: str, found: list[Found], files: int) -> None:
    match = _SUMMARY.match(summary)
    assert match, f"not a summary line: {summary!r}"
    errors = sum(1 for f in found if f.severity == "error")
    warnings = len(found) - errors
    assert match.groups() == ("invalid" if errors else "valid", str(errors), str(warnings), str(files)), summary


# --- the valid examples -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [EXAMPLES / "org.yaml", MULTI_ORG], ids=["org.yaml", "multi-org"])
def test_valid_examples_validate_clean(target: Path) -> None:
    code, found, summary = run_text(target)
    assert [str(f) for f in found] == []
    assert code == 0, summary
    check_summary(summary, found, len(yaml_files(target)) if target.is_dir() else 1)


def test_multi_org_is_two_organisations_sharing_people() -> None:
    """The estate really exercises R15: two files, people linked to both with one means each."""
    files = yaml_files(MULTI_ORG)
    assert len(files) == 2
    docs = [yaml.safe_load(f.read_text(encoding="utf-8")) for f in files]
    assert len({d["organisation"]["kvk"] for d in docs}) == 2
    people = [{u["email"].lower(): u for u in d["users"]} for d in docs]
    shared = set(people[0]) & set(people[1])
    assert shared, "no person appears in both files"
    for key in shared:
        a, b = people[0][key], people[1][key]
        for field in ("level", "type", "name", "second_factor", "subscription"):
            assert a.get(field) == b.get(field), (key, field)
    assert any(people[0][k]["role"] != people[1][k]["role"] for k in shared), "no shared person with another role"
    for d in docs:
        assert any(u["role"] == "beheerder" and u["level"] in ("EH2+", "EH3", "EH4") for u in d["users"])


def test_all_valid_examples_together() -> None:
    """org.yaml and the multi-org estate are independent organisations: validated together, still clean."""
    code, found, summary = run_text(EXAMPLES / "org.yaml", MULTI_ORG)
    assert [str(f) for f in found] == []
    assert code == 0, summary


# --- the invalid examples -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", invalid_cases(), ids=lambda p: p.name)
def test_invalid_example(case: Path) -> None:
    expected = case_expectations(case)
    assert expected, f"{case.name}: no `# expect:` lines"
    code, found, summary = run_text(case)
    missing, extra = unmatched(expected, found)
    assert not missing and not extra, (
        "expected but not produced:\n  " + "\n  ".join(map(str, missing))
        + "\nproduced but not expected:\n  " + "\n  ".join(map(str, extra)))
    assert code == (1 if any(e.severity == "error" for e in expected) else 0), summary
    check_summary(summary, found, len(yaml_files(case)) if case.is_dir() else 1)


def test_every_kind_of_mistake_is_covered() -> None:
    """The cases the examples promise to cover are all there."""
    codes = {(e.severity, e.code) for case in invalid_cases() for e in case_expectations(case)}
    for code in ("yaml", "duplicate-key", "schema", "duplicate-email", "unknown-group", "unknown-service",
                 "R1", "R2", "R8", "R9", "R13", "R15", "R18", "R19", "unmanaged", "duplicate-chain-service",
                 "catalogue", "duplicate-kvk"):
        assert ("error", code) in codes, code
    assert ("warning", "R9") in codes and ("warning", "R17") in codes
    for sub in ("same-kvk", "linked-mismatch"):
        assert len(yaml_files(INVALID / sub)) == 2


def _node_marks(root: yaml.Node, json_path: str) -> set[tuple[int, int]]:
    """Positions of the node at `json_path` (`$.users[1].email`) and of its key, read with plain PyYAML."""
    parts = re.findall(r"\.([^.\[]+)|\[(\d+)\]", json_path[1:])
    node, marks = root, set()
    for name, index in parts:
        if isinstance(node, MappingNode) and name:
            pair = next(((k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == name), None)
            if pair is None:
                break
            marks = {(pair[0].start_mark.line + 1, pair[0].start_mark.column + 1)}
            node = pair[1]
        elif isinstance(node, SequenceNode) and index and int(index) < len(node.value):
            node, marks = node.value[int(index)], set()
        else:
            break
    return marks | {(node.start_mark.line + 1, node.start_mark.column + 1)}


@pytest.mark.parametrize("case", invalid_cases(), ids=lambda p: p.name)
def test_positions_match_json_paths(case: Path) -> None:
    """Independently of the reconciler's own position code: the line and column of every diagnostic that has
    a JSON path are those of that node (or its key) in the file."""
    code, items = run_json(case)
    for item in items:
        if item["json_path"] == "$" or item["code"] == "yaml":
            continue
        root = yaml.compose(Path(item["path"]).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        assert (item["line"], item["column"]) in _node_marks(root, item["json_path"]), item


# --- JSON output --------------------------------------------------------------------------------------------


def test_json_output_shape() -> None:
    code, items = run_json(INVALID / "r8-level-below-service.yaml")
    assert code == 1
    assert isinstance(items, list) and items
    for item in items:
        assert isinstance(item, dict)
        assert set(item) == _JSON_KEYS
        assert isinstance(item["line"], int) and isinstance(item["column"], int)
        assert item["severity"] in ("error", "warning")
    (r8,) = [i for i in items if i["code"] == "R8"]
    assert r8["json_path"] == "$.users[1].authorisations[0].service"
    assert (r8["line"], r8["column"]) == (18, 19)
    assert r8["severity"] == "error"
    assert "needs level EH3" in r8["message"] and "has EH2" in r8["message"]


def test_json_path_of_r8_via_group_points_at_the_group_reference() -> None:
    code, items = run_json(INVALID / "r8-level-below-service-via-group.yaml")
    assert code == 1
    (r8,) = [i for i in items if i["code"] == "R8"]
    assert r8["json_path"] == "$.users[1].groups[0]"
    assert "(via group 'personeel')" in r8["message"] and "EH3" in r8["message"] and "EH2+" in r8["message"]


def test_json_and_text_agree() -> None:
    case = INVALID / "r17-branch-number.yaml"
    code_text, found, _ = run_text(case)
    code_json, items = run_json(case)
    assert code_text == code_json == 0
    assert [(f.line, f.column, f.severity, f.code, f.message) for f in found] == \
        [(i["line"], i["column"], i["severity"], i["code"], i["message"]) for i in items]


def test_valid_example_json_is_an_empty_list() -> None:
    code, items = run_json(EXAMPLES / "org.yaml")
    assert (code, items) == (0, [])
