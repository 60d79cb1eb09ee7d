"""`reconciler.apply.calls`: each plan action goes to the right client method with the right arguments.

Checked against the embedded sandbox (a real `BeheerClient` on `sandbox:PATH`), by the effect `send` leaves
in the backend's state, not by a mock: a parameter sent to the wrong field or dropped shows as a wrong value
read back. The params are written the way the planner writes them (enum values and ISO dates as text).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import anyio
import pytest

from reconciler.apply.calls import means_ids, path_kvk, send
from reconciler.backend.client import BeheerClient
from reconciler.backend.connect import open_backend
from reconciler.backend.errors import BackendError
from reconciler.backend.sandbox.controls import SandboxControls
from reconciler.backend.sandbox.store import SandboxStore
from reconciler.backend.types import MutationResult, RemoteMeans
from reconciler.domain.catalogue import bundled_catalogue
from reconciler.domain.levels import Level
from reconciler.domain.means import MeansType, Role, SecondFactorType, Subscription
from reconciler.domain.state import Means, PendingKind, Status
from reconciler.plan.model import Action, Change, Stage

KVK = "12345678"
OTHER = "87654321"
INTERMEDIARY = "11223344"
TODAY = dt.date(2025, 6, 1)
ADMIN = "anna@acme.nl"
CAT = bundled_catalogue()
TENDERNED = CAT["rvo/tenderned"].uuid
GENERAL3 = CAT["algemene-bevoegdheid-3"].uuid
_ids = itertools.count(1)


@dataclass
class Backend:
    """The acting admin's client on KVK, the sandbox's controls, and the admin's means id."""

    client: BeheerClient
    controls: SandboxControls
    admin_id: str
    db_path: Path

    def stored(self, means_id: str) -> Means:
        """The means as the sandbox's database holds it (what the API does not show), read on its own connection."""
        store = SandboxStore(self.db_path)
        try:
            with store.transaction():
                means = store.get_means(means_id)
        finally:
            store.close()
        assert means is not None
        return means

    async def means(self, email: str, kvk: str = KVK) -> RemoteMeans | None:
        return next((m for m in await self.client.list_all_means(kvk) if m.email == email), None)

    async def revision(self, kvk: str = KVK) -> int:
        return (await self.client.get_organisation(kvk)).revision

    async def user(self, email: str, *, level: str = "EH3", role: str = "gebruiker", phone: str | None = None,
                   activate: bool = True) -> str:
        """A means requested directly with the client (not through `send`), approved and activated."""
        factor = ("sms" if phone else "otp") if level in ("EH2+", "EH3") else None
        result = await self.client.request_means(KVK, email=email, name=email.split("@")[0].title(), role=role,
                                                 level=level, second_factor=factor, phone=phone)
        means_id = str(result.result["id"])
        await self.controls.step(means_id, "approve")
        if activate:
            await self.controls.step(means_id, "activate")
        return means_id

    async def send(self, change: Change, *, key: str | None = None) -> MutationResult:
        """`send` as the executor calls it: If-Match the organisation in the URL, a fresh idempotency key."""
        return await send(self.client, change, if_match=await self.revision(path_kvk(change)),
                          key=key or f"test-{next(_ids)}")


Work = Callable[[Backend], Awaitable[Any]]


def run(tmp_path: Path, work: Work) -> Any:
    """A fresh embedded sandbox (today fixed at TODAY) with organisation KVK and its active EH3 admin."""
    async def go() -> Any:
        async with open_backend(f"sandbox:{tmp_path / 'sb.db'}", env={}, require_token=False) as raw:
            controls = SandboxControls(raw)
            await controls.set_today(TODAY)
            org = await controls.create_organisation(KVK, "Acme", admin_email=ADMIN, admin_name="Anna",
                                                     level="EH3", second_factor="otp")
            return await work(Backend(raw.with_token(org.token), controls, org.means_id, tmp_path / "sb.db"))
    return anyio.run(go)


def change(action: Action, params: dict[str, Any], *, kvk: str = KVK, target: str | list[str] = "t",
           stage: Stage = Stage.ADD) -> Change:
    return Change(id=f"s{next(_ids)}", kvk=kvk, action=action, target=target, stage=stage, params=params)


# ---------------------------------------------------------------------------------- pure helpers
def test_means_ids_of_a_single_a_bulk_and_a_means_less_change() -> None:
    assert means_ids(change(Action.CHANGE_ROLE, {"means_id": "m1", "role": "beheerder"})) == ["m1"]
    assert means_ids(change(Action.GRANT, {"means_ids": ["m1", "m2"], "services": [TENDERNED]})) == ["m1", "m2"]
    assert means_ids(change(Action.REQUEST_MEANS, {"email": "x@acme.nl"})) == []
    assert means_ids(change(Action.ISSUE_CHAIN, {"intermediary_kvk": INTERMEDIARY, "services": []})) == []


def test_means_ids_is_a_copy_the_caller_may_change() -> None:
    params = {"means_ids": ["m1"], "services": [TENDERNED]}
    means_ids(change(Action.REVOKE, params)).append("m2")
    assert params["means_ids"] == ["m1"]


def test_path_kvk_is_the_source_organisation_of_a_link_and_the_plan_s_own_otherwise() -> None:
    """R15: a link is asked for in an organisation the means is already in."""
    assert path_kvk(change(Action.LINK_MEANS, {"means_id": "m1", "role": "gebruiker", "from_kvk": KVK},
                           kvk=OTHER)) == KVK
    assert path_kvk(change(Action.LINK_MEANS, {"means_id": "m1", "role": "gebruiker", "from_kvk": None},
                           kvk=OTHER)) == OTHER
    assert path_kvk(change(Action.CHANGE_ROLE, {"means_id": "m1", "role": "beheerder", "from_kvk": KVK},
                           kvk=OTHER)) == OTHER


# ------------------------------------------------------------------------------------ people
def test_request_means_sends_every_field(tmp_path: Path) -> None:
    async def work(b: Backend) -> None:
        before = await b.revision()
        result = await b.send(change(Action.REQUEST_MEANS, {
            "email": "bob@acme.nl", "name": "Bob", "role": "gebruiker", "level": "EH2+", "type": "regulier",
            "second_factor": "sms", "phone": "+31612345678", "subscription": "3y"}))
        assert result.status == 201 and result.revision > before
        bob = await b.means("bob@acme.nl")
        assert bob is not None
        assert (bob.name, bob.role, bob.level, bob.type, bob.second_factor, bob.phone, bob.subscription) == (
            "Bob", Role.GEBRUIKER, Level.EH2PLUS, MeansType.REGULIER, SecondFactorType.SMS, "+31612345678",
            Subscription.THREE_YEARS)
        assert bob.status is Status.WACHTEN_OP_GOEDKEURING
    run(tmp_path, work)


def test_the_if_match_revision_is_sent(tmp_path: Path) -> None:
    """A stale revision is refused (412) and nothing is created: `send` passes `if_match` on."""
    async def work(b: Backend) -> None:
        stale = await b.revision() - 1
        with pytest.raises(BackendError) as info:
            await send(b.client, change(Action.REQUEST_MEANS, {"email": "bob@acme.nl", "name": "Bob",
                                                               "role": "gebruiker", "level": "EH2"}),
                       if_match=stale, key="k-stale")
        assert info.value.status == 412
        assert await b.means("bob@acme.nl") is None
    run(tmp_path, work)


def test_the_idempotency_key_is_sent(tmp_path: Path) -> None:
    """The same key twice: the second answer is the first one replayed and only one means exists."""
    async def work(b: Backend) -> None:
        request = change(Action.REQUEST_MEANS, {"email": "bob@acme.nl", "name": "Bob", "role": "gebruiker",
                                                "level": "EH2"})
        first = await send(b.client, request, if_match=None, key="k-once")
        second = await send(b.client, request, if_match=None, key="k-once")
        assert not first.replayed and second.replayed
        assert second.result["id"] == first.result["id"]
        assert [m.email for m in await b.client.list_all_means(KVK)].count("bob@acme.nl") == 1
    run(tmp_path, work)


def test_link_means_is_asked_in_the_source_organisation_for_the_plan_s_organisation(tmp_path: Path) -> None:
    async def work(b: Backend) -> None:
        await b.controls.create_organisation(OTHER, "Other", admin_email=ADMIN, admin_name="Anna", level="EH3")
        bob = await b.user("bob@acme.nl")
        link = change(Action.LINK_MEANS, {"means_id": bob, "role": "gebruiker", "subscription": "3y",
                                          "from_kvk": KVK}, kvk=OTHER)
        before_source, before_target = await b.revision(KVK), await b.revision(OTHER)
        result = await b.send(link)
        assert result.pending                                     # 202: the supplier processes links (R15)
        assert await b.revision(KVK) > before_source              # If-Match and URL: the source organisation
        assert await b.revision(OTHER) == before_target
        pending = (await b.means("bob@acme.nl")).pending  # type: ignore[union-attr]
        assert pending is not None and pending.kind is PendingKind.LINK
        assert (pending.kvk, pending.role) == (OTHER, Role.GEBRUIKER)
        stored = b.stored(bob)                                    # the API does not show a link's subscription
        assert stored.pending is not None and stored.pending.subscription is Subscription.THREE_YEARS
        await b.controls.step(bob, "approve")
        linked = await b.means("bob@acme.nl", OTHER)
        assert linked is not None and linked.role is Role.GEBRUIKER
    run(tmp_path, work)


def test_change_role(tmp_path: Path) -> None:
    async def work(b: Backend) -> None:
        bob = await b.user("bob@acme.nl")
        await b.send(change(Action.CHANGE_ROLE, {"means_id": bob, "role": "beheerder"}))
        assert (await b.means("bob@acme.nl")).role is Role.BEHEERDER  # type: ignore[union-attr]
        assert bob in [m.id for m in await b.client.list_all_means(KVK) if m.role is Role.BEHEERDER]
    run(tmp_path, work)


def test_change_level_sends_the_level_and_the_factor(tmp_path: Path) -> None:
    async def work(b: Backend) -> None:
        bob = await b.user("bob@acme.nl", level="EH2")
        result = await b.send(change(Action.CHANGE_LEVEL, {"means_id": bob, "level": "EH2+",
                                                           "second_factor": "sms", "phone": "+31611111111"}))
        assert result.pending
        pending = (await b.means("bob@acme.nl")).pending  # type: ignore[union-attr]
        assert pending is not None and pending.kind is PendingKind.LEVEL
        assert pending.level is Level.EH2PLUS
        await b.controls.step(bob, "approve")
        done = await b.means("bob@acme.nl")
        assert done is not None and (done.level, done.second_factor, done.phone) == (
            Level.EH2PLUS, SecondFactorType.SMS, "+31611111111")
    run(tmp_path, work)


def test_change_type_sends_the_type_and_the_subscription(tmp_path: Path) -> None:
    async def work(b: Backend) -> None:
        bob = await b.user("bob@acme.nl")
        await b.send(change(Action.CHANGE_TYPE, {"means_id": bob, "type": "belastingdienst", "subscription": "3y"}))
        done = await b.means("bob@acme.nl")
        assert done is not None and (done.type, done.subscription) == (MeansType.BELASTINGDIENST,
                                                                       Subscription.THREE_YEARS)
    run(tmp_path, work)


def test_change_phone(tmp_path: Path) -> None:
    async def work(b: Backend) -> None:
        bob = await b.user("bob@acme.nl", phone="+31612345678")
        await b.send(change(Action.CHANGE_PHONE, {"means_id": bob, "phone": "+31687654321"}))
        assert (await b.means("bob@acme.nl")).phone == "+31687654321"  # type: ignore[union-attr]
    run(tmp_path, work)


def test_change_email(tmp_path: Path) -> None:
    """Before activation (after it only the holder changes the e-mail, R11)."""
    async def work(b: Backend) -> None:
        bob = await b.user("bob@acme.nl", activate=False)
        await b.send(change(Action.CHANGE_EMAIL, {"means_id": bob, "email": "robert@acme.nl"}))
        assert await b.means("bob@acme.nl") is None
        assert (await b.means("robert@acme.nl")).id == bob  # type: ignore[union-attr]
    run(tmp_path, work)


def test_resend_invitation_gives_a_lapsed_means_a_new_activation(tmp_path: Path) -> None:
    async def work(b: Backend) -> None:
        bob = await b.user("bob@acme.nl", activate=False)
        await b.controls.step(bob, "expire")
        assert (await b.means("bob@acme.nl")).status is Status.ACTIVATIE_VERLOPEN  # type: ignore[union-attr]
        await b.send(change(Action.RESEND_INVITATION, {"means_id": bob}))
        assert (await b.means("bob@acme.nl")).status is Status.WACHTEN_OP_ACTIVATIE  # type: ignore[union-attr]
    run(tmp_path, work)


def test_terminate_now(tmp_path: Path) -> None:
    async def work(b: Backend) -> None:
        bob = await b.user("bob@acme.nl")
        await b.send(change(Action.TERMINATE_MEANS, {"means_id": bob, "mode": "now"}, stage=Stage.REMOVE))
        assert await b.means("bob@acme.nl") is None
    run(tmp_path, work)


def test_terminate_on_a_date_sends_the_date(tmp_path: Path) -> None:
    async def work(b: Backend) -> None:
        bob = await b.user("bob@acme.nl")
        await b.send(change(Action.TERMINATE_MEANS, {"means_id": bob, "mode": "date", "date": "2025-07-01"},
                            stage=Stage.REMOVE))
        kept = await b.means("bob@acme.nl")
        assert kept is not None and kept.terminates_on == dt.date(2025, 7, 1)
    run(tmp_path, work)


def test_terminate_without_a_mode_means_now(tmp_path: Path) -> None:
    async def work(b: Backend) -> None:
        bob = await b.user("bob@acme.nl")
        await b.send(change(Action.TERMINATE_MEANS, {"means_id": bob}, stage=Stage.REMOVE))
        assert await b.means("bob@acme.nl") is None
    run(tmp_path, work)


# ----------------------------------------------------------------------------- authorisations
async def _held(b: Backend) -> dict[tuple[str, str], dt.date]:
    return {(a.means_id, a.service): a.end_date for a in await b.client.list_all_authorisations(KVK)}


def test_grant_set_end_date_and_revoke_act_on_every_pair(tmp_path: Path) -> None:
    async def work(b: Backend) -> None:
        bob, eve = await b.user("bob@acme.nl"), await b.user("eve@acme.nl")
        pairs = {(m, s) for m in (bob, eve) for s in (TENDERNED, GENERAL3)}
        await b.send(change(Action.GRANT, {"means_ids": [bob, eve], "services": [TENDERNED, GENERAL3],
                                           "end_date": "2026-01-31"}, stage=Stage.GRANT))
        assert await _held(b) == {p: dt.date(2026, 1, 31) for p in pairs}

        await b.send(change(Action.SET_END_DATE, {"means_ids": [bob], "services": [GENERAL3],
                                                  "end_date": "2025-12-31"}, stage=Stage.SHORTEN))
        held = await _held(b)
        assert held[(bob, GENERAL3)] == dt.date(2025, 12, 31)
        assert held[(eve, GENERAL3)] == held[(bob, TENDERNED)] == dt.date(2026, 1, 31)

        await b.send(change(Action.REVOKE, {"means_ids": [eve], "services": [TENDERNED, GENERAL3]},
                            stage=Stage.SHORTEN))
        assert set(await _held(b)) == {(bob, TENDERNED), (bob, GENERAL3)}
    run(tmp_path, work)


def test_grant_without_an_end_date_gets_the_backend_s_default(tmp_path: Path) -> None:
    """No `end_date` in the params sends none (not an empty string): the default is five years (R9)."""
    async def work(b: Backend) -> None:
        bob = await b.user("bob@acme.nl")
        await b.send(change(Action.GRANT, {"means_ids": [bob], "services": [TENDERNED]}, stage=Stage.GRANT))
        assert await _held(b) == {(bob, TENDERNED): dt.date(2030, 6, 1)}
    run(tmp_path, work)


# -------------------------------------------------------------------------------------- chains
def test_issue_chain_set_its_end_date_revoke_one_and_remove_the_intermediary(tmp_path: Path) -> None:
    """Each chain authorisation keeps its own end date (R18): re-dating and revoking name their services."""
    async def work(b: Backend) -> None:
        await b.send(change(Action.ISSUE_CHAIN, {"intermediary_kvk": INTERMEDIARY, "name": "Boekhouder BV",
                                                 "services": [TENDERNED, GENERAL3], "end_date": "2026-06-01"},
                            stage=Stage.GRANT))
        [chain] = await b.client.list_all_chains(KVK)
        assert (chain.intermediary_kvk, chain.name, chain.ends) == (
            INTERMEDIARY, "Boekhouder BV", {TENDERNED: dt.date(2026, 6, 1), GENERAL3: dt.date(2026, 6, 1)})

        await b.send(change(Action.SET_CHAIN_END_DATE, {"intermediary_kvk": INTERMEDIARY, "end_date": "2027-01-01",
                                                        "services": [GENERAL3]}, stage=Stage.GRANT))
        [chain] = await b.client.list_all_chains(KVK)
        assert chain.ends == {TENDERNED: dt.date(2026, 6, 1), GENERAL3: dt.date(2027, 1, 1)}

        await b.send(change(Action.REVOKE_CHAIN, {"intermediary_kvk": INTERMEDIARY, "services": [TENDERNED]},
                            stage=Stage.SHORTEN))
        [chain] = await b.client.list_all_chains(KVK)
        assert chain.ends == {GENERAL3: dt.date(2027, 1, 1)}

        await b.send(change(Action.REMOVE_INTERMEDIARY, {"intermediary_kvk": INTERMEDIARY}, stage=Stage.REMOVE))
        assert await b.client.list_all_chains(KVK) == []
    run(tmp_path, work)


def test_issue_chain_without_a_name_or_end_date(tmp_path: Path) -> None:
    async def work(b: Backend) -> None:
        await b.send(change(Action.ISSUE_CHAIN, {"intermediary_kvk": INTERMEDIARY, "name": None,
                                                 "services": [TENDERNED], "end_date": None}, stage=Stage.GRANT))
        [chain] = await b.client.list_all_chains(KVK)
        assert (chain.name, chain.ends) == (None, {TENDERNED: dt.date(2030, 6, 1)})
    run(tmp_path, work)


def test_a_refusal_comes_back_as_a_backend_error_with_the_rule(tmp_path: Path) -> None:
    """`send` lets the backend's refusal through: a gebruiker at EH1 cannot be made beheerder (R2)."""
    async def work(b: Backend) -> None:
        bob = await b.user("bob@acme.nl", level="EH2")
        with pytest.raises(BackendError) as info:
            await b.send(change(Action.CHANGE_ROLE, {"means_id": bob, "role": "beheerder"}))
        assert info.value.code == "R2"
        assert (await b.means("bob@acme.nl")).role is Role.GEBRUIKER  # type: ignore[union-attr]
    run(tmp_path, work)


def test_every_action_is_sent(tmp_path: Path) -> None:
    """No action falls through `send`'s match: each is covered by a test above (keep this list in step)."""
    covered = {Action.REQUEST_MEANS, Action.LINK_MEANS, Action.CHANGE_ROLE, Action.CHANGE_LEVEL, Action.CHANGE_TYPE,
               Action.CHANGE_PHONE, Action.CHANGE_EMAIL, Action.RESEND_INVITATION, Action.TERMINATE_MEANS,
               Action.GRANT, Action.SET_END_DATE, Action.REVOKE, Action.ISSUE_CHAIN, Action.SET_CHAIN_END_DATE,
               Action.REVOKE_CHAIN, Action.REMOVE_INTERMEDIARY}
    assert covered == set(Action)
