"""What every `/v1` request needs before it does anything: the store, the acting admin behind the bearer
token, and the conditional-request headers (documented once here, so OpenAPI shows them on each route)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic_core import to_json
from starlette.responses import Response

from reconciler.domain import rules
from reconciler.domain.state import Means

from reconciler.backend.sandbox.pagination import MAX_LIMIT
from reconciler.backend.sandbox.problems import ApiError
from reconciler.backend.sandbox.serialise import json_bytes
from reconciler.backend.sandbox.store import SandboxStore

bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="A token of one admin means, the acting admin (R3, R4 are judged against it).")


@dataclass(frozen=True, slots=True)
class Actor:
    means_id: str
    read_only: bool
    token_hash: str


def get_store(request: Request) -> SandboxStore:
    return request.app.state.store  # type: ignore[no-any-return]


async def authenticate(request: Request,
                       credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> Actor:
    """401 without a valid token (a terminated means' tokens end with it)."""
    if credentials is None:
        raise ApiError(401, "unauthorized", "send `Authorization: Bearer <token>`",
                       headers={"WWW-Authenticate": "Bearer"})
    info = get_store(request).token(credentials.credentials)
    if info is None:
        raise ApiError(401, "unauthorized", "the token is not valid (unknown, or its means was terminated)",
                       headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return Actor(info.means_id, info.read_only, info.token_hash)


CurrentActor = Annotated[Actor, Depends(authenticate)]
KvkPath = Annotated[str, Path(pattern=r"^[0-9]{8}$", description="The organisation's KvK number.",
                              examples=["99966564"])]
MeansIdPath = Annotated[str, Path(min_length=1, max_length=64, description="The means id.")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1..{MAX_LIMIT}.")]
Cursor = Annotated[str | None, Query(max_length=2000, description=(
    "`next_cursor` of the previous page: opaque, and valid only for the list that handed it out; any other "
    "value is 422 `invalid`."))]


@dataclass(frozen=True, slots=True)
class MutationHeaders:
    if_match: str | None
    idempotency_key: str | None


async def mutation_headers(
    if_match: Annotated[str | None, Header(alias="If-Match", description=(
        'The organisation\'s revision the change was planned on, as `"<revision>"`; 412 '
        "`precondition-failed` when the organisation has changed since."))] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255,
                                                  description=(
        "Makes a retry safe: a repeat with the same key (same token) returns the first response without "
        "repeating the effect; the same key with another method, path or body is 422 "
        "`idempotency-mismatch`."))] = None,
) -> MutationHeaders:
    return MutationHeaders(if_match, idempotency_key)


Conditional = Annotated[MutationHeaders, Depends(mutation_headers)]


def require_admin(store: SandboxStore, kvk: str, actor: Actor) -> Means:
    """404 for an unknown organisation, 403 unless the actor is an active beheerder of it (the rules'
    own check, so reads and changes are judged alike)."""
    return rules.acting_admin(store, kvk, actor.means_id)


def etag(revision: int) -> str:
    return f'"{revision}"'


def if_match_ok(header: str | None, revision: int | None) -> bool:
    """RFC 9110 If-Match: `*` or a list of entity tags (weak tags compare by value here)."""
    if header is None or revision is None:
        return True
    tags = [t.strip() for t in header.split(",")]
    if "*" in tags:
        return True
    return any(t.removeprefix("W/") in (etag(revision), str(revision)) for t in tags)


def json_response(data: object, *, status: int = 200, revision: int | None = None) -> Response:
    headers = {"ETag": etag(revision)} if revision is not None else None
    return Response(json_bytes(data), status_code=status, headers=headers, media_type="application/json")


def read_response(data: object, *, revision: int | None = None) -> Response:
    """A `/v1` read's answer: the bytes of `json_bytes`, written by pydantic-core's encoder, 3x faster (a page of
    500 authorisations is 80 kB; json.dumps was a quarter of the sandbox's time per page). The same bytes for
    what reads answer, JSON's own types (str, int, bool, None, lists and dicts), tested in test_context.py;
    not for floats, which the two write differently (1e-05, 1e-5)."""
    headers = {"ETag": etag(revision)} if revision is not None else None
    return Response(to_json(data), headers=headers, media_type="application/json")
