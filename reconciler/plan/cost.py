"""Tariffs (RULES.md, "Costs": example tariffs printed in the manual; no rights can be derived) and the
cost of a plan's changes. Override with a tariff file of the same keys."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from reconciler.config.models import MeansType, SecondFactorType, Subscription
from reconciler.domain.levels import Level


def money(amount: float | None) -> str:
    """EUR with cents, or what RULES.md says when the manual prints no amount (a tariff left unset)."""
    return "costs money, amount not printed" if amount is None else f"EUR {amount:.2f}"


@dataclass(frozen=True)
class Tariffs:
    """Prices in EUR. `means` is per level and subscription: (first year, three years)."""

    means: Mapping[str, tuple[float, float]] = field(default_factory=lambda: {
        "EH2": (13.00, 35.10), "EH2+": (16.00, 43.20), "EH3": (41.00, 89.85), "EH4": (60.00, 162.00),
        "belastingdienst": (25.00, 67.50)})
    link: tuple[float, float] = (21.00, 58.95)          # an extra KvK link, 1 year / 3 years
    otp_device: float = 40.00                           # once
    intermediary_yearly: float = 19.95                  # a new intermediary for chain authorisations
    activation_letter: float | None = None              # "costs money (amount not printed)"

    def means_cost(self, level: Level, type_: MeansType, subscription: Subscription) -> tuple[float, float]:
        """(one-off, yearly) for a new means; a 3-year subscription is shown as its yearly share."""
        key = "belastingdienst" if type_ is MeansType.BELASTINGDIENST else level.value
        one, three = self.means.get(key, (0.0, 0.0))
        return (0.0, one) if subscription is Subscription.ONE_YEAR else (0.0, round(three / 3, 2))

    def second_factor_cost(self, factor: SecondFactorType | None) -> float:
        return self.otp_device if factor is SecondFactorType.OTP else 0.0

    def link_cost(self, subscription: Subscription) -> float:
        return self.link[0] if subscription is Subscription.ONE_YEAR else round(self.link[1] / 3, 2)


DEFAULT_TARIFFS = Tariffs()


class TariffError(ValueError):
    """A tariff file that cannot be used; the message names the file and the key."""


def load_tariffs(path: Path) -> Tariffs:
    """A YAML file overriding any of: `means: {EH3: [41.00, 89.85], ...}`, `link: [21.00, 58.95]`,
    `otp_device: 40.00`, `intermediary_yearly: 19.95` (first year, three years), `activation_letter: 12.50` (a new
    activation letter after a lapsed activation; the manual prints no amount)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise TariffError(f"{path}: cannot read the tariff file ({exc})") from None
    except ValueError:  # an integer of more than 4,300 digits, which Python refuses to convert
        raise TariffError(f"{path}: a number in the tariff file is too long; write prices like 41.00") from None
    allowed = {"means", "link", "otp_device", "intermediary_yearly", "activation_letter"}
    if not isinstance(data, dict) or set(data) - allowed:
        raise TariffError(f"{path}: a tariff file is a mapping of {', '.join(sorted(allowed))}")
    values: dict[str, Any] = {}
    try:
        if "means" in data:
            values["means"] = {**DEFAULT_TARIFFS.means, **{str(k): (float(v[0]), float(v[1]))
                                                            for k, v in dict(data["means"]).items()}}
        if "link" in data:
            values["link"] = (float(data["link"][0]), float(data["link"][1]))
        for key in ("otp_device", "intermediary_yearly", "activation_letter"):
            if key in data:
                values[key] = float(data[key])
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise TariffError(f"{path}: prices are numbers, pairs as [first year, three years] ({exc})") from None
    return replace(DEFAULT_TARIFFS, **values)
