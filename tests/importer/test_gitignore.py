"""reconciler.importer.gitignore: `.reconciler/` is added once, only at a repository root, never through a
symlink, and every usual spelling of the entry counts as present."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.importer.gitignore import ensure_ignored, ignores_state


@pytest.mark.parametrize("line", [".reconciler", ".reconciler/", "/.reconciler/", ".reconciler/  ",
                                  ".reconciler/*"])
def test_usual_spellings_count_as_ignored(line: str) -> None:
    assert ignores_state(f"*.pyc\n{line}\nbuild/\n")


@pytest.mark.parametrize("text", ["", "# .reconciler/\n", ".reconciler.db\n", "!.reconciler/\n", "sub/.reconciler/\n"])
def test_other_lines_do_not(text: str) -> None:
    assert not ignores_state(text)


def test_a_repository_root_gets_the_entry_once(tmp_path: Path) -> None:
    (tmp_path / ".git").write_text("gitdir: elsewhere\n")          # a worktree's .git is a file
    said = ensure_ignored(tmp_path)
    assert said.startswith("added .reconciler/ to ")
    assert (tmp_path / ".gitignore").read_text().splitlines()[-1] == ".reconciler/"
    assert ensure_ignored(tmp_path) == ""
    assert (tmp_path / ".gitignore").read_text().count(".reconciler/") == 1


def test_a_symlinked_gitignore_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("*.pyc\n")
    (tmp_path / ".gitignore").symlink_to(elsewhere)
    assert ensure_ignored(tmp_path).startswith("note: .reconciler/ holds the embedded sandbox")
    assert elsewhere.read_text() == "*.pyc\n"


def test_outside_a_repository_root_nothing_is_written(tmp_path: Path) -> None:
    assert ensure_ignored(tmp_path).startswith("note: ")
    assert not (tmp_path / ".gitignore").exists()
