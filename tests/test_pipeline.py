"""`reconciler.pipeline`, the library beneath the commands: it prints nothing, tells what happens through its
callbacks in the order it happens, and stops with one exception that says why (issue 12)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Callable

import anyio
import pytest

from reconciler import pipeline
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


# --------------------------------------------------------------------------- the commands' entry points (issue 12)
def test_a_day_is_parsed_with_what_to_write_when_it_is_not_one() -> None:
    from reconciler.domain.rules import LATEST_TODAY
    from reconciler.pipeline import parse_day

    assert parse_day("2026-12-01") == dt.date(2026, 12, 1) and parse_day(dt.date(2027, 1, 1)) == dt.date(2027, 1, 1)
    with pytest.raises(ValueError, match=r"^'1-12-2026' is not a date; write YYYY-MM-DD$"):
        parse_day("1-12-2026")
    with pytest.raises(ValueError, match=f"give a date up to {LATEST_TODAY.isoformat()}$"):
        parse_day(LATEST_TODAY + dt.timedelta(days=1))


def test_an_output_file_that_cannot_be_written_is_one_line_before_any_work(tmp_path: Path) -> None:
    from reconciler.pipeline import Unusable, check_output, write_output

    check_output(None)
    with pytest.raises(Unusable, match="the folder .*nowhere does not exist; create it or choose another --out$"):
        check_output(str(tmp_path / "nowhere" / "plan.json"))
    with pytest.raises(Unusable, match="it is a folder; give a file name to --out$"):
        write_output(str(tmp_path), "x")
    write_output(str(tmp_path / "plan.json"), "text")
    write_output(str(tmp_path / "data.csv"), b"\xef\xbb\xbfa")
    assert (tmp_path / "plan.json").read_text() == "text" and (tmp_path / "data.csv").read_bytes() == b"\xef\xbb\xbfa"


def test_tariffs_come_from_the_file_or_are_the_defaults(tmp_path: Path) -> None:
    from reconciler.pipeline import Unusable, tariffs_from
    from reconciler.plan.cost import DEFAULT_TARIFFS

    assert tariffs_from(None) is DEFAULT_TARIFFS
    bad = tmp_path / "tariffs.yaml"
    bad.write_text("- not a mapping\n")
    with pytest.raises(Unusable, match="tariffs.yaml"):
        tariffs_from(str(bad))


def test_plan_checks_its_out_file_before_the_backend_is_read(tmp_path: Path) -> None:
    from reconciler.pipeline import Unusable, plan

    db = tmp_path / "sb.db"
    with pytest.raises(Unusable, match="does not exist"):
        anyio.run(lambda: plan([str(EXAMPLE)], f"sandbox:{db}", out=str(tmp_path / "no" / "plan.json")))
    assert not db.exists()                                     # no sandbox was even created


def test_plan_saves_the_plan_with_its_signature_and_says_so(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.apply.signature import KEY_ENV, check_signature, signature_path
    from reconciler.pipeline import plan

    monkeypatch.setenv(KEY_ENV, "k" * 40)
    said: list[str] = []
    out = tmp_path / "plan.json"
    made = anyio.run(lambda: plan([str(EXAMPLE)], f"sandbox:{tmp_path / 'sb.db'}", out=str(out), note=said.append))
    data = json.loads(out.read_text())
    assert data["config_digest"] == made.config_digest and signature_path(out).exists()
    check_signature(out, data, b"k" * 40)                      # raises when it does not match
    assert said[-1] == f"signed the plan with {KEY_ENV}: {signature_path(out)}"
    assert any("was new to the embedded sandbox" in text for text in said)   # the session's notes, told


def test_drift_and_access_check_their_out_file_before_the_backend_is_read(tmp_path: Path) -> None:
    from reconciler.pipeline import Unusable, access, drift

    db = tmp_path / "sb.db"
    for work in (drift, access):
        with pytest.raises(Unusable):
            anyio.run(lambda: work([str(EXAMPLE)], f"sandbox:{db}", out=str(tmp_path / "no" / "r.txt")))
    assert not db.exists()


def test_apply_usage_problems() -> None:
    from reconciler.config.shard import parse_shard
    from reconciler.pipeline import apply_usage_problem

    assert apply_usage_problem(["org.yaml"], None, dt.date(2027, 1, 1), parse_shard("1/2")) is None
    assert apply_usage_problem(["org.yaml"], "plan.json", None, None) is None
    assert "give the config" in (apply_usage_problem([], None, None, None) or "")
    assert "--today applies when planning" in (apply_usage_problem([], "p.json", dt.date(2027, 1, 1), None) or "")
    assert "--shard applies when planning" in (apply_usage_problem([], "p.json", None, parse_shard("1/2")) or "")


def test_asking_follows_terraforms_rule(tmp_path: Path) -> None:
    from reconciler.pipeline import asking, confirm_question

    made, _ = anyio.run(lambda: build_plan([str(EXAMPLE)], f"sandbox:{tmp_path / 'sb.db'}", None))
    asked: list[str] = []

    def answer(text: str) -> Callable[[str], str]:
        return lambda question: asked.append(question) or text

    anyio.run(asking(True, lambda: False, answer("no")), made)                 # --auto-approve: never asked
    anyio.run(asking(False, lambda: True, answer(" YES ")), made)
    assert asked == [confirm_question(made)]
    assert confirm_question(made) == ("\nApply these 9 changes to 1 organisation (99966564)? Type 'yes' to go on")
    for interactive, reply, why in [(False, "yes", "stdin is not a terminal"), (True, "y", "apply cancelled")]:
        with pytest.raises(Refused, match=why):
            anyio.run(asking(False, lambda: interactive, answer(reply)), made)


def test_run_raises_the_failure_that_says_why_out_of_exception_groups() -> None:
    from reconciler.pipeline import Unusable, run

    async def grouped(*errors: Exception) -> None:
        raise ExceptionGroup("task group", list(errors))

    with pytest.raises(Unusable, match="^the out file$"):
        run(lambda: grouped(KeyError("bug"), Unusable("the out file")))
    with pytest.raises(ConfigInvalid):
        run(lambda: grouped(Unusable("x"), ConfigInvalid([], 1)))
    with pytest.raises(KeyError):
        run(lambda: grouped(KeyError("bug")))


def test_the_last_words_of_a_command_say_what_escaped_it_and_its_exit_code() -> None:
    from reconciler.pipeline import INTERRUPTED, last_words

    assert last_words(Refused("stale\nplan")) == ("error: stale\nplan", 1)
    assert last_words(KeyError("\x1b[2J")) == ("error: internal error: KeyError: '\\x1b[2J'\nplease report this "
                                               "with the command you ran", 1)
    assert last_words(KeyboardInterrupt()) == (INTERRUPTED, 130) and "audit log" in INTERRUPTED
    aborted = RuntimeError("abort")
    assert last_words(aborted, aborted=True) == ("aborted", 130)
    aborted.__cause__ = KeyboardInterrupt()
    assert last_words(aborted, aborted=True) == (INTERRUPTED, 130)
    assert last_words(BrokenPipeError()) == (None, 1)


def test_the_catalogue_listing_and_its_import_say_their_problems_as_lines(tmp_path: Path) -> None:
    from reconciler.pipeline import Unusable, import_catalogue, list_services

    services, said = list_services(None, None)
    assert services is not None and len(services) > 10 and said == []
    services, said = list_services(None, str(EXAMPLE.parent / "multi-org"))
    assert services is None and len(said) == 1 and said[0].startswith("error: ") and "name one" in said[0]
    made, said = import_catalogue(str(EXAMPLE.parent / "etoegang-catalog.xml"))
    assert made is not None and made.text and all(line.startswith("warning: ") for line in said)
    bad = tmp_path / "bad.xml"
    bad.write_text("<not-a-catalog/>")
    made, said = import_catalogue(str(bad))
    assert made is None and said and all(line.startswith(f"error: {bad}") for line in said)
    with pytest.raises(Unusable):
        import_catalogue(str(bad), str(tmp_path / "no" / "out.yaml"))


def test_run_returns_the_result_without_ever_formatting_it() -> None:
    """The result stays off the event loop's main task, whose repr (with the result's) asyncio's runner formats
    when it restores the Ctrl-C handler: for a large apply report that cost ~0.2 s."""
    formatted: list[str] = []

    class Watched:
        def __repr__(self) -> str:       # a raise would be swallowed by reprlib: count instead
            formatted.append("repr")
            return "Watched()"

    result = Watched()

    async def work() -> Watched:
        return result

    assert pipeline.run(work) is result
    assert formatted == []
