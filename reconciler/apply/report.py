"""What an apply did, step by step: done, failed (with the backend's rule code), skipped (because of which
failure) and not attempted (deferred, manual, or stopped); rendered as text for people and JSON for scripts.
When the audit log could not be written, the report says so and lists each step the backend committed whose
result line is missing ("committed, not logged", with its idempotency key), so a person can reconcile them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable

from reconciler.domain.state import World
from reconciler.domain.waiting import (
    ACTIVATION_LAPSED, AWAITING_ACTIVATION, AWAITING_APPROVAL, PENDING_CHANGE, Waiting, waiting_in,
)
from reconciler.plan.model import Change, Deferred, Manual, OrgPlan, Plan, target_text
from reconciler.render.safe import md_line, terminal


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


#: Who does a manual step, by the rule that makes it manual (the reason says the specifics).
MANUAL_BY = {"R1": "a beheerder whose API token the reconciler runs with",
             "R3": "another beheerder (run with that beheerder's token)",
             "R4": "a beheerder with the level that is needed (for a link: one of both organisations)",
             "R11": "the holder, in the Beheermodule's profile page",
             "R14": "the supplier, or a beheerder in the Beheermodule",
             "R16": "a legal representative, on a paper contract with the supplier",
             "R17": "the supplier (the organisation's registration)",
             "R18": "a beheerder, in the Beheermodule",
             "R19": "the holder or the supplier"}


@dataclass
class Next:
    """What happens after this apply (issue 11): what waits on the supplier and on each holder, the manual
    steps and who must do them, and the deferred steps that the next apply carries out once those are done."""

    waiting: list[tuple[str, Waiting]] = field(default_factory=list)      # (kvk, what waits)
    manual: list[Manual] = field(default_factory=list)
    deferred: list[Deferred] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.waiting or self.manual or self.deferred)


def what_next(plan: Plan, world: World) -> Next:
    """From the plan's deferred and manual steps and `world`, the state after the apply (the executor puts each
    step that succeeded in): the same "waiting on people" as `reconciler drift` (`domain.waiting`)."""
    out = Next()
    for org in plan.organisations:
        out.waiting += [(org.kvk, w) for w in waiting_in(world, org.kvk)]
        out.manual += org.manual
        out.deferred += org.deferred
    return out


#: The groups of "waiting on people", in the order a reader acts on them: (what, heading).
_GROUPS = ((AWAITING_APPROVAL, "waiting for the supplier's approval (then each holder activates within 30 days, R5)"),
           (PENDING_CHANGE, "waiting for the supplier to process a change (R6)"),
           (AWAITING_ACTIVATION, "waiting for each holder to activate the means (R5)"),
           (ACTIVATION_LAPSED, "activation lapsed: a new activation letter is needed and costs money (R5)"))


def next_sections(nxt: Next, orgs: int) -> list[tuple[str, list[str]]]:
    """The "what happens next" block as (heading, raw lines); the renderers escape. The KvK number prefixes
    each line when the apply covered more than one organisation."""
    def where(kvk: str) -> str:
        return f"{kvk} " if orgs > 1 else ""

    sections = []
    for what, heading in _GROUPS:
        lines = [f"{where(kvk)}{w.who}" + (f", by {w.deadline}" if w.deadline else "")
                 + (f": {w.detail}" if what == PENDING_CHANGE else "")
                 for kvk, w in nxt.waiting if w.what == what]
        if lines:
            sections.append((heading, lines))
    if nxt.manual:
        sections.append(("manual steps: a person must do them, the reconciler cannot", [
            f"{where(m.kvk)}{m.action.value} {target_text(m.target)}"
            + (f" ({m.person})" if m.person and m.person != m.target else "")
            + f": {MANUAL_BY.get(m.rule, 'a person (see the reason)')} ({m.rule}: {m.reason})" for m in nxt.manual]))
    if nxt.deferred:
        sections.append((f"deferred until then ({len(nxt.deferred)})", [
            f"{where(d.kvk)}{d.action.value} {target_text(d.target)}" + (f" {d.detail}" if d.detail else "")
            + (f" for {d.person}" if d.person and d.person != d.target else "") + f" ({d.rule})"
            for d in nxt.deferred]))
    return sections


def rerun_text(nxt: Next) -> str:
    if nxt.deferred:
        return ("Run `reconciler apply` again once those are done: it carries out the deferred steps and "
                "finishes the job.")
    return "Run `reconciler apply` again once those are done: the next plan shows what is left."


@dataclass
class ApplyReport:
    plan_id: str
    organisations: list[OrgResult] = field(default_factory=list)
    audit_failure: str | None = None     # the audit log could not be written: path and OS error
    unlogged: list[StepResult] = field(default_factory=list)   # sent, but their result line is not in the log
    next: Next = field(default_factory=Next)                   # what waits on whom after this apply
    attempted: bool = True               # False: the plan had only deferred and manual steps, nothing was sent

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
    if report.attempted:
        lines.append(f"Apply: {n['done']} done, {n['failed']} failed, {n['skipped']} skipped; not attempted: "
                     f"{n['deferred']} deferred, {n['manual']} manual.")
    else:
        lines.append(f"Nothing to apply now: only {n['deferred']} deferred and {n['manual']} manual steps remain.")
    if not report.ok:
        lines.append("Nothing was half-done silently: the steps above say what happened. Run `reconciler plan` to "
                     "see what is left; the next apply finishes the job.")
    if report.next:
        lines.append("")
        lines.append("What happens next:")
        for heading, items in next_sections(report.next, len(report.organisations)):
            lines.append(f"  {heading[0].upper()}{heading[1:]}:")
            lines.extend(f"    {terminal(item)}" for item in items)
        lines.append(rerun_text(report.next))
    return "\n".join(lines) + "\n"


def render_summary(report: ApplyReport | None) -> str:
    """The report's summary and "what happens next" as markdown, for a CI job summary (`--summary FILE`)."""
    if report is None:
        return "**Nothing to apply**: the backend matches the config.\n"
    n = report.summary()
    head = (f"**Apply**: {n['done']} done, {n['failed']} failed, {n['skipped']} skipped; not attempted: "
            f"{n['deferred']} deferred, {n['manual']} manual.\n" if report.attempted else
            f"**Nothing to apply now**: only {n['deferred']} deferred and {n['manual']} manual steps remain.\n")
    if not report.next:
        return head
    parts = [head, "\n### What happens next\n"]
    for heading, items in next_sections(report.next, len(report.organisations)):
        parts.append(f"\n**{heading[0].upper()}{heading[1:]}**\n\n")       # the tool's own words
        parts.extend(f"- {md_line(item)}\n" for item in items)
    parts.append(f"\n{rerun_text(report.next)}\n")
    return "".join(parts)


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


def next_to_data(nxt: Next) -> dict[str, Any]:
    """What happens next for scripts: waiting (approval, activation with its deadline, ...), manual steps with
    who must do them, the deferred steps, and what to run then."""
    return {"waiting": [{"kvk": kvk, "who": w.who, "what": w.what, "detail": w.detail,
                         "deadline": w.deadline.isoformat() if w.deadline else None} for kvk, w in nxt.waiting],
            "manual": [{"kvk": m.kvk, "action": m.action.value, "target": m.target, "person": m.person,
                        "rule": m.rule, "reason": m.reason, "by": MANUAL_BY.get(m.rule, "a person (see the reason)")}
                       for m in nxt.manual],
            "deferred": [{"kvk": d.kvk, "action": d.action.value, "target": d.target, "person": d.person,
                          "detail": d.detail, "rule": d.rule, "reason": d.reason} for d in nxt.deferred],
            "then": rerun_text(nxt) if nxt else None}


def report_to_data(report: ApplyReport) -> dict[str, Any]:
    return {"plan_id": report.plan_id, "ok": report.ok, "summary": report.summary(),
            "attempted": report.attempted, "next": next_to_data(report.next),
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


#: What an apply with nothing to do (the backend matches the config) reports, as text and as JSON.
NOTHING_TEXT = "Nothing to apply: the backend matches the config (or only deferred and manual steps remain).\n"
NOTHING_JSON = '{"ok": true, "summary": {"done": 0, "failed": 0, "skipped": 0}, "organisations": []}\n'


def render_report(report: ApplyReport | None, fmt: str, *, colour: bool = False) -> str:
    """The final report of `reconciler apply` as `fmt` (text for people, json for scripts); None, an apply that
    had nothing to do, says so in either."""
    if fmt == "json":
        return NOTHING_JSON if report is None else render_json(report)
    if report is None:
        return NOTHING_TEXT
    import click

    return render_text(report, (lambda hue, text: click.style(text, fg=hue)) if colour else None)


def append_summary(path: Path, report: ApplyReport | None) -> str | None:
    """`--summary FILE`: the markdown summary appended, as GitHub's job summary file expects. A file that cannot
    be written is the warning returned, one line (the apply itself has run: its exit code stands)."""
    try:
        with path.open("a", encoding="utf-8") as out:
            out.write(render_summary(report))
    except OSError as exc:
        return f"cannot write the summary to {terminal(str(path))}: {terminal(exc.strerror or exc)}"
    return None
