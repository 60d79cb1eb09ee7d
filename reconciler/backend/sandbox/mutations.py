"""How every change through `/v1` runs: one write transaction that checks the idempotency record, the
token's rights, If-Match, lets the rules decide, writes their effects, and records the answer (for replay)
and the audit event together with the effects, so a retry after a lost response never repeats an effect,
across restarts too."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from reconciler.domain.rules import NotPermitted, Refusal

from reconciler.backend.sandbox.context import Actor, MutationHeaders, etag, get_store, if_match_ok, require_admin
from reconciler.backend.sandbox.problems import PROBLEM_MEDIA_TYPE, ApiError, problem_body
from reconciler.backend.sandbox.serialise import json_bytes
from reconciler.backend.sandbox.store import IdempotencyRecord, SandboxStore


@dataclass(frozen=True, slots=True)
class Outcome:
    """A change's result; `revision` only when the organisation no longer exists (R14) to read it from."""

    result: Any
    revision: int | None = None


Work = Callable[[SandboxStore], Outcome]


#: Bodies up to this size run their transaction on the event loop; larger ones (bulk requests of many pairs) in
#: a worker thread.
INLINE_BODY_BYTES = 16 * 1024


async def mutate(request: Request, actor: Actor, kvk: str, headers: MutationHeaders, *, action: str,
                 target: str | None, work: Work, status: int = 200, location: str | None = None) -> Response:
    body = await request.body()
    if len(body) <= INLINE_BODY_BYTES:
        # A change of one means or a few pairs takes well under a millisecond; handing it to a worker thread
        # and back cost about as much again (two thread switches, and the GIL passed between the threads at
        # every SQLite call). Nothing ran meanwhile anyway: every /v1 request takes the store's lock first.
        return _run(request, actor, kvk, headers, body, action=action, target=target, work=work, status=status,
                    location=location)
    # A large bulk request runs in a worker thread, so it does not stall the event loop meanwhile.
    return await run_in_threadpool(_run, request, actor, kvk, headers, body, action=action, target=target,
                                   work=work, status=status, location=location)


def _run(request: Request, actor: Actor, kvk: str, headers: MutationHeaders, body: bytes, *, action: str,
         target: str | None, work: Work, status: int, location: str | None) -> Response:
    store = get_store(request)
    key = headers.idempotency_key
    # the path as the server received it, decoded: `request.url` is built and parsed again for each request, and
    # depending on Starlette's version it cut the path at a `?` or `#` that was part of an id, or escaped it
    method, path = request.method, request.scope["path"]
    body_hash = hashlib.sha256(body).hexdigest()
    with store.transaction(write=True):
        if key is not None:
            record = store.idempotency_get(actor.token_hash, key)
            if record is not None:
                if (record.method, record.path, record.body_hash) != (method, path, body_hash):
                    raise ApiError(422, "idempotency-mismatch",
                                   f"Idempotency-Key {key!r} was first used for {record.method} {record.path} with "
                                   "another body; use a new key for a different request")
                return Response(record.body, status_code=record.status,
                                headers={**dict(record.headers), "Idempotent-Replayed": "true"})
        out_status, out_headers, outcome, code, detail = status, {}, "ok", None, None
        try:
            if actor.read_only:
                raise NotPermitted("forbidden", "this token is read-only; it cannot change anything")
            # the actor's means and membership in one query, read again from memory by the rules' own check
            store.prefetch_members(kvk, [actor.means_id])
            require_admin(store, kvk, actor)
            current = store.revision(kvk)
            if not if_match_ok(headers.if_match, current):
                raise ApiError(412, "precondition-failed",
                               f"organisation {kvk} is at revision {current}, not {headers.if_match}; "
                               "read it again and re-plan", headers={"ETag": etag(current or 0)})
            with store.savepoint():
                done = work(store)
            revision = done.revision if done.revision is not None else store.revision(kvk) or 0
            payload = json_bytes({"revision": revision, "result": done.result})
            out_headers = {"content-type": "application/json", "etag": etag(revision)}
            if location:
                out_headers["location"] = location
        except Refusal as refusal:
            out_status, code, detail, outcome = refusal.status, refusal.code, refusal.message, "refused"
            payload = problem_body(refusal.status, refusal.code, refusal.message)
            out_headers = {"content-type": PROBLEM_MEDIA_TYPE}
        except ApiError as error:
            out_status, code, detail, outcome = error.status, error.code, error.detail, "refused"
            payload = problem_body(error.status, error.code, error.detail, error.extra)
            out_headers = {"content-type": PROBLEM_MEDIA_TYPE, **{k.lower(): v for k, v in error.headers.items()}}
        store.audit(kvk, actor.means_id, action, target, outcome, code=code, idempotency_key=key, detail=detail)
        if key is not None:
            store.idempotency_put(actor.token_hash, key, IdempotencyRecord(
                method, path, body_hash, out_status, sorted(out_headers.items()), payload))
    return Response(payload, status_code=out_status, headers=out_headers)
