"""Fault injection and rate limiting for `/v1`: what a flaky or busy supplier does, made reproducible.

Each decision is drawn from `Random(f"{seed}:{n}")` where n counts `/v1` requests since the faults were
configured, so a given seed yields the same faults for the same request sequence, whatever else ran.
"""

from __future__ import annotations

import math
import random
import threading
import time
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
