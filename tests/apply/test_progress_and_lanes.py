"""Progress output (plain lines off a terminal, nothing when quiet) and the executor's lanes (organisations
that share a means run one after the other; the others in parallel)."""

from __future__ import annotations

import datetime as dt
import io

from reconciler.apply.executor import Executor
from reconciler.apply.progress import Lines, Quiet, choose
from reconciler.apply.report import Outcome, StepResult
from reconciler.config.models import Role
from reconciler.domain.catalogue import bundled_catalogue
from reconciler.domain.state import Membership, OrgInfo, OrgState, World
from reconciler.plan.model import Action, Change, OrgPlan, Plan, Stage

from tests.plan.conftest import Backend


def change(kvk: str, action: Action, params: dict[str, object], target: str = "x@acme.nl") -> Change:
    return Change(id="0" * 16, kvk=kvk, action=action, target=target, stage=Stage.ADD, params=params, detail="d")


def test_plain_lines_number_the_steps_and_name_failures() -> None:
    out = io.StringIO()
    progress = Lines(out)
    progress.start(12)
    c = change("12345678", Action.CHANGE_ROLE, {"means_id": "m"})
    progress.done(StepResult(c, Outcome.DONE))
    progress.done(StepResult(c, Outcome.FAILED, code="R1", message="no"))
    assert out.getvalue().splitlines() == ["[ 1/12] done    12345678 ~ change_role x@acme.nl (d)",
                                           "[ 2/12] FAILED  12345678 ~ change_role x@acme.nl (d) [R1]"]


def test_the_bar_shows_the_step_and_prints_failures_above_it() -> None:
    from rich.console import Console

    from reconciler.apply.progress import Bar

    out = io.StringIO()
    bar = Bar(Console(file=out, force_terminal=True, width=120))
    bar.start(2)
    c = change("12345678", Action.CHANGE_ROLE, {"means_id": "m"})
    bar.step(c)
    bar.done(StepResult(c, Outcome.DONE))
    bar.step(c)
    bar.done(StepResult(c, Outcome.FAILED, code="R1", message="the [last] admin"))
    bar.finish()
    text = out.getvalue()
    assert "FAILED" in text and "the [last] admin" in text          # markup in messages is shown, not parsed
    assert bar.bar.tasks[0].completed == 2


def test_quiet_and_non_terminals_get_no_bar() -> None:
    assert type(choose(True)) is Quiet
    assert type(choose(False, io.StringIO())) is Lines


def test_organisations_sharing_a_means_share_a_lane() -> None:
    world = World(bundled_catalogue())
    for kvk in ("11111111", "22222222", "33333333"):
        world.orgs[kvk] = OrgState(OrgInfo(kvk, kvk))
    b = Backend()
    b.world = world
    b.means("shared@acme.nl", kvk="11111111")
    b.means("shared@acme.nl", kvk="22222222")
    b.means("alone@acme.nl", kvk="33333333")
    orgs = [OrgPlan(kvk=k, name=k, revision=1, acting_admin=None) for k in ("11111111", "22222222", "33333333")]
    orgs[0].changes = [change("11111111", Action.CHANGE_ROLE, {"means_id": "shared", "role": "beheerder"})]
    orgs[1].changes = [change("22222222", Action.CHANGE_LEVEL, {"means_id": "shared", "level": "EH3"})]
    orgs[2].changes = [change("33333333", Action.CHANGE_ROLE, {"means_id": "alone", "role": "beheerder"})]
    plan = Plan(today=dt.date(2026, 11, 21), config_digest="", tool_version="", backend="", organisations=orgs)
    lanes = Executor(plan, "p", world, {}, {})._lanes()
    assert sorted([o.kvk for o in lane] for lane in lanes) == [["11111111", "22222222"], ["33333333"]]
    assert world.orgs["11111111"].members["shared"] == Membership(Role.GEBRUIKER)
