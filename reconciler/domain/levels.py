"""Assurance levels (betrouwbaarheidsniveaus) and their order: EH1 < EH2 < EH2+ < EH3 < EH4."""

from __future__ import annotations

from enum import Enum
from functools import total_ordering


@total_ordering
class Level(str, Enum):
    """An eHerkenning assurance level; compares by strength, serialises as its name."""

    EH1 = "EH1"
    EH2 = "EH2"
    EH2PLUS = "EH2+"
    EH3 = "EH3"
    EH4 = "EH4"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank < other.rank

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: str) -> "Level":
        """Accept `EH3`, `eh3`, `3`, `2+` (the Beheermodule's own spelling) and return the level."""
        raw = text.strip().upper().replace(" ", "")
        if not raw.startswith("EH"):
            raw = "EH" + raw
        try:
            return cls(raw)
        except ValueError:
            allowed = ", ".join(level.value for level in cls)
            raise ValueError(f"unknown level {text!r}; allowed: {allowed}") from None


_RANK = {Level.EH1: 1, Level.EH2: 2, Level.EH2PLUS: 3, Level.EH3: 4, Level.EH4: 5}

#: Levels a means can have (EH1 is a service level only).
MEANS_LEVELS: tuple[Level, ...] = (Level.EH2, Level.EH2PLUS, Level.EH3, Level.EH4)

#: eToegang assurance-class URNs, as used in service catalogues (`saml:AuthnContextClassRef`).
LOA_URN_PREFIX = "urn:etoegang:core:assurance-class:"
_LOA_SUFFIX = {
    "loa1": Level.EH1,
    "loa2": Level.EH2,
    "loa2plus": Level.EH2PLUS,
    "loa3": Level.EH3,
    "loa4": Level.EH4,
}


def level_from_loa_urn(urn: str) -> Level:
    """Map `urn:etoegang:core:assurance-class:loa2plus` to EH2+; raises ValueError on anything else."""
    text = urn.strip()
    if text.startswith(LOA_URN_PREFIX) and text[len(LOA_URN_PREFIX):] in _LOA_SUFFIX:
        return _LOA_SUFFIX[text[len(LOA_URN_PREFIX):]]
    raise ValueError(f"unknown assurance class {urn!r}; allowed: "
                     + ", ".join(LOA_URN_PREFIX + s for s in _LOA_SUFFIX))
