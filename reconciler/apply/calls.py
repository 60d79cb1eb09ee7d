"""One planned change as the one API request that makes it (the executor's only contact with the client)."""

from __future__ import annotations

from typing import Any

from reconciler.backend.client import BeheerClient
from reconciler.backend.types import MutationResult
from reconciler.domain import operations as ops
from reconciler.plan.model import Change


def _operation(step: Change | ops.AdminOperation) -> ops.AdminOperation:
    """A plan item's operation, or the operation itself (a caller that has decoded it already)."""
    return step.operation() if isinstance(step, Change) else step


def path_kvk(step: Change | ops.AdminOperation) -> str:
    """The organisation in whose URL the request is made (its revision is the If-Match): a link is asked for
    in an organisation the means is already in (R15); everything else in the plan's own organisation."""
    op = _operation(step)
    if isinstance(op, ops.LinkMeans) and op.from_kvk:
        return op.from_kvk
    return op.kvk


def means_ids(change: Change) -> list[str]:
    """The means a change acts on (none for intermediaries and for requests of a new means)."""
    p = change.params
    if "means_ids" in p:
        return list(p["means_ids"])
    return [p["means_id"]] if "means_id" in p else []


async def send(client: BeheerClient, step: Change | ops.AdminOperation, *, if_match: int | None,
               key: str) -> MutationResult:
    """Make the request that performs a plan item's operation: the one place an action meets the API. Backend
    errors propagate as `BackendError` subclasses."""
    kw: dict[str, Any] = {"if_match": if_match, "idempotency_key": key}
    op = _operation(step)
    match op:
        case ops.RequestMeans():
            return await client.request_means(op.kvk, email=op.email, name=op.name, role=op.role, level=op.level,
                                              type=op.type, second_factor=op.second_factor, phone=op.phone,
                                              subscription=op.subscription, **kw)
        case ops.LinkMeans():
            return await client.link_means(op.from_kvk or op.kvk, op.means_id, to_kvk=op.kvk, role=op.role,
                                           subscription=op.subscription, **kw)
        case ops.ChangeRole():
            return await client.change_role(op.kvk, op.means_id, op.role, **kw)
        case ops.ChangeLevel():
            return await client.change_level(op.kvk, op.means_id, op.level, second_factor=op.second_factor,
                                             phone=op.phone, **kw)
        case ops.ChangeType():
            return await client.change_type(op.kvk, op.means_id, op.type, subscription=op.subscription, **kw)
        case ops.ChangePhone():
            return await client.change_phone(op.kvk, op.means_id, op.phone, **kw)
        case ops.ChangeEmail():
            return await client.change_email(op.kvk, op.means_id, op.email, **kw)
        case ops.ResendInvitation():
            return await client.resend_invitation(op.kvk, op.means_id, **kw)
        case ops.Terminate():
            return await client.terminate_means(op.kvk, op.means_id, mode=op.mode, date=op.date, **kw)
        case ops.Grant():
            return await client.grant(op.kvk, op.means_ids, op.services, end_date=op.end_date, **kw)
        case ops.SetEndDate():
            return await client.set_end_date(op.kvk, op.means_ids, op.services, op.end_date, **kw)
        case ops.Revoke():
            return await client.revoke(op.kvk, op.means_ids, op.services, **kw)
        case ops.IssueChain():
            return await client.issue_chain(op.kvk, op.intermediary_kvk, op.services, name=op.name,
                                            end_date=op.end_date, **kw)
        case ops.SetChainEndDate():
            return await client.set_chain_end_date(op.kvk, op.intermediary_kvk, op.end_date, services=op.services,
                                                   **kw)
        case ops.RevokeChain():
            return await client.revoke_chain(op.kvk, op.intermediary_kvk, op.services, **kw)
        case ops.RemoveIntermediary():
            return await client.remove_intermediary(op.kvk, op.intermediary_kvk, **kw)
    raise ValueError(f"unknown action {op.action}")  # pragma: no cover
