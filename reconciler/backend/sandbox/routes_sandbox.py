"""Sandbox-only controls (not in the OpenAPI contract): play the supplier (new organisations, approvals), the
holder (activation), time (the clock), and the network (faults, rate limits). Every `/sandbox` request needs
the control token (`app.ControlGuard`), not an admin's API token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from reconciler.domain import rules
from reconciler.domain.catalogue import Service
from reconciler.domain.levels import Level
from reconciler.domain.rules import Invalid, Missing
from reconciler.domain.state import Effect

from reconciler.backend.sandbox import models as m
from reconciler.backend.sandbox.context import get_store, json_response
from reconciler.backend.sandbox.deferred import DeferredRoute
from reconciler.backend.sandbox.faults import RULE_FAULTS, FaultConfig, RateBudget
from reconciler.backend.sandbox.serialise import sandbox_means_dict
from reconciler.backend.sandbox.store import SandboxStore

router = APIRouter(prefix="/sandbox", include_in_schema=False, route_class=DeferredRoute)


@router.post("/organisations", status_code=201)
async def create_organisation(request: Request, body: m.OrganisationIn) -> Response:
    store = get_store(request)
    means_id, token = store.create_organisation(
        body.kvk, body.name, body.admin.email, body.admin.name, Level(body.admin.level.value),
        branch_number=body.branch_number, second_factor=body.admin.second_factor, phone=body.admin.phone,
        subscription=body.admin.subscription)
    return json_response({"kvk": body.kvk, "means_id": means_id, "token": token}, status=201)


@router.post("/tokens", status_code=201)
async def create_token(request: Request, body: m.TokenIn) -> Response:
    token = get_store(request).create_token(body.means_id, body.read_only)
    return json_response({"token": token}, status=201)


_LIFECYCLE: dict[str, tuple[Callable[..., list[Effect]], str, str]] = {
    "approve": (rules.approve, "supplier", "approve"),
    "reject": (rules.reject, "supplier", "reject"),
    "activate": (rules.activate, "holder", "activate"),
    "expire": (rules.expire_activation, "clock", "expire_activation"),
}


@router.post("/means/{means_id}/{step}")
async def lifecycle(request: Request, means_id: str, step: str) -> Response:
    """The supplier approves/rejects a request or pending change, the holder activates, 30 days pass (R5, R6)."""
    if step not in _LIFECYCLE:
        raise Missing("not-found", f"unknown step {step!r}; allowed: {', '.join(_LIFECYCLE)}")
    decide, actor, action = _LIFECYCLE[step]
    store = get_store(request)
    with store.transaction(write=True):
        orgs: list[str | None] = list(store.memberships_of(means_id)) or [None]
        effects = decide(store, means_id, store.today)
        store.apply(effects)
        means = store.get_means(means_id)
        for kvk in orgs:
            store.audit(kvk, actor, action, means_id, "ok")
        data = sandbox_means_dict(means, store.memberships_of(means_id)) if means else None
        return json_response({"means": data, "effects": len(effects)})


@router.get("/means")
async def all_means(request: Request, status: str | None = Query(None), kvk: str | None = Query(None),
                    email: str | None = Query(None)) -> Response:
    store = get_store(request)
    with store.transaction():
        items = [sandbox_means_dict(means, ms) for means, ms in store.all_means(status=status, kvk=kvk, email=email)]
        return json_response({"items": items})


def _clock(store: SandboxStore, swept: dict[str, int] | None = None) -> dict[str, Any]:
    today, fixed = store.clock()
    return {"today": today.isoformat(), "fixed": fixed, "swept": swept}


@router.get("/clock")
async def get_clock(request: Request) -> Response:
    return json_response(_clock(get_store(request)))


@router.post("/clock")
async def set_clock(request: Request, body: m.ClockIn) -> Response:
    """Moving today applies what the days bring: expired activations, authorisations and chains, and
    scheduled terminations (R5, R9, R14, R18)."""
    store = get_store(request)
    if (body.today is None) == (body.advance_days is None):
        raise Invalid("invalid", "send either `today` (YYYY-MM-DD) or `advance_days`")
    report = store.set_clock(body.today) if body.today is not None else store.advance_clock(body.advance_days or 0)
    return json_response(_clock(store, report.as_dict()))


@router.post("/catalogue")
async def add_catalogue(request: Request, body: m.CatalogueIn) -> Response:
    services = [Service.from_data(s.model_dump()) for s in body.services]  # `ServiceIn` has `Service`'s fields
    added = get_store(request).add_services(services)
    return json_response({"added": added})


@router.get("/faults")
async def get_faults(request: Request) -> Response:
    return json_response(request.app.state.faults.config.to_data())


@router.post("/faults")
async def set_faults(request: Request, body: m.FaultsIn) -> Response:
    """Faults on `/v1` only; the same seed gives the same faults for the same request sequence."""
    config = FaultConfig(body.p_503, body.p_429, body.p_drop, body.delay_ms, body.seed)
    request.app.state.faults.configure(config)
    get_store(request).set_setting("faults", config.to_data())
    return json_response(request.app.state.faults.config.to_data())


class RuleFaultsIn(BaseModel):
    """`POST /sandbox/faults/rules`: the rule checks to turn off (`[]` turns every one on again)."""

    model_config = ConfigDict(extra="forbid")
    disabled: list[str]


def _rule_faults(request: Request) -> dict[str, Any]:
    return {"disabled": sorted(request.app.state.rule_faults.disabled), "available": RULE_FAULTS}


@router.get("/faults/rules")
async def get_rule_faults(request: Request) -> Response:
    return json_response(_rule_faults(request))


@router.post("/faults/rules")
async def set_rule_faults(request: Request, body: RuleFaultsIn) -> Response:
    """A deliberately broken backend (`reconciler conformance` must notice): these rule checks are off for this
    server's `/v1` requests until turned on again; not stored, so a restart keeps every rule."""
    try:
        request.app.state.rule_faults.configure(body.disabled)
    except ValueError as exc:
        raise Invalid("invalid", str(exc)) from None
    return json_response(_rule_faults(request))


@router.get("/rate-limit")
async def get_rate_limit(request: Request) -> Response:
    budget = request.app.state.limiter.budget
    return json_response(budget.to_data() if budget else {"requests": None, "per_seconds": None})


@router.post("/rate-limit")
async def set_rate_limit(request: Request, body: m.RateLimitIn) -> Response:
    budget = RateBudget(body.requests, body.per_seconds) if body.requests else None
    request.app.state.limiter.budget = budget
    get_store(request).set_setting("rate_budget", budget.to_data() if budget else None)
    return json_response(budget.to_data() if budget else {"requests": None, "per_seconds": None})


@router.get("/requests")
async def requests(request: Request) -> Response:
    """Counts of `/v1` requests by method and route template, and of means requested."""
    counts, named = get_store(request).counters()
    return json_response({
        "requests": [{"method": mt, "route": route, "count": n} for mt, route, n in counts],
        "by_route": {f"{mt} {route}": n for mt, route, n in counts},
        "total": sum(n for _, _, n in counts),
        "means_created": named.get("means_created", 0),
    })


@router.delete("/requests")
async def reset_requests(request: Request) -> Response:
    get_store(request).reset_counters()
    return Response(status_code=204)
