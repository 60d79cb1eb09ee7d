"""`reconciler apply`: carry a plan out (exit 0 done or nothing to do, 1 failed or refused)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import click

from reconciler.cli.options import DATE, backend_option, shard_option
from reconciler.cli.plan import use_colour
from reconciler.cli.runner import note, run
from reconciler.render.safe import terminal

if TYPE_CHECKING:
    from reconciler.config.shard import Shard
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


def _append_summary(path: Path, text: str) -> None:
    """`--summary FILE`: appended, as GitHub's job summary file expects; a file that cannot be written is said in
    one line (the apply itself has run: exit codes stay those of the apply)."""
    try:
        with path.open("a", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        click.echo(f"warning: cannot write the summary to {terminal(str(path))}: {terminal(exc.strerror or exc)}",
                   err=True)


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
    from reconciler.apply.progress import choose
    from reconciler.pipeline import ApplyOptions, apply_paths, apply_saved

    async def confirm(plan: Plan) -> None:
        await _confirm(plan, auto_approve)

    opts = ApplyOptions(backend=backend, force=force, audit_log=None if audit_log == "-" else Path(audit_log),
                        concurrency=concurrency, today=today, shard=shard, note=note,
                        show=lambda plan: _show_plan(plan, quiet), confirm=confirm, progress=lambda: choose(quiet))
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
