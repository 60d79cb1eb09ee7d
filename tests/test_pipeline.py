"""`reconciler.pipeline`, the library beneath the commands: it prints nothing, tells what happens through its
callbacks in the order it happens, and stops with one exception that says why (issue 12)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from reconciler.cli.runner import leaves
from reconciler.pipeline import ApplyOptions, ConfigInvalid, Refused, apply_paths, build_plan, load_valid
from reconciler.plan.model import Plan

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "org.yaml"
INVALID = Path(__file__).resolve().parents[1] / "examples" / "invalid" / "r8-level-below-service.yaml"


def test_an_invalid_config_stops_with_every_positioned_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigInvalid) as info:
        load_valid([str(INVALID)], None)
    assert [(d.line, d.code) for d in info.value.diagnostics] == [(18, "R8")] and info.value.files == 1
    assert capsys.readouterr() == ("", "")                     # nothing printed: the command renders it


def test_planning_the_example_returns_the_plan_and_the_notes(tmp_path: Path) -> None:
    plan, notes = anyio.run(lambda: build_plan([str(EXAMPLE)], f"sandbox:{tmp_path / 'sb.db'}", None))
    assert plan.summary()["add"] == 9 and plan.config_paths == [str(EXAMPLE)]
    assert any("was new to the embedded sandbox" in n for n in notes)


def test_apply_tells_what_happens_in_order_and_a_refusal_stops_it(tmp_path: Path) -> None:
    seen: list[str] = []

    async def confirm(plan: Plan) -> None:
        seen.append(f"confirm {len(plan.changes)}")

    opts = ApplyOptions(backend=f"sandbox:{tmp_path / 'sb.db'}", note=lambda text: seen.append("note"),
                        show=lambda plan: seen.append("show"), confirm=confirm)
    report = anyio.run(lambda: apply_paths([str(EXAMPLE)], opts))
    assert report is not None and report.ok and report.summary()["done"] == 9
    assert seen == ["note", "show", "confirm 9"]               # the bootstrap note, the plan, then the question

    async def no(plan: Plan) -> None:
        raise Refused("apply cancelled: nothing was changed")

    seen.clear()
    fresh = ApplyOptions(backend=f"sandbox:{tmp_path / 'other.db'}", show=lambda plan: seen.append("show"),
                         confirm=no)
    with pytest.raises(BaseException) as info:          # from inside the session's task group, maybe grouped
        anyio.run(lambda: apply_paths([str(EXAMPLE)], fresh))
    assert any(isinstance(e, Refused) for e in leaves(info.value))
    assert seen == ["show"]
    plan, _ = anyio.run(lambda: build_plan([str(EXAMPLE)], fresh.backend, None))
    assert plan.summary()["add"] == 9                          # nothing was sent
