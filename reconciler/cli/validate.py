"""`reconciler validate`: offline checks of organisation files (schema, references, domain rules)."""

from __future__ import annotations

import datetime as dt

import click

from reconciler.cli.options import format_option, today_option
from reconciler.config.loader import load_paths
from reconciler.render.diagnostics import explain_hint, render_findings


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@format_option("text", "json", help="text: one line per finding and a summary; json: a list of findings.")
@today_option(help="Judge end dates as if today were this date (default: the real today).")
def validate(paths: tuple[str, ...], fmt: str, today: dt.date | None) -> int:
    """Check organisation files offline: every error of every file, with line and column.

    PATH is an organisation file or a directory of them (*.yaml, *.yml). Exit 0 when valid (warnings
    allowed), 1 when anything is invalid.
    """
    result = load_paths(paths, today or dt.date.today())
    click.echo(render_findings(result.diagnostics, result.files, fmt), nl=False)
    if fmt == "text" and (hint := explain_hint(result.diagnostics)):
        click.echo(hint, err=True)
    return 0 if result.ok else 1
