"""`reconciler plan`: read the backend, print the ordered plan (exit 0 nothing to do, 2 changes, 1 error)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler import __version__
from reconciler.cli.options import DATE, backend_option, shard_option
from reconciler.cli.output import check_output, write_output
from reconciler.cli.runner import run
from reconciler.config.loader import LoadResult, date_findings, load_paths
from reconciler.config.shard import Shard, pick_orgs
from reconciler.domain.catalogue import Catalogue
from reconciler.plan.desired import DesiredOrg, desired_org
from reconciler.plan.model import Plan
from reconciler.plan.compare import tag_origins
from reconciler.plan.cost import DEFAULT_TARIFFS, TariffError, Tariffs, load_tariffs
from reconciler.plan.planner import PlanInput, make_plan
from reconciler.apply.signature import KEY_ENV, SignatureError, plan_key, sign, signature_path
from reconciler.render.diagnostics import render_text as render_diagnostics
from reconciler.render.json_plan import render_json
from reconciler.render.markdown import render_markdown
from reconciler.render.safe import terminal
from reconciler.render.text import render_text

if TYPE_CHECKING:
    from reconciler.backend.session import Session
    from reconciler.domain.state import World

EXIT_NOTHING, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


def config_digest(result: LoadResult) -> str:
    """What the plan was made from: the organisation files (their bytes as read once, so a pipe is not read
    again) and the catalogue files they name."""
    from reconciler.config.loader import read_capped
    from reconciler.config.yamlpos import MAX_BYTES

    contents: dict[Path, bytes] = {org.path.resolve(): org.doc.digest for org in result.orgs}
    for org in result.orgs:
        if org.config.catalogue:
            path = (org.path.parent / org.config.catalogue).resolve()
            if path not in contents:
                contents[path] = hashlib.sha256(read_capped(path, MAX_BYTES)).digest()
    digest = hashlib.sha256()
    for path in sorted(contents):
        digest.update(str(path.name).encode() + b"\0" + contents[path] + b"\0")
    return "sha256:" + digest.hexdigest()


def load_valid(paths: tuple[str, ...], today: dt.date | None, shard: Shard | None = None) -> LoadResult:
    """The configuration, or exit 1 with every positioned error (the plan is not made on invalid input); with
    a shard, only its organisations (the whole estate is still validated)."""
    result = load_paths(paths, today)
    if not result.ok:
        click.echo(render_diagnostics(result.diagnostics, result.files), err=True, nl=False)
        raise SystemExit(EXIT_ERROR)
    if shard is not None:
        mine = pick_orgs(result.orgs, shard)
        click.echo(f"note: shard {shard}: {len(mine)} of {len(result.orgs)} organisations", err=True)
        result = replace(result, orgs=mine)
    return result


async def build_plan(paths: tuple[str, ...], backend: str | None, today: dt.date | None,
                     compare_to: str | None = None, tariffs: Tariffs = DEFAULT_TARIFFS,
                     shard: Shard | None = None) -> tuple[Plan, list[str]]:
    from reconciler.backend.session import open_session  # the HTTP stack, only for commands that use it

    result = load_valid(paths, today, shard)        # without --today, R9 waits for the backend's today
    async with open_session(backend, result.orgs, today=today) as session:
        planned = await plan_in_session(session, paths, result, today, compare_to, tariffs)
        planned.plan.shard = str(shard) if shard else None
        return planned.plan, planned.notes


@dataclass
class Planned:
    plan: Plan
    world: World                  # the state the plan was made on (apply checks each step against it)
    desired: list[DesiredOrg]     # what the plan was made for (drift reports against it)
    notes: list[str]


async def plan_in_session(session: Session, paths: tuple[str, ...], result: LoadResult, today: dt.date | None,
                          compare_to: str | None = None, tariffs: Tariffs = DEFAULT_TARIFFS) -> Planned:
    """Read the backend through an open session and plan; the session stays open (apply uses it next)."""
    from reconciler.backend.read import read_state

    day = today or session.today                    # apply --plan re-derives on the plan's day
    if today is None:                               # R9 is judged on the backend's today
        dated = date_findings(result, session.today)
        if any(d.is_error for d in dated):
            click.echo(render_diagnostics(dated, result.files), err=True, nl=False)
            raise SystemExit(EXIT_ERROR)
    kvks = [org.config.organisation.kvk for org in result.orgs]
    catalogue = Catalogue([s for org in result.orgs for s in org.catalogue])
    actual = await read_state(session.clients, kvks, catalogue)
    data = PlanInput(desired=[desired_org(org) for org in result.orgs], actual=actual.world, today=day,
                     actors=session.actors, revisions=actual.revisions, config_digest=config_digest(result),
                     tool_version=__version__, backend=session.backend, tariffs=tariffs)
    plan = make_plan(data)
    plan.config_paths = list(paths)
    for org_plan in plan.organisations:             # the plan's header says why another admin acts
        org_plan.acting_note = session.acting_notes.get(org_plan.kvk, "")
    notes = list(session.notes)
    if compare_to is not None:
        base = load_paths([compare_to], day)
        if base.ok:
            base_plan = make_plan(replace(data, desired=[desired_org(org) for org in base.orgs]))
            tag_origins(plan, base_plan, compare_to)
        else:
            notes.append(f"the base config {compare_to} is not valid ({len(base.errors)} errors): changes are "
                         "not tagged introduced/drift/expiry")
    return Planned(plan, actual.world, list(data.desired), notes)


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
    made, notes = run(lambda: build_plan(paths, backend, today, compare_to, tariffs, shard))
    for note in notes:
        click.echo(f"note: {terminal(note)}", err=True)
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
