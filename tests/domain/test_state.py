"""`reconciler.domain.state`: the value objects (Means, Membership) and `World`, the planner's in-memory
simulator of the backend: its read view (the rules' `View`), its writes (`apply(effects)`) and `copy()`."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.domain import rules
from reconciler.domain.catalogue import bundled_catalogue
from reconciler.domain.levels import Level
from reconciler.domain.means import MeansType, Role, Subscription
from reconciler.domain.state import (
    Chain, DeleteAuthorisation, DeleteChain, DeleteMeans, DeleteMembership, DeleteOrganisation, Means, Membership,
    OrgInfo, OrgState, Pending, PendingKind, PutAuthorisation, PutChain, PutMeans, PutMembership, Status, World,
)

CAT = bundled_catalogue()
KVK, OTHER = "12345678", "87654321"
TENDERNED = CAT["rvo/tenderned"].uuid
GENERAL3 = CAT["algemene-bevoegdheid-3"].uuid
TODAY = dt.date(2025, 6, 1)
END = dt.date(2026, 1, 1)


def means(mid: str, email: str, *, level: Level = Level.EH3, status: Status = Status.ACTIEF,
          type: MeansType = MeansType.REGULIER, pending: Pending | None = None) -> Means:
    return Means(id=mid, email=email, name=mid.title(), level=level, type=type, status=status, pending=pending)


def world() -> World:
    """KVK: anna (active admin), bob (active user with two authorisations), a chain; OTHER: anna as admin."""
    w = World(CAT)
    w.orgs[KVK] = OrgState(OrgInfo(KVK, "Acme"))
    w.orgs[OTHER] = OrgState(OrgInfo(OTHER, "Other", "000012345678"))
    w.apply([
        PutMeans(means("anna", "Anna@Acme.nl")),
        PutMeans(means("bob", "bob@acme.nl")),
        PutMembership(KVK, "anna", Membership(Role.BEHEERDER)),
        PutMembership(KVK, "bob", Membership(Role.GEBRUIKER)),
        PutMembership(OTHER, "anna", Membership(Role.BEHEERDER)),
        PutAuthorisation(KVK, "bob", TENDERNED, END),
        PutAuthorisation(KVK, "bob", GENERAL3, END),
        PutChain(KVK, Chain.issued("11223344", "Boekhouder", frozenset({TENDERNED}), END)),
    ])
    return w


# ------------------------------------------------------------------------------------ value objects
def test_means_key_is_the_lower_cased_email_and_with_returns_a_new_means() -> None:
    m = means("anna", "Anna@Acme.NL")
    assert m.key == "anna@acme.nl"
    changed = m.with_(email="a@acme.nl", subscription=Subscription.THREE_YEARS)
    assert (changed.email, changed.subscription, changed.id) == ("a@acme.nl", Subscription.THREE_YEARS, "anna")
    assert m.email == "Anna@Acme.NL"                              # frozen: the original is untouched


def test_only_an_active_means_is_active() -> None:
    assert means("a", "a@x.nl").active
    for status in (Status.WACHTEN_OP_GOEDKEURING, Status.WACHTEN_OP_ACTIVATIE, Status.ACTIVATIE_VERLOPEN):
        assert not means("a", "a@x.nl", status=status).active


def test_effective_level_is_the_lower_of_the_level_and_a_pending_level_change() -> None:
    """R2, R8: a means may be relied on only for the lower of the two while a change is processed."""
    down = Pending(PendingKind.LEVEL, level=Level.EH2)
    up = Pending(PendingKind.LEVEL, level=Level.EH3)
    assert means("a", "a@x.nl", level=Level.EH3, pending=down).effective_level is Level.EH2
    assert means("a", "a@x.nl", level=Level.EH2PLUS, pending=up).effective_level is Level.EH2PLUS
    link = Pending(PendingKind.LINK, kvk=OTHER, role=Role.GEBRUIKER)
    assert means("a", "a@x.nl", level=Level.EH3, pending=link).effective_level is Level.EH3


def test_only_a_beheerder_membership_is_admin() -> None:
    assert Membership(Role.BEHEERDER).is_admin
    assert not Membership(Role.GEBRUIKER).is_admin


# ----------------------------------------------------------------------------------------- reads
def test_means_by_email_ignores_case() -> None:
    w = world()
    assert w.means_by_email("anna@acme.nl").id == "anna"  # type: ignore[union-attr]
    assert w.means_by_email("ANNA@ACME.NL").id == "anna"  # type: ignore[union-attr]
    assert w.means_by_email("nobody@acme.nl") is None


def test_means_by_email_follows_an_email_change_and_a_deletion() -> None:
    w = world()
    assert w.means_by_email("bob@acme.nl") is not None          # the index is built
    w.apply([PutMeans(w.means["bob"].with_(email="Robert@acme.nl"))])
    assert w.means_by_email("bob@acme.nl") is None
    assert w.means_by_email("robert@ACME.nl").id == "bob"  # type: ignore[union-attr]
    w.apply([DeleteMeans("bob")])
    assert w.means_by_email("robert@acme.nl") is None


def test_means_by_email_sees_a_means_added_directly_to_the_dict() -> None:
    w = world()
    assert w.means_by_email("eve@acme.nl") is None
    w.means["eve"] = means("eve", "Eve@acme.nl")
    assert w.means_by_email("eve@acme.nl").id == "eve"  # type: ignore[union-attr]


def test_membership_reads() -> None:
    w = world()
    assert w.org(KVK) == OrgInfo(KVK, "Acme")
    assert w.org("99999999") is None
    assert w.membership(KVK, "bob") == Membership(Role.GEBRUIKER)
    assert w.membership(OTHER, "bob") is None
    assert w.membership("99999999", "bob") is None
    assert w.memberships_of("anna") == {KVK: Membership(Role.BEHEERDER), OTHER: Membership(Role.BEHEERDER)}
    assert w.memberships_of("bob") == {KVK: Membership(Role.GEBRUIKER)}
    assert w.memberships_of("nobody") == {}
    assert set(w.members(KVK)) == {"anna", "bob"}
    assert (w.member_count(KVK), w.member_count(OTHER), w.member_count("99999999")) == (2, 1, 0)


def test_members_and_authorisations_of_return_copies() -> None:
    """The rules may change what they read without changing the world behind the planner's back."""
    w = world()
    w.members(KVK).clear()
    w.authorisations_of(KVK, "bob").clear()
    assert w.member_count(KVK) == 2
    assert w.authorisations_of(KVK, "bob") == {TENDERNED: END, GENERAL3: END}


def test_active_admins_are_active_beheerders_only() -> None:
    w = world()
    w.apply([PutMeans(means("carl", "carl@acme.nl", status=Status.WACHTEN_OP_ACTIVATIE)),
             PutMembership(KVK, "carl", Membership(Role.BEHEERDER))])
    assert list(w.active_admins(KVK)) == ["anna"]                    # not bob (gebruiker), not carl (not active)
    assert list(w.active_admins("99999999")) == []


def test_tax_means_counts_members_and_pending_links() -> None:
    """R13 allows one belastingdienst means per organisation: a link still being processed counts too."""
    w = world()
    w.apply([PutMeans(means("tax", "tax@acme.nl", type=MeansType.BELASTINGDIENST)),
             PutMembership(KVK, "tax", Membership(Role.GEBRUIKER)),
             PutMeans(means("tax2", "tax2@x.nl", type=MeansType.BELASTINGDIENST,
                            pending=Pending(PendingKind.LINK, kvk=OTHER, role=Role.GEBRUIKER)))])
    assert w.tax_means(KVK) == ["tax"]
    assert w.tax_means(OTHER) == ["tax2"]
    assert w.tax_means("99999999") == []


def test_authorisation_and_chain_reads() -> None:
    w = world()
    assert w.authorisation(KVK, "bob", TENDERNED) == END
    assert w.authorisation(KVK, "anna", TENDERNED) is None
    assert w.authorisation("99999999", "bob", TENDERNED) is None
    assert w.authorisations_of("99999999", "bob") == {}
    assert w.chain(KVK, "11223344").services == frozenset({TENDERNED})  # type: ignore[union-attr]
    assert w.chain(OTHER, "11223344") is None
    assert w.chain("99999999", "11223344") is None


# ---------------------------------------------------------------------------------------- writes
def test_one_apply_raises_each_touched_organisation_s_revision_once() -> None:
    w = world()
    before = (w.orgs[KVK].revision, w.orgs[OTHER].revision)
    w.apply([PutAuthorisation(KVK, "anna", TENDERNED, END), PutAuthorisation(KVK, "anna", GENERAL3, END)])
    assert (w.orgs[KVK].revision, w.orgs[OTHER].revision) == (before[0] + 1, before[1])
    w.apply([PutMeans(w.means["anna"].with_(name="Anna B."))])   # a means is global: no organisation's revision
    assert (w.orgs[KVK].revision, w.orgs[OTHER].revision) == (before[0] + 1, before[1])


def test_removing_a_membership_removes_its_authorisations_there() -> None:
    w = world()
    w.apply([PutMembership(OTHER, "bob", Membership(Role.GEBRUIKER)), PutAuthorisation(OTHER, "bob", TENDERNED, END)])
    w.apply([DeleteMembership(KVK, "bob")])
    assert w.membership(KVK, "bob") is None
    assert w.authorisations_of(KVK, "bob") == {} and "bob" not in w.orgs[KVK].authorisations
    assert w.authorisations_of(OTHER, "bob") == {TENDERNED: END}  # another organisation's are kept
    assert w.get_means("bob") is not None                         # the means itself is a separate effect


def test_removing_the_last_membership_leaves_an_empty_organisation_until_it_is_deleted() -> None:
    """The world does not apply R14 itself: the rules say it with a `DeleteOrganisation` effect."""
    w = world()
    w.apply([DeleteMembership(OTHER, "anna")])
    assert w.org(OTHER) is not None and w.member_count(OTHER) == 0
    w.apply([DeleteOrganisation(OTHER)])
    assert w.org(OTHER) is None and OTHER not in w.memberships_of("anna")
    assert w.memberships_of("anna") == {KVK: Membership(Role.BEHEERDER)}


def test_an_organisation_changed_and_deleted_in_one_apply_is_simply_gone() -> None:
    w = world()
    w.apply([PutAuthorisation(OTHER, "anna", TENDERNED, END), DeleteMembership(OTHER, "anna"),
             DeleteOrganisation(OTHER)])
    assert OTHER not in w.orgs


def test_revoking_the_last_service_drops_the_means_entry() -> None:
    w = world()
    w.apply([DeleteAuthorisation(KVK, "bob", TENDERNED)])
    assert w.authorisations_of(KVK, "bob") == {GENERAL3: END}
    w.apply([DeleteAuthorisation(KVK, "bob", GENERAL3), DeleteAuthorisation(KVK, "bob", GENERAL3)])  # twice: no-op
    assert "bob" not in w.orgs[KVK].authorisations


def test_put_overwrites_and_delete_of_a_missing_thing_is_a_no_op() -> None:
    w = world()
    w.apply([PutAuthorisation(KVK, "bob", TENDERNED, dt.date(2027, 1, 1)),
             PutMembership(KVK, "bob", Membership(Role.BEHEERDER, terminates_on=dt.date(2025, 7, 1))),
             PutChain(KVK, Chain.issued("11223344", None, frozenset({GENERAL3}), END))])
    assert w.authorisation(KVK, "bob", TENDERNED) == dt.date(2027, 1, 1)
    assert w.membership(KVK, "bob") == Membership(Role.BEHEERDER, dt.date(2025, 7, 1))
    assert w.chain(KVK, "11223344").services == frozenset({GENERAL3})  # type: ignore[union-attr]
    w.apply([DeleteChain(KVK, "11223344"), DeleteChain(KVK, "11223344"), DeleteMeans("nobody"),
             DeleteMembership(KVK, "nobody"), DeleteOrganisation("99999999")])
    assert w.chain(KVK, "11223344") is None and set(w.orgs) == {KVK, OTHER}


# ------------------------------------------------------------------------------------------ copy
def test_a_copy_is_equal_and_shares_the_catalogue() -> None:
    w = world()
    w.linked["bob"] = (KVK, "55555555")
    c = w.copy()
    assert c == w and c.catalogue is w.catalogue and c.linked == w.linked


def test_effects_applied_to_a_copy_leave_the_original_unchanged() -> None:
    """The planner simulates on a copy: every container the effects write to must be the copy's own."""
    w = world()
    w.linked["bob"] = (KVK,)
    snapshot = world()
    snapshot.linked["bob"] = (KVK,)
    c = w.copy()
    c.apply([
        PutMeans(means("eve", "eve@acme.nl")),
        PutMeans(c.means["bob"].with_(email="robert@acme.nl")),
        PutMembership(KVK, "eve", Membership(Role.GEBRUIKER)),
        PutMembership(KVK, "anna", Membership(Role.BEHEERDER, terminates_on=END)),
        PutAuthorisation(KVK, "bob", TENDERNED, dt.date(2027, 1, 1)),   # a nested dict (means -> service -> end)
        DeleteAuthorisation(KVK, "bob", GENERAL3),
        PutChain(KVK, Chain.issued("99887766", None, frozenset({TENDERNED}), END)),
        DeleteChain(KVK, "11223344"),
        DeleteMembership(OTHER, "anna"),
        DeleteOrganisation(OTHER),
    ])
    c.linked["bob"] = ()
    assert w == snapshot
    assert w.linked == {"bob": (KVK,)}
    assert w.means_by_email("bob@acme.nl").id == "bob"  # type: ignore[union-attr]
    assert w.means_by_email("eve@acme.nl") is None
    assert w.authorisations_of(KVK, "bob") == {TENDERNED: END, GENERAL3: END}
    assert w.orgs[KVK].revision == snapshot.orgs[KVK].revision and OTHER in w.orgs


def test_effects_applied_to_the_original_do_not_reach_a_copy() -> None:
    w = world()
    c = w.copy()
    w.apply([DeleteAuthorisation(KVK, "bob", TENDERNED), DeleteMembership(KVK, "bob")])
    assert c.authorisations_of(KVK, "bob") == {TENDERNED: END, GENERAL3: END}
    assert c.membership(KVK, "bob") == Membership(Role.GEBRUIKER)


# ------------------------------------------------------------------------------- with the rules
def test_the_rules_run_on_a_world_and_their_effects_apply_to_it() -> None:
    """World implements the rules' View: a grant by the active admin is decided on it and written back."""
    w = world()
    effects = rules.execute(w, "anna", rules.Grant(KVK, ("anna",), (TENDERNED,), END), TODAY)
    w.apply(effects)
    assert w.authorisation(KVK, "anna", TENDERNED) == END


def test_the_rules_read_a_world_s_state_to_refuse() -> None:
    """R2 judged on the world's data: bob at EH2 cannot become beheerder (the refusal names the rule)."""
    w = world()
    w.apply([PutMeans(w.means["bob"].with_(level=Level.EH2))])
    with pytest.raises(rules.Refusal) as info:
        rules.execute(w, "anna", rules.ChangeRole(KVK, "bob", Role.BEHEERDER), TODAY)
    assert info.value.code == "R2"
