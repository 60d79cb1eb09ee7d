"""Run the probes against a backend over HTTP: check that it answers and accepts the token, set up the control
hook, run each probe in its own throw-away organisation(s) with a time limit, then clean up."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum

import anyio
import httpx

from reconciler.backend.client import BeheerClient, RetryPolicy
from reconciler.backend.connect import attach_control_token, parse_backend_spec
from reconciler.backend.errors import BackendError, BackendUnreachable, ConfigurationError, Unauthorized
from reconciler.backend.types import Secret
from reconciler.conformance.control import ControlUnusable, HttpControl
from reconciler.conformance.kit import CannotRun, Kit
from reconciler.conformance.probes import Failed, Probe, Skipped, select, unknown

#: Seconds one probe may take before it counts as failed (a hung backend must not hang the kit).
PROBE_TIMEOUT = 60.0
#: Retries for 429/503 and dropped connections: a busy backend is not a failing one (mutations carry a key).
RETRY = RetryPolicy(attempts=3, base_delay=0.2, max_delay=2.0, max_total_delay=10.0)


class ConformanceUnusable(Exception):
    """The kit cannot run at all (no token, an unreachable backend, a bad --only): one line, exit 1."""


class Outcome(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    id: str
    rule: str
    title: str
    outcome: Outcome
    check: str = ""          # FAIL: what was tried
    expected: str = ""       # FAIL
    got: str = ""            # FAIL: the backend's answer (hostile: escape where shown)
    reason: str = ""         # SKIP: why
    seconds: float = 0.0


@dataclass
class Report:
    backend: str
    control: str                              # what the control hook is, or why there is none
    results: list[ProbeResult] = field(default_factory=list)
    organisations: int = 0                    # throw-away organisations made
    cleaned: int = 0                          # ... and ended again
    cleanup_problems: list[str] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(r.outcome is outcome for r in self.results)

    @property
    def passed(self) -> bool:
        """Every probe that ran passed (skipped ones are listed, not failed)."""
        return self.count(Outcome.FAIL) == 0


async def run_probe(kit: Kit, probe: Probe, timeout: float = PROBE_TIMEOUT) -> ProbeResult:
    started = time.monotonic()

    def result(outcome: Outcome, **fields: str) -> ProbeResult:
        return ProbeResult(probe.id, probe.rule, probe.title, outcome, seconds=time.monotonic() - started, **fields)

    try:
        with anyio.fail_after(timeout):
            await probe.run(kit)
    except (Skipped, CannotRun) as exc:
        return result(Outcome.SKIP, reason=str(exc))
    except Failed as exc:
        return result(Outcome.FAIL, check=exc.check, expected=exc.expected, got=exc.got)
    except TimeoutError:
        return result(Outcome.FAIL, check="the probe", expected=f"done within {timeout:.0f} s", got="no end")
    except BackendError as exc:
        return result(Outcome.FAIL, check="setting up or reading back", expected="an answer within the contract",
                      got=str(exc))
    return result(Outcome.PASS)


def from_environment(backend: str | None, control_url: str | None = None, only: str | None = None) -> Report:
    """`reconciler conformance`: the kit with the tokens from the environment (BEHEER_API_TOKEN, never an argument;
    SANDBOX_CONTROL_TOKEN, optional) and `only` as written (comma-separated ids or rules)."""
    import os

    from reconciler.backend.client import token_from_env
    from reconciler.backend.sandbox.controls import CONTROL_TOKEN_ENV

    try:
        token = token_from_env()
    except ConfigurationError as exc:
        raise ConformanceUnusable(str(exc)) from None
    control = os.environ.get(CONTROL_TOKEN_ENV, "").strip()
    wanted = {part.strip() for part in only.split(",") if part.strip()} if only else None
    return anyio.run(lambda: run_conformance(backend, token, control_token=Secret(control) if control else None,
                                             control_url=control_url, only=wanted))


async def run_conformance(backend: str | None, token: Secret, *, control_token: Secret | None = None,
                          control_url: str | None = None, only: set[str] | None = None,
                          transport: httpx.AsyncBaseTransport | None = None) -> Report:
    """Run the kit (or the `only` probes: ids or rules) against the beheer backend at `backend` (None:
    $RECONCILER_BACKEND), acting with
    `token` (BEHEER_API_TOKEN) for the reads it makes as an outsider, with the control API at `control_url`
    (default: the backend's address) when `control_token` is given; without it the probes that need the
    supplier's steps are skipped. Raises `ConformanceUnusable` when it cannot run at all."""
    if only and unknown(only):
        known = ", ".join(sorted({p.id for p in select(None)} | {p.rule for p in select(None)}))
        raise ConformanceUnusable(f"--only: no probe is called {', '.join(unknown(only))}; known: {known}")
    try:
        spec = parse_backend_spec(backend)
        control_spec = parse_backend_spec(control_url) if control_url else spec
    except ConfigurationError as exc:
        raise ConformanceUnusable(str(exc)) from None
    if spec.embedded or control_spec.embedded:
        raise ConformanceUnusable("the conformance kit talks HTTP: give the http(s):// address of a backend (for the "
                                  "sandbox, run `reconciler sandbox serve` and give its address)")
    assert spec.url is not None and control_spec.url is not None
    async with BeheerClient(spec.url, token, retry=RETRY, transport=transport) as api, \
            BeheerClient(control_spec.url, None, retry=RETRY, transport=transport) as control_client, \
            httpx.AsyncClient(base_url=spec.url, transport=transport, timeout=30.0, trust_env=False) as raw:
        try:
            await api.me()
            services = await api.list_services()
        except Unauthorized:
            raise ConformanceUnusable(f"the backend at {spec.url} did not accept BEHEER_API_TOKEN (401): export "
                                      "the API token of an admin there") from None
        except BackendUnreachable as exc:
            raise ConformanceUnusable(f"cannot reach the backend at {spec.url}: {exc.detail}") from None
        except BackendError as exc:
            raise ConformanceUnusable(f"the backend at {spec.url} does not answer GET /v1/me and GET /v1/services "
                                      f"as the contract says: {exc}") from None
        control = None
        described = "none (SANDBOX_CONTROL_TOKEN unset): probes that need the supplier's steps are skipped"
        if control_token is not None:
            attach_control_token(control_client.http, control_token)
            control = HttpControl(control_client)
            try:
                await control.check()
            except ControlUnusable as exc:
                raise ConformanceUnusable(str(exc)) from None
            except BackendUnreachable as exc:
                raise ConformanceUnusable(f"cannot reach the control API at {control_spec.url}: {exc.detail}") from None
            described = f"{control_spec.url}/sandbox" + ("" if control.clock else " (no clock: R5 is skipped)")
        kit = Kit(api=api, raw=raw, control=control, services=services)
        report = Report(backend=spec.url, control=described)
        try:
            for probe in select(only):
                report.results.append(await run_probe(kit, probe))
        finally:
            with anyio.CancelScope(shield=True):
                report.organisations = len(kit.orgs)
                if control is not None:
                    report.cleaned, report.cleanup_problems = await kit.cleanup()
        return report
