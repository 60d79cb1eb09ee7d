"""Drift a person can read (issue 11, item 4): aligned text columns under headers; a lapsed activation waits on
people with the cost of a new letter; who changed a drifted item and when, from the backend's event trail
(read only when something drifted); idle means with their yearly cost. The scenarios run `reconciler` on the
embedded sandbox."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import unicodedata
from pathlib import Path

import anyio

from reconciler.backend.connect import open_backend
from reconciler.backend.sandbox.controls import SandboxControls
from reconciler.backend.types import RemoteEvent
from reconciler.pipeline import read_trail
from reconciler.domain.catalogue import bundled_catalogue
from reconciler.domain.state import Status, World
from reconciler.drift.report import build_report
from reconciler.drift.trail import Match, Trail
from reconciler.plan.cost import Tariffs
from reconciler.plan.planner import PlanInput, make_plan
from reconciler.render.drift import MAX_TEXT_COLUMN, render_text

from tests.drift.test_drift import ADMIN, EXAMPLE, invoke, report_for
from tests.plan.conftest import CAT, KVK, TODAY, Backend, config


# ------------------------------------------------------------------------------------------------ text
def columns_line_up(block: list[str]) -> None:
    """Each header starts in the column its rule of dashes starts, and so does each value under it (or the
    cell is empty); the text before a column never runs into it."""
    # as a terminal shows them: a wide character takes two cells
    block = ["".join(c * 2 if unicodedata.east_asian_width(c) in "WF" else c for c in line) for line in block]
    header, rule, *rows = block
    starts = [m.start() for m in re.finditer(r"-+", rule)]
    assert len(starts) == len(re.split(r"\s{2,}", header.strip())), (header, rule)
    for line in (header, *rows):
        line = line.ljust(starts[-1] + 1)                                 # empty cells at the end are not padded
        for col, start in enumerate(starts):
            assert line[start - 1] == " ", (line, col)                      # nothing runs into the column
            end = starts[col + 1] if col + 1 < len(starts) else len(line)
            assert line[start] != " " or not line[start:end].strip(), (line, col)   # starts here, or is empty
        assert line.startswith(" " * starts[0]) and line[starts[0]] != " ", line


def section(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    block = []
    for line in lines[at + 1:]:
        if not line.startswith("    "):
            break
        block.append(line)
    return block


def test_text_has_headers_and_aligned_columns_measured_on_what_is_shown(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.means("x@acme.nl", "beheerder", level="EH2+")
    b.means("act@acme.nl", status=Status.WACHTEN_OP_ACTIVATIE, activation_deadline=dt.date(2026, 12, 1))
    b.means("gone@acme.nl", status=Status.ACTIVATIE_VERLOPEN)
    b.auth("x", "rvo/tenderned", dt.date(2030, 1, 1))
    # a backend name with an escape sequence and wide characters; an e-mail too long for one column
    b.world.means["x"] = b.world.means["x"].with_(name="\x1b[31m\u6771\u4eacX")
    long_mid = b.means("a" * 70 + "@acme.nl", "gebruiker", level="EH2")
    b.world.means[long_mid] = b.world.means[long_mid].with_(name="\u6771\u4eac")
    users = "".join(f"  - {{email: {e}@acme.nl, name: {e}, role: gebruiker, level: EH3, second_factor: {{type: otp}}}}\n"
                    for e in ("act", "gone"))
    report = report_for(tmp_path, b, "users:\n" + ADMIN + users + """\
  - {email: x@acme.nl, name: X, role: gebruiker, level: EH3, second_factor: {type: otp},
     authorisations: [{service: rvo/tenderned, until: 2029-01-01}]}
""")
    text = render_text(report)
    assert "\x1b" not in text
    drift = section(text, "Drift (changed outside git)")
    assert drift[0].split() == ["change", "that", "undoes", "it", "who", "/", "what", "expected", "(git)",
                                "actual", "(backend)", "changed", "by", "on"]
    columns_line_up(drift)
    waiting = section(text, "Waiting on people")
    assert waiting[0].split() == ["who", "what", "deadline", "detail"]
    columns_line_up(waiting)
    idle = section(text, "Idle")
    assert idle[0].split()[:3] == ["who", "name", "level"]
    columns_line_up(idle)                              # 東京 takes four cells: still lined up
    [long_row] = [r for r in idle if "aaaa" in r]
    assert "\u2026" in long_row and long_row.index("\u2026") == 4 + MAX_TEXT_COLUMN - 1   # cut, not spilled
    assert all(not line.endswith(" ") for line in text.splitlines())


# ------------------------------------------------------------------------------------ lapsed activation
def test_a_lapsed_activation_waits_on_people_with_the_letters_cost_in_the_summary(tmp_path: Path) -> None:
    sb = ["--backend", f"sandbox:{tmp_path / 'sb.db'}"]
    conf = tmp_path / "org.yaml"
    conf.write_text(f'version: 1\norganisation: {{kvk: "{KVK}", name: Acme}}\nusers:\n' + ADMIN
                    + "  - {email: late@acme.nl, name: Late, role: gebruiker, level: EH2}\n")
    assert invoke("apply", str(conf), "--auto-approve", *sb)[0] == 0
    assert invoke("sandbox", "approve", "--all", *sb)[0] == 0
    assert invoke("sandbox", "clock", "advance", "31d", *sb)[0] == 0          # the 30 days pass (R5)
    code, out, _ = invoke("drift", str(conf), *sb)
    assert "resend_invitation" not in out and "Drift (changed outside git)" not in out
    [row] = [r for r in section(out, "Waiting on people")[2:]]
    assert row.split()[:3] == ["late@acme.nl", "activation", "lapsed"]
    assert "a new activation letter is needed (R5): costs money, amount not printed" in row
    assert "1 waiting on people (1 new activation letter: costs money, amount not printed)" in out
    assert code == 0                                            # waiting on people is not drift

    tariffs = tmp_path / "tariffs.yaml"
    tariffs.write_text("activation_letter: 12.50\n")
    code, out, _ = invoke("drift", str(conf), *sb, "--tariffs", str(tariffs), "--format", "json")
    data = json.loads(out)
    assert data["summary"]["activation_letters"] == 1 and data["summary"]["activation_letters_cost"] == 12.5
    assert data["summary"]["drift"] == 0
    [waiting] = data["organisations"][0]["waiting"]
    assert waiting["what"] == "activation lapsed" and "EUR 12.50" in waiting["detail"]
    code, out, _ = invoke("drift", str(conf), *sb, "--tariffs", str(tariffs), "--format", "markdown")
    assert "(1 new activation letter: EUR 12.50)" in out.splitlines()[0]


def test_the_letter_cost_comes_from_the_tariffs_and_counts_per_letter(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.means("gone@acme.nl", status=Status.ACTIVATIE_VERLOPEN)
    b.means("lost@acme.nl", status=Status.ACTIVATIE_VERLOPEN)
    users = "".join(f"  - {{email: {e}@acme.nl, name: {e}, role: gebruiker, level: EH3, second_factor: {{type: otp}}}}\n"
                    for e in ("gone", "lost"))
    desired = config(tmp_path, "users:\n" + ADMIN + users)
    plan = make_plan(PlanInput(desired=[desired], actual=b.world, today=TODAY, actors={KVK: "admin"}, revisions={KVK: 7}))
    report = build_report(plan, b.world, [desired], TODAY, tariffs=Tariffs(activation_letter=10.0))
    assert report.summary()["activation_letters_cost"] == 20.0
    assert "(2 new activation letters: EUR 20.00)" in render_text(report)
    assert [d.action for d in report.organisations[0].drift] == []


# ------------------------------------------------------------------------------------------ who and when
def event(n: int, action: str, target: str | tuple[str, ...], actor: str = "admin", day: str = "2026-11-01",
          outcome: str = "ok") -> RemoteEvent:
    return RemoteEvent(str(n), dt.datetime.fromisoformat(f"{day}T10:00:00+00:00"), dt.date.fromisoformat(day),
                       actor, action, target, outcome, None, None)


def test_the_trail_picks_the_latest_successful_event_on_the_same_means_and_service() -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.means("x@acme.nl")
    tender, asbest = CAT["rvo/tenderned"].uuid, CAT["ienw/asbestvolgsysteem"].uuid
    trail = Trail.of([
        event(1, "grant", f"1 means x 1 services: x x {tender}", day="2026-10-01"),
        event(2, "revoke", ("x", tender), actor="x", day="2026-10-05"),
        event(3, "revoke", f"1 means x 1 services: x x {asbest}", day="2026-10-09"),      # another service
        event(4, "revoke", f"1 means x 1 services: x x {tender}", day="2026-10-10", outcome="refused"),
        event(5, "change_level", "x", day="2026-10-20"),                                    # another kind
    ], b.world)
    got = trail.attribute(Match("grant", means_id="x", email="x@acme.nl", services=frozenset({tender})))
    assert (got.by, got.on) == ("x@acme.nl", dt.date(2026, 10, 5))
    assert trail.attribute(Match("change_level", means_id="x")).on == dt.date(2026, 10, 20)
    assert trail.attribute(Match("change_role", means_id="x")).by == "unknown"
    clock = Trail.of([event(1, "authorisation_expired", f"x/{tender}", actor="clock", day="2026-11-02")], b.world)
    assert clock.attribute(Match("grant", means_id="x", services=frozenset({tender}))).by.startswith("time")
    assert clock.idle_since("x") == (dt.date(2026, 11, 2), "its last authorisation ended")


def test_without_a_trail_who_and_when_are_unknown(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.means("x@acme.nl", "beheerder")
    report = report_for(tmp_path, b, "users:\n" + ADMIN
                        + "  - {email: x@acme.nl, name: X, role: gebruiker, level: EH3, second_factor: {type: otp}}\n")
    [item] = report.organisations[0].drift
    assert (item.action, item.changed_by, item.changed_on) == ("change_role", "unknown", None)
    assert report.organisations[0].needs_trail


def events_read(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT SUM(count) FROM request_counts WHERE route LIKE '%/events'").fetchone()
    return int(row[0] or 0)


def converge(sb: list[str], conf: Path) -> None:
    for step in (("apply", str(conf), "--auto-approve"), ("sandbox", "approve", "--all"),
                 ("sandbox", "activate", "--all"), ("apply", str(conf), "--auto-approve")):
        assert invoke(*step, *sb)[0] == 0, step


def test_drift_names_the_admin_who_changed_it_and_the_backends_day(tmp_path: Path) -> None:
    db = tmp_path / "sb.db"
    sb = ["--backend", f"sandbox:{db}"]
    converge(sb, EXAMPLE)
    code, out, _ = invoke("drift", str(EXAMPLE), *sb)
    assert code == 0 and events_read(db) == 0                   # in sync: the trail is not read (cost)
    assert invoke("sandbox", "clock", "advance", "5d", *sb)[0] == 0

    async def by_hand() -> str:                  # the other beheerder, with a token of their own
        async with open_backend(sb[1], require_token=False) as client:
            controls = SandboxControls(client)
            everyone = await controls.means(kvk="99966564")
            devries = next(m for m in everyone if m.email == "m.devries@ketelaarklip.nl")
            yilmaz = next(m for m in everyone if m.email == "s.yilmaz@ketelaarklip.nl")
            other = client.with_token(await controls.create_token(devries.id))
            await other.change_role("99966564", yilmaz.id, "beheerder")
            return (await controls.today()).isoformat()
    day = anyio.run(by_hand)

    code, out, _ = invoke("drift", str(EXAMPLE), *sb)
    assert code == 2 and events_read(db) == 1                   # one page of events, once
    block = section(out, "Drift (changed outside git)")
    columns_line_up(block)
    [row] = block[2:]
    assert row.split() == ["change_role", "s.yilmaz@ketelaarklip.nl", "gebruiker", "beheerder",
                           "m.devries@ketelaarklip.nl", day]
    code, out, _ = invoke("drift", str(EXAMPLE), *sb, "--format", "json")
    [item] = json.loads(out)["organisations"][0]["drift"]
    assert (item["changed_by"], item["changed_on"]) == ("m.devries@ketelaarklip.nl", day)
    code, out, _ = invoke("drift", str(EXAMPLE), *sb, "--format", "markdown")
    assert "| changed by | on |" in out and f"| m.devries@ketelaarklip.nl | {day} |" in out
    page = tmp_path / "drift.html"
    assert invoke("drift", str(EXAMPLE), *sb, "--format", "html", "--out", str(page))[0] == 2
    assert f"<td>m.devries@ketelaarklip.nl</td><td>{day}</td>" in page.read_text()


# ------------------------------------------------------------------------------------------------ idle
IDLE_CONFIG = f"""\
version: 1
organisation: {{kvk: "{KVK}", name: Acme}}
policy: {{idle_after: IDLE}}
users:
{ADMIN.rstrip()[:-1]}, authorisations: [{{service: rvo/tenderned, until: rolling}}]}}
  - {{email: boss@acme.nl, name: Boss, role: beheerder, level: EH3, second_factor: {{type: otp}}}}
  - {{email: idle@acme.nl, name: Idle, role: gebruiker, level: EH2}}
  - {{email: busy@acme.nl, name: Busy, role: gebruiker, level: EH2,
     authorisations: [{{service: rvo/tenderned, until: rolling}}]}}
"""


def test_idle_means_are_listed_with_their_yearly_cost_after_idle_after(tmp_path: Path) -> None:
    db = tmp_path / "sb.db"
    sb = ["--backend", f"sandbox:{db}"]
    conf = tmp_path / "org.yaml"
    conf.write_text(IDLE_CONFIG.replace("IDLE", "90d"))
    converge(sb, conf)
    code, out, _ = invoke("drift", str(conf), *sb, "--format", "json")
    assert code == 0 and json.loads(out)["organisations"][0]["idle"] == [] and events_read(db) == 0
    activated = json.loads(out)["today"]
    assert invoke("sandbox", "clock", "advance", "100d", *sb)[0] == 0

    code, out, _ = invoke("drift", str(conf), *sb, "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["in_sync"] is True                # a saving to consider, not drift
    assert data["organisations"][0]["idle"] == [{
        "who": "idle@acme.nl", "name": "Idle", "level": "EH2", "since": activated, "since_what": "activated",
        "days": 100, "yearly_cost": 13.0,
        "note": "a saving to consider: remove it from the config (or give it work); never removed automatically"}]
    assert data["summary"]["idle"] == 1 and data["summary"]["idle_yearly_cost"] == 13.0
    assert events_read(db) == 1                                 # the activation date is in the trail

    code, out, _ = invoke("drift", str(conf), *sb)
    assert "1 idle (EUR 13.00 a year to consider)" in out
    block = section(out, "Idle")
    columns_line_up(block)
    assert block[2].split()[:6] == ["idle@acme.nl", "Idle", "EH2", activated, "(activated)", "100"]
    assert "boss@acme.nl" not in out                            # a beheerder manages: no authorisation needed
    code, out, _ = invoke("drift", str(conf), *sb, "--format", "markdown")
    assert "**Idle (active, no authorisations for longer than idle_after: a saving to consider)** (1)" in out
    assert "| idle@acme.nl | Idle | EH2 |" in out and "| EUR 13.00 |" in out
    page = tmp_path / "drift.html"
    assert invoke("drift", str(conf), *sb, "--format", "html", "--out", str(page))[0] == 0
    html = page.read_text()
    assert '<tr class="idle"><td>idle@acme.nl</td>' in html and "<td>EUR 13.00</td>" in html
    assert "<style>" in html and "<script>" in html and not re.search(r"(src|href)=|https?://|@import", html)

    conf.write_text(IDLE_CONFIG.replace("IDLE", "120d"))        # a longer window: not idle yet
    code, out, _ = invoke("drift", str(conf), *sb, "--format", "json")
    assert json.loads(out)["organisations"][0]["idle"] == []
    conf.write_text(IDLE_CONFIG.replace("IDLE", "90"))          # same format as renew_before
    code, _, err = invoke("validate", str(conf))
    assert code == 1 and "idle_after" in err + _


def test_an_authorisation_that_ended_recently_is_not_idle_though_the_means_is_old(tmp_path: Path) -> None:
    sb = ["--backend", f"sandbox:{tmp_path / 'sb.db'}"]
    conf = tmp_path / "org.yaml"
    ends = (dt.date.today() + dt.timedelta(days=95)).isoformat()
    conf.write_text(IDLE_CONFIG.replace("IDLE", "90d").replace(
        "[{service: rvo/tenderned, until: rolling}]}\n", f"[{{service: rvo/tenderned, until: {ends}}}]}}\n"))
    assert f"busy@acme.nl, name: Busy, role: gebruiker, level: EH2,\n     authorisations: [{{service: " \
           f"rvo/tenderned, until: {ends}}}]}}" in conf.read_text()
    converge(sb, conf)
    assert invoke("sandbox", "clock", "advance", "100d", *sb)[0] == 0   # busy's authorisation ended 5 days ago
    code, out, _ = invoke("drift", str(conf), *sb, "--format", "json")
    idle = {i["who"]: i for i in json.loads(out)["organisations"][0]["idle"]}
    assert set(idle) == {"idle@acme.nl"}, idle


def test_a_trail_that_cannot_be_read_leaves_who_unknown_with_a_note(tmp_path: Path) -> None:
    sb = ["--backend", f"sandbox:{tmp_path / 'sb.db'}"]
    conf = tmp_path / "org.yaml"
    conf.write_text(IDLE_CONFIG.replace("IDLE", "90d"))
    converge(sb, conf)

    async def as_a_gebruiker() -> tuple[object, list[str]]:    # no admin here: the backend refuses the events
        async with open_backend(sb[1], require_token=False) as client:
            controls = SandboxControls(client)
            busy = next(m for m in await controls.means(kvk=KVK) if m.email == "busy@acme.nl")
            notes: list[str] = []
            trail = await read_trail(client.with_token(await controls.create_token(busy.id)), KVK,
                                     World(bundled_catalogue()), notes)
            return trail, notes
    trail, notes = anyio.run(as_a_gebruiker)
    assert trail is None
    assert len(notes) == 1 and notes[0].startswith(f"{KVK}: the event trail could not be read (")
    assert notes[0].endswith("who changed what is unknown")


def test_a_lapsed_activation_of_a_means_not_in_the_config_buys_no_letter(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.means("zed@acme.nl", status=Status.ACTIVATIE_VERLOPEN)          # made by hand, never declared
    desired = config(tmp_path, "users:\n" + ADMIN)
    plan = make_plan(PlanInput(desired=[desired], actual=b.world, today=TODAY, actors={KVK: "admin"}, revisions={KVK: 7}))
    report = build_report(plan, b.world, [desired], TODAY, tariffs=Tariffs(activation_letter=10.0))
    [waiting] = report.organisations[0].waiting
    assert waiting.who == "zed@acme.nl" and waiting.what == "activation lapsed, not in the config"
    assert "no new activation letter is requested" in waiting.detail and "next apply requests it" not in waiting.detail
    assert report.summary()["activation_letters"] == 0 and report.summary()["activation_letters_cost"] == 0.0
