"""`reconciler drift`: read-only; what differs from git (and who changed it, when), what expires soon, what
waits on people, what is idle (exit 0 in sync, 2 drift or expiring, 1 error)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.cli.options import DATE, backend_option, shard_option
from reconciler.cli.output import check_output, write_output
from reconciler.cli.plan import load_valid, plan_in_session
from reconciler.cli.runner import run
from reconciler.plan.cost import DEFAULT_TARIFFS, TariffError, Tariffs, load_tariffs
from reconciler.render.safe import terminal

if TYPE_CHECKING:
    from reconciler.backend.client import BeheerClient
    from reconciler.config.shard import Shard
    from reconciler.domain.state import World
    from reconciler.drift.report import DriftReport
    from reconciler.drift.trail import Trail

EXIT_IN_SYNC, EXIT_ERROR, EXIT_DRIFT = 0, 1, 2


async def build_drift(paths: tuple[str, ...], backend: str | None, today: dt.date | None,
                      shard: Shard | None, tariffs: Tariffs = DEFAULT_TARIFFS) -> tuple[DriftReport, list[str]]:
    """Plan, report, and only for an organisation that needs it (drift, or a possibly idle means) read its
    event trail once, page by page, to say who changed what and since when a means is idle."""
    from reconciler.backend.session import open_session
    from reconciler.drift.report import build_report

    result = load_valid(paths, today, shard)
    async with open_session(backend, result.orgs, today=today, read_only=True) as session:
        planned = await plan_in_session(session, paths, result, today, tariffs=tariffs)
        args = (planned.plan, planned.world, planned.desired, session.today)
        report = build_report(*args, tariffs=tariffs)
        notes = list(planned.notes)
        trails: dict[str, Trail] = {}
        for org in report.organisations:
            client = session.clients.get(org.kvk)
            if org.needs_trail and client is not None:
                trail = await read_trail(client, org.kvk, planned.world, notes)
                if trail is not None:
                    trails[org.kvk] = trail
        if trails:
            report = build_report(*args, trails=trails, tariffs=tariffs)
        return report, notes


async def read_trail(client: BeheerClient, kvk: str, world: World, notes: list[str]) -> Trail | None:
    """The organisation's event trail, indexed as it is paged in; a trail that cannot be read leaves who and
    when "unknown" (with a note), it does not fail the report."""
    from reconciler.backend.errors import BackendError
    from reconciler.drift.trail import Trail

    trail = Trail.of((), world)
    try:
        async for event in client.iter_events(kvk):
            trail.add(event)
    except BackendError as exc:
        notes.append(f"{kvk}: the event trail could not be read ({exc}); who changed what is unknown")
        return None
    return trail


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json", "html"]), default="text",
              show_default=True, help="text for a terminal, markdown for an issue, json for scripts, html for people "
                                      "(one self-contained file: sortable tables, colour for drift and expiry).")
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the report to this file instead of stdout.")
@click.option("--today", type=DATE, default=None, help="Report as if today were this date (default: the backend's).")
@click.option("--tariffs", "tariff_file", type=click.Path(dir_okay=False), default=None,
              help="A YAML file with your tariffs, as for plan (the cost of idle means and of new activation "
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

    check_output(out)               # a folder that does not exist is found before the backend is read
    try:
        tariffs = load_tariffs(Path(tariff_file)) if tariff_file else DEFAULT_TARIFFS
    except TariffError as exc:
        raise click.ClickException(str(exc)) from None
    report, notes = run(lambda: build_drift(paths, backend, today, shard, tariffs))
    for note in notes:
        click.echo(f"note: {terminal(note)}", err=True)
    text = RENDERERS[fmt](report)
    if out:
        write_output(out, text)
        click.echo(f"wrote {out}: " + ("in sync" if report.in_sync else "drift or expiring items found"), err=True)
    else:
        click.echo(text, nl=False)
    return EXIT_IN_SYNC if report.in_sync else EXIT_DRIFT
