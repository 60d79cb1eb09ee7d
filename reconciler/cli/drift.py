"""`reconciler drift`: read-only; what differs from git, what expires soon, what waits on people (exit 0 in
sync, 2 drift or expiring, 1 error)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import click

from reconciler.cli.options import DATE, backend_option, shard_option
from reconciler.cli.output import check_output, write_output
from reconciler.cli.plan import load_valid, plan_in_session
from reconciler.cli.runner import run
from reconciler.render.safe import terminal

if TYPE_CHECKING:
    from reconciler.config.shard import Shard
    from reconciler.drift.report import DriftReport

EXIT_IN_SYNC, EXIT_ERROR, EXIT_DRIFT = 0, 1, 2


async def build_drift(paths: tuple[str, ...], backend: str | None, today: dt.date | None,
                      shard: Shard | None) -> tuple[DriftReport, list[str]]:
    from reconciler.backend.session import open_session
    from reconciler.drift.report import build_report

    result = load_valid(paths, today, shard)
    async with open_session(backend, result.orgs, today=today, read_only=True) as session:
        planned = await plan_in_session(session, paths, result, today)
        report = build_report(planned.plan, planned.world, planned.desired, session.today)
        return report, planned.notes


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json", "html"]), default="text",
              show_default=True, help="text for a terminal, markdown for an issue, json for scripts, html for people "
                                      "(one self-contained file: sortable tables, colour for drift and expiry).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the report to this file instead of stdout.")
@click.option("--today", type=DATE, default=None, help="Report as if today were this date (default: the backend's).")
@shard_option
@backend_option
def drift(paths: tuple[str, ...], fmt: str, out: str | None, today: dt.date | None, shard: Shard | None,
          backend: str | None) -> int:
    """Report what differs between the config and the backend, read-only (a read-only token is enough).

    \b
    Sections per organisation:
      drift       changed outside git: what, expected (git) and actual (backend)
      expiring    authorisations and chain authorisations ending within renew_before (default 60 days)
      waiting     requests awaiting approval, activations and their deadline, lapsed activations, pending changes
      unmanaged   in the backend, not in the config (policy.prune false): left alone
      manual      what no admin can do through the backend

    Exit 0 in sync, 2 when something drifted or expires soon, 1 on an error.
    """
    from reconciler.render.drift import RENDERERS

    check_output(out)               # a folder that does not exist is found before the backend is read
    report, notes = run(lambda: build_drift(paths, backend, today, shard))
    for note in notes:
        click.echo(f"note: {terminal(note)}", err=True)
    text = RENDERERS[fmt](report)
    if out:
        write_output(out, text)
        click.echo(f"wrote {out}: " + ("in sync" if report.in_sync else "drift or expiring items found"), err=True)
    else:
        click.echo(text, nl=False)
    return EXIT_IN_SYNC if report.in_sync else EXIT_DRIFT
