"""`reconciler catalogue`: the services configs may name, and writing a catalogue file from eToegang's XML."""

from __future__ import annotations

import click

from reconciler import pipeline
from reconciler.cli.options import format_option
from reconciler.render.catalogue import render_services


@click.group()
def catalogue() -> None:
    """Show the service catalogue, or import one from an eToegang service-catalog XML."""


@catalogue.command("list")
@format_option("text", "json")
@click.option("--catalogue", "catalogue_file", metavar="FILE", default=None,
              help="Also list the services of this catalogue file (the format `catalogue:` names).")
@click.option("--config", "config_file", metavar="ORG.yaml", default=None,
              help="List what this organisation file sees: the bundled services plus its own catalogue.")
def list_services(fmt: str, catalogue_file: str | None, config_file: str | None) -> int:
    """List the known services: key, minimum level, provider and name.

    Without options this is the bundled catalogue; a catalogue file with errors is reported with line and
    column and nothing is listed (exit 1), since a config naming it would not validate either.
    """
    services, said = pipeline.list_services(catalogue_file, config_file)
    for line in said:
        click.echo(line, err=True)
    if services is None:
        return 1
    click.echo(render_services(services, fmt), nl=False)
    return 0


@catalogue.command("import")
@click.argument("xml_file", metavar="FILE.xml")
@click.option("--out", "out", metavar="FILE", default=None,
              help="Write the catalogue here (replacing it) instead of to standard output. An existing file is "
                   "also the previous catalogue (see --previous).")
@click.option("--previous", "previous", metavar="FILE", default=None,
              help="An earlier import whose keys stay on their ServiceUUIDs, so configs keep meaning the same "
                   "services; a key the new catalogue would give to another UUID is refused (exit 1). "
                   "Default: the --out file, when it exists.")
@click.option("--cert", "cert", metavar="FILE", default=None,
              help="The aggregator's signing certificate (PEM): import only when the catalogue's XML signature "
                   "is valid for it and covers the whole catalogue. Without it the signature is not checked "
                   "(a warning says so).")
def import_catalogue(xml_file: str, out: str | None, previous: str | None, cert: str | None) -> int:
    """Write a catalogue file from an eToegang service-catalog XML (urn:etoegang:1.13:service-catalog).

    Keys are `provider/service` slugs of the Dutch names; services sharing a name get the end of their
    ServiceUUID as suffix, whatever their order in the file. Levels come from the AuthnContextClassRef.
    Review the keys before configs use them: renaming one later means changing every config that names it.
    Nothing is written when anything is refused: an empty catalogue, a moved key, a bad signature.
    """
    made, said = pipeline.import_catalogue(xml_file, out, previous, cert)
    for line in said:
        click.echo(line, err=True)
    if made is None:
        return 1
    if out is None:
        click.echo(made.text, nl=False)
        click.echo(made.summary, err=True)
        return 0
    pipeline.write_output(out, made.text)
    click.echo(f"{made.summary}, written to {out}")
    return 0
