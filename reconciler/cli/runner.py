"""Running a command's async work and turning expected failures into one clear line and exit 1."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import anyio
import click

from reconciler.pipeline import ConfigInvalid
from reconciler.render.safe import terminal

#: Exit code of an error (INTERFACE.md).
EXIT_ERROR = 1


def _expected() -> tuple[type[BaseException], ...]:
    # imported here: `validate` need not load the HTTP stack
    from reconciler.backend.bootstrap import BootstrapError
    from reconciler.backend.errors import BackendError, ConfigurationError
    from reconciler.backend.sandbox.operations import UnknownHolders
    from reconciler.backend.sandbox.store import SandboxLocked, SandboxSetupError
    from reconciler.pipeline import Refused

    return (BackendError, ConfigurationError, BootstrapError, SandboxLocked, SandboxSetupError, UnknownHolders,
            Refused, click.ClickException)


def _flat(exc: BaseException) -> list[BaseException]:
    """Every exception inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _flat(inner)]
    return [exc]


def _leaf(exc: BaseException) -> BaseException:
    """The first expected error inside (nested) exception groups that task groups wrap errors in."""
    expected = _expected()
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if isinstance(_leaf(e), expected)]
        exc = _leaf(inner[0]) if inner else exc.exceptions[0]
    return exc


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
    become `error: ...` (exit 1), never an internal error."""
    try:
        return anyio.run(work)
    except ConfigInvalid as exc:
        raise invalid(exc) from None
    except BaseExceptionGroup as group:
        configs = [e for e in _flat(group) if isinstance(e, ConfigInvalid)]
        if configs:
            raise invalid(configs[0]) from None
        leaf = _leaf(group)
        if isinstance(leaf, click.ClickException):
            raise leaf from None
        if isinstance(leaf, _expected()):
            raise click.ClickException(str(leaf)) from None
        raise leaf from None
    except Exception as exc:
        if isinstance(exc, _expected()[:-1]):
            raise click.ClickException(str(exc)) from None
        raise
