"""reconciler.config.loader: discovery, reading, catalogue files, and "never raise on bad input"."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Callable

import pytest

from reconciler.config import yamlpos
from reconciler.config.loader import Reporter, discover, load_paths, read_document
from reconciler.config.models import ROLLING
from reconciler.diagnostics import Severity

TODAY = dt.date(2025, 6, 1)

CATALOGUE = """\
services:
  - key: acme/portal
    uuid: 2b7c1f3e-0000-4000-8000-000000000001
    provider: Acme
    name: Portal
    level: EH2
"""


def with_catalogue(org: str, name: str = "cat.yaml") -> str:
    return org.replace("version: 1\n", f"version: 1\ncatalogue: {name}\n", 1)


def grant(org: str, service: str, until: str = "rolling") -> str:
    return org + f"    authorisations:\n      - {{service: {service}, until: {until}}}\n"


# --- discovery -----------------------------------------------------------------------------------------

class TestDiscover:
    def test_only_yaml_files_directly_in_a_directory(self, write: Callable[..., Path], tmp_path: Path) -> None:
        for name in ("a.yaml", "b.yml", "C.YAML", ".hidden.yaml", ".github.yml", "notes.txt", "a.yaml.bak",
                     "yaml", "sub/nested.yaml"):
            write(name, "x: 1\n")
        (tmp_path / "dir.yaml").mkdir()
        files, problems = discover([str(tmp_path)])
        assert problems == []
        assert sorted(p.name for p, _ in files) == ["C.YAML", "a.yaml", "b.yml"]
        assert all(display == str(p) for p, display in files)

    def test_named_file_keeps_its_display_name(self, write: Callable[..., Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
        write("org.txt", "x: 1\n")
        monkeypatch.chdir(tmp_path)
        files, problems = discover(["org.txt"])  # named explicitly: any suffix is read
        assert problems == [] and [(p.name, d) for p, d in files] == [("org.txt", "org.txt")]

    def test_empty_directory(self, tmp_path: Path) -> None:
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "readme.md").write_text("hi")
        files, problems = discover([str(tmp_path / "empty")])
        assert files == []
        [p] = problems
        assert (p.path, p.line, p.column, p.severity, p.code) == (str(tmp_path / "empty"), 1, 1, Severity.ERROR,
                                                                  "input")
        assert "no *.yaml or *.yml files" in p.message

    def test_missing_path(self, tmp_path: Path) -> None:
        missing = str(tmp_path / "nope.yaml")
        files, problems = discover([missing])
        assert files == []
        assert [(p.path, p.code, p.message) for p in problems] == [(missing, "input", "no such file or directory")]

    def test_same_file_named_twice_counts_once(self, write: Callable[..., Path], tmp_path: Path,
                                               minimal_org: str) -> None:
        org = write("org.yaml", minimal_org)
        (tmp_path / "link.yaml").symlink_to(org)
        names = [str(tmp_path), str(org), str(tmp_path / "." / "org.yaml"), str(tmp_path / "link.yaml")]
        files, problems = discover(names)
        assert problems == [] and len(files) == 1
        result = load_paths(names, TODAY)
        assert result.files == 1
        assert result.diagnostics == []  # not a duplicate-kvk with itself

    def test_every_problem_path_is_reported(self, tmp_path: Path, write: Callable[..., Path]) -> None:
        write("ok/org.yaml", "x: 1\n")
        (tmp_path / "empty").mkdir()
        files, problems = discover([str(tmp_path / "missing"), str(tmp_path / "empty"), str(tmp_path / "ok")])
        assert len(files) == 1
        assert [p.path for p in problems] == [str(tmp_path / "missing"), str(tmp_path / "empty")]

    def test_too_long_path_is_a_diagnostic(self, tmp_path: Path) -> None:
        # Regression: `path.is_dir()` raises OSError(ENAMETOOLONG) for a 300-character name; it used to
        # escape discover(), so `reconciler validate <long name>` ended in "internal error".
        name = str(tmp_path / ("x" * 300 + ".yaml"))
        files, problems = discover([name])
        assert files == [] and [p.code for p in problems] == ["input"]


# --- reading -------------------------------------------------------------------------------------------

class TestRead:
    def test_valid_file(self, load_text: Callable[..., Any], minimal_org: str) -> None:
        result = load_text(minimal_org)
        assert result.ok and result.files == 1 and result.diagnostics == []
        [org] = result.orgs
        assert org.config.organisation.kvk == "12345678"
        assert org.config.users[0].email == "a@acme.nl"

    def test_example_is_valid(self, today: dt.date) -> None:
        example = Path(__file__).resolve().parents[2] / "examples" / "org.yaml"
        result = load_paths([str(example)], today)
        assert result.ok and result.diagnostics == [] and len(result.orgs) == 1

    def test_unreadable_file(self, write: Callable[..., Path], tmp_path: Path, minimal_org: str) -> None:
        path = write("secret.yaml", minimal_org)
        path.chmod(0)
        try:
            result = load_paths([str(path)], TODAY)
            if not os.access(path, os.R_OK):  # as root chmod 000 does not stop reading: no assertion then
                [d] = result.diagnostics
                assert (d.path, d.line, d.column, d.code) == (str(path), 1, 1, "input")
                assert d.message.startswith("cannot read the file")
        finally:
            path.chmod(0o644)
        # Unreadable for everyone, root included: a directory named like a YAML file, read directly.
        folder = tmp_path / "foo.yaml"
        folder.mkdir()
        reporter = Reporter(str(folder))
        assert read_document(folder, reporter) is None
        assert [(i.line, i.column, i.code, i.message) for i in reporter.items] == [
            (1, 1, "input", "is a directory, not a file")]

    def test_read_error_is_a_diagnostic(self, write: Callable[..., Path], minimal_org: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
        path = write("org.yaml", minimal_org)
        real = Path.open

        def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
            if self.name == "org.yaml":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refuse)
        result = load_paths([str(path)], TODAY)
        [d] = result.diagnostics
        assert (d.path, d.line, d.column, d.code) == (str(path), 1, 1, "input")
        assert d.message == "cannot read the file: Permission denied"
        assert result.orgs == []

    def test_directory_named_like_a_yaml_file(self, tmp_path: Path) -> None:
        folder = tmp_path / "foo.yaml"
        folder.mkdir()
        result = load_paths([str(folder)], TODAY)
        [d] = result.diagnostics
        assert (d.path, d.code, d.line, d.column) == (str(folder), "input", 1, 1)
        assert "no *.yaml" in d.message
        reporter = Reporter(str(folder))
        assert read_document(folder, reporter) is None
        assert [(i.code, i.message) for i in reporter.items] == [("input", "is a directory, not a file")]

    @pytest.mark.parametrize("content", [
        bytes(range(256)) * 4,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
        b"\x7fELF\x02\x01\x01" + b"\x00" * 40,
        "version: 1\n".encode("utf-16"),
    ])
    def test_binary_garbage(self, load_text: Callable[..., Any], content: bytes) -> None:
        result = load_text(content, "garbage.yaml")
        [d] = result.diagnostics
        assert d.code == "yaml" and d.is_error
        assert d.line >= 1 and d.column >= 1
        assert "binary" in d.message or "UTF-8" in d.message or "NUL" in d.message

    def test_non_utf8_byte_position(self, load_text: Callable[..., Any], minimal_org: str) -> None:
        raw = minimal_org.replace("name: Acme", "name: Caf\xe9").encode("latin-1")
        [d] = load_text(raw).diagnostics
        assert (d.line, d.column) == (4, 12)

    def test_empty_file(self, load_text: Callable[..., Any]) -> None:
        [d] = load_text("").diagnostics
        assert (d.line, d.column, d.code) == (1, 1, "schema")
        assert "found nothing" in d.message

    def test_file_too_large(self, load_text: Callable[..., Any], minimal_org: str,
                            monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(yamlpos, "MAX_BYTES", 100)
        [d] = load_text(minimal_org).diagnostics
        assert (d.line, d.column, d.code) == (1, 1, "yaml")
        assert "at most 100" in d.message

    def test_yaml_problems_and_schema_errors_are_all_reported(self, load_text: Callable[..., Any],
                                                              minimal_org: str) -> None:
        text = minimal_org.replace("  name: Acme\n", "  name: Acme\n  name: Acme B.V.\n  kvkk: 1\n") \
                          .replace("level: EH3", "level: !custom EH3")
        result = load_text(text)
        found = [(d.line, d.column, d.code) for d in result.diagnostics]
        assert (5, 3, "duplicate-key") in found
        assert (6, 3, "schema") in found
        assert (11, 12, "yaml") in found
        assert result.orgs == []

    def test_unknown_yaml11_boolean_key_names_what_was_written(self, load_text: Callable[..., Any],
                                                               minimal_org: str) -> None:
        # Regression: `on:` is a YAML 1.1 boolean; the key used to be reported as 'True' (which the file
        # does not contain) and at 1:1, because the position lookup compared 'True' with 'on'.
        [d] = load_text(minimal_org + "on: push\n").diagnostics
        assert "'on'" in d.message
        assert (d.line, d.column) == (11, 1)

    def test_yaml11_boolean_and_unquoted_dates(self, load_text: Callable[..., Any], minimal_org: str) -> None:
        text = "policy:\n  prune: yes\n" + grant(minimal_org, "rvo/tenderned", "2027-02-14")
        result = load_text(text)
        assert result.diagnostics == []
        config = result.orgs[0].config
        assert config.policy.prune is True
        assert config.users[0].authorisations[0].until == dt.date(2027, 2, 14)

    def test_rolling(self, load_text: Callable[..., Any], minimal_org: str) -> None:
        result = load_text(grant(minimal_org, "rvo/tenderned"))
        assert result.orgs[0].config.users[0].authorisations[0].until == ROLLING

    def test_several_files_sorted_by_file_then_line(self, tmp_path: Path, write: Callable[..., Path],
                                                    minimal_org: str) -> None:
        write("b.yaml", minimal_org.replace("level: EH3", "level: EH9").replace("name: Acme", "name: ''"))
        write("a.yaml", minimal_org.replace('"12345678"', '"1"'))
        result = load_paths([str(tmp_path)], TODAY)
        assert [(Path(d.path).name, d.line) for d in result.diagnostics] == [("a.yaml", 3), ("b.yaml", 4),
                                                                             ("b.yaml", 9)]
        assert result.files == 2 and not result.ok


# --- catalogue files -----------------------------------------------------------------------------------

class TestCatalogue:
    def test_catalogue_file_is_not_an_organisation(self, tmp_path: Path, write: Callable[..., Path],
                                                   minimal_org: str) -> None:
        write("org.yaml", grant(with_catalogue(minimal_org), "acme/portal"))
        write("cat.yaml", CATALOGUE)
        result = load_paths([str(tmp_path)], TODAY)
        assert result.diagnostics == []
        assert result.files == 2
        [org] = result.orgs
        assert org.path.name == "org.yaml"
        assert org.catalogue.get("acme/portal").provider == "Acme"
        assert "rvo/tenderned" in org.catalogue  # the bundled catalogue is still there

    def test_catalogue_in_a_subdirectory(self, write: Callable[..., Path], minimal_org: str) -> None:
        org = write("org.yaml", grant(with_catalogue(minimal_org, "cats/extra.yaml"), "acme/portal"))
        write("cats/extra.yaml", CATALOGUE)
        result = load_paths([str(org)], TODAY)
        assert result.diagnostics == [] and result.files == 1

    def test_unknown_service_without_the_catalogue(self, load_text: Callable[..., Any], minimal_org: str) -> None:
        [d] = load_text(grant(minimal_org, "acme/portal")).diagnostics
        assert d.code == "unknown-service"

    def test_catalogue_errors_are_positioned_in_the_catalogue_file(self, tmp_path: Path,
                                                                   write: Callable[..., Path],
                                                                   minimal_org: str) -> None:
        write("org.yaml", with_catalogue(minimal_org))
        cat = write("cat.yaml", CATALOGUE.replace("level: EH2", "level: EH9").replace("name: Portal",
                                                                                      "name: Portal\n    colour: x"))
        result = load_paths([str(tmp_path)], TODAY)
        in_cat = [(d.line, d.column, d.code) for d in result.diagnostics if d.path == str(cat)]
        assert in_cat == [(6, 5, "schema"), (7, 12, "schema")]
        in_org = [(Path(d.path).name, d.line, d.column, d.code) for d in result.diagnostics if d.path != str(cat)]
        assert in_org == [("org.yaml", 2, 12, "catalogue")]

    def test_catalogue_yaml_error_is_positioned_in_the_catalogue_file(self, write: Callable[..., Path],
                                                                      minimal_org: str) -> None:
        org = write("org.yaml", with_catalogue(minimal_org))
        cat = write("cat.yaml", CATALOGUE + "  - key: [unclosed\n")
        result = load_paths([str(org)], TODAY)
        [cat_diag] = [d for d in result.diagnostics if d.path == str(cat)]
        assert cat_diag.code == "yaml" and cat_diag.line >= 7

    def test_duplicate_key_and_uuid_in_a_catalogue(self, write: Callable[..., Path], minimal_org: str) -> None:
        org = write("org.yaml", with_catalogue(minimal_org))
        entry = CATALOGUE.split("services:\n")[1]
        cat = write("cat.yaml", CATALOGUE + entry + entry.replace("acme/portal", "acme/other"))
        result = load_paths([str(org)], TODAY)
        found = [(d.line, d.column, d.code) for d in result.diagnostics if d.path == str(cat)]
        assert found == [(7, 10, "catalogue"), (8, 11, "catalogue"), (13, 11, "catalogue")]

    def test_missing_catalogue(self, load_text: Callable[..., Any], minimal_org: str) -> None:
        [d] = load_text(with_catalogue(minimal_org, "nope.yaml")).diagnostics
        assert (d.line, d.column, d.code) == (2, 12, "catalogue")
        assert "'nope.yaml' not found" in d.message

    def test_catalogue_shared_by_two_organisations_is_reported_once(self, tmp_path: Path,
                                                                    write: Callable[..., Path],
                                                                    minimal_org: str) -> None:
        write("a.yaml", with_catalogue(minimal_org))
        write("b.yaml", with_catalogue(minimal_org.replace("12345678", "87654321").replace("a@", "b@")))
        write("cat.yaml", CATALOGUE.replace("EH2", "EH9"))
        result = load_paths([str(tmp_path)], TODAY)
        assert sum(1 for d in result.diagnostics if d.path.endswith("cat.yaml")) == 1
        assert sorted(Path(d.path).name for d in result.diagnostics if d.code == "catalogue") == ["a.yaml", "b.yaml"]

    def test_file_naming_itself_as_catalogue_is_not_silently_skipped(self, load_text: Callable[..., Any],
                                                                     minimal_org: str) -> None:
        # Regression: `catalogue: org.yaml` inside org.yaml put the file in the set of catalogue files, so it
        # was skipped as an organisation and never loaded as a catalogue either: validate reported
        # "valid: 0 errors" for a file it never checked.
        result = load_text(with_catalogue(minimal_org, "org.yaml").replace("level: EH3", "level: EH9"))
        assert not result.ok

    @pytest.mark.parametrize("value", ['"\\0"', "x" * 300], ids=["nul", "too-long"])
    def test_impossible_catalogue_path_is_a_diagnostic(self, load_text: Callable[..., Any], minimal_org: str,
                                                       value: str) -> None:
        # Regression: a catalogue path with a NUL character (written "\0" in YAML) raised ValueError in
        # `Path.resolve()`; a 300-character name raised OSError (ENAMETOOLONG) from `is_file()`. Both escaped
        # load_paths (CLI: "internal error").
        result = load_text(with_catalogue(minimal_org, value))
        assert [d.code for d in result.diagnostics] == ["catalogue"]
