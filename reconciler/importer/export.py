"""The Beheermodule's download of the users overview (manual 2.1: "ID, Naam, E-mailadres, Rol, Status,
Activatie einddatum, Niveau en eventueel een tweede factor OTP- of SMS nummer") as an organisation file.

Headers are matched case-insensitively in any order (Dutch or English, extra columns ignored); values are
read the way the Beheermodule and people write them (`Beheerder`, `Wachten op activatie`, `2+`, `eH3`,
`SMS | 06 12345678`, `OTP 5455...`, `authenticator app`). Every bad cell is reported with the file, the row
and the column, all at once.

The export lists people only. What it lacks is left out and said in comments: authorisations and chain
authorisations, subscriptions, the means type (an optional `Type` column is read when present), and mobile
numbers when it shows none. Levels that need a second factor (R19) and have no usable one get the
placeholder `otp` with a comment and a warning: the file validates, and planning it against the backend
reports a manual step instead of changing anyone's second factor.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, TypeVar

from reconciler.config.models import MeansType, Role, SecondFactorType
from reconciler.domain import rules
from reconciler.domain.levels import MEANS_LEVELS, Level
from reconciler.domain.state import Status
from reconciler.importer.model import ImportedOrg, ImportedUser, ImportFailure, LeftOut
from reconciler.importer.phones import to_e164
from reconciler.importer.table import Cell, Row, Table, column_letter

#: Column -> the headers it is known by (compared lower-case, spaces collapsed, `_` as a space).
COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("id",),
    "name": ("naam", "name", "volledige naam", "full name"),
    "email": ("e-mailadres", "emailadres", "e-mail adres", "e-mail", "email", "e-mail address", "email address"),
    "role": ("rol", "role"),
    "status": ("status",),
    "activation_end": ("activatie einddatum", "activatie-einddatum", "einddatum activatie", "activeren mogelijk tot",
                       "activation end date", "activation deadline"),
    "level": ("niveau", "betrouwbaarheidsniveau", "eh niveau", "eherkenning niveau", "level"),
    "factor": ("tweede factor", "2e factor", "tweede factor type", "second factor", "2fa"),
    "type": ("type", "soort middel"),
}
REQUIRED = ("name", "email", "role", "level")
#: How a missing required column is named in the error.
_SHOWN = {"name": "Naam", "email": "E-mailadres", "role": "Rol", "level": "Niveau"}

_T = TypeVar("_T")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE = re.compile(r"(\d{1,4})[-/.](\d{1,2})[-/.](\d{1,4})")


@dataclass
class _Person:
    row: int
    email: str
    name: str
    role: Role
    level: Level
    status: Status | None
    deadline: dt.date | None
    factor: SecondFactorType | None
    phone: str | None
    factor_text: str
    type: MeansType | None
    in_progress: bool = False           # status "Mutatie in behandeling": a level change or link being processed


@dataclass
class _Errors:
    source: str
    items: list[str] = field(default_factory=list)

    def add(self, row: int, column: str, message: str) -> None:
        self.items.append(f"{self.source}: row {row}, column {column}: {message}")


def _header_key(text: str) -> str:
    return " ".join(text.replace("\ufeff", "").replace("_", " ").strip().strip('"').lower().split())


def map_columns(table: Table) -> dict[str, int]:
    """Column -> its index in the table; `ImportFailure` naming what is missing or doubled."""
    found: dict[str, int] = {}
    doubled: list[str] = []
    for index, header in enumerate(table.header):
        key = _header_key(header)
        column = next((c for c, names in COLUMNS.items() if key in names), None)
        if column is None and key.startswith("tweede factor"):      # "Tweede factor OTP- of SMS nummer"
            column = "factor"
        if column is None:
            continue                                                 # extra columns are ignored
        if column in found:
            doubled.append(f"{header!r} ({column_letter(found[column])} and {column_letter(index)})")
        found.setdefault(column, index)
    missing = [_SHOWN[c] for c in REQUIRED if c not in found]
    problems = []
    if missing:
        problems.append(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if doubled:
        problems.append("the same column twice: " + ", ".join(doubled))
    if problems:
        shown = ", ".join(repr(h) for h in table.header if h) or "none"
        raise ImportFailure(f"{table.source}: row {table.header_row} (the header): {'; '.join(problems)}. Found: "
                            f"{shown}; expected the Beheermodule's export (ID, Naam, E-mailadres, Rol, Status, "
                            "Activatie einddatum, Niveau, Tweede factor; any order, other columns ignored)")
    return found


# --------------------------------------------------------------------------------------------- values
class BadValue(ValueError):
    """A cell that cannot be read; the message says what is allowed."""


def parse_role(cell: Cell) -> Role:
    text = str(cell).strip().lower()
    if text in ("beheerder", "admin", "administrator", "beheer"):
        return Role.BEHEERDER
    if text in ("gebruiker", "user"):
        return Role.GEBRUIKER
    raise BadValue(f"{_shown(cell)} is not a role; allowed: Beheerder, Gebruiker")


def parse_level(cell: Cell) -> Level:
    """`2`, `2+`, `3`, `EH2+`, `eH3`, `EH 2+`, `eHerkenning niveau 3`, `Niveau 2 plus`, or a number cell."""
    text = str(cell).strip().lower()
    for prefix in ("eherkenning", "niveau", "level"):
        text = text.replace(prefix, " ")
    text = "".join(text.split()).replace("plus", "+")
    if text.startswith("eh"):
        text = text[2:]
    if text.endswith(".0"):                                  # a number cell read as 3.0
        text = text[:-2]
    try:
        level = Level("EH" + text.upper())
    except ValueError:
        raise BadValue(f"{_shown(cell)} is not a level; allowed: 2, 2+, 3, 4 (or EH2, EH2+, EH3, EH4)") from None
    if level not in MEANS_LEVELS:
        raise BadValue(f"{_shown(cell)}: a means is EH2, EH2+, EH3 or EH4, not {level}")
    return level


#: The status of an active person whose mutation (a level change, a link) the supplier is processing (R6): "the
#: user's status changes, showing that the mutation is being processed" (manual 3.2). Which mutation, it does not say.
_IN_PROGRESS = ("mutatie in behandeling", "wijziging in behandeling", "mutation in progress", "change in progress")

#: Most specific first; each prefix must end at a word boundary ("activeren" is not "active").
_STATUSES: tuple[tuple[tuple[str, ...], Status], ...] = (
    (_IN_PROGRESS, Status.ACTIEF),
    (("wachten op goedkeuring", "awaiting approval", "waiting for approval", "in behandeling"),
     Status.WACHTEN_OP_GOEDKEURING),
    (("wachten op activatie", "activeren mogelijk", "awaiting activation", "waiting for activation"),
     Status.WACHTEN_OP_ACTIVATIE),
    (("activatie verlopen", "activation expired"), Status.ACTIVATIE_VERLOPEN),
    (("actief", "active", "geactiveerd"), Status.ACTIEF),
)


def _status_text(cell: Cell) -> str:
    return " ".join(str(cell).replace("_", " ").lower().split())


#: Each status's prefixes as one pattern (a prefix ends at a word boundary), compiled once; and whether it is
#: the status of a mutation in progress.
_STATUS_PATTERNS = tuple((re.compile("|".join(re.escape(prefix) for prefix in prefixes) + r"\b"), status,
                          prefixes is _IN_PROGRESS) for prefixes, status in _STATUSES)


@lru_cache(maxsize=1024)
def _status_of(text: str) -> tuple[Status, dt.date | None, bool] | None:
    """The status, a date written in it and whether a mutation is in progress; None when it is no status. A
    download repeats a few statuses 10,000 times: each text is judged once."""
    for pattern, status, in_progress in _STATUS_PATTERNS:
        if pattern.match(text):
            match = _DATE.search(text)
            return status, (_date_of(match.group(0)) if match else None), in_progress
    return None


def read_status(cell: Cell) -> tuple[Status | None, dt.date | None, bool]:
    """`parse_status` and `in_progress` of a cell in one reading: (None, None, False) when empty; `BadValue` when
    it is no status."""
    text = _status_text(cell)
    if not text:
        return None, None, False
    found = _status_of(text)
    if found is None:
        raise BadValue(f"{_shown(cell)} is not a status; allowed: Actief, Wachten op goedkeuring, Wachten op "
                       "activatie, Activatie verlopen, Mutatie in behandeling")
    return found


def parse_status(cell: Cell) -> tuple[Status | None, dt.date | None]:
    """The status and a date written in it (`Activeren mogelijk tot 21-07-2021`); (None, None) when empty."""
    status, day, _ = read_status(cell)
    return status, day


def in_progress(cell: Cell) -> bool:
    """Whether a status says a mutation is being processed (R6; `parse_status` reads it as active)."""
    found = _status_of(_status_text(cell))
    return found is not None and found[2]


def parse_date(cell: Cell) -> dt.date | None:
    """`21-07-2021`, `21/07/2021`, `2021-07-21`, `21.07.2021` or a date cell; None when empty."""
    if isinstance(cell, dt.date):
        return cell
    text = str(cell).strip()
    if not text or text == "-":
        return None
    match = _DATE.fullmatch(text.split()[0])
    day = _date_of(match.group(0)) if match else None
    if day is None:
        raise BadValue(f"{_shown(cell)} is not a date; write DD-MM-YYYY (as the Beheermodule does) or YYYY-MM-DD")
    return day


def _date_of(text: str) -> dt.date | None:
    parts = [int(p) for p in re.split(r"[-/.]", text)]
    year, month, day = (parts[0], parts[1], parts[2]) if parts[0] > 31 else (parts[2], parts[1], parts[0])
    if year < 100:
        year += 2000
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


_NO_FACTOR = ("", "-", "geen", "none", "nee", "no", "n/a", "nvt", "n.v.t.")
_OTP_WORDS = ("otp", "otp device", "otp-device", "token")
_APP_WORDS = ("authenticator app", "authenticator", "app", "totp", "authenticator-app")


def parse_factor(cell: Cell) -> tuple[SecondFactorType | None, str | None, str]:
    """(type, E.164 phone or None, how the export wrote it). `SMS 0641556520` and `SMS | 06 12345678` carry the
    number (manual 3.5); a bare mobile number means SMS; an authenticator app is a one-time-password generator."""
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        cell = str(int(cell))                       # Excel keeps a number cell: 612345678 (the 0 is lost)
    original = str(cell).strip()
    text = " ".join(original.lower().split())
    if text in _NO_FACTOR:
        return None, None, original
    if text.startswith("sms"):
        rest = text[3:].strip(" :|-")
        if not rest:
            return SecondFactorType.SMS, None, original
        phone = to_e164(rest)
        if phone is None:
            raise BadValue(f"{_shown(cell)}: {rest!r} is not a mobile number (write 06 12345678 or +31612345678)")
        return SecondFactorType.SMS, phone, original
    if text in _APP_WORDS or text.startswith(("otp", "authenticator")):
        return SecondFactorType.OTP, None, original
    phone = to_e164(text)
    if phone is not None and (text.startswith(("+", "06", "00", "6")) and phone.startswith("+")):
        return SecondFactorType.SMS, phone, original
    raise BadValue(f"{_shown(cell)} is not a second factor; allowed: sms (with or without the number), otp, "
                   "authenticator app, none")


def parse_type(cell: Cell) -> MeansType | None:
    text = str(cell).strip().lower()
    if not text:
        return None
    if text in ("regulier", "regular", "eherkenning"):
        return MeansType.REGULIER
    if text.startswith("belasting") or text in ("tax", "eh3 belastingdienst"):
        return MeansType.BELASTINGDIENST
    raise BadValue(f"{_shown(cell)} is not a means type; allowed: Regulier, Belastingdienst")


def _shown(cell: Cell) -> str:
    return repr(str(cell).strip())


# ------------------------------------------------------------------------------------------------- rows
def read_people(table: Table) -> list[_Person]:
    """Every row as a person; `ImportFailure` listing every bad cell (file, row, column) when any is."""
    columns = map_columns(table)
    errors = _Errors(table.source)
    people: list[_Person] = []
    first_row: dict[str, int] = {}
    for row in table.rows:
        person = _person(table, row, columns, errors)
        if person is None:
            continue
        key = person.email.lower()
        if key in first_row:
            errors.add(row.number, _column(table, columns, "email"),
                       f"{person.email} is listed twice (first in row {first_row[key]}); one person holds one means")
            continue
        first_row[key] = row.number
        people.append(person)
    if errors.items:
        count = len(errors.items)
        raise ImportFailure("\n".join(errors.items) + f"\n{table.source}: {count} bad value{'s' * (count > 1)}; "
                            "nothing was written")
    return people


def _column(table: Table, columns: dict[str, int], column: str) -> str:
    index = columns[column]
    return f"{table.header[index]!r} ({column_letter(index)})"


def _person(table: Table, row: Row, columns: dict[str, int], errors: _Errors) -> _Person | None:
    """One row, or None (with its errors recorded) when a cell is bad."""
    def cell(column: str) -> Cell:
        index = columns.get(column)
        if index is None or index >= len(row.cells):
            return ""
        value = row.cells[index]
        return value.strip() if isinstance(value, str) else value

    def bad(column: str, message: str) -> None:
        errors.add(row.number, _column(table, columns, column), message)

    def read(column: str, parse: Callable[[Cell], _T], empty: _T) -> _T:
        if column not in columns:
            return empty
        try:
            return parse(cell(column))
        except BadValue as exc:
            bad(column, str(exc))
            return empty

    before = len(errors.items)
    email = str(cell("email"))
    if not email:
        bad("email", "empty; every person needs an e-mail address")
    elif not _EMAIL.match(email) or len(email) > 254:
        bad("email", f"{email!r} is not an e-mail address")
    name = " ".join(str(cell("name")).split())
    if not name:
        bad("name", "empty; every person needs a name")
    elif len(name) > 200 or not all(c.isprintable() for c in name):
        bad("name", f"{name[:40]!r} is not a usable name (at most 200 printable characters)")
    role = read("role", parse_role, None)
    level = read("level", parse_level, None)
    no_status: tuple[Status | None, dt.date | None, bool] = (None, None, False)
    no_factor: tuple[SecondFactorType | None, str | None, str] = (None, None, "")
    status, in_status, changing = read("status", read_status, no_status)
    deadline = read("activation_end", parse_date, None)
    factor, phone, factor_text = read("factor", parse_factor, no_factor)
    means_type = read("type", parse_type, None)
    if role is Role.BEHEERDER and level is not None and not rules.admin_level_ok(level):
        bad("level", f"a beheerder needs level {rules.ADMIN_MIN_LEVEL} or higher, not {level} (R2)")
    if means_type is MeansType.BELASTINGDIENST and (level != rules.TAX_MEANS_LEVEL or role is Role.BEHEERDER):
        bad("type", "a belastingdienst means is EH3 and never a beheerder (R13)")
    if len(errors.items) > before or role is None or level is None:
        return None
    return _Person(row.number, email, name, role, level, status, deadline or in_status, factor, phone, factor_text,
                   means_type, changing)


# ------------------------------------------------------------------------------------------------ build
def build_from_export(table: Table, kvk: str, name: str | None, when: dt.datetime) -> ImportedOrg:
    """The organisation file for an export; `ImportFailure` (every bad cell) when a value cannot be read."""
    people = read_people(table)
    org = ImportedOrg(kvk=kvk, name=name or f"KvK {kvk}")
    if not name:
        org.name_note = "the export does not name the organisation: write its name here"
    has_type = any(p.type is not None for p in people)
    org.header = _header(table, kvk, len(people), when, has_type)
    placeholders: list[str] = []
    tax = [p for p in people if p.type is MeansType.BELASTINGDIENST]
    if len(tax) > 1:
        raise ImportFailure(f"{table.source}: rows {', '.join(str(p.row) for p in tax)}: an organisation has at most "
                            "one belastingdienst means (R13)")
    for person in people:
        user = _user(person, placeholders)
        if person.status is Status.ACTIVATIE_VERLOPEN:
            deadline = f" on {person.deadline}" if person.deadline else ""
            org.users_left_out.append(LeftOut([
                f"Left out: {person.email} (row {person.row}, {user.role.value}, {user.level}). Its activation lapsed"
                f"{deadline} (R5). Declared, the plan sends a new activation letter at once (it costs money): "
                "uncomment it if that is wanted. Undeclared, `policy.prune: false` leaves it alone."], user=user))
        else:
            org.users.append(user)
    org.users_left_out.sort(key=lambda item: item.user.sort_key() if item.user else (2, ""))
    if placeholders:
        org.warnings.append(f"{table.source}: no usable second factor for {', '.join(placeholders)}: their level needs "
                            "one (R19), so `otp` is written as a placeholder; check them (see the comments)")
    if not any(u.is_admin for u in org.users):
        org.warnings.append(f"{table.source}: the export has no (active or pending) beheerder; the file does not "
                            "validate until one is declared (R1)")
        org.header.append("")
        org.header.append("NOTE: the export lists no beheerder; every organisation needs one (R1): declare it.")
    return org


def _header(table: Table, kvk: str, people: int, when: dt.datetime, has_type: bool) -> list[str]:
    stamp = when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lacks = ["authorisations (machtigingen) and chain authorisations: declare them, or import from the backend "
             f"(`reconciler import --kvk {kvk}`), which has them",
             "subscriptions: none is written, so the default 1y applies (the plan warns where the backend has 3y)"]
    if not has_type:
        lacks.append("the means type: a belastingdienst means looks like any EH3 gebruiker; add `type: belastingdienst` "
                     "to it, or the plan would change its type (a new subscription, R13)")
    lacks.append("mobile numbers where it shows only `sms`: see the comments at those people")
    return [
        f"KvK {kvk}: imported by `reconciler import` at {stamp} (UTC)",
        f"from the Beheermodule's export {table.source} ({table.kind}, {people} people).",
        "",
        "The export lists people only (name, e-mail, role, status, level, second factor). Not in it, so not here:",
        *[f"  - {item}" for item in lacks],
        "Review it against the Beheermodule before you plan or apply it.",
    ]


def _user(person: _Person, placeholders: list[str]) -> ImportedUser:
    user = ImportedUser(email=person.email, name=person.name, role=person.role, level=person.level,
                        type=person.type or MeansType.REGULIER)
    notes = user.notes
    if person.status is Status.WACHTEN_OP_GOEDKEURING:
        notes.append("Transient: requested, it awaits the supplier's approval, then the holder's activation (R5).")
    elif person.status is Status.WACHTEN_OP_ACTIVATIE:
        by = f" by {person.deadline}" if person.deadline else ""
        notes.append(f"Transient: approved, it awaits activation by the holder{by} (R5).")
    if person.in_progress:
        notes.append("Transient: a change (a level change or a link) awaits the supplier (R6); the export does not say "
                     "which. Check it in the Beheermodule: declared at another level, the plan waits for it.")
    needs = rules.needs_second_factor(person.level)
    shown = f" (the export says {person.factor_text!r})" if person.factor_text else ""
    if person.factor is SecondFactorType.SMS and person.phone:
        user.second_factor, user.phone = SecondFactorType.SMS, person.phone
    elif person.factor is SecondFactorType.SMS:
        if needs:
            user.second_factor = SecondFactorType.OTP
            placeholders.append(person.email)
            notes.append(f"Second factor: sms{shown}, but the export has no mobile number and the config needs one. "
                         "`otp` is a placeholder so the file validates (R19): write {type: sms, phone: \"+316...\"}.")
        else:
            notes.append(f"Second factor: sms{shown}, without a mobile number in the export; not declared ("
                         f"{person.level} needs none).")
    elif person.factor is SecondFactorType.OTP:
        user.second_factor = SecondFactorType.OTP
        if person.factor_text.lower().strip().startswith(("authenticator", "app", "totp")):
            notes.append(f"Second factor{shown}: a one-time-password generator, written as `otp`.")
    elif needs:
        user.second_factor = SecondFactorType.OTP
        placeholders.append(person.email)
        notes.append(f"{person.level} needs a second factor (R19) and the export shows none{shown}: `otp` is a "
                     "placeholder so the file validates; check it.")
    return user


__all__ = ["BadValue", "build_from_export", "map_columns", "parse_date", "parse_factor", "parse_level",
           "in_progress", "parse_role", "parse_status", "read_people"]
