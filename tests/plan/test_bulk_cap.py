"""A bulk step never exceeds the backend's cap of means x services pairs per request (R10, issue #10)."""

from __future__ import annotations

import datetime as dt

from reconciler.domain.rules import MAX_BULK_PAIRS
from reconciler.plan.model import Action

from .conftest import Backend, PlanFn

FIVE = ["mijn-overheid/ondernemers", "rvo/tenderned", "uwv/werkgeversportaal", "ienw/asbestvolgsysteem",
        "wij-techniek/account-verificatie"]


def _group_config(users: int) -> str:
    services = "".join(f"      - {{service: {key}, until: 2028-01-01}}\n" for key in FIVE)
    body = "groups:\n  everyone:\n    authorisations:\n" + services + "users:\n"
    body += ("  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}\n")
    body += "".join(f"  - {{email: u{i}@acme.nl, name: U{i}, role: gebruiker, level: EH3, second_factor: {{type: otp}}, "
                    "groups: [everyone]}\n" for i in range(users))
    return body


def test_3000_users_in_one_group_of_5_services_plan_bulk_steps_within_the_cap(plan_for: PlanFn,
                                                                              backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    for i in range(3000):
        backend.means(f"u{i}@acme.nl")
    plan = plan_for(_group_config(3000))
    grants = [c for c in plan.changes if c.action is Action.GRANT]
    sizes = [len(c.params["means_ids"]) * len(c.params["services"]) for c in grants]
    assert len(grants) >= 2 and max(sizes) <= MAX_BULK_PAIRS, sizes
    granted = [m for c in grants for m in c.params["means_ids"]]
    assert sorted(granted) == sorted(f"u{i}" for i in range(3000))      # every user once, none twice
    assert {c.params["end_date"] for c in grants} == {dt.date(2028, 1, 1).isoformat()}
    assert plan.api_calls >= len(grants) and len({c.id for c in grants}) == len(grants)
