"""`read_state` against a scripted backend whose lists contradict themselves: a means is one person everywhere
(R15), so an id listed twice, an id that is another address in another organisation, or one address under two
ids is refused as an off-contract answer instead of being folded into a world the plan then acts on."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from reconciler.backend.client import BeheerClient
from reconciler.backend.errors import UnexpectedResponse
from reconciler.backend.read import read_state
from reconciler.domain.catalogue import Catalogue
from reconciler.pipeline import first_failure

pytestmark = pytest.mark.anyio

A, B = "11111111", "22222222"
TOKEN = "tok-SUPER-secret-4711"


def means(means_id: str, email: str, kvk: str) -> dict[str, Any]:
    return {"id": means_id, "email": email, "name": email.split("@")[0], "role": "gebruiker", "level": "EH3",
            "type": "regulier", "status": "actief", "second_factor": {"type": "otp"}, "organisations": [kvk]}


async def read(lists: dict[str, list[dict[str, Any]]], chains: list[dict[str, Any]] | None = None) -> Any:
    """The state of organisations A and B, whose means lists are `lists` and B's chain list `chains` (everything
    else empty)."""
    def handler(request: httpx.Request) -> httpx.Response:
        parts = request.url.path.split("/")          # ['', 'v1', 'organisations', kvk, list?]
        if len(parts) == 4:
            return httpx.Response(200, json={"kvk": parts[3], "name": "Org", "revision": 1})
        items = lists[parts[3]] if parts[4] == "means" else []
        if parts[4] == "chain-authorisations" and parts[3] == B:
            items = chains or []
        return httpx.Response(200, json={"items": items, "next_cursor": None})

    async with BeheerClient("http://backend.test", TOKEN, transport=httpx.MockTransport(handler)) as client:
        return await read_state({A: client, B: client}, [A, B], Catalogue())


async def test_one_means_in_two_organisations_is_read_once() -> None:
    state = await read({A: [means("x", "alice@a.nl", A)], B: [means("x", "Alice@A.nl", B), means("y", "bob@b.nl", B)]})
    assert set(state.world.means) == {"x", "y"} and set(state.world.orgs[B].members) == {"x", "y"}


@pytest.mark.parametrize(("lists", "says"), [
    # B's backend says x is mallory; read as it was, B's member x was alice (A's answer): a role planned for
    # alice in B went to the means B knows as mallory.
    ({A: [means("x", "alice@a.nl", A)], B: [means("x", "mallory@evil.nl", B)]}, "in another organisation"),
    ({A: [], B: [means("x", "alice@a.nl", B), means("x", "mallory@evil.nl", B)]}, "listed means 'x' twice"),
    # bob under two ids: `means_by_email` took whichever came last.
    ({A: [means("y", "bob@b.nl", A)], B: [means("z", "BOB@b.nl", B)]}, "two means ids"),
    ({A: [], B: [means("y", "bob@b.nl", B), means("z", "bob@b.nl", B)]}, "two means ids"),
    # the backend's values are in the message: one that echoes the token is blanked
    ({A: [], B: [means(TOKEN, "x@b.nl", B), means(TOKEN, "y@b.nl", B)]}, "listed means '***' twice"),
])
async def test_a_means_list_that_contradicts_itself_is_refused(lists: dict[str, list[dict[str, Any]]],
                                                               says: str) -> None:
    """What the commands say (`pipeline.run` takes the error out of the task group's exception group)."""
    with pytest.raises(BaseException) as info:
        await read(lists)
    error = first_failure(info.value, (UnexpectedResponse,))
    assert isinstance(error, UnexpectedResponse) and says in str(error)
    assert "/means]" in str(error) and "\n" not in str(error)


async def test_an_intermediary_listed_twice_is_refused() -> None:
    """One entry per intermediary (R18): two, with other services and dates, leave no way to tell which is true
    (read as it was, the last one won, and the plan compared the config with it)."""
    def chain(service: str) -> dict[str, Any]:
        return {"intermediary_kvk": "47474747", "name": "Boekhouder",
                "services": [{"service": service, "end_date": "2030-01-01"}]}

    state = await read({A: [], B: []}, [chain("u1")])
    assert set(state.world.orgs[B].chains) == {"47474747"}
    with pytest.raises(BaseException) as info:
        await read({A: [], B: []}, [chain("u1"), chain("u2")])
    error = first_failure(info.value, (UnexpectedResponse,))
    assert isinstance(error, UnexpectedResponse) and "listed intermediary '47474747' twice" in str(error)
    assert "/chain-authorisations]" in str(error)
