"""`reconciler apply`: carry a plan out (exit 0 done or nothing to do, 1 failed or refused)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from reconciler import pipeline
from reconciler.apply.report import append_summary, render_report
from reconciler.cli.options import PLAN_TODAY, backend_option, format_option, shard_option, today_option
from reconciler.cli.plan import use_colour
from reconciler.cli.runner import EXIT_ERROR, EXIT_OK, note, run
from reconciler.config.shard import Shard
from reconciler.render.text import render_text


def interactive() -> bool:
    """Whether a person can answer (stdin is a terminal)."""
    return sys.stdin.isatty()


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
@click.option("--executor", type=click.Choice(["api", "runbook"]), default="api", show_default=True,
              help="api: send the steps to the backend. runbook: send nothing; walk a person through the steps "
                   "in the Beheermodule on the terminal (done / skip / failed / quit, each answer in the audit log, "
                   "resumable from .reconciler/), ending with the downloads and the drift command that verify it.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 32),
              help="Organisations applied at the same time (steps within one always in plan order).")
@format_option("text", "json", help="The final report: text for people, json for scripts.")
@click.option("--quiet", "-q", is_flag=True, help="No plan listing and no progress; only the final report.")
@click.option("--summary", "summary_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Also append the report's summary and what happens next (who must approve, activate or act "
                   "before the next apply) to FILE as markdown, e.g. $GITHUB_STEP_SUMMARY.")
@today_option(help=PLAN_TODAY)
@shard_option
@backend_option
def apply(paths: tuple[str, ...], plan_file: str | None, auto_approve: bool, force: bool, audit_log: str,
          concurrency: int, fmt: str, quiet: bool, today: dt.date | None, shard: Shard | None,
          backend: str | None, summary_file: str | None = None, executor: str = "api") -> int:
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
    problem = pipeline.apply_usage_problem(paths, plan_file, today, shard, executor=executor, auto_approve=auto_approve)
    if problem is not None:
        raise click.UsageError(problem)
    from reconciler.apply import runbook_walk
    from reconciler.apply.progress import choose

    opts = pipeline.ApplyOptions(
        backend=backend, force=force, audit_log=None if audit_log == "-" else Path(audit_log), concurrency=concurrency,
        today=today, shard=shard, note=note, progress=lambda: choose(quiet),
        show=(lambda plan: None) if quiet else lambda plan: click.echo(render_text(plan, colour=use_colour()),
                                                                        nl=False),
        confirm=pipeline.asking(auto_approve, interactive,   # click.prompt adds ": " to the question
                                lambda question: click.prompt(question, default="", show_default=False, err=True)))
    if executor == "runbook":
        runbook_walk.require_terminal(interactive)          # before the backend is read: no one to answer
        walked = runbook_walk.walk(run(lambda: pipeline.runbook_plan(paths, opts)), is_interactive=interactive,
                                   audit_log=opts.audit_log,
                                   commands=runbook_walk.Commands(paths, backend, today, shard))
        return EXIT_OK if walked.ok else EXIT_ERROR
    report = run(lambda: pipeline.apply(plan_file, paths, opts))
    if summary_file and (problem := append_summary(Path(summary_file), report)):
        click.echo(f"warning: {problem}", err=True)
    click.echo(render_report(report, fmt, colour=use_colour()), nl=False)
    return EXIT_OK if report is None or report.ok else EXIT_ERROR
