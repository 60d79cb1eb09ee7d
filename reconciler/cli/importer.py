"""`reconciler import`: write an organisation's YAML from the beheer backend or from the Beheermodule's
CSV/XLSX export (exit 0 written, 1 error)."""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.cli.options import backend_option
from reconciler.render.safe import terminal

if TYPE_CHECKING:
    from reconciler.importer.model import ImportedOrg

EXIT_OK = 0
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
    if out is not None:
        _check_out(out)
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise click.ClickException(f"cannot create the directory {out}: it is a file; give --out a folder "
                                   "(it is created when missing)")
    target = Path(out) / f"{kvk}.yaml" if out else None
    new_folder = out is not None and not Path(out).exists()      # a config repository being started
    if target is not None and not force:
        _refuse_existing([target, _catalogue_path(target)])
    when = dt.datetime.now(dt.timezone.utc)
    if from_csv is not None:
        org, source = _from_export(from_csv, kvk, name, when), None
    else:
        org, source = _from_backend(kvk, backend, target, when)
    for warning in org.warnings:
        click.echo(f"warning: {terminal(warning)}", err=True)
    from reconciler.importer.render import render_catalogue, render_org

    text = render_org(org)
    catalogue_text = render_catalogue(org, source or "")
    if target is None:
        click.echo(text, nl=False)
        return EXIT_OK
    written = []
    if catalogue_text is not None:              # first: the organisation file names it
        written.append(_write(_catalogue_path(target), catalogue_text, force))
    written.append(_write(target, text, force))
    for path in written:
        click.echo(f"wrote {path}", err=True)
    click.echo(f"organisation {kvk}: {terminal(org.summary())}", err=True)
    if new_folder:
        from reconciler.importer.gitignore import ensure_ignored

        said = ensure_ignored(Path("."))
        if said:
            click.echo(terminal(said), err=True)
    return EXIT_OK


def _check_out(out: str) -> None:
    """A --out the system cannot even look up (a name too long, ENAMETOOLONG; no permission) is one line."""
    try:
        os.stat(out)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        raise click.ClickException(f"cannot use --out {out}: {exc.strerror or exc}; give --out a folder with a "
                                   "shorter name you can write to") from None


def _catalogue_path(target: Path) -> Path:
    return target.with_name(f"{target.stem}.catalogue.yaml")


def _refuse_existing(paths: list[Path]) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise click.ClickException(f"{', '.join(existing)} already exists; nothing was written (--force overwrites)")


def _from_backend(kvk: str, backend: str | None, target: Path | None,
                  when: dt.datetime) -> tuple[ImportedOrg, str]:
    from reconciler.cli.runner import run
    from reconciler.importer.backend import Snapshot, build_org, read_snapshot
    from reconciler.importer.model import ImportFailure

    async def work() -> Snapshot | ImportFailure:
        try:
            return await read_snapshot(backend, kvk)
        except ImportFailure as exc:        # returned, not raised: a task group would wrap it
            return exc

    snapshot = run(work)
    if isinstance(snapshot, ImportFailure):
        raise click.ClickException(str(snapshot))
    catalogue_file = _catalogue_path(target).name if target is not None else None
    return build_org(snapshot, catalogue_file=catalogue_file, when=when), snapshot.backend


def _from_export(path: str, kvk: str, name: str | None, when: dt.datetime) -> ImportedOrg:
    from reconciler.importer.export import build_from_export
    from reconciler.importer.model import ImportFailure
    from reconciler.importer.table import read_table

    try:
        return build_from_export(read_table(Path(path)), kvk, name, when)
    except ImportFailure as exc:
        raise click.ClickException(str(exc)) from None


def _write(path: Path, text: str, force: bool) -> Path:
    """Write `text` to `path` whole or not at all (a temporary file moved into place); without `force` an
    existing file is never replaced, not even one that appeared since the check."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"cannot create the directory {path.parent}: {exc.strerror or exc}") from None
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
        raise click.ClickException(f"{path} already exists; it was not replaced (--force overwrites)") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
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
