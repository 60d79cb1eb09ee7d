"""Running a command's async work and turning expected failures into one clear line and exit 1."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import anyio
import click

from reconciler.pipeline import ConfigInvalid
from reconciler.render.safe import terminal

#: Exit code of an error (INTERFACE.md).
EXIT_ERROR = 1


def user_errors() -> tuple[type[Exception], ...]:
    """What a command may meet that is the user's situation, not a bug: said in one line (`error: ...`), exit 1.
    The one list for `run` below and for the last line of defence in `cli.main` (`sandbox serve` runs outside
    `run`)."""
    # imported here: `validate` need not load the HTTP stack
    from reconciler.backend.bootstrap import BootstrapError
    from reconciler.backend.errors import BackendError, ConfigurationError
    from reconciler.backend.sandbox.operations import UnknownHolders
    from reconciler.backend.sandbox.serve import ServeRefused
    from reconciler.backend.sandbox.store import SandboxLocked, SandboxSetupError
    from reconciler.pipeline import Refused

    return (BackendError, ConfigurationError, BootstrapError, SandboxLocked, SandboxSetupError, UnknownHolders,
            ServeRefused, Refused)


def leaves(exc: BaseException) -> list[BaseException]:
    """Every exception inside (nested) exception groups, in order."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def note(text: str) -> None:
    """A note for the person running the command, on stderr, as it arises."""
    click.echo(f"note: {terminal(text)}", err=True)


def invalid(exc: ConfigInvalid) -> SystemExit:
    """Every positioned error of an invalid config on stderr; the exit (1) to raise."""
    from reconciler.render.diagnostics import render_text

    click.echo(render_text(exc.diagnostics, exc.files), err=True, nl=False)
    return SystemExit(EXIT_ERROR)


def run(work: Callable[[], Awaitable[Any]]) -> Any:
    """Run `work` on an event loop; an invalid config prints its diagnostics (exit 1); backend, configuration
    and bootstrap errors, a refused apply, and an embedded sandbox whose database another process keeps locked,
    become `error: ...` (exit 1), never an internal error. Task groups wrap errors in exception groups: the
    first one that says what happened is the one raised."""
    try:
        return anyio.run(work)
    except BaseException as exc:
        found = leaves(exc)
        config = next((e for e in found if isinstance(e, ConfigInvalid)), None)
        if config is not None:
            raise invalid(config) from None
        expected = (click.ClickException, *user_errors())
        leaf = next((e for e in found if isinstance(e, expected)), found[0])
        if isinstance(leaf, click.ClickException):
            raise leaf from None
        if isinstance(leaf, expected):
            raise click.ClickException(str(leaf)) from None
        if leaf is exc:
            raise
        raise leaf from None
