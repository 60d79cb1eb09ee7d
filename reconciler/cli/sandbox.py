"""`reconciler sandbox`: run the sandbox backend, and play the supplier, the holder and the calendar."""

from __future__ import annotations

import datetime as dt

import click

from reconciler.backend.sandbox import operations, serve as serving
from reconciler.cli.options import DATE, DURATION, backend_option
from reconciler.cli.runner import run
from reconciler.render.safe import terminal


@click.group()
def sandbox() -> None:
    """The sandbox beheer backend: a local stand-in for a supplier's Beheermodule with all its rules.

    \b
    Without --backend these commands use the embedded sandbox (.reconciler/sandbox.db), the same one
    `reconciler plan` uses by default. With --backend http://127.0.0.1:PORT they control a served sandbox;
    they then need its control token (printed by `sandbox serve`) in SANDBOX_CONTROL_TOKEN.
    """


@sandbox.command()
@click.option("--kvk", required=True, help="The organisation's KvK number (8 digits).")
@click.option("--name", required=True, help="The organisation's name.")
@click.option("--admin", "admin_email", required=True, metavar="EMAIL", help="E-mail of its first, active admin.")
@click.option("--admin-name", default=None, help="The admin's name (default: from the e-mail).")
@click.option("--level", type=click.Choice(operations.ADMIN_LEVELS), default="EH3", show_default=True,
              help="The admin's level (an admin is EH2+ or higher, R2).")
@click.option("--second-factor", type=click.Choice(["sms", "otp"]), default=None,
              help="The admin's second factor (R19; default: sms with --phone, else otp).")
@click.option("--phone", default=None, help="The admin's mobile number, for sms (+316...).")
@click.option("--branch-number", default=None, help="A 12-digit branch number (R17).")
@backend_option
def init(kvk: str, name: str, admin_email: str, admin_name: str | None, level: str, second_factor: str | None,
         phone: str | None, branch_number: str | None, backend: str | None) -> None:
    """Create an organisation with one active admin, and print that admin's API token.

    The token is printed once, on standard output, for `BEHEER_API_TOKEN`; it is stored only as a hash.
    """
    created = run(lambda: operations.init(backend, kvk, name, admin_email=admin_email, admin_name=admin_name,
                                          level=level, second_factor=second_factor, phone=phone,
                                          branch_number=branch_number))
    click.echo(f"created organisation {kvk} ({terminal(name)}) with {terminal(admin_email)} as its active beheerder"
               "\nits API token (export it as BEHEER_API_TOKEN):", err=True)
    click.echo(created.token.reveal())


@sandbox.command()
@click.option("--db", "db", default=None, type=click.Path(dir_okay=False),
              help="The SQLite database (default: the --backend sandbox:PATH, else .reconciler/sandbox.db).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on: loopback (127.0.0.1, ::1, localhost) unless --allow-remote.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(1, 65535))
@click.option("--catalogue", "catalogues", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A catalogue file whose services the backend knows besides the bundled ones (repeatable).")
@click.option("--allow-remote", is_flag=True, default=False,
              help="Listen on an address other machines can reach. The sandbox is a test backend: anyone who "
                   "reaches it and has a token acts with it, and its plain http carries tokens unencrypted.")
@backend_option
def serve(db: str | None, host: str, port: int, catalogues: tuple[str, ...], allow_remote: bool,
          backend: str | None) -> None:
    """Run the sandbox as an HTTP server (OpenAPI at /openapi.json, the API under /v1).

    \b
    The /sandbox controls (new organisations, tokens, approvals, the clock) need a control token: the
    value of SANDBOX_CONTROL_TOKEN, else a random one printed once at start as `control token: ...` on
    standard output. Clients send it as `Sandbox-Control-Token: <token>` (or `Authorization: Bearer`);
    `reconciler sandbox approve|activate|clock|init --backend http://...` read it from SANDBOX_CONTROL_TOKEN.
    """
    try:
        served = serving.prepare(db, backend, host, port, catalogues, allow_remote=allow_remote,
                                 warn=lambda text: click.echo(f"warning: {text}", err=True))
    except serving.NoDatabase as exc:
        raise click.UsageError(str(exc)) from None
    for text, to_stdout in served.start_lines():
        click.echo(text, err=not to_stdout)
    serving.run(served)


def _lifecycle(step: str, help_text: str) -> None:
    @sandbox.command(step, help=help_text)
    @click.argument("emails", nargs=-1, metavar="[EMAIL]...")
    @click.option("--all", "all_", is_flag=True, help="Every means this step applies to.")
    @click.option("--kvk", default=None, help="Only means linked to this organisation.")
    @backend_option
    def command(emails: tuple[str, ...], all_: bool, kvk: str | None, backend: str | None) -> None:
        if bool(emails) == all_:
            raise click.UsageError("name the holders by e-mail, or give --all (not both)")
        if not run(lambda: operations.lifecycle(backend, step, emails, kvk=kvk,
                                                done=lambda line: click.echo(terminal(line)))):
            click.echo(f"nothing to {step}", err=True)


_lifecycle("approve", "Play the supplier: approve requested means and pending changes (R5, R6).")
_lifecycle("reject", "Play the supplier: reject requests (they disappear) or pending changes.")
_lifecycle("activate", "Play the holder: activate approved means within their 30 days (R5).")
_lifecycle("expire", "Let the 30 activation days pass for approved means (R5).")


@sandbox.group(invoke_without_command=True)
@backend_option
@click.pass_context
def clock(ctx: click.Context, backend: str | None) -> None:
    """Show the sandbox's today, or move it: `clock set 2027-01-01`, `clock advance 30d`.

    Moving the clock expires what the days bring: activations, authorisations, chain authorisations and
    scheduled terminations (R5, R9, R14).
    """
    ctx.obj = backend
    if ctx.invoked_subcommand is None:
        click.echo(run(lambda: operations.today(backend)).isoformat())


@clock.command("set")
@click.argument("day", type=DATE)
@backend_option
@click.pass_obj
def clock_set(parent_backend: str | None, day: dt.date, backend: str | None) -> None:
    """Set today to DAY (YYYY-MM-DD)."""
    click.echo("\n".join(run(lambda: operations.move_clock(backend or parent_backend, day=day))))


@clock.command("advance")
@click.argument("days", type=DURATION)
@backend_option
@click.pass_obj
def clock_advance(parent_backend: str | None, days: int, backend: str | None) -> None:
    """Move today forward by DAYS (e.g. 30d, 2w)."""
    click.echo("\n".join(run(lambda: operations.move_clock(backend or parent_backend, days=days))))


@sandbox.command("export")
@click.option("--kvk", default=None, help="The organisation to export (8 digits); its files go into --out itself.")
@click.option("--all", "all_", is_flag=True, help="Every organisation in the sandbox, one folder per KvK under --out.")
@click.option("--out", required=True, metavar="DIR", help="The folder to write into (created if need be).")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx", "both"]), default="both", show_default=True,
              help="Write CSV, XLSX or both.")
@backend_option
def export(kvk: str | None, all_: bool, out: str, fmt: str, backend: str | None) -> None:
    """Write the Beheermodule's downloads of the sandbox: users, authorisations, issued chain authorisations.

    \b
    Per organisation gebruikers, machtigingen and ketenmachtigingen, as .csv (`;`, UTF-8 with BOM) and/or
    .xlsx, with the Beheermodule's Dutch headers and values (docs/exports.md): the ground truth that
    `reconciler import --from-csv` and `--backend export:DIR` read.
    """
    from reconciler.backend.sandbox import export as exporting
    from reconciler.render.safe import csv_text

    formats = exporting.FORMATS if fmt == "both" else (fmt,)
    problem = exporting.usage_problem(kvk, all_, out, formats)
    if problem:
        raise exporting.ExportRefused(problem)
    run(lambda: exporting.export(backend, kvk=kvk, out=out, formats=formats, text=csv_text,
                                 wrote=lambda path, rows: click.echo(
                                     f"wrote {terminal(path)} ({rows} row{'s' * (rows != 1)})", err=True)))
