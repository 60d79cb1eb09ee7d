"""One probe per rule and edge of the beheer API, each a small async function run against a live backend in
organisations the kit made for it (`kit.Kit`). A probe passes by returning, fails by raising `Failed` (what
was expected and what came: the first check that did not hold), and is skipped by raising `Skipped` (why).

Probes assert what the contract (docs/beheer-api.md) and the rules (docs/rules.md) say a backend answers:
the HTTP status and the problem `code`, and that a refused request changed nothing. Each also checks the
accepted side of its rule (the same request just inside the limit), so a backend that refuses everything
fails too."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from reconciler.backend.client import BeheerClient
from reconciler.backend.errors import BackendError
from reconciler.backend.types import MutationResult
from reconciler.conformance.kit import Kit, Org
from reconciler.domain.rules import add_years

T = TypeVar("T")


class Failed(Exception):
    """A check did not hold: `check` what was tried, `expected` and `got` (the backend's answer)."""

    def __init__(self, check: str, expected: str, got: str) -> None:
        super().__init__(f"{check}: expected {expected}, got {got}")
        self.check, self.expected, self.got = check, expected, got


class Skipped(Exception):
    """The probe cannot run against this backend (no control hook, no clock, a pending API): `str` says why."""


ProbeFn = Callable[[Kit], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Probe:
    id: str              # unique, e.g. `R4-link`; `--only` takes ids or rules
    rule: str            # the rule or edge it holds, e.g. `R4`, `auth`, `idempotency`
    title: str           # one line: what a conforming backend does
    run: ProbeFn


PROBES: list[Probe] = []


def probe(id: str, rule: str, title: str) -> Callable[[ProbeFn], ProbeFn]:
    def register(fn: ProbeFn) -> ProbeFn:
        PROBES.append(Probe(id, rule, title, fn))
        return fn

    return register


# ------------------------------------------------------------------------------------------------ checks
def answer(error: BackendError) -> str:
    """A refusal as the report shows it: status, code and the backend's own words (escaped where printed)."""
    code = f" {error.code}" if error.code else ""
    detail = error.detail or error.title or ""
    return f"{error.status}{code}" + (f" ({detail[:160]})" if detail else "")


async def refused(call: Awaitable[Any], status: int, code: str, check: str) -> BackendError:
    """`call` must be refused with `status` and problem `code`."""
    try:
        result = await call
    except BackendError as error:
        if error.status == status and error.code == code:
            return error
        raise Failed(check, f"{status} {code}", answer(error)) from None
    got = f"{result.status} accepted" if isinstance(result, MutationResult) else "accepted"
    raise Failed(check, f"{status} {code}", got)


async def accepted(call: Awaitable[T], check: str) -> T:
    """`call` must succeed."""
    try:
        return await call
    except BackendError as error:
        raise Failed(check, "accepted (2xx)", answer(error)) from None


def holds(condition: bool, check: str, expected: str, got: object) -> None:
    if not condition:
        raise Failed(check, expected, str(got))


async def revision(org: Org) -> int:
    return (await org.admin.get_organisation(org.kvk)).revision


async def emails(org: Org) -> set[str]:
    return {m.email for m in await org.admin.list_all_means(org.kvk)}


async def end_dates(client: BeheerClient, kvk: str) -> dict[tuple[str, str], dt.date]:
    return {(a.means_id, a.service): a.end_date for a in await client.list_all_authorisations(kvk)}


# ---------------------------------------------------------------------------------------------- R1
@probe("R1", "R1", "the last staying admin stays; an admin awaiting activation does not count")
async def r1(kit: Kit) -> None:
    control = kit.need_control()
    org = await kit.new_org()
    leaving = await kit.member(org, "admin-leaving", level="EH3", role="beheerder")
    pending = await kit.member(org, "admin-pending", level="EH3", role="beheerder", active=False)
    today = await kit.today()
    await accepted(org.admin.terminate_means(org.kvk, leaving, mode="date", date=today + dt.timedelta(days=10)),
                   "schedule the second admin's termination in 10 days")
    other = await kit.token(leaving)
    await refused(other.change_role(org.kvk, org.admin_id, "gebruiker"), 409, "R1",
                  "the leaving admin demotes the only staying admin while a third admin awaits activation")
    await refused(other.terminate_means(org.kvk, org.admin_id, mode="now"), 409, "R1",
                  "the leaving admin terminates the only staying admin while a third admin awaits activation")
    await control.activate(pending)
    await accepted(other.change_role(org.kvk, org.admin_id, "gebruiker"),
                   "the same demotion once the third admin is active")


# ---------------------------------------------------------------------------------------------- R4
@probe("R4-level", "R4", "new means and upgrades only up to the acting admin's own level")
async def r4_level(kit: Kit) -> None:
    org = await kit.new_org("EH3")
    await refused(org.admin.request_means(org.kvk, email=kit.email("eh4"), name="EH4", role="gebruiker",
                                          level="EH4", second_factor="otp"), 409, "R4",
                  "an EH3 admin requests an EH4 means")
    user = await kit.member(org, "user", level="EH2")
    await refused(org.admin.change_level(org.kvk, user, "EH4", second_factor="otp"), 409, "R4",
                  "an EH3 admin upgrades a means to EH4")
    await accepted(org.admin.request_means(org.kvk, email=kit.email("eh3"), name="EH3", role="gebruiker",
                                           level="EH3", second_factor="otp"),
                   "an EH3 admin requests an EH3 means (its own level)")


@probe("R4-link", "R4", "links only into organisations where the acting admin is beheerder")
async def r4_link(kit: Kit) -> None:
    home = await kit.new_org("EH3")                                 # its admin acts: beheerder of home
    other = await kit.new_org("EH3", admin_email=home.admin_email)  # ... and of other, until demoted there
    other_admin = await kit.member(other, "admin-other", level="EH3", role="beheerder")
    await accepted((await kit.token(other_admin)).change_role(other.kvk, home.admin_id, "gebruiker"),
                   "the other organisation's own admin makes the acting admin a gebruiker there")
    colleague = await kit.member(home, "colleague", level="EH3")
    await refused(home.admin.link_means(home.kvk, colleague, to_kvk=other.kvk, role="beheerder"), 409, "R4",
                  "an admin who is only a gebruiker in another organisation links a colleague into it as beheerder")
    linked = await home.admin.get_means(home.kvk, colleague)
    holds(linked.pending is None and other.kvk not in linked.organisations,
          "after the refused link", "no pending link and no membership", f"pending={linked.pending}, "
          f"organisations={list(linked.organisations)}")
    third = await kit.new_org("EH3", admin_email=home.admin_email)  # the acting admin is beheerder of third
    done = await accepted(home.admin.link_means(home.kvk, colleague, to_kvk=third.kvk, role="gebruiker"),
                          "the same admin links the colleague into an organisation where it is beheerder")
    holds(done.status == 202, "that link", "202 (pending until the supplier processes it)", done.status)


# ---------------------------------------------------------------------------------------------- R5
@probe("R5", "R5", "an activation not done in 30 days lapses on day 31; a new letter restarts it")
async def r5(kit: Kit) -> None:
    control = kit.need_control(clock=True)
    org = await kit.new_org()
    means_id = await kit.member(org, "late", active=False)
    start = await control.today()
    try:
        await control.advance(30)
        day30 = await org.admin.get_means(org.kvk, means_id)
        holds(day30.status.value == "wachten_op_activatie", "30 days after approval",
              "status wachten_op_activatie", day30.status.value)
        await control.advance(1)
        day31 = await org.admin.get_means(org.kvk, means_id)
        holds(day31.status.value == "activatie_verlopen", "31 days after approval", "status activatie_verlopen",
              day31.status.value)
        await accepted(org.admin.resend_invitation(org.kvk, means_id), "a new invitation after the lapse")
        again = await org.admin.get_means(org.kvk, means_id)
        holds(again.status.value == "wachten_op_activatie", "after the new invitation",
              "status wachten_op_activatie", again.status.value)
    finally:
        await control.set_today(start)


# ---------------------------------------------------------------------------------------------- R6
@probe("R6", "R6", "no other change of a means while a level change of it is pending")
async def r6(kit: Kit) -> None:
    control = kit.need_control()
    org = await kit.new_org()
    user = await kit.member(org, "user", level="EH2")
    done = await accepted(org.admin.change_level(org.kvk, user, "EH2+", second_factor="otp"),
                          "an upgrade EH2 -> EH2+")
    holds(done.status == 202, "the upgrade", "202 (pending)", done.status)
    await refused(org.admin.change_level(org.kvk, user, "EH3"), 409, "R6", "a second level change while one is "
                                                                           "pending")
    await refused(org.admin.change_role(org.kvk, user, "beheerder"), 409, "R6", "a role change while the level "
                                                                                "change is pending")
    await control.approve(user)
    await accepted(org.admin.change_role(org.kvk, user, "beheerder"), "the role change once the supplier approved")


# ---------------------------------------------------------------------------------------------- R9
@probe("R9", "R9", "end dates up to 5 years ahead, not 5 years + 1 day, not today; default 5 years")
async def r9(kit: Kit) -> None:
    org = await kit.new_org()
    user = await kit.member(org, "user", level="EH2")
    service = kit.service().uuid
    today = await kit.today()
    five = add_years(today, 5)
    await accepted(org.admin.grant(org.kvk, [user], [service], end_date=five), "a grant until five years ahead")
    await refused(org.admin.grant(org.kvk, [user], [service], end_date=five + dt.timedelta(days=1)), 409, "R9",
                  "a grant until five years and one day ahead")
    await refused(org.admin.grant(org.kvk, [user], [service], end_date=today), 409, "R9",
                  "a grant ending today (that is a revoke)")
    await refused(org.admin.set_end_date(org.kvk, [user], [service], five + dt.timedelta(days=1)), 409, "R9",
                  "re-dating to five years and one day ahead")
    held = (await end_dates(org.admin, org.kvk)).get((user, service))
    holds(held == five, "after the refused requests", f"end date {five}", held)
    await accepted(org.admin.revoke(org.kvk, [user], [service]), "a revoke")
    await accepted(org.admin.grant(org.kvk, [user], [service]), "a grant without an end date")
    held = (await end_dates(org.admin, org.kvk)).get((user, service))
    holds(held == five, "a grant without an end date", f"end date {five} (five years)", held)


# --------------------------------------------------------------------------------------------- R10
@probe("R10", "R10", "a bulk grant overwrites end dates; the highest level decides, all or nothing")
async def r10(kit: Kit) -> None:
    org = await kit.new_org()
    high_user = await kit.member(org, "eh3", level="EH3")
    low_user = await kit.member(org, "eh2", level="EH2")
    first = kit.service()
    second = kit.service(skip=(first.uuid,))
    high = kit.service(exactly="EH3")
    today = await kit.today()
    later, sooner = add_years(today, 2), add_years(today, 1)
    await accepted(org.admin.grant(org.kvk, [high_user], [first.uuid], end_date=later), "a grant until in two years")
    await accepted(org.admin.grant(org.kvk, [high_user, low_user], [first.uuid, second.uuid], end_date=sooner),
                   "a bulk grant of two services to two users until in one year")
    want = {(m, s): sooner for m in (high_user, low_user) for s in (first.uuid, second.uuid)}
    held = await end_dates(org.admin, org.kvk)
    holds(held == want, "the bulk grant", f"4 authorisations, all until {sooner} (the earlier one overwritten)",
          {f"{m[:8]}/{s[:8]}": str(d) for (m, s), d in held.items()})
    await refused(org.admin.grant(org.kvk, [high_user, low_user], [first.uuid, high.uuid], end_date=later), 409,
                  "R8", "a bulk grant with an EH3 service to an EH3 and an EH2 user")
    held = await end_dates(org.admin, org.kvk)
    holds(held == want, "after the refused bulk grant", "nothing changed",
          {f"{m[:8]}/{s[:8]}": str(d) for (m, s), d in held.items()})


# --------------------------------------------------------------------------------------------- R13
async def _tax(kit: Kit, org: Org, *, level: str = "EH3", role: str = "gebruiker") -> MutationResult:
    return await org.admin.request_means(org.kvk, email=kit.email("tax"), name="Tax", role=role, level=level,
                                         type="belastingdienst", second_factor="otp")


@probe("R13-level", "R13", "a belastingdienst means is EH3 only")
async def r13_level(kit: Kit) -> None:
    org = await kit.new_org()
    await refused(_tax(kit, org, level="EH2+"), 409, "R13", "a belastingdienst means at EH2+")
    await refused(_tax(kit, org, level="EH4"), 409, "R13", "a belastingdienst means at EH4")
    await accepted(_tax(kit, org), "a belastingdienst means at EH3")


@probe("R13-admin", "R13", "a belastingdienst means is never a beheerder")
async def r13_admin(kit: Kit) -> None:
    org = await kit.new_org()
    await refused(_tax(kit, org, role="beheerder"), 409, "R13", "a belastingdienst means as beheerder")
    await accepted(_tax(kit, org), "a belastingdienst means as gebruiker")


@probe("R13-one", "R13", "at most one belastingdienst means per organisation")
async def r13_one(kit: Kit) -> None:
    org = await kit.new_org()
    await accepted(_tax(kit, org), "the first belastingdienst means")
    before = await emails(org)
    await refused(_tax(kit, org), 409, "R13", "a second belastingdienst means")
    after = await emails(org)
    holds(after == before, "after the refused second one", "no new means", sorted(after - before))


@probe("R13-type", "R13", "a type change drops the means' authorisations")
async def r13_type(kit: Kit) -> None:
    org = await kit.new_org()
    user = await kit.member(org, "user", level="EH3")
    await accepted(org.admin.grant(org.kvk, [user], [kit.service().uuid]), "a grant to a regulier EH3 means")
    await accepted(org.admin.change_type(org.kvk, user, "belastingdienst"), "its type changed to belastingdienst")
    left = [s for (m, s) in await end_dates(org.admin, org.kvk) if m == user]
    holds(not left, "after the type change", "no authorisations left", left)
    await accepted(org.admin.grant(org.kvk, [user], [kit.service(tax=True).uuid]),
                   "a Belastingdienst service granted again")


# --------------------------------------------------------------------------------------------- R18
async def chain_ends(client: BeheerClient, kvk: str, intermediary: str) -> dict[str, dt.date]:
    return next((c.ends for c in await client.list_all_chains(kvk) if c.intermediary_kvk == intermediary), {})


@probe("R18", "R18", "each chain authorisation (intermediary x service) keeps its own end date")
async def r18(kit: Kit) -> None:
    org = await kit.new_org()
    intermediary = f"{secrets.randbelow(90_000_000) + 10_000_000}"
    first = kit.service()
    second = kit.service(skip=(first.uuid,))
    third = kit.service(skip=(first.uuid, second.uuid))
    today = await kit.today()
    month, year, five = today + dt.timedelta(days=30), add_years(today, 1), add_years(today, 5)
    await accepted(org.admin.issue_chain(org.kvk, intermediary, [first.uuid], end_date=month),
                   "a chain authorisation until in 30 days")
    await accepted(org.admin.issue_chain(org.kvk, intermediary, [second.uuid, third.uuid]),
                   "two more services for the same intermediary, with the default duration")
    want = {first.uuid: month, second.uuid: five, third.uuid: five}
    held = await chain_ends(org.admin, org.kvk, intermediary)
    holds(held == want, "adding services with the default duration",
          f"the first still until {month}, the new ones until {five}", {k[:8]: str(v) for k, v in held.items()})
    await accepted(org.admin.set_chain_end_date(org.kvk, intermediary, year, services=[second.uuid]),
                   "re-dating one of them")
    await accepted(org.admin.revoke_chain(org.kvk, intermediary, [third.uuid]), "revoking one of them")
    want = {first.uuid: month, second.uuid: year}
    held = await chain_ends(org.admin, org.kvk, intermediary)
    holds(held == want, "after re-dating one and revoking another", "the others unchanged",
          {k[:8]: str(v) for k, v in held.items()})
    await refused(org.admin.revoke_chain(org.kvk, intermediary, [third.uuid]), 404, "not-found",
                  "revoking a chain authorisation the intermediary no longer holds")


# --------------------------------------------------------------------------------------------- R19
@probe("R19", "R19", "EH2+, EH3 and EH4 need a second factor; sms needs a mobile number")
async def r19(kit: Kit) -> None:
    org = await kit.new_org("EH4")
    for level in ("EH2+", "EH3", "EH4"):
        await refused(org.admin.request_means(org.kvk, email=kit.email("nofactor"), name="No factor",
                                              role="gebruiker", level=level), 409, "R19",
                      f"a new {level} means without a second factor")
    await refused(org.admin.request_means(org.kvk, email=kit.email("sms"), name="Sms", role="gebruiker",
                                          level="EH3", second_factor="sms"), 409, "R19",
                  "a new EH3 means with sms and no mobile number")
    await accepted(org.admin.request_means(org.kvk, email=kit.email("eh2"), name="EH2", role="gebruiker",
                                           level="EH2"), "a new EH2 means without a second factor")
    await accepted(org.admin.request_means(org.kvk, email=kit.email("sms"), name="Sms", role="gebruiker",
                                           level="EH3", second_factor="sms", phone="+31612345678"),
                   "a new EH3 means with sms and a mobile number")


# ----------------------------------------------------------------------------------- authorisation
@probe("auth-token", "auth", "401 without a valid token; 403 where the token is not linked")
async def auth_token(kit: Kit) -> None:
    for headers, what in (({}, "GET /v1/me without a token"),
                          ({"Authorization": f"Bearer conformance-{secrets.token_hex(16)}"},
                           "GET /v1/me with an unknown token")):
        response = await kit.raw.get("/v1/me", headers=headers)
        holds(response.status_code == 401, what, "401", response.status_code)
    linked = {o.kvk for o in await kit.api.list_organisations()}
    stranger = next(k for k in (f"{secrets.randbelow(90_000_000) + 10_000_000}" for _ in range(100))
                    if k not in linked)
    await refused(kit.api.get_organisation(stranger), 403, "forbidden",
                  "BEHEER_API_TOKEN reads an organisation it is not linked to")


@probe("auth-cross-org", "auth", "an admin of organisation A gets 403 in B, and B stays as it was")
async def auth_cross_org(kit: Kit) -> None:
    a = await kit.new_org()
    b = await kit.new_org()
    before = await revision(b)
    await refused(a.admin.list_all_means(b.kvk), 403, "forbidden", "A's admin reads B's means")
    await refused(a.admin.request_means(b.kvk, email=kit.email("intruder"), name="Intruder", role="beheerder",
                                        level="EH3", second_factor="otp"), 403, "forbidden",
                  "A's admin requests a means in B")
    await refused(a.admin.change_role(b.kvk, b.admin_id, "gebruiker"), 403, "forbidden",
                  "A's admin demotes B's admin")
    await refused(kit.api.get_organisation(a.kvk), 403, "forbidden", "BEHEER_API_TOKEN reads the kit's "
                                                                     "organisation")
    after = await revision(b)
    holds(after == before, "B after the refused requests", f"revision {before}", f"revision {after}")


@probe("auth-read-only", "auth", "a read-only token reads but every change is 403")
async def auth_read_only(kit: Kit) -> None:
    org = await kit.new_org()
    reader = await kit.token(org.admin_id, read_only=True)
    me = await accepted(reader.me(), "GET /v1/me with a read-only token")
    holds(me.read_only, "GET /v1/me with a read-only token", "read_only: true", f"read_only: {me.read_only}")
    await accepted(reader.list_all_means(org.kvk), "the read-only token reads the means")
    before = await revision(org)
    await refused(reader.request_means(org.kvk, email=kit.email("ro"), name="Ro", role="gebruiker", level="EH2"),
                  403, "forbidden", "the read-only token requests a means")
    after = await revision(org)
    holds(after == before, "after the refused change", f"revision {before}", f"revision {after}")


@probe("auth-demoted", "auth", "a demoted admin's token gets 403 at once (R20)")
async def auth_demoted(kit: Kit) -> None:
    org = await kit.new_org()
    second = await kit.member(org, "admin2", level="EH3", role="beheerder")
    token = await kit.token(second)
    await accepted(token.list_all_means(org.kvk), "the second admin reads the means")
    await accepted(org.admin.change_role(org.kvk, second, "gebruiker"), "the first admin demotes the second")
    await refused(token.list_all_means(org.kvk), 403, "forbidden", "the demoted admin's token reads the means")
    await refused(token.request_means(org.kvk, email=kit.email("x"), name="X", role="gebruiker", level="EH2"),
                  403, "forbidden", "the demoted admin's token requests a means")


@probe("auth-terminated", "auth", "a terminated means' token is no longer accepted (401)")
async def auth_terminated(kit: Kit) -> None:
    org = await kit.new_org()
    second = await kit.member(org, "admin2", level="EH3", role="beheerder")
    token = await kit.token(second)
    await accepted(token.me(), "GET /v1/me with the second admin's token")
    await accepted(org.admin.terminate_means(org.kvk, second, mode="now"), "the first admin terminates the "
                                                                           "second now")
    await refused(token.me(), 401, "unauthorized", "GET /v1/me with the terminated means' token")
    await refused(token.request_means(org.kvk, email=kit.email("x"), name="X", role="gebruiker", level="EH2"),
                  401, "unauthorized", "a change with the terminated means' token")


# -------------------------------------------------------------------------------- idempotency, If-Match
@probe("idempotency-replay", "idempotency",
       "same Idempotency-Key, same body: the first answer again, done once")
async def idempotency_replay(kit: Kit) -> None:
    org = await kit.new_org()
    key = f"conformance-{kit.run}-{secrets.token_hex(8)}"
    email = kit.email("once")
    first = await accepted(org.admin.request_means(org.kvk, email=email, name="Once", role="gebruiker",
                                                   level="EH2", idempotency_key=key), "a request with a key")
    again = await accepted(org.admin.request_means(org.kvk, email=email, name="Once", role="gebruiker",
                                                   level="EH2", idempotency_key=key),
                           "the same request with the same key")
    holds((again.status, again.revision, again.result.get("id")) == (first.status, first.revision,
                                                                     first.result.get("id")),
          "the repeat", f"the first answer ({first.status}, revision {first.revision})",
          f"{again.status}, revision {again.revision}, means {again.result.get('id')}")
    means = [m for m in await org.admin.list_all_means(org.kvk) if m.email == email]
    holds(len(means) == 1, "after the repeat", "one means", f"{len(means)} means")


@probe("idempotency-mismatch", "idempotency",
       "same Idempotency-Key, other body: 422 idempotency-mismatch, nothing done")
async def idempotency_mismatch(kit: Kit) -> None:
    org = await kit.new_org()
    key = f"conformance-{kit.run}-{secrets.token_hex(8)}"
    await accepted(org.admin.request_means(org.kvk, email=kit.email("first"), name="First", role="gebruiker",
                                           level="EH2", idempotency_key=key), "a request with a key")
    other = kit.email("other")
    await refused(org.admin.request_means(org.kvk, email=other, name="Other", role="gebruiker", level="EH2",
                                          idempotency_key=key), 422, "idempotency-mismatch",
                  "another request with the same key")
    holds(other not in await emails(org), "after the refused request", f"no means for {other}", "one was made")


@probe("if-match", "if-match", "a stale If-Match is 412 and changes nothing; the current one is accepted")
async def if_match(kit: Kit) -> None:
    org = await kit.new_org()
    stale = await revision(org)
    done = await accepted(org.admin.request_means(org.kvk, email=kit.email("fresh"), name="Fresh",
                                                  role="gebruiker", level="EH2", if_match=stale),
                          f"a request with If-Match: \"{stale}\" (current)")
    late = kit.email("late")
    await refused(org.admin.request_means(org.kvk, email=late, name="Late", role="gebruiker", level="EH2",
                                          if_match=stale), 412, "precondition-failed",
                  f"a request with If-Match: \"{stale}\" after the revision moved on")
    now = await revision(org)
    holds(now == done.revision and late not in await emails(org), "after the refused request",
          f"revision {done.revision}, no means for {late}", f"revision {now}")


def select(only: set[str] | None) -> list[Probe]:
    """The probes `--only` names (ids or rules, any case), in the kit's order; all without it."""
    if not only:
        return list(PROBES)
    wanted = {w.lower() for w in only}
    return [p for p in PROBES if p.id.lower() in wanted or p.rule.lower() in wanted]


def unknown(only: set[str]) -> list[str]:
    """The `--only` names that match no probe."""
    names = {p.id.lower() for p in PROBES} | {p.rule.lower() for p in PROBES}
    return sorted(w for w in only if w.lower() not in names)


__all__ = ["Failed", "PROBES", "Probe", "Skipped", "select", "unknown"]
