"""`reconciler drift`: read-only; what differs from git (and who changed it, when), what expires soon, what
waits on people, what is idle (exit 0 in sync, 2 drift or expiring, 1 error)."""

from __future__ import annotations

import datetime as dt

import click

from reconciler import pipeline
from reconciler.cli.options import backend_option, format_option, out_option, shard_option, tariffs_option
from reconciler.cli.options import today_option
from reconciler.cli.runner import EXIT_OK, EXIT_PENDING, emit, note, run
from reconciler.config.shard import Shard


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@format_option("text", "markdown", "json", "html",
               help="text for a terminal, markdown for an issue, json for scripts, html for people (one "
                    "self-contained file: sortable tables, colour for drift and expiry).")
@out_option(help="Write the report to this file instead of stdout.")
@today_option(help="Report as if today were this date (default: the backend's).")
@tariffs_option(help="A YAML file with your tariffs, as for plan (the cost of idle means and of new activation "
                     "letters; default: the manual's example tariffs, which print no letter price).")
@shard_option
@backend_option
def drift(paths: tuple[str, ...], fmt: str, out: str | None, today: dt.date | None, tariff_file: str | None,
          shard: Shard | None, backend: str | None) -> int:
    """Report what differs between the config and the backend, read-only (a read-only token is enough).

    \b
    Sections per organisation:
      drift       changed outside git: what, expected (git), actual (backend), and who changed it and
                  when (the backend's event trail, read only when something drifted; else "unknown")
      expiring    authorisations and chain authorisations ending within renew_before (default 60 days)
      waiting     requests awaiting approval, activations and their deadline, lapsed activations (with the
                  cost of a new letter), pending changes
      idle        active gebruiker means without authorisations for longer than idle_after (default 90
                  days), with the yearly cost: a saving to consider, never removed automatically (a
                  beheerder is not listed: managing needs no authorisation)
      unmanaged   in the backend, not in the config (policy.prune false): left alone
      manual      what no admin can do through the backend

    Exit 0 in sync, 2 when something drifted or expires soon, 1 on an error.
    """
    from reconciler.render.drift import RENDERERS

    report = run(lambda: pipeline.drift(paths, backend, today, shard, tariff_file, out, note))
    emit(out, RENDERERS[fmt](report), f"wrote {out}: " + ("in sync" if report.in_sync else
                                                          "drift or expiring items found"))
    return EXIT_OK if report.in_sync else EXIT_PENDING
