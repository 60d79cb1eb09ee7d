"""Mobile numbers as the config writes them (E.164, `+31612345678`) from the ways people and spreadsheets
write them (`06 12345678`, `SMS | 06-1234 5678`, `0031 6 ...`, `+31 (0)6 ...`, or Excel's 612345678 after it
dropped the leading zero of a number it took for a number)."""

from __future__ import annotations

import re

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SEPARATORS = re.compile(r"[\s\-./|()]+")


def to_e164(text: str) -> str | None:
    """The number in E.164 form, or None when `text` is not recognisably a phone number. Numbers without a
    country code are Dutch (the Beheermodule is)."""
    raw = text.strip().replace("(0)", "")
    digits = _SEPARATORS.sub("", raw)
    if digits.startswith("+"):
        candidate = digits
    elif digits.startswith("00"):
        candidate = "+" + digits[2:]
    elif digits.startswith("0") and len(digits) == 10:
        candidate = "+31" + digits[1:]
    elif digits.startswith("31") and len(digits) == 11:
        candidate = "+" + digits
    elif digits.startswith("6") and len(digits) == 9:         # 06... with the zero lost in a spreadsheet
        candidate = "+31" + digits
    else:
        return None
    return candidate if E164.match(candidate) else None
