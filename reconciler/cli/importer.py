"""`reconciler import`: write an organisation's YAML from the beheer backend or from the Beheermodule's
CSV/XLSX export (exit 0 written, 1 error)."""

from __future__ import annotations

import click

from reconciler.cli.options import backend_option
from reconciler.cli.runner import run
from reconciler.importer.run import import_org, usage_problem, written_lines
from reconciler.render.safe import terminal


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
    problem = usage_problem(kvk, from_csv, name, backend)
    if problem is not None:
        raise click.UsageError(problem)
    imported, written = run(lambda: import_org(kvk, from_csv=from_csv, name=name, out=out, force=force, backend=backend,
                                               warn=lambda text: click.echo(f"warning: {terminal(text)}", err=True)))
    if written is None:
        click.echo(imported.text, nl=False)
        return 0
    click.echo("\n".join(written_lines(kvk, imported, written)), err=True)
    return 0
