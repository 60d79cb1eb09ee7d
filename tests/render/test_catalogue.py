"""reconciler.render.catalogue: the service catalogue as `reconciler catalogue list` prints it."""

from __future__ import annotations

import json

from reconciler.domain.catalogue import bundled_catalogue
from reconciler.render.catalogue import render_services


def test_one_aligned_line_per_service_and_a_count() -> None:
    services = bundled_catalogue()
    lines = render_services(services, "text").splitlines()
    assert lines[-1] == f"{len(services)} services" and len(lines) == len(services) + 1
    width = max(len(s.key) for s in services)
    assert all(line[width:width + 2] == "  " for line in lines[:-1])         # the level column lines up
    assert any(line.endswith(" [Belastingdienst]") for line in lines)


def test_json_lists_every_service() -> None:
    services = bundled_catalogue()
    assert json.loads(render_services(services, "json")) == [s.to_data() for s in services]
