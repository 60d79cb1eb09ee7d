"""Diagnostics as text (one `path:line:col: severity[code]: message` line each, then a summary) or JSON.

A message may quote a value of the config (or a file name may hold anything): each line goes through
`safe.terminal`, the JSON through `safe.json_text`, so no control character reaches a terminal."""

from __future__ import annotations

import re
from typing import Sequence

from reconciler.diagnostics import Diagnostic, Severity
from reconciler.render.safe import json_text, terminal


def summary(diagnostics: Sequence[Diagnostic], files: int) -> str:
    errors = sum(1 for d in diagnostics if d.is_error)
    notes = sum(1 for d in diagnostics if d.severity is Severity.NOTE)
    warnings = len(diagnostics) - errors - notes
    noun = "file" if files == 1 else "files"
    verdict = "invalid" if errors else "valid"
    noted = f", {notes} note{'s' if notes != 1 else ''}" if notes else ""
    return (f"{verdict}: {errors} error{'s' if errors != 1 else ''}, "
            f"{warnings} warning{'s' if warnings != 1 else ''}{noted} in {files} {noun}")


def rules_cited(diagnostics: Sequence[Diagnostic]) -> list[str]:
    """The backend rules (R1..R20) the findings cite, in their order."""
    cited = {d.code for d in diagnostics if re.fullmatch(r"R[0-9]{1,2}", d.code)}
    return sorted(cited, key=lambda code: int(code[1:]))


def explain_hint(diagnostics: Sequence[Diagnostic]) -> str | None:
    """Where to read about the rules the findings cite (what a rule says, where it comes from, what the backend
    and the planner do): one line for a person, beside the findings a script reads."""
    cited = rules_cited(diagnostics)
    if not cited:
        return None
    also = f" (and {', '.join(cited[1:])})" if cited[1:] else ""
    return f"explain: reconciler explain {cited[0]}{also}, or docs/rules.md"


def render_text(diagnostics: Sequence[Diagnostic], files: int) -> str:
    lines = [terminal(d.render()) for d in diagnostics]
    lines.append(summary(diagnostics, files))
    return "\n".join(lines) + "\n"


def render_json(diagnostics: Sequence[Diagnostic]) -> str:
    return json_text([d.to_json() for d in diagnostics], indent=2) + "\n"


def render_findings(diagnostics: Sequence[Diagnostic], files: int, fmt: str) -> str:
    """`reconciler validate`'s output as `fmt`: text (a line per finding and a summary) or json (a list)."""
    return render_json(diagnostics) if fmt == "json" else render_text(diagnostics, files)
