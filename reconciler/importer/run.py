"""`reconciler import` beneath the command: read the organisation from the beheer backend or from the
Beheermodule's CSV/XLSX export and render it, ready to print or to write (`write`).

Nothing here prints or exits: what cannot be imported is an `ImportFailure` whose message is the one line the
command prints; the warnings and the summary come back on the result, for the command to show.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from reconciler.importer.model import ImportedOrg
from reconciler.importer.render import render_catalogue, render_org
from reconciler.importer.write import Destination


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
