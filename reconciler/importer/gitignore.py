"""Keeping `.reconciler/` out of the config repository.

`.reconciler/` (relative to where reconciler runs) holds the embedded sandbox's database and the apply audit
log: local state, never configuration, and the audit log must not end up in a pull request. `reconciler import
--out DIR` is how a config repository usually starts, so when it creates DIR it looks after this once:

- the current directory is the root of a git repository (it has `.git`) and its `.gitignore` does not ignore
  `.reconciler/` yet: the entry is appended (the file created when missing), and the command says so;
- otherwise (not a repository root: where the repository's root is, or whether reconciler will run from it,
  is not known) nothing is written and the command prints a note saying what to add.

Nothing is ever written outside the current directory, and a `.gitignore` that is not a regular file (a
symlink, say) is left alone.
"""

from __future__ import annotations

from pathlib import Path

ENTRY = ".reconciler/"
#: The ways a `.gitignore` line can ignore the folder `.reconciler` at the root it applies to.
_SAME = {".reconciler", ".reconciler/", "/.reconciler", "/.reconciler/", ".reconciler/*", "/.reconciler/*",
         ".reconciler/**", "/.reconciler/**"}
_COMMENT = "# reconciler's local state: the embedded sandbox database and the apply audit log"


def ignores_state(text: str) -> bool:
    """Whether a `.gitignore`'s text already ignores `.reconciler/` (by one of its usual spellings)."""
    return any(line.rstrip() in _SAME for line in text.splitlines())   # git drops trailing spaces


def ensure_ignored(folder: Path) -> str:
    """Make the `.gitignore` of `folder` (the current directory) ignore `.reconciler/` when `folder` is a git
    repository's root; returns what to tell the user ("" when nothing needs saying)."""
    ignore = folder / ".gitignore"
    advice = (f"note: {ENTRY} holds the embedded sandbox and the audit log, not configuration: add `{ENTRY}` "
              "to the .gitignore of your config repository")
    try:
        if not (folder / ".git").exists():
            return advice
        if ignore.is_symlink() or (ignore.exists() and not ignore.is_file()):
            return advice
        text = ignore.read_text(encoding="utf-8") if ignore.exists() else ""
        if ignores_state(text):
            return ""
        glue = "" if not text or text.endswith("\n") else "\n"
        with ignore.open("a", encoding="utf-8") as handle:
            handle.write(f"{glue}{_COMMENT}\n{ENTRY}\n")
    except (OSError, UnicodeDecodeError):
        return advice
    return f"added {ENTRY} to {ignore} (the embedded sandbox and the audit log are not configuration)"
