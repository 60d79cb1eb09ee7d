"""`reconciler catalogue`: the services configs may name."""

from __future__ import annotations

import json

import click

from reconciler.domain.catalogue import bundled_catalogue


@click.group()
def catalogue() -> None:
    """Show the service catalogue, or import one from an eToegang service-catalog XML."""


@catalogue.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def list_services(fmt: str) -> int:
    """List the known services: key, minimum level, provider and name."""
    services = list(bundled_catalogue())
    if fmt == "json":
        click.echo(json.dumps([s.to_data() for s in services], indent=2, ensure_ascii=False))
        return 0
    width = max(len(s.key) for s in services)
    for s in services:
        flags = " [Belastingdienst]" if s.belastingdienst else ""
        click.echo(f"{s.key:<{width}}  {s.level.value:<4}  {s.provider}: {s.name}{flags}")
    click.echo(f"{len(services)} services")
    return 0
