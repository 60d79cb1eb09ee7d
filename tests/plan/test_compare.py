"""--compare-to: each change is introduced (by the config change), drift (by hand) or expiry (by time)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from reconciler.plan.compare import tag_origins
from reconciler.plan.model import Origin
from reconciler.plan.planner import PlanInput, make_plan

from .conftest import KVK, TODAY, Backend, config

BODY = """\
users:
  - email: admin@acme.nl
    name: Admin
    role: beheerder
    level: EH3
    second_factor: {type: otp}
    authorisations:
      - {service: rvo/tenderned, until: rolling}
      - {service: uwv/werkgeversportaal, until: 2028-01-01}
"""


def test_origins(tmp_path: Path, backend: Backend) -> None:
    admin = backend.means("admin@acme.nl", "beheerder")
    backend.auth(admin, "rvo/tenderned", TODAY + dt.timedelta(days=10))        # rolling, due for renewal
    backend.auth(admin, "uwv/werkgeversportaal", dt.date(2027, 1, 1))           # changed by hand: base wants 2028
    base = config(tmp_path, BODY, name="base.yaml")
    head = config(tmp_path, BODY + "  - {email: new@acme.nl, name: New, role: gebruiker, level: EH2}\n")
    data = PlanInput([head], backend.world, TODAY, {KVK: admin}, {KVK: 1})
    plan = make_plan(data)
    tag_origins(plan, make_plan(PlanInput([base], backend.world, TODAY, {KVK: admin}, {KVK: 1})), "base.yaml")
    origins = {(c.action.value, c.params.get("service_keys", [c.target])[0]): c.origin for c in plan.changes}
    assert origins == {("request_means", "new@acme.nl"): Origin.INTRODUCED,
                       ("set_end_date", "rvo/tenderned"): Origin.EXPIRY,
                       ("set_end_date", "uwv/werkgeversportaal"): Origin.DRIFT}
    assert plan.compared_to == "base.yaml"
