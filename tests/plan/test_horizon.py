"""The plan's horizon (`valid_until`: the first day on which time alone changes the plan) and what deciding
end dates costs at scale (issue #15: the planner decides each (until, held date) pair once, not per
authorisation, and writes a horizon reason only for a day earlier than the one kept)."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.plan import planner
from reconciler.plan.desired import DesiredOrg

from .conftest import TODAY, Backend, PlanFn

ADMIN = """\
users:
  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}
"""
FAR = TODAY + dt.timedelta(days=3 * 365)            # a rolling end date far from its renewal window
SOON = dt.date(2027, 1, 10)
LATER = dt.date(2027, 6, 1)


def user(name: str, auths: str) -> str:
    return (f"  - {{email: {name}@acme.nl, name: {name}, role: gebruiker, level: EH3, second_factor: {{type: otp}}, "
            f"authorisations: [{auths}]}}\n")


def test_the_horizon_is_the_earliest_day_and_names_the_first_object_that_flips_then(
        plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    for name, end in (("late", LATER), ("first", SOON), ("second", SOON), ("rolls", FAR)):
        backend.auth(backend.means(f"{name}@acme.nl"), "rvo/tenderned", end)
    backend.chain("12345678", ["rvo/tenderned"], SOON)
    plan = plan_for(ADMIN + user("late", f"{{service: rvo/tenderned, until: {LATER}}}")
                    + user("first", f"{{service: rvo/tenderned, until: {SOON}}}")
                    + user("second", f"{{service: rvo/tenderned, until: {SOON}}}")
                    + user("rolls", "{service: rvo/tenderned, until: rolling}") + f"""\
chain_authorisations:
  - {{intermediary: {{kvk: "12345678"}}, services: [rvo/tenderned], until: {SOON}}}
""")
    [org] = plan.organisations
    assert not org.changes
    # the earliest day wins over an earlier-listed later one; of equal days the first object checked keeps it
    # (users in config order, then chains)
    assert org.valid_until == SOON
    assert org.valid_until_reason == f"first@acme.nl rvo/tenderned reaches its end date {SOON}"


def test_a_rolling_renewal_window_is_the_horizon_when_it_comes_first(plan_for: PlanFn, backend: Backend) -> None:
    backend.means("admin@acme.nl", "beheerder")
    backend.auth(backend.means("late@acme.nl"), "rvo/tenderned", FAR)
    backend.auth(backend.means("rolls@acme.nl"), "rvo/tenderned", FAR)
    plan = plan_for(ADMIN + user("late", f"{{service: rvo/tenderned, until: {FAR}}}")
                    + user("rolls", "{service: rvo/tenderned, until: rolling}"))
    [org] = plan.organisations
    renew = 60                                          # policy.renew_before_days, the default
    assert org.valid_until == FAR - dt.timedelta(days=renew - 1)
    assert org.valid_until_reason == (f"rolls@acme.nl rvo/tenderned enters its renewal window (renew_before {renew} "
                                      "days)")


def test_end_dates_are_decided_once_per_distinct_pair_not_per_authorisation(
        plan_for: PlanFn, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    backend.means("admin@acme.nl", "beheerder")
    keys = ("rvo/tenderned", "uwv/werkgeversportaal", "aaenhunze/brp-uittreksel")
    body = ADMIN
    for i in range(40):
        mid = backend.means(f"u{i}@acme.nl")
        for key in keys:
            backend.auth(mid, key, FAR)
        body += user(f"u{i}", ", ".join(f"{{service: {k}, until: rolling}}" for k in keys))
    calls: list[tuple[object, object]] = []
    real = planner.target_end

    def counted(until, actual, today, renew_before):  # type: ignore[no-untyped-def]
        calls.append((until, actual))
        return real(until, actual, today, renew_before)

    monkeypatch.setattr(planner, "target_end", counted)
    plan = plan_for(body)
    assert not plan.has_work
    assert len(calls) == len(set(calls)) == 1          # 120 authorisations, one (rolling, FAR) pair


def test_the_config_s_beheerders_are_listed_once_per_organisation(
        plan_for: PlanFn, backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    backend.means("admin@acme.nl", "beheerder")
    for i in range(5):
        backend.means(f"gone{i}@acme.nl")              # not in the config: terminated (prune), each with a hint
    calls: list[int] = []
    real = DesiredOrg.admin_emails

    def counted(self: DesiredOrg) -> list[str]:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(DesiredOrg, "admin_emails", counted)
    plan = plan_for("policy: {prune: true, max_removals: 100%}\n" + ADMIN)
    assert [c.action.value for c in plan.changes] == ["terminate_means"] * 5
    assert len(calls) == 1
