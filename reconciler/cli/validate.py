"""`reconciler validate`: offline checks of organisation files (schema, references, domain rules)."""

from __future__ import annotations

import datetime as dt

import click

from reconciler.cli.options import today_option
from reconciler.config.loader import load_paths
from reconciler.render.diagnostics import render_json, render_text


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one line per finding and a summary; json: a list of findings.")
@today_option
def validate(paths: tuple[str, ...], fmt: str, today: dt.date | None) -> int:
    """Check organisation files offline: every error of every file, with line and column.

    PATH is an organisation file or a directory of them (*.yaml, *.yml). Exit 0 when valid (warnings
    allowed), 1 when anything is invalid.
    """
    result = load_paths(paths, today or dt.date.today())
    if fmt == "json":
        click.echo(render_json(result.diagnostics), nl=False)
    else:
        click.echo(render_text(result.diagnostics, result.files), nl=False)
    return 0 if result.ok else 1
