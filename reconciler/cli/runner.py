"""Running a command's work and telling its outcome: notes and output as they come, and expected failures as
one clear line and exit 1."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import anyio
import click

from reconciler.pipeline import ConfigInvalid, first_failure, leaves, user_errors, write_output
from reconciler.render.safe import terminal

__all__ = ["EXIT_ERROR", "emit", "leaves", "note", "run", "user_errors"]

#: Exit code of an error (INTERFACE.md).
EXIT_ERROR = 1


def note(text: str) -> None:
    """A note for the person running the command, on stderr, as it arises."""
    click.echo(f"note: {terminal(text)}", err=True)


def emit(out: str | None, data: str | bytes, wrote: str) -> None:
    """A command's output: written to its `--out` file, with `wrote` on stderr; without one, on stdout."""
    if out:
        write_output(out, data)
        click.echo(wrote, err=True)
    else:
        click.echo(data, nl=False)


def run(work: Callable[[], Awaitable[Any]]) -> Any:
    """Run `work` on an event loop; an invalid config prints its diagnostics (exit 1); the user's situations
    (`pipeline.user_errors`: backend, configuration and bootstrap errors, a refused apply, an unusable option
    value, a locked embedded sandbox, ...) become `error: ...` (exit 1), never an internal error."""
    from reconciler.render.diagnostics import render_text

    try:
        return anyio.run(work)
    except BaseException as exc:
        config = first_failure(exc, (ConfigInvalid,))
        if isinstance(config, ConfigInvalid):
            click.echo(render_text(config.diagnostics, config.files), err=True, nl=False)
            raise SystemExit(EXIT_ERROR) from None
        leaf = first_failure(exc, (click.ClickException, *user_errors()))
        if isinstance(leaf, click.ClickException):
            raise leaf from None
        if isinstance(leaf, user_errors()):
            raise click.ClickException(str(leaf)) from None
        if leaf is exc:
            raise
        raise leaf from None
