"""`reconciler import`: write an organisation's YAML from the beheer backend or from the Beheermodule's
CSV/XLSX export (exit 0 written, 1 error)."""

from __future__ import annotations

import re

import click

from reconciler.cli.options import backend_option
from reconciler.cli.runner import run
from reconciler.importer.model import ImportFailure
from reconciler.importer.run import read_backend, read_export
from reconciler.importer.write import destination, write_import
from reconciler.render.safe import terminal

_KVK = re.compile(r"^[0-9]{8}$")


@click.command("import")
@click.option("--kvk", required=True, metavar="K", help="The organisation's KvK number (8 digits).")
@click.option("--from-csv", "from_csv", default=None, metavar="FILE",
              help="Read the Beheermodule's export of the users overview (.csv, or .xlsx) instead of the backend.")
@click.option("--name", default=None, help="With --from-csv: the organisation's name (the export has none).")
@click.option("--out", default=None, metavar="DIR",
              help="Write DIR/K.yaml (and DIR/K.catalogue.yaml when services need one) instead of printing the YAML.")
@click.option("--force", is_flag=True, help="Overwrite files that exist in --out DIR.")
@backend_option
def import_(kvk: str, from_csv: str | None, name: str | None, out: str | None, force: bool,
            backend: str | None) -> int:
    """Write the organisation file of KvK K from what exists today.

    \b
      reconciler import --kvk 99966564                        the backend's state as YAML, on stdout
      reconciler import --kvk 99966564 --out orgs/            writes orgs/99966564.yaml
      reconciler import --from-csv gebruikers.csv --kvk 99966564 --name "Acme B.V." --out orgs/

    From the backend everything is declared as it is, so `reconciler plan` on the result has nothing to do;
    comments mark transient states (awaiting approval or activation, a pending level change) and what was
    left out (a lapsed activation, a scheduled termination). The export lists people only: what it lacks
    (authorisations, subscriptions, types, sometimes mobile numbers) is said in comments. `policy.prune` is
    false, the safe default. When --out creates DIR, `.reconciler/` (the embedded sandbox and the audit
    log) is added to ./.gitignore if the current directory is a git repository's root, else a note says to
    add it. Exit 0 when written, 1 on an error.
    """
    if not _KVK.match(kvk):
        raise click.UsageError(f"--kvk {kvk!r} is not a KvK number; write its 8 digits, e.g. --kvk 99966564")
    if from_csv is not None and backend is not None:
        raise click.UsageError("--backend is not used with --from-csv (the export is read, no backend)")
    if from_csv is None and name is not None:
        raise click.UsageError("--name is only for --from-csv; the backend names the organisation")
    try:
        where = destination(out, kvk, force) if out is not None else None
        if from_csv is not None:
            imported = read_export(from_csv, kvk, name)
        else:
            imported = run(lambda: read_backend(backend, kvk, where))
        for warning in imported.org.warnings:
            click.echo(f"warning: {terminal(warning)}", err=True)
        if where is None:
            click.echo(imported.text, nl=False)
            return 0
        written = write_import(where, imported.text, imported.catalogue_text)
    except ImportFailure as exc:
        raise click.ClickException(str(exc)) from None
    wrote = "".join(f"wrote {path}\n" for path in written.paths)
    click.echo(f"{wrote}organisation {kvk}: {terminal(imported.org.summary())}", err=True)
    if written.gitignore_note:
        click.echo(terminal(written.gitignore_note), err=True)
    return 0
