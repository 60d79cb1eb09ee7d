"""The drift report: drift (what a hand changed), expiring (within renew_before), waiting on people; pure
builder on hand-made states, and `reconciler drift` on the embedded sandbox in every format."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import anyio
from click.testing import CliRunner

from reconciler.backend.session import open_session
from reconciler.cli.main import cli
from reconciler.config.loader import load_paths
from reconciler.domain.state import Pending, PendingKind, Status
from reconciler.domain.levels import Level
from reconciler.drift.report import build_report
from reconciler.plan.planner import PlanInput, make_plan
from reconciler.render.drift import render_html, render_markdown

from tests.plan.conftest import CAT, KVK, TODAY, Backend, config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "org.yaml"
ADMIN = "  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}\n"


def report_for(tmp_path: Path, backend: Backend, body: str, today: dt.date = TODAY) -> Any:
    desired = config(tmp_path, body)
    plan = make_plan(PlanInput(desired=[desired], actual=backend.world, today=today, actors={KVK: "admin"},
                               revisions={KVK: 7}))
    return build_report(plan, backend.world, [desired], today)


def test_hand_changes_are_drift_with_expected_and_actual(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.means("x@acme.nl", "beheerder", level="EH2+")                 # made admin and downgraded by hand
    b.auth("x", "rvo/tenderned", dt.date(2030, 1, 1))                # re-dated by hand
    report = report_for(tmp_path, b, "users:\n" + ADMIN + """\
  - {email: x@acme.nl, name: X, role: gebruiker, level: EH3, second_factor: {type: otp},
     authorisations: [{service: rvo/tenderned, until: 2029-01-01}]}
""")
    [org] = report.organisations
    got = {(d.action, d.expected, d.actual) for d in org.drift}
    assert ("change_level", "EH3", "EH2+") in got
    [demotion] = [d for d in org.drift if d.action == "change_role"]     # waits for the level change (R6)
    assert demotion.expected == "beheerder -> gebruiker" and "the change waits (R6" in demotion.actual
    assert ("set_end_date", "until 2029-01-01", "until 2030-01-01") in got
    assert not org.in_sync and not report.in_sync


def test_what_ends_within_renew_before_is_expiring_not_drift(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.auth("admin", "rvo/tenderned", TODAY + dt.timedelta(days=30))       # rolling: the next apply renews it
    b.auth("admin", "mijn-overheid/ondernemers", TODAY + dt.timedelta(days=61))   # outside the 60-day window
    b.auth("admin", "gemeente-baarn/zaaksysteem", TODAY + dt.timedelta(days=60))  # its last day
    b.chain("47474747", ["rvo/tenderned"], TODAY + dt.timedelta(days=10))
    report = report_for(tmp_path, b, "users:\n" + ADMIN.rstrip()[:-1] + """,
     authorisations: [{service: rvo/tenderned, until: rolling}, {service: mijn-overheid/ondernemers, until: rolling},
                      {service: gemeente-baarn/zaaksysteem, until: rolling}]}
chain_authorisations:
  - {intermediary: {kvk: "47474747"}, services: [rvo/tenderned], until: rolling}
""")
    [org] = report.organisations
    assert org.drift == []                                    # the renewals are the calendar's doing
    assert [(e.kind, e.what, e.days_left) for e in org.expiring] == [
        ("chain authorisation", "rvo/tenderned", 10), ("authorisation", "rvo/tenderned", 30),
        ("authorisation", "gemeente-baarn/zaaksysteem", 60)]
    assert all(e.renewal == "renewed by the next apply (rolling)" for e in org.expiring)
    assert not report.in_sync


def test_waiting_on_people_lists_approvals_activations_lapses_and_pending_changes(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.means("new@acme.nl", status=Status.WACHTEN_OP_GOEDKEURING)
    b.means("act@acme.nl", status=Status.WACHTEN_OP_ACTIVATIE, activation_deadline=dt.date(2026, 12, 1))
    b.means("gone@acme.nl", status=Status.ACTIVATIE_VERLOPEN)
    b.means("up@acme.nl", level="EH2+", pending=Pending(PendingKind.LEVEL, level=Level.EH3))
    users = "".join(f"  - {{email: {e}@acme.nl, name: {e}, role: gebruiker, level: EH3, second_factor: {{type: otp}}}}\n"
                    for e in ("new", "act", "gone", "up"))
    report = report_for(tmp_path, b, "users:\n" + ADMIN + users)
    [org] = report.organisations
    assert [(w.who, w.what, w.deadline) for w in org.waiting] == [
        ("act@acme.nl", "awaiting activation", dt.date(2026, 12, 1)), ("gone@acme.nl", "activation lapsed", None),
        ("new@acme.nl", "awaiting approval", None), ("up@acme.nl", "pending change", None)]


def test_html_is_one_self_contained_escaped_file(tmp_path: Path) -> None:
    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.means("x@acme.nl")
    b.world.means["x"] = b.world.means["x"].with_(name="<b>X</b>")
    report = report_for(tmp_path, b, "policy: {prune: false}\nusers:\n" + ADMIN)
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "<script>" in page
    assert "http://" not in page and "https://" not in page and "<b>X</b>" not in page
    assert "x@acme.nl" in page and "Unmanaged" in page and "@media print" in page
    md = render_markdown(report)
    assert "| kind | what | detail |" in md and "x@acme.nl" in md


# ------------------------------------------------------------------------------------- the command, e2e
def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_drift_on_the_sandbox_after_a_hand_change_in_every_format(tmp_path: Path) -> None:
    sb = ["--backend", f"sandbox:{tmp_path / 'sb.db'}"]
    assert invoke("apply", str(EXAMPLE), "--auto-approve", *sb)[0] == 0
    assert invoke("sandbox", "approve", "--all", *sb)[0] == 0
    assert invoke("sandbox", "activate", "--all", *sb)[0] == 0
    assert invoke("apply", str(EXAMPLE), "--auto-approve", *sb)[0] == 0
    code, out, _ = invoke("drift", str(EXAMPLE), *sb)
    assert code == 0 and "(in sync): 0 drifted, 0 expiring" in out

    async def by_hand() -> None:                 # an admin revokes an authorisation in the Beheermodule
        [org] = load_paths([str(EXAMPLE)], None).orgs
        async with open_session(sb[1], [org]) as session:
            client = session.clients["99966564"]
            smit = next(m for m in await client.list_all_means("99966564") if m.email == "a.smit@ketelaarklip.nl")
            await client.revoke("99966564", [smit.id], [CAT["uwv/werkgeversportaal"].uuid])
    anyio.run(by_hand)

    code, out, _ = invoke("drift", str(EXAMPLE), *sb, "--format", "json")
    assert code == 2
    data = json.loads(out)
    [org] = data["organisations"]
    assert data["in_sync"] is False and data["summary"]["drift"] == 1
    assert org["drift"] == [{"action": "grant", "target": "a.smit@ketelaarklip.nl uwv/werkgeversportaal",
                             "expected": f"until {org['drift'][0]['expected'][6:]}", "actual": "not held",
                             "changed_by": "j.bakker@ketelaarklip.nl", "changed_on": data["today"]}]
    page = tmp_path / "drift.html"
    code, _, err = invoke("drift", str(EXAMPLE), *sb, "--format", "html", "--out", str(page))
    assert code == 2 and "drift or expiring items found" in err
    assert "a.smit@ketelaarklip.nl uwv/werkgeversportaal" in page.read_text()
    code, out, _ = invoke("drift", str(EXAMPLE), *sb, "--format", "markdown")
    assert code == 2 and out.startswith("## Drift report") and "**Drift (changed outside git)** (1)" in out
    code, out, _ = invoke("plan", str(EXAMPLE), *sb)                 # drift is read-only: the plan still wants it
    assert code == 2 and "+ grant  uwv/werkgeversportaal" in out


def test_expiring_follows_the_backends_clock(tmp_path: Path) -> None:
    sb = ["--backend", f"sandbox:{tmp_path / 'sb.db'}"]
    for step in (("apply", str(EXAMPLE), "--auto-approve"), ("sandbox", "approve", "--all"),
                 ("sandbox", "activate", "--all"), ("apply", str(EXAMPLE), "--auto-approve")):
        assert invoke(*step, *sb)[0] == 0
    assert invoke("sandbox", "clock", "set", "2027-02-15", *sb)[0] == 0    # t.vanleeuwen's ends 2027-03-31
    code, out, _ = invoke("drift", str(EXAMPLE), *sb, "--format", "json")
    assert code == 2
    [org] = json.loads(out)["organisations"]
    assert {"kind": "authorisation", "who": "t.vanleeuwen@ketelaarklip.nl", "what": "rvo/tenderned",
            "end_date": "2027-03-31", "days_left": 44, "renewal": "ends as configured (2027-03-31)"} in org["expiring"]


def test_a_difference_only_a_person_can_make_keeps_plan_and_drift_out_of_sync(tmp_path: Path) -> None:
    """Issue #13 (INTERFACE: manual items count as differences): the e-mail of an active holder changes only
    by the holder (R11); until it has, the backend differs from git, so the nightly drift issue stays open and
    `plan` exits 2, not 0."""
    from reconciler.render.drift import render_text

    b = Backend()
    b.means("admin@acme.nl", "beheerder")
    b.means("piet@acme.nl")
    body = "users:\n" + ADMIN + "  - {email: piet@nieuw.nl, name: piet, role: gebruiker, level: EH3, " \
                                "second_factor: {type: otp}}\n"
    desired = config(tmp_path, body)
    plan = make_plan(PlanInput(desired=[desired], actual=b.world, today=TODAY, actors={KVK: "admin"},
                               revisions={KVK: 7}))
    [org_plan] = plan.organisations
    assert org_plan.changes == [] and org_plan.deferred == [] and [m.rule for m in org_plan.manual] == ["R11"]
    assert plan.has_work                                        # plan exits 2
    report = build_report(plan, b.world, [desired], TODAY)
    [org] = report.organisations
    assert org.drift == [] and org.expiring == [] and len(org.manual) == 1
    assert not org.in_sync and not report.in_sync               # drift exits 2
    assert "Drift report 2026-11-21 (MANUAL): 0 drifted, 0 expiring" in render_text(report)
