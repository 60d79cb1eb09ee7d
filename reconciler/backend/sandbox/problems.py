"""Errors as `application/problem+json` (RFC 9457) with a `code`: a rule id (R1..R20) or a named condition,
so clients branch on `code` and people read `detail`."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from reconciler.domain.rules import Refusal

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:beheer-api:problem:"

#: Titles: the rule's short name (RULES.md) or the condition's.
TITLES: dict[str, str] = {
    "R1": "one admin", "R2": "admin level", "R3": "not yourself", "R4": "up to your own level", "R5": "lifecycle",
    "R6": "one mutation at a time", "R7": "authorisations need an active means", "R8": "level covers the service",
    "R9": "end dates", "R10": "bulk", "R11": "e-mail", "R12": "phone", "R13": "tax means", "R14": "terminate",
    "R15": "link", "R16": "new organisation", "R17": "branch number", "R18": "chain authorisations",
    "R19": "second factor", "R20": "role change",
    "unauthorized": "Unauthorized", "forbidden": "Forbidden", "not-found": "Not found", "invalid": "Invalid request",
    "unknown-service": "Unknown service", "already-linked": "Already linked",
    "precondition-failed": "Precondition failed", "idempotency-mismatch": "Idempotency key reused",
    "rate-limited": "Too many requests", "unavailable": "Service unavailable", "already-exists": "Already exists",
    "method-not-allowed": "Method not allowed", "internal": "Internal server error",
}


class ApiError(Exception):
    """An error the HTTP layer answers with a problem document."""

    def __init__(self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}


def problem_body(status: int, code: str, detail: str, extra: dict[str, Any] | None = None) -> bytes:
    doc: dict[str, Any] = {"type": TYPE_PREFIX + code, "title": TITLES.get(code, code), "status": status,
                           "detail": detail, "code": code}
    doc.update(extra or {})
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def problem_response(status: int, code: str, detail: str, *, headers: dict[str, str] | None = None,
                     extra: dict[str, Any] | None = None) -> Response:
    return Response(problem_body(status, code, detail, extra), status_code=status, headers=headers,
                    media_type=PROBLEM_MEDIA_TYPE)


def from_refusal(refusal: Refusal, headers: dict[str, str] | None = None) -> Response:
    """A rule's refusal: its `.status` (409 rule, 403, 404, 422) and its `.code`."""
    return problem_response(refusal.status, refusal.code, refusal.message, headers=headers)


def from_error(error: ApiError) -> Response:
    return problem_response(error.status, error.code, error.detail, headers=error.headers, extra=error.extra)


_STATUS_CODES = {401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
                 412: "precondition-failed", 422: "invalid", 429: "rate-limited", 503: "unavailable"}


def install(app: FastAPI) -> None:
    """Every error the app can produce leaves as problem+json, including FastAPI's own."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return from_error(exc)

    @app.exception_handler(Refusal)
    async def _refusal(request: Request, exc: Refusal) -> Response:
        return from_refusal(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
        return problem_response(422, "invalid", detail, extra={"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # a body FastAPI cannot read (not UTF-8): a bad body is 422 in this contract
            return problem_response(422, "invalid", "the request body is not JSON in UTF-8")
        code = _STATUS_CODES.get(exc.status_code, "invalid" if exc.status_code < 500 else "internal")
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return problem_response(exc.status_code, code, detail, headers=dict(exc.headers or {}))
