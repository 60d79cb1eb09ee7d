"""The `reconciler` command: a thin click layer; every command's work lives in the library."""

from __future__ import annotations

import sys
from typing import Any

import click

from reconciler import __version__
from reconciler.cli.apply import apply
from reconciler.cli.catalogue import catalogue
from reconciler.cli.conformance import conformance
from reconciler.cli.drift import drift
from reconciler.cli.explain import explain
from reconciler.cli.importer import import_
from reconciler.cli.plan import plan
from reconciler.cli.report import report
from reconciler.cli.runner import EXIT_ERROR, EXIT_OK
from reconciler.cli.sandbox import sandbox
from reconciler.cli.validate import validate
from reconciler.pipeline import last_words
from reconciler.render.safe import terminal_lines


class ReconcilerGroup(click.Group):
    """Usage errors exit 1, not click's 2 (2 means "changes pending" to scripts); no traceback ever."""

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
            click.echo(f"error: {terminal_lines(exc.format_message())}", err=True)
            sys.exit(EXIT_ERROR)
        except (click.Abort, KeyboardInterrupt, Exception) as exc:  # the last line of defence: never a traceback
            # click turns Ctrl-C during a command into Abort; a prompt answered no is one too
            words, exit_code = last_words(exc, aborted=isinstance(exc, click.Abort))
            if words is not None:
                click.echo(words, err=True)
            sys.exit(exit_code)
        sys.exit(code if isinstance(code, int) else EXIT_OK)


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


for command in (validate, plan, apply, drift, catalogue, sandbox, report, import_, explain, conformance):
    cli.add_command(command)


def main() -> None:
    cli.main(prog_name="reconciler")
