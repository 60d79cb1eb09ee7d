"""The service catalogue as `reconciler catalogue list` shows it: one aligned line per service for people, a
JSON list for scripts. Names and providers go through `safe.terminal`."""

from __future__ import annotations

from reconciler.domain.catalogue import Catalogue
from reconciler.render.safe import json_text, terminal


def render_services(services: Catalogue, fmt: str) -> str:
    """Key, minimum level, provider and name per service (the Belastingdienst's marked), and a count; or JSON."""
    if fmt == "json":
        return json_text([s.to_data() for s in services], indent=2) + "\n"
    width = max((len(s.key) for s in services), default=0)
    lines = [f"{s.key:<{width}}  {s.level.value:<4}  {terminal(s.provider)}: {terminal(s.name)}"
             + (" [Belastingdienst]" if s.belastingdienst else "") for s in services]
    return "".join(f"{line}\n" for line in lines) + f"{len(services)} services\n"
