"""reconciler.importer.run: `reconciler import` beneath the command line. It prints nothing: the usage problems,
the warnings and what was written come back to the command (issue 12)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from reconciler.importer.model import ImportFailure
from reconciler.importer.run import import_org, usage_problem, written_lines
from tests.importer.test_export import HEADER, KVK, ROWS, write_csv


def test_how_import_was_called_is_checked_before_any_work() -> None:
    assert usage_problem(KVK, None, None, None) is None
    assert usage_problem(KVK, "export.csv", "Acme", None) is None
    assert usage_problem("1234", None, None, None) == ("--kvk '1234' is not a KvK number; write its 8 digits, "
                                                       "e.g. --kvk 99966564")
    assert "--backend is not used with --from-csv" in (usage_problem(KVK, "e.csv", None, "sandbox:x.db") or "")
    assert "--name is only for --from-csv" in (usage_problem(KVK, None, "Acme", None) or "")


def test_an_export_is_imported_its_warnings_told_before_the_files_are_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    export = write_csv(tmp_path / "gebruikers.csv", HEADER, ROWS)
    warned: list[tuple[str, bool]] = []
    out = tmp_path / "orgs"
    imported, written = anyio.run(lambda: import_org(
        KVK, from_csv=str(export), name="Acme B.V.", out=str(out),
        warn=lambda text: warned.append((text, out.exists()))))
    assert warned and all(not existed for _, existed in warned)          # told before anything was written
    assert written is not None and written.paths == [out / f"{KVK}.yaml"]
    assert (out / f"{KVK}.yaml").read_text(encoding="utf-8") == imported.text
    lines = written_lines(KVK, imported, written)
    assert lines[0] == f"wrote {out / f'{KVK}.yaml'}" and lines[1].startswith(f"organisation {KVK}: ")
    assert capsys.readouterr() == ("", "")                                # the library prints nothing


def test_without_out_nothing_is_written_and_an_existing_file_is_kept(tmp_path: Path) -> None:
    export = write_csv(tmp_path / "gebruikers.csv", HEADER, ROWS)
    imported, written = anyio.run(lambda: import_org(KVK, from_csv=str(export), name="Acme"))
    assert written is None and "Acme" in imported.text and list(tmp_path.iterdir()) == [export]
    (tmp_path / f"{KVK}.yaml").write_text("mine")
    with pytest.raises(ImportFailure, match="already exists; nothing was written"):
        anyio.run(lambda: import_org(KVK, from_csv=str(export), out=str(tmp_path)))
    assert (tmp_path / f"{KVK}.yaml").read_text() == "mine"
