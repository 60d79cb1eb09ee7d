"""`reconciler report`: read-only overviews of the backend's actual state (exit 0, or 1 on an error)."""

from __future__ import annotations

import datetime as dt

import click

from reconciler.cli.options import backend_option, format_option, out_option, shard_option, today_option
from reconciler.cli.runner import EXIT_OK, emit, note, run
from reconciler.config.shard import Shard


@click.group()
def report() -> None:
    """Overviews for auditors and practitioners, read from the backend (nothing is changed)."""


@report.command("access")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@format_option("csv", "markdown", "html",
               help="csv: for a spreadsheet (UTF-8; with a byte order mark when written with --out); markdown: "
                    "a table per organisation; html: one self-contained page, sortable by clicking a column "
                    "header, printable.")
@out_option(help="Write the report to this file (replacing it) instead of to standard output.")
@today_option(help="Count days left from this date (default: the backend's).")
@shard_option
@backend_option
def access(paths: tuple[str, ...], fmt: str, out: str | None, today: dt.date | None, shard: Shard | None,
           backend: str | None) -> int:
    """Who may do what: one row per organisation, person and service, as the backend has it.

    Per row: the organisation, the person (e-mail and name; for a chain authorisation the intermediary's KvK),
    role, level, type and status of the means, the service with its minimum level, the end date and the days
    left, and whether the config declares it (declared, not in config, or unmanaged). A person without any
    authorisation gets one row with the service columns empty.

    Nothing is changed. Exit 0, or 1 on an error; an organisation of the config that the backend does not give
    access to is listed in the report and makes it exit 1 (the report is incomplete). Without --backend the
    embedded sandbox is used.
    """
    from reconciler import pipeline
    from reconciler.report.render_access import render_bytes

    made = run(lambda: pipeline.access(paths, backend, today, shard, out, note))
    orgs = len(made.organisations)
    emit(out, render_bytes(made, fmt, bom=out is not None),    # the BOM is for Excel opening a file, not for a pipe
         f"wrote {len(made.rows)} rows for {orgs} organisation{'' if orgs == 1 else 's'} to {out}")
    if made.unreadable:
        raise click.ClickException("the report is incomplete: the backend does not give access to organisation "
                                   + ", ".join(made.unreadable))
    return EXIT_OK
