"""`reconciler catalogue`: the services configs may name, and writing a catalogue file from eToegang's XML."""

from __future__ import annotations

import click

from reconciler.cli.output import check_output, write_output
from reconciler.config.catalogue_file import NotOneOrganisation, XmlUnreadable, catalogue_for, catalogue_from_xml
from reconciler.domain.etoegang import CatalogueImportError
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
    try:
        listing = catalogue_for(catalogue_file, config_file)
    except NotOneOrganisation as exc:
        click.echo(f"error: {exc}", err=True)
        return 1
    for diagnostic in listing.diagnostics:
        click.echo(terminal(diagnostic.render()), err=True)
    if (services := listing.catalogue) is None:
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
        made = catalogue_from_xml(xml_file)
    except XmlUnreadable as exc:
        click.echo(f"error: {terminal(xml_file)}: {exc}", err=True)
        return 1
    except CatalogueImportError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem.where(xml_file)}: {problem.message}", err=True)
        return 1
    for warning in made.warnings:
        click.echo(f"warning: {warning}", err=True)
    if out is None:
        click.echo(made.text, nl=False)
        click.echo(made.summary, err=True)
        return 0
    write_output(out, made.text)
    click.echo(f"{made.summary}, written to {out}")
    return 0

