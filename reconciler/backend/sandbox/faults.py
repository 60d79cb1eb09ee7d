"""Fault injection and rate limiting for `/v1`: what a flaky or busy supplier does, made reproducible; and
switches that turn one rule check off (a deliberately broken backend, for `reconciler conformance`).

Each decision is drawn from `Random(f"{seed}:{n}")` where n counts `/v1` requests since the faults were
configured, so a given seed yields the same faults for the same request sequence, whatever else ran.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class FaultConfig:
    """Probabilities per `/v1` request; `p_drop`: commit, then drop the connection mid-response."""

    p_503: float = 0.0
    p_429: float = 0.0
    p_drop: float = 0.0
    delay_ms: int = 0
    seed: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.p_503 or self.p_429 or self.p_drop or self.delay_ms)

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> "FaultConfig":
        return cls(**data) if data else cls()


@dataclass(frozen=True)
class Decision:
    """What happens to one request: delay first, then at most one of 503, 429 or drop."""

    delay_ms: int = 0
    status: int | None = None          # 503 or 429 instead of handling the request
    retry_after: int | None = None     # for 429
    drop: bool = False                 # handle (and commit), then drop the connection


class FaultInjector:
    """Deterministic per request sequence; thread-safe."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(config or FaultConfig())

    @property
    def config(self) -> FaultConfig:
        return self._config

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            if config.seed is None and config.active:
                config = FaultConfig(config.p_503, config.p_429, config.p_drop, config.delay_ms,
                                     random.SystemRandom().randrange(2**32))
            self._config = config
            self._n = 0

    def decide(self) -> Decision:
        with self._lock:
            config = self._config
            if not config.active:
                return Decision()
            n = self._n
            self._n += 1
        rng = random.Random(f"{config.seed}:{n}")
        draws = [rng.random() for _ in range(3)]
        retry_after = rng.randrange(2)
        if draws[0] < config.p_503:
            return Decision(config.delay_ms, status=503)
        if draws[1] < config.p_429:
            return Decision(config.delay_ms, status=429, retry_after=retry_after)
        return Decision(config.delay_ms, drop=draws[2] < config.p_drop)


@dataclass(frozen=True)
class RateBudget:
    """`requests` per `per_seconds` for each token (a token bucket of that size)."""

    requests: int
    per_seconds: float = 60.0

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> "RateBudget | None":
        return cls(**data) if data else None

    @classmethod
    def coerce(cls, value: "RateBudget | int | tuple[int, float] | None") -> "RateBudget | None":
        if value is None or isinstance(value, RateBudget):
            return value
        if isinstance(value, int):
            return cls(value)
        return cls(int(value[0]), float(value[1]))


class RateLimiter:
    """Token buckets by token hash, in memory: a budget is a per-process politeness limit."""

    def __init__(self, budget: RateBudget | None = None) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}
        self.budget = budget

    @property
    def budget(self) -> RateBudget | None:
        return self._budget

    @budget.setter
    def budget(self, budget: RateBudget | None) -> None:
        with self._lock:
            self._budget = budget
            self._buckets.clear()

    def take(self, key: str, now: float | None = None) -> int | None:
        """None if the request may go ahead, else the seconds to wait (for Retry-After)."""
        budget = self._budget
        if budget is None:
            return None
        now = time.monotonic() if now is None else now
        rate = budget.requests / budget.per_seconds
        with self._lock:
            tokens, last = self._buckets.get(key, (float(budget.requests), now))
            tokens = min(float(budget.requests), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return None
            self._buckets[key] = (tokens, now)
            return max(1, math.ceil((1.0 - tokens) / rate))


# ------------------------------------------------------------------------------------------ broken rules
# A deliberately broken sandbox, to prove that `reconciler conformance` detects what it claims: a switch
# (`POST /sandbox/faults/rules`) turns one rule check off for this app's `/v1` requests, by wrapping the check
# helper of `reconciler.domain.rules` (or the store's idempotency lookup) with one that lets it through. The
# wrappers are installed the first time a switch is turned on and pass every call to the real check unless the
# request runs under an app whose switch is on (a context variable set per `/v1` request by `RuleFaultScope`),
# so other apps in the same process, and the planner, keep every rule.

#: The switches, each with what it turns off (what `GET /sandbox/faults/rules` lists).
RULE_FAULTS: dict[str, str] = {
    "R4": "new means and level changes above the acting admin's own level are accepted",
    "R4-link": "links into an organisation where the acting admin is only a gebruiker are accepted",
    "R9": "any end date is accepted (today, or more than five years ahead)",
    "R13": "a belastingdienst means of any level, as beheerder, or a second one is accepted",
    "R18": "issuing chain authorisations re-dates all the intermediary's others (one end date per intermediary)",
    "R19": "EH2+, EH3 and EH4 without a second factor, and sms without a number, are accepted",
    "idempotency": "a repeated Idempotency-Key with another body replays the first answer instead of 422",
}

_BROKEN: ContextVar[frozenset[str]] = ContextVar("sandbox_broken_rules", default=frozenset())
_install_lock = threading.Lock()
_installed = False


def broken(name: str) -> bool:
    """Whether switch `name` is on for the `/v1` request being handled."""
    return name in _BROKEN.get()


class RuleFaults:
    """The switches of one app (in memory: a restart keeps every rule)."""

    def __init__(self) -> None:
        self.disabled: frozenset[str] = frozenset()

    def configure(self, names: list[str]) -> frozenset[str]:
        unknown = sorted(set(names) - set(RULE_FAULTS))
        if unknown:
            raise ValueError(f"unknown rule fault {', '.join(unknown)}; known: {', '.join(RULE_FAULTS)}")
        if names:
            install_rule_faults()
        self.disabled = frozenset(names)
        return self.disabled


class RuleFaultScope:
    """ASGI middleware: a `/v1` request runs with its app's switches in force, and only that request."""

    def __init__(self, app: Any, faults: RuleFaults) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.faults.disabled or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return
        token = _BROKEN.set(self.faults.disabled)
        try:
            await self.app(scope, receive, send)
        finally:
            _BROKEN.reset(token)


class _Anything(str):
    """A recorded body hash that equals every other (switch `idempotency`)."""

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


def install_rule_faults() -> None:
    """Wrap the checks the switches turn off, once per process; each wrapper calls the real check unless its switch
    is on for the current request."""
    global _installed
    from reconciler.domain import rules
    from reconciler.backend.sandbox.store import SandboxStore
    from reconciler.domain.state import PutChain

    with _install_lock:
        if _installed:
            return
        up_to_actor, end_date = rules._up_to_actor, rules._end_date
        tax_means_ok, second_factor_ok = rules._tax_means_ok, rules._second_factor_ok
        in_target, link_means = rules._execute_in_target, rules._link_means
        lookup = SandboxStore.idempotency_get
        issue_chain = rules._HANDLERS[rules.IssueChain]

        def _up_to_actor(actor: Any, level: Any, what: str) -> None:
            if not broken("R4"):
                up_to_actor(actor, level, what)

        def _end_date(today: Any, end: Any) -> Any:
            if broken("R9"):
                return end if end is not None else rules.max_end_date(today)
            return end_date(today, end)

        def _tax_means_ok(view: Any, kvk: str, level: Any, role: Any, exclude: str | None) -> None:
            if not broken("R13"):
                tax_means_ok(view, kvk, level, role, exclude)

        def _second_factor_ok(level: Any, factor: Any, phone: str | None) -> None:
            if not broken("R19"):
                second_factor_ok(level, factor, phone)

        def _execute_in_target(view: Any, actor_id: str, op: Any, today: Any) -> Any:
            """R4-link off: being linked to the target organisation in any role is enough (the old escalation)."""
            if not broken("R4-link"):
                return in_target(view, actor_id, op, today)
            actor = view.get_means(actor_id)
            if actor is None or not actor.active or view.membership(op.kvk, actor_id) is None:
                return in_target(view, actor_id, op, today)
            return link_means(view, actor, op, today)

        def _issue_chain(view: Any, actor: Any, op: Any, today: Any) -> Any:
            """R18 off: the date issued becomes the date of every chain authorisation of the intermediary."""
            effects = issue_chain(view, actor, op, today)
            if not broken("R18"):
                return effects
            end = rules._end_date(today, op.end_date)
            return [PutChain(e.kvk, e.chain.with_ends({u: end for u in e.chain.ends})) for e in effects]

        def idempotency_get(self: Any, token_hash: str, key: str) -> Any:
            record = lookup(self, token_hash, key)
            if record is not None and broken("idempotency"):
                return dataclasses.replace(record, body_hash=_Anything(record.body_hash))
            return record

        rules._up_to_actor, rules._end_date = _up_to_actor, _end_date  # type: ignore[assignment]
        rules._tax_means_ok, rules._second_factor_ok = _tax_means_ok, _second_factor_ok  # type: ignore[assignment]
        rules._execute_in_target = _execute_in_target  # type: ignore[assignment]
        rules._HANDLERS[rules.IssueChain] = _issue_chain
        SandboxStore.idempotency_get = idempotency_get  # type: ignore[method-assign]
        _installed = True
