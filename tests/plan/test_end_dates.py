"""Issue #11, item 1: the specific end date wins, and a person can be time-limited (security).

The contractor in group `projects` (rolling) with a personal `until: 2027-03-01` gets 2027-03-01, not five
years; a personal date in the past revokes what a group grants; a person-level `until` caps every authorisation
of that person and schedules the means' own end (R14, terminate on a date). Each case goes through validate,
plan and two applies with approval and activation between, and ends with the exact dates in the backend.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from reconciler.config.effective import effective_authorisations
from reconciler.config.models import ROLLING, Authorisation, Group, User
from tests.cli.test_apply_cli import Repo, invoke

TODAY = "2026-12-01"
HEAD = """\
version: 1
organisation: {kvk: "12345678", name: Acme}
groups:
  projects:
    authorisations:
      - {service: rvo/tenderned, until: rolling}
      - {service: mijn-overheid/ondernemers, until: rolling}
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}
"""
CONTRACTOR = """\
  - email: c@acme.nl
    name: Contractor
    role: gebruiker
    level: EH3
    second_factor: {type: otp}
    groups: [projects]
    authorisations:
      - {service: rvo/tenderned, until: 2027-03-01}
"""
TEMP = """\
  - email: t@acme.nl
    name: Temp
    role: gebruiker
    level: EH3
    second_factor: {type: otp}
    until: 2027-06-30
    groups: [projects]
"""


def converge(repo: Repo, config: str) -> None:
    """Two applies with the supplier's approval and the holders' activation between; then nothing is left."""
    code, out, err = repo.apply(config)
    assert code == 0, out + err
    repo.settle()
    code, out, err = repo.apply(config)
    assert code == 0, out + err
    code, out, _ = repo.run("plan", config)
    assert code == 0, out


def backend(repo: Repo) -> dict[str, Any]:
    """The organisation as the backend has it: per e-mail the end dates per service and the scheduled end."""
    code, out, _ = repo.run("report", "access", str(repo.tmp / "org.yaml"), "--format", "csv")
    assert code == 0
    rows = [line.lstrip("\ufeff").split(",") for line in out.strip().splitlines()]
    head = rows[0]
    people: dict[str, Any] = {}
    for row in rows[1:]:
        rec = dict(zip(head, row))
        person = people.setdefault(rec["person"], {"services": {}, "ends": rec["means ends"] or None})
        if rec["service"]:
            person["services"][rec["service"]] = rec["end date"]
    return people


def start(tmp_path: Path, users: str) -> tuple[Repo, str]:
    repo = Repo(tmp_path)
    assert repo.run("sandbox", "clock", "set", TODAY)[0] == 0
    return repo, repo.config(HEAD + users)


# ------------------------------------------------------------------------------------------- the rule
def _user(**extra: Any) -> User:
    return User(**{"email": "c@acme.nl", "name": "C", "role": "gebruiker", "level": "EH3", "groups": ("projects",),
                   **extra})


GROUPS = {"projects": Group(authorisations=(Authorisation("rvo/tenderned", ROLLING),)),
          "more": Group(authorisations=(Authorisation("rvo/tenderned", dt.date(2028, 1, 1)),))}


def test_the_persons_own_entry_decides_earlier_or_later() -> None:
    earlier = effective_authorisations(_user(authorisations=(Authorisation("rvo/tenderned", dt.date(2027, 3, 1)),)),
                                       GROUPS)["rvo/tenderned"]
    assert earlier.until == dt.date(2027, 3, 1) and earlier.overrides and "group 'projects' says rolling" in earlier.note()
    same = effective_authorisations(_user(authorisations=(Authorisation("rvo/tenderned", ROLLING),)), GROUPS)
    assert same["rvo/tenderned"].until == ROLLING and same["rvo/tenderned"].note() == ""


def test_groups_give_the_latest_and_the_persons_until_caps_everything() -> None:
    user = _user(groups=("more", "projects"), until=dt.date(2027, 6, 30),
                 authorisations=(Authorisation("uwv/werkgeversportaal", dt.date(2029, 1, 1)),))
    got = effective_authorisations(user, GROUPS)
    assert {k: e.until for k, e in got.items()} == {"rvo/tenderned": dt.date(2027, 6, 30),
                                                    "uwv/werkgeversportaal": dt.date(2027, 6, 30)}
    assert got["rvo/tenderned"].capped_from == ROLLING          # the later of the two groups, then capped
    assert got["uwv/werkgeversportaal"].capped_from == dt.date(2029, 1, 1)
    assert "capped by the person's until (was rolling)" in got["rvo/tenderned"].note()


# ---------------------------------------------------------------------------------- end to end
def test_the_contractor_keeps_the_personal_date_not_the_groups_five_years(tmp_path: Path) -> None:
    repo, config = start(tmp_path, CONTRACTOR)
    code, out, err = invoke("validate", config, "--today", TODAY)
    assert code == 0
    assert ("org.yaml:17:41: note[override]: rvo/tenderned: this entry decides for c@acme.nl (group 'projects' "
            "gives rolling); until 2027-03-01") in out + err
    assert "1 note in 1 file" in out + err
    repo.apply(config)
    repo.settle()
    code, out, _ = repo.run("plan", config)
    assert "+ grant  rvo/tenderned until 2027-03-01; note: rvo/tenderned: the person's own entry decides (group " \
           "'projects' says rolling)" in out
    assert "until 2031-12-01" in out                                       # the other group service: five years
    converge(repo, config)
    assert backend(repo)["c@acme.nl"] == {"services": {"rvo/tenderned": "2027-03-01",
                                                       "mijn-overheid/ondernemers": "2031-12-01"}, "ends": None}


def test_a_personal_date_in_the_past_takes_away_what_the_group_grants(tmp_path: Path) -> None:
    repo, config = start(tmp_path, CONTRACTOR.replace("until: 2027-03-01", "until: rolling"))
    converge(repo, config)
    assert backend(repo)["c@acme.nl"]["services"]["rvo/tenderned"] == "2031-12-01"
    config = repo.config(HEAD + CONTRACTOR.replace("until: 2027-03-01", "until: 2026-11-01"))
    code, out, err = invoke("validate", config, "--today", TODAY)
    assert code == 0 and "will be revoked" in out + err
    assert "this entry decides for c@acme.nl (group 'projects' gives rolling); it is revoked" in out + err
    code, out, _ = repo.run("plan", config)
    assert code == 2 and "- revoke  rvo/tenderned" in out
    converge(repo, config)
    assert backend(repo)["c@acme.nl"]["services"] == {"mijn-overheid/ondernemers": "2031-12-01"}


def test_a_person_level_until_caps_group_dates_and_schedules_the_means_end(tmp_path: Path) -> None:
    repo, config = start(tmp_path, TEMP)
    code, out, err = invoke("validate", config, "--today", TODAY)
    assert code == 0
    assert ("note[cap]: t@acme.nl ends on 2027-06-30: 2 authorisations end then too: rvo/tenderned (was rolling), "
            "mijn-overheid/ondernemers (was rolling)") in out + err
    code, out, _ = repo.run("plan", config)
    assert ("> terminate_means on 2027-06-30 (the person's until): the means and its authorisations end then  "
            "(deferred, R5: the end is scheduled once the backend holds the means") in out
    assert "> grant mijn-overheid/ondernemers, rvo/tenderned until 2027-06-30" in out
    converge(repo, config)
    assert backend(repo)["t@acme.nl"] == {"services": {"rvo/tenderned": "2027-06-30",
                                                       "mijn-overheid/ondernemers": "2027-06-30"},
                                          "ends": "2027-06-30"}
    # the day comes: the backend ends the means itself; the config still says so, and nothing is left to do
    assert repo.run("sandbox", "clock", "set", "2027-07-01")[0] == 0
    assert "t@acme.nl" not in backend(repo)
    code, out, _ = repo.run("plan", config)
    assert code == 0, out


def test_a_person_level_until_that_has_come_ends_the_means_even_without_prune(tmp_path: Path) -> None:
    repo, config = start(tmp_path, TEMP)
    converge(repo, config)
    config = repo.config(HEAD.replace("users:\n", "policy: {prune: false}\nusers:\n")
                         + TEMP.replace("until: 2027-06-30", "until: 2026-12-01"))
    code, out, err = invoke("validate", config, "--today", TODAY)
    assert code == 0 and "warning[R14]: until 2026-12-01 is not after today (2026-12-01): the means of t@acme.nl " \
                         "ends now" in out + err
    code, out, _ = repo.run("plan", config, "--format", "json")
    steps = [(c["action"], c["target"], c["params"].get("mode")) for c in json.loads(out)["organisations"][0]["changes"]]
    assert ("terminate_means", "t@acme.nl", "now") in steps
    code, out, err = repo.apply(config)
    assert code == 0, out + err
    assert "t@acme.nl" not in backend(repo)
    assert repo.run("plan", config)[0] == 0


def test_leaving_the_persons_until_out_changes_nothing_for_others(tmp_path: Path) -> None:
    repo, config = start(tmp_path, CONTRACTOR + TEMP)
    converge(repo, config)
    people = backend(repo)
    assert people["admin@acme.nl"]["ends"] is None and people["c@acme.nl"]["ends"] is None
    assert people["c@acme.nl"]["services"]["mijn-overheid/ondernemers"] == "2031-12-01"


def test_a_scheduled_end_that_differs_from_the_config_is_manual(tmp_path: Path) -> None:
    repo, config = start(tmp_path, TEMP)
    converge(repo, config)
    config = repo.config(HEAD + TEMP.replace("until: 2027-06-30", "until: 2027-05-31"))
    code, out, _ = repo.run("plan", config)
    assert code == 2 and "its termination on 2027-06-30 is scheduled and cannot be withdrawn or moved through the " \
                         "backend; the config says 2027-05-31" in out


def test_a_hand_grant_of_what_the_config_revokes_with_a_past_date_is_drift(tmp_path: Path) -> None:
    """The config's past date revokes a service a group gives; someone grants it back by hand. That is a change
    outside git (drift, exit 2), not the calendar's doing."""
    from reconciler.domain.catalogue import bundled_catalogue
    from tests.importer.common import Repo as ActingRepo

    repo, config = start(tmp_path, CONTRACTOR.replace("until: 2027-03-01", "until: 2026-11-01"))
    converge(repo, config)
    assert repo.run("drift", config)[0] == 0
    uuid = bundled_catalogue()["rvo/tenderned"].uuid
    acting = ActingRepo(tmp_path, dt.date.fromisoformat(TODAY))
    means_id = acting.means_id("12345678", "c@acme.nl")
    acting.act("12345678", lambda client: client.grant("12345678", [means_id], [uuid],
                                                       end_date=dt.date(2030, 1, 1)))
    code, out, _ = repo.run("drift", config, "--format", "json")
    assert code == 2, out
    [org] = json.loads(out)["organisations"]
    assert [(d["action"], d["target"]) for d in org["drift"]] == [("revoke", "c@acme.nl rvo/tenderned")]


def test_a_rolling_person_until_is_one_clear_error(tmp_path: Path) -> None:
    repo, config = start(tmp_path, TEMP.replace("until: 2027-06-30", "until: rolling"))
    code, out, err = invoke("validate", config, "--today", TODAY)
    assert code == 1 and "until takes a date as YYYY-MM-DD here, not `rolling`: a person's until is the end of a " \
                         "contract" in out + err
    assert "1 error," in out + err
