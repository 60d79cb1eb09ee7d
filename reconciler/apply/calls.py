"""One planned change as the one API request that makes it (the executor's only contact with the client)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reconciler.backend.client import BeheerClient
from reconciler.backend.types import MutationResult
from reconciler.plan.model import Action, Change


def path_kvk(change: Change) -> str:
    """The organisation in whose URL the request is made (its revision is the If-Match): a link is asked for
    in an organisation the means is already in (R15); everything else in the plan's own organisation."""
    if change.action is Action.LINK_MEANS and change.params.get("from_kvk"):
        return str(change.params["from_kvk"])
    return change.kvk


def means_ids(change: Change) -> list[str]:
    """The means a change acts on (none for intermediaries and for requests of a new means)."""
    p = change.params
    if "means_ids" in p:
        return list(p["means_ids"])
    return [p["means_id"]] if "means_id" in p else []


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


async def send(client: BeheerClient, change: Change, *, if_match: int | None, key: str) -> MutationResult:
    """Make the request; backend errors propagate as `BackendError` subclasses."""
    p, kvk = change.params, change.kvk
    kw: dict[str, Any] = {"if_match": if_match, "idempotency_key": key}
    match change.action:
        case Action.REQUEST_MEANS:
            return await client.request_means(kvk, email=p["email"], name=p["name"], role=p["role"], level=p["level"],
                                              type=p.get("type"), second_factor=p.get("second_factor"),
                                              phone=p.get("phone"), subscription=p.get("subscription"), **kw)
        case Action.LINK_MEANS:
            return await client.link_means(path_kvk(change), p["means_id"], to_kvk=kvk, role=p["role"],
                                           subscription=p.get("subscription"), **kw)
        case Action.CHANGE_ROLE:
            return await client.change_role(kvk, p["means_id"], p["role"], **kw)
        case Action.CHANGE_LEVEL:
            return await client.change_level(kvk, p["means_id"], p["level"], second_factor=p.get("second_factor"),
                                             phone=p.get("phone"), **kw)
        case Action.CHANGE_TYPE:
            return await client.change_type(kvk, p["means_id"], p["type"], subscription=p.get("subscription"), **kw)
        case Action.CHANGE_PHONE:
            return await client.change_phone(kvk, p["means_id"], p["phone"], **kw)
        case Action.CHANGE_EMAIL:
            return await client.change_email(kvk, p["means_id"], p["email"], **kw)
        case Action.RESEND_INVITATION:
            return await client.resend_invitation(kvk, p["means_id"], **kw)
        case Action.TERMINATE_MEANS:
            return await client.terminate_means(kvk, p["means_id"], mode=p.get("mode", "now"),
                                                date=_date(p.get("date")), **kw)
        case Action.GRANT:
            return await client.grant(kvk, p["means_ids"], p["services"], end_date=_date(p.get("end_date")), **kw)
        case Action.SET_END_DATE:
            end = _date(p["end_date"])
            assert end is not None
            return await client.set_end_date(kvk, p["means_ids"], p["services"], end, **kw)
        case Action.REVOKE:
            return await client.revoke(kvk, p["means_ids"], p["services"], **kw)
        case Action.ISSUE_CHAIN:
            return await client.issue_chain(kvk, p["intermediary_kvk"], p["services"], name=p.get("name"),
                                            end_date=_date(p.get("end_date")), **kw)
        case Action.SET_CHAIN_END_DATE:
            end = _date(p["end_date"])
            assert end is not None
            return await client.set_chain_end_date(kvk, p["intermediary_kvk"], end, **kw)
        case Action.REMOVE_INTERMEDIARY:
            return await client.remove_intermediary(kvk, p["intermediary_kvk"], **kw)
    raise ValueError(f"unknown action {change.action}")  # pragma: no cover
