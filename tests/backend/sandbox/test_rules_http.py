"""Every rule of ../shared/domain/RULES.md (R1..R20) through the HTTP API only: the sandbox controls set the
scene (organisations, approval, activation, expiry, the clock), the acting admin changes things through
`/v1`. Each refusal is checked for its status (409 for a rule), its problem+json `code` (the rule id) and
for having changed nothing (revision, means, authorisations, chain authorisations, all means of the
sandbox); the allowed counterpart is checked where there is one."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import ADMIN, KVK, Sandbox
from .scenario import OTHER_PHONE, PHONE, PROBLEM, Scenario, day, svc

pytestmark = pytest.mark.anyio

OTHER = "87654321"
THIRD = "11223344"
INTERMEDIARY = "47474747"
M = f"/v1/organisations/{KVK}/means"
AUTH = f"/v1/organisations/{KVK}/authorisations"
CHAIN = f"/v1/organisations/{KVK}/chain-authorisations"
FIVE_YEARS = "2030-06-01"          # TODAY (2025-06-01) + 5 years


@pytest.fixture
def sc(sandbox: Sandbox) -> Scenario:
    return Scenario(sandbox)


def means_path(means_id: str, what: str = "", kvk: str = KVK) -> str:
    return f"/v1/organisations/{kvk}/means/{means_id}" + (f"/{what}" if what else "")


async def active_admins(sc: Scenario, kvk: str) -> list[str]:
    """Emails of the active beheerders of `kvk`, as the sandbox controls see them."""
    return sorted(m["email"] for m in await sc.sandbox_means(kvk=kvk)
                  if m["status"] == "actief" and any(ms["kvk"] == kvk and ms["role"] == "beheerder"
                                                     for ms in m["memberships"]))


# =============================================================================================== R1
async def test_r1_the_last_staying_admin_cannot_be_demoted_or_terminated(sc: Scenario) -> None:
    bea = await sc.new_means("bea@acme.nl", role="beheerder")
    # the acting admin schedules its own end (allowed: Bea stays) ...
    data = await sc.ok("POST", means_path(sc.admin, "terminate"), {"mode": "end_of_contract"})
    assert data["result"]["terminates_on"] == "2026-06-01"
    # ... so Bea is the only admin staying: she can neither be demoted nor terminated
    await sc.refused("POST", means_path(bea, "role"), {"role": "gebruiker"}, code="R1")
    await sc.refused("POST", means_path(bea, "terminate"), {"mode": "now"}, code="R1")
    await sc.refused("POST", means_path(bea, "terminate"), {"mode": "date", "date": day(10)}, code="R1")
    await sc.refused("POST", means_path(bea, "terminate"), {"mode": "end_of_contract"}, code="R1")
    # allowed once a third active admin stays
    await sc.new_means("cor@acme.nl", role="beheerder")
    data = await sc.ok("POST", means_path(bea, "role"), {"role": "gebruiker"})
    assert data["result"]["role"] == "gebruiker"


async def test_r1_an_admin_awaiting_activation_does_not_count(sc: Scenario) -> None:
    bea = await sc.new_means("bea@acme.nl", role="beheerder")
    waiting = await sc.new_means("wim@acme.nl", role="beheerder", until="wachten_op_activatie")
    await sc.ok("POST", means_path(sc.admin, "terminate"), {"mode": "date", "date": day(30)})
    await sc.refused("POST", means_path(bea, "role"), {"role": "gebruiker"}, code="R1")
    await sc.refused("POST", means_path(bea, "terminate"), {"mode": "now"}, code="R1")
    await sc.step(waiting, "activate")                     # now Wim counts
    data = await sc.ok("POST", means_path(bea, "role"), {"role": "gebruiker"})
    assert data["result"]["role"] == "gebruiker"
    assert await active_admins(sc, KVK) == [ADMIN, "wim@acme.nl"]


async def test_r1_two_admins_cannot_schedule_each_others_termination(sc: Scenario) -> None:
    bea = await sc.new_means("bea@acme.nl", role="beheerder")
    bea_token = await sc.token_of(bea)
    data = await sc.ok("POST", means_path(bea, "terminate"), {"mode": "date", "date": day(10)})
    assert data["result"]["terminates_on"] == day(10)
    # Bea, on her way out, cannot schedule (or do) the same to the only admin who stays
    for body in ({"mode": "date", "date": day(20)}, {"mode": "date", "date": day(5)}, {"mode": "end_of_contract"},
                 {"mode": "now"}):
        await sc.refused("POST", means_path(sc.admin, "terminate"), body, code="R1", token=bea_token)
    await sc.refused("POST", means_path(sc.admin, "role"), {"role": "gebruiker"}, code="R1", token=bea_token)
    # and the admin who stays cannot leave while Bea is scheduled to go (R3: it is the acting admin itself)
    await sc.refused("POST", means_path(sc.admin, "terminate"), {"mode": "end_of_contract"}, code="R3")
    clock = await sc.clock(advance=10)
    assert clock["swept"]["memberships_terminated"] == 1
    assert await active_admins(sc, KVK) == [ADMIN]


async def test_r1_a_scheduled_end_of_the_last_means_cannot_leave_later_members_without_an_admin(
        sc: Scenario) -> None:
    """The only means may schedule its own end (R14, 3.4.1: it ends the organisation). If users are added
    before that day, the day must not leave them in an organisation without an active admin (R1)."""
    data = await sc.ok("POST", means_path(sc.admin, "terminate"), {"mode": "date", "date": day(10)})
    assert data["result"]["terminates_on"] == day(10)
    r = await sc.call("POST", M, sc.means_body("uma@acme.nl"))
    if r.status_code == 409:                                   # refusing the new member is one correct answer
        assert r.json()["code"] in ("R1", "R3", "R14")
        return
    assert r.status_code == 201, r.text
    uma = r.json()["result"]["id"]
    await sc.step(uma, "approve")
    await sc.step(uma, "activate")
    await sc.clock(advance=10)
    left = [m for m in await sc.sandbox_means(kvk=KVK)]
    assert not left or await active_admins(sc, KVK), (
        f"organisation {KVK} still has members {[m['email'] for m in left]} but no active beheerder")


# =============================================================================================== R2
async def test_r2_an_admin_needs_eh2plus(sc: Scenario) -> None:
    await sc.refused("POST", M, sc.means_body("low@acme.nl", level="EH2", role="beheerder"), code="R2")
    data = await sc.ok("POST", M, sc.means_body("plus@acme.nl", level="EH2+", role="beheerder"), status=201)
    assert data["result"]["role"] == "beheerder" and data["result"]["level"] == "EH2+"

    eh2 = await sc.new_means("eh2@acme.nl", level="EH2")
    eh2plus = await sc.new_means("eh2plus@acme.nl", level="EH2+")
    await sc.refused("POST", means_path(eh2, "role"), {"role": "beheerder"}, code="R2")
    assert (await sc.ok("POST", means_path(eh2plus, "role"), {"role": "beheerder"}))["result"]["role"] == "beheerder"

    # an admin cannot be lowered below EH2+ (but to EH2+ is fine)
    bea = await sc.new_means("bea@acme.nl", role="beheerder")
    await sc.refused("POST", means_path(bea, "level"), {"level": "EH2"}, code="R2")
    data = await sc.ok("POST", means_path(bea, "level"), {"level": "EH2+"}, status=202)
    assert data["result"]["pending"] == {"kind": "level", "level": "EH2+"}


async def test_r2_linking_an_eh2_means_as_admin_is_refused(sc: Scenario) -> None:
    await sc.create_org(OTHER, email=ADMIN)                    # the acting admin is admin there too
    eh2 = await sc.new_means("eh2@acme.nl", level="EH2")
    await sc.refused("POST", means_path(eh2, "links"), {"kvk": OTHER, "role": "beheerder"}, code="R2",
                     kvks=(KVK, OTHER))
    data = await sc.ok("POST", means_path(eh2, "links"), {"kvk": OTHER, "role": "gebruiker"}, status=202)
    assert data["result"]["pending"] == {"kind": "link", "kvk": OTHER, "role": "gebruiker"}


async def test_r2_the_supplier_does_not_register_an_eh2_admin(sc: Scenario) -> None:
    r = await sc.client.post("/sandbox/organisations", json={
        "kvk": OTHER, "name": "Other", "admin": {"email": "o@other.nl", "name": "O", "level": "EH2"}})
    assert r.status_code == 409 and r.json()["code"] == "R2"
    assert await sc.sandbox_means(email="o@other.nl") == []


async def test_r2_a_means_with_a_pending_downgrade_does_not_become_an_admin_by_registration(sc: Scenario) -> None:
    """The supplier registers a new organisation with the existing means of the admin's address (R15) and
    checks R2 against its current level; a downgrade to EH2 still pending must not slip past that check."""
    uma = await sc.new_means("uma@acme.nl", level="EH3")
    await sc.ok("POST", means_path(uma, "level"), {"level": "EH2"}, status=202)
    r = await sc.client.post("/sandbox/organisations", json={
        "kvk": OTHER, "name": "Other", "admin": {"email": "uma@acme.nl", "name": "Uma", "level": "EH3"}})
    if r.status_code == 409:
        assert r.json()["code"] in ("R2", "R6")
        assert await sc.sandbox_means(kvk=OTHER) == []
        return
    assert r.status_code == 201, r.text
    approved = await sc.client.post(f"/sandbox/means/{uma}/approve")
    held = (await sc.sandbox_means(email="uma@acme.nl"))[0]
    admin_of = [ms["kvk"] for ms in held["memberships"] if ms["role"] == "beheerder"]
    assert not admin_of or held["level"] in ("EH2+", "EH3", "EH4"), (
        f"approve answered {approved.status_code}; {held['email']} is now {held['level']} and beheerder of {admin_of}")


async def test_r16_the_supplier_refuses_a_first_admin_with_the_rules_own_messages(sc: Scenario) -> None:
    """Registration checks the first admin through the rules module (R1, R2, R13, R19): a client sees the same
    code and detail as before that move, and nothing is created."""
    expired = await sc.new_means("eva@acme.nl", until="activatie_verlopen")
    tax = await sc.new_means("tom@acme.nl", type="belastingdienst")
    uma = await sc.new_means("uma@acme.nl")
    await sc.ok("POST", means_path(uma, "level"), {"level": "EH2"}, status=202)     # a downgrade, pending
    cases = [
        ({"email": "EVA@acme.nl", "name": "Eva"}, "R1",
         "EVA@acme.nl holds a means that is activatie_verlopen; the first beheerder must be active"),
        ({"email": "uma@acme.nl", "name": "Uma"}, "R2",
         "a beheerder needs level EH2+ or higher; uma@acme.nl has EH2 (pending or current)"),
        ({"email": "tom@acme.nl", "name": "Tom"}, "R13", "a belastingdienst means cannot be a beheerder"),
        ({"email": "o@other.nl", "name": "O", "level": "EH2"}, "R2", "a beheerder needs level EH2+ or higher, not EH2"),
        ({"email": "o@other.nl", "name": "O", "second_factor": "sms"}, "R19",
         "second factor sms needs a mobile number"),
    ]
    for admin, code, detail in cases:
        r = await sc.client.post("/sandbox/organisations", json={"kvk": OTHER, "name": "Other", "admin": admin})
        assert r.status_code == 409 and (r.json()["code"], r.json()["detail"]) == (code, detail), r.text
    assert await sc.sandbox_means(kvk=OTHER) == [] and await sc.sandbox_means(email="o@other.nl") == []
    assert {m["id"] for m in await sc.sandbox_means(kvk=KVK)} >= {expired, tax, uma}


# =============================================================================================== R3
async def test_r3_you_cannot_demote_yourself_even_with_another_admin(sc: Scenario) -> None:
    bea = await sc.new_means("bea@acme.nl", role="beheerder")
    await sc.refused("POST", means_path(sc.admin, "role"), {"role": "gebruiker"}, code="R3")
    # another admin can
    data = await sc.ok("POST", means_path(sc.admin, "role"), {"role": "gebruiker"}, token=await sc.token_of(bea))
    assert data["result"]["role"] == "gebruiker"


async def test_r3_you_cannot_change_your_own_phone(sc: Scenario) -> None:
    sms_admin, token = await sc.create_org(OTHER, email="sam@other.nl", phone=PHONE)
    assert (await sc.means(sms_admin, OTHER))["second_factor"] == {"type": "sms", "phone": PHONE}  # type: ignore[index]
    await sc.refused("POST", means_path(sms_admin, "phone", OTHER), {"phone": OTHER_PHONE}, code="R3",
                     token=token, kvks=(OTHER,))
    tim = await sc.new_means("tim@other.nl", kvk=OTHER, role="beheerder", token=token)
    data = await sc.ok("POST", means_path(sms_admin, "phone", OTHER), {"phone": OTHER_PHONE},
                       token=await sc.token_of(tim))
    assert data["result"]["second_factor"] == {"type": "sms", "phone": OTHER_PHONE}


async def test_r3_you_cannot_terminate_yourself_as_the_only_admin(sc: Scenario) -> None:
    await sc.new_means("uma@acme.nl")                                       # a user: not an admin
    await sc.new_means("wim@acme.nl", role="beheerder", until="wachten_op_activatie")  # not active
    for body in ({"mode": "now"}, {"mode": "date", "date": day(7)}, {"mode": "end_of_contract"}):
        await sc.refused("POST", means_path(sc.admin, "terminate"), body, code="R3")
    await sc.new_means("bea@acme.nl", role="beheerder")
    data = await sc.ok("POST", means_path(sc.admin, "terminate"), {"mode": "now"})
    assert data["result"]["removed"] and data["result"]["means_deleted"]
    r = await sc.call("GET", "/v1/me")
    assert r.status_code == 401                               # the terminated means' token ended with it


async def test_r3_r14_the_sole_admin_with_no_other_means_active_may_end_the_organisation(sc: Scenario) -> None:
    """Issue #13 (manual 3.4.1, "Omdat er geen andere gebruikers actief zijn"): with no other means of the
    organisation active, its sole admin may terminate its own means now, and that ends the organisation, its
    not-yet-active means too; a scheduled end stays refused (it would leave an organisation without admin)."""
    waiting = await sc.new_means("wim@acme.nl", role="beheerder", until="wachten_op_activatie")
    lapsed = await sc.new_means("lot@acme.nl", until="activatie_verlopen")
    for body in ({"mode": "date", "date": day(7)}, {"mode": "end_of_contract"}):
        problem = await sc.refused("POST", means_path(sc.admin, "terminate"), body, code="R3")
        assert "only a termination now is possible" in problem["detail"], problem
    data = await sc.ok("POST", means_path(sc.admin, "terminate"), {"mode": "now"})
    assert data["result"]["organisation_deleted"] and data["result"]["means_deleted"], data
    assert await sc.sandbox_means(kvk=KVK) == []
    assert {m["id"] for m in await sc.sandbox_means()} & {waiting, lapsed, sc.admin} == set()


# =============================================================================================== R4
async def test_r4_new_means_and_upgrades_only_up_to_your_own_level(sc: Scenario) -> None:
    await sc.refused("POST", M, sc.means_body("eh4@acme.nl", level="EH4"), code="R4")
    user = await sc.new_means("uma@acme.nl", level="EH3")
    await sc.refused("POST", means_path(user, "level"), {"level": "EH4"}, code="R4")

    plus, plus_token = await sc.create_org(OTHER, email="pim@other.nl", level="EH2+", phone=PHONE)
    await sc.refused("POST", f"/v1/organisations/{OTHER}/means", sc.means_body("x@other.nl", level="EH3"),
                     code="R4", token=plus_token, kvks=(OTHER,))
    eh2 = await sc.new_means("e2@other.nl", kvk=OTHER, level="EH2", token=plus_token)
    await sc.refused("POST", means_path(eh2, "level", OTHER),
                     {"level": "EH3", "second_factor": {"type": "otp"}}, code="R4", token=plus_token, kvks=(OTHER,))
    # up to the own level is fine
    data = await sc.ok("POST", means_path(eh2, "level", OTHER), {"level": "EH2+", "second_factor": {"type": "otp"}},
                       status=202, token=plus_token)
    assert data["result"]["pending"]["level"] == "EH2+"
    data = await sc.ok("POST", f"/v1/organisations/{OTHER}/means", sc.means_body("y@other.nl", level="EH2+"),
                       status=201, token=plus_token)
    assert data["result"]["level"] == "EH2+"


async def test_r4_links_only_to_your_own_organisations(sc: Scenario) -> None:
    await sc.create_org(OTHER, email="olga@other.nl")                   # the acting admin is not linked there
    user = await sc.new_means("uma@acme.nl")
    await sc.refused("POST", means_path(user, "links"), {"kvk": OTHER, "role": "gebruiker"}, code="R4",
                     kvks=(KVK, OTHER))
    await sc.refused("POST", means_path(user, "links"), {"kvk": THIRD, "role": "gebruiker"}, code="R4")  # unknown
    await sc.create_org(THIRD, email=ADMIN)
    await sc.ok("POST", means_path(user, "links"), {"kvk": THIRD, "role": "gebruiker"}, status=202)


async def test_r4_links_only_into_organisations_where_you_are_beheerder(sc: Scenario) -> None:
    """Issue #13, the escalation path: an admin of acme who is only a gebruiker in OTHER links a colleague into
    OTHER as beheerder; once the supplier approved, that colleague would demote OTHER's own admin. Manual 3.8.1:
    links go only into organisations "waarvoor u als beheerder staat geregistreerd"."""
    _, acting_in_other = await sc.create_org(OTHER, email=ADMIN)       # the acting admin is beheerder in OTHER ...
    eve = await sc.new_means("eve@other.nl", kvk=OTHER, role="beheerder", token=acting_in_other)
    eve_token = await sc.token_of(eve)
    me = (await sc.sandbox_means(email=ADMIN))[0]["id"]
    await sc.ok("POST", means_path(me, "role", OTHER), {"role": "gebruiker"}, token=eve_token)   # ... then a gebruiker
    colleague = await sc.new_means("col@acme.nl", role="gebruiker")
    for role in ("beheerder", "gebruiker"):
        problem = await sc.refused("POST", means_path(colleague, "links"), {"kvk": OTHER, "role": role}, code="R4",
                                   kvks=(KVK, OTHER))
        assert "gebruiker of organisation" in problem["detail"], problem
    # nothing pending, so nothing for the supplier to approve: the colleague never reaches OTHER
    held = await sc.means(colleague)
    assert held is not None and held["pending"] is None
    assert [m["email"] for m in await sc.sandbox_means(kvk=OTHER)] == sorted([ADMIN, "eve@other.nl"])
    # Eve, beheerder in OTHER, keeps her role: nobody came in to demote her
    assert await active_admins(sc, OTHER) == ["eve@other.nl"]


async def test_r4_links_only_up_to_your_own_level(sc: Scenario) -> None:
    lea = await sc.new_means("lea@acme.nl", level="EH2+", role="beheerder")
    _, _ = await sc.create_org(OTHER, email="lea@acme.nl")             # Lea (EH2+) is admin of both
    lea_token = await sc.token_of(lea)
    eh3 = await sc.new_means("drie@acme.nl", level="EH3")
    eh2 = await sc.new_means("twee@acme.nl", level="EH2")
    await sc.refused("POST", means_path(eh3, "links"), {"kvk": OTHER, "role": "gebruiker"}, code="R4",
                     token=lea_token, kvks=(KVK, OTHER))
    data = await sc.ok("POST", means_path(eh2, "links"), {"kvk": OTHER, "role": "gebruiker"}, status=202,
                       token=lea_token)
    assert data["result"]["pending"] == {"kind": "link", "kvk": OTHER, "role": "gebruiker"}


# =============================================================================================== R5
async def test_r5_lifecycle_request_approve_activate(sc: Scenario) -> None:
    data = await sc.ok("POST", M, sc.means_body("bob@acme.nl"), status=201)
    bob = data["result"]["id"]
    assert (data["result"]["status"], data["result"]["activation_deadline"]) == ("wachten_op_goedkeuring", None)
    # only the supplier approves, only the holder activates: /v1 has no way to do either
    for step in ("approve", "activate"):
        r = await sc.call("POST", means_path(bob, step))
        assert r.status_code in (404, 405) and r.headers["content-type"].startswith(PROBLEM)
    assert (await sc.means(bob))["status"] == "wachten_op_goedkeuring"  # type: ignore[index]
    r = await sc.client.post(f"/sandbox/means/{bob}/activate")          # not approved yet
    assert r.status_code == 409 and r.json()["code"] == "R5"

    data = await sc.step(bob, "approve")
    assert data["means"]["status"] == "wachten_op_activatie"
    assert data["means"]["activation_deadline"] == day(30) == "2025-07-01"
    r = await sc.client.post(f"/sandbox/means/{bob}/approve")           # nothing left to approve
    assert r.status_code == 409 and r.json()["code"] == "R5"
    data = await sc.step(bob, "activate")
    assert (data["means"]["status"], data["means"]["activation_deadline"]) == ("actief", None)
    assert (await sc.means(bob))["status"] == "actief"  # type: ignore[index]


async def test_r5_activation_lapses_after_30_days_and_a_new_invitation_only_then(sc: Scenario) -> None:
    bob = await sc.new_means("bob@acme.nl", until="wachten_op_activatie")
    await sc.refused("POST", means_path(bob, "invitation"), code="R5")          # not lapsed yet
    await sc.clock(advance=30)                                                 # the deadline day itself
    assert (await sc.means(bob))["status"] == "wachten_op_activatie"  # type: ignore[index]
    clock = await sc.clock(advance=1)
    assert clock["today"] == "2025-07-02" and clock["swept"]["activations_expired"] == 1
    assert (await sc.means(bob))["status"] == "activatie_verlopen"  # type: ignore[index]
    r = await sc.client.post(f"/sandbox/means/{bob}/activate")                 # too late
    assert r.status_code == 409 and r.json()["code"] == "R5"
    assert (await sc.means(bob))["status"] == "activatie_verlopen"  # type: ignore[index]

    data = await sc.ok("POST", means_path(bob, "invitation"))
    assert (data["result"]["status"], data["result"]["activation_deadline"]) == ("wachten_op_activatie",
                                                                                "2025-08-01")
    await sc.refused("POST", means_path(bob, "invitation"), code="R5")          # once is enough
    await sc.step(bob, "activate")
    assert (await sc.means(bob))["status"] == "actief"  # type: ignore[index]
    await sc.refused("POST", means_path(await sc.new_means("act@acme.nl"), "invitation"), code="R5")


async def test_r5_a_rejected_request_disappears(sc: Scenario) -> None:
    bob = await sc.new_means("bob@acme.nl", until="wachten_op_goedkeuring")
    data = await sc.step(bob, "reject")
    assert data["means"] is None
    assert await sc.means(bob) is None
    listed = await sc.ok("GET", M)
    assert [m["email"] for m in listed["items"]] == [ADMIN]
    assert await sc.sandbox_means(email="bob@acme.nl") == []
    # the address is free again
    again = await sc.ok("POST", M, sc.means_body("bob@acme.nl"), status=201)
    assert again["result"]["id"] != bob


async def test_r5_no_link_or_level_change_before_approval_and_activation(sc: Scenario) -> None:
    await sc.create_org(OTHER, email=ADMIN)
    requested = await sc.new_means("req@acme.nl", until="wachten_op_goedkeuring")
    await sc.refused("POST", means_path(requested, "links"), {"kvk": OTHER, "role": "gebruiker"}, code="R5",
                     kvks=(KVK, OTHER))
    waiting = await sc.new_means("wait@acme.nl", level="EH2+", until="wachten_op_activatie")
    await sc.refused("POST", means_path(waiting, "level"), {"level": "EH3"}, code="R5")


# =============================================================================================== R6
async def test_r6_a_pending_level_change_blocks_other_changes_until_approved(sc: Scenario) -> None:
    await sc.create_org(OTHER, email=ADMIN)
    uma = await sc.new_means("uma@acme.nl", level="EH2+")
    data = await sc.ok("POST", means_path(uma, "level"), {"level": "EH3"}, status=202)
    assert data["result"]["level"] == "EH2+" and data["result"]["pending"] == {"kind": "level", "level": "EH3"}
    for what, body in [("level", {"level": "EH2"}), ("role", {"role": "beheerder"}),
                       ("phone", {"phone": OTHER_PHONE}), ("type", {"type": "belastingdienst"}),
                       ("terminate", {"mode": "end_of_contract"}), ("terminate", {"mode": "date", "date": day(30)}),
                       ("links", {"kvk": OTHER, "role": "gebruiker"})]:
        await sc.refused("POST", means_path(uma, what), body, code="R6", kvks=(KVK, OTHER))
    await sc.step(uma, "approve")
    after = await sc.means(uma)
    assert after is not None and (after["level"], after["pending"]) == ("EH3", None)
    assert (await sc.ok("POST", means_path(uma, "role"), {"role": "beheerder"}))["result"]["role"] == "beheerder"


async def test_r14_a_leaver_is_terminated_now_while_a_change_is_pending_and_the_change_lapses(sc: Scenario) -> None:
    """Issue #13 (manual 3.4): a termination "per direct" is processed at once, also while a level change or
    link of the means awaits the supplier (R6 guards changes, not the exit of a leaver); the change lapses."""
    await sc.create_org(OTHER, email=ADMIN)
    uma = await sc.new_means("uma@acme.nl", level="EH2+")
    await sc.ok("POST", means_path(uma, "level"), {"level": "EH3"}, status=202)
    data = await sc.ok("POST", means_path(uma, "terminate"), {"mode": "now"})
    assert data["result"]["removed"] and data["result"]["means_deleted"], data
    assert await sc.means(uma) is None
    # a means linked to two organisations stays in the other one, without the change it awaited
    bo = await sc.new_means("bo@acme.nl", level="EH2+")
    await sc.ok("POST", means_path(bo, "links"), {"kvk": OTHER, "role": "gebruiker"}, status=202)
    await sc.step(bo, "approve")
    await sc.ok("POST", means_path(bo, "level"), {"level": "EH3"}, status=202)
    data = await sc.ok("POST", means_path(bo, "terminate"), {"mode": "now"})
    assert data["result"]["removed"] and not data["result"]["means_deleted"], data
    there = await sc.means(bo, OTHER)
    assert there is not None and (there["level"], there["pending"]) == ("EH2+", None)


async def test_r6_a_rejected_level_change_frees_the_means(sc: Scenario) -> None:
    uma = await sc.new_means("uma@acme.nl", level="EH2+")
    await sc.ok("POST", means_path(uma, "level"), {"level": "EH3"}, status=202)
    await sc.step(uma, "reject")
    after = await sc.means(uma)
    assert after is not None and (after["level"], after["pending"]) == ("EH2+", None)
    await sc.ok("POST", means_path(uma, "phone"), {"phone": OTHER_PHONE})


async def test_r6_a_pending_link_blocks_an_email_change(sc: Scenario) -> None:
    await sc.create_org(OTHER, email=ADMIN)
    wim = await sc.new_means("wim@acme.nl", until="wachten_op_activatie")
    await sc.ok("POST", means_path(wim, "links"), {"kvk": OTHER, "role": "gebruiker"}, status=202)
    await sc.refused("POST", means_path(wim, "email"), {"email": "wim@elders.nl"}, code="R6", kvks=(KVK, OTHER))
    await sc.step(wim, "approve")
    data = await sc.ok("POST", means_path(wim, "email"), {"email": "wim@elders.nl"})
    assert data["result"]["email"] == "wim@elders.nl" and data["result"]["organisations"] == [KVK, OTHER]


async def test_r6_no_grant_above_the_level_a_pending_downgrade_will_leave(sc: Scenario) -> None:
    """A downgrade is checked against the held authorisations (R8) when it is requested; a grant accepted
    while it is pending must not slip past that check, or approving it leaves an EH2 means holding an EH3
    service."""
    uma = await sc.new_means("uma@acme.nl", level="EH3")
    await sc.ok("POST", means_path(uma, "level"), {"level": "EH2"}, status=202)
    before = await sc.snapshot()
    r = await sc.grant([uma], ["wij-techniek/account-verificatie"])
    if r.status_code == 200:
        await sc.step(uma, "approve")
        after = await sc.means(uma)
        pytest.fail(f"a grant of an EH3 service was accepted while a downgrade to EH2 was pending; once approved "
                    f"the means is {after['level'] if after else None} and holds {await sc.authorisations()} (R8)")
    assert r.status_code == 409 and r.json()["code"] in ("R6", "R8"), r.text
    assert await sc.snapshot() == before


# =============================================================================================== R7
async def test_r7_authorisations_only_for_active_means(sc: Scenario) -> None:
    active = await sc.new_means("act@acme.nl")
    for until in ("wachten_op_goedkeuring", "wachten_op_activatie", "activatie_verlopen"):
        inactive = await sc.new_means(f"{until}@acme.nl", until=until)
        await sc.refused("POST", AUTH, {"means_ids": [inactive], "services": svc("rvo/tenderned")}, code="R7")
        # one inactive means in the bulk refuses the whole bulk: nothing for the active one either
        await sc.refused("POST", AUTH, {"means_ids": [active, inactive], "services": svc("rvo/tenderned")},
                         code="R7")
    data = await sc.ok("POST", AUTH, {"means_ids": [active], "services": svc("rvo/tenderned")})
    assert data["result"]["created"] == 1
    assert await sc.authorisations() == {(active, "rvo/tenderned"): FIVE_YEARS}


# =============================================================================================== R8
async def test_r8_the_level_must_cover_the_service(sc: Scenario) -> None:
    eh2 = await sc.new_means("twee@acme.nl", level="EH2")
    eh3 = await sc.new_means("drie@acme.nl", level="EH3")
    await sc.refused("POST", AUTH, {"means_ids": [eh2], "services": svc("wij-techniek/account-verificatie")},
                     code="R8")
    await sc.refused("POST", AUTH, {"means_ids": [eh2], "services": svc("mijn-overheid/ondernemers")}, code="R8")
    # general authority level N needs level N
    await sc.refused("POST", AUTH, {"means_ids": [eh2], "services": svc("algemene-bevoegdheid-2plus")}, code="R8")
    await sc.ok("POST", AUTH, {"means_ids": [eh2], "services": svc("algemene-bevoegdheid-2", "rvo/tenderned")})
    assert set(await sc.authorisations()) == {(eh2, "algemene-bevoegdheid-2"), (eh2, "rvo/tenderned")}
    # the bulk's highest level decides: EH2 + EH3 services are too much for EH2, fine for EH3
    bulk = svc("gemeente-baarle-nassau/subsidieportaal", "wij-techniek/account-verificatie")
    await sc.refused("POST", AUTH, {"means_ids": [eh2], "services": bulk}, code="R8")
    await sc.refused("POST", AUTH, {"means_ids": [eh3, eh2], "services": bulk}, code="R8")
    data = await sc.ok("POST", AUTH, {"means_ids": [eh3], "services": bulk})
    assert data["result"]["created"] == 2


async def test_r8_no_downgrade_below_a_held_service(sc: Scenario) -> None:
    uma = await sc.new_means("uma@acme.nl", level="EH3")
    await sc.ok("POST", AUTH, {"means_ids": [uma], "services": svc("wij-techniek/account-verificatie",
                                                                    "rvo/tenderned")})
    await sc.refused("POST", means_path(uma, "level"), {"level": "EH2+"}, code="R8")
    await sc.ok("POST", f"{AUTH}/revoke", {"means_ids": [uma], "services": svc("wij-techniek/account-verificatie")})
    data = await sc.ok("POST", means_path(uma, "level"), {"level": "EH2+"}, status=202)
    assert data["result"]["pending"] == {"kind": "level", "level": "EH2+"}


# =============================================================================================== R9
async def test_r9_end_dates_between_tomorrow_and_five_years(sc: Scenario) -> None:
    uma = await sc.new_means("uma@acme.nl")
    tender = svc("rvo/tenderned")
    for end in (day(0), day(-1), "2030-06-02"):
        await sc.refused("POST", AUTH, {"means_ids": [uma], "services": tender, "end_date": end}, code="R9")
    data = await sc.ok("POST", AUTH, {"means_ids": [uma], "services": tender})
    assert data["result"]["end_date"] == FIVE_YEARS                       # the default
    for end in (day(1), FIVE_YEARS):
        data = await sc.ok("POST", AUTH, {"means_ids": [uma], "services": tender, "end_date": end})
        assert data["result"]["end_date"] == end
    for end in (day(0), "2030-06-02"):
        await sc.refused("POST", f"{AUTH}/end-date", {"means_ids": [uma], "services": tender, "end_date": end},
                         code="R9")


async def test_r9_five_years_from_29_february_is_28_february(sc: Scenario) -> None:
    await sc.clock(today="2028-02-29")
    uma = await sc.new_means("uma@acme.nl")
    await sc.refused("POST", AUTH, {"means_ids": [uma], "services": svc("rvo/tenderned"), "end_date": "2033-03-01"},
                     code="R9")
    data = await sc.ok("POST", AUTH, {"means_ids": [uma], "services": svc("rvo/tenderned")})
    assert data["result"]["end_date"] == "2033-02-28"


async def test_r9_revoke_is_immediate_and_final_and_can_be_granted_again(sc: Scenario) -> None:
    uma = await sc.new_means("uma@acme.nl")
    await sc.ok("POST", AUTH, {"means_ids": [uma], "services": svc("rvo/tenderned"), "end_date": day(100)})
    data = await sc.ok("POST", f"{AUTH}/revoke", {"means_ids": [uma], "services": svc("rvo/tenderned")})
    assert data["result"] == {"revoked": 1}
    assert await sc.authorisations() == {}
    await sc.refused("POST", f"{AUTH}/revoke", {"means_ids": [uma], "services": svc("rvo/tenderned")},
                     code="not-found", status=404)
    data = await sc.ok("POST", AUTH, {"means_ids": [uma], "services": svc("rvo/tenderned")})
    assert (data["result"]["created"], data["result"]["end_date"]) == (1, FIVE_YEARS)


async def test_r9_expired_authorisations_disappear_when_the_clock_passes(sc: Scenario) -> None:
    uma = await sc.new_means("uma@acme.nl")
    await sc.ok("POST", AUTH, {"means_ids": [uma], "services": svc("rvo/tenderned"), "end_date": day(9)})
    await sc.ok("POST", AUTH, {"means_ids": [uma], "services": svc("wij-techniek/account-verificatie")})
    await sc.clock(advance=8)
    assert set(await sc.authorisations()) == {(uma, "rvo/tenderned"), (uma, "wij-techniek/account-verificatie")}
    rev = await sc.revision()
    clock = await sc.clock(advance=1)
    assert clock["swept"]["authorisations_expired"] == 1
    assert await sc.authorisations() == {(uma, "wij-techniek/account-verificatie"): FIVE_YEARS}
    assert await sc.revision() == rev + 1


# ============================================================================================== R10
async def test_r10_one_bulk_grants_services_times_users_and_overwrites_end_dates(sc: Scenario) -> None:
    users = [await sc.new_means(f"u{i}@acme.nl") for i in range(3)]
    two = svc("rvo/tenderned", "wij-techniek/account-verificatie")
    rev = await sc.revision()
    data = await sc.ok("POST", AUTH, {"means_ids": users, "services": two, "end_date": day(300)})
    assert data["result"] == {"authorisations": 6, "created": 6, "updated": 0, "end_date": day(300)}
    assert data["revision"] == rev + 1                                      # one request, one revision
    held = await sc.authorisations()
    assert len(held) == 6 and set(held.values()) == {day(300)}

    # re-granting overwrites the end date of the existing ones and adds the new ones
    both = svc("rvo/tenderned", "mijn-overheid/ondernemers")
    data = await sc.ok("POST", AUTH, {"means_ids": users[:2], "services": both, "end_date": day(50)})
    assert data["result"] == {"authorisations": 4, "created": 2, "updated": 2, "end_date": day(50)}
    held = await sc.authorisations()
    assert len(held) == 8
    assert held[(users[0], "rvo/tenderned")] == held[(users[1], "mijn-overheid/ondernemers")] == day(50)
    assert held[(users[2], "rvo/tenderned")] == held[(users[0], "wij-techniek/account-verificatie")] == day(300)

    # a bulk end-date change re-dates exactly the listed pairs
    data = await sc.ok("POST", f"{AUTH}/end-date", {"means_ids": users, "services": two, "end_date": day(20)})
    assert data["result"] == {"authorisations": 6, "end_date": day(20)}
    held = await sc.authorisations()
    assert [held[(u, k)] for u in users for k in ("rvo/tenderned", "wij-techniek/account-verificatie")] == [day(20)] * 6
    assert held[(users[0], "mijn-overheid/ondernemers")] == day(50)
    # ... and each pair must exist: a missing one refuses the whole bulk
    await sc.refused("POST", f"{AUTH}/end-date", {"means_ids": users, "services": both, "end_date": day(10)},
                     code="not-found", status=404)


# ============================================================================================== R11
async def test_r11_email_changes_only_before_activation(sc: Scenario) -> None:
    active = await sc.new_means("act@acme.nl")
    await sc.refused("POST", means_path(active, "email"), {"email": "act@elders.nl"}, code="R11")
    for until in ("wachten_op_goedkeuring", "wachten_op_activatie"):
        means_id = await sc.new_means(f"{until}@acme.nl", until=until)
        data = await sc.ok("POST", means_path(means_id, "email"), {"email": f"new-{until}@acme.nl"})
        assert data["result"]["email"] == f"new-{until}@acme.nl"
    # the new address must not hold another means (R15)
    waiting = await sc.new_means("w@acme.nl", until="wachten_op_activatie")
    await sc.refused("POST", means_path(waiting, "email"), {"email": ADMIN.upper()}, code="R15")


# ============================================================================================== R12
async def test_r12_phone_changes_while_awaiting_activation_or_active_for_sms(sc: Scenario) -> None:
    for until in ("wachten_op_activatie", "actief"):
        means_id = await sc.new_means(f"{until}@acme.nl", until=until)
        data = await sc.ok("POST", means_path(means_id, "phone"), {"phone": OTHER_PHONE})
        assert data["result"]["second_factor"] == {"type": "sms", "phone": OTHER_PHONE}
    for until in ("wachten_op_goedkeuring", "activatie_verlopen"):
        means_id = await sc.new_means(f"{until}@acme.nl", until=until)
        await sc.refused("POST", means_path(means_id, "phone"), {"phone": OTHER_PHONE}, code="R12")
    otp = await sc.new_means("otp@acme.nl", factor="otp")
    await sc.refused("POST", means_path(otp, "phone"), {"phone": OTHER_PHONE}, code="R12")
    none = await sc.new_means("eh2@acme.nl", level="EH2")
    await sc.refused("POST", means_path(none, "phone"), {"phone": OTHER_PHONE}, code="R12")


# ============================================================================================== R13
async def test_r13_the_tax_means_is_eh3_never_admin_and_one_per_organisation(sc: Scenario) -> None:
    await sc.refused("POST", M, sc.means_body("t@acme.nl", level="EH2+", type="belastingdienst"), code="R13")
    await sc.refused("POST", M, sc.means_body("t@acme.nl", role="beheerder", type="belastingdienst"), code="R13")
    tax = await sc.new_means("tax@acme.nl", type="belastingdienst")
    assert (await sc.means(tax))["type"] == "belastingdienst"  # type: ignore[index]
    await sc.refused("POST", M, sc.means_body("tax2@acme.nl", type="belastingdienst"), code="R13")
    await sc.refused("POST", means_path(tax, "role"), {"role": "beheerder"}, code="R13")
    await sc.refused("POST", means_path(tax, "level"), {"level": "EH2+"}, code="R13")
    await sc.create_org(OTHER, email=ADMIN)
    await sc.refused("POST", means_path(tax, "links"), {"kvk": OTHER, "role": "beheerder"}, code="R13",
                     kvks=(KVK, OTHER))
    await sc.ok("POST", means_path(tax, "links"), {"kvk": OTHER, "role": "gebruiker"}, status=202)


async def test_r13_a_pending_link_cannot_bring_a_second_tax_means_into_an_organisation(sc: Scenario) -> None:
    """At most one belastingdienst means per organisation: the check at the link request must also hold when
    the supplier approves the link, or the target must count the pending link."""
    await sc.create_org(OTHER, email=ADMIN)
    tax = await sc.new_means("tax@acme.nl", type="belastingdienst")
    await sc.ok("POST", means_path(tax, "links"), {"kvk": OTHER, "role": "gebruiker"}, status=202)
    r = await sc.call("POST", f"/v1/organisations/{OTHER}/means", sc.means_body("tax@other.nl", type="belastingdienst"))
    assert r.status_code in (201, 409), r.text
    if r.status_code == 409:
        assert r.json()["code"] == "R13"
    approved = await sc.client.post(f"/sandbox/means/{tax}/approve")
    assert approved.status_code in (200, 409), approved.text
    if approved.status_code == 409:
        assert approved.json()["code"] == "R13"
    taxes = [m["email"] for m in await sc.sandbox_means(kvk=OTHER) if m["type"] == "belastingdienst"]
    assert len(taxes) <= 1, f"organisation {OTHER} has {len(taxes)} belastingdienst means: {taxes}"


async def test_r13_the_tax_means_gets_belastingdienst_services_only(sc: Scenario) -> None:
    tax = await sc.new_means("tax@acme.nl", type="belastingdienst")
    await sc.refused("POST", AUTH, {"means_ids": [tax], "services": svc("rvo/tenderned")}, code="R13")
    await sc.refused("POST", AUTH, {"means_ids": [tax], "services": svc("belastingdienst/aangifte-omzetbelasting",
                                                                        "uwv/werkgeversportaal")}, code="R13")
    await sc.ok("POST", AUTH, {"means_ids": [tax], "services": svc("belastingdienst/aangifte-omzetbelasting",
                                                                   "belastingdienst/loonaangifte")})
    assert len(await sc.authorisations()) == 2


async def test_r13_a_type_change_drops_the_authorisations(sc: Scenario) -> None:
    uma = await sc.new_means("uma@acme.nl", subscription="3y")
    await sc.ok("POST", AUTH, {"means_ids": [uma], "services": svc("rvo/tenderned",
                                                                   "belastingdienst/aangifte-omzetbelasting")})
    await sc.clock(advance=10)
    data = await sc.ok("POST", means_path(uma, "type"), {"type": "belastingdienst"})
    assert (data["result"]["type"], data["result"]["subscription"], data["result"]["contract_start"]) == \
        ("belastingdienst", "1y", day(10))                                  # a new subscription starts
    assert await sc.authorisations() == {}
    await sc.ok("POST", AUTH, {"means_ids": [uma], "services": svc("belastingdienst/loonaangifte")})
    data = await sc.ok("POST", means_path(uma, "type"), {"type": "regulier", "subscription": "3y"})
    assert (data["result"]["type"], data["result"]["subscription"]) == ("regulier", "3y")
    assert await sc.authorisations() == {}


async def test_r13_no_type_change_to_tax_for_an_admin_a_non_eh3_or_a_second_one(sc: Scenario) -> None:
    bea = await sc.new_means("bea@acme.nl", role="beheerder")
    await sc.refused("POST", means_path(bea, "type"), {"type": "belastingdienst"}, code="R13")
    plus = await sc.new_means("plus@acme.nl", level="EH2+")
    await sc.refused("POST", means_path(plus, "type"), {"type": "belastingdienst"}, code="R13")
    uma = await sc.new_means("uma@acme.nl")
    await sc.ok("POST", means_path(uma, "type"), {"type": "belastingdienst"})
    ida = await sc.new_means("ida@acme.nl")
    await sc.refused("POST", means_path(ida, "type"), {"type": "belastingdienst"}, code="R13")


# ============================================================================================== R14
async def test_r14_terminate_now_date_and_end_of_contract(sc: Scenario) -> None:
    now = await sc.new_means("now@acme.nl")
    later = await sc.new_means("later@acme.nl")
    yearly = await sc.new_means("yearly@acme.nl")
    triple = await sc.new_means("triple@acme.nl", subscription="3y")
    await sc.ok("POST", AUTH, {"means_ids": [now, later], "services": svc("rvo/tenderned")})

    data = await sc.ok("POST", means_path(now, "terminate"), {"mode": "now"})
    assert {k: data["result"][k] for k in ("removed", "means_deleted", "organisation_deleted")} == \
        {"removed": True, "means_deleted": True, "organisation_deleted": False}
    assert await sc.means(now) is None and await sc.sandbox_means(email="now@acme.nl") == []
    assert set(await sc.authorisations()) == {(later, "rvo/tenderned")}

    for body in ({"mode": "date", "date": day(0)}, {"mode": "date", "date": day(-3)}, {"mode": "date"}):
        await sc.refused("POST", means_path(later, "terminate"), body, code="invalid", status=422)
    data = await sc.ok("POST", means_path(later, "terminate"), {"mode": "date", "date": day(5)})
    assert (data["result"]["terminates_on"], data["result"]["removed"]) == (day(5), False)
    data = await sc.ok("POST", means_path(yearly, "terminate"), {"mode": "end_of_contract"})
    assert data["result"]["terminates_on"] == "2026-06-01"
    data = await sc.ok("POST", means_path(triple, "terminate"), {"mode": "end_of_contract"})
    assert data["result"]["terminates_on"] == "2028-06-01"

    await sc.clock(advance=4)
    assert (await sc.means(later))["terminates_on"] == day(5)  # type: ignore[index]
    clock = await sc.clock(advance=1)
    assert clock["swept"]["memberships_terminated"] == 1
    assert await sc.means(later) is None and await sc.authorisations() == {}
    await sc.clock(today="2026-06-01")
    assert await sc.means(yearly) is None and await sc.means(triple) is not None


async def test_r14_a_means_in_several_organisations_ends_per_organisation(sc: Scenario) -> None:
    await sc.create_org(OTHER, email=ADMIN)
    uma = await sc.new_means("uma@acme.nl")
    await sc.ok("POST", means_path(uma, "links"), {"kvk": OTHER, "role": "gebruiker"}, status=202)
    await sc.step(uma, "approve")
    data = await sc.ok("POST", means_path(uma, "terminate", OTHER), {"mode": "now"})
    assert (data["result"]["removed"], data["result"]["means_deleted"]) == (True, False)
    assert await sc.means(uma, OTHER) is None
    assert (await sc.means(uma, KVK))["organisations"] == [KVK]  # type: ignore[index]


async def test_r14_terminating_the_last_means_ends_the_organisation(sc: Scenario) -> None:
    last, token = await sc.create_org(OTHER, email="solo@other.nl")
    data = await sc.ok("POST", means_path(last, "terminate", OTHER), {"mode": "now"}, token=token)
    assert data["result"]["organisation_deleted"] is True
    assert await sc.sandbox_means(email="solo@other.nl") == []
    assert (await sc.call("GET", "/v1/me", token=token)).status_code == 401
    r = await sc.client.post("/sandbox/organisations", json={          # the KvK number is free again
        "kvk": OTHER, "name": "Other again", "admin": {"email": "new@other.nl", "name": "N", "level": "EH3"}})
    assert r.status_code == 201


async def test_r14_a_scheduled_end_of_the_last_means_ends_the_organisation_on_that_day(sc: Scenario) -> None:
    last, token = await sc.create_org(OTHER, email="solo@other.nl")
    await sc.ok("POST", means_path(last, "terminate", OTHER), {"mode": "date", "date": day(3)}, token=token)
    await sc.clock(advance=2)
    assert (await sc.call("GET", f"/v1/organisations/{OTHER}", token=token)).status_code == 200
    clock = await sc.clock(advance=1)
    assert clock["swept"]["organisations_deleted"] == 1
    assert (await sc.call("GET", "/v1/me", token=token)).status_code == 401


# ============================================================================================== R15
async def test_r15_one_means_per_email_address(sc: Scenario) -> None:
    await sc.refused("POST", M, sc.means_body("Anna@ACME.nl"), code="R15")         # the admin's own address
    await sc.create_org(OTHER, email="olga@other.nl")
    await sc.refused("POST", M, sc.means_body("olga@other.nl"), code="R15", kvks=(KVK, OTHER))


async def test_r15_link_instead_pending_until_approved_role_per_organisation(sc: Scenario) -> None:
    await sc.create_org(OTHER, email=ADMIN)
    uma = await sc.new_means("uma@acme.nl", level="EH3")
    data = await sc.ok("POST", means_path(uma, "links"), {"kvk": OTHER, "role": "beheerder"}, status=202)
    assert data["result"]["pending"] == {"kind": "link", "kvk": OTHER, "role": "beheerder"}
    assert await sc.means(uma, OTHER) is None                          # pending: not a member yet
    uma_token = await sc.token_of(uma)
    assert (await sc.call("GET", f"/v1/organisations/{OTHER}/means", token=uma_token)).status_code == 403
    await sc.step(uma, "approve")
    here, there = await sc.means(uma, KVK), await sc.means(uma, OTHER)
    assert here is not None and there is not None
    assert (here["role"], there["role"]) == ("gebruiker", "beheerder")
    assert here["level"] == there["level"] == "EH3" and here["id"] == there["id"]
    assert here["organisations"] == there["organisations"] == [KVK, OTHER]
    assert (await sc.call("GET", f"/v1/organisations/{OTHER}/means", token=uma_token)).status_code == 200
    assert (await sc.call("GET", M, token=uma_token)).status_code == 403
    await sc.refused("POST", means_path(uma, "links"), {"kvk": OTHER, "role": "gebruiker"}, code="already-linked",
                     kvks=(KVK, OTHER))


# ============================================================================================== R16
async def test_r16_there_is_no_v1_way_to_create_an_organisation(sc: Scenario) -> None:
    before = await sc.snapshot()
    body = {"kvk": OTHER, "name": "Other", "admin": {"email": "o@other.nl", "name": "O", "level": "EH3"}}
    for method, path in (("POST", "/v1/organisations"), ("PUT", f"/v1/organisations/{OTHER}"),
                         ("POST", f"/v1/organisations/{OTHER}")):
        r = await sc.call(method, path, body)
        assert r.status_code in (404, 405), (method, path, r.status_code)
        assert r.headers["content-type"].startswith(PROBLEM) and r.json()["status"] == r.status_code
    # a request in an unknown organisation creates nothing either
    r = await sc.call("POST", f"/v1/organisations/{OTHER}/means", sc.means_body("o@other.nl"))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert [o["kvk"] for o in (await sc.ok("GET", "/v1/organisations"))["items"]] == [KVK]
    assert await sc.snapshot() == before


async def test_r16_a_token_cannot_reach_an_organisation_it_is_not_linked_to(sc: Scenario) -> None:
    olga, olga_token = await sc.create_org(OTHER, email="olga@other.nl")
    for method, path, body in [("GET", f"/v1/organisations/{OTHER}", None),
                               ("GET", f"/v1/organisations/{OTHER}/means", None),
                               ("POST", f"/v1/organisations/{OTHER}/means", sc.means_body("x@other.nl")),
                               ("POST", f"/v1/organisations/{OTHER}/authorisations",
                                {"means_ids": [olga], "services": svc("rvo/tenderned")}),
                               ("POST", means_path(olga, "role", OTHER), {"role": "gebruiker"})]:
        if method == "GET":
            r = await sc.call(method, path)
            assert r.status_code == 403 and r.json()["code"] == "forbidden"
        else:
            await sc.refused(method, path, body, code="forbidden", status=403, kvks=(KVK, OTHER))
    assert [o["kvk"] for o in (await sc.ok("GET", "/v1/organisations"))["items"]] == [KVK]
    assert [o["kvk"] for o in (await sc.ok("GET", "/v1/organisations", token=olga_token))["items"]] == [OTHER]


# ============================================================================================== R17
async def test_r17_a_branch_number_organisation_gets_no_uwv_or_belastingdienst(sc: Scenario) -> None:
    branch_admin, token = await sc.create_org(OTHER, email="filiaal@other.nl", branch_number="123456789012")
    path = f"/v1/organisations/{OTHER}/authorisations"
    for keys in (["uwv/werkgeversportaal"], ["belastingdienst/aangifte-omzetbelasting"],
                 ["rvo/tenderned", "belastingdienst/loonaangifte"]):
        await sc.refused("POST", path, {"means_ids": [branch_admin], "services": svc(*keys)}, code="R17",
                         token=token, kvks=(OTHER,))
    data = await sc.ok("POST", path, {"means_ids": [branch_admin], "services": svc("rvo/tenderned")}, token=token)
    assert data["result"]["created"] == 1
    # without a branch number the same services are fine
    data = await sc.ok("POST", AUTH, {"means_ids": [sc.admin],
                                      "services": svc("uwv/werkgeversportaal", "belastingdienst/loonaangifte")})
    assert data["result"]["created"] == 2


# ============================================================================================== R18
def _ends(result: dict[str, Any]) -> dict[str, str]:
    """A chain authorisation answer as {service UUID: end date}."""
    return {item["service"]: item["end_date"] for item in result["services"]}


async def test_r18_chain_authorisations_issue_redate_and_remove(sc: Scenario) -> None:
    await sc.refused("POST", CHAIN, {"intermediary_kvk": KVK, "services": svc("rvo/tenderned")}, code="R18")
    data = await sc.ok("POST", CHAIN, {"intermediary_kvk": INTERMEDIARY, "name": "Boekhouder",
                                       "services": svc("rvo/tenderned")})
    assert (_ends(data["result"]), data["result"]["name"]) == ({svc("rvo/tenderned")[0]: FIVE_YEARS}, "Boekhouder")
    data = await sc.ok("POST", CHAIN, {"intermediary_kvk": INTERMEDIARY,
                                       "services": svc("belastingdienst/loonaangifte"), "end_date": day(200)})
    assert _ends(data["result"]) == {svc("rvo/tenderned")[0]: FIVE_YEARS, svc("belastingdienst/loonaangifte")[0]:
                                     day(200)}
    assert data["result"]["name"] == "Boekhouder"
    for end in (day(0), "2030-06-02"):
        await sc.refused("POST", CHAIN, {"intermediary_kvk": THIRD, "services": svc("rvo/tenderned"),
                                         "end_date": end}, code="R9")
        await sc.refused("POST", f"{CHAIN}/{INTERMEDIARY}/end-date", {"end_date": end}, code="R9")
    data = await sc.ok("POST", f"{CHAIN}/{INTERMEDIARY}/end-date", {"end_date": day(30)})
    assert set(_ends(data["result"]).values()) == {day(30)}                  # no services named: all of them
    await sc.ok("POST", CHAIN, {"intermediary_kvk": THIRD, "services": svc("rvo/tenderned")})

    r = await sc.call("DELETE", f"{CHAIN}/{INTERMEDIARY}")
    assert r.status_code == 200 and r.json()["result"] == {"intermediary_kvk": INTERMEDIARY, "removed_services": 2}
    assert list(await sc.chains()) == [THIRD]
    await sc.refused("DELETE", f"{CHAIN}/{INTERMEDIARY}", code="not-found", status=404)
    await sc.refused("POST", f"{CHAIN}/{INTERMEDIARY}/end-date", {"end_date": day(30)}, code="not-found", status=404)


async def test_r18_each_chain_authorisation_has_its_own_end_date(sc: Scenario) -> None:
    """Issue #13: adding a service with the default duration stretched an existing 30-day chain authorisation
    to five years. Now each (intermediary x service) keeps its own date through issue, end-date and revoke."""
    tender, loon, bev = svc("rvo/tenderned", "belastingdienst/loonaangifte", "algemene-bevoegdheid-3")
    await sc.ok("POST", CHAIN, {"intermediary_kvk": INTERMEDIARY, "services": [tender], "end_date": day(30)})
    data = await sc.ok("POST", CHAIN, {"intermediary_kvk": INTERMEDIARY, "services": [loon, bev]})   # 5 years
    assert _ends(data["result"]) == {tender: day(30), loon: FIVE_YEARS, bev: FIVE_YEARS}
    data = await sc.ok("POST", f"{CHAIN}/{INTERMEDIARY}/end-date", {"end_date": day(60), "services": [loon]})
    assert _ends(data["result"]) == {tender: day(30), loon: day(60), bev: FIVE_YEARS}
    await sc.refused("POST", f"{CHAIN}/{INTERMEDIARY}/end-date", {"end_date": day(60),
                                                                   "services": svc("uwv/werkgeversportaal")},
                     code="not-found", status=404)
    data = await sc.ok("POST", f"{CHAIN}/{INTERMEDIARY}/revoke", {"services": [bev]})
    assert _ends(data["result"]) == {tender: day(30), loon: day(60)}
    await sc.refused("POST", f"{CHAIN}/{INTERMEDIARY}/revoke", {"services": [bev]}, code="not-found", status=404)
    await sc.refused("POST", f"{CHAIN}/{INTERMEDIARY}/revoke", {"services": []}, code="invalid", status=422)
    listed = (await sc.chains())[INTERMEDIARY]
    assert _ends(listed) == {tender: day(30), loon: day(60)}
    # the clock ends them one by one; the intermediary goes with its last
    report = (await sc.clock(advance=30))["swept"]
    assert report["chains_expired"] == 1 and _ends((await sc.chains())[INTERMEDIARY]) == {loon: day(60)}
    data = await sc.ok("POST", f"{CHAIN}/{INTERMEDIARY}/revoke", {"services": [loon]})
    assert data["result"] is None and await sc.chains() == {}


async def test_r18_chain_authorisations_expire_with_the_clock(sc: Scenario) -> None:
    await sc.ok("POST", CHAIN, {"intermediary_kvk": INTERMEDIARY, "services": svc("rvo/tenderned"),
                                "end_date": day(5)})
    await sc.clock(advance=4)
    assert list(await sc.chains()) == [INTERMEDIARY]
    assert (await sc.clock(advance=1))["swept"]["chains_expired"] == 1
    assert await sc.chains() == {}


# ============================================================================================== R19
async def test_r19_eh2plus_and_eh3_need_a_second_factor(sc: Scenario) -> None:
    for level in ("EH2+", "EH3"):
        await sc.refused("POST", M, sc.means_body(f"{level}@acme.nl", level=level, factor=None), code="R19")
        await sc.refused("POST", M, sc.means_body(f"{level}@acme.nl", level=level, factor="sms", phone=None),
                         code="R19")
    data = await sc.ok("POST", M, sc.means_body("otp@acme.nl", level="EH3", factor="otp"), status=201)
    assert data["result"]["second_factor"] == {"type": "otp", "phone": None}
    data = await sc.ok("POST", M, sc.means_body("sms@acme.nl", level="EH2+"), status=201)
    assert data["result"]["second_factor"] == {"type": "sms", "phone": PHONE}
    data = await sc.ok("POST", M, sc.means_body("eh2@acme.nl", level="EH2"), status=201)
    assert data["result"]["second_factor"] is None


async def test_r19_eh4_needs_a_second_factor_too(sc: Scenario) -> None:
    """Issue #13: "every level from EH2+ up" (Begrippenlijst); an EH4 means without one was accepted (201)."""
    four, four_token = await sc.create_org(OTHER, email="vier@other.nl", level="EH4", second_factor="otp")
    path = f"/v1/organisations/{OTHER}/means"
    await sc.refused("POST", path, sc.means_body("x4@other.nl", level="EH4", factor=None), code="R19",
                     token=four_token, kvks=(OTHER,))
    await sc.refused("POST", path, sc.means_body("y4@other.nl", level="EH4", factor="sms", phone=None), code="R19",
                     token=four_token, kvks=(OTHER,))
    data = await sc.ok("POST", path, sc.means_body("z4@other.nl", level="EH4", factor="otp"), status=201,
                       token=four_token)
    assert (data["result"]["level"], data["result"]["second_factor"]) == ("EH4", {"type": "otp", "phone": None})
    # an upgrade from EH2 to EH4 chooses one too
    eh2 = await sc.new_means("twee@other.nl", kvk=OTHER, level="EH2", token=four_token)
    await sc.refused("POST", means_path(eh2, "level", OTHER), {"level": "EH4"}, code="R19", token=four_token,
                     kvks=(OTHER,))


async def test_r19_an_upgrade_from_eh2_chooses_a_factor_one_from_eh2plus_keeps_it(sc: Scenario) -> None:
    eh2 = await sc.new_means("twee@acme.nl", level="EH2")
    await sc.refused("POST", means_path(eh2, "level"), {"level": "EH3"}, code="R19")
    await sc.refused("POST", means_path(eh2, "level"), {"level": "EH2+", "second_factor": {"type": "sms"}},
                     code="R19")
    data = await sc.ok("POST", means_path(eh2, "level"), {"level": "EH3", "second_factor": {"type": "otp"}},
                       status=202)
    assert data["result"]["second_factor"] is None          # chosen with the change: nothing changes until approved
    await sc.step(eh2, "approve")
    approved = await sc.means(eh2)
    assert approved is not None and (approved["level"], approved["second_factor"]) == ("EH3", {"type": "otp",
                                                                                              "phone": None})

    plus = await sc.new_means("plus@acme.nl", level="EH2+")                 # sms PHONE
    data = await sc.ok("POST", means_path(plus, "level"), {"level": "EH3", "second_factor": {"type": "otp"}},
                       status=202)
    assert data["result"]["second_factor"] == {"type": "sms", "phone": PHONE}
    await sc.step(plus, "approve")
    after = await sc.means(plus)
    assert after is not None and (after["level"], after["second_factor"]) == ("EH3", {"type": "sms", "phone": PHONE})


async def test_r19_a_rejected_upgrade_leaves_the_means_as_it_was(sc: Scenario) -> None:
    """The factor chosen with an EH2 -> EH3 upgrade belongs to that change: when the supplier rejects the change
    it is dropped (rules.reject), so the EH2 means is left without a second factor, as before."""
    eh2 = await sc.new_means("twee@acme.nl", level="EH2")
    before = await sc.means(eh2)
    assert before is not None and before["second_factor"] is None
    await sc.ok("POST", means_path(eh2, "level"), {"level": "EH3", "second_factor": {"type": "sms", "phone": PHONE}},
                status=202)
    await sc.step(eh2, "reject")
    after = await sc.means(eh2)
    assert after is not None and (after["level"], after["pending"]) == ("EH2", None)
    assert after["second_factor"] is None, f"the rejected upgrade left its second factor: {after['second_factor']}"


# ============================================================================================== R20
async def test_r20_a_role_change_takes_effect_at_once(sc: Scenario) -> None:
    uma = await sc.new_means("uma@acme.nl")
    uma_token = await sc.token_of(uma)
    r = await sc.call("POST", M, sc.means_body("x@acme.nl"), token=uma_token)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"       # a gebruiker changes nothing

    r = await sc.call("POST", means_path(uma, "role"), {"role": "beheerder"})
    assert r.status_code == 200 and r.json()["result"]["role"] == "beheerder" and r.json()["result"]["pending"] is None
    data = await sc.ok("POST", M, sc.means_body("x@acme.nl"), status=201, token=uma_token)  # at once
    assert data["result"]["email"] == "x@acme.nl"

    await sc.ok("POST", means_path(uma, "role"), {"role": "gebruiker"})
    await sc.refused("POST", M, sc.means_body("y@acme.nl"), code="forbidden", status=403, token=uma_token)
    await sc.refused("POST", AUTH, {"means_ids": [uma], "services": svc("rvo/tenderned")}, code="forbidden",
                     status=403, token=uma_token)
    await sc.refused("POST", means_path(sc.admin, "role"), {"role": "gebruiker"}, code="forbidden", status=403,
                     token=uma_token)
    r = await sc.call("GET", M, token=uma_token)
    assert r.status_code == 403


async def test_refusals_are_audited_with_their_rule(sc: Scenario) -> None:
    """Not a rule of its own: every refusal above leaves an event with the rule id, and no effect."""
    await sc.refused("POST", M, sc.means_body("eh4@acme.nl", level="EH4"), code="R4")
    events: list[dict[str, Any]] = await sc.events()
    last = events[-1]
    assert (last["action"], last["outcome"], last["code"], last["target"]) == ("request_means", "refused", "R4",
                                                                               "eh4@acme.nl")
