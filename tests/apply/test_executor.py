"""The executor against the real sandbox (embedded: the same HTTP client over an in-process ASGI transport):
per-step isolation, 412 stops an organisation, idempotent re-runs, guards, the audit log (issue #5)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Awaitable, Callable

import anyio
import httpx
import pytest

from reconciler.apply.audit import AuditLog
from reconciler.apply.executor import Executor, idempotency_key
from reconciler.apply.report import ApplyReport, Outcome
from reconciler.apply.saved import plan_id
from reconciler.backend.client import BeheerClient
from reconciler.backend.sandbox.controls import SandboxControls
from reconciler.backend.session import Session, open_session
from reconciler.pipeline import Planned, plan_in_session
from reconciler.config.loader import load_paths
from reconciler.domain.catalogue import bundled_catalogue
from reconciler.plan.model import Action, Change, Stage

KVK = "12345678"
HEAD = f'version: 1\norganisation: {{kvk: "{KVK}", name: Acme}}\npolicy: {{prune: true}}\n'
ADMIN = "  - {email: admin@acme.nl, name: Admin, role: beheerder, level: EH3, second_factor: {type: otp}}\n"
CAT = bundled_catalogue()

Work = Callable[[Session, Planned], Awaitable[Any]]


class Sandbox:
    def __init__(self, tmp: Path) -> None:
        self.backend = f"sandbox:{tmp / 'sb.db'}"
        self.config = tmp / "org.yaml"
        self.audit = tmp / "audit.jsonl"

    def write(self, users: str) -> None:
        self.config.write_text(HEAD + "users:\n" + users)

    def session(self, work: Work) -> Any:
        """Open a session, plan the current config, run `work(session, planned)`."""
        async def go() -> Any:
            result = load_paths([str(self.config)], dt.date.today())
            assert result.ok
            async with open_session(self.backend, result.orgs) as session:
                planned = await plan_in_session(session, (str(self.config),), result, None)
                return await work(session, planned)
        return anyio.run(go)

    def apply(self) -> ApplyReport:
        async def work(session: Session, planned: Planned) -> ApplyReport:
            return await execute(session, planned)
        return self.session(work)

    def setup(self, users: str, *, activate: bool = True) -> None:
        """Make the backend hold `users` (applied, approved, activated) and check it converged."""
        self.write(users)
        for _ in range(3):
            self.apply()

            async def settle(session: Session, planned: Planned) -> None:
                controls = SandboxControls(session.client)
                for m in await controls.means(status="wachten_op_goedkeuring"):
                    await controls.step(m.id, "approve")
                for m in await controls.means(status="wachten_op_activatie") if activate else []:
                    await controls.step(m.id, "activate")
            self.session(settle)
        if activate:
            assert not self.session(lambda s, p: _const(p.plan.has_work)), "the setup did not converge"


async def _const(value: Any) -> Any:
    return value


async def execute(session: Session, planned: Planned, audit: AuditLog | None = None) -> ApplyReport:
    return await Executor(planned.plan, plan_id(planned.plan), planned.world.copy(), session.clients, session.actors,
                          audit=audit or AuditLog(None)).run()


@pytest.fixture
def sb(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def user(email: str, level: str = "EH3", auths: str = "") -> str:
    factor = ", second_factor: {type: otp}" if level in ("EH2+", "EH3") else ""
    extra = f", authorisations: [{auths}]" if auths else ""
    return f"  - {{email: {email}, name: {email.split('@')[0].title()}, role: gebruiker, level: {level}{factor}{extra}}}\n"


def outcomes(report: ApplyReport) -> list[tuple[str, str, str | None]]:
    return [(s.change.action.value, str(s.change.target), s.outcome.value) for o in report.organisations
            for s in o.steps]


def test_apply_carries_the_plan_out_and_the_next_plan_is_quiet(sb: Sandbox) -> None:
    sb.setup(ADMIN + user("x@acme.nl", auths="{service: rvo/tenderned, until: rolling}"))
    assert sb.session(lambda s, p: _const(p.plan.changes)) == []


def test_a_failed_step_skips_what_depends_on_it_and_independent_steps_go_on(sb: Sandbox) -> None:
    """x's downgrade (stage 4) needs the revoke of its EH3 service first (R8). The revoke fails (someone removed
    the authorisation by hand and the plan does not know), so the downgrade is skipped and says why, while the
    grant to y, which depends on nothing that failed, is done."""
    sb.setup(ADMIN + user("x@acme.nl", auths="{service: algemene-bevoegdheid-3, until: rolling}") + user("y@acme.nl"))
    sb.write(ADMIN + user("x@acme.nl", level="EH2") + user("y@acme.nl", auths="{service: rvo/tenderned, until: rolling}"))

    async def work(session: Session, planned: Planned) -> ApplyReport:
        [org] = planned.plan.organisations
        assert [c.action for c in org.changes] == [Action.GRANT, Action.REVOKE, Action.CHANGE_LEVEL]
        client = session.clients[KVK]
        x = next(m for m in await client.list_all_means(KVK) if m.email == "x@acme.nl")
        await client.revoke(KVK, [x.id], [CAT["algemene-bevoegdheid-3"].uuid])     # behind the plan's back
        org.revision = (await client.get_organisation(KVK)).revision             # same revision: the plan is "fresh"
        return await execute(session, planned)

    report = sb.session(work)
    [org] = report.organisations
    grant, revoke, downgrade = org.steps
    assert grant.outcome is Outcome.DONE
    assert revoke.outcome is Outcome.FAILED and revoke.code == "not-found"
    assert downgrade.outcome is Outcome.SKIPPED and downgrade.because == revoke.change.id
    assert "R8" in downgrade.message and downgrade.attempts == 0          # never sent
    assert not report.ok and org.stopped is None


def test_a_412_stops_the_organisation_cleanly_and_nothing_is_half_done(sb: Sandbox) -> None:
    sb.setup(ADMIN)
    sb.write(ADMIN + user("a@acme.nl") + user("b@acme.nl"))

    async def work(session: Session, planned: Planned) -> tuple[ApplyReport, int, int]:
        controls = SandboxControls(session.client)
        before = len(await controls.means(kvk=KVK))
        await session.clients[KVK].request_means(KVK, email="c@acme.nl", name="C", role="gebruiker", level="EH2")
        report = await execute(session, planned)
        return report, before, len(await controls.means(kvk=KVK))

    report, before, after = sb.session(work)
    [org] = report.organisations
    first, second = org.steps
    assert first.outcome is Outcome.FAILED and first.code == "precondition-failed"
    assert second.outcome is Outcome.SKIPPED and "plan again" in second.message
    assert "412" in (org.stopped or "")
    assert after == before + 1                      # only the out-of-band request: the plan did nothing


def test_running_the_same_plan_again_replays_and_buys_nothing_twice(sb: Sandbox) -> None:
    sb.setup(ADMIN)
    sb.write(ADMIN + user("a@acme.nl") + user("b@acme.nl"))

    async def work(session: Session, planned: Planned) -> tuple[ApplyReport, ApplyReport, int]:
        first = await execute(session, planned)
        again = await execute(session, planned)         # same plan id, same token: the same Idempotency-Keys
        return first, again, len(await SandboxControls(session.client).means(kvk=KVK))

    first, again, members = sb.session(work)
    assert [s.outcome for o in first.organisations for s in o.steps] == [Outcome.DONE, Outcome.DONE]
    assert [(s.outcome, s.replayed) for o in again.organisations for s in o.steps] == [(Outcome.DONE, True)] * 2
    assert members == 3


def _change(action: Action, params: dict[str, Any], target: str = "x") -> Change:
    return Change(id="0123456789abcdef", kvk=KVK, action=action, target=target, stage=Stage.REMOVE, params=params)


def test_guards_hold_whatever_the_plan_file_says(sb: Sandbox) -> None:
    """The acting admin is never demoted or terminated (R3); the last means is never terminated (R14); none of
    these is even sent."""
    sb.setup(ADMIN + user("x@acme.nl"))

    async def work(session: Session, planned: Planned) -> tuple[ApplyReport, int, int]:
        actor = session.actors[KVK]
        [org] = planned.plan.organisations
        org.changes = [_change(Action.TERMINATE_MEANS, {"means_id": actor, "mode": "now"}),
                       _change(Action.CHANGE_ROLE, {"means_id": actor, "role": "gebruiker"})]
        world = planned.world.copy()
        x = next(m for m in world.means.values() if m.email == "x@acme.nl")
        lonely = world.copy()
        del lonely.orgs[KVK].members[actor]                 # as if x were the organisation's last means
        org.changes.append(_change(Action.TERMINATE_MEANS, {"means_id": x.id, "mode": "now"}))
        sent = session.client.requests_total
        report = await Executor(planned.plan, "p", lonely, session.clients, session.actors).run()
        return report, sent, session.client.requests_total

    report, before, after = sb.session(work)
    assert [(s.outcome, s.code) for o in report.organisations for s in o.steps] == [
        (Outcome.FAILED, "R3"), (Outcome.FAILED, "R3"), (Outcome.FAILED, "R14")]
    assert after == before


def test_the_audit_log_has_a_line_per_step_and_never_a_token(sb: Sandbox) -> None:
    sb.setup(ADMIN)
    sb.write(ADMIN + user("a@acme.nl"))

    async def work(session: Session, planned: Planned) -> ApplyReport:
        with AuditLog(sb.audit) as audit:
            return await execute(session, planned, audit)

    report = sb.session(work)
    lines = [json.loads(line) for line in sb.audit.read_text().splitlines()]
    assert [line["event"] for line in lines] == ["apply-started", "step-intent", "step-result", "apply-finished"]
    intent, step = lines[1], lines[2]
    [done] = report.organisations[0].steps
    key = idempotency_key(report.plan_id, done.change.id)
    assert (intent["step_id"], intent["action"], intent["key"]) == (done.change.id, "request_means", key)
    assert step["plan_id"] == report.plan_id and step["action"] == "request_means" and step["outcome"] == "done"
    assert step["attempts"] == 1 and step["ms"] >= 0 and isinstance(step["revision"], int) and step["key"] == key
    text = sb.audit.read_text().lower()
    assert "bearer" not in text and "token" not in text


def test_idempotency_keys_differ_per_plan_and_step() -> None:
    assert idempotency_key("p1", "s1") == idempotency_key("p1", "s1")
    assert len({idempotency_key("p1", "s1"), idempotency_key("p2", "s1"), idempotency_key("p1", "s2")}) == 3


def test_a_lane_sends_over_a_connection_pool_of_its_own_and_closes_it(sb: Sandbox) -> None:
    """httpcore looks at every connection of a pool at each request, so each running lane gets a pool of its own
    (made like the session's), at most `concurrency` of them, all closed when the apply ends; the session's own
    pool stays open, and the requests still count in the session's counter."""
    sb.setup(ADMIN)
    sb.write(ADMIN + user("x@acme.nl", auths="{service: rvo/tenderned, until: rolling}") + user("y@acme.nl"))

    async def work(session: Session, planned: Planned) -> tuple[ApplyReport, list[Any], int, bool]:
        client = session.clients[KVK]
        made: list[Any] = []
        new_connection = client.new_connection

        def tracked() -> Any:
            pool = new_connection()
            made.append(pool)
            return pool

        client.new_connection = tracked  # type: ignore[method-assign]
        before = client.requests_total
        report = await Executor(planned.plan, plan_id(planned.plan), planned.world.copy(), session.clients,
                                session.actors, concurrency=2).run()
        return report, made, client.requests_total - before, session.client.http.is_closed

    report, made, sent, session_closed = sb.session(work)
    assert report.ok and len(report.organisations[0].steps) == 2
    assert len(made) == 1 and made[0] is not None and made[0].is_closed
    assert sent == 2 and not session_closed


def _org_configs(tmp: Path, count: int) -> list[str]:
    """`count` organisations, each an admin and two EH2 users to request: one lane each."""
    paths = []
    for i in range(count):
        kvk = f"{50000000 + i:08d}"
        path = tmp / f"{kvk}.yaml"
        path.write_text(f'version: 1\norganisation: {{kvk: "{kvk}", name: Org {i}}}\nusers:\n'
                        f"  - {{email: admin@o{i}.nl, name: Admin, role: beheerder, level: EH3, second_factor: {{type: otp}}}}\n"
                        f"  - {{email: a@o{i}.nl, name: A, role: gebruiker, level: EH2}}\n"
                        f"  - {{email: b@o{i}.nl, name: B, role: gebruiker, level: EH2}}\n")
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("concurrency", [1, 8])
def test_fifty_organisations_go_over_at_most_concurrency_pools_each_step_with_its_organisation_s_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, concurrency: int) -> None:
    """50 lanes, one organisation a 412 in its first step: at most `concurrency` pools are made and all are
    closed at the end (the session's stays open); every request carries the token of the organisation in its
    URL; the 412 stops that organisation only; every other step is done, and the next plan has only the
    stopped organisation's work."""
    paths = _org_configs(tmp_path, 50)
    backend = f"sandbox:{tmp_path / 'sb.db'}"
    stale = f"{50000000 + 7:08d}"
    pools: list[Any] = []
    sent: list[tuple[str, str | None]] = []
    original = BeheerClient.new_connection

    def tracked(self: BeheerClient) -> Any:
        pool = original(self)
        assert pool is not None

        async def record(request: httpx.Request) -> None:
            sent.append((request.url.path.split("/")[3], request.headers.get("Authorization")))

        pool.event_hooks = {"request": [record], "response": []}
        pools.append(pool)
        return pool

    monkeypatch.setattr(BeheerClient, "new_connection", tracked)

    async def go() -> tuple[ApplyReport, dict[str, str], bool, list[str]]:
        result = load_paths(paths, dt.date.today())
        assert result.ok
        async with open_session(backend, result.orgs) as session:
            planned = await plan_in_session(session, tuple(paths), result, None)
            tokens = {kvk: f"Bearer {c._token.reveal()}" for kvk, c in session.clients.items()}  # type: ignore[union-attr]
            assert len(set(tokens.values())) == 50
            await session.clients[stale].request_means(stale, email="c@o7.nl", name="C", role="gebruiker", level="EH2")
            report = await Executor(planned.plan, plan_id(planned.plan), planned.world.copy(), session.clients,
                                    session.actors, concurrency=concurrency).run()
            closed = session.client is not None and session.client.http.is_closed
            again = await plan_in_session(session, tuple(paths), load_paths(paths, dt.date.today()), None)
            return report, tokens, closed, [o.kvk for o in again.plan.organisations if o.changes]

    report, tokens, session_closed, left = anyio.run(go)
    assert 1 <= len(pools) <= concurrency and all(pool.is_closed for pool in pools) and not session_closed
    assert len(sent) == 49 * 2 + 1 and all(tokens[kvk] == auth for kvk, auth in sent)
    for org in report.organisations:
        outcomes = [s.outcome for s in org.steps]
        if org.kvk == stale:
            assert outcomes == [Outcome.FAILED, Outcome.SKIPPED] and "412" in (org.stopped or "")
        else:
            assert outcomes == [Outcome.DONE, Outcome.DONE], org.kvk
    assert left == [stale]
