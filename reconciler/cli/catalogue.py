"""`reconciler catalogue`: the services configs may name, and writing a catalogue file from eToegang's XML."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Sequence

import click

from reconciler.cli.output import check_output, write_output
from reconciler.config.loader import load_catalogue_file, load_paths, read_capped
from reconciler.diagnostics import Diagnostic
from reconciler.domain.catalogue import Catalogue, bundled_catalogue, dump_catalogue
from reconciler.domain.etoegang import CatalogueImportError, parse_service_catalog
from reconciler.render.safe import json_text, terminal


@click.group()
def catalogue() -> None:
    """Show the service catalogue, or import one from an eToegang service-catalog XML."""


@catalogue.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--catalogue", "catalogue_file", metavar="FILE", default=None,
              help="Also list the services of this catalogue file (the format `catalogue:` names).")
@click.option("--config", "config_file", metavar="ORG.yaml", default=None,
              help="List what this organisation file sees: the bundled services plus its own catalogue.")
def list_services(fmt: str, catalogue_file: str | None, config_file: str | None) -> int:
    """List the known services: key, minimum level, provider and name.

    Without options this is the bundled catalogue; a catalogue file with errors is reported with line and
    column and nothing is listed (exit 1), since a config naming it would not validate either.
    """
    services = _catalogue_for(catalogue_file, config_file)
    if services is None:
        return 1
    if fmt == "json":
        click.echo(json_text([s.to_data() for s in services], indent=2))
        return 0
    width = max((len(s.key) for s in services), default=0)
    for s in services:
        flags = " [Belastingdienst]" if s.belastingdienst else ""
        click.echo(f"{s.key:<{width}}  {s.level.value:<4}  {terminal(s.provider)}: {terminal(s.name)}{flags}")
    click.echo(f"{len(services)} services")
    return 0


#: The largest eToegang service-catalog XML read (the real one is a few MB).
MAX_XML_BYTES = 64 * 1024 * 1024


@catalogue.command("import")
@click.argument("xml_file", metavar="FILE.xml")
@click.option("--out", "out", metavar="FILE", default=None,
              help="Write the catalogue here (replacing it) instead of to standard output.")
def import_catalogue(xml_file: str, out: str | None) -> int:
    """Write a catalogue file from an eToegang service-catalog XML (urn:etoegang:1.13:service-catalog).

    Keys are `provider/service` slugs of the Dutch names; levels come from the AuthnContextClassRef.
    Review the keys before configs use them: renaming one later means changing every config that names it.
    """
    check_output(out)               # before the XML is read and converted
    try:
        raw = read_capped(Path(xml_file), MAX_XML_BYTES)     # /dev/zero or a pipe must not fill memory
    except OSError as exc:
        click.echo(f"error: {terminal(xml_file)}: cannot read the file: {exc.strerror or exc}", err=True)
        return 1
    if len(raw) > MAX_XML_BYTES:
        click.echo(f"error: {terminal(xml_file)}: file is larger than {MAX_XML_BYTES:,} bytes; a service catalog "
                   "of that size is not accepted", err=True)
        return 1
    try:
        imported = parse_service_catalog(raw)
    except CatalogueImportError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem.where(xml_file)}: {problem.message}", err=True)
        return 1
    for warning in imported.warnings:
        where = f"{xml_file}:{warning.line}" if warning.line else xml_file
        click.echo(f"warning: {where}: {warning.message}", err=True)
    header = (f"Imported from {os.path.basename(xml_file)} on {dt.date.today().isoformat()} "
              "by `reconciler catalogue import`.\n"
              "Keys are derived from the provider and service names: review them before configs name them.")
    text = dump_catalogue(sorted(imported.services, key=lambda s: s.key), header=header)
    summary = f"{len(imported.services)} services from {imported.providers} providers"
    if out is None:
        click.echo(text, nl=False)
        click.echo(summary, err=True)
        return 0
    write_output(out, text)
    click.echo(f"{summary}, written to {out}")
    return 0


def _catalogue_for(catalogue_file: str | None, config_file: str | None) -> Catalogue | None:
    """The bundled catalogue, extended as the options say; None (problems printed) when a file is bad."""
    result = bundled_catalogue()
    if config_file is not None:
        loaded = load_paths([config_file], dt.date.today())
        if not loaded.orgs:
            _report([d for d in loaded.diagnostics if d.is_error])
            return None
        if len(loaded.orgs) > 1:
            click.echo(f"error: {config_file}: holds {len(loaded.orgs)} organisation files; name one", err=True)
            return None
        org = loaded.orgs[0]
        # Only problems with the catalogue matter here; the rest is `reconciler validate`'s business.
        problems = [d for d in loaded.diagnostics if d.is_error and
                    (d.path != org.display or d.json_path.startswith("$.catalogue"))]
        if problems:
            _report(problems)
            return None
        result = org.catalogue
    if catalogue_file is not None:
        services, diagnostics = load_catalogue_file(Path(catalogue_file), catalogue_file)
        _report(diagnostics)
        if any(d.is_error for d in diagnostics):
            return None
        result = result.extended(services)
    return result


def _report(diagnostics: Sequence[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        click.echo(terminal(diagnostic.render()), err=True)
