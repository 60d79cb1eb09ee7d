"""The executor: carries a plan out, step by step, as each organisation's acting admin.

- Organisations run in parallel (bounded); steps within one in plan order. Organisations whose steps touch
  the same means (a person linked to both, R15) share a lane and run one after the other, in plan order, as
  the planner simulated them.
- Every request carries `If-Match` (the revision the step expects: the plan's, then each answer's) and an
  `Idempotency-Key` derived from the plan id and the step id, so a retry never repeats an effect.
- Each step is first checked with the very rules the planner and the sandbox use (`domain.rules`), on a copy
  of the state the plan was made on, to which only the steps that succeeded are applied. A step the rules
  now refuse depended on a step that failed: it is skipped and says which. Independent steps go on.
- A 412 (someone else changed the organisation), or a request whose outcome is unknown (the connection kept
  failing) stops that organisation: the rest is reported as not attempted, and the next run re-plans.
- The audit log gets a `step-intent` line before each request and a `step-result` line after each step. A
  step whose intent cannot be written is not sent; once the log cannot be written, every lane stops before its
  next request (the rest is not attempted), and a step the backend committed whose result line could not be
  written is reported as "committed, not logged" with its idempotency key.
- Guards that hold whatever the flags: the acting admin is never demoted, downgraded or terminated (R3), the
  last means of an organisation is never terminated (R14); deferred and manual steps are never attempted.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Mapping

import anyio
import httpx

from reconciler.apply.audit import AuditError, AuditLog
from reconciler.apply.calls import means_ids, path_kvk, send
from reconciler.apply.progress import Progress, Quiet
from reconciler.apply.report import ApplyReport, OrgResult, Outcome, StepResult, empty_result
from reconciler.backend.client import BeheerClient
from reconciler.backend.errors import (
    BackendError, BackendUnreachable, PreconditionFailed, RateLimited, ServerError, Unavailable, UnexpectedResponse,
)
from reconciler.config.models import Role
from reconciler.domain import rules
from reconciler.domain.state import World
from reconciler.plan.model import Action, Change, OrgPlan, Plan

#: Organisations applied at the same time.
APPLY_CONCURRENCY = 4

#: Failures after which the outcome of the request is not known (it may have been committed): stop there.
_UNKNOWN_OUTCOME = (BackendUnreachable, UnexpectedResponse, ServerError)
#: The backend is not taking requests now: nothing was done, the rest would fail the same way.
_UNAVAILABLE = (Unavailable, RateLimited)
#: Why the rest of every organisation is not attempted once the audit log cannot be written.
AUDIT_STOP = ("the audit log cannot be written; nothing more is sent: make it writable (or give --audit-log "
              "another path) and run again")


def idempotency_key(plan_id: str, step_id: str) -> str:
    return "rcl-" + hashlib.sha256(f"{plan_id}:{step_id}".encode()).hexdigest()[:32]


@dataclass
class Executor:
    plan: Plan
    plan_id: str
    world: World                                   # the state the plan was made on; steps that succeed go in
    clients: Mapping[str, BeheerClient]            # kvk -> client with that organisation's acting admin's token
    actors: Mapping[str, str | None]               # kvk -> acting admin's means id
    audit: AuditLog = field(default_factory=lambda: AuditLog(None))
    progress: Progress = field(default_factory=Quiet)
    concurrency: int = APPLY_CONCURRENCY
    revisions: dict[str, int | None] = field(default_factory=dict)
    #: the first audit write that failed: no request is sent after it
    audit_failure: AuditError | None = field(default=None, init=False)
    _report: ApplyReport | None = field(default=None, init=False)
    #: (organisation, step id) -> the organisation whose URL (and revision) its request goes to (`calls.path_kvk`),
    #: found once when the lanes are made: each step's result line names that revision, skipped steps' too
    _where: dict[tuple[str, str], str] = field(default_factory=dict, init=False)

    async def run(self) -> ApplyReport:
        report = ApplyReport(self.plan_id, [empty_result(org) for org in self.plan.organisations])
        self._report = report
        results = {r.kvk: r for r in report.organisations}
        for org in self.plan.organisations:
            self.revisions.setdefault(org.kvk, org.revision)
        self.progress.start(len(self.plan.changes))
        self._log("apply-started", plan_id=self.plan_id, organisations=[o.kvk for o in self.plan.organisations],
                  steps=len(self.plan.changes), today=self.plan.today)
        limiter = anyio.Semaphore(self.concurrency)

        # Each lane that runs sends over a connection pool of its own, taken from these (at most `concurrency`)
        # and given back when the lane is done: lanes do not wait on each other for a connection (and httpcore, which
        # still serves an https backend behind a proxy, looks at each connection of its pool at every request).
        made: list[httpx.AsyncClient] = []
        free: list[httpx.AsyncClient] = []

        async def lane(orgs: list[OrgPlan]) -> None:
            failed: list[StepResult] = []          # a step may wait on a failed step of an earlier organisation
            async with limiter:
                connection = free.pop() if free else None
                for org in orgs:
                    client = self.clients.get(org.kvk)
                    if connection is None and client is not None and (connection := client.new_connection()):
                        made.append(connection)
                    await self._org(org, results[org.kvk], failed,
                                    client.over(connection) if client is not None and connection else client)
                if connection is not None:
                    free.append(connection)

        try:
            async with anyio.create_task_group() as tg:
                for orgs in self._lanes():
                    tg.start_soon(lane, orgs)
        finally:
            self.progress.finish()
            self._log("apply-finished", plan_id=self.plan_id, **report.summary())
            if self.audit_failure is not None:
                report.audit_failure = str(self.audit_failure)
            with anyio.CancelScope(shield=True):       # closed after the log's last line, even on Ctrl-C
                for connection in made:
                    await connection.aclose()
        return report

    def _log(self, event: str, **fields: object) -> bool:
        """Write one audit line; False (and the apply stops sending) if the log cannot be written."""
        if self.audit_failure is not None:
            return False
        try:
            self.audit.write(event, **fields)
        except AuditError as error:
            self.audit_failure = error
            return False
        return True

    # ------------------------------------------------------------------------------------------ lanes
    def _lanes(self) -> list[list[OrgPlan]]:
        """Organisations connected by a means that steps of one touch and that is a member of the other (or by
        a link's source) run in one lane, in plan order; the others in parallel."""
        orgs = [o for o in self.plan.organisations if o.changes]
        parent = {o.kvk: o.kvk for o in orgs}

        def find(k: str) -> str:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        for org in orgs:
            for change in org.changes:
                where = self._where[change.kvk, change.id] = path_kvk(change)
                related = {where}
                for mid in means_ids(change):
                    related |= set(self.world.memberships_of(mid))
                for kvk in related & parent.keys():
                    parent[find(kvk)] = find(org.kvk)
        lanes: dict[str, list[OrgPlan]] = {}
        for org in orgs:
            lanes.setdefault(find(org.kvk), []).append(org)
        return list(lanes.values())

    # --------------------------------------------------------------------------------- one organisation
    async def _org(self, org: OrgPlan, result: OrgResult, failed: list[StepResult],
                   client: BeheerClient | None) -> None:
        for change in org.changes:
            if self.audit_failure is not None and not result.stopped:
                result.stopped = AUDIT_STOP
            if result.stopped:
                self._record(result, StepResult(change, Outcome.SKIPPED, message=f"not attempted: {result.stopped}",
                                                because=failed[-1].change.id if failed else None))
                continue
            self.progress.step(change)
            step = await self._step(change, failed, client)
            self._record(result, step)
            if step.outcome is Outcome.FAILED:
                failed.append(step)
                stop = self._stops(step)
                if stop:
                    result.stopped = stop

    def _record(self, result: OrgResult, step: StepResult) -> None:
        result.steps.append(step)
        c = step.change
        where = self._where.get((c.kvk, c.id), c.kvk)
        logged = self._log("step-result", plan_id=self.plan_id, step_id=c.id, kvk=c.kvk, action=c.action.value,
                           target=c.target, outcome=step.outcome.value, code=step.code, message=step.message,
                           attempts=step.attempts, ms=round(step.seconds * 1000, 1), because=step.because,
                           replayed=step.replayed, revision=self.revisions.get(where), key=step.key)
        if not logged and step.key is not None and self._report is not None:
            self._report.unlogged.append(step)       # sent, and the log does not say how it ended
        self.progress.done(step)

    def _stops(self, step: StepResult) -> str | None:
        if step.code == "precondition-failed":
            return ("someone else changed the organisation since it was planned (412); nothing more is done here: "
                    "plan again")
        if step.code == "outcome-unknown":
            return "the outcome of a request is unknown; nothing more is done here: run again (it converges)"
        if step.code in ("unavailable", "rate-limited"):
            return "the backend is not taking requests now; nothing more is done here: run again later"
        return None

    # ----------------------------------------------------------------------------------------- one step
    async def _step(self, change: Change, failed: list[StepResult], client: BeheerClient | None) -> StepResult:
        actor = self.actors.get(change.kvk)
        if actor is None or client is None:
            return StepResult(change, Outcome.FAILED, "R1", "no acting beheerder for this organisation")
        guard = self._guard(change, actor)
        if guard:
            return StepResult(change, Outcome.FAILED, guard[0], guard[1])
        op = change.operation(f"pending:{change.id}")
        try:
            effects = rules.execute(self.world, actor, op, self.plan.today)
        except rules.Refusal as refusal:
            cause = _cause(change, failed)
            if cause is not None:
                return StepResult(change, Outcome.SKIPPED, refusal.code,
                                  f"it depends on that step ({refusal.code}: {refusal.message})", because=cause.change.id)
            return StepResult(change, Outcome.FAILED, refusal.code, f"not sent: the backend would refuse it now "
                              f"({refusal.message}); plan again")
        where = path_kvk(op)
        key = idempotency_key(self.plan_id, change.id)
        if not self._log("step-intent", plan_id=self.plan_id, step_id=change.id, kvk=change.kvk,
                         action=change.action.value, target=change.target, key=key):
            return StepResult(change, Outcome.SKIPPED, message=f"not attempted: {AUDIT_STOP}")
        started = time.perf_counter()
        try:
            answer = await send(client, op, if_match=self.revisions.get(where), key=key)
        except BackendError as error:
            seconds = time.perf_counter() - started
            if isinstance(error, PreconditionFailed):
                code = "precondition-failed"
            elif isinstance(error, _UNKNOWN_OUTCOME):
                code = "outcome-unknown"
            elif isinstance(error, _UNAVAILABLE):
                code = error.code or "unavailable"
            else:
                code = error.code or "error"
            return StepResult(change, Outcome.FAILED, code, str(error), attempts=error.attempts, seconds=seconds,
                              key=key)
        seconds = time.perf_counter() - started
        self.revisions[where] = answer.revision
        if change.action is Action.REQUEST_MEANS:       # the effects again, with the id the backend gave
            effects = rules.execute(self.world, actor, change.operation(answer.means().id), self.plan.today)
        self.world.apply(effects)
        return StepResult(change, Outcome.DONE, attempts=answer.attempts, seconds=seconds, replayed=answer.replayed,
                          key=key)

    def _guard(self, change: Change, actor: str) -> tuple[str, str] | None:
        """What the reconciler never does, whatever the plan file or the flags say."""
        p = change.params
        own = p.get("means_id") == actor
        if own and change.action is Action.TERMINATE_MEANS:
            return "R3", "the acting admin's own means is never terminated by the reconciler"
        if own and change.action is Action.CHANGE_ROLE and p.get("role") == Role.GEBRUIKER.value:
            return "R3", "the acting admin is never demoted by the reconciler"
        if change.action is Action.TERMINATE_MEANS and self.world.member_count(change.kvk) <= 1:
            return "R14", "the last means of an organisation is never terminated by the reconciler"
        return None


def _cause(change: Change, failed: list[StepResult]) -> StepResult | None:
    """The failed step this one most likely waited on: one about the same person or means, else the last."""
    if not failed:
        return None
    mine = set(means_ids(change)) | {(change.person or "").lower()}
    for step in reversed(failed):
        theirs = set(means_ids(step.change)) | {(step.change.person or "").lower()}
        if mine & theirs - {""}:
            return step
    return failed[-1]
