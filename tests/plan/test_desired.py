"""desired_org: what each person gets is resolved once per (groups, own entries, until) combination and shared by
the people who have it; a person who differs in any one of the three gets their own answer."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from reconciler.config.models import ROLLING
from tests.plan.conftest import config, uuid

BODY = """\
groups:
  projects:
    authorisations:
      - {service: rvo/tenderned, until: rolling}
      - {service: mijn-overheid/ondernemers, until: 2028-06-30}
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}
  - {email: a@acme.nl, name: A, role: gebruiker, level: EH3, second_factor: {type: otp}, groups: [projects]}
  - {email: b@acme.nl, name: B, role: gebruiker, level: EH3, second_factor: {type: otp}, groups: [projects]}
  - {email: c@acme.nl, name: C, role: gebruiker, level: EH3, second_factor: {type: otp}, groups: [projects],
     until: 2027-03-01}
  - {email: d@acme.nl, name: D, role: gebruiker, level: EH3, second_factor: {type: otp}, groups: [projects],
     authorisations: [{service: rvo/tenderned, until: 2027-05-01}]}
  - {email: e@acme.nl, name: E, role: gebruiker, level: EH3, second_factor: {type: otp}, groups: [projects],
     authorisations: [{service: rvo/tenderned, until: 2027-05-01}]}
"""
TENDERNED, ONDERNEMERS = uuid("rvo/tenderned"), uuid("mijn-overheid/ondernemers")


def _dates(wanted: dict[str, object]) -> dict[str, object]:
    return {key: auth.until for key, auth in wanted.items()}  # type: ignore[attr-defined]


def test_people_with_the_same_groups_entries_and_until_get_equal_but_separate_answers(tmp_path: Path) -> None:
    users = config(tmp_path, BODY).users
    a, b = users["a@acme.nl"].authorisations, users["b@acme.nl"].authorisations
    assert _dates(a) == _dates(b) == {TENDERNED: ROLLING, ONDERNEMERS: dt.date(2028, 6, 30)}
    assert a is not b                          # one person's dict is never another's
    a.clear()
    assert _dates(b) == {TENDERNED: ROLLING, ONDERNEMERS: dt.date(2028, 6, 30)}
    assert _dates(users["d@acme.nl"].authorisations) == _dates(users["e@acme.nl"].authorisations)


def test_a_person_who_differs_in_until_or_own_entries_gets_their_own_dates(tmp_path: Path) -> None:
    users = config(tmp_path, BODY).users
    capped = users["c@acme.nl"].authorisations                # the person's until caps the group's dates
    assert _dates(capped) == {TENDERNED: dt.date(2027, 3, 1), ONDERNEMERS: dt.date(2027, 3, 1)}
    assert "capped by the person's until" in capped[TENDERNED].note
    own = users["d@acme.nl"].authorisations                   # the person's own entry decides
    assert _dates(own) == {TENDERNED: dt.date(2027, 5, 1), ONDERNEMERS: dt.date(2028, 6, 30)}
    assert "the person's own entry decides" in own[TENDERNED].note
    assert users["admin@acme.nl"].authorisations == {}
