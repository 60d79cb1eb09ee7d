"""`--backend export:DIR`: the Beheermodule's downloads as a read-only backend (issue 14, docs/exports.md).

DIR holds a folder per organisation, named by its KvK number, with the downloads of its overviews (users,
authorisations, issued chain authorisations) as CSV or XLSX under any names: a file's kind is recognised by
its headers. What the downloads cannot show is *unknown*, never *absent*: a means' type and subscription term
are taken as the config declares them (so nothing is planned because a column is missing); a change waiting for
the supplier shows only as the status "Mutatie in behandeling" (which change, it does not say: the planner holds
that means' changes back, R6); scheduled ends are not seen; each organisation's note says so once. One person in several exported
organisations (the same e-mail) is one means, as on the API.
"""

from __future__ import annotations

import datetime as dt
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import AsyncIterator, Mapping, Sequence

from reconciler.backend.read import ActualState
from reconciler.backend.session import Session
from reconciler.config.loaded import LoadedOrg
from reconciler.collector import gc_paused
from reconciler.domain.catalogue import Catalogue, Service
from reconciler.domain.means import MeansType, Role, Subscription
from reconciler.domain.state import Chain, Means, Membership, OrgInfo, OrgState, Pending, PendingKind, Status, World
from reconciler.importer.export import BadValue, map_columns, parse_date, read_people, _header_key
from reconciler.importer.model import ImportFailure
from reconciler.importer.table import Cell, Row, Table, column_letter, read_table
from reconciler.plan.planner import renames
from reconciler.render.safe import csv_text

#: What an export cannot show (docs/exports.md), said once per organisation.
BLIND_SPOTS = ("the downloads do not show a means' type or subscription term (the config's are taken), which change "
               "waits for the supplier (only that one does), scheduled ends, or organisations that were not exported: "
               "the plan cannot judge those")
#: A person whose status says a mutation is in progress ("Mutatie in behandeling", manual 3.2): which one, the
#: download does not say, so the planner holds every change of that means back until the supplier is done (R6).
_IN_PROGRESS = Pending(PendingKind.UNKNOWN)
_SUFFIXES = (".csv", ".xlsx", ".txt")

# headers that tell the kinds apart (compared as `_header_key` makes them: lower case, single spaces)
_SERVICE = ("dienst", "service")
_PROVIDER = ("dienstverlener", "provider", "aanbieder")
_END = ("einddatum", "geldig tot", "machtiging tot", "end date")
_INTERMEDIARY = ("kvk-nummer intermediair", "kvk intermediair", "kvk-nummer", "intermediair kvk", "kvk")
_INTERMEDIARY_NAME = ("naam intermediair", "bedrijfsnaam", "intermediair")
_EMAIL = ("e-mailadres", "email", "e-mail", "emailadres")
_ID = ("id",)


@dataclass
class _Org:
    """One organisation's downloads, as found in its folder."""

    kvk: str
    users: Table | None = None
    authorisations: Table | None = None
    chains: Table | None = None


@dataclass
class Downloads:
    """What `read_downloads` made: the backend's state as far as the files show it, and what to say."""

    actual: ActualState
    notes: list[str] = field(default_factory=list)


def _index(table: Table, names: tuple[str, ...]) -> int | None:
    """The first column whose header is one of `names`; asked once per row, so the answer is kept per header."""
    return _index_in(table.header, names)


@lru_cache(maxsize=256)
def _index_in(header: tuple[str, ...], names: tuple[str, ...]) -> int | None:
    keys = [_header_key(h) for h in header]
    return next((i for i, key in enumerate(keys) if key in names), None)


def _kind(table: Table) -> str | None:
    """users | authorisations | chains, by the headers; None for a file of another kind."""
    if _index(table, _INTERMEDIARY) is not None and _index(table, _SERVICE) is not None:
        return "chains"
    if _index(table, _SERVICE) is not None and _index(table, _END) is not None:
        return "authorisations"
    keys = {_header_key(h) for h in table.header}
    if keys & {"rol", "role"} and _index(table, _EMAIL) is not None:
        return "users"                                  # map_columns then says which column it misses
    return None


def _folder(root: Path, kvk: str) -> _Org:
    org = _Org(kvk)
    folder = root / kvk
    if not folder.is_dir():
        return org
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith((".", "~$")) or path.suffix.lower() not in _SUFFIXES:
            continue
        table = _unescaped(read_table(path))
        kind = _kind(table)
        if kind is None:
            shown = ", ".join(repr(h) for h in table.header if h) or "none"
            raise ImportFailure(f"{path}: row {table.header_row} (the header): not a download reconciler knows. "
                                f"Found: {shown}; expected the users overview (ID, Naam, E-mailadres, Rol, Status, "
                                "Activatie einddatum, Niveau, Tweede factor), the authorisations (ID, Naam, "
                                "E-mailadres, Dienst, Dienstverlener, Niveau dienst, Einddatum) or the issued chain "
                                "authorisations (KvK-nummer intermediair, Naam intermediair, Dienst, Dienstverlener, "
                                "Niveau dienst, Einddatum); see docs/exports.md")
        first = getattr(org, kind)
        if first is not None:
            if Path(first.source).stem == path.stem:       # one download in two formats (sandbox export's default)
                continue
            raise ImportFailure(f"{path}: a second {kind} file in {folder} (the first is {first.source}); keep "
                                "one download of each overview per folder")
        setattr(org, kind, table)
    return org


def _unescaped(table: Table) -> Table:
    """The cells as the backend has them: a text the download escaped against running as a formula (a `'` in
    front of a leading =, +, -, @, as `sandbox export` writes it, reconciler.render.safe.csv_text) is read
    without that `'`, so a name or an e-mail that starts so is the person's own, not another one."""
    def cell(value: Cell) -> Cell:
        return value[1:] if isinstance(value, str) and value.startswith("'") and csv_text(value[1:]) == value \
            else value

    rows: list[Row] = []
    for row in table.rows:                  # a row without a `'` is kept as it is: 100,000 rows go through here
        for value in row.cells:
            if isinstance(value, str) and value.startswith("'"):
                row = replace(row, cells=tuple(cell(c) for c in row.cells))
                break
        rows.append(row)
    return replace(table, rows=tuple(rows))


def _service(table: Table, row_number: int, cells: tuple[Cell, ...], catalogue: Catalogue,
             by_name: Mapping[tuple[str, str], Service]) -> Service:
    """The catalogue service a row names by provider and name (a UUID as the name, as the sandbox writes a
    service it does not list, is taken too)."""
    name_at, provider_at = _index(table, _SERVICE), _index(table, _PROVIDER)
    name = _cell(cells, name_at)
    provider = _cell(cells, provider_at)
    service = by_name.get((provider.lower(), name.lower())) or catalogue.by_uuid(name.lower())
    if service is None:
        column = column_letter(name_at) if name_at is not None else "?"
        raise ImportFailure(f"{table.source}: row {row_number}, column {column}: service {name!r} of {provider!r} "
                            "is not in the catalogue (docs/exports.md: a service is named by Dienstverlener and "
                            "Dienst as the catalogue has them)")
    return service


def _cell(cells: tuple[Cell, ...], index: int | None) -> str:
    if index is None or index >= len(cells):
        return ""
    value = cells[index]
    return value.strip() if isinstance(value, str) else str(value)


def _intermediary(table: Table, row_number: int, cells: tuple[Cell, ...], index: int | None) -> str:
    """The intermediary's KvK number: 8 digits as text. A number cell (XLSX) has lost its leading zeros, so it is
    padded; text is taken only as 8 digits, never padded or cut into another company's number."""
    value = cells[index] if index is not None and index < len(cells) else ""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10 ** 8:
        return f"{value:08d}"
    text = _cell(cells, index)
    if len(text) == 8 and text.isascii() and text.isdigit():
        return text
    column = column_letter(index) if index is not None else "?"
    shown = f"{text!r} is not a KvK number" if text else "empty"
    lost = " (a leading 0 lost in a spreadsheet? write it back)" if text.isascii() and text.isdigit() and \
        len(text) < 8 else ""
    raise ImportFailure(f"{table.source}: row {row_number}, column {column}: {shown}; the intermediary's KvK number "
                        f"has 8 digits{lost}")


def _date(table: Table, row_number: int, cells: tuple[Cell, ...]) -> dt.date:
    index = _index(table, _END)
    assert index is not None
    try:
        day = parse_date(cells[index] if index < len(cells) else "")
    except BadValue as exc:
        raise ImportFailure(f"{table.source}: row {row_number}, column {column_letter(index)}: {exc}") from None
    if day is None:
        raise ImportFailure(f"{table.source}: row {row_number}, column {column_letter(index)}: empty; every "
                            "authorisation has an end date (DD-MM-YYYY)")
    return day


def read_downloads(root: Path, kvks: Sequence[str], catalogue: Catalogue,
                   desired: Mapping[str, LoadedOrg] | None = None) -> Downloads:
    """The state the downloads of `kvks` show; an organisation without a folder is unknown to this backend (as
    one the token cannot read). `desired` (the config, when there is one) names the organisations and gives
    the type and subscription term the downloads do not show."""
    with gc_paused():           # a million cells read into rows: the cyclic GC ran over them again and again
        return _read_downloads(root, kvks, catalogue, desired)


def _read_downloads(root: Path, kvks: Sequence[str], catalogue: Catalogue,
                    desired: Mapping[str, LoadedOrg] | None) -> Downloads:
    world = World(catalogue)
    made = Downloads(ActualState(world))
    by_name = {(s.provider.lower(), s.name.lower()): s for s in catalogue}
    desired = desired or {}
    declared = {u.key: u for org in desired.values() for u in org.config.users}
    by_email: dict[str, str] = {}                          # e-mail -> means id, across organisations
    defaulted: dict[str, bool] = {}                        # means id -> its type is a default (no Type column)
    for kvk in kvks:
        org = _folder(root, kvk)
        if org.users is None:
            made.actual.unknown.add(kvk)
            made.notes.append(f"{kvk}: no users download in {root / kvk}: the organisation is not judged")
            continue
        loaded = desired.get(kvk)
        info = OrgInfo(kvk, loaded.config.organisation.name, loaded.config.organisation.branch_number) if loaded \
            else OrgInfo(kvk, kvk)                          # the downloads do not name the organisation
        state = OrgState(info, revision=0)                   # the simulation counts; the plan says None
        id_at = _index(org.users, _ID)
        rows = {row.number: row for row in org.users.rows}
        for person in read_people(org.users):
            key = person.email.lower()
            means_id = by_email.get(key) or _cell(rows[person.row].cells, id_at) or f"export:{key}"
            by_email[key] = means_id
            if means_id not in world.means:
                config = declared.get(key)
                if config is None:
                    defaulted[means_id] = person.type is None
                world.means[means_id] = Means(
                    id=means_id, email=person.email, name=person.name, level=person.level,
                    type=person.type or (config.type if config else MeansType.REGULIER),
                    second_factor=person.factor, phone=person.phone,
                    subscription=config.subscription if config else Subscription.ONE_YEAR,
                    status=person.status or Status.ACTIEF, activation_deadline=person.deadline)
            if person.in_progress and world.means[means_id].pending is None:    # any organisation's row says so
                world.means[means_id] = world.means[means_id].with_(pending=_IN_PROGRESS)
            state.members[means_id] = Membership(person.role)
        if org.authorisations is not None:
            table = org.authorisations
            email_at = _index(table, _EMAIL)
            name_at, provider_at, end_at = _index(table, _SERVICE), _index(table, _PROVIDER), _index(table, _END)
            assert end_at is not None                       # `_kind` recognised the file by it
            # a download repeats a handful of services and end dates over 100,000 rows: each is looked up once
            # (a row that names an unknown one, or a bad date, still stops at `_service` or `_date`)
            services: dict[tuple[str, str], Service] = {}
            days: dict[str, dt.date] = {}
            for row in table.rows:
                cells = row.cells
                email = _cell(cells, email_at).lower()
                means_id = by_email.get(email)
                if means_id is None or means_id not in state.members:
                    column = f", column {column_letter(email_at)}" if email_at is not None else ""
                    raise ImportFailure(f"{table.source}: row {row.number}{column}: "
                                        f"{email or '(no e-mail)'} is not in the users download of {kvk}; download "
                                        "both overviews together")
                named = (_cell(cells, provider_at), _cell(cells, name_at))
                service = services.get(named)
                if service is None:
                    service = services[named] = _service(table, row.number, cells, catalogue, by_name)
                end = cells[end_at] if end_at < len(cells) else ""
                if type(end) is dt.date:                    # an XLSX date cell: what `parse_date` gives back
                    day = end
                elif type(end) is str and end in days:
                    day = days[end]
                else:
                    day = _date(table, row.number, cells)
                    if type(end) is str:
                        days[end] = day
                state.authorisations.setdefault(means_id, {})[service.uuid] = day
            # in the API's order (by service UUID), not the file's (by provider and name): a step lists its
            # services in this order and the item id hashes it, so the plan is the API's to the id
            for means_id, held in state.authorisations.items():
                state.authorisations[means_id] = dict(sorted(held.items()))
        if org.chains is not None:
            ikvk_at, name_at = _index(org.chains, _INTERMEDIARY), _index(org.chains, _INTERMEDIARY_NAME)
            for row in org.chains.rows:
                ikvk = _intermediary(org.chains, row.number, row.cells, ikvk_at)
                service = _service(org.chains, row.number, row.cells, catalogue, by_name)
                have = state.chains.get(ikvk)
                ends = dict(have.ends) if have else {}
                ends[service.uuid] = _date(org.chains, row.number, row.cells)
                state.chains[ikvk] = Chain(ikvk, _cell(row.cells, name_at) or (have.name if have else None), ends)
        world.orgs[kvk] = state
        made.actual.revisions[kvk] = None
        made.notes.append(f"{kvk}: {BLIND_SPOTS}")
    _take_renamed(world, desired, defaulted)
    for means_id in world.means:
        world.linked[means_id] = tuple(sorted(k for k, s in world.orgs.items() if means_id in s.members))
    return made


def _take_renamed(world: World, desired: Mapping[str, LoadedOrg], defaulted: dict[str, bool]) -> None:
    """A means whose e-mail the config changes (R11) gets that person's type and subscription term, as one the
    config names by its e-mail does: the planner takes the same member for that person (`planner.renames`) and
    compares the type then; a default there would plan a type change for a column that is not in the
    downloads."""
    for kvk, loaded in desired.items():
        state = world.orgs.get(kvk)
        if state is None:
            continue
        users = {u.key: u for u in loaded.config.users}
        for key, means in renames(users, loaded.config.policy.unmanaged_keys, state, world).items():
            if means.id in defaulted:
                user = users[key]
                world.means[means.id] = means.with_(type=user.type if defaulted.pop(means.id) else means.type,
                                                    subscription=user.subscription)


def acting_admin(state: OrgState, world: World, loaded: LoadedOrg) -> str | None:
    """Who the plan is made for: the config's first declared beheerder who is an active beheerder in the
    download, else any active beheerder there (the runbook is carried out by a beheerder)."""
    admins = [mid for mid, ms in state.members.items() if ms.role is Role.BEHEERDER and world.means[mid].active]
    for user in loaded.config.users:
        if user.is_admin:
            match = next((mid for mid in admins if world.means[mid].key == user.key), None)
            if match is not None:
                return match
    return sorted(admins)[0] if admins else None


@asynccontextmanager
async def open_export_session(root: Path, spec: str, orgs: Sequence[LoadedOrg],
                              today: dt.date | None) -> AsyncIterator[Session]:
    """A read-only session on the downloads: the state is read here, once; nothing can be sent."""
    desired = {org.config.organisation.kvk: org for org in orgs}
    catalogue = Catalogue([s for org in orgs for s in org.catalogue])
    made = read_downloads(root, list(desired), catalogue, desired)
    session = Session(backend=spec, embedded=False, client=None, today=today or dt.date.today(), read_only=True,
                      notes=list(made.notes), state=made.actual)
    for kvk, loaded in desired.items():
        state = made.actual.world.orgs.get(kvk)
        session.actors[kvk] = acting_admin(state, made.actual.world, loaded) if state is not None else None
    yield session
