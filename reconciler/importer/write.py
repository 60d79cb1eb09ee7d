"""Writing an import into `--out DIR`: DIR/K.yaml and, when services need one, DIR/K.catalogue.yaml beside it.

The folder is checked before anything is read, so a typo costs no backend round trip; an existing file is
never replaced without `force`, not even one that appears while the import runs; each file is written whole
or not at all. When DIR is created (a config repository being started) `.reconciler/` is kept out of git
(`gitignore`). Every failure is an `ImportFailure` carrying the one line the command prints.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reconciler.importer.gitignore import ensure_ignored
from reconciler.importer.model import ImportFailure


@dataclass(frozen=True)
class Destination:
    """Where an import is written; `new_folder` when the folder does not exist yet."""

    target: Path
    force: bool
    new_folder: bool

    @property
    def catalogue(self) -> Path:
        return self.target.with_name(f"{self.target.stem}.catalogue.yaml")


@dataclass(frozen=True)
class Written:
    """The files written, in order, and what to tell about `.gitignore` ("" when nothing)."""

    paths: list[Path]
    gitignore_note: str


def destination(out: str, kvk: str, force: bool) -> Destination:
    """Check `--out` before any work: a folder (created when missing) that holds no files to be replaced."""
    _check_out(out)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ImportFailure(f"cannot create the directory {out}: it is a file; give --out a folder "
                            "(it is created when missing)")
    where = Destination(folder / f"{kvk}.yaml", force, new_folder=not folder.exists())
    if not force:
        existing = [str(p) for p in (where.target, where.catalogue) if p.exists()]
        if existing:
            raise ImportFailure(f"{', '.join(existing)} already exists; nothing was written (--force overwrites)")
    return where


def write_import(where: Destination, text: str, catalogue_text: str | None) -> Written:
    """Write the catalogue file (first: the organisation file names it) and the organisation file; when the
    folder was new, look after `.gitignore` in the current directory."""
    paths = []
    if catalogue_text is not None:
        paths.append(_write(where.catalogue, catalogue_text, where.force))
    paths.append(_write(where.target, text, where.force))
    return Written(paths, ensure_ignored(Path(".")) if where.new_folder else "")


def _check_out(out: str) -> None:
    """A --out the system cannot even look up (a name too long, ENAMETOOLONG; no permission) is one line."""
    try:
        os.stat(out)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise ImportFailure(f"cannot use --out {out}: {exc.strerror or exc}; give --out a folder with a "
                            "shorter name you can write to") from None


def _write(path: Path, text: str, force: bool) -> Path:
    """Write `text` to `path` whole or not at all (a temporary file moved into place); without `force` an
    existing file is never replaced, not even one that appeared since the check."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImportFailure(f"cannot create the directory {path.parent}: {exc.strerror or exc}") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            if force:
                os.replace(tmp, path)
            else:
                _link(tmp, path, text)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except FileExistsError:
        raise ImportFailure(f"{path} already exists; it was not replaced (--force overwrites)") from None
    except OSError as exc:
        raise ImportFailure(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _link(tmp: str, path: Path, text: str) -> None:
    """Put the finished file in place unless `path` exists (a hard link refuses that atomically); where the file
    system has no hard links, an exclusive create does the same."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(text)
