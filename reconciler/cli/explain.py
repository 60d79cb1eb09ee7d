"""`reconciler explain RULE`: one rule's entry of the rules document (docs/rules.md), in the terminal."""

from __future__ import annotations

import click

from reconciler.cli.exits import EXIT_ERROR
from reconciler.domain import rules_doc
from reconciler.render.safe import terminal


@click.command()
@click.argument("rule", metavar="RULE")
def explain(rule: str) -> None:
    """Explain a rule that a finding, a plan or the backend cites (error[R8], deferred R6, 409 R13).

    RULE is a rule id: R8, r8 or 8 (R1..R20). Prints what the rule says, the manual section it comes
    from, what the backend answers when it is broken, what validate and the planner do about it, and
    the tests that hold it. All rules: docs/rules.md.
    """
    try:
        text = rules_doc.entry(rule)
    except ValueError as exc:           # the user's mistake: one line, never a traceback
        click.echo(f"error: {terminal(exc)}", err=True)
        raise click.exceptions.Exit(EXIT_ERROR) from None
    click.echo(text, nl=False)
