"""Hypothesis strategies for the planner: random ACTUAL backend states (a `World` that satisfies the rules'
invariants) and random DESIRED states (organisation YAML that loads without errors for `TODAY`), drawn from
the same e-mail pool so that they overlap: the same people with other roles, levels and authorisations, new
people, removed people, rolling, fixed and past end dates, groups, chains, prune on and off.

`scenarios()` draws both; a `Scenario` writes its files into a temporary directory and loads them with the
real loader (`load_desired`), so the planner is fed exactly what `reconciler plan` would feed it.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import assume
from hypothesis import strategies as st

from reconciler.config.loader import load_paths
from reconciler.config.models import MeansType, Role, SecondFactorType, Subscription
from reconciler.domain import rules
from reconciler.domain.catalogue import Service
from reconciler.domain.levels import MEANS_LEVELS, Level
from reconciler.domain.state import Chain, Means, Membership, OrgInfo, OrgState, Pending, PendingKind, Status, World
from reconciler.plan.desired import DesiredOrg, desired_org

from .conftest import CAT, TODAY

KVKS = ("99966564", "12345678")
#: Intermediaries for chain authorisations; the second organisation's KvK is one of them for the first.
INTERMEDIARIES = ("47474747", "11111111", "22222222", KVKS[1])
ADMIN = "admin@acme.nl"                 # the acting admin of the first organisation (and maybe the second)
BOSS = "boss@acme.nl"                   # the acting admin of the second organisation when it is not ADMIN
PEOPLE = tuple(f"{p}@acme.nl" for p in ("ann", "bob", "cor", "dirk", "eva", "fem", "gijs", "hans", "ilse"))
UNIVERSE = (ADMIN, BOSS) + PEOPLE
#: A person's new e-mail address (same name): the planner takes it for an e-mail change (R11), not a newcomer.
ALIASES = {p.replace("@", ".nieuw@"): p for p in PEOPLE}
BRANCH = "000012345678"

SERVICES: list[Service] = list(CAT)
LATEST = rules.max_end_date(TODAY)
#: End dates around the interesting boundaries: tomorrow, the renew windows (30/60/90 days), far, the maximum.
END_OFFSETS = (1, 29, 30, 31, 59, 60, 61, 89, 90, 91, 200, 700)


def means_id(email: str) -> str:
    return "m-" + email.split("@")[0].lower()


def grantable(level: Level, type_: MeansType) -> list[Service]:
    """Services a means of `level` and `type_` may hold (R8, R13)."""
    return [s for s in SERVICES if rules.level_covers(level, s.level)
            and (type_ is not MeansType.BELASTINGDIENST or s.belastingdienst)]


def end_dates() -> st.SearchStrategy[dt.date]:
    return st.one_of(st.sampled_from(END_OFFSETS).map(lambda d: TODAY + dt.timedelta(days=d)), st.just(LATEST),
                     st.dates(TODAY + dt.timedelta(days=1), LATEST))


@st.composite
def second_factors(draw: Any, level: Level) -> tuple[SecondFactorType | None, str | None]:
    """A factor R19 accepts for `level` (required for EH2+ and EH3, optional otherwise)."""
    options: list[tuple[SecondFactorType | None, str | None]] = [
        (SecondFactorType.OTP, None), (SecondFactorType.SMS, "+31612345678"), (SecondFactorType.SMS, "+31687654321")]
    if not rules.needs_second_factor(level):
        options.append((None, None))
    return draw(st.sampled_from(options))


# ============================================================================================== actual
@dataclass
class Actual:
    world: World
    actors: dict[str, str]                  # kvk -> acting admin's means id


def _tax_taken(world: World, kvk: str) -> bool:
    return bool(world.tax_means(kvk))


@st.composite
def actual_states(draw: Any) -> Actual:
    """One or two organisations, 1-8 means in all statuses, levels, types and roles, pending level changes and
    links, scheduled terminations, authorisations with various end dates and chain authorisations; every
    organisation has an active admin who acts for it, and the whole satisfies the rules' invariants."""
    kvks = KVKS[:draw(st.integers(1, 2))]
    world = World(CAT)
    for kvk in kvks:
        branch = BRANCH if draw(st.integers(0, 7)) == 0 else None                    # R17 now and then
        world.orgs[kvk] = OrgState(OrgInfo(kvk, f"Org {kvk}", branch), revision=draw(st.integers(1, 40)))
    actors: dict[str, str] = {}

    def put_admin(email: str) -> Means:
        # mostly EH3/EH4: an EH2+ actor makes much of a random config manual (R4), which is tested, not the norm
        level = draw(st.sampled_from([Level.EH2PLUS] + [Level.EH3] * 3 + [Level.EH4] * 3))
        factor, phone = draw(second_factors(level))
        means = Means(id=means_id(email), email=email, name=email.split("@")[0].title(), level=level,
                      second_factor=factor, phone=phone, subscription=draw(st.sampled_from(list(Subscription))),
                      status=Status.ACTIEF, contract_start=TODAY - dt.timedelta(days=draw(st.integers(0, 900))))
        world.means[means.id] = means
        return means

    admin = put_admin(ADMIN)
    world.orgs[kvks[0]].members[admin.id] = Membership(Role.BEHEERDER)
    actors[kvks[0]] = admin.id
    if len(kvks) == 2:
        if draw(st.booleans()):
            world.orgs[kvks[1]].members[admin.id] = Membership(Role.BEHEERDER)
            actors[kvks[1]] = admin.id
        else:
            boss = put_admin(BOSS)
            world.orgs[kvks[1]].members[boss.id] = Membership(Role.BEHEERDER)
            actors[kvks[1]] = boss.id
            if draw(st.integers(0, 3)) == 0:       # the first admin is also a member (any role) of the second
                world.orgs[kvks[1]].members[admin.id] = Membership(draw(st.sampled_from(list(Role))))

    others = draw(st.lists(st.sampled_from(PEOPLE), unique=True, max_size=8 - len(world.means)))
    for email in others:
        _draw_person(draw, world, kvks, email)
    # R6 also on an admin now and then: a pending level change of an acting admin (up: effective level stays)
    for mid in sorted(set(actors.values())):
        means = world.means[mid]
        if draw(st.integers(0, 5)) == 0 and means.level < Level.EH4:
            higher = [lv for lv in MEANS_LEVELS if lv > means.level]
            world.means[mid] = means.with_(pending=Pending(PendingKind.LEVEL, level=draw(st.sampled_from(higher))))
    # authorisations: active members only (R7), covered by the effective level (R8), tax means tax only (R13)
    for kvk in kvks:
        state = world.orgs[kvk]
        for mid in sorted(state.members):
            means = world.means[mid]
            if not means.active:
                continue
            services = [s for s in grantable(means.effective_level, means.type)
                        if not (state.info.branch_number and rules.unusable_with_branch_number(s))]    # R17
            if not services:
                continue
            chosen = draw(st.lists(st.sampled_from(services), unique_by=lambda s: s.uuid, max_size=4))
            for service in chosen:
                state.authorisations.setdefault(mid, {})[service.uuid] = draw(end_dates())
        for ikvk in draw(st.lists(st.sampled_from([k for k in INTERMEDIARIES if k != kvk]), unique=True,
                                  max_size=2)):
            services = draw(st.lists(st.sampled_from(SERVICES), unique_by=lambda s: s.uuid, min_size=1, max_size=3))
            state.chains[ikvk] = Chain(ikvk, draw(st.sampled_from([None, f"Kantoor {ikvk}"])),   # each its own date
                                       {s.uuid: draw(end_dates()) for s in services})
    return Actual(world, actors)


def _draw_person(draw: Any, world: World, kvks: tuple[str, ...], email: str) -> None:
    orgs = draw(st.lists(st.sampled_from(kvks), unique=True, min_size=1, max_size=len(kvks)))
    tax_ok = not any(_tax_taken(world, k) for k in orgs)
    type_ = MeansType.BELASTINGDIENST if tax_ok and draw(st.integers(0, 6)) == 0 else MeansType.REGULIER
    level = Level.EH3 if type_ is MeansType.BELASTINGDIENST else draw(st.sampled_from(MEANS_LEVELS))
    factor, phone = draw(second_factors(level))
    status = draw(st.sampled_from([Status.ACTIEF] * 4 + [Status.WACHTEN_OP_GOEDKEURING, Status.WACHTEN_OP_ACTIVATIE,
                                                         Status.ACTIVATIE_VERLOPEN]))
    deadline = (TODAY + dt.timedelta(days=draw(st.integers(0, 30)))) if status is Status.WACHTEN_OP_ACTIVATIE else None
    may_admin = type_ is MeansType.REGULIER and rules.admin_level_ok(level)
    means = Means(id=means_id(email), email=email, name=email.split("@")[0].title(), level=level, type=type_,
                  second_factor=factor, phone=phone, subscription=draw(st.sampled_from(list(Subscription))),
                  status=status, activation_deadline=deadline,
                  contract_start=TODAY - dt.timedelta(days=draw(st.integers(0, 900))))
    roles: dict[str, Role] = {}
    for kvk in orgs:
        role = Role.BEHEERDER if may_admin and draw(st.integers(0, 3)) == 0 else Role.GEBRUIKER
        roles[kvk] = role
        terminates = (TODAY + dt.timedelta(days=draw(st.integers(1, 120)))) if draw(st.integers(0, 9)) == 0 else None
        world.orgs[kvk].members[means.id] = Membership(role, terminates)
    # R6: at most one pending mutation; a level change only on an active regular means, a link from approved on
    pending_kind = draw(st.sampled_from([None, None, None, PendingKind.LEVEL, PendingKind.LINK]))
    if pending_kind is PendingKind.LEVEL and status is Status.ACTIEF and type_ is MeansType.REGULIER:
        floor = Level.EH2PLUS if Role.BEHEERDER in roles.values() else Level.EH2       # R2 for the new level
        targets = [lv for lv in MEANS_LEVELS if lv != level and lv >= floor]
        if targets:
            new = draw(st.sampled_from(targets))
            chosen_factor, chosen_phone = None, None
            if factor is None and rules.needs_second_factor(new):                     # R19: chosen with it
                chosen_factor, chosen_phone = draw(second_factors(Level.EH3))
            means = means.with_(pending=Pending(PendingKind.LEVEL, level=new, second_factor=chosen_factor,
                                                phone=chosen_phone))
    elif pending_kind is PendingKind.LINK and status is not Status.WACHTEN_OP_GOEDKEURING:
        free = [k for k in kvks if k not in orgs and not (type_ is MeansType.BELASTINGDIENST and _tax_taken(world, k))]
        if free:
            role = Role.BEHEERDER if may_admin and draw(st.booleans()) else Role.GEBRUIKER
            means = means.with_(pending=Pending(PendingKind.LINK, kvk=draw(st.sampled_from(free)), role=role,
                                                subscription=Subscription.ONE_YEAR))
    world.means[means.id] = means


# ============================================================================================= desired
@dataclass(frozen=True)
class Person:
    """What every organisation file says about one person (the same in each file: one linked means, R15)."""

    email: str                                # as written in the files (case may differ from the backend)
    name: str
    level: Level
    type: MeansType
    factor: SecondFactorType | None
    phone: str | None
    subscription: Subscription

    @property
    def may_admin(self) -> bool:
        return self.type is MeansType.REGULIER and rules.admin_level_ok(self.level)

    def entry(self, role: Role) -> dict[str, Any]:
        out: dict[str, Any] = {"email": self.email, "name": self.name, "role": role.value, "level": self.level.value}
        if self.type is MeansType.BELASTINGDIENST:
            out["type"] = self.type.value
        if self.factor is not None:
            out["second_factor"] = {"type": self.factor.value} | ({"phone": self.phone} if self.phone else {})
        if self.subscription is not Subscription.ONE_YEAR:
            out["subscription"] = self.subscription.value
        return out


@st.composite
def _person(draw: Any, email: str, actual: Means | None, actor: bool = False) -> Person:
    if actual is not None and draw(st.integers(0, 7 if actor else 2)) > 0:    # mostly the means in the backend
        level, type_, subscription = actual.level, actual.type, actual.subscription
        factor, phone = actual.second_factor, actual.phone
        if factor is None and rules.needs_second_factor(level):       # pragma: no cover - actual states have one
            factor = SecondFactorType.OTP
        if draw(st.integers(0, 3)) == 0:
            factor, phone = draw(second_factors(level))
    else:
        type_ = MeansType.BELASTINGDIENST if draw(st.integers(0, 6)) == 0 else MeansType.REGULIER
        level = Level.EH3 if type_ is MeansType.BELASTINGDIENST else draw(st.sampled_from(MEANS_LEVELS))
        factor, phone = draw(second_factors(level))
        subscription = draw(st.sampled_from(list(Subscription)))
    written = email.upper() if draw(st.integers(0, 9)) == 0 else email       # e-mail keys ignore case
    name = ALIASES.get(email, email).split("@")[0].title()                  # an alias keeps the person's name
    return Person(written, name, level, type_, factor, phone, subscription)


def _until(draw: Any, actual_end: dt.date | None) -> str:
    choices: list[Any] = ["rolling", "rolling", TODAY + dt.timedelta(days=1), TODAY + dt.timedelta(days=45),
                          TODAY + dt.timedelta(days=400), LATEST, TODAY, TODAY - dt.timedelta(days=10)]
    if actual_end is not None:
        choices += [actual_end, actual_end]
    value = draw(st.sampled_from(choices))
    return value if value == "rolling" else value.isoformat()


@dataclass
class Scenario:
    actual: Actual
    files: dict[str, str]                         # kvk -> YAML text
    data: dict[str, dict[str, Any]] = field(repr=False, default_factory=dict)

    def __repr__(self) -> str:
        return f"Scenario(\n{describe(self.actual)}\n" + "".join(
            f"--- desired {kvk}\n{text}" for kvk, text in self.files.items()) + ")"


def describe(actual: Actual) -> str:
    """A compact, readable dump of an actual state (hypothesis prints it for a failing example)."""
    w = actual.world

    def key(uuid: str) -> str:
        service = CAT.by_uuid(uuid)
        return service.key if service else uuid

    lines = [f"actors: {actual.actors}"]
    for m in sorted(w.means.values(), key=lambda m: m.id):
        pend = f" pending={m.pending}" if m.pending else ""
        lines.append(f"  means {m.id} {m.email} {m.level} {m.type.value} {m.status.value} "
                     f"factor={m.second_factor and m.second_factor.value}/{m.phone} dl={m.activation_deadline}{pend}")
    for kvk, s in w.orgs.items():
        lines.append(f"  org {kvk}:")
        for mid, ms in sorted(s.members.items()):
            auths = {key(u): str(e) for u, e in sorted(s.authorisations.get(mid, {}).items())}
            term = f" terminates {ms.terminates_on}" if ms.terminates_on else ""
            lines.append(f"    {mid} {ms.role.value}{term} {auths}")
        for ikvk, c in sorted(s.chains.items()):
            lines.append(f"    chain {ikvk} {sorted((key(u), str(end)) for u, end in c.ends.items())}")
    return "\n".join(lines)


@st.composite
def scenarios(draw: Any) -> Scenario:
    actual = draw(actual_states())
    world = actual.world
    people: dict[str, Person] = {}
    actor_emails = {world.means[mid].email for mid in actual.actors.values()}

    def person(email: str) -> Person:
        if email not in people:
            people[email] = draw(_person(email, world.means_by_email(ALIASES.get(email, email)),
                                         email in actor_emails))
        return people[email]

    data: dict[str, dict[str, Any]] = {}
    for kvk in world.orgs:
        data[kvk] = _desired_org(draw, actual, kvk, person)
    texts = {kvk: yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120) for kvk, doc in data.items()}
    return Scenario(actual, texts, data)


def _desired_org(draw: Any, actual: Actual, kvk: str, person: Any) -> dict[str, Any]:
    world = actual.world
    state = world.orgs[kvk]
    actor = world.means[actual.actors[kvk]]
    members = [world.means[mid].email for mid in sorted(state.members)]
    # who is declared: the acting admin mostly, most members, some people from elsewhere or new
    candidates = [e for e in UNIVERSE if e != actor.email]
    declared: list[str] = [actor.email] if draw(st.integers(0, 7)) > 0 else []
    for email in candidates:
        if draw(st.integers(0, 3)) < (3 if email in members else 1):
            alias = email.replace("@", ".nieuw@")
            declared.append(alias if alias in ALIASES and draw(st.integers(0, 7)) == 0 else email)
    declared = draw(st.permutations(declared))
    users: list[dict[str, Any]] = []
    tax_seen = False
    roles: dict[str, Role] = {}
    for email in declared:
        p = person(email)
        if p.type is MeansType.BELASTINGDIENST:
            if tax_seen:
                continue                                  # R13: one tax means per organisation file
            tax_seen = True
        member = world.means_by_email(email)
        current = world.membership(kvk, member.id) if member else None
        if email == actor.email and p.may_admin and draw(st.integers(0, 5)) > 0:
            role = Role.BEHEERDER
        elif current is not None and current.is_admin and p.may_admin and draw(st.integers(0, 2)) > 0:
            role = Role.BEHEERDER
        else:
            role = Role.BEHEERDER if p.may_admin and draw(st.integers(0, 4)) == 0 else Role.GEBRUIKER
        roles[email] = role
        users.append({"_email": email, **p.entry(role)})
    if not any(r is Role.BEHEERDER for r in roles.values()):   # R1: a file declares at least one beheerder
        able = [e for e in UNIVERSE if person(e).may_admin]
        assume(able)
        pick = draw(st.sampled_from(able))
        for entry in users:
            if entry["_email"] == pick:
                entry["role"] = Role.BEHEERDER.value
                break
        else:
            users.append({"_email": pick, **person(pick).entry(Role.BEHEERDER)})
    # groups: bundles of services; a user gets a group only when it may hold all of it (R8, R13)
    groups: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(["finance", "hr", "tender", "ops"]), unique=True, max_size=2)):
        services = draw(st.lists(st.sampled_from(SERVICES), unique_by=lambda s: s.key, min_size=1, max_size=3))
        groups[name] = {"authorisations": [{"service": s.key, "until": _until(draw, None)} for s in services]}
    for entry in users:
        email = entry.pop("_email")
        p = person(email)
        allowed = {s.key for s in grantable(p.level, p.type)}
        member = world.means_by_email(email)
        held = world.authorisations_of(kvk, member.id) if member else {}
        auths: dict[str, str] = {}
        for uuid, end in sorted(held.items()):                # overlap: the same services, often the same dates
            service = CAT.by_uuid(uuid)
            if service is not None and service.key in allowed and draw(st.integers(0, 2)) > 0:
                auths[service.key] = _until(draw, end)
        for service in draw(st.lists(st.sampled_from(sorted(allowed)), unique=True, max_size=3)):
            auths.setdefault(service, _until(draw, None))
        if auths:
            entry["authorisations"] = [{"service": k, "until": v} for k, v in auths.items()]
        mine = [g for g, body in groups.items() if all(a["service"] in allowed for a in body["authorisations"])]
        chosen = draw(st.lists(st.sampled_from(mine), unique=True, max_size=2)) if mine else []
        if chosen:
            entry["groups"] = chosen
    chains: list[dict[str, Any]] = []
    for ikvk in [k for k in INTERMEDIARIES if k != kvk]:
        have = state.chains.get(ikvk)
        if draw(st.integers(0, 3)) >= (1 if have else 3):
            continue
        if have is not None and draw(st.booleans()):
            keys = sorted(CAT.by_uuid(u).key for u in have.services)  # type: ignore[union-attr]
            if draw(st.integers(0, 2)) == 0:
                keys = draw(st.lists(st.sampled_from([s.key for s in SERVICES]), unique=True, min_size=1, max_size=4))
        else:
            keys = draw(st.lists(st.sampled_from([s.key for s in SERVICES]), unique=True, min_size=1, max_size=3))
        by_until: dict[str, list[str]] = {}                   # R18: one entry per until, each service its own
        for key in keys:
            held = have.ends.get(CAT[key].uuid) if have else None
            by_until.setdefault(_until(draw, held), []).append(key)
        named = draw(st.booleans())
        for until, entry_keys in by_until.items():
            chain: dict[str, Any] = {"intermediary": {"kvk": ikvk}, "services": entry_keys, "until": until}
            if named:
                chain["intermediary"]["name"] = f"Kantoor {ikvk}"
            chains.append(chain)
    policy: dict[str, Any] = {"prune": draw(st.booleans())}
    policy["renew_before"] = draw(st.sampled_from(["60d", "30d", "90d"]))
    if draw(st.booleans()):
        policy["max_removals"] = draw(st.sampled_from([0, 3, "25%", "100%"]))
    undeclared = [e for e in members if e.lower() not in {u["email"].lower() for u in users}]
    if undeclared and draw(st.integers(0, 4)) == 0:
        policy["unmanaged"] = [draw(st.sampled_from(undeclared))]
    organisation: dict[str, Any] = {"kvk": kvk, "name": f"Org {kvk}"}
    if state.info.branch_number:
        organisation["branch_number"] = state.info.branch_number
    doc: dict[str, Any] = {"version": 1, "organisation": organisation, "policy": policy}
    if groups:
        doc["groups"] = groups
    doc["users"] = users
    if chains:
        doc["chain_authorisations"] = chains
    return doc


def load_desired(files: dict[str, str], today: dt.date = TODAY) -> list[DesiredOrg]:
    """The files as the planner gets them: written to a fresh directory, loaded and checked together."""
    with tempfile.TemporaryDirectory(prefix="reconciler-plan-prop-") as folder:
        paths = []
        for kvk, text in files.items():
            path = Path(folder) / f"org-{kvk}.yaml"
            path.write_text(text, encoding="utf-8")
            paths.append(str(path))
        result = load_paths(paths, today)
        assert result.ok, [d.render() for d in result.errors]
        by_kvk = {org.config.organisation.kvk: desired_org(org) for org in result.orgs}
    return [by_kvk[kvk] for kvk in files]
