"""`reconciler import` beneath the command: read the organisation from the beheer backend or from the
Beheermodule's CSV/XLSX export and render it, ready to print or to write (`write`).

Nothing here prints or exits: what cannot be imported is an `ImportFailure` whose message is the one line the
command prints; the warnings and the summary come back on the result, for the command to show.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

from reconciler.importer.model import ImportedOrg
from reconciler.importer.render import render_catalogue, render_org
from reconciler.importer.write import Destination, Written, destination, write_import
from reconciler.render.safe import terminal

_KVK = re.compile(r"^[0-9]{8}$")


@dataclass
class Imported:
    """An imported organisation and where it came from (the --backend spec; None for an export); the texts
    are rendered when first asked for, after the warnings are shown."""

    org: ImportedOrg
    source: str | None = None

    @cached_property
    def text(self) -> str:
        """The organisation file."""
        return render_org(self.org)

    @cached_property
    def catalogue_text(self) -> str | None:
        """The catalogue file for services the bundled catalogue cannot name; None when none are needed."""
        return render_catalogue(self.org, self.source or "")


async def read_backend(backend: str | None, kvk: str, where: Destination | None,
                       when: dt.datetime | None = None) -> Imported:
    """Organisation `kvk` as the backend holds it; its catalogue file is named after `where` (when writing)."""
    from reconciler.importer.backend import build_org, read_snapshot

    when = when or dt.datetime.now(dt.timezone.utc)
    snapshot = await read_snapshot(backend, kvk)
    catalogue_file = where.catalogue.name if where is not None else None
    return Imported(build_org(snapshot, catalogue_file=catalogue_file, when=when), snapshot.backend)


def read_export(path: str | Path, kvk: str, name: str | None, when: dt.datetime | None = None) -> Imported:
    """Organisation `kvk` (named `name`) from the Beheermodule's export of the users overview."""
    from reconciler.importer.export import build_from_export
    from reconciler.importer.table import read_table

    when = when or dt.datetime.now(dt.timezone.utc)
    return Imported(build_from_export(read_table(Path(path)), kvk, name, when))


def usage_problem(kvk: str, from_csv: str | None, name: str | None, backend: str | None) -> str | None:
    """What is wrong with how `reconciler import` was called (a usage error, said before any work), or None."""
    if not _KVK.match(kvk):
        return f"--kvk {kvk!r} is not a KvK number; write its 8 digits, e.g. --kvk 99966564"
    if from_csv is not None and backend is not None:
        return "--backend is not used with --from-csv (the export is read, no backend)"
    if from_csv is None and name is not None:
        return "--name is only for --from-csv; the backend names the organisation"
    return None


def _ignore(_: str) -> None:
    """Warnings nobody is shown (library use)."""


async def import_org(kvk: str, *, from_csv: str | None = None, name: str | None = None, out: str | None = None,
                     force: bool = False, backend: str | None = None,
                     warn: Callable[[str], None] = _ignore) -> tuple[Imported, Written | None]:
    """`reconciler import`: organisation `kvk` from the export `from_csv` (named `name`), else from the backend;
    its warnings told (`warn`) before anything is written. With `out` (a folder, checked before anything is
    read) the files are written and returned; without, nothing is written (the command prints the text)."""
    where = destination(out, kvk, force) if out is not None else None
    if from_csv is not None:
        imported = read_export(from_csv, kvk, name)
    else:
        imported = await read_backend(backend, kvk, where)
    for warning in imported.org.warnings:
        warn(warning)
    if where is None:
        return imported, None
    return imported, write_import(where, imported.text, imported.catalogue_text)


def written_lines(kvk: str, imported: Imported, written: Written) -> list[str]:
    """What an import written to files says: each file, the organisation's summary, and the `.gitignore` note."""
    lines = [f"wrote {path}" for path in written.paths]
    lines.append(f"organisation {kvk}: {terminal(imported.org.summary())}")
    return lines + ([terminal(written.gitignore_note)] if written.gitignore_note else [])
