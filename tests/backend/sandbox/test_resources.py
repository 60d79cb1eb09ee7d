"""One smoke test per resource of docs/beheer-api.md, checked against the documented models, and the
problem+json shape of errors."""

from __future__ import annotations

import pytest

from reconciler.backend.sandbox import models as m

from .conftest import ADMIN, KVK, TODAY, Sandbox, uuid_of

pytestmark = pytest.mark.anyio

OTHER = "87654321"


async def test_me(sandbox: Sandbox) -> None:
    r = await sandbox.get("/v1/me")
    assert r.status_code == 200
    me = m.Me.model_validate(r.json())
    assert (me.means_id, me.email, me.level.value, me.read_only) == (sandbox.admin_id, ADMIN, "EH3", False)


async def test_organisations_list_and_one_with_etag(sandbox: Sandbox) -> None:
    r = await sandbox.get("/v1/organisations")
    page = m.OrganisationPage.model_validate(r.json())
    assert [(o.kvk, o.name) for o in page.items] == [(KVK, "Acme")] and page.next_cursor is None
    r = await sandbox.get(f"/v1/organisations/{KVK}")
    assert r.status_code == 200
    assert r.headers["etag"] == f'"{r.json()["revision"]}"'
    m.Organisation.model_validate(r.json())


async def test_means_lifecycle_through_the_api(sandbox: Sandbox) -> None:
    r = await sandbox.post(f"/v1/organisations/{KVK}/means", {
        "email": "Bob@Acme.nl", "name": "Bob", "role": "gebruiker", "level": "EH3",
        "second_factor": {"type": "otp"}, "subscription": "3y"})
    assert r.status_code == 201, r.text
    assert r.headers["location"].endswith(r.json()["result"]["id"])
    created = m.MeansMutation.model_validate(r.json())
    assert created.result.status.value == "wachten_op_goedkeuring"      # R5
    assert r.headers["etag"] == f'"{created.revision}"'
    means_id = created.result.id

    r = await sandbox.client.post(f"/sandbox/means/{means_id}/approve")
    assert r.json()["means"]["status"] == "wachten_op_activatie"
    assert r.json()["means"]["activation_deadline"] == "2025-07-01"
    await sandbox.client.post(f"/sandbox/means/{means_id}/activate")

    r = await sandbox.get(f"/v1/organisations/{KVK}/means/{means_id}")
    one = m.Means.model_validate(r.json())
    assert (one.status.value, one.role.value, one.organisations) == ("actief", "gebruiker", [KVK])

    r = await sandbox.get(f"/v1/organisations/{KVK}/means")
    page = m.MeansPage.model_validate(r.json())
    assert {i.email for i in page.items} == {ADMIN, "Bob@Acme.nl"}

    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{means_id}/role", {"role": "beheerder"})
    assert r.status_code == 200 and r.json()["result"]["role"] == "beheerder"
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{means_id}/level", {"level": "EH4"})
    assert r.status_code == 409 and r.json()["code"] == "R4"             # above the actor's own EH3
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{means_id}/phone", {"phone": "+31687654321"})
    assert r.status_code == 409 and r.json()["code"] == "R12"            # otp, not sms
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{means_id}/email", {"email": "bob@elders.nl"})
    assert r.status_code == 409 and r.json()["code"] == "R11"
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{means_id}/invitation")
    assert r.status_code == 409 and r.json()["code"] == "R5"
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{means_id}/type", {"type": "regulier"})
    assert r.status_code == 200

    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{means_id}/terminate", {"mode": "now"})
    assert r.status_code == 200, r.text
    result = m.TerminateMutation.model_validate(r.json()).result
    assert result.removed and result.means_deleted and not result.organisation_deleted
    r = await sandbox.get(f"/v1/organisations/{KVK}/means/{means_id}")
    assert r.status_code == 404


async def test_level_change_is_pending_until_approved(sandbox: Sandbox) -> None:
    means_id = await sandbox.new_means("carla@acme.nl", level="EH2+")
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{means_id}/level", {"level": "EH3"})
    assert r.status_code == 202, r.text
    assert r.json()["result"]["pending"] == {"kind": "level", "level": "EH3"}
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{means_id}/role", {"role": "beheerder"})
    assert r.status_code == 409 and r.json()["code"] == "R6"
    await sandbox.client.post(f"/sandbox/means/{means_id}/approve")
    r = await sandbox.get(f"/v1/organisations/{KVK}/means/{means_id}")
    assert r.json()["level"] == "EH3" and r.json()["pending"] is None


async def test_link_to_another_organisation(sandbox: Sandbox) -> None:
    r = await sandbox.client.post("/sandbox/organisations", json={
        "kvk": OTHER, "name": "Other", "admin": {"email": ADMIN, "name": "Anna", "level": "EH3"}})
    assert r.status_code == 201 and r.json()["means_id"] == sandbox.admin_id     # one person, one means (R15)
    means_id = await sandbox.new_means("dirk@acme.nl")
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{means_id}/links", {"kvk": OTHER, "role": "gebruiker"})
    assert r.status_code == 202, r.text
    assert r.json()["result"]["pending"] == {"kind": "link", "kvk": OTHER, "role": "gebruiker"}
    await sandbox.client.post(f"/sandbox/means/{means_id}/approve")
    r = await sandbox.get(f"/v1/organisations/{OTHER}/means/{means_id}")
    assert r.status_code == 200 and r.json()["organisations"] == [KVK, OTHER]
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{means_id}/links", {"kvk": OTHER, "role": "gebruiker"})
    assert r.status_code == 409 and r.json()["code"] == "already-linked"


async def test_authorisations_grant_redate_revoke(sandbox: Sandbox) -> None:
    users = [await sandbox.new_means(f"u{i}@acme.nl") for i in range(3)]
    services = [uuid_of("rvo/tenderned"), uuid_of("algemene-bevoegdheid-3")]
    path = f"/v1/organisations/{KVK}/authorisations"
    r = await sandbox.post(path, {"means_ids": users, "services": services})
    assert r.status_code == 200, r.text
    assert m.GrantMutation.model_validate(r.json()).result.model_dump() == {
        "authorisations": 6, "created": 6, "updated": 0, "end_date": TODAY.replace(year=2030)}
    r = await sandbox.post(path, {"means_ids": users[:1], "services": services[:1], "end_date": "2026-01-01"})
    assert r.json()["result"] == {"authorisations": 1, "created": 0, "updated": 1, "end_date": "2026-01-01"}

    r = await sandbox.get(path)
    page = m.AuthorisationPage.model_validate(r.json())
    assert len(page.items) == 6
    assert {i.service_key for i in page.items} == {"rvo/tenderned", "algemene-bevoegdheid-3"}

    r = await sandbox.post(path + "/end-date", {"means_ids": users, "services": services[:1], "end_date": "2027-03-01"})
    assert r.status_code == 200 and r.json()["result"] == {"authorisations": 3, "end_date": "2027-03-01"}
    r = await sandbox.post(path + "/revoke", {"means_ids": users[1:], "services": services})
    assert r.status_code == 200 and r.json()["result"] == {"revoked": 4}
    r = await sandbox.get(path, params={"means_id": users[0]})
    assert [(i["service_key"], i["end_date"]) for i in r.json()["items"]] == [
        ("algemene-bevoegdheid-3", "2030-06-01"), ("rvo/tenderned", "2027-03-01")]
    r = await sandbox.post(path + "/revoke", {"means_ids": users[1:2], "services": services[:1]})
    assert r.status_code == 404 and r.json()["code"] == "not-found"


async def test_grant_refusals_carry_the_rule(sandbox: Sandbox) -> None:
    pending = await sandbox.new_means("p@acme.nl", active=False)
    low = await sandbox.new_means("low@acme.nl", level="EH2")
    path = f"/v1/organisations/{KVK}/authorisations"
    r = await sandbox.post(path, {"means_ids": [pending], "services": [uuid_of("rvo/tenderned")]})
    assert (r.status_code, r.json()["code"]) == (409, "R7")
    r = await sandbox.post(path, {"means_ids": [low], "services": [uuid_of("algemene-bevoegdheid-3")]})
    assert (r.status_code, r.json()["code"]) == (409, "R8")
    r = await sandbox.post(path, {"means_ids": [low], "services": [uuid_of("rvo/tenderned")], "end_date": "2025-06-01"})
    assert (r.status_code, r.json()["code"]) == (409, "R9")
    r = await sandbox.post(path, {"means_ids": [low], "services": ["00000000-0000-4000-8000-000000000000"]})
    assert (r.status_code, r.json()["code"]) == (422, "unknown-service")


async def test_chain_authorisations(sandbox: Sandbox) -> None:
    path = f"/v1/organisations/{KVK}/chain-authorisations"
    r = await sandbox.post(path, {"intermediary_kvk": "47474747", "name": "Accountants Vries",
                                  "services": [uuid_of("algemene-bevoegdheid-3")], "end_date": "2029-10-14"})
    assert r.status_code == 200, r.text
    [issued] = m.ChainMutation.model_validate(r.json()).result.services
    assert issued.end_date.isoformat() == "2029-10-14"
    r = await sandbox.post(path, {"intermediary_kvk": "47474747", "services": [uuid_of("rvo/tenderned")]})
    assert len(r.json()["result"]["services"]) == 2 and r.json()["result"]["name"] == "Accountants Vries"
    r = await sandbox.post(f"{path}/47474747/end-date", {"end_date": "2026-01-01"})
    assert r.status_code == 200 and {s["end_date"] for s in r.json()["result"]["services"]} == {"2026-01-01"}
    r = await sandbox.get(path)
    assert [c["intermediary_kvk"] for c in m.ChainPage.model_validate(r.json()).model_dump()["items"]] == ["47474747"]
    r = await sandbox.client.delete(f"{path}/47474747", headers=sandbox.auth())
    assert r.status_code == 200 and r.json()["result"] == {"intermediary_kvk": "47474747", "removed_services": 2}
    r = await sandbox.client.delete(f"{path}/47474747", headers=sandbox.auth())
    assert r.status_code == 404


async def test_services(sandbox: Sandbox) -> None:
    r = await sandbox.get("/v1/services", params={"limit": 500})
    page = m.ServicePage.model_validate(r.json())
    keys = {s.key: s for s in page.items}
    assert keys["belastingdienst/aangifte-omzetbelasting"].belastingdienst
    assert keys["algemene-bevoegdheid-3"].general and keys["algemene-bevoegdheid-3"].level.value == "EH3"


async def test_catalogue_control_adds_services(sandbox: Sandbox) -> None:
    new = {"key": "gemeente-x/portaal", "uuid": "2B7C1F3E-0000-4000-8000-000000000001", "provider": "Gemeente X",
           "name": "Portaal", "level": "EH2"}
    r = await sandbox.client.post("/sandbox/catalogue", json={"services": [new]})
    assert r.status_code == 200
    r = await sandbox.get("/v1/services", params={"limit": 500})
    assert "2b7c1f3e-0000-4000-8000-000000000001" in {s["uuid"] for s in r.json()["items"]}


async def test_events_record_changes_and_refusals(sandbox: Sandbox) -> None:
    await sandbox.new_means("e@acme.nl")
    await sandbox.post(f"/v1/organisations/{KVK}/means/{sandbox.admin_id}/role", {"role": "gebruiker"},
                       headers={"Idempotency-Key": "k1"})
    r = await sandbox.get(f"/v1/organisations/{KVK}/events")
    events = m.EventPage.model_validate(r.json()).items
    assert [e.action for e in events][:2] == ["create_organisation", "request_means"]
    refused = events[-1]
    assert (refused.action, refused.outcome, refused.code, refused.idempotency_key) == ("change_role", "refused",
                                                                                        "R3", "k1")
    assert refused.today == TODAY


async def test_problem_json_shape(sandbox: Sandbox) -> None:
    r = await sandbox.post(f"/v1/organisations/{KVK}/means/{sandbox.admin_id}/terminate", {"mode": "now"})
    assert r.status_code == 200      # the only means: the organisation ends (R14)
    r = await sandbox.get(f"/v1/organisations/{KVK}")
    assert r.status_code == 401      # its means ended, and its tokens with it

    r = await sandbox.client.post("/sandbox/organisations", json={
        "kvk": OTHER, "name": "Other", "admin": {"email": "z@o.nl", "name": "Z", "level": "EH3"}})
    token = r.json()["token"]
    r = await sandbox.post(f"/v1/organisations/{OTHER}/means", {"email": "x"}, token=token)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert set(body) >= {"type", "title", "status", "detail", "code"}
    assert body["status"] == 422 and body["code"] == "invalid" and body["errors"]
    assert body["type"] == "urn:beheer-api:problem:invalid"
    m.Problem.model_validate(body)

    r = await sandbox.post(f"/v1/organisations/{OTHER}/means/{r.json().get('x', 'nobody')}/role", {"role": "beheerder"},
                           token=token)
    assert (r.status_code, r.json()["code"], r.json()["title"]) == (404, "not-found", "Not found")
    r = await sandbox.get("/v1/nothing-here", token=token)
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await sandbox.get(f"/v1/organisations/{OTHER}/means", token=token, params={"limit": 0})
    assert r.status_code == 422 and r.json()["code"] == "invalid"
    r = await sandbox.get(f"/v1/organisations/{OTHER}/means", token=token, params={"cursor": "bm9wZQ"})
    assert r.status_code == 422 and r.json()["code"] == "invalid"
