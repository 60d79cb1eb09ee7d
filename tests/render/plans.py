"""Hand-built plans for the renderer tests: every action with the params the planner writes, every kind of
item, nulls where the JSON allows them, and big plans for the markdown limit."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reconciler.plan.model import (
    Action, Change, Cost, Deferred, Manual, OrgPlan, Origin, Plan, Stage, Unmanaged,
)
from reconciler.plan.planner import step_id

TODAY = dt.date(2026, 11, 21)
KVK = "99966564"
OTHER_KVK = "12345678"
DIGEST = "sha256:" + "ab" * 32
UUID_A = "2b7c1f3e-0000-5000-8000-000000000001"
UUID_B = "2b7c1f3e-0000-5000-8000-000000000002"

#: For each action: (target, params, stage) as the planner writes them.
SAMPLES: dict[Action, tuple[str | list[str], dict[str, Any], Stage]] = {
    Action.REQUEST_MEANS: ("new@acme.nl", {"email": "new@acme.nl", "name": "New", "role": "beheerder",
                                           "level": "EH3", "type": "regulier", "second_factor": "sms",
                                           "phone": "+31612345678", "subscription": "1y"}, Stage.ADD),
    Action.LINK_MEANS: ("linked@acme.nl", {"means_id": "m-linked", "role": "gebruiker", "subscription": "3y"},
                        Stage.ADD),
    Action.CHANGE_ROLE: ("promoted@acme.nl", {"means_id": "m-promoted", "role": "beheerder"}, Stage.ADD),
    Action.CHANGE_LEVEL: ("upgraded@acme.nl", {"means_id": "m-upgraded", "level": "EH3", "second_factor": "otp",
                                               "phone": None}, Stage.ADD),
    Action.CHANGE_TYPE: ("tax@acme.nl", {"means_id": "m-tax", "type": "belastingdienst", "subscription": "1y"},
                         Stage.ADD),
    Action.CHANGE_PHONE: ("phone@acme.nl", {"means_id": "m-phone", "phone": "+31687654321"}, Stage.ADD),
    Action.CHANGE_EMAIL: ("renamed@acme.nl", {"means_id": "m-renamed", "email": "renamed@acme.nl"}, Stage.ADD),
    Action.RESEND_INVITATION: ("lapsed@acme.nl", {"means_id": "m-lapsed"}, Stage.ADD),
    Action.GRANT: (["a@acme.nl", "b@acme.nl"], {"means_ids": ["m-a", "m-b"], "services": [UUID_A, UUID_B],
                                                 "service_keys": ["rvo/tenderned", "algemene-bevoegdheid-3"],
                                                 "end_date": "2031-11-21"}, Stage.GRANT),
    Action.SET_END_DATE: ("a@acme.nl", {"means_ids": ["m-a"], "services": [UUID_A],
                                        "service_keys": ["rvo/tenderned"], "end_date": "2027-01-01"}, Stage.SHORTEN),
    Action.REVOKE: ("b@acme.nl", {"means_ids": ["m-b"], "services": [UUID_B],
                                  "service_keys": ["algemene-bevoegdheid-3"]}, Stage.SHORTEN),
    Action.ISSUE_CHAIN: ("47474747", {"intermediary_kvk": "47474747", "name": None, "services": [UUID_A],
                                      "service_keys": ["rvo/tenderned"], "end_date": "2029-10-14"}, Stage.GRANT),
    Action.SET_CHAIN_END_DATE: ("47474747", {"intermediary_kvk": "47474747", "end_date": "2030-01-01",
                                             "services": ["U-TENDER"], "service_keys": ["rvo/tenderned"]},
                                Stage.GRANT),
    Action.REVOKE_CHAIN: ("47474747", {"intermediary_kvk": "47474747", "services": ["U-LOON"],
                                       "service_keys": ["belastingdienst/loonaangifte"]}, Stage.SHORTEN),
    Action.TERMINATE_MEANS: ("gone@acme.nl", {"means_id": "m-gone", "mode": "now"}, Stage.REMOVE),
    Action.REMOVE_INTERMEDIARY: ("58585858", {"intermediary_kvk": "58585858"}, Stage.REMOVE),
}
ESCALATING = {Action.REQUEST_MEANS, Action.CHANGE_ROLE, Action.CHANGE_LEVEL, Action.GRANT, Action.ISSUE_CHAIN}
REMOVING = {Action.REVOKE, Action.REVOKE_CHAIN, Action.TERMINATE_MEANS, Action.REMOVE_INTERMEDIARY}


def change(action: Action, target: str | list[str] | None = None, *, kvk: str = KVK, detail: str = "",
           person: str | None = None, escalation: bool | None = None, origin: Origin | None = None,
           params: dict[str, Any] | None = None, **kw: Any) -> Change:
    sample_target, sample_params, stage = SAMPLES[action]
    target = sample_target if target is None else target
    params = dict(sample_params if params is None else params)
    return Change(id=step_id(kvk, action, target, params), kvk=kvk, action=action, target=target, stage=stage,
                  params=params, detail=detail or f"{action.value} detail", person=person,
                  removal=action in REMOVING, escalation=action in ESCALATING if escalation is None else escalation,
                  origin=origin, **kw)


def plan(*orgs: OrgPlan, warnings: list[str] | None = None, force: bool | None = None,
         compared_to: str | None = None) -> Plan:
    made = Plan(today=TODAY, config_digest=DIGEST, tool_version="0.1.0", backend="sandbox:.reconciler/sandbox.db",
                organisations=list(orgs), warnings=list(warnings or []), compared_to=compared_to)
    made.cost = Cost(once=round(sum(c.cost_once for c in made.changes), 2),
                     yearly=round(sum(c.cost_yearly for c in made.changes), 2))
    made.force_required = any(o.over_threshold for o in orgs) if force is None else force
    return made


def _person(action: Action) -> str | None:
    target = SAMPLES[action][0]
    return target if isinstance(target, str) and "@" in target else None


def every_action_plan() -> Plan:
    """One organisation with one change per action, deferred and manual steps, unmanaged objects, warnings,
    origins; and a second organisation the backend does not know (nulls)."""
    origins = [Origin.INTRODUCED, Origin.DRIFT, Origin.EXPIRY, None]
    changes = [change(action, origin=origins[i % 4], cost_once=40.0 if action is Action.REQUEST_MEANS else 0.0,
                      cost_yearly=19.95 if action is Action.ISSUE_CHAIN else 0.0, person=_person(action))
               for i, action in enumerate(Action)]
    changes[0].time_driven = True
    org = OrgPlan(kvk=KVK, name="Acme B.V.", revision=7, acting_admin="admin@acme.nl", changes=changes,
                  deferred=[Deferred(KVK, Action.GRANT, ["uwv/werkgeversportaal"], "R7",
                                     "authorisations are added only to active users", "new@acme.nl"),
                            Deferred(KVK, Action.CHANGE_LEVEL, "linked@acme.nl", "R15", "a linked means keeps its "
                                     "level", "linked@acme.nl", "EH2 -> EH3", Origin.INTRODUCED)],
                  manual=[Manual(KVK, Action.CHANGE_EMAIL, "holder@acme.nl", "R11", "the holder changes it",
                                 "holder@acme.nl"),
                          Manual(KVK, Action.REMOVE_INTERMEDIARY, "47474747", "R18", "remove it by hand")],
                  unmanaged=[Unmanaged(KVK, "means", "old@acme.nl", "gebruiker, EH3"),
                             Unmanaged(KVK, "authorisation", "old@acme.nl rvo/tenderned", "until 2027-01-01"),
                             Unmanaged(KVK, "intermediary", "69696969")],
                  warnings=["old@acme.nl: subscription is 1y in the backend, 3y in the config"],
                  removals=3, removal_limit=10, existing_objects=40)
    unknown = OrgPlan(kvk=OTHER_KVK, name="Unknown B.V.", revision=None, acting_admin=None,
                      manual=[Manual(OTHER_KVK, Action.REQUEST_MEANS, OTHER_KVK, "R16",
                                     "this organisation is not known to the backend")])
    return plan(org, unknown, warnings=["branch_number is set (R17)"], compared_to="base.yaml")


def over_threshold_plan() -> Plan:
    org = OrgPlan(kvk=KVK, name="Acme", revision=3, acting_admin="admin@acme.nl",
                  changes=[change(Action.TERMINATE_MEANS, f"u{i}@acme.nl", person=f"u{i}@acme.nl",
                                  params={"means_id": f"m{i}", "mode": "now"}) for i in range(5)],
                  removals=5, removal_limit=1, existing_objects=6)
    return plan(org)


def empty_plan() -> Plan:
    return plan()


def big_plan(orgs: int = 3, changes: int = 2000, *, escalations_every: int = 50, deferred: int = 200,
             warnings: int = 20) -> Plan:
    """`orgs` organisations with `changes` changes each (every `escalations_every`-th an escalation), deferred
    and manual steps and warnings: far more than one comment holds."""
    made = []
    for o in range(orgs):
        kvk = f"{10000000 + o:08d}"
        org = OrgPlan(kvk=kvk, name=f"Org {o} B.V.", revision=o + 1, acting_admin=f"admin@org{o}.nl")
        for i in range(changes):
            email = f"user{i:05d}@org{o}.nl"
            action = Action.REQUEST_MEANS if i % escalations_every == 0 else Action.GRANT
            params = ({"email": email, "name": f"User {i}", "role": "beheerder", "level": "EH3", "type": "regulier",
                       "second_factor": "otp", "phone": None, "subscription": "1y"}
                      if action is Action.REQUEST_MEANS else
                      {"means_ids": [f"m{i}"], "services": [UUID_A], "service_keys": ["rvo/tenderned"],
                       "end_date": "2031-11-21"})
            org.changes.append(change(action, email, kvk=kvk, person=email, params=params,
                                      detail="beheerder, EH3" if action is Action.REQUEST_MEANS
                                      else "rvo/tenderned until 2031-11-21",
                                      escalation=action is Action.REQUEST_MEANS))
        org.deferred = [Deferred(kvk, Action.GRANT, ["rvo/tenderned"], "R7", "waits for activation (R5)",
                                 f"user{i:05d}@org{o}.nl") for i in range(deferred)]
        org.manual = [Manual(kvk, Action.CHANGE_EMAIL, f"holder{i}@org{o}.nl", "R11", "the holder changes it",
                             f"holder{i}@org{o}.nl") for i in range(deferred // 10)]
        org.warnings = [f"warning {i} of org {o}" for i in range(warnings)]
        made.append(org)
    return plan(*made, warnings=[f"plan warning {i}" for i in range(warnings)])
