"""The event trail of a hostile backend: its events' times and ids are its own text, and comparing two events
(which is the latest cause of a drift item) must not fail on them (drift stopped with an internal error)."""

from __future__ import annotations

import pytest

from reconciler.backend.types import RemoteEvent
from reconciler.domain.catalogue import Catalogue
from reconciler.domain.state import World
from reconciler.drift.trail import Match, Trail


def event(event_id: str, at: str, target: str) -> RemoteEvent:
    return RemoteEvent.parse({"id": event_id, "at": at, "actor": "supplier", "action": "change_role",
                              "target": target})


@pytest.mark.parametrize(("first", "second", "latest"), [
    (("1", "2026-01-01T10:00:00"), ("2", "2026-01-01T09:00:00+00:00"), "1"),     # naive against aware
    (("1", "2026-01-01T10:00:00+00:00"), ("x", "2026-01-01T10:00:00+00:00"), "x"),  # int against str
    (("\u00b2", "2026-01-01T10:00:00+00:00"), ("7", "2026-01-01T10:00:00+00:00"), "\u00b2"),  # isdigit, not int
    (("9" * 5000, "2026-01-01T10:00:00+00:00"), ("7", "2026-01-01T10:00:00+00:00"), "9" * 5000),
])
def test_two_events_of_any_time_and_id_are_ordered(first: tuple[str, str], second: tuple[str, str],
                                                   latest: str) -> None:
    """One event names the means, the other its e-mail address: the latest of the two is the attribution."""
    trail = Trail.of([event(*first, target="m1"), event(*second, target="a@acme.nl")], World(Catalogue()))
    assert trail.attribute(Match("change_role", means_id="m1", email="a@acme.nl")).by == "the supplier"
    assert trail._latest(("m1", "a@acme.nl"), frozenset({"change_role"})).id == latest
