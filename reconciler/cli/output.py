"""Writing a command's output file (`--out`): checked before any work, and a failure is one clear line.

A folder that does not exist is a user's typo, not an internal error; and it is found before the backend is
contacted, so a long read is not done in vain.
"""

from __future__ import annotations

import os
from pathlib import Path

import click


def _problem(path: str, option: str) -> str | None:
    """Why `path` cannot be written as an output file, or None when it looks writable."""
    target = Path(path)
    folder = target.parent
    shown = os.path.normpath(folder) if str(folder) else "."
    try:
        if target.is_dir():
            return f"cannot write {path}: it is a folder; give a file name to {option}"
        if not folder.exists():
            return f"cannot write {path}: the folder {shown} does not exist; create it or choose another {option}"
        if not folder.is_dir():
            return f"cannot write {path}: {shown} is not a folder; choose another {option}"
    except (OSError, ValueError):
        return f"cannot write {path}: not a usable path; choose another {option}"
    return None


def check_output(path: str | None, option: str = "--out") -> None:
    """Refuse an output path that cannot be written, before anything else is done."""
    if path is None:
        return
    problem = _problem(path, option)
    if problem is not None:
        raise click.ClickException(problem)


def write_output(path: str, content: str | bytes, option: str = "--out") -> None:
    """Write `content` to `path` (replacing it); any failure is a ClickException naming the file and what to do."""
    check_output(path, option)
    try:
        if isinstance(content, bytes):
            Path(path).write_bytes(content)
        else:
            Path(path).write_text(content, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}; check the permissions and "
                                   f"the free space, or choose another {option}") from None
