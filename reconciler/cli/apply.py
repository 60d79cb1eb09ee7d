"""`reconciler apply`: carry a plan out (exit 0 done or nothing to do, 1 failed or refused)."""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import click

from reconciler import __version__
from reconciler.cli.options import DATE, backend_option, shard_option
from reconciler.cli.plan import load_valid, use_colour
from reconciler.cli.runner import run
from reconciler.render.safe import terminal

if TYPE_CHECKING:
    from reconciler.config.shard import Shard
    from reconciler.apply.report import ApplyReport
    from reconciler.backend.session import Session
    from reconciler.domain.state import World
    from reconciler.plan.model import Plan

EXIT_OK, EXIT_FAILED = 0, 1


class Refused(click.ClickException):
    """The apply does not start: nothing was sent."""


def _show_plan(plan: Plan, quiet: bool) -> None:
    from reconciler.render.text import render_text

    if not quiet:
        click.echo(render_text(plan, colour=use_colour()), nl=False)


def interactive() -> bool:
    """Whether a person can answer (stdin is a terminal)."""
    return sys.stdin.isatty()


async def _confirm(plan: Plan, auto_approve: bool) -> None:
    """Terraform's rule: on a terminal only `yes` goes on; without one, only --auto-approve does."""
    if auto_approve:
        return
    if not interactive():
        raise Refused("refusing to apply without confirmation: stdin is not a terminal. Review the plan above "
                      "(or `reconciler plan --out plan.json`) and run again with --auto-approve")
    orgs = sorted({c.kvk for c in plan.changes})
    count = len(plan.changes)
    kvks = ", ".join(orgs[:5]) + (", ..." if len(orgs) > 5 else "")
    question = (f"\nApply {'this change' if count == 1 else f'these {count} changes'} to {len(orgs)} "
                f"organisation{'' if len(orgs) == 1 else 's'} ({kvks})? Type 'yes' to go on")   # click adds ": "
    answer = await anyio.to_thread.run_sync(lambda: click.prompt(question, default="", show_default=False,
                                                                 err=True))
    if answer.strip().lower() != "yes":
        raise Refused("apply cancelled: nothing was changed")


async def _execute(plan: Plan, world: World, session: Session, opts: dict[str, Any]) -> ApplyReport:
    from reconciler.apply.audit import AuditError, AuditLog
    from reconciler.apply.executor import Executor
    from reconciler.apply.progress import choose
    from reconciler.plan.model import UnsafePlan
    from reconciler.apply.saved import plan_id

    if session.read_only:
        raise Refused("the API token is read-only: it can plan and report, not apply; nothing was changed. Use "
                      "the token of a beheerder that may change things")
    try:
        plan.raise_if_unsafe(opts["force"])
    except UnsafePlan as exc:
        raise Refused(str(exc)) from None
    audit_path = None if opts["audit_log"] == "-" else Path(opts["audit_log"])
    try:                                 # before the question and before any request: an unwritable log refuses
        audit = AuditLog(audit_path).open()
    except AuditError as error:
        raise Refused(f"{error}; nothing was changed. Give a writable file with --audit-log FILE (or "
                      "--audit-log - for no audit log)") from None
    try:
        await _confirm(plan, opts["auto_approve"])
        executor = Executor(plan, plan_id(plan), world, session.clients, session.actors, audit=audit,
                            progress=choose(opts["quiet"]), concurrency=opts["concurrency"])
        report = await executor.run()
    finally:
        failure = audit.close()          # never raises: the report below says what the log is missing
    if failure is not None and report.audit_failure is None:
        report.audit_failure = str(failure)
    from reconciler.apply.report import what_next

    report.next = what_next(plan, world)   # `world` now holds every step that succeeded (the executor's)
    return report


def _idle(plan: Plan, world: World) -> ApplyReport | None:
    """A plan with only deferred and manual steps sends nothing, but says what waits on whom; None: converged."""
    from reconciler.apply.report import ApplyReport, empty_result, what_next

    if not any(o.deferred or o.manual for o in plan.organisations):
        return None
    return ApplyReport("", [empty_result(o) for o in plan.organisations], next=what_next(plan, world),
                       attempted=False)


async def apply_paths(paths: tuple[str, ...], opts: dict[str, Any]) -> ApplyReport | None:
    from reconciler.backend.session import open_session
    from reconciler.cli.plan import plan_in_session

    today: dt.date | None = opts["today"]
    result = load_valid(paths, today, opts["shard"])     # without --today, R9 waits for the backend's today
    async with open_session(opts["backend"], result.orgs, today=today) as session:
        planned = await plan_in_session(session, paths, result, today)
        for note in planned.notes:
            click.echo(f"note: {terminal(note)}", err=True)
        _show_plan(planned.plan, opts["quiet"])
        if not planned.plan.changes:
            return _idle(planned.plan, planned.world)
        return await _execute(planned.plan, planned.world, session, opts)


async def apply_saved(path: str, paths: tuple[str, ...], opts: dict[str, Any]) -> ApplyReport | None:
    """Apply a saved plan only when it is the plan that review saw: signed (with RECONCILER_PLAN_KEY set), made
    from the config given (or recorded in it), still current for the backend, and re-derived identically."""
    from reconciler.apply.preflight import stale_reasons
    from reconciler.apply.saved import SavedPlanError, load_plan_data, plan_from_data
    from reconciler.apply.signature import SignatureError, check_signature, plan_key
    from reconciler.apply.verify import differences
    from reconciler.backend.session import open_session
    from reconciler.backend.connect import parse_backend_spec
    from reconciler.cli.plan import config_digest, plan_in_session
    from reconciler.config.loader import load_paths
    from reconciler.config.shard import parse_shard, pick_orgs

    try:
        data = load_plan_data(Path(path))
        key = plan_key()
        if key is not None:
            check_signature(Path(path), data, key)
        saved = plan_from_data(data)
    except (SavedPlanError, SignatureError) as exc:
        raise Refused(f"{exc}; nothing was changed") from None
    spec = str(parse_backend_spec(opts["backend"]))
    if saved.backend != spec:                         # before the session: an embedded one would be set up
        raise Refused(f"the plan was made against {terminal(saved.backend)}, not {spec}: apply it against the "
                      "backend it was made for, or plan again; nothing was changed")
    config = paths or _recorded_paths(path, saved.config_paths)
    try:
        shard = parse_shard(saved.shard) if saved.shard else None
    except ValueError as exc:
        raise Refused(f"{path}: not a valid plan: shard {terminal(str(exc))}; nothing was changed") from None
    if paths:
        result = load_valid(config, saved.today, shard)
    else:                                             # paths from the file: never quote what they point at
        result = load_paths(config, saved.today)
        if not result.ok:
            raise Refused(f"the config recorded in the plan ({terminal(', '.join(config))}) is not valid "
                          f"({len(result.errors)} errors); check it with `reconciler validate`, or give the config: "
                          f"`reconciler apply --plan {path} PATH...`; nothing was changed")
        result = replace(result, orgs=pick_orgs(result.orgs, shard))
    digest = config_digest(result)
    if digest != saved.config_digest:
        raise Refused(f"the config at {', '.join(config)} is not the config the plan was made from (config digest "
                      f"{saved.config_digest or 'none'} in the plan, {digest} now): check out the commit the plan "
                      "was made from, or plan again; nothing was changed")
    async with open_session(opts["backend"], result.orgs) as session:
        derived = await plan_in_session(session, config, result, saved.today)
        revisions = {o.kvk: o.revision for o in derived.plan.organisations}
        same_orgs = {o.kvk for o in saved.organisations} == revisions.keys()    # else: tampered, not stale
        reasons = stale_reasons(saved, backend=session.backend, revisions=revisions, today=session.today,
                                tool_version=__version__) if same_orgs else []
        if reasons:
            raise Refused("the saved plan is stale; nothing was changed. Plan again "
                          "(`reconciler plan PATH... --out plan.json`):\n  " + "\n  ".join(reasons))
        changed = differences(data, derived.plan)
        if changed:
            shown = changed[:_MAX_SHOWN] + ([f"... and {len(changed) - _MAX_SHOWN} more"]
                                            if len(changed) > _MAX_SHOWN else [])
            raise Refused(f"{path} is not the plan that the config and the backend give: it was edited after it was "
                          "made; nothing was changed. Review a fresh plan (`reconciler plan PATH... --out "
                          "plan.json`). What differs:\n  " + "\n  ".join(shown))
        for note in derived.notes:
            click.echo(f"note: {terminal(note)}", err=True)
        derived.plan.compared_to = saved.compared_to
        _show_plan(derived.plan, opts["quiet"])
        if not derived.plan.changes:
            return _idle(derived.plan, derived.world)
        return await _execute(derived.plan, derived.world, session, opts)


def _recorded_paths(plan_file: str, recorded: list[str]) -> tuple[str, ...]:
    """The config paths a plan records, when they are safe to read: relative, inside the working directory, and
    regular files or directories (a plan file is not trusted to point anywhere else)."""
    if not recorded:
        raise Refused(f"{plan_file}: the plan does not say which config it was made from; give it: `reconciler "
                      f"apply --plan {plan_file} PATH...`; nothing was changed")
    for raw in recorded:
        shown, candidate = terminal(raw), Path(raw)
        if candidate.is_absolute() or ".." in candidate.parts:
            raise Refused(f"the plan records the config path {shown}, outside the working directory; give the "
                          f"config: `reconciler apply --plan {plan_file} PATH...`; nothing was changed")
        if not candidate.exists():
            raise Refused(f"the config the plan was made from is not at {shown}: run apply where the plan was made, "
                          f"or give the config: `reconciler apply --plan {plan_file} PATH...`; nothing was changed")
        if not (candidate.is_dir() or candidate.is_file()):
            raise Refused(f"the plan records the config path {shown}, which is not a file or a folder; give the "
                          f"config: `reconciler apply --plan {plan_file} PATH...`; nothing was changed")
    return tuple(recorded)


def _append_summary(path: Path, text: str) -> None:
    """`--summary FILE`: appended, as GitHub's job summary file expects; a file that cannot be written is said in
    one line (the apply itself has run: exit codes stay those of the apply)."""
    try:
        with path.open("a", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        click.echo(f"warning: cannot write the summary to {terminal(str(path))}: {terminal(exc.strerror or exc)}",
                   err=True)


#: Differences listed when a saved plan is refused (the rest are counted).
_MAX_SHOWN = 40


@click.command()
@click.argument("paths", nargs=-1, metavar="[PATH]...")
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False), default=None,
              help="Apply exactly this saved plan (from `reconciler plan --out`), only if it re-derives identically "
                   "from its config (PATH..., else the paths recorded in it) and the current backend, the backend "
                   "has not changed since and no date-driven decision has; with RECONCILER_PLAN_KEY set, only if "
                   "its signature (FILE.sig) matches.")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation (CI). Without it, apply asks on a "
                                                   "terminal and refuses without one.")
@click.option("--force", is_flag=True, help="Allow more removals than policy.max_removals. Never: demoting or "
                                            "terminating the acting admin, terminating an organisation's last means.")
@click.option("--audit-log", "audit_log", default=".reconciler/audit.jsonl", show_default=True, metavar="FILE",
              help="Append one JSON line per request and its outcome (never a token); '-' for none.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 32),
              help="Organisations applied at the same time (steps within one always in plan order).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="The final report: text for people, json for scripts.")
@click.option("--quiet", "-q", is_flag=True, help="No plan listing and no progress; only the final report.")
@click.option("--summary", "summary_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also append the report's summary and what happens next (who must approve, activate or act "
                   "before the next apply) to FILE as markdown, e.g. $GITHUB_STEP_SUMMARY.")
@click.option("--today", type=DATE, default=None, help="Plan as if today were this date (default: the backend's).")
@shard_option
@backend_option
def apply(paths: tuple[str, ...], plan_file: str | None, auto_approve: bool, force: bool, audit_log: str,
          concurrency: int, fmt: str, quiet: bool, today: dt.date | None, shard: Shard | None,
          backend: str | None, summary_file: str | None = None) -> int:
    """Make the backend match the config: plan, show the plan, ask, then carry it out.

    \b
      reconciler apply examples/org.yaml               plan, confirm on the terminal, apply
      reconciler apply examples/org.yaml --auto-approve    the same in CI
      reconciler apply --plan plan.json config/        exactly the reviewed plan, if it is still what
                                                       config/ and the backend give

    Each step is sent once (an Idempotency-Key per step, If-Match per organisation); a step the backend
    refuses fails alone and what depends on it is skipped; a 412 stops that organisation. The report lists
    done, failed, skipped and not attempted steps. Exit 0 when everything was done (or nothing was to do),
    1 when anything failed or the apply was refused (stale plan, removal threshold, no confirmation).
    """
    if not paths and not plan_file:
        raise click.UsageError("give the config (PATH...) or a saved plan (--plan plan.json [PATH...])")
    if plan_file and today:
        raise click.UsageError("--today applies when planning; a saved plan keeps the day it was made on")
    if plan_file and shard:
        raise click.UsageError("--shard applies when planning; plan the shard with `reconciler plan --shard K/N "
                               "--out plan.json`")
    opts = {"auto_approve": auto_approve, "force": force, "audit_log": audit_log, "concurrency": concurrency,
            "quiet": quiet, "today": today, "backend": backend, "shard": shard}
    report = run(lambda: apply_saved(plan_file, paths, opts) if plan_file else apply_paths(paths, opts))
    from reconciler.apply.report import render_json, render_summary, render_text

    if summary_file:
        _append_summary(Path(summary_file), render_summary(report))

    if report is None:
        if fmt == "json":
            click.echo('{"ok": true, "summary": {"done": 0, "failed": 0, "skipped": 0}, "organisations": []}')
        else:
            click.echo("Nothing to apply: the backend matches the config (or only deferred and manual steps remain).")
        return EXIT_OK
    if fmt == "json":
        click.echo(render_json(report), nl=False)
    else:
        paint = (lambda colour, text: click.style(text, fg=colour)) if use_colour() else None
        click.echo(render_text(report, paint), nl=False)
    return EXIT_OK if report.ok else EXIT_FAILED
