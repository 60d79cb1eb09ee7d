"""The kit's report: a pass/fail table per probe for a terminal, or JSON for machines. Everything the backend
said (refusal texts, values read back) is hostile: escaped for where it is shown (`render.safe`)."""

from __future__ import annotations

from typing import Any

from reconciler.conformance.runner import Outcome, Report
from reconciler.render.safe import json_text, terminal

_LABEL = {Outcome.PASS: "PASS", Outcome.FAIL: "FAIL", Outcome.SKIP: "SKIP"}


def render_text(report: Report) -> str:
    width = max([len(r.id) for r in report.results] + [8])
    lines = [f"conformance of {terminal(report.backend)}",
             f"control interface: {terminal(report.control)}", ""]
    for r in report.results:
        lines.append(f"{_LABEL[r.outcome]}  {r.id:<{width}}  {terminal(r.title)}")
        pad = " " * (width + 8)
        if r.outcome is Outcome.FAIL:
            lines.append(f"{pad}check:    {terminal(r.check)}")
            lines.append(f"{pad}expected: {terminal(r.expected)}")
            lines.append(f"{pad}got:      {terminal(r.got)}")
        elif r.outcome is Outcome.SKIP:
            lines.append(f"{pad}skipped:  {terminal(r.reason)}")
    lines.append("")
    lines.append(f"{report.count(Outcome.PASS)} passed, {report.count(Outcome.FAIL)} failed, "
                 f"{report.count(Outcome.SKIP)} skipped; {report.organisations} throw-away organisations made, "
                 f"{report.cleaned} ended")
    for problem in report.cleanup_problems:
        lines.append(f"cleanup: {terminal(problem)}")
    lines.append("conforms" if report.passed and not report.count(Outcome.SKIP) else
                 "conforms, except the skipped probes (not checked)" if report.passed else "does not conform")
    return "\n".join(lines) + "\n"


def report_data(report: Report) -> dict[str, Any]:
    return {
        "backend": report.backend,
        "control": report.control,
        "passed": report.passed,
        "summary": {o.value: report.count(o) for o in Outcome},
        "probes": [{"id": r.id, "rule": r.rule, "title": r.title, "outcome": r.outcome.value,
                    **({"check": r.check, "expected": r.expected, "got": r.got} if r.outcome is Outcome.FAIL else {}),
                    **({"reason": r.reason} if r.outcome is Outcome.SKIP else {}),
                    "seconds": round(r.seconds, 3)} for r in report.results],
        "cleanup": {"organisations": report.organisations, "ended": report.cleaned,
                    "problems": report.cleanup_problems},
    }


def render_json(report: Report) -> str:
    return json_text(report_data(report), indent=2) + "\n"
