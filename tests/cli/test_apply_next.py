"""After an apply, what happens next (issue 11): which requests wait for the supplier's approval, which
activations wait for each holder (with the deadline), the manual steps and who must do them, the deferred
steps, and that the next apply finishes the job; in the text report, the JSON report and `--summary FILE`
(markdown for the CI job summary). A saved plan carries its removals' before/after and is applied as saved."""

from __future__ import annotations

import json
from pathlib import Path

from .test_apply_cli import ADMIN, HEAD, Repo

ANN = ("  - {email: ann@acme.nl, name: Ann, role: gebruiker, level: EH3, second_factor: {type: otp},\n"
       "     authorisations: [{service: uwv/werkgeversportaal, until: 2030-01-01}]}\n")
BOB = "  - {email: bob@acme.nl, name: Bob, role: gebruiker, level: EH4, second_factor: {type: otp}}\n"
CARL = ('  - {email: carl@acme.nl, name: Carl, role: gebruiker, level: EH3, second_factor: {type: sms, phone: '
        '"+31612345678"},\n     authorisations: [{service: uwv/werkgeversportaal, until: rolling}]}\n')
NEXT = """\
What happens next:
  Waiting for the supplier's approval (then each holder activates within 30 days, R5):
    carl@acme.nl
  Waiting for each holder to activate the means (R5):
    ann@acme.nl, by 2026-12-21
  Manual steps: a person must do them, the reconciler cannot:
    request_means bob@acme.nl: a beheerder with the level that is needed (for a link: one of both organisations) (R4: a new means at EH4 is above the acting \
admin's own level EH3; an admin with that level must request it)
  Deferred until then (2):
    grant uwv/werkgeversportaal until 2030-01-01 for ann@acme.nl (R7)
    grant uwv/werkgeversportaal until 2031-11-21 for carl@acme.nl (R7)
Run `reconciler apply` again once those are done: it carries out the deferred steps and finishes the job.
"""


def waiting_repo(tmp_path: Path) -> tuple[Repo, str]:
    """Ann requested and approved (awaiting her activation), Bob above the admin's level (manual, R4); the config
    now adds Carl, whose request this apply makes (awaiting approval)."""
    repo = Repo(tmp_path)
    assert repo.run("sandbox", "clock", "set", "2026-11-21")[0] == 0
    assert repo.apply(repo.config(HEAD + "users:\n" + ADMIN + ANN + BOB))[0] == 0
    assert repo.run("sandbox", "approve", "--all")[0] == 0
    return repo, repo.config(HEAD + "users:\n" + ADMIN + ANN + CARL + BOB)


def test_an_apply_with_deferred_and_manual_steps_says_what_happens_next(tmp_path: Path) -> None:
    repo, path = waiting_repo(tmp_path)
    summary = tmp_path / "summary.md"
    summary.write_text("## earlier step\n")
    code, out, _ = repo.apply(path, "--summary", str(summary))
    assert code == 0
    # the plan's deferred grant lines carry their end date, like a grant change does
    assert "    > grant uwv/werkgeversportaal until 2031-11-21  (deferred, R7: " in out
    assert out.endswith("Apply: 1 done, 0 failed, 0 skipped; not attempted: 2 deferred, 1 manual.\n\n" + NEXT)
    md = summary.read_text()
    assert md.startswith("## earlier step\n**Apply**: 1 done, 0 failed, 0 skipped; not attempted: 2 deferred, "
                         "1 manual.\n\n### What happens next\n")           # appended, as GitHub expects
    for line in ("**Waiting for the supplier's approval (then each holder activates within 30 days, R5)**\n\n"
                 "- carl@acme.nl\n",
                 "**Waiting for each holder to activate the means (R5)**\n\n- ann@acme.nl, by 2026-12-21\n",
                 "- request\\_means bob@acme.nl: a beheerder with the level that is needed (for a link: one of both organisations) (R4: ",
                 "- grant uwv/werkgeversportaal until 2030-01-01 for ann@acme.nl (R7)\n",
                 "- grant uwv/werkgeversportaal until 2031-11-21 for carl@acme.nl (R7)\n",
                 "Run `reconciler apply` again once those are done: it carries out the deferred steps"):
        assert line in md


def test_the_json_report_says_what_happens_next(tmp_path: Path) -> None:
    repo, path = waiting_repo(tmp_path)
    code, out, _ = repo.apply(path, "--format", "json", "-q")
    assert code == 0
    nxt = json.loads(out)["next"]
    assert [(w["who"], w["what"], w["deadline"]) for w in nxt["waiting"]] == [
        ("ann@acme.nl", "awaiting activation", "2026-12-21"), ("carl@acme.nl", "awaiting approval", None)]
    assert [(m["target"], m["rule"], m["by"]) for m in nxt["manual"]] == [
        ("bob@acme.nl", "R4", "a beheerder with the level that is needed (for a link: one of both organisations)")]
    assert [(d["person"], d["target"], d["detail"]) for d in nxt["deferred"]] == [
        ("ann@acme.nl", ["uwv/werkgeversportaal"], "until 2030-01-01"),
        ("carl@acme.nl", ["uwv/werkgeversportaal"], "until 2031-11-21")]
    assert nxt["then"].startswith("Run `reconciler apply` again once those are done")


def test_with_only_deferred_and_manual_steps_nothing_is_sent_but_the_waiting_is_said(tmp_path: Path) -> None:
    repo, path = waiting_repo(tmp_path)
    assert repo.apply(path)[0] == 0
    summary = tmp_path / "summary.md"
    code, out, _ = repo.apply(path, "--summary", str(summary))
    assert code == 0
    assert out.endswith("Nothing to apply now: only 2 deferred and 1 manual steps remain.\n\n" + NEXT)
    assert summary.read_text().startswith("**Nothing to apply now**: only 2 deferred and 1 manual steps remain.\n")
    code, out, _ = repo.apply(path, "--format", "json", "-q")
    data = json.loads(out)
    assert code == 0 and data["attempted"] is False and data["summary"]["deferred"] == 2
    assert [w["who"] for w in data["next"]["waiting"]] == ["ann@acme.nl", "carl@acme.nl"]


def test_after_the_holders_act_the_next_apply_finishes_and_says_nothing_waits(tmp_path: Path) -> None:
    repo, path = waiting_repo(tmp_path)
    assert repo.apply(path)[0] == 0
    repo.settle()
    summary = tmp_path / "summary.md"
    code, out, _ = repo.apply(path, "--summary", str(summary))
    assert code == 0 and "Apply: 2 done, 0 failed, 0 skipped; not attempted: 0 deferred, 1 manual." in out
    assert "Waiting for" not in out and "Deferred until then" not in out
    assert "    request_means bob@acme.nl: a beheerder with the level that is needed (for a link: one of both organisations)" in out   # still manual
    assert "the next plan shows what is left" in summary.read_text()


def test_a_saved_plan_with_a_termination_keeps_its_before_and_after(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    assert repo.apply(repo.config(HEAD + "users:\n" + ADMIN + ANN))[0] == 0
    repo.settle()
    assert repo.apply(repo.config(HEAD + "users:\n" + ADMIN + ANN))[0] == 0       # Ann gets her authorisation
    pruned = repo.config(HEAD + "policy: {prune: true}\nusers:\n" + ADMIN)
    plan_file = tmp_path / "plan.json"
    assert repo.run("plan", pruned, "--out", str(plan_file))[0] == 2
    data = json.loads(plan_file.read_text())
    [change] = data["organisations"][0]["changes"]
    assert change["before"]["end_dates"] == {"ann@acme.nl uwv/werkgeversportaal": "2030-01-01"}
    assert change["after"]["undo"].startswith("cannot be undone: a new means costs the request fee")
    change["before"]["end_dates"] = {}                               # a reviewer would have seen nothing lost
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    code, _, err = repo.apply("--plan", str(edited), pruned)
    assert code == 1 and "it was edited after it was made" in err and "before" in err
    code, out, _ = repo.apply("--plan", str(plan_file), pruned)
    assert code == 0 and "Apply: 1 done" in out
    assert "loses uwv/werkgeversportaal (until 2030-01-01)" in out      # the plan shown before applying


def test_a_termination_names_the_organisation_the_means_stays_linked_to_even_outside_the_config(
        tmp_path: Path) -> None:
    """Ann is linked to a second organisation (another config file); planning only the first one, pruned, her
    termination there says she stays linked to the second, which the backend's means list names (R15)."""
    repo = Repo(tmp_path)
    first = repo.config(HEAD + "users:\n" + ADMIN + ANN)
    assert repo.apply(first)[0] == 0
    repo.settle()
    second = repo.config('version: 1\norganisation: {kvk: "87654321", name: Beta}\nusers:\n' + ADMIN
                         + "  - {email: ann@acme.nl, name: Ann, role: gebruiker, level: EH3, second_factor: {type: otp}}\n",
                         name="beta.yaml")
    code, out, err = repo.apply(first, second)                         # both: the planner links Ann's means
    assert code == 0 and "+ link_means ann@acme.nl" in out, out + err
    repo.settle()                                                      # the supplier processes the link
    pruned = repo.config(HEAD + "policy: {prune: true}\nusers:\n" + ADMIN)
    code, out, _ = repo.run("plan", pruned)
    assert code == 2
    assert "        stays linked to 87654321 (not in this config): the means is terminated only here (R14)" in out
    assert "linking the means here again costs EUR 21.00 a year" in out



def test_a_new_activation_letter_is_priced_in_the_plan(tmp_path: Path) -> None:
    from tests.cli.test_apply_cli import ADMIN, HEAD, Repo

    repo = Repo(tmp_path)
    config = repo.config(HEAD + "users:\n" + ADMIN + "  - {email: late@acme.nl, name: Late, role: gebruiker, "
                                                     "level: EH2}\n")
    assert repo.apply(config)[0] == 0
    assert repo.run("sandbox", "approve", "--all")[0] == 0
    assert repo.run("sandbox", "clock", "advance", "31d")[0] == 0        # the 30 days pass (R5)
    tariffs = tmp_path / "tariffs.yaml"
    tariffs.write_text("activation_letter: 12.50\n")
    code, out, _ = repo.run("plan", config, "--tariffs", str(tariffs))
    assert code == 2 and "~ resend_invitation  the activation lapsed: a new activation letter (EUR 12.50)" in out
    assert "cost EUR 12.50 once" in out
    code, out, _ = repo.run("plan", config)
    assert "a new activation letter (costs money, amount not printed)" in out
