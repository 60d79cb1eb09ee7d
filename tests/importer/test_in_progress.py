"""A mutation in progress (R6) as the Beheermodule's users download shows it: the status of an active person
changes to show that the mutation is being processed (manual 3.2), without saying which mutation. The sandbox's
export writes it, the reader takes it as an active means with a change in progress (`PendingKind.UNKNOWN`), the
import says so, and the rules treat it as any pending change: one at a time, ended by the supplier."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from reconciler.backend.sandbox.export import IN_PROGRESS, users_overview
from reconciler.domain import rules
from reconciler.domain.catalogue import bundled_catalogue
from reconciler.domain.levels import Level
from reconciler.domain.means import Role, SecondFactorType
from reconciler.domain.operations import ChangeRole
from reconciler.domain.state import Means, Membership, OrgInfo, OrgState, Pending, PendingKind, Status, World
from reconciler.domain.waiting import means_waiting
from reconciler.importer.export import in_progress, parse_status
from tests.importer.common import load
from tests.importer.test_export import HEADER, KVK, imported, write_csv

TODAY = dt.date(2026, 12, 1)


def _world() -> World:
    world = World(bundled_catalogue())
    world.orgs[KVK] = OrgState(OrgInfo(KVK, "Acme"), revision=1)
    people = [
        Means("m-admin", "admin@acme.nl", "Admin", Level.EH3, second_factor=SecondFactorType.OTP, status=Status.ACTIEF),
        Means("m-up", "up@acme.nl", "Up", Level.EH3, second_factor=SecondFactorType.OTP, status=Status.ACTIEF,
              pending=Pending(PendingKind.LEVEL, level=Level.EH4)),
        Means("m-new", "new@acme.nl", "New", Level.EH3, second_factor=SecondFactorType.OTP,
              status=Status.WACHTEN_OP_ACTIVATIE, activation_deadline=TODAY + dt.timedelta(days=20),
              pending=Pending(PendingKind.LINK, kvk="87654321", role=Role.GEBRUIKER)),
    ]
    for means in people:
        world.means[means.id] = means
        world.orgs[KVK].members[means.id] = Membership(Role.BEHEERDER if means.id == "m-admin" else Role.GEBRUIKER)
    return world


def test_the_export_shows_an_active_person_s_mutation_in_progress_in_the_status() -> None:
    rows = {row[2]: row for row in users_overview(_world(), KVK).rows}
    assert rows["admin@acme.nl"][4] == "Actief"
    assert rows["up@acme.nl"][4] == IN_PROGRESS == "Mutatie in behandeling"
    assert rows["up@acme.nl"][6] == "EH3"                 # the current level: the new one is not shown
    assert rows["new@acme.nl"][4] == "Wachten op activatie"   # not active: its own status stays


@pytest.mark.parametrize("text", ["Mutatie in behandeling", "mutatie in behandeling", "Wijziging in behandeling",
                                  "Mutation in progress"])
def test_the_reader_takes_it_as_active_with_a_change_in_progress(text: str) -> None:
    assert parse_status(text) == (Status.ACTIEF, None) and in_progress(text)


@pytest.mark.parametrize("text, status", [("Actief", Status.ACTIEF), ("In behandeling", Status.WACHTEN_OP_GOEDKEURING),
                                          ("Wachten op activatie", Status.WACHTEN_OP_ACTIVATIE)])
def test_other_statuses_are_no_change_in_progress(text: str, status: Status) -> None:
    assert parse_status(text)[0] is status and not in_progress(text)


def test_import_from_the_export_says_a_change_awaits_the_supplier(tmp_path: Path) -> None:
    rows = [["1", "Admin", "admin@acme.nl", "Beheerder", "Actief", "", "EH3", "otp"],
            ["2", "Up", "up@acme.nl", "Gebruiker", "Mutatie in behandeling", "", "EH3", "otp"]]
    _, path = imported(tmp_path, write_csv(tmp_path / "gebruikers.csv", HEADER, rows))
    text = path.read_text(encoding="utf-8")
    assert "a change (a level change or a link) awaits the supplier (R6)" in text
    users = {u["email"]: u for u in load(path)["users"]}
    assert users["up@acme.nl"]["level"] == "EH3"          # the level the download shows, not a guess


def test_a_change_in_progress_holds_back_the_next_change_and_the_supplier_ends_it() -> None:
    world = _world()
    world.means["m-up"] = world.means["m-up"].with_(pending=Pending(PendingKind.UNKNOWN))
    admin = world.means["m-admin"]
    with pytest.raises(rules.Refusal) as refused:                                        # R6: one at a time
        rules.execute(world, admin.id, ChangeRole(KVK, "m-up", Role.BEHEERDER), TODAY)
    assert refused.value.code == "R6" and "a change in progress of up@acme.nl" in str(refused.value)
    [waiting] = means_waiting(world.means["m-up"])
    assert "the change in progress" in waiting.detail
    world.apply(rules.approve(world, "m-up", TODAY))                                   # processed: nothing else known
    assert world.means["m-up"].pending is None and world.means["m-up"].level is Level.EH3
