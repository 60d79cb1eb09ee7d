"""The service catalogue: which services exist, their eToegang UUIDs and minimum levels (R8, R13)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Iterable, Iterator

import yaml

from reconciler.domain.levels import Level

@dataclass(frozen=True, slots=True)
class Service:
    """One service a user or an intermediary can be authorised for."""

    key: str
    uuid: str
    provider: str
    name: str
    level: Level
    belastingdienst: bool = False
    general: bool = False
    example: bool = False

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "uuid": self.uuid, "provider": self.provider,
                                "name": self.name, "level": self.level.value}
        for flag in ("belastingdienst", "general", "example"):
            if getattr(self, flag):
                data[flag] = True
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "Service":
        return cls(key=data["key"], uuid=str(data["uuid"]).lower(), provider=data["provider"], name=data["name"],
                   level=Level(data["level"]), belastingdienst=bool(data.get("belastingdienst", False)),
                   general=bool(data.get("general", False)), example=bool(data.get("example", False)))


class Catalogue:
    """Services by key; immutable, cheap to extend with a file's own services."""

    def __init__(self, services: Iterable[Service] = ()) -> None:
        self._by_key: dict[str, Service] = {}
        for service in services:
            self._by_key[service.key] = service

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __iter__(self) -> Iterator[Service]:
        return iter(sorted(self._by_key.values(), key=lambda s: s.key))

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: str) -> Service | None:
        return self._by_key.get(key)

    def __getitem__(self, key: str) -> Service:
        return self._by_key[key]

    def by_uuid(self, uuid: str) -> Service | None:
        wanted = uuid.lower()
        return next((s for s in self._by_key.values() if s.uuid == wanted), None)

    def suggest(self, key: str) -> str | None:
        """The closest known key, for "did you mean"."""
        close = difflib.get_close_matches(key, list(self._by_key), n=1, cutoff=0.6)
        return close[0] if close else None

    def extended(self, services: Iterable[Service]) -> "Catalogue":
        return Catalogue([*self._by_key.values(), *services])

    def to_data(self) -> dict[str, Any]:
        return {"services": [s.to_data() for s in self]}


@cache
def bundled_catalogue() -> Catalogue:
    """The catalogue shipped with the package (`reconciler/data/catalogue.yaml`)."""
    text = resources.files("reconciler").joinpath("data", "catalogue.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    return Catalogue(Service.from_data(item) for item in data["services"])


def dump_catalogue(services: Iterable[Service], header: str = "") -> str:
    """A catalogue file in the format configs name with `catalogue:`."""
    body = yaml.safe_dump({"services": [s.to_data() for s in services]}, sort_keys=False, allow_unicode=True)
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    return ("\n".join(lines) + "\n" if lines else "") + body
