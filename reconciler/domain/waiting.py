"""What waits on people in the backend: the supplier's approvals and processing, the holders' activations (with
their deadlines) and lapsed activations. One source for `reconciler drift` ("waiting on people") and for what
`reconciler apply` says happens next, so the two never tell a reviewer different things."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from reconciler.domain.state import Means, Status, World

#: `Waiting.what` values, in the order a reader acts on them.
AWAITING_APPROVAL = "awaiting approval"
AWAITING_ACTIVATION = "awaiting activation"
ACTIVATION_LAPSED = "activation lapsed"
PENDING_CHANGE = "pending change"


@dataclass(frozen=True)
class Waiting:
    who: str
    what: str                      # awaiting approval | awaiting activation | activation lapsed | pending change
    detail: str
    deadline: dt.date | None = None


def waiting_in(world: World, kvk: str) -> list[Waiting]:
    """Everything of the organisation's members that waits on the supplier or a holder, by e-mail."""
    state = world.orgs.get(kvk)
    if state is None:
        return []
    out = []
    for means_id in sorted(state.members, key=lambda m: world.means[m].key):
        out.extend(means_waiting(world.means[means_id]))
    return out


def means_waiting(means: Means) -> list[Waiting]:
    """What one means waits for: its approval or activation (R5), a change the supplier processes (R6)."""
    out = []
    if means.status is Status.WACHTEN_OP_GOEDKEURING:
        out.append(Waiting(means.email, AWAITING_APPROVAL, "the supplier has to approve the request (R5)"))
    elif means.status is Status.WACHTEN_OP_ACTIVATIE:
        out.append(Waiting(means.email, AWAITING_ACTIVATION, "the holder has to activate it within 30 days (R5)",
                           means.activation_deadline))
    elif means.status is Status.ACTIVATIE_VERLOPEN:
        out.append(Waiting(means.email, ACTIVATION_LAPSED, "a new activation letter is needed and costs money (R5)"))
    if means.pending is not None:
        what = means.pending.change + (f" to {means.pending.level}" if means.pending.level else "") \
            + (f" to {means.pending.kvk}" if means.pending.kvk else "")
        out.append(Waiting(means.email, PENDING_CHANGE, f"the supplier has to process the {what} (R6)"))
    return out
