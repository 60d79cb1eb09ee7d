"""The rules module against the in-memory World: each refusal carries its rule id (RULES.md R1..R20)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st

from reconciler.config.models import MeansType, Role, SecondFactorType, Subscription
from reconciler.domain import rules
from reconciler.domain.catalogue import bundled_catalogue
from reconciler.domain.levels import Level
from reconciler.domain.state import Means, Membership, OrgInfo, OrgState, Pending, PendingKind, Status, World

TODAY = dt.date(2026, 11, 21)
KVK, OTHER = "99966564", "12345678"
CAT = bundled_catalogue()
UWV = CAT["uwv/werkgeversportaal"].uuid
TAX = CAT["belastingdienst/aangifte-omzetbelasting"].uuid
TENDER = CAT["rvo/tenderned"].uuid


def person(mid: str, level: Level = Level.EH3, status: Status = Status.ACTIEF, **kw: object) -> Means:
    factor = None if level is Level.EH2 else SecondFactorType.OTP
    return Means(id=mid, email=f"{mid}@example.nl", name=mid.title(), level=level, second_factor=factor,
                 status=status, contract_start=dt.date(2025, 1, 1), **kw)  # type: ignore[arg-type]


def world(*members: tuple[Means, Role], branch: str | None = None) -> World:
    w = World(catalogue=CAT)
    org = OrgState(OrgInfo(KVK, "Ketelaar Klip", branch))
    for means, role in members:
        w.means[means.id] = means
        org.members[means.id] = Membership(role)
    w.orgs[KVK] = org
    return w


def refused(w: World, op: object, actor: str = "admin") -> rules.Refusal:
    with pytest.raises(rules.Refusal) as info:
        rules.execute(w, actor, op, TODAY)  # type: ignore[arg-type]
    return info.value


def run(w: World, op: object, actor: str = "admin") -> None:
    w.apply(rules.execute(w, actor, op, TODAY))  # type: ignore[arg-type]


@pytest.fixture
def w() -> World:
    return world((person("admin"), Role.BEHEERDER), (person("user", Level.EH2PLUS), Role.GEBRUIKER))


def test_r1_the_only_active_admin_cannot_be_demoted_by_another(w: World) -> None:
    run(w, rules.ChangeRole(KVK, "user", Role.BEHEERDER))
    run(w, rules.ChangeRole(KVK, "admin", Role.GEBRUIKER), actor="user")  # now two admins: allowed
    err = refused(w, rules.ChangeRole(KVK, "user", Role.GEBRUIKER), actor="user")
    assert err.code == "R3"


def test_r1_counts_only_active_admins() -> None:
    w = world((person("admin"), Role.BEHEERDER), (person("new", status=Status.WACHTEN_OP_ACTIVATIE), Role.BEHEERDER),
              (person("other"), Role.BEHEERDER))
    run(w, rules.ChangeRole(KVK, "other", Role.GEBRUIKER))
    # `new` is an admin but not active: terminating `admin` would leave no active admin.
    err = refused(w, rules.Terminate(KVK, "admin"), actor="admin")
    assert err.code == "R3"
    assert rules.execute(w, "admin", rules.ChangeRole(KVK, "new", Role.GEBRUIKER), TODAY)


def test_r1_terminating_the_only_admin_by_another_admin_is_refused() -> None:
    w = world((person("admin"), Role.BEHEERDER), (person("b", status=Status.WACHTEN_OP_ACTIVATIE), Role.BEHEERDER),
              (person("c"), Role.GEBRUIKER))
    # only `admin` is active; nobody else can act, so R3 for self; R1 is checked for others via role change
    assert refused(w, rules.Terminate(KVK, "admin")).code == "R3"


def test_r2_admin_needs_eh2plus(w: World) -> None:
    w.means["low"] = person("low", Level.EH2)
    w.orgs[KVK].members["low"] = Membership(Role.GEBRUIKER)
    assert refused(w, rules.ChangeRole(KVK, "low", Role.BEHEERDER)).code == "R2"
    op = rules.RequestMeans(KVK, "n1", "n@x.nl", "N", Role.BEHEERDER, Level.EH2)
    assert refused(w, op).code == "R2"


def test_r4_up_to_own_level() -> None:
    w = world((person("admin", Level.EH2PLUS), Role.BEHEERDER))
    op = rules.RequestMeans(KVK, "n1", "n@x.nl", "N", Role.GEBRUIKER, Level.EH3, second_factor=SecondFactorType.OTP)
    assert refused(w, op).code == "R4"


def test_r5_grant_waits_for_activation_r7() -> None:
    w = world((person("admin"), Role.BEHEERDER), (person("new", status=Status.WACHTEN_OP_ACTIVATIE), Role.GEBRUIKER))
    assert refused(w, rules.Grant(KVK, ("new",), (UWV,))).code == "R7"
    w.apply(rules.activate(w, "new", TODAY))
    run(w, rules.Grant(KVK, ("new",), (UWV,)))
    assert w.authorisation(KVK, "new", UWV) == rules.max_end_date(TODAY)


def test_r5_lifecycle_request_approve_activate(w: World) -> None:
    op = rules.RequestMeans(KVK, "n1", "n@x.nl", "N", Role.GEBRUIKER, Level.EH3, second_factor=SecondFactorType.OTP)
    run(w, op)
    assert w.means["n1"].status is Status.WACHTEN_OP_GOEDKEURING
    with pytest.raises(rules.Refusal) as info:
        rules.activate(w, "n1", TODAY)
    assert info.value.code == "R5"
    w.apply(rules.approve(w, "n1", TODAY))
    assert w.means["n1"].activation_deadline == TODAY + dt.timedelta(days=30)
    w.apply(rules.activate(w, "n1", TODAY + dt.timedelta(days=31)))
    assert w.means["n1"].status is Status.ACTIVATIE_VERLOPEN


def test_r5_rejected_request_disappears(w: World) -> None:
    run(w, rules.RequestMeans(KVK, "n1", "n@x.nl", "N", Role.GEBRUIKER, Level.EH2))
    w.apply(rules.reject(w, "n1", TODAY))
    assert "n1" not in w.means and "n1" not in w.orgs[KVK].members


def test_r6_one_mutation_at_a_time(w: World) -> None:
    run(w, rules.ChangeLevel(KVK, "user", Level.EH3))
    assert w.means["user"].pending is not None and w.means["user"].level is Level.EH2PLUS
    assert refused(w, rules.ChangeRole(KVK, "user", Role.BEHEERDER)).code == "R6"
    w.apply(rules.approve(w, "user", TODAY))
    assert w.means["user"].level is Level.EH3 and w.means["user"].pending is None


def test_r8_level_covers_the_highest_service(w: World) -> None:
    err = refused(w, rules.Grant(KVK, ("user",), (TENDER, UWV)))
    assert err.code == "R8" and "EH3" in err.message
    run(w, rules.Grant(KVK, ("user",), (TENDER,)))
    # a downgrade that would leave an authorisation above the level is refused too
    run(w, rules.Grant(KVK, ("admin",), (UWV,)))
    assert refused(w, rules.ChangeLevel(KVK, "admin", Level.EH2PLUS)).code == "R8"


def test_r9_end_dates(w: World) -> None:
    assert refused(w, rules.Grant(KVK, ("admin",), (UWV,), TODAY)).code == "R9"
    assert refused(w, rules.Grant(KVK, ("admin",), (UWV,), rules.max_end_date(TODAY) + dt.timedelta(days=1))).code == "R9"
    run(w, rules.Grant(KVK, ("admin",), (UWV,), TODAY + dt.timedelta(days=1)))


def test_r10_bulk_grant_overwrites_end_dates(w: World) -> None:
    run(w, rules.Grant(KVK, ("admin", "user"), (TENDER,), dt.date(2027, 1, 1)))
    run(w, rules.Grant(KVK, ("admin", "user"), (TENDER,), dt.date(2028, 1, 1)))
    assert {w.authorisation(KVK, m, TENDER) for m in ("admin", "user")} == {dt.date(2028, 1, 1)}


def test_r11_email_only_before_activation(w: World) -> None:
    assert refused(w, rules.ChangeEmail(KVK, "user", "new@x.nl")).code == "R11"


def test_r12_r3_phone() -> None:
    w = world((person("admin"), Role.BEHEERDER),
              (person("sms").with_(second_factor=SecondFactorType.SMS, phone="+31600000000"), Role.GEBRUIKER))
    run(w, rules.ChangePhone(KVK, "sms", "+31611111111"))
    assert w.means["sms"].phone == "+31611111111"
    assert refused(w, rules.ChangePhone(KVK, "admin", "+31611111111")).code == "R3"


def test_r13_tax_means() -> None:
    tax = person("tax").with_(type=MeansType.BELASTINGDIENST)
    w = world((person("admin"), Role.BEHEERDER), (tax, Role.GEBRUIKER))
    assert refused(w, rules.Grant(KVK, ("tax",), (UWV,))).code == "R13"
    assert refused(w, rules.ChangeRole(KVK, "tax", Role.BEHEERDER)).code == "R13"
    op = rules.RequestMeans(KVK, "t2", "t2@x.nl", "T", Role.GEBRUIKER, Level.EH3, MeansType.BELASTINGDIENST,
                            SecondFactorType.OTP)
    assert refused(w, op).code == "R13"
    run(w, rules.Grant(KVK, ("tax",), (TAX,)))
    run(w, rules.ChangeType(KVK, "tax", MeansType.REGULIER, Subscription.THREE_YEARS))
    assert w.authorisations_of(KVK, "tax") == {}  # a type change drops the authorisations
    assert w.means["tax"].contract_start == TODAY


def test_r14_last_means_ends_the_organisation() -> None:
    w = world((person("admin"), Role.BEHEERDER))
    run(w, rules.Terminate(KVK, "admin"))
    assert KVK not in w.orgs and "admin" not in w.means


def test_r14_terminate_on_date_and_end_of_contract(w: World) -> None:
    run(w, rules.Terminate(KVK, "user", "date", dt.date(2027, 1, 1)))
    assert w.orgs[KVK].members["user"].terminates_on == dt.date(2027, 1, 1)
    run(w, rules.Terminate(KVK, "user", "end_of_contract"))
    assert w.orgs[KVK].members["user"].terminates_on == dt.date(2027, 1, 1)  # 1y from 2025-01-01


def test_r15_an_existing_email_is_linked_not_bought_twice(w: World) -> None:
    op = rules.RequestMeans(KVK, "n1", "USER@example.nl", "U", Role.GEBRUIKER, Level.EH2)
    assert refused(w, op).code == "R15"


def test_r15_r4_link_to_own_organisations_only(w: World) -> None:
    w.orgs[OTHER] = OrgState(OrgInfo(OTHER, "Other"))
    op = rules.LinkMeans(OTHER, "user", Role.GEBRUIKER)
    err = refused(w, op)
    assert err.code == "R4" and err.status == 409
    w.orgs[OTHER].members["admin"] = Membership(Role.BEHEERDER)
    run(w, op)
    assert w.means["user"].pending is not None and "user" not in w.orgs[OTHER].members
    w.apply(rules.approve(w, "user", TODAY))
    assert w.orgs[OTHER].members["user"].role is Role.GEBRUIKER


def test_r17_branch_number_blocks_uwv_and_belastingdienst() -> None:
    w = world((person("admin"), Role.BEHEERDER), branch="000012345678")
    assert refused(w, rules.Grant(KVK, ("admin",), (UWV,))).code == "R17"
    run(w, rules.Grant(KVK, ("admin",), (TENDER,)))


def test_r18_chain_authorisations(w: World) -> None:
    assert refused(w, rules.IssueChain(KVK, KVK, (UWV,))).code == "R18"
    run(w, rules.IssueChain(KVK, "47474747", (UWV,), name="Accountants"))
    run(w, rules.IssueChain(KVK, "47474747", (TAX,)))
    assert w.chain(KVK, "47474747").services == frozenset({UWV, TAX})
    run(w, rules.RemoveIntermediary(KVK, "47474747"))
    assert w.chain(KVK, "47474747") is None


def test_r18_each_chain_authorisation_its_own_end_date(w: World) -> None:
    """Issue #13: issuing sets the listed services' dates only; end-date and revoke name their services."""
    month, five = TODAY + dt.timedelta(days=30), rules.max_end_date(TODAY)
    run(w, rules.IssueChain(KVK, "47474747", (UWV,), month))
    run(w, rules.IssueChain(KVK, "47474747", (TAX, TENDER)))                      # the default: five years
    assert w.chain(KVK, "47474747").ends == {UWV: month, TAX: five, TENDER: five}
    run(w, rules.SetChainEndDate(KVK, "47474747", month, (TAX,)))
    assert w.chain(KVK, "47474747").ends == {UWV: month, TAX: month, TENDER: five}
    run(w, rules.RevokeChain(KVK, "47474747", (TENDER,)))
    assert w.chain(KVK, "47474747").ends == {UWV: month, TAX: month}
    assert refused(w, rules.RevokeChain(KVK, "47474747", (TENDER,))).code == "not-found"
    assert refused(w, rules.SetChainEndDate(KVK, "47474747", month, (TENDER,))).code == "not-found"
    assert refused(w, rules.RevokeChain(KVK, "47474747", ())).code == "invalid"
    run(w, rules.SetChainEndDate(KVK, "47474747", five))                          # no services: all of them
    assert set(w.chain(KVK, "47474747").ends.values()) == {five}
    run(w, rules.RevokeChain(KVK, "47474747", (UWV, TAX)))                        # the last: the intermediary goes
    assert w.chain(KVK, "47474747") is None


def test_r19_second_factor_required(w: World) -> None:
    op = rules.RequestMeans(KVK, "n1", "n@x.nl", "N", Role.GEBRUIKER, Level.EH3)
    assert refused(w, op).code == "R19"
    op = rules.RequestMeans(KVK, "n1", "n@x.nl", "N", Role.GEBRUIKER, Level.EH3, second_factor=SecondFactorType.SMS)
    assert refused(w, op).code == "R19"


def test_r16_first_admin_existing_means_is_checked_for_r1_r2_r13() -> None:
    """The supplier registers an organisation with the means the admin's address already holds (R15): it must be
    active (R1), EH2+ counting a pending downgrade (R2) and not a tax means (R13); messages name the address given."""
    def refusal(existing: Means) -> rules.Refusal:
        with pytest.raises(rules.Refusal) as info:
            rules.check_first_admin("Uma@Acme.nl", existing, Level.EH3, None, None)
        return info.value

    r1 = refusal(person("uma", status=Status.WACHTEN_OP_ACTIVATIE))
    assert (r1.code, r1.message) == ("R1", "Uma@Acme.nl holds a means that is wachten_op_activatie; "
                                           "the first beheerder must be active")
    downgrading = person("uma").with_(pending=Pending(PendingKind.LEVEL, level=Level.EH2))
    r2 = refusal(downgrading)
    assert (r2.code, r2.message) == ("R2", "a beheerder needs level EH2+ or higher; Uma@Acme.nl has EH2 "
                                           "(pending or current)")
    r13 = refusal(person("uma", type=MeansType.BELASTINGDIENST))
    assert (r13.code, r13.message) == ("R13", "a belastingdienst means cannot be a beheerder")
    rules.check_first_admin("uma@acme.nl", person("uma", Level.EH2PLUS), Level.EH2, None, None)  # its own level


def test_r16_first_admin_new_means_is_checked_for_r2_and_r19() -> None:
    with pytest.raises(rules.Refusal) as info:
        rules.check_first_admin("o@x.nl", None, Level.EH2, None, None)
    assert (info.value.code, info.value.message) == ("R2", "a beheerder needs level EH2+ or higher, not EH2")
    with pytest.raises(rules.Refusal) as info:
        rules.check_first_admin("o@x.nl", None, Level.EH3, SecondFactorType.SMS, None)
    assert (info.value.code, info.value.message) == ("R19", "second factor sms needs a mobile number")
    with pytest.raises(rules.Refusal) as info:                 # not given the default first: R19 still holds
        rules.check_first_admin("o@x.nl", None, Level.EH3, None, None)
    assert info.value.code == "R19"
    rules.check_first_admin("o@x.nl", None, Level.EH3, SecondFactorType.OTP, None)


def test_r19_a_first_admin_gets_a_second_factor_when_none_is_named() -> None:
    assert rules.first_admin_second_factor(Level.EH3, None, None) is SecondFactorType.OTP
    assert rules.first_admin_second_factor(Level.EH2PLUS, None, "+31612345678") is SecondFactorType.SMS
    assert rules.first_admin_second_factor(Level.EH3, SecondFactorType.SMS, None) is SecondFactorType.SMS
    assert rules.first_admin_second_factor(Level.EH4, None, None) is SecondFactorType.OTP     # R19: EH4 too (#13)


def test_read_only_actor_and_strangers_are_forbidden(w: World) -> None:
    with pytest.raises(rules.NotPermitted):
        rules.execute(w, "user", rules.ChangeRole(KVK, "admin", Role.GEBRUIKER), TODAY)
    with pytest.raises(rules.NotPermitted):
        rules.execute(w, "nobody", rules.Grant(KVK, ("admin",), (UWV,)), TODAY)


def test_an_unknown_object_is_missing_not_a_rule(w: World) -> None:
    """`Missing` (404 `not-found`) is the domain's "no such object"; the client's HTTP error is another class."""
    with pytest.raises(rules.Missing) as info:
        rules.execute(w, "admin", rules.Revoke(KVK, ("user",), (UWV,)), TODAY)
    assert (info.value.status, info.value.code) == (404, "not-found")
    with pytest.raises(rules.Missing):
        rules.approve(w, "nobody", TODAY)
    assert (rules.NotPermitted.status, rules.Invalid.status, rules.Refusal.status) == (403, 422, 409)


def test_add_years_handles_leap_day() -> None:
    assert rules.add_years(dt.date(2028, 2, 29), 5) == dt.date(2033, 2, 28)
    assert rules.max_end_date(TODAY) == dt.date(2031, 11, 21)


# ---------------------------------------------------------------------------------------------- time
def test_pass_time_is_the_calendar_r5_r9_r18_r14() -> None:
    """Issue #13: the time effects exist once, here; the sandbox's sweep only finds what may be due."""
    from reconciler.domain.state import Chain

    day = TODAY + dt.timedelta(days=10)
    w = world((person("admin"), Role.BEHEERDER), (person("late", status=Status.WACHTEN_OP_ACTIVATIE,
                                                         activation_deadline=day - dt.timedelta(days=1)), Role.GEBRUIKER),
              (person("ontime", status=Status.WACHTEN_OP_ACTIVATIE, activation_deadline=day), Role.GEBRUIKER),
              (person("user"), Role.GEBRUIKER))
    org = w.orgs[KVK]
    org.authorisations["user"] = {UWV: day, TENDER: day + dt.timedelta(days=1)}
    org.chains["47474747"] = Chain.issued("47474747", "Boek", frozenset({UWV}), day)
    org.members["user"] = Membership(Role.GEBRUIKER, terminates_on=day)
    seen: list[str] = []

    def apply(event: str, effects: list) -> None:
        seen.append(event)
        w.apply(effects)

    rules.pass_time(w, day, w.due(), apply)
    assert seen == ["activation_expired", "authorisation_expired", "chain_expired", "membership_terminated"]
    assert w.means["late"].status is Status.ACTIVATIE_VERLOPEN          # the deadline passed (R5: 30 days)
    assert w.means["ontime"].status is Status.WACHTEN_OP_ACTIVATIE      # the deadline is today: not yet
    assert org.chains == {} and "user" not in org.members and "user" not in w.means
    assert "user" not in org.authorisations                             # its other authorisation went with it


def test_pass_time_two_last_members_ending_on_one_day_end_the_organisation_r14() -> None:
    w = world((person("a"), Role.BEHEERDER), (person("b"), Role.BEHEERDER))
    for mid in ("a", "b"):
        w.orgs[KVK].members[mid] = Membership(Role.BEHEERDER, terminates_on=TODAY)
    rules.pass_time(w, TODAY, w.due(), lambda _event, effects: w.apply(effects))
    assert KVK not in w.orgs and w.means == {}
    before = w.copy()
    rules.pass_time(w, TODAY, w.due(), lambda _event, effects: w.apply(effects))   # nothing left to do
    assert w == before


# ------------------------------------------------------------- R1 as `admin_stays` (was a count), issue #15
#: a member: its role, its means' status, and whether its termination is already scheduled
MEMBER = st.tuples(st.sampled_from(list(Role)), st.sampled_from(list(Status)), st.booleans())


def admins_left(view: rules.View, kvk: str, removed: str) -> int:
    """R1 as it was counted before `admin_stays` (`admin_count_after`): the reference."""
    staying = 0
    for mid in list(view.active_admins(kvk)):
        membership = view.membership(kvk, mid)
        if mid != removed and membership is not None and membership.terminates_on is None:
            staying += 1
    return staying


def members_world(members: list[tuple[Role, Status, bool]]) -> World:
    w = world()
    for i, (role, status, leaving) in enumerate(members):
        w.means[f"m{i}"] = person(f"m{i}", status=status)
        w.orgs[KVK].members[f"m{i}"] = Membership(role, TODAY + dt.timedelta(days=9) if leaving else None)
    return w


@settings(max_examples=300, deadline=None)
@given(st.lists(MEMBER, max_size=7), st.sampled_from(["", "m0", "m1", "m3", "m6", "nobody"]))
def test_r1_an_admin_stays_exactly_when_the_count_was_not_zero(members: list[tuple[Role, Status, bool]],
                                                               removed: str) -> None:
    """Stopping at the first staying admin decides what the count decided, for every mix of roles, statuses
    and scheduled terminations, whoever is removed (or nobody: a newcomer joining, R14)."""
    w = members_world(members)
    assert rules.admin_stays(w, KVK, removed) is (admins_left(w, KVK, removed) > 0)
    assert rules.admin_stays(w, OTHER, removed) is False                   # an organisation the world lacks
    assert list(w.active_admins(KVK)) == list(w.active_admins(KVK))       # a fresh answer per question


@settings(max_examples=150, deadline=None)
@given(st.lists(MEMBER, min_size=1, max_size=5), st.integers(0, 4))
def test_r1_refusals_follow_the_count(members: list[tuple[Role, Status, bool]], who: int) -> None:
    """Demoting a member is refused for R1 exactly when no other active admin stays (the count was 0): the acting
    admin's own termination is scheduled, so it does not count."""
    w = members_world([(Role.BEHEERDER, Status.ACTIEF, True)] + members)    # m0 acts, and is leaving itself
    target = f"m{1 + who % len(members)}"
    means, membership = w.means[target], w.orgs[KVK].members[target]
    last = means.active and membership.is_admin and admins_left(w, KVK, target) == 0
    demote = rules.ChangeRole(KVK, target, Role.GEBRUIKER)
    try:
        rules.execute(w, "m0", demote, TODAY)
        refused_r1 = False
    except rules.Refusal as refusal:
        refused_r1 = refusal.code == "R1"
    assert refused_r1 is (means.active and membership.role is Role.BEHEERDER and admins_left(w, KVK, target) == 0)
    assert rules.admin_stays(w, KVK, target) is not (admins_left(w, KVK, target) == 0)
    assert last is (means.active and membership.is_admin and not rules.admin_stays(w, KVK, target))
