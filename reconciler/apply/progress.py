"""Progress while applying: a bar with the current step on a terminal (rich), one plain line per step in CI
and in logs, nothing with --quiet. All of it goes to stderr; the report goes to stdout.

Only the bar writes cursor and colour codes, and only to a terminal: `choose` picks it when stderr is one (and
not a dumb one). Every value in a line (targets, details, the backend's messages) goes through `safe.terminal`
(`safe.rich_markup` for the bar, whose `[...]` is markup), so the data cannot add codes of its own."""

from __future__ import annotations

import os
import sys
from typing import Any, Protocol

from reconciler.apply.report import Outcome, StepResult
from reconciler.plan.model import Change, target_text
from reconciler.render.safe import rich_markup, terminal


class Progress(Protocol):
    def start(self, total: int) -> None: ...
    def step(self, change: Change) -> None: ...
    def done(self, result: StepResult) -> None: ...
    def finish(self) -> None: ...


class Quiet:
    def start(self, total: int) -> None:
        pass

    def step(self, change: Change) -> None:
        pass

    def done(self, result: StepResult) -> None:
        pass

    def finish(self) -> None:
        pass


class Lines(Quiet):
    """`[  3/40] done    + grant ...` per step: readable in CI logs, no control characters."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.total = 0
        self.n = 0

    def start(self, total: int) -> None:
        self.total = total

    def done(self, result: StepResult) -> None:
        self.n += 1
        width = len(str(self.total))
        word = {Outcome.DONE: "done", Outcome.FAILED: "FAILED", Outcome.SKIPPED: "skipped"}[result.outcome]
        code = f" [{result.code}]" if result.code and result.outcome is Outcome.FAILED else ""
        line = f"{result.change.kvk} {result.describe()}{code}"
        print(f"[{self.n:>{width}}/{self.total}] {word:<7} {terminal(line)}", file=self.stream, flush=True)


class Bar(Quiet):
    """A rich progress bar with the step being sent; failures are printed above it as they happen."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self.bar = RichProgress(TextColumn("applying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("{task.description}"), console=self.console, transient=True)
        self.task: Any = None

    def start(self, total: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task("", total=total)

    def step(self, change: Change) -> None:
        text = terminal(f"{change.kvk} {change.action.value} {target_text(change.target)}")[:80]
        self.bar.update(self.task, description=rich_markup(text))

    def done(self, result: StepResult) -> None:
        if result.outcome is Outcome.FAILED:
            what = rich_markup(f"{result.change.kvk} {result.describe()}: {result.message}")
            self.console.print(f"[red]FAILED[/red] {what}", markup=True, highlight=False)
        self.bar.advance(self.task)

    def finish(self) -> None:
        self.bar.stop()


def choose(quiet: bool, stream: Any = None) -> Progress:
    """Nothing with --quiet; the bar only on a terminal that can draw it (it moves the cursor); else lines."""
    if quiet:
        return Quiet()
    out = stream or sys.stderr
    if _is_terminal(out) and os.environ.get("TERM") != "dumb":
        return Bar(_console(out))
    return Lines(out)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):          # no isatty, or a closed stream: not a terminal
        return False


def _console(stream: Any) -> Any:
    """A rich console on `stream` that draws (it is a terminal: `choose` checked)."""
    from rich.console import Console

    return Console(file=stream)
