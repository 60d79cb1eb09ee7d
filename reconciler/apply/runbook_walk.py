"""`reconciler apply --executor runbook`: a person carries the plan out by hand in the Beheermodule, one step at a
time, on a terminal (issue #14, section 2).

No supplier offers a management API, so the plan's API calls become steps a beheerder does in the web UI. The
walk shows one step (the runbook's own words: `reconciler.render.runbook.step_text`, escaped for the terminal),
asks done / skip / failed / quit, and keeps each answer twice:

- in the audit log, a `runbook-step` line (plan id, step id, the answer, the person's note) beside the API
  executor's `step-intent`/`step-result` lines, written before the state, so nothing answered is missing from
  the log;
- in the walk's state, `.reconciler/runbook-<plan id>.json`, rewritten whole after each answer (a temporary
  file, then `os.replace`), so a kill between two steps loses nothing. Started again on the same plan (same
  plan id: same config, backend state and day), the walk resumes at the first unanswered step; a state file of
  another plan is never read into this one.

It ends with what was done, skipped and failed, which overviews to download (per organisation: users,
authorisations and issued chain authorisations, manual 2.1, 4.1, 5.2) and the `reconciler drift --backend
export:DIR` command that checks the result against the config. Nothing is sent to any backend. Without a
terminal there is no one to answer: it refuses (`preflight.Refused`, one line, exit 1).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from reconciler.apply.audit import AuditError, AuditLog
from reconciler.apply.saved import plan_id as plan_id_of
from reconciler.config.shard import Shard
from reconciler.apply.preflight import Refused
from reconciler.plan.model import Change, OrgPlan, Plan
from reconciler.render.runbook import WORDS, cost_text, step_text
from reconciler.render.safe import terminal

#: Where the walk's state is kept (beside the audit log's default).
DEFAULT_STATE_DIR = Path(".reconciler")
#: The folder the verify command reads the downloads from (`export:DIR`), one folder per KvK in it.
EXPORT_DIR = "exports"
STATE_VERSION = 1

DONE, SKIP, FAILED, QUIT = "done", "skip", "failed", "quit"
#: What a person may type, and the answer it is.
ANSWERS = {"d": DONE, "done": DONE, "s": SKIP, "skip": SKIP, "skipped": SKIP, "f": FAILED, "fail": FAILED,
           "failed": FAILED, "q": QUIT, "quit": QUIT}
QUESTION = "done / skip / failed / quit [d/s/f/q]"
NOTE_QUESTION = "What went wrong? (one line, for the audit log)"
NO_TERMINAL = ("refusing to walk the runbook: stdin is not a terminal, and each step needs a person's answer. "
               "Print the runbook instead: `reconciler plan PATH... --format runbook`")

#: The Beheermodule's overviews the verify step reads, in its words (manual 2.1: each can be downloaded).
OVERVIEWS = ("Gebruikers (the users overview, manual 3.1)", "Machtigingen (the authorisations overview, 4.1)",
             "Ketenmachtigingen -> afgegeven (the issued chain authorisations, 5.2)")


def interactive() -> bool:
    """Whether a person can answer (stdin is a terminal)."""
    return sys.stdin.isatty()


def require_terminal(is_interactive: Callable[[], bool] = interactive) -> None:
    """Refuse (before anything is read) when no person can answer."""
    if not is_interactive():
        raise Refused(NO_TERMINAL)


def _prompt(question: str) -> str:
    """Ask on the terminal; an empty line is an empty answer (asked again), never a default. The end of the input
    is EOFError: click's prompt with a default gives the default there in some versions (8.2.0), which would ask
    again for ever."""
    sys.stdout.flush()
    return input(f"{question}: ")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# -------------------------------------------------------------------------------------------------- state
@dataclass
class Answer:
    """A person's answer to one step."""

    answer: str                  # done, skip or failed (quit is not an answer to the step: it stays open)
    at: str                      # when, ISO 8601 UTC
    note: str | None = None      # a failed step's one line


@dataclass
class WalkState:
    """What the walk of one plan has been told so far, per step id."""

    plan_id: str
    today: str                                   # the plan's day (a new day is a new plan)
    answers: dict[str, Answer] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "plan_id": self.plan_id, "today": self.today,
                "steps": {sid: {"answer": a.answer, "at": a.at, **({"note": a.note} if a.note else {})}
                          for sid, a in self.answers.items()}}


def state_path(state_dir: Path, plan_id: str) -> Path:
    """The state file of the walk of plan `plan_id`."""
    return state_dir / f"runbook-{plan_id}.json"


def load_state(path: Path, plan_id: str) -> WalkState | None:
    """The walk of `plan_id` kept at `path`, or None (no file, or the walk of another plan: ignored). A file
    that cannot be read or is not a walk's state refuses: starting afresh would write over it."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise Refused(f"{path}: cannot read the runbook walk's state: {terminal(reason)}; move it away to start "
                      "the walk afresh") from None
    try:
        data = json.loads(raw)
        if data.get("plan_id") != plan_id:
            return None
        answers = {}
        for sid, entry in data["steps"].items():
            if entry["answer"] not in (DONE, SKIP, FAILED) or not isinstance(entry["at"], str):
                raise ValueError(f"step {sid}: unknown answer")
            note = entry.get("note")
            answers[str(sid)] = Answer(entry["answer"], entry["at"], str(note) if note else None)
        return WalkState(plan_id, str(data.get("today", "")), answers)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise Refused(f"{path}: not a runbook walk's state ({terminal(error)}); move it away to start the walk "
                      "afresh") from None


def save_state(path: Path, state: WalkState) -> None:
    """Write the state whole: to a temporary file beside it, synced, then renamed over it (atomic), so a kill
    at any moment leaves the old state or the new one, never half of one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(state.to_json(), out, ensure_ascii=True, indent=1)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as error:
        reason = error.strerror or str(error)
        raise Refused(f"{path}: cannot write the runbook walk's state: {terminal(reason)}; the walk keeps its "
                      "place there, so it needs a writable .reconciler folder") from None


def _other_walks(state_dir: Path, plan_id: str) -> list[Path]:
    """State files of other plans' walks, newest first (said once: the person may expect to resume)."""
    try:
        found = [p for p in state_dir.glob("runbook-*.json") if p.name != state_path(state_dir, plan_id).name]
        return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return []


# -------------------------------------------------------------------------------------------------- steps
@dataclass(frozen=True)
class WalkStep:
    """One step of the walk: a change of the plan, numbered across the plan (1..M) in plan order."""

    number: int
    change: Change
    org: OrgPlan


def walk_steps(plan: Plan) -> list[WalkStep]:
    """The plan's changes in the plan's (safe) order; deferred and manual items have no id and wait."""
    steps = []
    for org in plan.organisations:
        for change in org.changes:
            steps.append(WalkStep(len(steps) + 1, change, org))
    return steps




_DOT = " \u00b7 "


def show_step(step: WalkStep, total: int, lang: str) -> list[str]:
    """The lines that show one step: its number, title and subject, the path in the UI, the manual's section,
    its cost and its id (every value from the config or the backend escaped for the terminal)."""
    text = step_text(step.change, lang, "terminal")
    w = WORDS[lang]
    facts = [w["section"].format(section=text.section), cost_text(lang, step.change),
             f"{w['id']} {terminal(step.change.id)}"]
    return [f"Step {step.number} of {total}: {text.title} \u2014 {text.person}",
            f"  {text.path}",
            "  " + _DOT.join(facts)]


def _org_heading(org: OrgPlan, lang: str) -> list[str]:
    w = WORDS[lang]
    lines = [w["org"].format(kvk=terminal(org.kvk), name=terminal(org.name or ""))]
    if org.acting_admin:
        lines.append(w["acting"].format(admin=terminal(org.acting_admin)))
    return lines


# ------------------------------------------------------------------------------------------------ commands
def command_line(*words: str) -> str:
    """A command a person can paste: each word quoted for the shell where it must be, and shown literally."""
    return terminal(" ".join(shlex.quote(word) for word in words))


@dataclass(frozen=True)
class Commands:
    """How the walk was started: what resumes it and what verifies its result."""

    paths: Sequence[str] = ()
    backend: str | None = None
    today: dt.date | None = None
    shard: Shard | None = None

    def _options(self) -> list[str]:
        out = []
        if self.shard:
            out += ["--shard", str(self.shard)]
        if self.today:
            out += ["--today", self.today.isoformat()]
        return out

    def resume(self) -> str:
        backend = ["--backend", self.backend] if self.backend else []
        return command_line("reconciler", "apply", *(self.paths or ["PATH..."]), "--executor", "runbook", *backend,
                            *self._options())

    def runbook(self) -> str:
        backend = ["--backend", self.backend] if self.backend else []
        return command_line("reconciler", "plan", *(self.paths or ["PATH..."]), *backend, *self._options(),
                            "--format", "runbook")

    def export_dir(self) -> str:
        """The downloads' folder: the one the backend already reads (`export:DIR`), else `exports`."""
        if self.backend and self.backend.startswith("export:"):
            return self.backend.removeprefix("export:")
        return EXPORT_DIR

    def verify(self) -> str:
        return command_line("reconciler", "drift", *(self.paths or ["PATH..."]), "--backend",
                            f"export:{self.export_dir()}", *self._options())


# ---------------------------------------------------------------------------------------------------- walk
@dataclass
class WalkResult:
    """How the walk ended."""

    plan_id: str
    total: int
    done: int = 0
    skipped: int = 0
    failed: int = 0
    quit_at: int | None = None          # the step the person stopped at (None: every step was answered)
    state_file: Path | None = None

    @property
    def ok(self) -> bool:
        """Every step answered, none failed (a skipped step is the person's choice; drift shows it)."""
        return self.quit_at is None and self.failed == 0


def walk(plan: Plan, *, ask: Callable[[str], str] = _prompt, echo: Callable[[str], None] = click.echo,
         is_interactive: Callable[[], bool] = interactive, audit_log: Path | None = None,
         state_dir: Path = DEFAULT_STATE_DIR, lang: str = "nl", commands: Commands = Commands(),
         now: Callable[[], dt.datetime] = _now) -> WalkResult:
    """Walk a person through the plan's changes (module docstring); `ask` reads an answer (a prompt on the
    terminal by default, fed by tests), `echo` shows a line."""
    require_terminal(is_interactive)
    pid = plan_id_of(plan)
    steps = walk_steps(plan)
    path = state_path(state_dir, pid)
    result = WalkResult(pid, len(steps), state_file=path)
    if not steps:
        echo("Nothing to carry out in the Beheermodule now: the plan has no step with an id.")
        _tell_waiting(plan, echo, commands)
        return result
    state = load_state(path, pid)
    if state is None:
        for other in _other_walks(state_dir, pid)[:1]:
            echo(f"note: {terminal(other)} holds the walk of another plan; this plan ({pid}) is new (the config, "
                 "the backend or the day changed), so its walk starts at step 1")
        state = WalkState(pid, plan.today.isoformat())
    save_state(path, state)                     # before the first answer: an unwritable state refuses now
    by_id = {step.change.id: step for step in steps}
    stale = [sid for sid in state.answers if sid not in by_id]
    for sid in stale:                           # not expected (the plan id names the steps); never counted
        del state.answers[sid]
    first = next((s for s in steps if s.change.id not in state.answers), None)
    if state.answers:
        if first is None:
            echo(f"All {len(steps)} steps of this plan ({pid}) were answered already.")
        else:
            echo(f"Resuming at step {first.number} of {len(steps)} (plan {pid}; "
                 f"{len(state.answers)} answered before, kept in {terminal(path)}).")
    else:
        echo(f"Runbook walk of plan {pid}: {len(steps)} steps, in this order. After each one, answer "
             f"{QUESTION}.")
    try:
        audit = AuditLog(audit_log).open()
    except AuditError as error:
        raise Refused(f"{error}. Give a writable file with --audit-log FILE (or --audit-log - for none)") from None
    try:
        org_shown: str | None = None
        for step in steps:
            if step.change.id in state.answers:
                continue
            if step.org.kvk != org_shown:
                org_shown = step.org.kvk
                echo("")
                for line in _org_heading(step.org, lang):
                    echo(line)
            echo("")
            for line in show_step(step, len(steps), lang):
                echo(line)
            answer, note = _ask(step, ask, echo, commands, path)
            try:
                audit.write("runbook-step", plan_id=pid, step_id=step.change.id, number=step.number,
                            kvk=step.change.kvk, action=step.change.action.value, target=step.change.target,
                            answer=answer, **({"note": note} if note else {}))
            except AuditError as error:
                raise Refused(f"{error}; the answer to step {step.number} was not recorded. Fix the audit log (or "
                              f"use --audit-log -) and resume: {commands.resume()}") from None
            if answer == QUIT:
                result.quit_at = step.number
                break
            state.answers[step.change.id] = Answer(answer, now().isoformat(timespec="seconds"), note)
            save_state(path, state)
    finally:
        failure = audit.close()
    if failure is not None:
        echo(f"warning: {failure}")
    for answer in state.answers.values():
        result.done += answer.answer == DONE
        result.skipped += answer.answer == SKIP
        result.failed += answer.answer == FAILED
    if result.quit_at is not None:
        echo("")
        echo(f"Stopped at step {result.quit_at} of {len(steps)}; {len(state.answers)} answered, kept in "
             f"{terminal(path)}. To go on where you stopped, run:")
        echo(f"  {commands.resume()}")
        echo("(it resumes while the plan stays the same; once the config, the backend or the day changes, the "
             "plan is new and its walk starts at step 1)")
        return result
    _summary(plan, steps, state, result, echo, lang, commands)
    return result


def _ask(step: WalkStep, ask: Callable[[str], str], echo: Callable[[str], None], commands: Commands,
         path: Path) -> tuple[str, str | None]:
    """The person's answer to one step (asked again until it is one of ANSWERS), with a failed step's note.
    Ctrl-C or the end of input keeps what was answered so far and says how to resume."""
    try:
        while True:
            answer = ANSWERS.get(ask(QUESTION).strip().lower())
            if answer is not None:
                break
            echo(f"Please answer {QUESTION}.")
        note = None
        if answer == FAILED:
            note = ask(NOTE_QUESTION).strip() or None
        return answer, note
    except (click.Abort, EOFError, KeyboardInterrupt):
        echo("")
        echo(f"Stopped before answering step {step.number}; the answers so far are kept in {terminal(path)}. "
             f"Resume with: {commands.resume()}")
        raise


def _summary(plan: Plan, steps: list[WalkStep], state: WalkState, result: WalkResult,
             echo: Callable[[str], None], lang: str, commands: Commands) -> None:
    """The end of a walk: the counts, each failed step with its note, what waits, and how to verify."""
    echo("")
    echo(f"Runbook walked: {result.done} done, {result.skipped} skipped, {result.failed} failed "
         f"(of {len(steps)} steps).")
    for step in steps:
        answer = state.answers.get(step.change.id)
        if answer is not None and answer.answer == FAILED:
            title = step_text(step.change, lang, "terminal").title
            note = f": {terminal(answer.note)}" if answer.note else ""
            echo(f"  failed: step {step.number} ({title}, {WORDS[lang]['id']} {terminal(step.change.id)}){note}")
    _tell_waiting(plan, echo, commands)
    kvks = [org.kvk for org in plan.organisations]
    echo("")
    echo("To verify the result, download from the Beheermodule, for each organisation (as .csv or .xlsx, "
         "manual 2.1):")
    for overview in OVERVIEWS:
        echo(f"  - {overview}")
    folder = commands.export_dir()
    echo(f"into one folder per organisation, named by its KvK: "
         f"{', '.join(terminal(f'{folder}/{kvk}/') for kvk in kvks)}")
    echo("and run (exit 0 once the Beheermodule matches the config; else it lists what still differs):")
    echo(f"  {commands.verify()}")


def _tell_waiting(plan: Plan, echo: Callable[[str], None], commands: Commands) -> None:
    """Deferred and manual items are not walked (they have no id yet): say how many wait, and where they are."""
    deferred = sum(len(org.deferred) for org in plan.organisations)
    manual = sum(len(org.manual) for org in plan.organisations)
    if deferred or manual:
        echo(f"Not in this walk: {deferred} deferred and {manual} manual "
             f"step{'' if deferred + manual == 1 else 's'} (they wait for an approval, an activation or another "
             f"person); `{commands.runbook()}` lists them with what unblocks them.")
