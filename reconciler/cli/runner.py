"""Running a command's work and telling its outcome: notes and output as they come, an invalid config's
diagnostics, and the exit codes."""

from __future__ import annotations

from typing import Awaitable, Callable, TypeVar

import click

from reconciler import pipeline
from reconciler.cli.exits import EXIT_ERROR, EXIT_OK, EXIT_PENDING
from reconciler.pipeline import leaves, user_errors, write_output
from reconciler.render.safe import terminal

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_PENDING", "emit", "leaves", "note", "run", "user_errors"]

T = TypeVar("T")


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


def run(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` (`pipeline.run`); an invalid config prints its diagnostics (exit 1). The user's situations it
    raises (`pipeline.user_errors`) become `error: ...` and exit 1 in `cli.main`, never an internal error."""
    from reconciler.render.diagnostics import render_text

    try:
        return pipeline.run(work)
    except pipeline.ConfigInvalid as exc:
        click.echo(render_text(exc.diagnostics, exc.files), err=True, nl=False)
        raise SystemExit(EXIT_ERROR) from None
