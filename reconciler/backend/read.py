"""Reading the backend: every organisation of the config, all pages, concurrently across organisations
(bounded), with list endpoints only (no request per means or per authorisation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import anyio

from reconciler.backend.client import BeheerClient
from reconciler.backend.errors import Forbidden, NotFound, UnexpectedResponse
from reconciler.domain.catalogue import Catalogue
from reconciler.domain.state import OrgState, World

#: Organisations read at the same time.
READ_CONCURRENCY = 4


@dataclass
class ActualState:
    world: World
    revisions: dict[str, int | None] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)        # organisations the backend does not give us


async def read_state(clients: Mapping[str, BeheerClient], kvks: Sequence[str], catalogue: Catalogue,
                     concurrency: int = READ_CONCURRENCY) -> ActualState:
    """The backend's state of `kvks`, each read with its own client (its acting admin's token)."""
    state = ActualState(World(catalogue))
    limiter = anyio.Semaphore(concurrency)
    by_email: dict[str, str] = {}          # e-mail (lower-cased) -> means id, over every organisation read

    def refuse(kvk: str, why: str, resource: str = "means") -> UnexpectedResponse:
        """The backend's own values are in `why`: one that echoes a token is blanked, as in the client's errors."""
        for client in clients.values():
            why = client.redact(why)
        return UnexpectedResponse(why, method="GET", path=f"/v1/organisations/{kvk}/{resource}")

    async def read_one(kvk: str) -> None:
        client = clients.get(kvk)
        if client is None:
            state.unknown.add(kvk)
            return
        async with limiter:
            try:
                org = await client.get_organisation(kvk)
            except (Forbidden, NotFound):
                state.unknown.add(kvk)
                return
            means = await client.list_all_means(kvk)
            ends = await client.authorisation_ends(kvk)
            chains = await client.list_all_chains(kvk)
        org_state = OrgState(org.to_info(), revision=org.revision)
        for m in means:
            # A means is one person everywhere (R15): an id listed twice, an id that is another e-mail address in
            # another organisation, or an address under two ids would have the plan act on a means as someone it
            # is not (a change planned for alice sent to the id the backend gave mallory). Refused, not guessed.
            known = state.world.means.get(m.id)
            if m.id in org_state.members:
                raise refuse(kvk, f"the backend listed means {m.id!r} twice")
            if known is not None and known.key != m.email.lower():
                raise refuse(kvk, f"the backend gave means {m.id!r} as {m.email!r} here and as {known.email!r} "
                                  "in another organisation")
            if by_email.setdefault(m.email.lower(), m.id) != m.id:
                raise refuse(kvk, f"the backend gave {m.email!r} two means ids, {by_email[m.email.lower()]!r} "
                                  f"and {m.id!r}")
            if known is None:
                state.world.means[m.id] = m.to_means()
            state.world.linked[m.id] = m.organisations
            org_state.members[m.id] = m.to_membership()
        org_state.authorisations = ends
        for c in chains:
            if c.intermediary_kvk in org_state.chains:     # one entry per intermediary (R18): which would be true?
                raise refuse(kvk, f"the backend listed intermediary {c.intermediary_kvk!r} twice",
                             "chain-authorisations")
            org_state.chains[c.intermediary_kvk] = c.to_chain()
        state.world.orgs[kvk] = org_state
        state.revisions[kvk] = org.revision

    async with anyio.create_task_group() as tg:
        for kvk in kvks:
            tg.start_soon(read_one, kvk)
    return state
