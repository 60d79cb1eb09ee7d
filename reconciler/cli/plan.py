"""`reconciler plan`: read the backend, print the ordered plan (exit 0 nothing to do, 2 changes, 1 error)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import click

from reconciler.apply.signature import KEY_ENV, SignatureError, plan_key, sign, signature_path
from reconciler.cli.options import DATE, backend_option, shard_option
from reconciler.cli.output import check_output, write_output
from reconciler.cli.runner import note, run
from reconciler.config.shard import Shard
from reconciler.pipeline import build_plan
from reconciler.plan.cost import DEFAULT_TARIFFS, TariffError, load_tariffs
from reconciler.render.json_plan import render_json
from reconciler.render.markdown import render_markdown
from reconciler.render.safe import terminal
from reconciler.render.text import render_text

EXIT_NOTHING, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def sign_saved_plan(path: Path, text: str) -> None:
    """With RECONCILER_PLAN_KEY set, write the detached signature of a saved plan (`apply --plan` checks it)."""
    key = plan_key()
    if key is not None:
        sig = signature_path(path)
        write_output(str(sig), sign(json.loads(text), key) + "\n")
        click.echo(f"note: signed the plan with {KEY_ENV}: {terminal(str(sig))}", err=True)


def use_colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text", show_default=True,
              help="text: for a terminal; markdown: one pull-request comment (privilege escalations first); "
                   "json: for scripts and `apply --plan` (schemas/plan.schema.json).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Also write the plan as JSON to this file, for `reconciler apply --plan`.")
@click.option("--today", type=DATE, default=None, help="Plan as if today were this date (default: the backend's).")
@click.option("--compare-to", "compare_to", default=None, metavar="BASE",
              help="The same config as on the base branch (a file or directory): tags each change as introduced "
                   "(by this change of config), drift (changed by hand in the backend) or expiry (time).")
@click.option("--tariffs", "tariff_file", type=click.Path(dir_okay=False), default=None,
              help="A YAML file with your tariffs (default: the manual's example tariffs).")
@shard_option
@backend_option
def plan(paths: tuple[str, ...], fmt: str, out: str | None, today: dt.date | None, compare_to: str | None,
         tariff_file: str | None, shard: Shard | None, backend: str | None) -> int:
    """Show what it takes to make the backend match the config, in the order it would be done.

    Nothing is changed. Exit 0 when there is nothing to do, 2 when there are changes or deferred steps,
    1 on an error. Without --backend the embedded sandbox is used (created on first use).
    """
    check_output(out)               # a folder that does not exist is found before the backend is read
    try:
        tariffs = load_tariffs(Path(tariff_file)) if tariff_file else DEFAULT_TARIFFS
    except TariffError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        plan_key()                  # a key that is set but unusable is refused before any work
    except SignatureError as exc:
        raise click.ClickException(str(exc)) from None
    made, notes = run(lambda: build_plan(paths, backend, today, compare_to, tariffs, shard, note))
    for text in notes:
        note(text)
    if out:
        text = render_json(made)
        sign_saved_plan(Path(out), text)         # first: a plan is never left beside a signature it lacks
        write_output(out, text)
    if fmt == "json":
        click.echo(render_json(made), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(made), nl=False)
    else:
        click.echo(render_text(made, colour=use_colour()), nl=False)
    return EXIT_CHANGES if made.has_work else EXIT_NOTHING
