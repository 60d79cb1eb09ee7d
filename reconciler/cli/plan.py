"""`reconciler plan`: read the backend, print the ordered plan (exit 0 nothing to do, 2 changes, 1 error)."""

from __future__ import annotations

import datetime as dt
import os
import sys

import click

from reconciler import pipeline
from reconciler.cli.options import PLAN_TODAY, backend_option, format_option, out_option, shard_option
from reconciler.cli.options import lang_option, tariffs_option, today_option
from reconciler.cli.runner import EXIT_OK, EXIT_PENDING, note, run
from reconciler.config.shard import Shard
from reconciler.render.text import render_plan


def use_colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@format_option("text", "markdown", "json", "runbook", "runbook-html",
               help="text: for a terminal; markdown: one pull-request comment (privilege escalations first); "
                    "json: for scripts and `apply --plan` (schemas/plan.schema.json); runbook: the steps to carry "
                    "out by hand in the Beheermodule web UI, as Markdown with checkboxes; runbook-html: the same as "
                    "one printable page.")
@lang_option(help="The language of a runbook: nl (default) or en. Only with --format runbook or runbook-html; "
                  "with another format it is a usage error.")
@out_option(help="Also write the plan as JSON to this file, for `reconciler apply --plan`.")
@today_option(help=PLAN_TODAY)
@click.option("--compare-to", "compare_to", default=None, metavar="BASE",
              help="The same config as on the base branch (a file or directory): tags each change as introduced "
                   "(by this change of config), drift (changed by hand in the backend) or expiry (time).")
@tariffs_option(help="A YAML file with your tariffs (default: the manual's example tariffs).")
@shard_option
@backend_option
def plan(paths: tuple[str, ...], fmt: str, lang: str | None, out: str | None, today: dt.date | None,
         compare_to: str | None, tariff_file: str | None, shard: Shard | None, backend: str | None) -> int:
    """Show what it takes to make the backend match the config, in the order it would be done.

    Nothing is changed. Exit 0 when there is nothing to do, 2 when there are changes or deferred steps,
    1 on an error. Without --backend the embedded sandbox is used (created on first use).
    """
    if lang is not None and not fmt.startswith("runbook"):
        raise click.UsageError(f"--lang applies only to --format runbook or runbook-html, not to --format {fmt}")
    made = run(lambda: pipeline.plan(paths, backend, today, compare_to, tariff_file, shard, out, note))
    click.echo(render_plan(made, fmt, colour=use_colour(), lang=lang or "nl"), nl=False)
    return EXIT_PENDING if made.has_work else EXIT_OK
