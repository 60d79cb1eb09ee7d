"""`reconciler sandbox export`: the sandbox's organisations written as the Beheermodule's downloads (manual 2.1:
"Bij elk overzicht is een downloadfunctionaliteit ... als .xlsx bestand of een .csv bestand"), so that what
reconciler reads from such downloads (`import --from-csv`, `--backend export:DIR`) can be tested against the
ground truth the sandbox holds.

Three overviews per organisation, each one sheet or one CSV file, with Dutch headers and values in the column
order docs/exports.md sets out: the users (`gebruikers`, manual 2.1 and 3.1), the authorisations
(`machtigingen`, manual 4.1: one row per person and service) and the issued chain authorisations
(`ketenmachtigingen`, manual 5.2: one row per intermediary and service, each with its own end date, R18).
CSV is the Beheermodule's flavour as `reconciler import` reads it: `;`, UTF-8 with a BOM, CRLF.

The sandbox is reached the way the other `sandbox` commands reach it (its controls, embedded or served):
the controls name the organisations and mint a read token of an active beheerder per organisation, which
reads the organisation through the API (all pages, list endpoints only) like `plan` does.

Every text cell comes from the backend and is hostile: the caller passes the spreadsheet-cell escaper
(`reconciler.render.safe.csv_text`; the backend package may not import the renderers), which every text cell
of both formats goes through, so no cell starts a formula in a spreadsheet.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from reconciler.backend.errors import ConfigurationError
from reconciler.domain.catalogue import Catalogue, Service
from reconciler.domain.means import Role, SecondFactorType
from reconciler.domain.state import Means, Status, World

#: A cell: text, or a date (a date cell in XLSX, DD-MM-YYYY in CSV).
Cell = str | dt.date
#: What the escaper of a text cell looks like (`reconciler.render.safe.csv_text`).
CellText = Callable[[str], str]

FORMATS = ("csv", "xlsx")
#: The date format of the Beheermodule (`Activeren mogelijk tot 21-07-2021`, `geldig tot: 14-10-2024`).
DATE_FORMAT = "%d-%m-%Y"
#: The same for a date cell in XLSX (Excel's number format).
XLSX_DATE_FORMAT = "DD-MM-YYYY"
#: The CSV flavour: what the Beheermodule's download is read as (`reconciler.importer.table`).
CSV_SEPARATOR = ";"
CSV_BOM = b"\xef\xbb\xbf"

USER_COLUMNS = ("ID", "Naam", "E-mailadres", "Rol", "Status", "Activatie einddatum", "Niveau", "Tweede factor")
AUTHORISATION_COLUMNS = ("ID", "Naam", "E-mailadres", "Dienst", "Dienstverlener", "Niveau dienst", "Einddatum")
CHAIN_COLUMNS = ("KvK-nummer intermediair", "Naam intermediair", "Dienst", "Dienstverlener", "Niveau dienst",
                 "Einddatum")

ROLE_WORDS = {Role.BEHEERDER: "Beheerder", Role.GEBRUIKER: "Gebruiker"}
STATUS_WORDS = {Status.WACHTEN_OP_GOEDKEURING: "Wachten op goedkeuring",
                Status.WACHTEN_OP_ACTIVATIE: "Wachten op activatie",
                Status.ACTIVATIE_VERLOPEN: "Activatie verlopen",
                Status.ACTIEF: "Actief"}
#: The status of an active person with a mutation in progress (a level change, a link; R6): "the user's status
#: changes, showing that the mutation is being processed" (manual 3.2), in place of `Actief` until it is done.
IN_PROGRESS = "Mutatie in behandeling"
#: The statuses whose activation deadline the `Activatie einddatum` column shows (R5).
_DEADLINE_SHOWN = (Status.WACHTEN_OP_ACTIVATIE, Status.ACTIVATIE_VERLOPEN)
_KVK = re.compile(r"^[0-9]{8}$")
_DUTCH_MOBILE = re.compile(r"^\+31([0-9]{9})$")


class ExportRefused(ConfigurationError):
    """An export that cannot be made as asked (an unknown organisation, an --out that is a file, a file that
    cannot be written): one line that names it and says what to do."""


@dataclass(frozen=True)
class Overview:
    """One download: its default file name (without extension), its sheet, its header and its rows."""

    name: str
    sheet: str
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


# --------------------------------------------------------------------------------------------- the overviews
def overviews(world: World, kvk: str) -> tuple[Overview, Overview, Overview]:
    """The users, authorisations and issued chain authorisations overviews of organisation `kvk` in `world`."""
    services = {s.uuid: s for s in world.catalogue}
    return users_overview(world, kvk), authorisations_overview(world, kvk, services), chains_overview(
        world, kvk, services)


def _people(world: World, kvk: str) -> list[tuple[Means, Role]]:
    """The organisation's members (every status but terminated ones: they are gone), by name, then e-mail."""
    state = world.orgs[kvk]
    people = [(world.means[mid], ms.role) for mid, ms in state.members.items() if mid in world.means]
    return sorted(people, key=lambda p: (p[0].name.casefold(), p[0].email.casefold(), p[0].id))


def users_overview(world: World, kvk: str) -> Overview:
    """`gebruikers`: one row per person (manual 2.1's columns, in its order)."""
    rows = []
    for means, role in _people(world, kvk):
        deadline: Cell = means.activation_deadline if (means.status in _DEADLINE_SHOWN
                                                       and means.activation_deadline) else ""
        status = IN_PROGRESS if means.pending is not None and means.status is Status.ACTIEF else \
            STATUS_WORDS[means.status]
        rows.append((means.id, means.name, means.email, ROLE_WORDS[role], status, deadline,
                     means.level.value, factor_words(means)))
    return Overview("gebruikers", "Gebruikers", USER_COLUMNS, tuple(rows))


def authorisations_overview(world: World, kvk: str, services: dict[str, Service] | None = None) -> Overview:
    """`machtigingen`: one row per person and service (manual 4.1), by service, then person."""
    services = services if services is not None else {s.uuid: s for s in world.catalogue}
    held = world.orgs[kvk].authorisations
    rows = []
    for means, _ in _people(world, kvk):
        for uuid, end in held.get(means.id, {}).items():
            name, provider, level = _service_cells(services, uuid)
            rows.append((means.id, means.name, means.email, name, provider, level, end))
    rows.sort(key=lambda r: (str(r[4]).casefold(), str(r[3]).casefold(), str(r[5])))    # stable: people stay in order
    return Overview("machtigingen", "Machtigingen", AUTHORISATION_COLUMNS, tuple(rows))


def chains_overview(world: World, kvk: str, services: dict[str, Service] | None = None) -> Overview:
    """`ketenmachtigingen`: one row per intermediary and service (manual 5.2), each with its own end date (R18)."""
    services = services if services is not None else {s.uuid: s for s in world.catalogue}
    rows = []
    for chain in sorted(world.orgs[kvk].chains.values(), key=lambda c: c.intermediary_kvk):
        service_rows = []
        for uuid, end in chain.ends.items():
            name, provider, level = _service_cells(services, uuid)
            service_rows.append((chain.intermediary_kvk, chain.name or "", name, provider, level, end))
        rows += sorted(service_rows, key=lambda r: (str(r[3]).casefold(), str(r[2]).casefold(), str(r[4])))
    return Overview("ketenmachtigingen", "Ketenmachtigingen", CHAIN_COLUMNS, tuple(rows))


def _service_cells(services: dict[str, Service], uuid: str) -> tuple[str, str, str]:
    """(Dienst, Dienstverlener, Niveau dienst); a service the backend does not list shows its UUID as its name."""
    service = services.get(uuid)
    if service is None:
        return uuid, "", ""
    return service.name, service.provider, service.level.value


def factor_words(means: Means) -> str:
    """The second factor as the Beheermodule shows it (manual 2.3.1): `SMS | 0641556520` (a Dutch mobile number
    in its national form, any other in E.164), `SMS` without a number, `OTP`, or empty when there is none."""
    if means.second_factor is SecondFactorType.SMS:
        if not means.phone:
            return "SMS"
        dutch = _DUTCH_MOBILE.match(means.phone)
        return f"SMS | {'0' + dutch.group(1) if dutch else means.phone}"
    if means.second_factor is SecondFactorType.OTP:
        return "OTP"
    return ""


# ------------------------------------------------------------------------------------------------- the files
def csv_bytes(overview: Overview, text: CellText) -> bytes:
    """The overview as the Beheermodule's CSV: `;`, UTF-8 with a BOM, CRLF, dates DD-MM-YYYY; every text cell
    through `text` (no formula)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=CSV_SEPARATOR, lineterminator="\r\n")
    writer.writerow(overview.header)
    for row in overview.rows:
        writer.writerow([cell.strftime(DATE_FORMAT) if isinstance(cell, dt.date) else text(cell) for cell in row])
    return CSV_BOM + buffer.getvalue().encode("utf-8")


def xlsx_bytes(overview: Overview, text: CellText) -> bytes:
    """The overview as an .xlsx with one sheet: text cells as text (through `text`, and typed as strings, so
    none is a formula), dates as date cells shown DD-MM-YYYY. Streamed (openpyxl's write-only mode): 100,000
    rows take seconds, not minutes."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet(overview.sheet)
    rows = [tuple(cell if isinstance(cell, dt.date) else text(cell) for cell in row) for row in overview.rows]
    widths = [len(h) for h in overview.header]
    for row in rows:
        for c, value in enumerate(row):
            widths[c] = max(widths[c], 10 if isinstance(value, dt.date) else min(len(value), 60))
    for c, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(c)].width = width + 2
    sheet.freeze_panes = "A2"

    def cell(value: Cell) -> WriteOnlyCell:
        written = WriteOnlyCell(sheet, value=value)
        if isinstance(value, dt.date):
            written.number_format = XLSX_DATE_FORMAT
        else:
            written.data_type = "s"                                # text, whatever it starts with
        return written

    sheet.append([cell(h) for h in overview.header])
    for row in rows:
        sheet.append([cell(value) for value in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def write_overviews(world: World, kvk: str, folder: Path, formats: Sequence[str], *, text: CellText,
                    wrote: Callable[[Path, int], None] = lambda path, rows: None) -> list[Path]:
    """Write organisation `kvk`'s three overviews into `folder` (created) in each of `formats`; `wrote(path,
    rows)` is told of each file as it is written."""
    _make_folder(folder)
    written = []
    for overview in overviews(world, kvk):
        for fmt in formats:
            data = csv_bytes(overview, text) if fmt == "csv" else xlsx_bytes(overview, text)
            path = folder / f"{overview.name}.{fmt}"
            try:
                path.write_bytes(data)
            except OSError as exc:
                raise ExportRefused(f"cannot write {path}: {exc.strerror or exc}; check the permissions and the free "
                                    "space, or choose another --out") from None
            written.append(path)
            wrote(path, len(overview.rows))
    return written


def _make_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ExportRefused(f"--out: {folder} is a file, not a folder; name a folder (it is created if need be)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportRefused(f"--out: cannot create the folder {folder}: {exc.strerror or exc}") from None


# ------------------------------------------------------------------------------------------ the sandbox
def usage_problem(kvk: str | None, all_: bool, out: str, formats: Iterable[str]) -> str | None:
    """What is wrong with how the export was asked for (said before the sandbox is opened), or None."""
    if (kvk is None) == (not all_):
        return "name one organisation with --kvk K, or give --all (not both)"
    if kvk is not None and not _KVK.match(kvk):
        return f"--kvk {kvk!r} is not a KvK number; write its 8 digits, e.g. --kvk 99966564"
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        return f"unknown format {unknown[0]!r}; allowed: {', '.join(FORMATS)}"
    path = Path(out)
    if path.exists() and not path.is_dir():
        return f"--out: {out} is a file, not a folder; name a folder (it is created if need be)"
    return None


async def read_sandbox(backend: str | None, kvk: str | None) -> tuple[World, list[str]]:
    """The sandbox's state of organisation `kvk` (None: of every organisation) and the KvK numbers read;
    `ExportRefused` when there is no sandbox database or it does not know the organisation."""
    from reconciler.backend.bootstrap import acting_admins_of
    from reconciler.backend.connect import parse_backend_spec
    from reconciler.backend.read import read_state
    from reconciler.backend.sandbox.operations import open_controls

    spec = parse_backend_spec(backend)
    if spec.embedded and spec.db_path is not None and not spec.db_path.is_file():
        raise ExportRefused(f"there is no sandbox database at {spec.db_path}: nothing to export (`reconciler sandbox "
                            "init` or `reconciler apply` creates one)")
    actual = None
    async with open_controls(backend) as controls:       # what is refused is raised outside: one plain error
        members = await controls.means(kvk=kvk)
        kvks = sorted({org for m in members for org in m.roles if kvk is None or org == kvk})
        if kvks:
            admins = await acting_admins_of(controls, {org: None for org in kvks})
            clients = {org: controls.client.with_token(admin.token) for org, admin in admins.items()}
            catalogue = Catalogue([s.to_service() for s in await clients[kvks[0]].list_services()])
            actual = await read_state(clients, kvks, catalogue)
    if actual is None:
        raise ExportRefused(f"organisation {kvk} is not known to the sandbox {spec}" if kvk is not None
                            else f"the sandbox {spec} has no organisations: nothing to export")
    missing = [org for org in kvks if org not in actual.world.orgs]
    if missing:
        raise ExportRefused(f"organisation {missing[0]} could not be read from the sandbox {spec}")
    return actual.world, kvks


async def export(backend: str | None, *, kvk: str | None, out: str | Path, formats: Sequence[str] = FORMATS,
                 text: CellText, wrote: Callable[[Path, int], None] = lambda path, rows: None) -> list[Path]:
    """`reconciler sandbox export`: organisation `kvk`'s overviews into `out`, or (kvk None) every
    organisation's into `out/KVK/`; the files written, each told to `wrote(path, rows)` as it is."""
    problem = usage_problem(kvk, kvk is None, str(out), formats)
    if problem:
        raise ExportRefused(problem)
    world, kvks = await read_sandbox(backend, kvk)
    root = Path(out)
    written: list[Path] = []
    for org in kvks:
        written += write_overviews(world, org, root if kvk is not None else root / org, formats, text=text,
                                   wrote=wrote)
    return written


__all__ = ["AUTHORISATION_COLUMNS", "CHAIN_COLUMNS", "DATE_FORMAT", "ExportRefused", "FORMATS", "Overview",
           "ROLE_WORDS", "STATUS_WORDS", "USER_COLUMNS", "csv_bytes", "export", "factor_words", "overviews",
           "read_sandbox", "usage_problem", "write_overviews", "xlsx_bytes"]
