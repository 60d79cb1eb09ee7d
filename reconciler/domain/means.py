"""What a means is, in the backend's own words: its role in an organisation, its type, its second factor and its
subscription. The domain's vocabulary: configs, the planner, the sandbox and the client all use these, and
nothing here depends on how a config is written."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING


class Role(str, Enum):
    BEHEERDER = "beheerder"
    GEBRUIKER = "gebruiker"


class MeansType(str, Enum):
    REGULIER = "regulier"
    BELASTINGDIENST = "belastingdienst"


class Subscription(str, Enum):
    ONE_YEAR = "1y"
    THREE_YEARS = "3y"


class SecondFactorType(str, Enum):
    SMS = "sms"
    OTP = "otp"


class ByEmail:
    """One person's: identified by the e-mail address, case-insensitively (one means per address, R15), in the
    config, in the backend's state and in an import alike."""

    __slots__ = ()
    if TYPE_CHECKING:
        email: str

    @property
    def key(self) -> str:
        return self.email.lower()
