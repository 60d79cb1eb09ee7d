"""`reconciler sandbox`: run the sandbox backend, and play the supplier, the holder and the calendar."""

from __future__ import annotations

import datetime as dt
import os
import sys

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator

import click

from reconciler.cli.options import DATE, DURATION, backend_option
from reconciler.cli.runner import run
from reconciler.domain.levels import MEANS_LEVELS
from reconciler.render.safe import terminal

if TYPE_CHECKING:
    from reconciler.backend.sandbox.controls import SandboxControls, SandboxMeans


@click.group()
def sandbox() -> None:
    """The sandbox beheer backend: a local stand-in for a supplier's Beheermodule with all its rules.

    \b
    Without --backend these commands use the embedded sandbox (.reconciler/sandbox.db), the same one
    `reconciler plan` uses by default. With --backend http://127.0.0.1:PORT they control a served sandbox;
    they then need its control token (printed by `sandbox serve`) in SANDBOX_CONTROL_TOKEN.
    """


@asynccontextmanager
async def _controls(backend: str | None) -> AsyncIterator["SandboxControls"]:
    """The sandbox controls of the embedded sandbox (no user action) or of a served one (the control token
    from SANDBOX_CONTROL_TOKEN); a refused control token is said as such, not as a bad API token."""
    from reconciler.backend.connect import open_backend
    from reconciler.backend.errors import BackendError
    from reconciler.backend.sandbox.controls import CONTROL_TOKEN_ENV, SandboxControls

    try:
        async with open_backend(backend, require_token=False, controls=True) as client:
            yield SandboxControls(client)
    except BackendError as exc:
        if exc.status == 401 and (exc.path or "").startswith("/sandbox"):
            raise click.ClickException(
                f"the served sandbox refused the control token in {CONTROL_TOKEN_ENV}: set it to the control token "
                "that `reconciler sandbox serve` printed at start (or was started with)") from None
        raise


@sandbox.command()
@click.option("--kvk", required=True, help="The organisation's KvK number (8 digits).")
@click.option("--name", required=True, help="The organisation's name.")
@click.option("--admin", "admin_email", required=True, metavar="EMAIL", help="E-mail of its first, active admin.")
@click.option("--admin-name", default=None, help="The admin's name (default: from the e-mail).")
@click.option("--level", type=click.Choice([lv.value for lv in MEANS_LEVELS[1:]]), default="EH3", show_default=True,
              help="The admin's level (an admin is EH2+ or higher, R2).")
@click.option("--branch-number", default=None, help="A 12-digit branch number (R17).")
@backend_option
def init(kvk: str, name: str, admin_email: str, admin_name: str | None, level: str, branch_number: str | None,
         backend: str | None) -> None:
    """Create an organisation with one active admin, and print that admin's API token.

    The token is printed once, on standard output, for `BEHEER_API_TOKEN`; it is stored only as a hash.
    """
    async def work() -> None:
        async with _controls(backend) as controls:
            created = await controls.create_organisation(
                kvk, name, admin_email=admin_email, admin_name=admin_name or admin_email.split("@")[0],
                level=level, branch_number=branch_number)
        click.echo(f"created organisation {kvk} ({terminal(name)}) with {terminal(admin_email)} as its active "
                   "beheerder", err=True)
        click.echo("its API token (export it as BEHEER_API_TOKEN):", err=True)
        click.echo(created.token.reveal())

    run(work)


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
    from reconciler.backend.connect import is_loopback_host, parse_backend_spec
    from reconciler.backend.sandbox.controls import CONTROL_TOKEN_ENV

    if not is_loopback_host(host):
        if not allow_remote:
            raise click.ClickException(
                f"refusing --host {host}: it is not a loopback address, so other machines could reach this test "
                "backend (its controls, its tokens over plain http); serve on 127.0.0.1, or give --allow-remote "
                "if that is really meant")
        click.echo(f"warning: --allow-remote: the sandbox listens on {host}, reachable from other machines; it is "
                   "a test backend (plain http, tokens in clear): never put real people or real tokens in it",
                   err=True)
    if db is None:
        spec = parse_backend_spec(backend)
        if not spec.embedded:
            raise click.UsageError("serve runs a sandbox database: give --db PATH or --backend sandbox:PATH")
        db = str(spec.db_path)
    import secrets

    import uvicorn

    from reconciler.backend.sandbox.app import CatalogueRejected, create_app

    given = os.environ.get(CONTROL_TOKEN_ENV, "").strip()
    _check_control_token(given)
    control = given or secrets.token_urlsafe(32)
    try:
        app = create_app(db, catalogue_files=list(catalogues), control_token=control)
    except CatalogueRejected as exc:
        raise click.ClickException(f"--catalogue {exc.file} is not a valid catalogue: {exc}; fix the file or "
                                   "leave the option out") from None
    _answer_locks_with_503(app)
    _check_port(host, port)
    click.echo(f"sandbox backend on http://{host}:{port} (database {os.path.normpath(db)}); Ctrl-C stops it",
               err=True)
    if given:
        click.echo(f"control token: from {CONTROL_TOKEN_ENV}", err=True)
    else:       # the one place the token is shown: scripts read this line, people export it
        click.echo(f"control token: {control}")
        click.echo(f"(export it as {CONTROL_TOKEN_ENV} for `reconciler sandbox ... --backend "
                   f"http://{host}:{port}`)", err=True)
    sys.stdout.flush()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except SystemExit as exc:               # uvicorn could not start after all (e.g. the port was taken since)
        if exc.code not in (0, None):
            raise click.ClickException(f"the sandbox server could not start on {host}:{port} (see the line "
                                       "above); give another --port") from None
        raise


def _check_port(host: str, port: int) -> None:
    """Bind the address once before uvicorn does, so a busy port (another `sandbox serve`) or one this user may
    not use is one line and exit 1, not uvicorn's log line and exit 3."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise click.ClickException(f"cannot listen on --host {host}: {exc.strerror}; give an address such as "
                                   "127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)      # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(f"port {port} on {host} is already in use (another `reconciler sandbox "
                                           "serve`?): stop that, or give --port another number") from None
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}; give another "
                                       "--port (1024 or higher) or --host") from None


#: A chosen control token is at least this long, like a plan key: the controls hand out every admin's tokens.
MIN_CONTROL_TOKEN_LENGTH = 16


def _check_control_token(given: str) -> None:
    """Refuse a guessable SANDBOX_CONTROL_TOKEN (`a`) and one a client cannot send in a header (not ASCII)."""
    from reconciler.backend.sandbox.controls import CONTROL_TOKEN_ENV

    if not given:
        return
    how = "(e.g. the output of `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`), or unset it " \
          "for a random one"
    if not (given.isascii() and given.isprintable()) or " " in given:
        raise click.ClickException(f"{CONTROL_TOKEN_ENV} must be printable ASCII without spaces: set it to a "
                                   f"random value {how}")
    if len(given) < MIN_CONTROL_TOKEN_LENGTH:
        raise click.ClickException(f"{CONTROL_TOKEN_ENV} is too short ({len(given)} characters): use at least "
                                   f"{MIN_CONTROL_TOKEN_LENGTH} {how}")


def _answer_locks_with_503(app: Any) -> None:
    """A served sandbox whose database another process holds answers 503 (with Retry-After, which the client
    honours), not 500: nothing was done, and a later request can succeed."""
    from reconciler.backend.sandbox.problems import problem_response
    from reconciler.backend.sandbox.store import SandboxLocked

    async def locked(request: Any, exc: Exception) -> Any:
        return problem_response(503, "unavailable", str(exc), headers={"Retry-After": "5"})

    app.add_exception_handler(SandboxLocked, locked)


_DONE = {"approve": "approved", "reject": "rejected", "activate": "activated", "expire": "let the activation lapse of"}


def _lifecycle(step: str, help_text: str, wanted: tuple[str, ...]) -> click.Command:
    @click.command(step, help=help_text)
    @click.argument("emails", nargs=-1, metavar="[EMAIL]...")
    @click.option("--all", "all_", is_flag=True, help="Every means this step applies to.")
    @click.option("--kvk", default=None, help="Only means linked to this organisation.")
    @backend_option
    def command(emails: tuple[str, ...], all_: bool, kvk: str | None, backend: str | None) -> None:
        if bool(emails) == all_:
            raise click.UsageError("name the holders by e-mail, or give --all (not both)")
        async def work() -> int:
            async with _controls(backend) as controls:
                found = await controls.means(kvk=kvk)
                if all_:
                    targets = [m for m in found if _applies(step, m, wanted)]
                else:
                    by_email = {m.email.lower(): m for m in found}
                    missing = [e for e in emails if e.lower() not in by_email]
                    if missing:
                        where = f" in organisation {kvk}" if kvk else ""
                        raise click.ClickException(f"no means for {', '.join(missing)}{where}")
                    targets = [by_email[e.lower()] for e in emails]
                for means in targets:
                    after = await controls.step(means.id, step)
                    click.echo(f"{_DONE[step]} {terminal(means.email)}: " + terminal(_describe(after)))
                if not targets:
                    click.echo(f"nothing to {step}", err=True)
                return len(targets)

        run(work)

    return command


def _applies(step: str, means: "SandboxMeans", wanted: tuple[str, ...]) -> bool:
    return means.status in wanted or (step in ("approve", "reject") and means.pending is not None)


def _describe(means: "SandboxMeans | None") -> str:
    if means is None:
        return "the request is gone"
    text = means.status
    if means.activation_deadline and means.status == "wachten_op_activatie":
        text += f", to activate by {means.activation_deadline}"
    return text


sandbox.add_command(_lifecycle("approve", "Play the supplier: approve requested means and pending changes (R5, R6).",
                               ("wachten_op_goedkeuring",)))
sandbox.add_command(_lifecycle("reject", "Play the supplier: reject requests (they disappear) or pending changes.",
                               ("wachten_op_goedkeuring",)))
sandbox.add_command(_lifecycle("activate", "Play the holder: activate approved means within their 30 days (R5).",
                               ("wachten_op_activatie",)))
sandbox.add_command(_lifecycle("expire", "Let the 30 activation days pass for approved means (R5).",
                               ("wachten_op_activatie",)))


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
        async def work() -> None:
            async with _controls(backend) as controls:
                click.echo((await controls.today()).isoformat())

        run(work)


def _report(answer: dict[str, object]) -> None:
    click.echo(f"today is {answer['today']}")
    swept = answer.get("swept") or {}
    if isinstance(swept, dict):
        for what, count in swept.items():
            if count:
                click.echo(f"  {what}: {count}")


@clock.command("set")
@click.argument("day", type=DATE)
@backend_option
@click.pass_obj
def clock_set(parent_backend: str | None, day: dt.date, backend: str | None) -> None:
    """Set today to DAY (YYYY-MM-DD)."""
    async def work() -> None:
        async with _controls(backend or parent_backend) as controls:
            _report(await controls.set_today(day))

    run(work)


@clock.command("advance")
@click.argument("days", type=DURATION)
@backend_option
@click.pass_obj
def clock_advance(parent_backend: str | None, days: int, backend: str | None) -> None:
    """Move today forward by DAYS (e.g. 30d, 2w)."""
    async def work() -> None:
        async with _controls(backend or parent_backend) as controls:
            _report(await controls.advance(days))

    run(work)
