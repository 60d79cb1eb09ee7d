"""The beheer API v1 (docs/beheer-api.md): each route turns its body into a rules operation, lets
`reconciler.domain.rules.execute` decide, and answers with the result and the organisation's revision."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from reconciler.domain import rules
from reconciler.domain.rules import Missing
from reconciler.domain.state import (
    DeleteAuthorisation, DeleteMeans, DeleteMembership, DeleteOrganisation, PutAuthorisation, PutMembership,
)

from reconciler.backend.sandbox import models as m
from reconciler.backend.sandbox.context import (
    Actor, Conditional, CurrentActor, Cursor, KvkPath, Limit, MeansIdPath, MutationHeaders, get_store, read_response,
    require_admin,
)
from reconciler.backend.sandbox.deferred import DeferredRoute
from reconciler.backend.sandbox.mutations import Outcome, Work, mutate
from reconciler.backend.sandbox.problems import PROBLEM_MEDIA_TYPE
from reconciler.backend.sandbox.serialise import (
    authorisation_dicts, chain_dict, event_dict, means_dict, means_row_dict, organisation_dict, service_dict,
)
from reconciler.backend.sandbox.store import Page, SandboxStore

router = APIRouter(prefix="/v1", generate_unique_id_function=lambda route: route.name, route_class=DeferredRoute)

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
    """The documented answers of a route. Errors name the `Problem` schema by reference rather than by model: a
    model would make FastAPI build a response field (a pydantic TypeAdapter) per route and status at import,
    230 of them, only for the document (`app._openapi` brings in the schema's definition)."""
    out: dict[int | str, dict[str, Any]] = {}
    if success is not None and etag:
        out[success] = {"headers": _ETAG}
    for code in (401, *errors, 422, 429, 503):
        out[code] = {"description": _ERRORS[code], **({"headers": _RETRY} if code == 429 else {}),
                     "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    return out


_READ = (403, 404)
_FOUND = "Found."
_DONE = "Done: the organisation's new revision (also the `ETag`) and the result."
_CHANGE = (403, 404, 409, 412)


def _page(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


def _listed(page: Page, to_dict: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    return _page([to_dict(item) for item in page.items], page.next_cursor)


def _read(request: Request, actor: Actor, kvk: str | None, answer: Callable[[SandboxStore], Any]) -> Response:
    """A read in one transaction. In an organisation (`kvk`) only for its active beheerders, and the answer
    carries the organisation's revision as `ETag`."""
    store = get_store(request)
    with store.transaction():
        if kvk is None:
            return read_response(answer(store))
        require_admin(store, kvk, actor)
        data = answer(store)
        return read_response(data, revision=store.revision(kvk))


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
        return read_response({"means_id": means.id, "email": means.email, "level": means.level.value,
                              "read_only": actor.read_only, "today": store.today.isoformat()})


@router.get("/organisations", response_description=_FOUND, tags=["organisations"], response_model=m.OrganisationPage,
            summary="Organisations of the acting admin",
            description="Every organisation the acting admin's means is linked to (R15), by KvK number.",
            responses=_responses(None, etag=False))
async def list_organisations(request: Request, actor: CurrentActor, limit: Limit = 100,
                             cursor: Cursor = None) -> Response:
    return _read(request, actor, None,
                 lambda store: _listed(store.organisations_of(actor.means_id, limit, cursor), organisation_dict))


@router.get("/organisations/{kvk}", response_description=_FOUND, tags=["organisations"], response_model=m.Organisation,
            summary="One organisation",
            description="The organisation and its `revision` (also the `ETag`), to send as `If-Match` with changes.",
            responses=_responses(200, *_READ))
async def get_organisation(request: Request, actor: CurrentActor, kvk: KvkPath) -> Response:
    def answer(store: SandboxStore) -> dict[str, Any]:
        row = store.organisation_row(kvk)
        assert row is not None
        return organisation_dict(row)

    return _read(request, actor, kvk, answer)


@router.get("/organisations/{kvk}/means", response_description=_FOUND, tags=["means"], response_model=m.MeansPage,
            summary="Means linked to the organisation",
            description="Paginated by means id. Each means shows its role and scheduled termination in this "
                        "organisation and every organisation it is linked to (R15). Rejected and terminated "
                        "means are gone (R5, R14).",
            responses=_responses(200, *_READ))
async def list_means(request: Request, actor: CurrentActor, kvk: KvkPath, limit: Limit = 100,
                     cursor: Cursor = None) -> Response:
    def answer(store: SandboxStore) -> dict[str, Any]:
        page = store.list_means_rows(kvk, limit, cursor)
        return _page([means_row_dict(row, orgs) for row, orgs in page.items], page.next_cursor)

    return _read(request, actor, kvk, answer)


@router.get("/organisations/{kvk}/means/{means_id}", response_description=_FOUND,
            tags=["means"], response_model=m.Means,
            summary="One means", responses=_responses(200, *_READ))
async def get_means(request: Request, actor: CurrentActor, kvk: KvkPath, means_id: MeansIdPath) -> Response:
    def answer(store: SandboxStore) -> dict[str, Any]:
        entry = store.means_entry(kvk, means_id)
        if entry is None:
            raise Missing("not-found", f"means {means_id} is not linked to organisation {kvk}")
        return means_dict(entry)

    return _read(request, actor, kvk, answer)


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
    def answer(store: SandboxStore) -> dict[str, Any]:
        page = store.list_authorisations(kvk, limit, cursor, means_id)
        return _page(authorisation_dicts(page.items, store), page.next_cursor)

    return _read(request, actor, kvk, answer)


@router.get("/organisations/{kvk}/chain-authorisations", response_description=_FOUND, tags=["chain authorisations"],
            response_model=m.ChainPage, summary="Chain authorisations issued by the organisation",
            description="One item per intermediary (R18), by its KvK number.", responses=_responses(200, *_READ))
async def list_chains(request: Request, actor: CurrentActor, kvk: KvkPath, limit: Limit = 100,
                      cursor: Cursor = None) -> Response:
    return _read(request, actor, kvk, lambda store: _listed(store.list_chains(kvk, limit, cursor), chain_dict))


@router.get("/services", response_description=_FOUND,
            tags=["services"], response_model=m.ServicePage, summary="The service catalogue",
            description="Services by key, each with the eToegang ServiceUUID that authorisations name, its "
                        "minimum level (R8) and whether it is a Belastingdienst service (R13).",
            responses=_responses(None, etag=False))
async def list_services(request: Request, actor: CurrentActor, limit: Limit = 100, cursor: Cursor = None) -> Response:
    return _read(request, actor, None, lambda store: _listed(store.list_services(limit, cursor), service_dict))


@router.get("/organisations/{kvk}/events", response_description=_FOUND,
            tags=["events"], response_model=m.EventPage, summary="The audit trail",
            description="Every change attempted in the organisation (also refused ones, with the rule `code`), "
                        "and what the supplier, the holder and time did, oldest first.",
            responses=_responses(200, *_READ))
async def list_events(request: Request, actor: CurrentActor, kvk: KvkPath, limit: Limit = 100,
                      cursor: Cursor = None) -> Response:
    return _read(request, actor, kvk, lambda store: _listed(store.list_events(kvk, limit, cursor), event_dict))


# ----------------------------------------------------------------------------------------------- changes
def _change(summary: str, description: str, tag: str = "means", model: type = m.MeansMutation,
            status: int = 200) -> dict[str, Any]:
    """The documentation every change route shares; a route gives its summary, description, tag, answer model
    and success status."""
    doc: dict[str, Any] = {"response_description": _DONE, "tags": [tag], "response_model": model, "summary": summary,
                           "description": description, "responses": _responses(status, *_CHANGE)}
    if status != 200:
        doc["status_code"] = status
    return doc


def _decided(kvk: str, actor_id: str, op: Any, answer: Callable[[SandboxStore], Outcome]) -> Work:
    """Work for a change: the rules decide, the store writes their effects, `answer` reads the result."""

    def work(store: SandboxStore) -> Outcome:
        store.apply(rules.execute(store, actor_id, op, store.today), context_kvk=kvk)
        return answer(store)

    return work


def _means_result(kvk: str, means_id: str) -> Callable[[SandboxStore], Outcome]:
    def answer(store: SandboxStore) -> Outcome:
        entry = store.means_entry(kvk, means_id)
        return Outcome(means_dict(entry) if entry else None)

    return answer


# ------------------------------------------------------------------------------------------------- means
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
    op = body.operation(rules.RequestMeans, kvk=kvk, means_id=means_id)
    means = _means_result(kvk, means_id)

    def work(store: SandboxStore) -> Outcome:
        store.apply(rules.execute(store, actor.means_id, op, store.today), context_kvk=kvk)
        store.increment("means_created")
        return means(store)

    return await mutate(request, actor, kvk, conditional, action=op.action, target=body.email, work=work,
                        status=201, location=f"/v1/organisations/{kvk}/means/{means_id}")


@dataclass(frozen=True, slots=True)
class _MeansChange:
    """A change of one means that answers with the means: a route that declares only what differs."""

    path: str                             # below /organisations/{kvk}/means/{means_id}/
    op: type                              # the rules operation; its `action` names the route and the audit event
    body: type | None                     # its body model (`models._Body`); None: the operation has no fields
    summary: str
    description: str
    status: int = 200


_MEANS_CHANGES = (
    _MeansChange("role", rules.ChangeRole, m.RoleIn, "Change the role in this organisation",
                 "gebruiker <-> beheerder, at once (R20). Refused when it leaves no active beheerder (R1), "
                 "for yourself (R3), for a beheerder below EH2+ (R2) or a belastingdienst means (R13)."),
    _MeansChange("level", rules.ChangeLevel, m.LevelIn, "Change the level",
                 "The change is pending until the supplier processes it (R6: no other change meanwhile). "
                 "Only for an active means (R5), up to your own level (R4), not below EH2+ for a beheerder "
                 "(R2), not below a held authorisation's level (R8); EH2+/EH3 need a second factor, an "
                 "upgrade from EH2+ keeps it (R19).", status=202),
    _MeansChange("type", rules.ChangeType, m.TypeIn, "Change the type (regulier / belastingdienst)",
                 "Starts a new subscription and drops the means' authorisations in every organisation: "
                 "grant them again (R13). A belastingdienst means is EH3, never a beheerder, and at most "
                 "one per organisation (R13)."),
    _MeansChange("phone", rules.ChangePhone, m.PhoneIn, "Change the SMS number",
                 "Another holder's number, while awaiting activation or active, for sms as second factor "
                 "(R12); never your own (R3)."),
    _MeansChange("email", rules.ChangeEmail, m.EmailIn, "Change the e-mail before activation",
                 "An admin can change a holder's e-mail only before activation; after that only the "
                 "holder can (R11). The address must not hold another means (R15)."),
    _MeansChange("invitation", rules.ResendInvitation, None, "Send a new activation letter",
                 "Only after the 30 days to activate have passed (`activatie_verlopen`); the holder "
                 "gets 30 new days (R5). Costs money."),
)


def _post(path: str, name: str, endpoint: Callable[..., Awaitable[Response]], parameters: list[tuple[str, Any]],
          doc: dict[str, Any]) -> None:
    """Registers `endpoint` as `POST path` named `name` (its operationId). FastAPI reads the parameters from the
    signature, so it gets one with the route's own: `parameters` (name, annotation) in their order."""
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(each, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=kind)
         for each, kind in parameters], return_annotation=Response)
    endpoint.__name__ = endpoint.__qualname__ = name
    router.add_api_route(path, endpoint, methods=["POST"], name=name, **doc)


def _means_route(change: _MeansChange) -> None:
    """Registers `change` as `POST .../means/{means_id}/<path>`: the body becomes the rules operation, which
    runs as one mutation whose answer is the means."""

    async def endpoint(request: Request, actor: Actor, kvk: str, means_id: str, conditional: MutationHeaders,
                       body: Any = None) -> Response:
        url = {"kvk": kvk, "means_id": means_id}
        op = body.operation(change.op, **url) if body is not None else change.op(**url)
        return await mutate(request, actor, kvk, conditional, action=op.action, target=means_id,
                            status=change.status,
                            work=_decided(kvk, actor.means_id, op, _means_result(kvk, means_id)))

    parameters = [("request", Request), ("actor", CurrentActor), ("kvk", KvkPath), ("means_id", MeansIdPath),
                  *([("body", change.body)] if change.body is not None else []), ("conditional", Conditional)]
    _post(f"/organisations/{{kvk}}/means/{{means_id}}/{change.path}", change.op.action, endpoint, parameters,
          _change(change.summary, change.description, status=change.status))


for _declared in _MEANS_CHANGES:
    _means_route(_declared)


@router.post("/organisations/{kvk}/means/{means_id}/links", **_change(
    "Link the means to another organisation",
    "Pending until the supplier processes it (R6). The level stays the means' own, the role "
    "is chosen for the other organisation (R15); only to organisations you are linked to and "
    "up to your own level (R4); not before approval (R5). Costs an extra KvK link.", status=202))
async def link_means(request: Request, actor: CurrentActor, kvk: KvkPath, means_id: MeansIdPath, body: m.LinkIn,
                     conditional: Conditional) -> Response:
    op = body.operation(rules.LinkMeans, means_id=means_id)
    means = _means_result(kvk, means_id)

    def work(store: SandboxStore) -> Outcome:
        if store.membership(kvk, means_id) is None:
            raise Missing("not-found", f"means {means_id} is not linked to organisation {kvk}")
        store.apply(rules.execute(store, actor.means_id, op, store.today), context_kvk=kvk)
        return means(store)

    return await mutate(request, actor, kvk, conditional, action=op.action, target=f"{means_id}->{body.kvk}",
                        status=202, work=work)


@router.post("/organisations/{kvk}/means/{means_id}/terminate", **_change(
    "Terminate the means in this organisation",
    "Now (gone at once), on a future date, or at the end of its contract period; per "
    "organisation for a means linked to several (R14). Never the last active beheerder while "
    "others remain (R1), nor yourself as the only one (R3). Terminating the last means ends "
    "eHerkenning for the whole organisation (R14).", model=m.TerminateMutation))
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

    return await mutate(request, actor, kvk, conditional, action=op.action, target=means_id, work=work)


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

#: What a bulk change answers, from the store, its operation and the rules' effects (read before they are written).
_BulkAnswer = Callable[[SandboxStore, Any, list[Any]], dict[str, Any]]


def _pairs(effects: list[Any], kind: type) -> set[tuple[str, str]]:
    return {(e.means_id, e.service) for e in effects if isinstance(e, kind)}


def _granted(store: SandboxStore, op: rules.Grant, effects: list[Any]) -> dict[str, Any]:
    existing = store.count_existing_authorisations(op.kvk, list(op.means_ids), list(op.services))
    pairs = _pairs(effects, PutAuthorisation)
    end = next(e.end_date for e in effects if isinstance(e, PutAuthorisation))
    return {"authorisations": len(pairs), "created": len(pairs) - existing, "updated": existing,
            "end_date": end.isoformat()}


def _redated(store: SandboxStore, op: rules.SetEndDate, effects: list[Any]) -> dict[str, Any]:
    return {"authorisations": len(_pairs(effects, PutAuthorisation)), "end_date": op.end_date.isoformat()}


def _revoked(store: SandboxStore, op: rules.Revoke, effects: list[Any]) -> dict[str, Any]:
    return {"revoked": len(_pairs(effects, DeleteAuthorisation))}


@dataclass(frozen=True, slots=True)
class _BulkChange:
    """A change of means x services pairs (R10): a route that declares only what differs."""

    path: str                             # after /organisations/{kvk}/authorisations
    op: type                              # the rules operation (its `action` names the route and the audit event):
                                          # the body's fields, with the ids once each
    body: type
    answer: _BulkAnswer
    model: type
    summary: str
    description: str
    authorisations: bool = True           # load the pairs' authorisations with the members (a grant makes them)


_BULK_CHANGES = (
    _BulkChange("", rules.Grant, m.GrantIn, _granted, m.GrantMutation, "Grant services to users (bulk)",
                "Adds every service to every listed means with one end date, overwriting the end date "
                "of those that exist (R10). Only active users (R7) whose level covers the highest service "
                "level (R8, R10); a belastingdienst means only Belastingdienst services (R13); no UWV or "
                "Belastingdienst for an organisation with a branch number (R17). The end date defaults "
                "to five years and lies between tomorrow and five years ahead (R9)." + _BULK_LIMIT,
                authorisations=False),
    _BulkChange("/end-date", rules.SetEndDate, m.SetEndDateIn, _redated, m.EndDateMutation,
                "Re-date existing authorisations (bulk)",
                "Sets one end date on every listed means x service pair; each must exist (404 otherwise). "
                "The date lies between tomorrow and five years ahead (R9, R10)." + _BULK_LIMIT),
    _BulkChange("/revoke", rules.Revoke, m.RevokeIn, _revoked, m.RevokeMutation,
                "Revoke authorisations (bulk)",
                "Ends every listed means x service pair now: immediate and final; it can be granted "
                "again as a new authorisation (R9). Each pair must exist (404 otherwise)." + _BULK_LIMIT),
)


def _bulk_route(change: _BulkChange) -> None:
    """Registers `change` as `POST .../authorisations<path>`: the ids once each and within the limit, the
    members (and their authorisations) loaded in bulk, then the rules decide and the store writes."""

    async def endpoint(request: Request, actor: Actor, kvk: str, body: Any, conditional: MutationHeaders) -> Response:
        means_ids, services = _bulk_ids(body.means_ids, body.services)
        rest = {name: getattr(body, name) for name in type(body).model_fields if name not in ("means_ids", "services")}
        op = change.op(kvk=kvk, means_ids=tuple(means_ids), services=tuple(services), **rest)

        def work(store: SandboxStore) -> Outcome:
            store.prefetch_members(kvk, means_ids, authorisations=change.authorisations)
            effects = rules.execute(store, actor.means_id, op, store.today)
            result = change.answer(store, op, effects)
            store.apply(effects, context_kvk=kvk)
            return Outcome(result)

        return await mutate(request, actor, kvk, conditional, action=op.action,
                            target=_bulk_target(means_ids, services), work=work)

    parameters = [("request", Request), ("actor", CurrentActor), ("kvk", KvkPath), ("body", change.body),
                  ("conditional", Conditional)]
    _post(f"/organisations/{{kvk}}/authorisations{change.path}", change.op.action, endpoint, parameters,
          _change(change.summary, change.description, tag="authorisations", model=change.model))


for _declared in _BULK_CHANGES:
    _bulk_route(_declared)


# ---------------------------------------------------------------------------------- chain authorisations
def _chain_result(kvk: str, ikvk: str) -> Callable[[SandboxStore], Outcome]:
    def answer(store: SandboxStore) -> Outcome:
        chain = store.chain(kvk, ikvk)
        return Outcome(chain_dict(chain) if chain else None)

    return answer


_CHAINS = "chain authorisations"


@router.post("/organisations/{kvk}/chain-authorisations", **_change(
    "Issue chain authorisations to an intermediary",
    "Authorises the intermediary organisation (by KvK) for the services, adding them to "
    "those it already has. The listed services get the end date (default five years, at most five years "
    "ahead, R9); the intermediary's other chain authorisations keep theirs (R18). A new intermediary costs a "
    "yearly fee.", tag=_CHAINS, model=m.ChainMutation))
async def issue_chain(request: Request, actor: CurrentActor, kvk: KvkPath, body: m.ChainIn,
                      conditional: Conditional) -> Response:
    op = rules.IssueChain(kvk=kvk, intermediary_kvk=body.intermediary_kvk,
                          services=tuple(s.lower() for s in body.services), end_date=body.end_date, name=body.name)
    return await _chain_change(request, actor, conditional, op)


async def _chain_change(request: Request, actor: Any, conditional: Any,
                        op: rules.IssueChain | rules.SetChainEndDate | rules.RevokeChain) -> Response:
    """A change of an intermediary's chain authorisations, answered with what it then holds."""
    return await mutate(request, actor, op.kvk, conditional, action=op.action, target=op.intermediary_kvk,
                        work=_decided(op.kvk, actor.means_id, op, _chain_result(op.kvk, op.intermediary_kvk)))


IkvkPath = Annotated[str, Path(pattern=r"^[0-9]{8}$", description="The intermediary's KvK number.")]


@router.post("/organisations/{kvk}/chain-authorisations/{intermediary_kvk}/end-date", **_change(
    "Change the end date of an intermediary's chain authorisations",
    "For the listed services (each has its own end date, R18), or for all when none are listed; between "
    "tomorrow and five years ahead (R9). A service the intermediary does not hold is 404.", tag=_CHAINS,
    model=m.ChainMutation))
async def set_chain_end_date(request: Request, actor: CurrentActor, kvk: KvkPath, intermediary_kvk: IkvkPath,
                             body: m.ChainEndDateIn, conditional: Conditional) -> Response:
    return await _chain_change(request, actor, conditional, rules.SetChainEndDate(
        kvk=kvk, intermediary_kvk=intermediary_kvk, end_date=body.end_date,
        services=tuple(s.lower() for s in body.services)))


@router.post("/organisations/{kvk}/chain-authorisations/{intermediary_kvk}/revoke", **_change(
    "Revoke some of an intermediary's chain authorisations",
    "Ends the listed chain authorisations now; the others keep their end dates. With its last the "
    "intermediary goes (R18). A service the intermediary does not hold is 404.", tag=_CHAINS,
    model=m.ChainRevokeMutation))
async def revoke_chain(request: Request, actor: CurrentActor, kvk: KvkPath, intermediary_kvk: IkvkPath,
                       body: m.ChainRevokeIn, conditional: Conditional) -> Response:
    return await _chain_change(request, actor, conditional, rules.RevokeChain(
        kvk=kvk, intermediary_kvk=intermediary_kvk, services=tuple(s.lower() for s in body.services)))


@router.delete("/organisations/{kvk}/chain-authorisations/{intermediary_kvk}", **_change(
    "Remove an intermediary",
    "Removes the intermediary and all its chain authorisations; this cannot be undone (R18).",
    tag=_CHAINS, model=m.RemoveIntermediaryMutation))
async def remove_intermediary(request: Request, actor: CurrentActor, kvk: KvkPath, intermediary_kvk: IkvkPath,
                              conditional: Conditional) -> Response:
    op = rules.RemoveIntermediary(kvk=kvk, intermediary_kvk=intermediary_kvk)

    def work(store: SandboxStore) -> Outcome:
        chain = store.chain(kvk, intermediary_kvk)
        store.apply(rules.execute(store, actor.means_id, op, store.today), context_kvk=kvk)
        return Outcome({"intermediary_kvk": intermediary_kvk, "removed_services": len(chain.services) if chain else 0})

    return await mutate(request, actor, kvk, conditional, action=op.action, target=intermediary_kvk,
                        work=work)
