"""The pipeline beneath the commands (octoDNS's Manager): load and check the config, open the backend session,
read the state, plan, and then apply, report drift or list access. The click commands parse options, call one
function here (`plan`, `drift`, `access`, `apply`, `list_services`, `import_catalogue`; async ones through
`run`) and render what it returns; nothing here prints, prompts or exits.

What a person must see while it runs comes back through callbacks (`note`, `show`, `confirm`), at the moment it
happens, so that the order of what the commands print stays what it was. What stops the pipeline is an
exception with one clear message: `ConfigInvalid` (with the positioned diagnostics), `Refused` (nothing was
sent), `Unusable` (an option's value: an out file, a tariff file, the plan key), or the backend's own errors;
`user_errors` lists those that are the user's situation, `last_words` says what a command says about them.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable, Sequence, TypeVar

import anyio

from reconciler import __version__
from reconciler.apply.preflight import Refused
from reconciler.collector import gc_paused
from reconciler.config.loader import LoadResult, date_findings, load_paths, read_capped
from reconciler.config.shard import Shard, parse_shard, pick_orgs
from reconciler.config.yamlpos import MAX_BYTES
from reconciler.diagnostics import Diagnostic
from reconciler.domain.catalogue import Catalogue
from reconciler.plan.compare import tag_origins
from reconciler.plan.cost import DEFAULT_TARIFFS, Tariffs, TariffError, load_tariffs
from reconciler.plan.desired import DesiredOrg, desired_org
from reconciler.plan.model import Plan, UnsafePlan
from reconciler.plan.planner import PlanInput, make_plan
from reconciler.render.safe import terminal, terminal_lines

if TYPE_CHECKING:
    from reconciler.apply.progress import Progress
    from reconciler.config.catalogue_file import CatalogueFromXml
    from reconciler.apply.report import ApplyReport
    from reconciler.backend.client import BeheerClient
    from reconciler.backend.session import Session
    from reconciler.config.loaded import LoadedOrg
    from reconciler.domain.state import World
    from reconciler.drift.report import DriftReport
    from reconciler.drift.trail import Trail
    from reconciler.report.access import AccessReport

Note = Callable[[str], None]


def _quiet(_: object) -> None:
    """A callback that shows nothing (library use, tests)."""


class ConfigInvalid(Exception):
    """The config has errors: nothing is planned on invalid input. `diagnostics` are all of them, positioned."""

    def __init__(self, diagnostics: Sequence[Diagnostic], files: int) -> None:
        self.diagnostics = list(diagnostics)
        self.files = files
        super().__init__(f"the config is not valid ({sum(1 for d in diagnostics if d.is_error)} errors)")


class Unusable(Exception):
    """A value a command was given cannot be used (an output file, a tariff file, the plan key): one line that
    names it and says what to do, found before the backend is read where it can be."""


# ------------------------------------------------------------------------------- running the commands' work
def user_errors() -> tuple[type[Exception], ...]:
    """What a command may meet that is the user's situation, not a bug: said in one line (`error: ...`), exit 1.
    The one list for the command line's runner and for its last line of defence."""
    # imported here: `validate` need not load the HTTP stack
    from reconciler.backend.bootstrap import BootstrapError
    from reconciler.backend.errors import BackendError, ConfigurationError
    from reconciler.backend.sandbox.operations import UnknownHolders
    from reconciler.backend.sandbox.serve import ServeRefused
    from reconciler.backend.sandbox.store import SandboxLocked, SandboxSetupError
    from reconciler.importer.model import ImportFailure

    return (BackendError, ConfigurationError, BootstrapError, SandboxLocked, SandboxSetupError, UnknownHolders,
            ServeRefused, Refused, Unusable, ImportFailure)


def leaves(exc: BaseException) -> list[BaseException]:
    """Every exception inside (nested) exception groups, in order."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def first_failure(exc: BaseException, expected: tuple[type[BaseException], ...]) -> BaseException:
    """The exception that says what happened: task groups wrap errors in exception groups, and the first
    expected one among them (else the first) is the one to tell."""
    found = leaves(exc)
    return next((e for e in found if isinstance(e, expected)), found[0])


T = TypeVar("T")


def run(work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` (one of the functions below) on an event loop. What stops it comes out as the one exception
    that says why, unwrapped from the task groups' exception groups: an invalid config first, then the user's
    situation (`user_errors`), else the first error.

    The result is kept off the event loop's main task: when asyncio's runner puts the Ctrl-C handler back, it
    looks the old handler up in an enum (`signal.getsignal`), whose miss formats the handler's repr, and with it
    the finished task's result. For a 10,000-step apply report that repr took ~0.2 s (1.5% of the apply)."""
    results: list[T] = []

    async def main() -> None:
        results.append(await work())

    try:
        anyio.run(main)
        return results[0]
    except BaseException as exc:
        leaf = first_failure(exc, (ConfigInvalid,))
        if not isinstance(leaf, ConfigInvalid):
            leaf = first_failure(exc, user_errors())
        if leaf is exc:
            raise
        raise leaf from None


#: What a command interrupted by Ctrl-C says: the state things are in, and what to do.
INTERRUPTED = ("interrupted: nothing more is sent. Run the command again to finish; an apply's steps so far are in "
               "its audit log (.reconciler/audit.jsonl unless --audit-log says otherwise)")


def last_words(exc: BaseException, *, aborted: bool = False) -> tuple[str | None, int]:
    """What a command says about what escaped it, and its exit code: Ctrl-C says what state things are in (130);
    an `aborted` prompt (no, or Ctrl-C at it) says so (130); a closed pipe nothing (1); the user's situation one
    line (1); anything else an internal error to report (1), never a traceback."""
    if isinstance(exc, KeyboardInterrupt) or (aborted and isinstance(exc.__cause__, KeyboardInterrupt)):
        return INTERRUPTED, 130
    if aborted:
        return "aborted", 130
    if isinstance(exc, BrokenPipeError):
        return None, 1
    if isinstance(exc, user_errors()):
        return f"error: {terminal_lines(exc)}", 1
    return f"error: internal error: {type(exc).__name__}: {terminal_lines(exc)}\nplease report this with the " \
           "command you ran", 1


# ------------------------------------------------------------------------------------- the commands' values
def parse_day(value: object) -> dt.date:
    """A day given as YYYY-MM-DD (`--today`, the sandbox clock), up to LATEST_TODAY: five years ahead of a
    later day would leave the calendar (R9). `ValueError` says what to write."""
    from reconciler.domain.rules import LATEST_TODAY

    if isinstance(value, dt.date):
        day = value
    else:
        try:
            day = dt.date.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"{value!r} is not a date; write YYYY-MM-DD") from None
    if day > LATEST_TODAY:
        raise ValueError(f"{day.isoformat()} is too far ahead: end dates lie up to five years after it, beyond the "
                         f"calendar; give a date up to {LATEST_TODAY.isoformat()}")
    return day


def tariffs_from(path: str | None) -> Tariffs:
    """The tariffs in a YAML file (`--tariffs`), or the manual's example tariffs without one."""
    try:
        return load_tariffs(Path(path)) if path else DEFAULT_TARIFFS
    except TariffError as exc:
        raise Unusable(str(exc)) from None


def _output_problem(path: str, option: str) -> str | None:
    """Why `path` cannot be written as an output file, or None when it looks writable."""
    target = Path(path)
    folder = target.parent
    shown = os.path.normpath(folder) if str(folder) else "."
    try:
        if target.is_dir():
            return f"cannot write {path}: it is a folder; give a file name to {option}"
        if not folder.exists():
            return f"cannot write {path}: the folder {shown} does not exist; create it or choose another {option}"
        if not folder.is_dir():
            return f"cannot write {path}: {shown} is not a folder; choose another {option}"
    except (OSError, ValueError):
        return f"cannot write {path}: not a usable path; choose another {option}"
    return None


def check_output(path: str | None, option: str = "--out") -> None:
    """Refuse an output file (`--out`) that cannot be written, before anything else is done: a folder that does
    not exist is a user's typo, found before the backend is contacted, so a long read is not done in vain."""
    if path is None:
        return
    problem = _output_problem(path, option)
    if problem is not None:
        raise Unusable(problem)


def write_output(path: str, content: str | bytes, option: str = "--out") -> None:
    """Write `content` to `path` (replacing it); any failure is `Unusable`, naming the file and what to do."""
    check_output(path, option)
    try:
        if isinstance(content, bytes):
            Path(path).write_bytes(content)
        else:
            Path(path).write_text(content, encoding="utf-8")
    except OSError as exc:
        raise Unusable(f"cannot write {path}: {exc.strerror or exc}; check the permissions and the free space, or "
                       f"choose another {option}") from None


# ------------------------------------------------------------------------------------------------ config
def config_digest(result: LoadResult) -> str:
    """What the plan was made from: the organisation files (their bytes as read once, so a pipe is not read
    again) and the catalogue files they name."""
    contents: dict[Path, bytes] = {org.path.resolve(): org.doc.digest for org in result.orgs}
    for org in result.orgs:
        if org.config.catalogue:
            path = (org.path.parent / org.config.catalogue).resolve()
            if path not in contents:
                contents[path] = hashlib.sha256(read_capped(path, MAX_BYTES)).digest()
    digest = hashlib.sha256()
    for path in sorted(contents):
        digest.update(str(path.name).encode() + b"\0" + contents[path] + b"\0")
    return "sha256:" + digest.hexdigest()


def load_valid(paths: Sequence[str], today: dt.date | None, shard: Shard | None = None,
               note: Note = _quiet) -> LoadResult:
    """The configuration, or `ConfigInvalid` with every positioned error (the plan is not made on invalid
    input); with a shard, only its organisations (the whole estate is still validated)."""
    result = load_paths(paths, today)
    if not result.ok:
        raise ConfigInvalid(result.diagnostics, result.files)
    if shard is not None:
        mine = pick_orgs(result.orgs, shard)
        note(f"shard {shard}: {len(mine)} of {len(result.orgs)} organisations")
        result = replace(result, orgs=mine)
    return result


# ----------------------------------------------------------------------------------------------- session
@asynccontextmanager
async def open_session(backend: str | None, orgs: Sequence[LoadedOrg], *, today: dt.date | None = None,
                       read_only: bool = False) -> AsyncIterator[Session]:
    """The backend session a command reads (and apply writes) through: the API of a sandbox or a supplier, or the
    Beheermodule's downloads (`export:DIR`, read-only: read once, when it opens)."""
    from reconciler.backend.connect import parse_backend_spec
    from reconciler.backend.session import open_session as open_api_session  # the HTTP stack, only when used

    spec = parse_backend_spec(backend)
    if spec.kind == "export":
        from reconciler.importer.downloads import open_export_session

        assert spec.export_dir is not None
        async with open_export_session(spec.export_dir, str(spec), orgs, today) as session:
            yield session
        return
    async with open_api_session(backend, orgs, today=today, read_only=read_only) as session:
        yield session


# -------------------------------------------------------------------------------------------------- plan
@dataclass
class Planned:
    plan: Plan
    world: World                  # the state the plan was made on (apply checks each step against it)
    desired: list[DesiredOrg]     # what the plan was made for (drift reports against it)
    notes: list[str] = field(default_factory=list)


async def plan_in_session(session: Session, paths: Sequence[str], result: LoadResult, today: dt.date | None,
                          compare_to: str | None = None, tariffs: Tariffs = DEFAULT_TARIFFS) -> Planned:
    """Read the backend through an open session and plan; the session stays open (apply uses it next)."""
    day = today or session.today                    # apply --plan re-derives on the plan's day
    if today is None:                               # R9 is judged on the backend's today
        dated = date_findings(result, session.today)
        if any(d.is_error for d in dated):
            raise ConfigInvalid(dated, result.files)
    kvks = [org.config.organisation.kvk for org in result.orgs]
    catalogue = Catalogue([s for org in result.orgs for s in org.catalogue])
    actual = await session.read(kvks, catalogue)
    data = PlanInput(desired=[desired_org(org) for org in result.orgs], actual=actual.world, today=day,
                     actors=session.actors, revisions=actual.revisions, config_digest=config_digest(result),
                     tool_version=__version__, backend=session.backend, tariffs=tariffs)
    plan = make_plan(data)
    plan.config_paths = list(paths)
    for org_plan in plan.organisations:             # the plan's header says why another admin acts
        org_plan.acting_note = session.acting_notes.get(org_plan.kvk, "")
    notes = list(session.notes)
    if compare_to is not None:
        base = load_paths([compare_to], day)
        if base.ok:
            base_plan = make_plan(replace(data, desired=[desired_org(org) for org in base.orgs]))
            tag_origins(plan, base_plan, compare_to)
        else:
            notes.append(f"the base config {compare_to} is not valid ({len(base.errors)} errors): changes are "
                         "not tagged introduced/drift/expiry")
    return Planned(plan, actual.world, list(data.desired), notes)


async def build_plan(paths: Sequence[str], backend: str | None, today: dt.date | None,
                     compare_to: str | None = None, tariffs: Tariffs = DEFAULT_TARIFFS,
                     shard: Shard | None = None, note: Note = _quiet) -> tuple[Plan, list[str]]:
    """`reconciler plan`: the plan and the notes to show with it."""
    result = load_valid(paths, today, shard, note)   # without --today, R9 waits for the backend's today
    async with open_session(backend, result.orgs, today=today) as session:
        planned = await plan_in_session(session, paths, result, today, compare_to, tariffs)
        planned.plan.shard = str(shard) if shard else None
        return planned.plan, planned.notes


async def plan(paths: Sequence[str], backend: str | None, today: dt.date | None = None,
               compare_to: str | None = None, tariff_file: str | None = None, shard: Shard | None = None,
               out: str | None = None, note: Note = _quiet) -> Plan:
    """`reconciler plan`: the plan, its notes told as they arise; with `out`, also saved as JSON for `apply
    --plan` (and signed, with RECONCILER_PLAN_KEY set). The out file, the tariffs and the plan key are checked
    before the backend is read."""
    from reconciler.apply.signature import SignatureError, plan_key

    check_output(out)
    tariffs = tariffs_from(tariff_file)
    try:
        key = plan_key()                    # a key that is set but unusable is refused before any work
    except SignatureError as exc:
        raise Unusable(str(exc)) from None
    made, notes = await build_plan(paths, backend, today, compare_to, tariffs, shard, note)
    for text in notes:
        note(text)
    if out:
        save_plan(made, Path(out), key, note)
    return made


def save_plan(made: Plan, path: Path, key: bytes | None, note: Note = _quiet) -> None:
    """Write the plan as JSON to `path`; with a key, its detached signature first (`apply --plan` checks it), so
    a plan is never left beside a signature it lacks."""
    from reconciler.apply.signature import KEY_ENV, sign, signature_path
    from reconciler.render.json_plan import render_json

    text = render_json(made)
    if key is not None:
        sig = signature_path(path)
        write_output(str(sig), sign(json.loads(text), key) + "\n")
        note(f"signed the plan with {KEY_ENV}: {terminal(str(sig))}")
    write_output(str(path), text)


# ------------------------------------------------------------------------------------------------- drift
async def build_drift(paths: Sequence[str], backend: str | None, today: dt.date | None,
                      shard: Shard | None, tariffs: Tariffs = DEFAULT_TARIFFS,
                      note: Note = _quiet) -> tuple[DriftReport, list[str]]:
    """Plan, report, and only for an organisation that needs it (drift, or a possibly idle means) read its
    event trail once, page by page, to say who changed what and since when a means is idle."""
    from reconciler.drift.report import build_report

    result = load_valid(paths, today, shard, note)
    async with open_session(backend, result.orgs, today=today, read_only=True) as session:
        planned = await plan_in_session(session, paths, result, today, tariffs=tariffs)
        args = (planned.plan, planned.world, planned.desired, session.today)
        report = build_report(*args, tariffs=tariffs)
        notes = list(planned.notes)
        trails: dict[str, Trail] = {}
        for org in report.organisations:
            client = session.clients.get(org.kvk)
            if org.needs_trail and client is not None:
                trail = await read_trail(client, org.kvk, planned.world, notes)
                if trail is not None:
                    trails[org.kvk] = trail
        if trails:
            report = build_report(*args, trails=trails, tariffs=tariffs)
        return report, notes


async def drift(paths: Sequence[str], backend: str | None, today: dt.date | None = None,
                shard: Shard | None = None, tariff_file: str | None = None, out: str | None = None,
                note: Note = _quiet) -> DriftReport:
    """`reconciler drift`: the drift report, its notes told as they arise; the out file and the tariffs are
    checked before the backend is read."""
    check_output(out)
    report, notes = await build_drift(paths, backend, today, shard, tariffs_from(tariff_file), note)
    for text in notes:
        note(text)
    return report


async def read_trail(client: BeheerClient, kvk: str, world: World, notes: list[str]) -> Trail | None:
    """The organisation's event trail, indexed as it is paged in; a trail that cannot be read leaves who and
    when "unknown" (with a note), it does not fail the report."""
    from reconciler.backend.errors import BackendError
    from reconciler.drift.trail import Trail

    trail = Trail.of((), world)
    try:
        async for event in client.iter_events(kvk):
            trail.add(event)
    except BackendError as exc:
        notes.append(f"{kvk}: the event trail could not be read ({exc}); who changed what is unknown")
        return None
    return trail


# ------------------------------------------------------------------------------------------------ access
async def read_access(paths: Sequence[str], backend: str | None, today: dt.date | None, shard: Shard | None,
                      note: Note = _quiet) -> tuple[AccessReport, list[str]]:
    """Load the config, read its organisations from the backend, and build the access overview."""
    from reconciler.report.access import access_report

    result = load_valid(paths, None, shard, note)  # end dates in the config do not matter to what the backend has
    kvks = [org.config.organisation.kvk for org in result.orgs]
    catalogue = Catalogue([s for org in result.orgs for s in org.catalogue])
    async with open_session(backend, result.orgs, today=today, read_only=True) as session:
        actual = await session.read(kvks, catalogue)
        made = access_report(actual.world, [desired_org(org) for org in result.orgs], session.today,
                             unreadable=sorted(actual.unknown), backend=session.backend)
        return made, list(session.notes)


async def access(paths: Sequence[str], backend: str | None, today: dt.date | None = None,
                 shard: Shard | None = None, out: str | None = None, note: Note = _quiet) -> AccessReport:
    """`reconciler report access`: the overview, its notes told as they arise; the out file is checked before
    the backend is read."""
    check_output(out)
    made, notes = await read_access(paths, backend, today, shard, note)
    for text in notes:
        note(text)
    return made


# --------------------------------------------------------------------------------------------- catalogue
def list_services(catalogue_file: str | None, config_file: str | None) -> tuple[Catalogue | None, list[str]]:
    """`reconciler catalogue list`: the catalogue to list (None: nothing is listed, exit 1) and the lines to say
    first on stderr (a catalogue file's diagnostics, or why the config cannot be listed)."""
    from reconciler.config.catalogue_file import NotOneOrganisation, catalogue_for

    try:
        listing = catalogue_for(catalogue_file, config_file)
    except NotOneOrganisation as exc:
        return None, [f"error: {exc}"]
    return listing.catalogue, [terminal(d.render()) for d in listing.diagnostics]


def import_catalogue(xml_file: str, out: str | None = None, previous: str | None = None,
                     cert: str | None = None) -> tuple[CatalogueFromXml | None, list[str]]:
    """`reconciler catalogue import`: the catalogue file made from a service-catalog XML and the lines to say on
    stderr (its warnings), or None and every problem (`error: ...` lines) when it must not be written.

    `out` is checked before anything is read. `previous` (default: `out` when that file exists) keeps its keys
    on their UUIDs; a key it would have to move to another UUID is refused. With `cert` the XML signature must
    hold for that certificate; without it the lines say once that it was not verified."""
    from reconciler.config.catalogue_file import (PreviousInvalid, XmlUnreadable, catalogue_from_xml,
                                                  previous_services, read_certificate)
    from reconciler.domain.etoegang import CatalogueImportError, CertificateUnreadable, KeysMoved, SignatureRefused

    check_output(out)
    certificate = None
    if cert is not None:
        try:
            certificate = read_certificate(cert)
        except CertificateUnreadable as exc:
            return None, [f"error: {terminal(cert)}: {exc}"]
    if previous is None and out is not None and Path(out).is_file():
        previous = out
    try:
        kept = previous_services(previous) if previous is not None else []
    except PreviousInvalid as exc:
        return None, [f"error: {terminal(d.path)}:{d.line}:{d.column}: {terminal(d.message)} (read as the previous "
                      "catalogue, whose keys the import keeps; fix it or name another with --previous)"
                      for d in exc.diagnostics]
    try:
        made = catalogue_from_xml(xml_file, previous=kept, certificate=certificate)
    except XmlUnreadable as exc:
        return None, [f"error: {terminal(xml_file)}: {exc}"]
    except CatalogueImportError as exc:
        return None, [f"error: {problem.where(xml_file)}: {problem.message}" for problem in exc.problems]
    except KeysMoved as exc:
        return None, [f"error: {terminal(previous or '')}: key {move.key!r} names ServiceUUID {move.old_uuid}, but "
                      f"{terminal(xml_file)}{f':{move.line}' if move.line else ''} would give it to {move.new.uuid} "
                      f"({terminal(move.new.provider)}: {terminal(move.new.name)}), which configs would then "
                      "mean; if they should, remove the key from the previous file and import again"
                      for move in exc.moves]
    except SignatureRefused as exc:
        return None, [f"error: {terminal(xml_file)}: {exc}; checked against {terminal(cert or '')}"]
    said = [f"warning: {warning}" for warning in made.warnings]
    if certificate is None:
        said.append("warning: the catalogue's signature was not verified; pass --cert FILE (the aggregator's "
                    "signing certificate, PEM) to refuse a catalogue that was changed after signing")
    return made, said


# ------------------------------------------------------------------------------------------------- apply
async def _yes(_: Plan) -> None:
    """Go on without asking (library use)."""


@dataclass
class ApplyOptions:
    """How to apply, and how to tell a person what happens (the command's callbacks)."""

    backend: str | None = None
    force: bool = False                         # more removals than policy.max_removals
    audit_log: Path | None = None               # None: no audit log
    concurrency: int = 4
    today: dt.date | None = None
    shard: Shard | None = None
    note: Note = _quiet                         # a note, when it arises
    show: Callable[[Plan], None] = _quiet       # the plan, before anything is asked or sent
    confirm: Callable[[Plan], Awaitable[None]] = _yes   # raises to stop; returns to go on
    progress: Callable[[], Progress] | None = None      # made once the apply starts


def _runbook_usage_problem(plan_file: str | None, auto_approve: bool) -> str | None:
    """What cannot go with `apply --executor runbook` (a usage error, said before any work), or None."""
    if auto_approve:
        return "--auto-approve cannot go with --executor runbook: a person answers each step"
    if plan_file:
        return "--executor runbook walks a fresh plan of PATH...; --plan is for --executor api"
    return None


def apply_usage_problem(paths: Sequence[str], plan_file: str | None, today: dt.date | None,
                        shard: Shard | None, *, executor: str = "api", auto_approve: bool = False) -> str | None:
    """What is wrong with how `reconciler apply` was called (a usage error, said before any work), or None."""
    if not paths and not plan_file:
        return "give the config (PATH...) or a saved plan (--plan plan.json [PATH...])"
    if plan_file and today:
        return "--today applies when planning; a saved plan keeps the day it was made on"
    if plan_file and shard:
        return "--shard applies when planning; plan the shard with `reconciler plan --shard K/N --out plan.json`"
    return _runbook_usage_problem(plan_file, auto_approve) if executor == "runbook" else None


def confirm_question(plan: Plan) -> str:
    """What a person is asked before an apply: how many changes to which organisations (the first five)."""
    orgs = sorted({c.kvk for c in plan.changes})
    count = len(plan.changes)
    kvks = ", ".join(orgs[:5]) + (", ..." if len(orgs) > 5 else "")
    return (f"\nApply {'this change' if count == 1 else f'these {count} changes'} to {len(orgs)} "
            f"organisation{'' if len(orgs) == 1 else 's'} ({kvks})? Type 'yes' to go on")


def asking(auto_approve: bool, interactive: Callable[[], bool],
           prompt: Callable[[str], str]) -> Callable[[Plan], Awaitable[None]]:
    """The `confirm` of an apply, Terraform's rule: on a terminal only `yes` goes on; without one, only
    --auto-approve does. `prompt` asks the question (in a worker thread) and returns the answer."""
    async def confirm(plan: Plan) -> None:
        if auto_approve:
            return
        if not interactive():
            raise Refused("refusing to apply without confirmation: stdin is not a terminal. Review the plan above "
                          "(or `reconciler plan --out plan.json`) and run again with --auto-approve")
        answer = await anyio.to_thread.run_sync(lambda: prompt(confirm_question(plan)))
        if answer.strip().lower() != "yes":
            raise Refused("apply cancelled: nothing was changed")

    return confirm


async def apply(plan_file: str | None, paths: Sequence[str], opts: ApplyOptions) -> ApplyReport | None:
    """`reconciler apply`: the saved plan `plan_file` when given (`apply_saved`), else a fresh plan of `paths`
    (`apply_paths`); None when there was nothing to do."""
    return await (apply_saved(plan_file, paths, opts) if plan_file else apply_paths(paths, opts))


async def apply_paths(paths: Sequence[str], opts: ApplyOptions) -> ApplyReport | None:
    """Plan the config against the backend and carry the plan out; None when there was nothing to do."""
    result = load_valid(paths, opts.today, opts.shard, opts.note)  # without --today, R9 waits for the backend's
    async with open_session(opts.backend, result.orgs, today=opts.today) as session:
        planned = await plan_in_session(session, paths, result, opts.today)
        for text in planned.notes:
            opts.note(text)
        opts.show(planned.plan)
        if not planned.plan.changes:
            return _idle(planned.plan, planned.world)
        return await _execute(planned.plan, planned.world, session, opts)


async def runbook_plan(paths: Sequence[str], opts: ApplyOptions) -> Plan:
    """`reconciler apply --executor runbook`: the plan a person carries out by hand (apply.runbook_walk), shown and
    held to the removal threshold like an apply. Nothing is sent, and the session is closed before the walk, so a
    person's hour in the Beheermodule holds no backend (an embedded sandbox's lock); `export:DIR` plans from the
    Beheermodule's downloads."""
    result = load_valid(paths, opts.today, opts.shard, opts.note)
    async with open_session(opts.backend, result.orgs, today=opts.today) as session:
        planned = await plan_in_session(session, paths, result, opts.today)
    planned.plan.shard = str(opts.shard) if opts.shard else None
    for text in planned.notes:
        opts.note(text)
    opts.show(planned.plan)
    try:
        planned.plan.raise_if_unsafe(opts.force)
    except UnsafePlan as exc:
        raise Refused(str(exc)) from None
    return planned.plan


async def apply_saved(path: str, paths: Sequence[str], opts: ApplyOptions) -> ApplyReport | None:
    """Apply a saved plan only when it is the plan that review saw: signed (with RECONCILER_PLAN_KEY set), made
    from the config given (or recorded in it), still current for the backend, and re-derived identically."""
    from reconciler.apply.preflight import stale_reasons
    from reconciler.apply.saved import SavedPlanError, load_plan_data, plan_from_data
    from reconciler.apply.signature import SignatureError, check_signature, plan_key
    from reconciler.apply.verify import differences
    from reconciler.backend.connect import parse_backend_spec

    try:
        with gc_paused():                             # a 10,000-step plan is ~600,000 objects, kept to the end
            data = load_plan_data(Path(path))
        key = plan_key()
        if key is not None:
            check_signature(Path(path), data, key)
        saved = plan_from_data(data)
    except (SavedPlanError, SignatureError) as exc:
        raise Refused(f"{exc}; nothing was changed") from None
    spec = str(parse_backend_spec(opts.backend))
    if saved.backend != spec:                         # before the session: an embedded one would be set up
        raise Refused(f"the plan was made against {terminal(saved.backend)}, not {spec}: apply it against the "
                      "backend it was made for, or plan again; nothing was changed")
    config = tuple(paths) or _recorded_paths(path, saved.config_paths)
    try:
        shard = parse_shard(saved.shard) if saved.shard else None
    except ValueError as exc:
        raise Refused(f"{path}: not a valid plan: shard {terminal(str(exc))}; nothing was changed") from None
    if paths:
        result = load_valid(config, saved.today, shard, opts.note)
    else:                                             # paths from the file: never quote what they point at
        result = load_paths(config, saved.today)
        if not result.ok:
            raise Refused(f"the config recorded in the plan ({terminal(', '.join(config))}) is not valid "
                          f"({len(result.errors)} errors); check it with `reconciler validate`, or give the config: "
                          f"`reconciler apply --plan {path} PATH...`; nothing was changed")
        result = replace(result, orgs=pick_orgs(result.orgs, shard))
    digest = config_digest(result)
    if digest != saved.config_digest:
        raise Refused(f"the config at {', '.join(config)} is not the config the plan was made from (config digest "
                      f"{saved.config_digest or 'none'} in the plan, {digest} now): check out the commit the plan "
                      "was made from, or plan again; nothing was changed")
    async with open_session(opts.backend, result.orgs) as session:
        derived = await plan_in_session(session, config, result, saved.today)
        revisions = {o.kvk: o.revision for o in derived.plan.organisations}
        same_orgs = {o.kvk for o in saved.organisations} == revisions.keys()    # else: tampered, not stale
        reasons = stale_reasons(saved, backend=session.backend, revisions=revisions, today=session.today,
                                tool_version=__version__) if same_orgs else []
        if reasons:
            raise Refused("the saved plan is stale; nothing was changed. Plan again "
                          "(`reconciler plan PATH... --out plan.json`):\n  " + "\n  ".join(reasons))
        changed = differences(data, derived.plan)
        del data                                      # the file's document is not needed again
        if changed:
            shown = changed[:_MAX_SHOWN] + ([f"... and {len(changed) - _MAX_SHOWN} more"]
                                            if len(changed) > _MAX_SHOWN else [])
            raise Refused(f"{path} is not the plan that the config and the backend give: it was edited after it was "
                          "made; nothing was changed. Review a fresh plan (`reconciler plan PATH... --out "
                          "plan.json`). What differs:\n  " + "\n  ".join(shown))
        for text in derived.notes:
            opts.note(text)
        derived.plan.compared_to = saved.compared_to
        opts.show(derived.plan)
        if not derived.plan.changes:
            return _idle(derived.plan, derived.world)
        return await _execute(derived.plan, derived.world, session, opts)


#: Differences listed when a saved plan is refused (the rest are counted).
_MAX_SHOWN = 40


def _recorded_paths(plan_file: str, recorded: list[str]) -> tuple[str, ...]:
    """The config paths a plan records, when they are safe to read: relative, inside the working directory, and
    regular files or directories (a plan file is not trusted to point anywhere else)."""
    if not recorded:
        raise Refused(f"{plan_file}: the plan does not say which config it was made from; give it: `reconciler "
                      f"apply --plan {plan_file} PATH...`; nothing was changed")
    for raw in recorded:
        shown, candidate = terminal(raw), Path(raw)
        if candidate.is_absolute() or ".." in candidate.parts:
            raise Refused(f"the plan records the config path {shown}, outside the working directory; give the "
                          f"config: `reconciler apply --plan {plan_file} PATH...`; nothing was changed")
        if not candidate.exists():
            raise Refused(f"the config the plan was made from is not at {shown}: run apply where the plan was made, "
                          f"or give the config: `reconciler apply --plan {plan_file} PATH...`; nothing was changed")
        if not (candidate.is_dir() or candidate.is_file()):
            raise Refused(f"the plan records the config path {shown}, which is not a file or a folder; give the "
                          f"config: `reconciler apply --plan {plan_file} PATH...`; nothing was changed")
    return tuple(recorded)


async def _execute(plan: Plan, world: World, session: Session, opts: ApplyOptions) -> ApplyReport:
    """The checks that hold whatever the plan says, the question, then the executor with its audit log."""
    from reconciler.apply.audit import AuditError, AuditLog
    from reconciler.apply.executor import Executor
    from reconciler.apply.progress import Quiet
    from reconciler.apply.report import what_next
    from reconciler.apply.saved import plan_id

    if session.client is None:
        raise Refused(f"{session.backend} is the Beheermodule's downloads: reconciler cannot change anything there; "
                      "nothing was changed. Carry the plan out in the Beheermodule with its runbook (`reconciler plan "
                      "PATH... --backend export:DIR --format runbook`), then download the overviews again and check "
                      "with `reconciler drift PATH... --backend export:DIR`")
    if session.read_only:
        raise Refused("the API token is read-only: it can plan and report, not apply; nothing was changed. Use "
                      "the token of a beheerder that may change things")
    try:
        plan.raise_if_unsafe(opts.force)
    except UnsafePlan as exc:
        raise Refused(str(exc)) from None
    try:                                 # before the question and before any request: an unwritable log refuses
        audit = AuditLog(opts.audit_log).open()
    except AuditError as error:
        raise Refused(f"{error}; nothing was changed. Give a writable file with --audit-log FILE (or "
                      "--audit-log - for no audit log)") from None
    try:
        await opts.confirm(plan)
        # What the apply holds to its end (the world, the plan, the config) is long-lived: frozen, the collections
        # that each step's requests and answers trigger do not walk it again (full collections over 10,000 steps:
        # 0.10 -> 0.07 s).
        gc.freeze()
        executor = Executor(plan, plan_id(plan), world, session.clients, session.actors, audit=audit,
                            progress=opts.progress() if opts.progress else Quiet(), concurrency=opts.concurrency)
        report = await executor.run()
    finally:
        failure = audit.close()          # never raises: the report below says what the log is missing
    if failure is not None and report.audit_failure is None:
        report.audit_failure = str(failure)
    report.next = what_next(plan, world)   # `world` now holds every step that succeeded (the executor's)
    return report


def _idle(plan: Plan, world: World) -> ApplyReport | None:
    """A plan with only deferred and manual steps sends nothing, but says what waits on whom; None: converged."""
    from reconciler.apply.report import ApplyReport, empty_result, what_next

    if not any(o.deferred or o.manual for o in plan.organisations):
        return None
    return ApplyReport("", [empty_result(o) for o in plan.organisations], next=what_next(plan, world),
                       attempted=False)
