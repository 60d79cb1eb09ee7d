"""The beheer backend's rules (../shared/domain/RULES.md), as code that validation, the planner and the
sandbox all call, so a rule is written once. Each constant or function names its rule id.
"""

from __future__ import annotations

import calendar
import datetime as dt

from reconciler.domain.levels import Level

#: R2: an admin's means is at least EH2+.
ADMIN_MIN_LEVEL = Level.EH2PLUS
#: R9: authorisations (and chain authorisations, R18) last at most this many years; new ones default to it.
MAX_YEARS = 5
#: R13: the tax means (type belastingdienst) exists at level EH3 only.
TAX_MEANS_LEVEL = Level.EH3
#: R19: levels whose means need a second factor (SMS or OTP).
SECOND_FACTOR_LEVELS = frozenset({Level.EH2PLUS, Level.EH3})
#: R5: days the holder has to activate an approved means.
ACTIVATION_DAYS = 30


def add_years(day: dt.date, years: int) -> dt.date:
    """The same calendar day `years` later; 29 February becomes 28 February in a common year."""
    year = day.year + years
    last = calendar.monthrange(year, day.month)[1]
    return day.replace(year=year, day=min(day.day, last))


def max_end_date(today: dt.date) -> dt.date:
    """R9: the latest end date an authorisation may have when set today."""
    return add_years(today, MAX_YEARS)


def earliest_end_date(today: dt.date) -> dt.date:
    """R9: an end date is tomorrow at the earliest; ending today is a revoke."""
    return today + dt.timedelta(days=1)


def level_covers(holder: Level, service: Level) -> bool:
    """R8: a holder may be authorised for a service only at or above its minimum level."""
    return holder >= service


def admin_level_ok(level: Level) -> bool:
    """R2."""
    return level >= ADMIN_MIN_LEVEL


def needs_second_factor(level: Level) -> bool:
    """R19."""
    return level in SECOND_FACTOR_LEVELS
