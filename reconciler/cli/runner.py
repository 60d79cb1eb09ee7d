"""Running a command's async work and turning expected failures into one clear line and exit 1."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import anyio
import click



def _expected() -> tuple[type[BaseException], ...]:
    # imported here: `validate` need not load the HTTP stack
    from reconciler.backend.bootstrap import BootstrapError
    from reconciler.backend.errors import BackendError, ConfigurationError
    from reconciler.backend.sandbox.store import SandboxLocked, SandboxSetupError

    return BackendError, ConfigurationError, BootstrapError, SandboxLocked, SandboxSetupError, click.ClickException


def _leaf(exc: BaseException) -> BaseException:
    """The first expected error inside (nested) exception groups that task groups wrap errors in."""
    expected = _expected()
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if isinstance(_leaf(e), expected)]
        exc = _leaf(inner[0]) if inner else exc.exceptions[0]
    return exc


def run(work: Callable[[], Awaitable[Any]]) -> Any:
    """Run `work` on an event loop; backend, configuration and bootstrap errors, and an embedded sandbox whose
    database another process keeps locked, become `error: ...` (exit 1), never an internal error."""
    try:
        return anyio.run(work)
    except BaseExceptionGroup as group:
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
