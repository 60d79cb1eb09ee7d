"""Builders for planner tests: a config from YAML text, a World from a few lines."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from typing import Callable

import pytest

from reconciler.config.loader import load_paths
from reconciler.config.models import Role, SecondFactorType
from reconciler.domain.catalogue import bundled_catalogue
from reconciler.domain.levels import Level
from reconciler.domain.state import Chain, Means, Membership, OrgInfo, OrgState, Status, World
from reconciler.plan.desired import DesiredOrg, desired_org
from reconciler.plan.model import Plan
from reconciler.plan.planner import PlanInput, make_plan

TODAY = dt.date(2026, 11, 21)
KVK = "99966564"
CAT = bundled_catalogue()

HEADER = f"""\
version: 1
organisation: {{kvk: "{KVK}", name: Acme}}
"""


def uuid(key: str) -> str:
    return CAT[key].uuid


class Backend:
    """A World with one organisation, built by hand."""

    def __init__(self) -> None:
        self.world = World(CAT)
        self.world.orgs[KVK] = OrgState(OrgInfo(KVK, "Acme"), revision=7)

    def means(self, email: str, role: str = "gebruiker", level: str = "EH3", status: Status = Status.ACTIEF,
              kvk: str = KVK, **kw: object) -> str:
        mid = email.split("@")[0]
        lv = Level(level)
        factor = SecondFactorType.OTP if lv in (Level.EH2PLUS, Level.EH3, Level.EH4) else None
        existing = self.world.means.get(mid)
        if existing is None:
            self.world.means[mid] = Means(id=mid, email=email, name=mid, level=lv, second_factor=factor, status=status,
                                          contract_start=dt.date(2025, 1, 1), **kw)  # type: ignore[arg-type]
        if kvk not in self.world.orgs:
            self.world.orgs[kvk] = OrgState(OrgInfo(kvk, kvk), revision=1)
        self.world.orgs[kvk].members[mid] = Membership(Role(role))
        return mid

    def auth(self, mid: str, key: str, end: dt.date, kvk: str = KVK) -> None:
        self.world.orgs[kvk].authorisations.setdefault(mid, {})[uuid(key)] = end

    def chain(self, ikvk: str, keys: list[str], end: dt.date) -> None:
        self.world.orgs[KVK].chains[ikvk] = Chain.issued(ikvk, None, frozenset(uuid(k) for k in keys), end)


@pytest.fixture
def backend() -> Backend:
    return Backend()


def config(tmp_path: Path, body: str, name: str = "org.yaml", header: str = HEADER) -> DesiredOrg:
    path = tmp_path / name
    path.write_text(header + textwrap.dedent(body))
    result = load_paths([str(path)], TODAY)
    assert result.ok, [d.render() for d in result.errors]
    return desired_org(result.orgs[0])


PlanFn = Callable[..., Plan]


@pytest.fixture
def plan_for(tmp_path: Path, backend: Backend) -> PlanFn:
    def make(body: str, actor: str = "admin", today: dt.date = TODAY) -> Plan:
        desired = config(tmp_path, body)
        return make_plan(PlanInput(desired=[desired], actual=backend.world, today=today, actors={KVK: actor},
                                   revisions={KVK: 7}))
    return make
