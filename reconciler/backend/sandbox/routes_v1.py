"""The beheer API v1 (docs/beheer-api.md): each route turns its body into a rules operation, lets
`reconciler.domain.rules.execute` decide, and answers with the result and the organisation's revision."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from reconciler.domain import rules
from reconciler.domain.levels import Level
from reconciler.domain.rules import Missing
from reconciler.domain.state import (
    DeleteAuthorisation, DeleteMeans, DeleteMembership, DeleteOrganisation, PutAuthorisation, PutMembership,
)

from reconciler.backend.sandbox import models as m
from reconciler.backend.sandbox.context import (
    Conditional, CurrentActor, Cursor, KvkPath, Limit, MeansIdPath, get_store, json_response, require_admin,
)
from reconciler.backend.sandbox.mutations import Outcome, Work, mutate
from reconciler.backend.sandbox.serialise import (
    authorisation_dicts, chain_dict, event_dict, means_dict, organisation_dict, service_dict,
)
from reconciler.backend.sandbox.store import SandboxStore

router = APIRouter(prefix="/v1", generate_unique_id_function=lambda route: route.name)

_ETAG = {"ETag": {"description": 'The organisation\'s revision, quoted: `"<revision>"`.',
                  "schema": {"type": "string"}}}
_RETRY = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
_ERRORS: dict[int, str] = {
    401: "`unauthorized`: no valid bearer token.",
    403: "`forbidden`: not an active beheerder of this organisation, or a read-only token on a change.",
    404: "`not-found`: no such organisation, means, authorisation or intermediary.",
    409: "A rule refuses the change: `code` is the rule id (R1..R20), or `already-linked`.",
    412: "`precondition-failed`: `If-Match` names an older revision; read again and re-plan.",
    422: "`invalid` body or parameters, `unknown-service`, or `idempotency-mismatch`.",
    429: "`rate-limited`: the token's request budget is spent; wait `Retry-After` seconds.",
    503: "`unavailable`: the backend cannot answer now; retry later.",
}


def _responses(success: int | None, *errors: int, etag: bool = True) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    if success is not None and etag:
        out[success] = {"headers": _ETAG}
    for code in (401, *errors, 422, 429, 503):
        out[code] = {"model": m.Problem, "description": _ERRORS[code]}
        if code == 429:
            out[code]["headers"] = _RETRY
    return out


_READ = (403, 404)
_FOUND = "Found."
_DONE = "Done: the organisation's new revision (also the `ETag`) and the result."
_CHANGE = (403, 404, 409, 412)


def _page(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


# ------------------------------------------------------------------------------------------------- reads
@router.get("/me", response_description=_FOUND, tags=["me"], response_model=m.Me, summary="The acting admin",
            description="The admin means the bearer token belongs to: rules about yourself (R3) and your own "
                        "level (R4) are judged against it.",
            responses=_responses(None, etag=False))
async def get_me(request: Request, actor: CurrentActor) -> Response:
    store = get_store(request)
    with store.transaction():
        means = store.get_means(actor.means_id)
        if means is None:  # pragma: no cover - tokens end with their means
            raise Missing("not-found", "the means of this token no longer exists")
        return json_response({"means_id": means.id, "email": means.email, "level": means.level.value,
                              "read_only": actor.read_only, "today": store.today.isoformat()})


@router.get("/organisations", response_description=_FOUND, tags=["organisations"], response_model=m.OrganisationPage,
            summary="Organisations of the acting admin",
            description="Every organisation the acting admin's means is linked to (R15), by KvK number.",
            responses=_responses(None, etag=False))
async def list_organisations(request: Request, actor: CurrentActor, limit: Limit = 100,
                             cursor: Cursor = None) -> Response:
    store = get_store(request)
    with store.transaction():
        page = store.organisations_of(actor.means_id, limit, cursor)
        return json_response(_page([organisation_dict(r) for r in page.items], page.next_cursor))


@router.get("/organisations/{kvk}", response_description=_FOUND, tags=["organisations"], response_model=m.Organisation,
            summary="One organisation",
            description="The organisation and its `revision` (also the `ETag`), to send as `If-Match` with changes.",
            responses=_responses(200, *_READ))
async def get_organisation(request: Request, actor: CurrentActor, kvk: KvkPath) -> Response:
    store = get_store(request)
    with store.transaction():
        require_admin(store, kvk, actor)
        row = store.organisation_row(kvk)
        assert row is not None
        return json_response(organisation_dict(row), revision=row[3])


@router.get("/organisations/{kvk}/means", response_description=_FOUND, tags=["means"], response_model=m.MeansPage,
            summary="Means linked to the organisation",
            description="Paginated by means id. Each means shows its role and scheduled termination in this "
                        "organisation and every organisation it is linked to (R15). Rejected and terminated "
                        "means are gone (R5, R14).",
            responses=_responses(200, *_READ))
async def list_means(request: Request, actor: CurrentActor, kvk: KvkPath, limit: Limit = 100,
                     cursor: Cursor = None) -> Response:
    store = get_store(request)
    with store.transaction():
        require_admin(store, kvk, actor)
        page = store.list_means(kvk, limit, cursor)
        return json_response(_page([means_dict(e) for e in page.items], page.next_cursor),
                             revision=store.revision(kvk))


@router.get("/organisations/{kvk}/means/{means_id}", response_description=_FOUND,
            tags=["means"], response_model=m.Means,
            summary="One means", responses=_responses(200, *_READ))
async def get_means(request: Request, actor: CurrentActor, kvk: KvkPath, means_id: MeansIdPath) -> Response:
    store = get_store(request)
    with store.transaction():
        require_admin(store, kvk, actor)
        entry = store.means_entry(kvk, means_id)
        if entry is None:
            raise Missing("not-found", f"means {means_id} is not linked to organisation {kvk}")
        return json_response(means_dict(entry), revision=store.revision(kvk))


@router.get("/organisations/{kvk}/authorisations", response_description=_FOUND,
            tags=["authorisations"], response_model=m.AuthorisationPage,
            summary="Authorisations in the organisation",
            description="Paginated by (means id, service). Expired and revoked authorisations are gone (R9).",
            responses=_responses(200, *_READ))
async def list_authorisations(request: Request, actor: CurrentActor, kvk: KvkPath, limit: Limit = 100,
                              cursor: Cursor = None,
                              means_id: str | None = Query(None, max_length=64,
                                                           description="Only this means' authorisations.")
                              ) -> Response:
    store = get_store(request)
    with store.transaction():
        require_admin(store, kvk, actor)
        page = store.list_authorisations(kvk, limit, cursor, means_id)
        return json_response(_page(authorisation_dicts(page.items, store), page.next_cursor),
                             revision=store.revision(kvk))


@router.get("/organisations/{kvk}/chain-authorisations", response_description=_FOUND, tags=["chain authorisations"],
            response_model=m.ChainPage, summary="Chain authorisations issued by the organisation",
            description="One item per intermediary (R18), by its KvK number.", responses=_responses(200, *_READ))
async def list_chains(request: Request, actor: CurrentActor, kvk: KvkPath, limit: Limit = 100,
                      cursor: Cursor = None) -> Response:
    store = get_store(request)
    with store.transaction():
        require_admin(store, kvk, actor)
        page = store.list_chains(kvk, limit, cursor)
        return json_response(_page([chain_dict(c) for c in page.items], page.next_cursor),
                             revision=store.revision(kvk))


@router.get("/services", response_description=_FOUND,
            tags=["services"], response_model=m.ServicePage, summary="The service catalogue",
            description="Services by key, each with the eToegang ServiceUUID that authorisations name, its "
                        "minimum level (R8) and whether it is a Belastingdienst service (R13).",
            responses=_responses(None, etag=False))
async def list_services(request: Request, actor: CurrentActor, limit: Limit = 100, cursor: Cursor = None) -> Response:
    store = get_store(request)
    with store.transaction():
        page = store.list_services(limit, cursor)
        return json_response(_page([service_dict(s) for s in page.items], page.next_cursor))


@router.get("/organisations/{kvk}/events", response_description=_FOUND,
            tags=["events"], response_model=m.EventPage, summary="The audit trail",
            description="Every change attempted in the organisation (also refused ones, with the rule `code`), "
                        "and what the supplier, the holder and time did, oldest first.",
            responses=_responses(200, *_READ))
async def list_events(request: Request, actor: CurrentActor, kvk: KvkPath, limit: Limit = 100,
                      cursor: Cursor = None) -> Response:
    store = get_store(request)
    with store.transaction():
        require_admin(store, kvk, actor)
        page = store.list_events(kvk, limit, cursor)
        return json_response(_page([event_dict(r) for r in page.items], page.next_cursor),
                             revision=store.revision(kvk))


# ------------------------------------------------------------------------------------------------- means
def _means_result(store: SandboxStore, kvk: str, means_id: str) -> Outcome:
    entry = store.means_entry(kvk, means_id)
    return Outcome(means_dict(entry) if entry else None)


def _means_change(kvk: str, means_id: str, actor_id: str, op: rules.AdminOperation) -> Work:
    """Work for a change of one means: the rules decide, the store writes, the answer is the means."""

    def work(store: SandboxStore) -> Outcome:
        store.apply(rules.execute(store, actor_id, op, store.today), context_kvk=kvk)
        return _means_result(store, kvk, means_id)

    return work


@router.post("/organisations/{kvk}/means", response_description=_DONE,
             tags=["means"], status_code=201, response_model=m.MeansMutation,
             summary="Request a new means",
             description="Requests a means for a new holder; it starts as `wachten_op_goedkeuring` until the "
                         "supplier approves it (R5). Refused when the e-mail already holds a means: link that one "
                         "instead (R15); above your own level (R4); a beheerder below EH2+ (R2); a belastingdienst "
                         "means that is not EH3, is a beheerder or is the organisation's second (R13); EH2+/EH3 "
                         "without a second factor (R19). The server chooses the means id.",
             responses={**_responses(201, *_CHANGE),
                        201: {"headers": {**_ETAG, "Location": {"description": "The new means.",
                                                                "schema": {"type": "string"}}}}})
async def request_means(request: Request, actor: CurrentActor, kvk: KvkPath, body: m.RequestMeansIn,
                        conditional: Conditional) -> Response:
    means_id = str(uuid.uuid4())
    factor = body.second_factor
    op = rules.RequestMeans(kvk=kvk, means_id=means_id, email=body.email, name=body.name, role=body.role,
                            level=Level(body.level.value), type=body.type,
                            second_factor=factor.type if factor else None, phone=factor.phone if factor else None,
                            subscription=body.subscription)

    def work(store: SandboxStore) -> Outcome:
        store.apply(rules.execute(store, actor.means_id, op, store.today), context_kvk=kvk)
        store.increment("means_created")
        return _means_result(store, kvk, means_id)

    return await mutate(request, actor, kvk, conditional, action="request_means", target=body.email, work=work,
                        status=201, location=f"/v1/organisations/{kvk}/means/{means_id}")


@router.post("/organisations/{kvk}/means/{means_id}/role", response_description=_DONE,
             tags=["means"], response_model=m.MeansMutation,
             summary="Change the role in this organisation",
             description="gebruiker <-> beheerder, at once (R20). Refused when it leaves no active beheerder (R1), "
                         "for yourself (R3), for a beheerder below EH2+ (R2) or a belastingdienst means (R13).",
             responses=_responses(200, *_CHANGE))
async def change_role(request: Request, actor: CurrentActor, kvk: KvkPath, means_id: MeansIdPath, body: m.RoleIn,
                      conditional: Conditional) -> Response:
    op = rules.ChangeRole(kvk=kvk, means_id=means_id, role=body.role)
    return await mutate(request, actor, kvk, conditional, action="change_role", target=means_id,
                        work=_means_change(kvk, means_id, actor.means_id, op))


@router.post("/organisations/{kvk}/means/{means_id}/level", response_description=_DONE, tags=["means"], status_code=202,
             response_model=m.MeansMutation, summary="Change the level",
             description="The change is pending until the supplier processes it (R6: no other change meanwhile). "
                         "Only for an active means (R5), up to your own level (R4), not below EH2+ for a beheerder "
                         "(R2), not below a held authorisation's level (R8); EH2+/EH3 need a second factor, an "
                         "upgrade from EH2+ keeps it (R19).",
             responses=_responses(202, *_CHANGE))
async def change_level(request: Request, actor: CurrentActor, kvk: KvkPath, means_id: MeansIdPath, body: m.LevelIn,
                       conditional: Conditional) -> Response:
    factor = body.second_factor
    op = rules.ChangeLevel(kvk=kvk, means_id=means_id, level=Level(body.level.value),
                           second_factor=factor.type if factor else None, phone=factor.phone if factor else None)
    return await mutate(request, actor, kvk, conditional, action="change_level", target=means_id, status=202,
                        work=_means_change(kvk, means_id, actor.means_id, op))


@router.post("/organisations/{kvk}/means/{means_id}/type", response_description=_DONE,
             tags=["means"], response_model=m.MeansMutation,
             summary="Change the type (regulier / belastingdienst)",
             description="Starts a new subscription and drops the means' authorisations in every organisation: "
                         "grant them again (R13). A belastingdienst means is EH3, never a beheerder, and at most "
                         "one per organisation (R13).",
             responses=_responses(200, *_CHANGE))
async def change_type(request: Request, actor: CurrentActor, kvk: KvkPath, means_id: MeansIdPath, body: m.TypeIn,
                      conditional: Conditional) -> Response:
    op = rules.ChangeType(kvk=kvk, means_id=means_id, type=body.type, subscription=body.subscription)
    return await mutate(request, actor, kvk, conditional, action="change_type", target=means_id,
                        work=_means_change(kvk, means_id, actor.means_id, op))


@router.post("/organisations/{kvk}/means/{means_id}/phone", response_description=_DONE,
             tags=["means"], response_model=m.MeansMutation,
             summary="Change the SMS number",
             description="Another holder's number, while awaiting activation or active, for sms as second factor "
                         "(R12); never your own (R3).",
             responses=_responses(200, *_CHANGE))
async def change_phone(request: Request, actor: CurrentActor, kvk: KvkPath, means_id: MeansIdPath, body: m.PhoneIn,
                       conditional: Conditional) -> Response:
    op = rules.ChangePhone(kvk=kvk, means_id=means_id, phone=body.phone)
    return await mutate(request, actor, kvk, conditional, action="change_phone", target=means_id,
                        work=_means_change(kvk, means_id, actor.means_id, op))


@router.post("/organisations/{kvk}/means/{means_id}/email", response_description=_DONE,
             tags=["means"], response_model=m.MeansMutation,
             summary="Change the e-mail before activation",
             description="An admin can change a holder's e-mail only before activation; after that only the "
                         "holder can (R11). The address must not hold another means (R15).",
             responses=_responses(200, *_CHANGE))
async def change_email(request: Request, actor: CurrentActor, kvk: KvkPath, means_id: MeansIdPath, body: m.EmailIn,
                       conditional: Conditional) -> Response:
    op = rules.ChangeEmail(kvk=kvk, means_id=means_id, email=body.email)
    return await mutate(request, actor, kvk, conditional, action="change_email", target=means_id,
                        work=_means_change(kvk, means_id, actor.means_id, op))


@router.post("/organisations/{kvk}/means/{means_id}/invitation", response_description=_DONE,
             tags=["means"], response_model=m.MeansMutation,
             summary="Send a new activation letter",
             description="Only after the 30 days to activate have passed (`activatie_verlopen`); the holder "
                         "gets 30 new days (R5). Costs money.",
             responses=_responses(200, *_CHANGE))
async def resend_invitation(request: Request, actor: CurrentActor, kvk: KvkPath, means_id: MeansIdPath,
                            conditional: Conditional) -> Response:
    op = rules.ResendInvitation(kvk=kvk, means_id=means_id)
    return await mutate(request, actor, kvk, conditional, action="resend_invitation", target=means_id,
                        work=_means_change(kvk, means_id, actor.means_id, op))


@router.post("/organisations/{kvk}/means/{means_id}/links", response_description=_DONE, tags=["means"], status_code=202,
             response_model=m.MeansMutation, summary="Link the means to another organisation",
             description="Pending until the supplier processes it (R6). The level stays the means' own, the role "
                         "is chosen for the other organisation (R15); only to organisations you are linked to and "
                         "up to your own level (R4); not before approval (R5). Costs an extra KvK link.",
             responses=_responses(202, *_CHANGE))
async def link_means(request: Request, actor: CurrentActor, kvk: KvkPath, means_id: MeansIdPath, body: m.LinkIn,
                     conditional: Conditional) -> Response:
    op = rules.LinkMeans(kvk=body.kvk, means_id=means_id, role=body.role, subscription=body.subscription)

    def work(store: SandboxStore) -> Outcome:
        if store.membership(kvk, means_id) is None:
            raise Missing("not-found", f"means {means_id} is not linked to organisation {kvk}")
        store.apply(rules.execute(store, actor.means_id, op, store.today), context_kvk=kvk)
        return _means_result(store, kvk, means_id)

    return await mutate(request, actor, kvk, conditional, action="link_means", target=f"{means_id}->{body.kvk}",
                        status=202, work=work)


@router.post("/organisations/{kvk}/means/{means_id}/terminate", response_description=_DONE,
             tags=["means"], response_model=m.TerminateMutation,
             summary="Terminate the means in this organisation",
             description="Now (gone at once), on a future date, or at the end of its contract period; per "
                         "organisation for a means linked to several (R14). Never the last active beheerder while "
                         "others remain (R1), nor yourself as the only one (R3). Terminating the last means ends "
                         "eHerkenning for the whole organisation (R14).",
             responses=_responses(200, *_CHANGE))
async def terminate(request: Request, actor: CurrentActor, kvk: KvkPath, means_id: MeansIdPath,
                    body: m.TerminateIn, conditional: Conditional) -> Response:
    op = rules.Terminate(kvk=kvk, means_id=means_id, mode=body.mode.value, date=body.date)

    def work(store: SandboxStore) -> Outcome:
        before = store.revision(kvk) or 0
        effects = rules.execute(store, actor.means_id, op, store.today)
        store.apply(effects, context_kvk=kvk)
        org_deleted = any(isinstance(e, DeleteOrganisation) for e in effects)
        scheduled = next((e.membership.terminates_on for e in effects if isinstance(e, PutMembership)), None)
        result = {"means_id": means_id, "mode": body.mode.value,
                  "terminates_on": scheduled.isoformat() if scheduled else None,
                  "removed": any(isinstance(e, DeleteMembership) for e in effects),
                  "means_deleted": any(isinstance(e, DeleteMeans) for e in effects),
                  "organisation_deleted": org_deleted}
        return Outcome(result, before + 1 if org_deleted else None)

    return await mutate(request, actor, kvk, conditional, action="terminate_means", target=means_id, work=work)


# ---------------------------------------------------------------------------------------- authorisations
#: A bulk step's event names the means and services it touched up to this many of them (a change by hand, which
#: `reconciler drift` attributes); a larger one is counted only, so one audit row stays small.
BULK_TARGET_NAMES = 50


def _bulk_target(means_ids: list[str], services: list[str]) -> str:
    means, uuids = sorted(set(means_ids)), sorted(set(services))
    counted = f"{len(means)} means x {len(uuids)} services"
    if len(means) + len(uuids) > BULK_TARGET_NAMES:
        return counted
    return f"{counted}: {' '.join(means)} x {' '.join(uuids)}"


def _bulk_ids(means_ids: list[str], services: list[str]) -> tuple[list[str], list[str]]:
    """A bulk body's ids once each (a repeat names the same pair), refused above MAX_BULK_PAIRS pairs before
    any work starts (R10): one request must not hold the backend for long."""
    means, uuids = list(rules.unique(means_ids)), list(rules.unique([s.lower() for s in services]))
    rules.check_bulk_size(means, uuids)
    return means, uuids


_BULK_LIMIT = (f" Repeated ids count once; at most {rules.MAX_BULK_PAIRS} distinct means x services pairs per "
               "request (422 `invalid` above it): split a larger change into several requests.")


@router.post("/organisations/{kvk}/authorisations", response_description=_DONE,
             tags=["authorisations"], response_model=m.GrantMutation,
             summary="Grant services to users (bulk)",
             description="Adds every service to every listed means with one end date, overwriting the end date "
                         "of those that exist (R10). Only active users (R7) whose level covers the highest service "
                         "level (R8, R10); a belastingdienst means only Belastingdienst services (R13); no UWV or "
                         "Belastingdienst for an organisation with a branch number (R17). The end date defaults "
                         "to five years and lies between tomorrow and five years ahead (R9)." + _BULK_LIMIT,
             responses=_responses(200, *_CHANGE))
async def grant(request: Request, actor: CurrentActor, kvk: KvkPath, body: m.GrantIn,
                conditional: Conditional) -> Response:
    means_ids, services = _bulk_ids(body.means_ids, body.services)
    op = rules.Grant(kvk=kvk, means_ids=tuple(means_ids), services=tuple(services), end_date=body.end_date)

    def work(store: SandboxStore) -> Outcome:
        store.prefetch_members(kvk, means_ids)
        effects = rules.execute(store, actor.means_id, op, store.today)
        existing = store.count_existing_authorisations(kvk, means_ids, services)
        store.apply(effects, context_kvk=kvk)
        pairs = {(e.means_id, e.service) for e in effects if isinstance(e, PutAuthorisation)}
        end = next(e.end_date for e in effects if isinstance(e, PutAuthorisation))
        return Outcome({"authorisations": len(pairs), "created": len(pairs) - existing, "updated": existing,
                        "end_date": end.isoformat()})

    return await mutate(request, actor, kvk, conditional, action="grant",
                        target=_bulk_target(means_ids, services), work=work)


@router.post("/organisations/{kvk}/authorisations/end-date", response_description=_DONE, tags=["authorisations"],
             response_model=m.EndDateMutation, summary="Re-date existing authorisations (bulk)",
             description="Sets one end date on every listed means x service pair; each must exist (404 otherwise). "
                         "The date lies between tomorrow and five years ahead (R9, R10)." + _BULK_LIMIT,
             responses=_responses(200, *_CHANGE))
async def set_end_date(request: Request, actor: CurrentActor, kvk: KvkPath, body: m.SetEndDateIn,
                       conditional: Conditional) -> Response:
    means_ids, services = _bulk_ids(body.means_ids, body.services)
    op = rules.SetEndDate(kvk=kvk, means_ids=tuple(means_ids), services=tuple(services), end_date=body.end_date)

    def work(store: SandboxStore) -> Outcome:
        store.prefetch_members(kvk, means_ids, authorisations=True)
        effects = rules.execute(store, actor.means_id, op, store.today)
        store.apply(effects, context_kvk=kvk)
        pairs = {(e.means_id, e.service) for e in effects if isinstance(e, PutAuthorisation)}
        return Outcome({"authorisations": len(pairs), "end_date": body.end_date.isoformat()})

    return await mutate(request, actor, kvk, conditional, action="set_end_date",
                        target=_bulk_target(means_ids, services), work=work)


@router.post("/organisations/{kvk}/authorisations/revoke", response_description=_DONE,
             tags=["authorisations"], response_model=m.RevokeMutation,
             summary="Revoke authorisations (bulk)",
             description="Ends every listed means x service pair now: immediate and final; it can be granted "
                         "again as a new authorisation (R9). Each pair must exist (404 otherwise)." + _BULK_LIMIT,
             responses=_responses(200, *_CHANGE))
async def revoke(request: Request, actor: CurrentActor, kvk: KvkPath, body: m.RevokeIn,
                 conditional: Conditional) -> Response:
    means_ids, services = _bulk_ids(body.means_ids, body.services)
    op = rules.Revoke(kvk=kvk, means_ids=tuple(means_ids), services=tuple(services))

    def work(store: SandboxStore) -> Outcome:
        store.prefetch_members(kvk, means_ids, authorisations=True)
        effects = rules.execute(store, actor.means_id, op, store.today)
        store.apply(effects, context_kvk=kvk)
        return Outcome({"revoked": len({(e.means_id, e.service) for e in effects
                                             if isinstance(e, DeleteAuthorisation)})})

    return await mutate(request, actor, kvk, conditional, action="revoke",
                        target=_bulk_target(means_ids, services), work=work)


# ---------------------------------------------------------------------------------- chain authorisations
def _chain_result(store: SandboxStore, kvk: str, ikvk: str) -> Outcome:
    chain = store.chain(kvk, ikvk)
    return Outcome(chain_dict(chain) if chain else None)


@router.post("/organisations/{kvk}/chain-authorisations", response_description=_DONE, tags=["chain authorisations"],
             response_model=m.ChainMutation, summary="Issue chain authorisations to an intermediary",
             description="Authorises the intermediary organisation (by KvK) for the services, adding them to "
                         "those it already has, with one end date for all: default five years, at most five years "
                         "ahead (R9, R18). A new intermediary costs a yearly fee.",
             responses=_responses(200, *_CHANGE))
async def issue_chain(request: Request, actor: CurrentActor, kvk: KvkPath, body: m.ChainIn,
                      conditional: Conditional) -> Response:
    op = rules.IssueChain(kvk=kvk, intermediary_kvk=body.intermediary_kvk,
                          services=tuple(s.lower() for s in body.services), end_date=body.end_date, name=body.name)

    def work(store: SandboxStore) -> Outcome:
        store.apply(rules.execute(store, actor.means_id, op, store.today), context_kvk=kvk)
        return _chain_result(store, kvk, body.intermediary_kvk)

    return await mutate(request, actor, kvk, conditional, action="issue_chain", target=body.intermediary_kvk,
                        work=work)


IkvkPath = Annotated[str, Path(pattern=r"^[0-9]{8}$", description="The intermediary's KvK number.")]


@router.post("/organisations/{kvk}/chain-authorisations/{intermediary_kvk}/end-date", response_description=_DONE,
             tags=["chain authorisations"], response_model=m.ChainMutation,
             summary="Change the end date of an intermediary's chain authorisations",
             description="Between tomorrow and five years ahead (R9, R18).", responses=_responses(200, *_CHANGE))
async def set_chain_end_date(request: Request, actor: CurrentActor, kvk: KvkPath, intermediary_kvk: IkvkPath,
                             body: m.ChainEndDateIn, conditional: Conditional) -> Response:
    op = rules.SetChainEndDate(kvk=kvk, intermediary_kvk=intermediary_kvk, end_date=body.end_date)

    def work(store: SandboxStore) -> Outcome:
        store.apply(rules.execute(store, actor.means_id, op, store.today), context_kvk=kvk)
        return _chain_result(store, kvk, intermediary_kvk)

    return await mutate(request, actor, kvk, conditional, action="set_chain_end_date", target=intermediary_kvk,
                        work=work)


@router.delete("/organisations/{kvk}/chain-authorisations/{intermediary_kvk}", response_description=_DONE,
               tags=["chain authorisations"],
               response_model=m.RemoveIntermediaryMutation, summary="Remove an intermediary",
               description="Removes the intermediary and all its chain authorisations; this cannot be undone (R18).",
               responses=_responses(200, *_CHANGE))
async def remove_intermediary(request: Request, actor: CurrentActor, kvk: KvkPath, intermediary_kvk: IkvkPath,
                              conditional: Conditional) -> Response:
    op = rules.RemoveIntermediary(kvk=kvk, intermediary_kvk=intermediary_kvk)

    def work(store: SandboxStore) -> Outcome:
        chain = store.chain(kvk, intermediary_kvk)
        store.apply(rules.execute(store, actor.means_id, op, store.today), context_kvk=kvk)
        return Outcome({"intermediary_kvk": intermediary_kvk, "removed_services": len(chain.services) if chain else 0})

    return await mutate(request, actor, kvk, conditional, action="remove_intermediary", target=intermediary_kvk,
                        work=work)
