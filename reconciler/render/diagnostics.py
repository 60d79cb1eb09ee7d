"""Diagnostics as text (one `path:line:col: severity[code]: message` line each, then a summary) or JSON."""

from __future__ import annotations

import json
from typing import Sequence

from reconciler.diagnostics import Diagnostic


def summary(diagnostics: Sequence[Diagnostic], files: int) -> str:
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    noun = "file" if files == 1 else "files"
    if errors:
        verdict = "invalid"
    else:
        verdict = "valid"
    return (f"{verdict}: {errors} error{'s' if errors != 1 else ''}, "
            f"{warnings} warning{'s' if warnings != 1 else ''} in {files} {noun}")


def render_text(diagnostics: Sequence[Diagnostic], files: int) -> str:
    lines = [d.render() for d in diagnostics]
    lines.append(summary(diagnostics, files))
    return "\n".join(lines) + "\n"


def render_json(diagnostics: Sequence[Diagnostic]) -> str:
    return json.dumps([d.to_json() for d in diagnostics], indent=2, ensure_ascii=False) + "\n"
