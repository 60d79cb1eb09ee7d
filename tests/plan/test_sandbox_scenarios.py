"""The planner on the real sandbox (embedded, over the same HTTP client): the backend state is made through
the API and the sandbox controls, then `reconciler plan`'s own code plans against it (issue #4)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import anyio
import pytest

from reconciler.backend.bootstrap import acting_admins
from reconciler.backend.connect import open_backend
from reconciler.backend.sandbox.controls import SandboxControls
from reconciler.pipeline import build_plan
from reconciler.config.loader import load_paths
from reconciler.plan.model import Action, Plan

KVK = "12345678"
HEAD = f'version: 1\norganisation: {{kvk: "{KVK}", name: Acme}}\n'
ADMIN = "  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}\n"


class Sandbox:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.backend = f"sandbox:{tmp / 'sb.db'}"
        self.config = tmp / "org.yaml"

    def write(self, users: str, extra: str = "") -> None:
        self.config.write_text(HEAD + extra + "users:\n" + users)

    def plan(self) -> Plan:
        plan, _ = anyio.run(lambda: build_plan((str(self.config),), self.backend, None))
        return plan

    def act(self, work: Any) -> Any:
        """Run `work(client_as_admin, controls)` on the sandbox, bootstrapping from the current config."""
        async def go() -> Any:
            [org] = load_paths([str(self.config)], dt.date.today()).orgs
            async with open_backend(self.backend, require_token=False) as client:
                controls = SandboxControls(client)
                admin = (await acting_admins(controls, [org]))[KVK]
                return await work(client.with_token(admin.token), controls)
        return anyio.run(go)

    def new_means(self, email: str, level: str = "EH3", role: str = "gebruiker", activate: bool = True) -> str:
        async def work(client: Any, controls: SandboxControls) -> str:
            result = await client.request_means(KVK, email=email, name=email.split("@")[0].title(), role=role,
                                                level=level, second_factor="otp" if level != "EH2" else None)
            means_id = result.means().id
            await controls.step(means_id, "approve")
            if activate:
                await controls.step(means_id, "activate")
            return means_id
        return self.act(work)


@pytest.fixture
def sb(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def org(plan: Plan) -> Any:
    [only] = plan.organisations
    return only


def test_grants_wait_for_activation_r7(sb: Sandbox) -> None:
    sb.write(ADMIN)
    sb.new_means("new@acme.nl", activate=False)
    sb.write(ADMIN + "  - {email: new@acme.nl, name: New, role: gebruiker, level: EH3, second_factor: {type: otp},"
                     " authorisations: [{service: uwv/werkgeversportaal, until: rolling}]}\n")
    plan = sb.plan()
    assert org(plan).changes == []
    [deferred] = org(plan).deferred
    assert deferred.rule == "R7" and "awaits activation by the holder (by " in deferred.reason


def test_pending_upgrade_defers_what_needs_it_r6_r8(sb: Sandbox) -> None:
    sb.write(ADMIN)
    means_id = sb.new_means("u@acme.nl", level="EH2+")

    async def upgrade(client: Any, controls: SandboxControls) -> None:
        await client.change_level(KVK, means_id, "EH3")
    sb.act(upgrade)
    sb.write(ADMIN + "  - {email: u@acme.nl, name: U, role: gebruiker, level: EH3, second_factor: {type: otp},"
                     " authorisations: [{service: uwv/werkgeversportaal, until: rolling}]}\n")
    plan = sb.plan()
    assert org(plan).changes == []
    [deferred] = org(plan).deferred
    assert deferred.rule == "R8" and "after the supplier has processed the level change to EH3" in deferred.reason


def test_admin_swap_orders_promotion_first_and_defers_the_demotion_r1(sb: Sandbox) -> None:
    sb.write(ADMIN)
    sb.new_means("next@acme.nl", activate=False)
    sb.write("  - {email: next@acme.nl, name: Next, role: beheerder, level: EH3, second_factor: {type: otp}}\n"
             + ADMIN.replace("beheerder", "gebruiker"), extra="policy: {prune: true}\n")
    plan = sb.plan()
    # the acting admin is admin@ (bootstrapped); it cannot demote itself: manual R3, and next@ is promoted first
    assert [(c.action, c.target) for c in org(plan).changes] == [(Action.CHANGE_ROLE, "next@acme.nl")]
    assert [(m.action, m.rule) for m in org(plan).manual] == [(Action.CHANGE_ROLE, "R3")]


def test_levels_above_the_acting_admin_are_manual_r4(sb: Sandbox) -> None:
    sb.write(ADMIN.replace("EH3", "EH2+"))
    sb.write(ADMIN.replace("EH3", "EH2+") + "  - {email: x@acme.nl, name: X, role: gebruiker, level: EH3,"
                                              " second_factor: {type: otp}}\n")
    plan = sb.plan()
    assert [(m.action, m.rule) for m in org(plan).manual] == [(Action.REQUEST_MEANS, "R4")]


def test_email_of_an_active_holder_is_manual_r11(sb: Sandbox) -> None:
    sb.write(ADMIN)
    sb.new_means("piet@old.nl")
    sb.write(ADMIN + "  - {email: piet@new.nl, name: Piet, role: gebruiker, level: EH3, second_factor: {type: otp}}\n",
             extra="policy: {prune: true}\n")
    plan = sb.plan()
    assert org(plan).changes == []
    assert [(m.action, m.rule, m.target) for m in org(plan).manual] == [(Action.CHANGE_EMAIL, "R11", "piet@old.nl")]


def test_stages_are_ordered_and_bulk_grants_merge_r10(sb: Sandbox) -> None:
    sb.write(ADMIN)
    for name in ("a", "b", "c"):
        sb.new_means(f"{name}@acme.nl")
    sb.new_means("gone@acme.nl")
    users = ADMIN + "".join(
        f"  - {{email: {n}@acme.nl, name: {n.title()}, role: gebruiker, level: EH3, second_factor: {{type: otp}},"
        " authorisations: [{service: uwv/werkgeversportaal, until: 2028-01-01}]}\n" for n in "abc")
    sb.write(users + "  - {email: new@acme.nl, name: New, role: gebruiker, level: EH2}\n",
             extra="policy: {prune: true, max_removals: 5}\n")
    plan = sb.plan()
    changes = org(plan).changes
    assert [c.stage for c in changes] == sorted(c.stage for c in changes)
    assert [c.action for c in changes] == [Action.REQUEST_MEANS, Action.GRANT, Action.TERMINATE_MEANS]
    assert changes[1].target == ["a@acme.nl", "b@acme.nl", "c@acme.nl"] and plan.api_calls == 3


def test_removal_threshold_is_reported(sb: Sandbox) -> None:
    sb.write(ADMIN)
    for i in range(10):
        sb.new_means(f"u{i}@acme.nl", level="EH2")
    sb.write(ADMIN, extra="policy: {prune: true, max_removals: 20%}\n")
    plan = sb.plan()
    assert org(plan).removals == 10 and org(plan).removal_limit == 2 and plan.force_required
