"""`reconciler conformance --backend URL`: prove a beheer backend keeps the rules, over HTTP (docs/conformance.md).
Thin: parse, run the kit (`reconciler.conformance.runner`), render the table or JSON, exit 0 / 1."""

from __future__ import annotations

import sys

import click

from reconciler.cli.options import backend_option, format_option
from reconciler.render.safe import terminal


@click.command()
@backend_option
@click.option("--control-url", default=None, metavar="URL",
              help="Where the control interface answers (`/sandbox/...`); default: the --backend address.")
@click.option("--only", default=None, metavar="IDS",
              help="Only these probes, by id or rule, comma-separated (e.g. R4,R9,auth).")
@format_option("text", "json", help="A table for people, or JSON for machines.")
def conformance(backend: str | None, control_url: str | None, only: str | None, fmt: str) -> None:
    """Prove that the beheer backend at --backend (http(s)://...) keeps the rules: one probe per rule and edge,
    over HTTP, in throw-away organisations the kit makes and ends again (docs/conformance.md). Exit 0 when
    every probe that ran passed, 1 on any failure or when the kit cannot run.

    \b
    The API token comes from BEHEER_API_TOKEN (never an argument, never printed); the kit only reads with
    it. The control interface that plays the supplier (new organisations, tokens, approvals, activations,
    the clock) needs SANDBOX_CONTROL_TOKEN; without it the probes that need those steps are skipped.
    """
    from reconciler.conformance.report import render_json, render_text
    from reconciler.conformance.runner import ConformanceUnusable, from_environment

    try:
        report = from_environment(backend, control_url, only)
    except ConformanceUnusable as exc:
        raise click.ClickException(terminal(str(exc))) from None
    click.echo(render_json(report) if fmt == "json" else render_text(report), nl=False)
    sys.exit(0 if report.passed else 1)
