"""`reconciler.backend.sandbox.store.SandboxStore` through its own API on a temporary SQLite file (the HTTP
layer's tests are the behaviour-named files beside this one): what survives reopening the file, one revision
per change, transactions that roll back, tokens kept only as hashes, idempotency records, keyset pagination
order, and the rules' `View` answered as the in-memory `World` answers it."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from reconciler.backend.sandbox.store import (
    SCHEMA_VERSION, IdempotencyRecord, Page, SandboxStore, hash_token,
)
from reconciler.domain import rules
from reconciler.domain.catalogue import Service, bundled_catalogue
from reconciler.domain.levels import Level
from reconciler.domain.means import MeansType, Role
from reconciler.domain.state import (
    Chain, DeleteAuthorisation, DeleteMembership, DeleteOrganisation, Effect, Means, Membership, OrgInfo, OrgState,
    Pending, PendingKind, PutAuthorisation, PutChain, PutMeans, PutMembership, Status, World,
)

TODAY = dt.date(2025, 6, 1)
END = dt.date(2026, 1, 1)
KVK, OTHER = "12345678", "87654321"
CAT = bundled_catalogue()
TENDERNED = CAT["rvo/tenderned"].uuid
GENERAL3 = CAT["algemene-bevoegdheid-3"].uuid


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(db: Path) -> Iterator[SandboxStore]:
    """A store on a fresh file with a fixed today and organisation KVK (admin anna@acme.nl)."""
    s = SandboxStore(db)
    s.set_clock(TODAY)
    s.create_organisation(KVK, "Acme", "anna@acme.nl", "Anna", Level.EH3)
    yield s
    s.close()


def admin_id(store: SandboxStore, kvk: str = KVK) -> str:
    with store.transaction():
        [mid] = store.active_admins(kvk)
    return mid


def user(mid: str, *, status: Status = Status.ACTIEF, type: MeansType = MeansType.REGULIER,
         pending: Pending | None = None) -> Means:
    return Means(id=mid, email=f"{mid}@Acme.nl", name=mid.title(), level=Level.EH3, type=type, status=status,
                 contract_start=TODAY, pending=pending)


def users(store: SandboxStore, *mids: str, kvk: str = KVK, role: Role = Role.GEBRUIKER) -> None:
    effects: list[Effect] = [PutMeans(user(m)) for m in mids]
    effects += [PutMembership(kvk, m, Membership(role)) for m in mids]
    write(store, effects)


def write(store: SandboxStore, effects: list[Effect], context_kvk: str | None = None) -> set[str]:
    with store.transaction(write=True):
        return store.apply(effects, context_kvk)


def revision(store: SandboxStore, kvk: str = KVK) -> int | None:
    with store.transaction():
        return store.revision(kvk)


def every(list_page: Callable[[int, str | None], Page], limit: int) -> tuple[list[Any], int]:
    """All items of a keyset-paginated list, and the number of pages it took."""
    items: list[Any] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = list_page(limit, cursor)
        assert len(page.items) <= limit
        items += page.items
        pages += 1
        if page.next_cursor is None:
            return items, pages
        cursor = page.next_cursor


# -------------------------------------------------------------------------------------- the file
def test_a_new_file_gets_the_current_schema_and_the_bundled_catalogue(db: Path) -> None:
    store = SandboxStore(db)
    assert store.catalogue["rvo/tenderned"].uuid == TENDERNED
    store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_everything_survives_closing_and_reopening_the_file(store: SandboxStore, db: Path) -> None:
    anna = admin_id(store)
    users(store, "bob")
    write(store, [PutAuthorisation(KVK, "bob", TENDERNED, END),
                  PutChain(KVK, Chain.issued("11223344", "Boekhouder", frozenset({TENDERNED, GENERAL3}), END)),
                  PutMembership(KVK, "bob", Membership(Role.GEBRUIKER, terminates_on=dt.date(2025, 9, 1)))])
    token = store.create_token("bob", read_only=True)
    store.set_setting("faults", {"p_503": 0.5})
    before = revision(store)
    store.close()

    again = SandboxStore(db)
    try:
        assert again.clock() == (TODAY, True)
        assert again.get_setting("faults") == {"p_503": 0.5}
        assert again.token(token).means_id == "bob" and again.token(token).read_only  # type: ignore[union-attr]
        with again.transaction():
            assert again.org(KVK) == OrgInfo(KVK, "Acme", None)
            assert again.revision(KVK) == before
            assert again.active_admins(KVK) == [anna]
            assert again.get_means("bob") == user("bob")
            assert again.membership(KVK, "bob") == Membership(Role.GEBRUIKER, dt.date(2025, 9, 1))
            assert again.authorisations_of(KVK, "bob") == {TENDERNED: END}
            assert again.chain(KVK, "11223344") == Chain.issued("11223344", "Boekhouder",
                                                         frozenset({TENDERNED, GENERAL3}), END)
    finally:
        again.close()


def test_reopening_does_not_seed_the_catalogue_again(store: SandboxStore, db: Path) -> None:
    """The bundled services are added only when missing: a reopened file keeps its catalogue version."""
    version = store.get_setting("catalogue_version")
    store.close()
    again = SandboxStore(db)
    try:
        again.catalogue  # noqa: B018 - opens the file
        assert again.get_setting("catalogue_version") == version
    finally:
        again.close()


def test_added_services_persist_and_take_a_bundled_key_over(store: SandboxStore, db: Path) -> None:
    new = Service(key="rvo/tenderned", uuid="00000000-0000-4000-8000-00000000abcd", provider="RVO",
                  name="TenderNed (new)", level=Level.EH2)
    assert store.add_services([new]) == 1
    assert store.catalogue["rvo/tenderned"].uuid == new.uuid
    assert store.service(TENDERNED) is not None                 # the old UUID is still known (held authorisations)
    store.close()
    again = SandboxStore(db)
    try:
        assert again.catalogue["rvo/tenderned"] == new
        assert again.service(new.uuid.upper()) == new           # looked up case-insensitively
    finally:
        again.close()


# ------------------------------------------------------------------------------------ revisions
def test_a_new_organisation_starts_at_revision_one(store: SandboxStore) -> None:
    assert revision(store) == 1
    assert revision(store, "99999999") is None


def test_each_write_raises_the_revision_by_one_however_many_effects(store: SandboxStore) -> None:
    users(store, "bob", "eve")
    first = revision(store)
    write(store, [PutAuthorisation(KVK, "bob", TENDERNED, END), PutAuthorisation(KVK, "eve", TENDERNED, END),
                  PutAuthorisation(KVK, "bob", GENERAL3, END)])
    assert revision(store) == first + 1  # type: ignore[operator]
    write(store, [DeleteAuthorisation(KVK, "bob", GENERAL3)])
    assert revision(store) == first + 2  # type: ignore[operator]


def _db_revision(store: SandboxStore, kvk: str = KVK) -> int:
    """The revision as the file has it, past anything the store remembers."""
    return int(store.conn.execute("SELECT revision FROM organisations WHERE kvk = ?", (kvk,)).fetchone()[0])


def test_within_a_transaction_the_revision_read_follows_every_write_and_every_undo(store: SandboxStore) -> None:
    """The store remembers an organisation's revision within a transaction (a change reads it before and after):
    a write raises it, an undone savepoint and a deleted organisation forget it, as the file does."""
    users(store, "bob")
    anna = admin_id(store)
    store.create_organisation(OTHER, "Other", "anna@acme.nl", "Anna", Level.EH3)
    with store.transaction(write=True):
        start = store.revision(KVK)
        assert store.org(KVK) is not None and store.revision(KVK) == start == _db_revision(store)
        store.apply([PutAuthorisation(KVK, "bob", TENDERNED, END)])
        assert store.revision(KVK) == start + 1 == _db_revision(store)  # type: ignore[operator]
        with pytest.raises(RuntimeError), store.savepoint():
            store.apply([PutAuthorisation(KVK, "bob", GENERAL3, END)])
            assert store.revision(KVK) == start + 2 == _db_revision(store)  # type: ignore[operator]
            raise RuntimeError("refused after a write")
        assert store.revision(KVK) == start + 1 == _db_revision(store)  # type: ignore[operator]
        assert store.revision(OTHER) is not None
        store.apply([DeleteMembership(OTHER, anna), DeleteOrganisation(OTHER)])
        assert store.revision(OTHER) is None and store.org(OTHER) is None
    with store.transaction():
        assert store.revision(KVK) == start + 1  # type: ignore[operator]


def test_a_means_change_touches_the_request_s_organisation_or_else_all_it_is_linked_to(
        store: SandboxStore) -> None:
    users(store, "bob")
    store.create_organisation(OTHER, "Other", "anna@acme.nl", "Anna", Level.EH3)
    write(store, [PutMembership(OTHER, "bob", Membership(Role.GEBRUIKER))])
    a, b = revision(store), revision(store, OTHER)
    assert write(store, [PutMeans(user("bob").with_(name="Robert"))], context_kvk=KVK) == {KVK}
    assert (revision(store), revision(store, OTHER)) == (a + 1, b)  # type: ignore[operator]
    assert write(store, [PutMeans(user("bob").with_(name="Bob"))]) == {KVK, OTHER}     # supplier, holder
    assert (revision(store), revision(store, OTHER)) == (a + 2, b + 1)  # type: ignore[operator]


def test_a_deleted_organisation_is_not_reported_as_touched(store: SandboxStore) -> None:
    anna = admin_id(store)
    store.create_organisation(OTHER, "Other", "anna@acme.nl", "Anna", Level.EH3)
    touched = write(store, [DeleteMembership(OTHER, anna), DeleteOrganisation(OTHER)])
    assert touched == set()
    with store.transaction():
        assert store.org(OTHER) is None and store.memberships_of(anna) == {KVK: Membership(Role.BEHEERDER)}


def test_a_failed_transaction_writes_nothing(store: SandboxStore) -> None:
    users(store, "bob")
    before = revision(store)
    with pytest.raises(ZeroDivisionError):
        with store.transaction(write=True):
            store.apply([PutAuthorisation(KVK, "bob", TENDERNED, END)])
            1 / 0
    assert revision(store) == before
    with store.transaction():
        assert store.authorisations_of(KVK, "bob") == {}


def test_writes_need_a_write_transaction(store: SandboxStore) -> None:
    with pytest.raises(RuntimeError):
        store.apply([PutMeans(user("bob"))])
    with store.transaction():
        with pytest.raises(RuntimeError):
            with store.transaction(write=True):
                pass
    with store.transaction():
        assert store.get_means("bob") is None


# --------------------------------------------------------------------------------------- tokens
def test_a_token_is_kept_only_as_its_hash(store: SandboxStore, db: Path) -> None:
    users(store, "bob")
    token = store.create_token("bob")
    info = store.token(token)
    assert info is not None and (info.means_id, info.read_only, info.token_hash) == ("bob", False, hash_token(token))
    assert store.token(token + "x") is None
    assert token.encode() not in db.read_bytes() + (db.with_name(db.name + "-wal").read_bytes()
                                                     if db.with_name(db.name + "-wal").exists() else b"")


def test_a_token_for_an_unknown_means_is_refused(store: SandboxStore) -> None:
    with pytest.raises(rules.Refusal) as info:
        store.create_token("nobody")
    assert info.value.code == "not-found"


# ---------------------------------------------------------------------------------- idempotency
def test_an_idempotency_record_round_trips_per_token_and_survives_reopening(store: SandboxStore, db: Path) -> None:
    record = IdempotencyRecord("POST", f"/v1/organisations/{KVK}/means", "b0dy", 201,
                               [("content-type", "application/json"), ("etag", '"2"')], b'{"id": "x"}')
    with store.transaction(write=True):
        store.idempotency_put("tokenhash-1", "key-1", record)
    with store.transaction():
        assert store.idempotency_get("tokenhash-1", "key-1") == record
        assert store.idempotency_get("tokenhash-2", "key-1") is None      # keys are per token
        assert store.idempotency_get("tokenhash-1", "key-2") is None
    store.close()
    again = SandboxStore(db)
    try:
        with again.transaction():
            assert again.idempotency_get("tokenhash-1", "key-1") == record
    finally:
        again.close()


def test_an_idempotency_record_is_written_once_and_only_in_a_write_transaction(store: SandboxStore) -> None:
    record = IdempotencyRecord("POST", "/p", "h", 200, [], b"")
    with pytest.raises(RuntimeError):
        store.idempotency_put("t", "k", record)
    with store.transaction(write=True):
        store.idempotency_put("t", "k", record)
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction(write=True):
            store.idempotency_put("t", "k", IdempotencyRecord("POST", "/p", "other", 200, [], b""))
    with store.transaction():
        assert store.idempotency_get("t", "k") == record


# ----------------------------------------------------------------------------------- pagination
def test_means_are_listed_by_id_each_once_across_pages(store: SandboxStore) -> None:
    anna = admin_id(store)
    users(store, *(f"u{i:02d}" for i in (7, 3, 11, 1, 5)))
    store.create_organisation(OTHER, "Other", "u03@acme.nl", "U03", Level.EH3)
    with store.transaction():
        entries, pages = every(lambda limit, cursor: store.list_means(KVK, limit, cursor), 2)
    assert [e.means.id for e in entries] == sorted([anna, "u01", "u03", "u05", "u07", "u11"])
    assert pages == 3
    u03 = next(e for e in entries if e.means.id == "u03")
    assert u03.membership == Membership(Role.GEBRUIKER) and u03.organisations == [KVK, OTHER]


def test_authorisations_are_listed_by_means_then_service_and_filter_by_means(store: SandboxStore) -> None:
    users(store, "bob", "amy")
    write(store, [PutAuthorisation(KVK, m, s, END) for m in ("bob", "amy") for s in (TENDERNED, GENERAL3)])
    with store.transaction():
        rows, _ = every(lambda limit, cursor: store.list_authorisations(KVK, limit, cursor), 3)
        only_bob, _ = every(lambda limit, cursor: store.list_authorisations(KVK, limit, cursor, "bob"), 1)
    keys = [(r[0], r[2]) for r in rows]
    assert keys == sorted((m, s) for m in ("bob", "amy") for s in (TENDERNED, GENERAL3))
    assert rows[0][1] == "amy@Acme.nl" and rows[0][3] == END.isoformat()
    assert [(r[0], r[2]) for r in only_bob] == sorted(("bob", s) for s in (TENDERNED, GENERAL3))


def test_chains_are_listed_by_intermediary(store: SandboxStore) -> None:
    write(store, [PutChain(KVK, Chain.issued(k, None, frozenset({TENDERNED}), END)) for k in ("33333333", "11111111",
                                                                                      "22222222")])
    with store.transaction():
        chains, pages = every(lambda limit, cursor: store.list_chains(KVK, limit, cursor), 2)
    assert [c.intermediary_kvk for c in chains] == ["11111111", "22222222", "33333333"] and pages == 2


def test_events_are_listed_in_the_order_they_were_written(store: SandboxStore) -> None:
    with store.transaction(write=True):
        for action in ("c", "a", "b"):
            store.audit(KVK, "tester", action, None, "ok")
    with store.transaction():
        rows, _ = every(lambda limit, cursor: store.list_events(KVK, limit, cursor), 2)
    ids = [r[0] for r in rows]
    assert ids == sorted(ids)
    assert [r[4] for r in rows if r[3] == "tester"] == ["c", "a", "b"]
    assert rows[0][4] == "create_organisation"


def test_the_organisations_of_a_means_are_listed_by_kvk(store: SandboxStore) -> None:
    anna = admin_id(store)
    store.create_organisation(OTHER, "Other", "anna@acme.nl", "Anna", Level.EH3)
    store.create_organisation("11111111", "First", "anna@acme.nl", "Anna", Level.EH3)
    with store.transaction():
        rows, pages = every(lambda limit, cursor: store.organisations_of(anna, limit, cursor), 2)
    assert [r[0] for r in rows] == ["11111111", KVK, OTHER] and pages == 2


def test_services_are_listed_by_key(store: SandboxStore) -> None:
    with store.transaction():
        services, _ = every(lambda limit, cursor: store.list_services(limit, cursor), 7)
    keys = [s.key for s in services]
    assert keys == sorted(keys) and set(keys) == {s.key for s in CAT}


def test_a_cursor_of_another_list_is_refused(store: SandboxStore) -> None:
    users(store, "bob", "eve")
    with store.transaction():
        cursor = store.list_means(KVK, 1, None).next_cursor
        with pytest.raises(rules.Refusal) as info:
            store.list_chains(KVK, 1, cursor)
    assert info.value.code == "invalid"


# ---------------------------------------------------------------------------------- controls' view
def test_all_means_filters_and_orders_by_email(store: SandboxStore) -> None:
    write(store, [PutMeans(user("zed", status=Status.WACHTEN_OP_GOEDKEURING)), PutMeans(user("bob")),
                  PutMembership(KVK, "zed", Membership(Role.GEBRUIKER)), PutMembership(KVK, "bob",
                                                                                 Membership(Role.GEBRUIKER))])
    with store.transaction():
        assert [m.email for m, _ in store.all_means()] == ["anna@acme.nl", "bob@Acme.nl", "zed@Acme.nl"]
        assert [m.id for m, _ in store.all_means(status="wachten_op_goedkeuring")] == ["zed"]
        [(bob, memberships)] = store.all_means(email="BOB@acme.NL")
        assert bob.id == "bob" and memberships == {KVK: Membership(Role.GEBRUIKER)}
        assert store.all_means(kvk="99999999") == []


def test_counters_add_up_and_reset(store: SandboxStore) -> None:
    store.count_request("POST", "/v1/x")
    store.count_request("POST", "/v1/x")
    store.count_request("GET", "/v1/x")
    with store.transaction(write=True):
        store.increment("drops", 2)
        store.increment("drops")
    assert store.counters() == ([("GET", "/v1/x", 1), ("POST", "/v1/x", 2)], {"drops": 3})
    store.reset_counters()
    assert store.counters() == ([], {})


# ------------------------------------------------------------------------------ the rules' View
def test_the_store_answers_the_view_as_the_world_does_after_the_same_effects(store: SandboxStore) -> None:
    """The World is the reference the store implements by SQL: both are read by the same rules."""
    anna = admin_id(store)
    with store.transaction():
        world = World(store.catalogue)
        world.orgs[KVK] = OrgState(store.org(KVK))  # type: ignore[arg-type]
        world.apply([PutMeans(store.get_means(anna)), PutMembership(KVK, anna, Membership(Role.BEHEERDER))])  # type: ignore[arg-type]
    tax_link = Pending(PendingKind.LINK, kvk=KVK, role=Role.GEBRUIKER)
    effects: list[Effect] = [
        PutMeans(user("bob")), PutMeans(user("carl", status=Status.WACHTEN_OP_ACTIVATIE)),
        PutMeans(user("tax", type=MeansType.BELASTINGDIENST, pending=tax_link)),
        PutMembership(KVK, "bob", Membership(Role.GEBRUIKER, dt.date(2025, 12, 1))),
        PutMembership(KVK, "carl", Membership(Role.BEHEERDER)),
        PutAuthorisation(KVK, "bob", TENDERNED, END), PutAuthorisation(KVK, "bob", GENERAL3, END),
        DeleteAuthorisation(KVK, "bob", GENERAL3),
        PutChain(KVK, Chain.issued("11223344", "Boekhouder", frozenset({TENDERNED}), END)),
    ]
    world.apply(effects)
    write(store, effects)
    with store.transaction():
        for view in (store, world):
            assert view.means_by_email("BOB@acme.nl") == world.get_means("bob")
        assert store.members(KVK) == world.members(KVK)
        assert store.member_count(KVK) == world.member_count(KVK) == 3
        assert store.active_admins(KVK) == list(world.active_admins(KVK)) == [anna]
        assert store.tax_means(KVK) == world.tax_means(KVK) == ["tax"]
        for mid in (anna, "bob", "carl", "tax", "nobody"):
            assert store.get_means(mid) == world.get_means(mid)
            assert store.membership(KVK, mid) == world.membership(KVK, mid)
            assert store.memberships_of(mid) == world.memberships_of(mid)
            assert store.authorisations_of(KVK, mid) == world.authorisations_of(KVK, mid)
            assert store.authorisation(KVK, mid, TENDERNED) == world.authorisation(KVK, mid, TENDERNED)
        assert store.chain(KVK, "11223344") == world.chain(KVK, "11223344")
        assert store.chain(KVK, "99999999") is world.chain(KVK, "99999999") is None


def test_the_clock_does_to_the_store_what_pass_time_does_to_the_world(store: SandboxStore) -> None:
    """Issue #13: the time effects exist once (`rules.pass_time`); the store's sweep only finds the candidates.
    The same state, moved to the same day, reads the same, with one revision step per touched organisation."""
    anna = admin_id(store)
    with store.transaction():
        world = World(store.catalogue)
        world.orgs[KVK] = OrgState(store.org(KVK))  # type: ignore[arg-type]
        world.apply([PutMeans(store.get_means(anna)), PutMembership(KVK, anna, Membership(Role.BEHEERDER))])  # type: ignore[arg-type]
    day = dt.date(2025, 12, 1)
    effects: list[Effect] = [
        PutMeans(user("bob")), PutMeans(user("eve")),
        PutMeans(Means(id="carl", email="carl@acme.nl", name="Carl", level=Level.EH3, status=Status.WACHTEN_OP_ACTIVATIE,
                       activation_deadline=dt.date(2025, 7, 1), contract_start=TODAY)),
        PutMembership(KVK, "bob", Membership(Role.GEBRUIKER, day)), PutMembership(KVK, "eve", Membership(Role.GEBRUIKER)),
        PutMembership(KVK, "carl", Membership(Role.GEBRUIKER)),
        PutAuthorisation(KVK, "bob", TENDERNED, END), PutAuthorisation(KVK, "eve", TENDERNED, day),
        PutAuthorisation(KVK, "eve", GENERAL3, END),
        PutChain(KVK, Chain.issued("11223344", "Boekhouder", frozenset({TENDERNED}), dt.date(2025, 11, 30))),
    ]
    world.apply(effects)
    write(store, effects)
    revision = store.revision(KVK)
    rules.pass_time(world, day, world.due(), lambda _event, done: world.apply(done))
    report = store.set_clock(day)
    assert report.as_dict() == {"activations_expired": 1, "authorisations_expired": 1, "chains_expired": 1,
                                "memberships_terminated": 1, "means_deleted": 1, "organisations_deleted": 0}
    with store.transaction():
        assert store.revision(KVK) == revision + 1                        # once, however many effects
        assert store.members(KVK) == world.members(KVK) and "bob" not in world.members(KVK)
        for mid in (anna, "bob", "carl", "eve"):
            assert store.get_means(mid) == world.get_means(mid)
            assert store.authorisations_of(KVK, mid) == world.authorisations_of(KVK, mid)
        assert store.chain(KVK, "11223344") is world.chain(KVK, "11223344") is None
    assert world.means["carl"].status is Status.ACTIVATIE_VERLOPEN and world.authorisations_of(KVK, "eve") == {
        GENERAL3: END}


def test_prefetched_reads_answer_as_the_database_does(store: SandboxStore) -> None:
    """A bulk request prefetches its means; the cached answers must equal the uncached ones, also for an id
    that does not exist, and a write in the same transaction must not leave a stale cache behind."""
    users(store, "bob", "eve")
    write(store, [PutAuthorisation(KVK, "bob", TENDERNED, END)])
    with store.transaction(write=True):
        plain = [(store.get_means(m), store.membership(KVK, m), store.authorisations_of(KVK, m))
                 for m in ("bob", "eve", "nobody")]
        store.prefetch_members(KVK, ["bob", "eve", "nobody"], authorisations=True)
        cached = [(store.get_means(m), store.membership(KVK, m), store.authorisations_of(KVK, m))
                  for m in ("bob", "eve", "nobody")]
        assert cached == plain
        assert store.count_existing_authorisations(KVK, ["bob", "eve"], [TENDERNED, GENERAL3]) == 1
        store.apply([PutAuthorisation(KVK, "eve", GENERAL3, END), DeleteMembership(KVK, "bob")])
        assert store.authorisations_of(KVK, "eve") == {GENERAL3: END}
        assert store.membership(KVK, "bob") is None and store.authorisation(KVK, "bob", TENDERNED) is None


def test_the_means_list_writes_each_means_as_the_one_means_answer_does(store: SandboxStore) -> None:
    """The list serialises stored rows (`means_row_dict`, no domain objects: half of serving it); every kind of
    means gives the dict, key order included, that `means_dict` gives of the means read as objects."""
    from reconciler.backend.sandbox.serialise import means_dict, means_row_dict
    from reconciler.domain.means import SecondFactorType, Subscription

    store.create_organisation(OTHER, "Other", "olga@acme.nl", "Olga", Level.EH3)
    kinds = [
        Means(id="sms", email="Sms@Acme.nl", name="Sms", level=Level.EH3, second_factor=SecondFactorType.SMS,
              phone="+31612345678", subscription=Subscription.THREE_YEARS, status=Status.ACTIEF, contract_start=TODAY),
        Means(id="new", email="new@acme.nl", name="New", level=Level.EH2, status=Status.WACHTEN_OP_ACTIVATIE,
              activation_deadline=TODAY + dt.timedelta(days=30)),
        Means(id="lvl", email="lvl@acme.nl", name="Lvl", level=Level.EH2, status=Status.ACTIEF, contract_start=TODAY,
              pending=Pending(PendingKind.LEVEL, level=Level.EH3, second_factor=SecondFactorType.OTP)),
        Means(id="lnk", email="lnk@acme.nl", name="Lnk", level=Level.EH3, status=Status.ACTIEF,
              second_factor=SecondFactorType.OTP, contract_start=TODAY,
              pending=Pending(PendingKind.LINK, kvk=OTHER, role=Role.BEHEERDER, subscription=Subscription.ONE_YEAR)),
        Means(id="tax", email="tax@acme.nl", name="Tax", level=Level.EH3, type=MeansType.BELASTINGDIENST,
              second_factor=SecondFactorType.OTP, status=Status.ACTIEF, contract_start=TODAY),
    ]
    write(store, [*(PutMeans(m) for m in kinds),
                  *(PutMembership(KVK, m.id, Membership(Role.GEBRUIKER)) for m in kinds),
                  PutMembership(KVK, "sms", Membership(Role.GEBRUIKER, terminates_on=END)),
                  PutMembership(OTHER, "sms", Membership(Role.BEHEERDER))])
    with store.transaction():
        rows, pages = every(lambda limit, cursor: store.list_means_rows(KVK, limit, cursor), 2)
        listed = [means_row_dict(row, orgs) for row, orgs in rows]
        one_by_one = [means_dict(store.means_entry(KVK, d["id"])) for d in listed]  # type: ignore[arg-type]
    assert pages == 3 and len(listed) == 6 and {d["id"] for d in listed} >= {m.id for m in kinds}
    assert [list(d.items()) for d in listed] == [list(d.items()) for d in one_by_one]
    by_id = {d["id"]: d for d in listed}
    assert by_id["sms"]["organisations"] == [KVK, OTHER] and by_id["sms"]["terminates_on"] == END.isoformat()
    assert by_id["lnk"]["pending"] == {"kind": "link", "kvk": OTHER, "role": "beheerder"}
    assert by_id["lvl"]["pending"] == {"kind": "level", "level": "EH3"} and by_id["new"]["second_factor"] is None


def test_an_organisation_is_read_once_per_transaction_until_a_write(store: SandboxStore) -> None:
    """A change asks for its organisation three times (the acting admin's check, the rules', the answer): one
    query, and none kept past a write (which may delete it) or past the transaction."""
    queries: list[str] = []
    store.conn.set_trace_callback(queries.append)
    try:
        with store.transaction(write=True):
            found = [store.org(KVK) for _ in range(3)]
            assert found == [OrgInfo(KVK, "Acme", None)] * 3 and store.org(OTHER) is None
            assert sum("FROM organisations WHERE" in q for q in queries) == 2        # KVK once, OTHER once
            store.apply([DeleteOrganisation(KVK)])
            assert store.org(KVK) is None
        with store.transaction():
            assert store.org(KVK) is None
    finally:
        store.conn.set_trace_callback(None)


# --------------------------------------------------------------------- R1 over the store (issue #15)
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(Role)), st.sampled_from(list(Status)), st.booleans()), max_size=6))
def test_r1_whether_an_admin_stays_is_answered_by_the_store_as_by_the_world(
        members: list[tuple[Role, Status, bool]]) -> None:
    """`rules.admin_stays` stops at the first staying admin; the store lists its admins in another order (by id)
    than the world (by membership): both must decide R1 alike, whoever leaves, and as a count of them did."""
    store = SandboxStore(":memory:")
    try:
        store.set_clock(TODAY)
        store.create_organisation(KVK, "Acme", "anna@acme.nl", "Anna", Level.EH3)
        anna = admin_id(store)
        with store.transaction():
            world = World(store.catalogue)
            world.orgs[KVK] = OrgState(store.org(KVK))  # type: ignore[arg-type]
            world.apply([PutMeans(store.get_means(anna)), PutMembership(KVK, anna, Membership(Role.BEHEERDER))])  # type: ignore[arg-type]
        effects: list[Effect] = []
        for i, (role, status, leaving) in enumerate(members):
            mid = f"z{9 - i}"                         # ids that sort against the order of joining
            effects += [PutMeans(user(mid, status=status)),
                        PutMembership(KVK, mid, Membership(role, END if leaving else None))]
        if members and members[0][2]:                 # anna leaving too, at times
            effects.append(PutMembership(KVK, anna, Membership(Role.BEHEERDER, END)))
        world.apply(effects)
        write(store, effects)
        with store.transaction():
            assert sorted(store.active_admins(KVK)) == sorted(world.active_admins(KVK))
            for removed in ("", anna, "nobody", *(f"z{9 - i}" for i in range(len(members)))):
                count = sum(1 for mid in store.active_admins(KVK)
                            if mid != removed and store.membership(KVK, mid).terminates_on is None)  # type: ignore[union-attr]
                assert rules.admin_stays(store, KVK, removed) is rules.admin_stays(world, KVK, removed) is (count > 0)
    finally:
        store.close()
