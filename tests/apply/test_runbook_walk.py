"""`apply --executor runbook`'s walk (issue #14, section 2): one step at a time in plan order with its id, the
answers done / skip / failed (with a note) / quit, the state kept atomically under `.reconciler/` by plan id
(resume; another plan starts afresh), one `runbook-step` audit line per answer, the end (counts, downloads, the
drift command), the refusal without a terminal, and every value escaped for the terminal."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import Iterable

import pytest

from reconciler.apply import runbook_walk
from reconciler.apply.runbook_walk import Commands, WalkResult, state_path, walk, walk_steps
from reconciler.apply.saved import plan_id
from reconciler.pipeline import Refused
from reconciler.plan.model import Action, OrgPlan, Plan
from reconciler.render.runbook import TEMPLATES

from tests.render.hostile import CORPUS, assert_terminal_safe
from tests.render.plans import KVK, SAMPLES, change, every_action_plan, plan

#: The walk's state at the clock these tests fix.
NOW = dt.datetime(2026, 11, 21, 9, 30, tzinfo=dt.timezone.utc)
COMMANDS = Commands(("org.yaml",), "sandbox:sb.db")


class Person:
    """A person at the terminal: types the given answers in order, and fails the test if asked for more."""

    def __init__(self, answers: Iterable[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def __call__(self, question: str) -> str:
        self.asked.append(question)
        assert self.answers, f"asked {question!r} with no answer left"
        return self.answers.pop(0)


class Walk:
    """One walk of a plan, as a person sees it."""

    def __init__(self, tmp: Path, made: Plan, answers: Iterable[str], *, audit: bool = True,
                 commands: Commands = COMMANDS, terminal: bool = True) -> None:
        self.lines: list[str] = []
        self.person = Person(answers)
        self.audit = tmp / "audit.jsonl"
        self.result: WalkResult = walk(made, ask=self.person, echo=self.lines.append,
                                       is_interactive=lambda: terminal, audit_log=self.audit if audit else None,
                                       state_dir=tmp / ".reconciler", commands=commands, now=lambda: NOW)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def shown(self) -> list[tuple[int, str]]:
        """(number, step id) of each step shown, in order."""
        found = []
        for i, line in enumerate(self.lines):
            if line.startswith("Step "):
                number = int(line.split()[1])
                ident = self.lines[i + 2].rsplit("stap-id ", 1)[1]
                found.append((number, ident))
        return found


def audit_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def state(tmp: Path, made: Plan) -> dict[str, object]:
    return json.loads(state_path(tmp / ".reconciler", plan_id(made)).read_text())


# ---------------------------------------------------------------------------------------------------- walk
def test_steps_are_shown_one_at_a_time_in_plan_order_with_their_ids(tmp_path: Path) -> None:
    made = every_action_plan()
    ids = [c.id for c in made.changes]
    w = Walk(tmp_path, made, ["d"] * len(ids))
    assert w.shown() == list(enumerate(ids, start=1))
    assert len(ids) == len(Action) and w.result.done == len(ids) and w.result.ok
    assert w.person.asked == [runbook_walk.QUESTION] * len(ids)          # one question per step
    first = w.lines.index("Step 1 of 16: Nieuwe gebruiker aanvragen \u2014 new@acme.nl")
    assert w.lines[first + 1].startswith("  Gebruikers \u2192 Voeg toe \u2192 niveau EH3, rol Beheerder; naam New")
    assert "handleiding 3.2 \u00b7 kosten EUR 40.00 eenmalig" in w.lines[first + 2]
    assert "KvK 99966564: Acme B.V." in w.lines and "Log in als beheerder admin@acme.nl." in w.lines


def test_the_runbook_renderer_and_the_walk_say_the_same_step(tmp_path: Path) -> None:
    """The walk takes its words from the runbook's one table: its English path comes out in English."""
    made = plan(OrgPlan(kvk=KVK, name="Acme", revision=1, acting_admin=None, changes=[change(Action.CHANGE_ROLE,
                                                                          person="promoted@acme.nl")]))
    lines: list[str] = []
    walk(made, ask=Person(["d"]), echo=lines.append, is_interactive=lambda: True, state_dir=tmp_path,
         lang="en")
    assert f"Step 1 of 1: {TEMPLATES[Action.CHANGE_ROLE]['en'].title} \u2014 promoted@acme.nl" in lines
    assert ("  Gebruikers \u2192 open promoted@acme.nl \u2192 the pencil after Rol (role) \u2192 choose Beheerder "
            "\u2192 Rol wijzigen") in lines


def test_done_skip_failed_with_a_note_and_quit(tmp_path: Path) -> None:
    made = every_action_plan()
    ids = [c.id for c in made.changes]
    w = Walk(tmp_path, made, ["d", "S", "what?", "", "failed", "the button was grey", "q"])
    assert w.result.quit_at == 4 and not w.result.ok
    assert (w.result.done, w.result.skipped, w.result.failed) == (1, 1, 1)
    assert w.text.count("Please answer done / skip / failed / quit") == 2     # "what?" and "" asked again
    assert w.person.asked.count(runbook_walk.NOTE_QUESTION) == 1
    assert [n for n, _ in w.shown()] == [1, 2, 3, 4]                          # the fifth never shown
    saved = state(tmp_path, made)
    assert saved["plan_id"] == plan_id(made) and saved["today"] == "2026-11-21"
    assert saved["steps"] == {ids[0]: {"answer": "done", "at": "2026-11-21T09:30:00+00:00"},
                              ids[1]: {"answer": "skip", "at": "2026-11-21T09:30:00+00:00"},
                              ids[2]: {"answer": "failed", "at": "2026-11-21T09:30:00+00:00",
                                       "note": "the button was grey"}}
    assert "Stopped at step 4 of 16; 3 answered" in w.text
    assert "  reconciler apply org.yaml --executor runbook --backend sandbox:sb.db" in w.lines
    assert "drift" not in w.text                                  # no verification of a walk half done


def test_a_second_walk_resumes_at_the_first_unanswered_step_and_ends_with_the_verification(tmp_path: Path) -> None:
    made = every_action_plan()
    ids = [c.id for c in made.changes]
    Walk(tmp_path, made, ["d", "s", "f", "", "q"])
    w = Walk(tmp_path, made, ["d"] * 13)
    assert w.lines[0].startswith(f"Resuming at step 4 of 16 (plan {plan_id(made)}; 3 answered before")
    assert w.shown() == list(enumerate(ids, start=1))[3:]
    assert (w.result.done, w.result.skipped, w.result.failed, w.result.quit_at) == (14, 1, 1, None)
    assert not w.result.ok                                          # a failed step: exit 1
    assert "Runbook walked: 14 done, 1 skipped, 1 failed (of 16 steps)." in w.lines
    assert any(line.startswith("  failed: step 3 (") and ids[2] in line for line in w.lines)
    assert "Not in this walk: 2 deferred and 3 manual steps" in w.text
    tail = w.lines[w.lines.index("To verify the result, download from the Beheermodule, for each organisation "
                                 "(as .csv or .xlsx, manual 2.1):"):]
    assert [line for line in tail if line.startswith("  - ")] == [f"  - {o}" for o in runbook_walk.OVERVIEWS]
    assert f"into one folder per organisation, named by its KvK: exports/{KVK}/, exports/12345678/" in tail
    assert tail[-1] == "  reconciler drift org.yaml --backend export:exports"
    again = Walk(tmp_path, made, [])                                 # nothing left to ask
    assert again.lines[0] == "All 16 steps of this plan (%s) were answered already." % plan_id(made)
    assert "Runbook walked: 14 done, 1 skipped, 1 failed (of 16 steps)." in again.lines


def test_a_state_file_of_another_plan_is_ignored(tmp_path: Path) -> None:
    made = every_action_plan()
    Walk(tmp_path, made, ["d", "d", "q"])
    other = dataclasses.replace(made, today=made.today + dt.timedelta(days=1))     # another day: another plan
    assert plan_id(other) != plan_id(made)
    w = Walk(tmp_path, other, ["q"])
    assert w.shown()[0][0] == 1 and not any(line.startswith("Resuming") for line in w.lines)
    assert any(line.startswith("note: ") and f"runbook-{plan_id(made)}.json holds the walk of another plan"
               in line for line in w.lines)
    assert len(state(tmp_path, made)["steps"]) == 2                  # the other walk's file is left as it was
    # a file under this plan's name that holds another plan's walk is not read into this one either
    path = state_path(tmp_path / ".reconciler", plan_id(other))
    path.write_text(json.dumps({"version": 1, "plan_id": "0000000000000000", "today": "2026-11-21",
                                "steps": {made.changes[0].id: {"answer": "done", "at": "x"}}}))
    w = Walk(tmp_path, other, ["q"])
    assert w.shown()[0][0] == 1


def test_the_audit_log_has_one_runbook_step_line_per_answer(tmp_path: Path) -> None:
    made = every_action_plan()
    ids = [c.id for c in made.changes]
    Walk(tmp_path, made, ["d", "s", "f", "did not arrive", "q"])
    Walk(tmp_path, made, ["q"])
    lines = audit_lines(tmp_path / "audit.jsonl")
    assert [(r["event"], r["step_id"], r["answer"], r.get("note")) for r in lines] == [
        ("runbook-step", ids[0], "done", None), ("runbook-step", ids[1], "skip", None),
        ("runbook-step", ids[2], "failed", "did not arrive"), ("runbook-step", ids[3], "quit", None),
        ("runbook-step", ids[3], "quit", None)]
    assert all(r["plan_id"] == plan_id(made) and r["kvk"] == KVK for r in lines)
    assert lines[0]["number"] == 1 and lines[0]["action"] == "request_means"


def test_without_an_audit_log_nothing_is_written_but_the_state(tmp_path: Path) -> None:
    made = every_action_plan()
    Walk(tmp_path, made, ["d", "q"], audit=False)
    assert not (tmp_path / "audit.jsonl").exists() and len(state(tmp_path, made)["steps"]) == 1


def test_without_a_terminal_it_refuses_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(Refused, match=r"^refusing to walk the runbook: stdin is not a terminal.*--format runbook`$"):
        Walk(tmp_path, every_action_plan(), [], terminal=False)
    assert not (tmp_path / ".reconciler").exists() and not (tmp_path / "audit.jsonl").exists()


def test_ctrl_c_at_a_step_keeps_the_answers_so_far(tmp_path: Path) -> None:
    made = every_action_plan()

    def person(question: str, answers: list[str] = ["d", "d"]) -> str:
        if not answers:
            raise KeyboardInterrupt
        return answers.pop(0)

    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        walk(made, ask=person, echo=lines.append, is_interactive=lambda: True, state_dir=tmp_path / ".reconciler",
             commands=COMMANDS)
    assert len(state(tmp_path, made)["steps"]) == 2
    assert lines[-1].startswith("Stopped before answering step 3; the answers so far are kept in ")
    assert os.listdir(tmp_path / ".reconciler") == [f"runbook-{plan_id(made)}.json"]   # no temporary file left
    assert Walk(tmp_path, made, ["q"]).shown()[0][0] == 3


def test_the_state_is_replaced_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed rename (a kill at that moment) leaves the state as it was, and no temporary file."""
    made = every_action_plan()
    Walk(tmp_path, made, ["d", "q"])
    before = state(tmp_path, made)

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runbook_walk.os, "replace", broken)
    with pytest.raises(Refused, match=r"runbook-\w+\.json: cannot write the runbook walk's state: No space left"):
        Walk(tmp_path, made, ["d"])
    assert state(tmp_path, made) == before
    assert os.listdir(tmp_path / ".reconciler") == [f"runbook-{plan_id(made)}.json"]


def test_a_damaged_state_file_refuses_rather_than_being_overwritten(tmp_path: Path) -> None:
    made = every_action_plan()
    path = state_path(tmp_path / ".reconciler", plan_id(made))
    path.parent.mkdir()
    path.write_text('{"plan_id": "%s", "steps": {"x": {"answer": "maybe"' % plan_id(made))
    with pytest.raises(Refused, match=r"runbook-\w+\.json: not a runbook walk's state \(.*\); move it away"):
        Walk(tmp_path, made, [])
    assert path.read_text().endswith('"maybe"')


def test_a_plan_without_steps_says_so_and_asks_nothing(tmp_path: Path) -> None:
    made = plan(OrgPlan(kvk=KVK, name="Acme", revision=1, acting_admin=None))
    w = Walk(tmp_path, made, [])
    assert w.result.ok and w.result.total == 0 and w.person.asked == []
    assert w.lines == ["Nothing to carry out in the Beheermodule now: the plan has no step with an id."]


def test_the_step_list_is_the_plans_changes(tmp_path: Path) -> None:
    made = every_action_plan()
    steps = walk_steps(made)
    assert [s.change.id for s in steps] == [c.id for c in made.changes]
    assert [s.number for s in steps] == list(range(1, len(made.changes) + 1))


# ------------------------------------------------------------------------------------------------- hostile
HOSTILE = " ".join(CORPUS.values())


def test_hostile_strings_are_escaped_for_the_terminal(tmp_path: Path) -> None:
    def hostile(action: Action, **params: object) -> object:
        base = dict(SAMPLES[action][1])
        base.update(params)
        return change(action, f"{HOSTILE}@x.nl", person=f"{HOSTILE}@x.nl", params=base, detail=HOSTILE)

    made = plan(OrgPlan(kvk=KVK, name="Acme " + HOSTILE, revision=1, acting_admin=HOSTILE,
                        changes=[hostile(Action.REQUEST_MEANS, name=HOSTILE, email=HOSTILE, phone=HOSTILE),
                                 hostile(Action.GRANT, service_keys=[HOSTILE], end_date=HOSTILE),
                                 hostile(Action.TERMINATE_MEANS, mode="date", date=HOSTILE),
                                 hostile(Action.ISSUE_CHAIN, intermediary_kvk=HOSTILE, service_keys=[HOSTILE])]))
    commands = Commands((f"org{CORPUS['esc_clear']}.yaml",), f"sandbox:{CORPUS['rlo']}.db")
    w = Walk(tmp_path, made, ["d", "f", f"note {HOSTILE}", "s", "d"], commands=commands)
    assert_terminal_safe(w.text)
    assert "\\x1b[31m" in w.text and "\\u202e" in w.text                 # shown, visibly
    assert all("\n" not in line for line in w.lines)                      # no value started a line of its own
    assert "  reconciler drift 'org\\x1b[2J.yaml' --backend export:exports" in w.lines
    saved = state(tmp_path, made)                                          # the note is kept as typed
    assert [s.get("note") for s in saved["steps"].values()] == [None, f"note {HOSTILE}", None, None]
