"""The `reconciler` command: a thin click layer; every command's work lives in the library."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from reconciler import __version__
from reconciler.cli.exits import EXIT_ERROR, EXIT_OK
from reconciler.collector import gc_paused


#: Each command: the module that declares it and its name there. A command's module is imported when the command
#: is run or listed (`--help`), so `plan` does not load what `import`, `apply`, `sandbox` and the rest use.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("reconciler.cli.validate", "validate"),
    "plan": ("reconciler.cli.plan", "plan"),
    "apply": ("reconciler.cli.apply", "apply"),
    "drift": ("reconciler.cli.drift", "drift"),
    "catalogue": ("reconciler.cli.catalogue", "catalogue"),
    "sandbox": ("reconciler.cli.sandbox", "sandbox"),
    "report": ("reconciler.cli.report", "report"),
    "import": ("reconciler.cli.importer", "import_"),
    "explain": ("reconciler.cli.explain", "explain"),
    "conformance": ("reconciler.cli.conformance", "conformance"),
}


class _NoSuggestions(click.UsageError):
    """Stands for click's `NoSuchCommand` where click has none (8.2.0: an unknown command is a plain usage
    error, without "Did you mean"): never raised, so nothing is caught."""

    command_name = ""


#: click's error for an unknown command, whose suggestions are made from the commands it is given.
_NO_SUCH_COMMAND: type[Any] = getattr(click.exceptions, "NoSuchCommand", _NoSuggestions)


class ReconcilerGroup(click.Group):
    """Usage errors exit 1, not click's 2 (2 means "changes pending" to scripts); no traceback ever. The commands
    (`COMMANDS`) are loaded when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(_load(*COMMANDS[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                            list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except _NO_SUCH_COMMAND as exc:   # "Did you mean" among every command, loaded or not
            raise _NO_SUCH_COMMAND(exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx) from None

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            exc.show()
            sys.exit(EXIT_ERROR)
        except click.ClickException as exc:
            from reconciler.render.safe import terminal_lines

            click.echo(f"error: {terminal_lines(exc.format_message())}", err=True)
            sys.exit(EXIT_ERROR)
        except (click.Abort, KeyboardInterrupt, Exception) as exc:  # the last line of defence: never a traceback
            from reconciler.pipeline import last_words

            # click turns Ctrl-C during a command into Abort; a prompt answered no is one too
            words, exit_code = last_words(exc, aborted=isinstance(exc, click.Abort))
            if words is not None:
                click.echo(words, err=True)
            sys.exit(exit_code)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


def _load(module: str, name: str) -> click.Command:
    """The command `name` of `module`. What a command imports (the config's models, the planner, pydantic's schemas:
    ~50,000 objects) lives as long as the process: imported with the cyclic GC paused, as its passes over them find
    nothing, and frozen, so later collections do not walk them again."""
    with gc_paused():
        return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


@click.group(cls=ReconcilerGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Keep eHerkenning access (who may log in where, on your organisation's behalf) as YAML in git.

    \b
    Typical use:
      reconciler validate examples/org.yaml     check a config offline
      reconciler plan examples/org.yaml         what it takes to make the backend match it
      reconciler apply examples/org.yaml        do it (asks first; --auto-approve in CI)
      reconciler drift examples/org.yaml        what changed by hand, what expires, what waits on people
      reconciler catalogue list                 the services a config may name
      reconciler explain R8                     what a rule says, where it comes from, what it does
      reconciler sandbox serve                  run the sandbox beheer backend on loopback
    """


def main() -> None:
    """The `reconciler` command (console script, `python -m reconciler`)."""
    # FastAPI imports `pydantic.v1` (all of it, ~20 ms: a sixth of opening the embedded sandbox) when it builds a
    # route, only to refuse models of pydantic 1, which reconciler has none of; unimportable, FastAPI takes them
    # to be absent (as it does without the module). Only in the command's own process, which loads nothing else
    # that uses pydantic 1; one that already did keeps it.
    sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]
    cli.main(prog_name="reconciler")
