"""What an apply did, step by step: done, failed (with the backend's rule code), skipped (because of which
failure) and not attempted (deferred, manual, or stopped); rendered as text for people and JSON for scripts.
When the audit log could not be written, the report says so and lists each step the backend committed whose
result line is missing ("committed, not logged", with its idempotency key), so a person can reconcile them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable

from reconciler.plan.model import Change, OrgPlan, target_text
from reconciler.render.safe import terminal


class Outcome(str, Enum):
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class StepResult:
    change: Change
    outcome: Outcome
    code: str | None = None              # the backend's problem code (R1..R20, precondition-failed, ...)
    message: str = ""
    attempts: int = 0                    # HTTP requests it took (0: not sent)
    seconds: float = 0.0
    because: str | None = None           # skipped: the id of the failed step it depended on
    replayed: bool = False               # answered from the backend's idempotency record
    key: str | None = None               # the Idempotency-Key it was sent with (None: not sent)

    def describe(self) -> str:
        c = self.change
        return f"{c.symbol} {c.action.value} {target_text(c.target)}" + (f" ({c.detail})" if c.detail else "")


@dataclass
class OrgResult:
    kvk: str
    name: str
    steps: list[StepResult] = field(default_factory=list)
    stopped: str | None = None           # why the rest of this organisation was not attempted
    deferred: int = 0
    manual: int = 0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for s in self.steps if s.outcome is outcome)


@dataclass
class ApplyReport:
    plan_id: str
    organisations: list[OrgResult] = field(default_factory=list)
    audit_failure: str | None = None     # the audit log could not be written: path and OS error
    unlogged: list[StepResult] = field(default_factory=list)   # sent, but their result line is not in the log

    def count(self, outcome: Outcome) -> int:
        return sum(o.count(outcome) for o in self.organisations)

    @property
    def ok(self) -> bool:
        return self.count(Outcome.FAILED) == 0 and self.count(Outcome.SKIPPED) == 0 and self.audit_failure is None

    def summary(self) -> dict[str, int]:
        return {"done": self.count(Outcome.DONE), "failed": self.count(Outcome.FAILED),
                "skipped": self.count(Outcome.SKIPPED),
                "deferred": sum(o.deferred for o in self.organisations),
                "manual": sum(o.manual for o in self.organisations)}


Paint = Callable[[str, str], str]


def render_text(report: ApplyReport, paint: Paint | None = None) -> str:
    paint = paint or (lambda _colour, text: text)
    lines: list[str] = []
    for org in report.organisations:
        if not org.steps and not org.stopped:
            continue
        lines.append(terminal(f"organisation {org.kvk} {org.name}".rstrip()))
        by_id = {s.change.id: s for s in org.steps}
        for s in org.steps:
            if s.outcome is Outcome.DONE:
                lines.append(paint("green", f"  done     {terminal(s.describe())}")
                             + (" (replayed)" if s.replayed else ""))
            elif s.outcome is Outcome.FAILED:
                code = f"[{s.code}] " if s.code else ""
                lines.append(paint("red", f"  FAILED   {terminal(s.describe())}"))
                lines.append(paint("red", f"           {terminal(code + s.message)}"))
            else:
                cause = by_id.get(s.because or "")
                why = f"because `{cause.describe()}` failed: " if cause else ""
                lines.append(paint("yellow", f"  skipped  {terminal(s.describe())}"))
                lines.append(paint("yellow", f"           {terminal(why + s.message)}"))
        if org.stopped:
            lines.append(paint("red", f"  stopped: {terminal(org.stopped)}"))
        lines.append("")
    if report.audit_failure:
        lines.extend(paint("red", terminal(line)) for line in audit_lines(report))
        lines.append("")
    n = report.summary()
    lines.append(f"Apply: {n['done']} done, {n['failed']} failed, {n['skipped']} skipped; not attempted: "
                 f"{n['deferred']} deferred, {n['manual']} manual.")
    if not report.ok:
        lines.append("Nothing was half-done silently: the steps above say what happened. Run `reconciler plan` to "
                     "see what is left; the next apply finishes the job.")
    return "\n".join(lines) + "\n"


def unlogged_text(step: StepResult) -> str:
    """How a sent step whose result line is missing from the audit log reads, with its key."""
    what = "committed, not logged" if step.outcome is Outcome.DONE else \
        f"sent, {step.outcome.value}" + (f" [{step.code}]" if step.code else "") + ", not logged"
    return f"{what}: {step.describe()} (step {step.change.id}, key {step.key})"


def audit_lines(report: ApplyReport) -> list[str]:
    """The audit failure in one line, then each sent step whose result is not in the log."""
    lines = [f"{report.audit_failure}; stopped before the next request"]
    lines += [f"  {unlogged_text(s)}" for s in report.unlogged]
    return lines


def report_to_data(report: ApplyReport) -> dict[str, Any]:
    return {"plan_id": report.plan_id, "ok": report.ok, "summary": report.summary(),
            "audit_error": report.audit_failure,
            "unlogged": [{"id": s.change.id, "kvk": s.change.kvk, "action": s.change.action.value,
                          "target": s.change.target, "outcome": s.outcome.value, "code": s.code, "key": s.key,
                          "committed": s.outcome is Outcome.DONE} for s in report.unlogged],
            "organisations": [{"kvk": o.kvk, "name": o.name, "stopped": o.stopped,
                               "steps": [{"id": s.change.id, "action": s.change.action.value, "target": s.change.target,
                                          "outcome": s.outcome.value, "code": s.code, "message": s.message,
                                          "attempts": s.attempts, "because": s.because, "replayed": s.replayed,
                                          "key": s.key}
                                         for s in o.steps]} for o in report.organisations]}


def render_json(report: ApplyReport) -> str:
    return json.dumps(report_to_data(report), indent=2, ensure_ascii=True) + "\n"


def empty_result(org: OrgPlan) -> OrgResult:
    return OrgResult(org.kvk, org.name, deferred=len(org.deferred), manual=len(org.manual))
