"""A planned change as the rules' operation: what the simulator checks, and what tests apply to a World."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reconciler.config.models import MeansType, Role, SecondFactorType, Subscription
from reconciler.domain import rules
from reconciler.domain.levels import Level
from reconciler.plan.model import Action, Change


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _factor(value: str | None) -> SecondFactorType | None:
    return SecondFactorType(value) if value else None


def operation_for(change: Change, new_means_id: str = "") -> Any:
    """The `rules` operation a change performs; `new_means_id` names the means a request creates."""
    p, kvk = change.params, change.kvk
    match change.action:
        case Action.REQUEST_MEANS:
            return rules.RequestMeans(kvk, new_means_id, p["email"], p["name"], Role(p["role"]), Level(p["level"]),
                                      MeansType(p["type"]), _factor(p.get("second_factor")), p.get("phone"),
                                      Subscription(p["subscription"]))
        case Action.LINK_MEANS:
            return rules.LinkMeans(kvk, p["means_id"], Role(p["role"]), Subscription(p["subscription"]))
        case Action.CHANGE_ROLE:
            return rules.ChangeRole(kvk, p["means_id"], Role(p["role"]))
        case Action.CHANGE_LEVEL:
            return rules.ChangeLevel(kvk, p["means_id"], Level(p["level"]), _factor(p.get("second_factor")),
                                     p.get("phone"))
        case Action.CHANGE_TYPE:
            return rules.ChangeType(kvk, p["means_id"], MeansType(p["type"]), Subscription(p["subscription"]))
        case Action.CHANGE_PHONE:
            return rules.ChangePhone(kvk, p["means_id"], p["phone"])
        case Action.CHANGE_EMAIL:
            return rules.ChangeEmail(kvk, p["means_id"], p["email"])
        case Action.RESEND_INVITATION:
            return rules.ResendInvitation(kvk, p["means_id"])
        case Action.TERMINATE_MEANS:
            return rules.Terminate(kvk, p["means_id"], p.get("mode", "now"), _date(p.get("date")))
        case Action.GRANT:
            return rules.Grant(kvk, tuple(p["means_ids"]), tuple(p["services"]), _date(p.get("end_date")))
        case Action.SET_END_DATE:
            end = _date(p["end_date"])
            assert end is not None
            return rules.SetEndDate(kvk, tuple(p["means_ids"]), tuple(p["services"]), end)
        case Action.REVOKE:
            return rules.Revoke(kvk, tuple(p["means_ids"]), tuple(p["services"]))
        case Action.ISSUE_CHAIN:
            return rules.IssueChain(kvk, p["intermediary_kvk"], tuple(p["services"]), _date(p.get("end_date")),
                                    p.get("name"))
        case Action.SET_CHAIN_END_DATE:
            end = _date(p["end_date"])
            assert end is not None
            return rules.SetChainEndDate(kvk, p["intermediary_kvk"], end)
        case Action.REMOVE_INTERMEDIARY:
            return rules.RemoveIntermediary(kvk, p["intermediary_kvk"])
    raise ValueError(f"unknown action {change.action}")  # pragma: no cover
