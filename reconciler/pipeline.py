"""The pipeline beneath the commands (octoDNS's Manager): load and check the config, open the backend session,
read the state, plan, and then apply, report drift or list access. The click commands parse options, call one
function here and render what it returns; nothing here prints, prompts or exits.

What a person must see while it runs comes back through callbacks (`note`, `show`, `confirm`), at the moment it
happens, so that the order of what the commands print stays what it was. What stops the pipeline is an
exception with one clear message: `ConfigInvalid` (with the positioned diagnostics), `Refused` (nothing was
sent), or the backend's own errors.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable, Sequence

from reconciler import __version__
from reconciler.config.loader import LoadResult, date_findings, load_paths, read_capped
from reconciler.config.shard import Shard, parse_shard, pick_orgs
from reconciler.config.yamlpos import MAX_BYTES
from reconciler.diagnostics import Diagnostic
from reconciler.domain.catalogue import Catalogue
from reconciler.plan.compare import tag_origins
from reconciler.plan.cost import DEFAULT_TARIFFS, Tariffs
from reconciler.plan.desired import DesiredOrg, desired_org
from reconciler.plan.model import Plan, UnsafePlan
from reconciler.plan.planner import PlanInput, make_plan
from reconciler.render.safe import terminal

if TYPE_CHECKING:
    from reconciler.apply.progress import Progress
    from reconciler.apply.report import ApplyReport
    from reconciler.backend.client import BeheerClient
    from reconciler.backend.session import Session
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


class Refused(Exception):
    """The apply does not start (or stops before its first request): nothing was sent."""


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
    from reconciler.backend.read import read_state

    day = today or session.today                    # apply --plan re-derives on the plan's day
    if today is None:                               # R9 is judged on the backend's today
        dated = date_findings(result, session.today)
        if any(d.is_error for d in dated):
            raise ConfigInvalid(dated, result.files)
    kvks = [org.config.organisation.kvk for org in result.orgs]
    catalogue = Catalogue([s for org in result.orgs for s in org.catalogue])
    actual = await read_state(session.clients, kvks, catalogue)
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
    from reconciler.backend.session import open_session  # the HTTP stack, only for commands that use it

    result = load_valid(paths, today, shard, note)   # without --today, R9 waits for the backend's today
    async with open_session(backend, result.orgs, today=today) as session:
        planned = await plan_in_session(session, paths, result, today, compare_to, tariffs)
        planned.plan.shard = str(shard) if shard else None
        return planned.plan, planned.notes


# ------------------------------------------------------------------------------------------------- drift
async def build_drift(paths: Sequence[str], backend: str | None, today: dt.date | None,
                      shard: Shard | None, tariffs: Tariffs = DEFAULT_TARIFFS,
                      note: Note = _quiet) -> tuple[DriftReport, list[str]]:
    """Plan, report, and only for an organisation that needs it (drift, or a possibly idle means) read its
    event trail once, page by page, to say who changed what and since when a means is idle."""
    from reconciler.backend.session import open_session
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
    from reconciler.backend.read import read_state
    from reconciler.backend.session import open_session
    from reconciler.report.access import access_report

    result = load_valid(paths, None, shard, note)  # end dates in the config do not matter to what the backend has
    kvks = [org.config.organisation.kvk for org in result.orgs]
    catalogue = Catalogue([s for org in result.orgs for s in org.catalogue])
    async with open_session(backend, result.orgs, today=today, read_only=True) as session:
        actual = await read_state(session.clients, kvks, catalogue)
        made = access_report(actual.world, [desired_org(org) for org in result.orgs], session.today,
                             unreadable=sorted(actual.unknown), backend=session.backend)
        return made, list(session.notes)


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


async def apply_paths(paths: Sequence[str], opts: ApplyOptions) -> ApplyReport | None:
    """Plan the config against the backend and carry the plan out; None when there was nothing to do."""
    from reconciler.backend.session import open_session

    result = load_valid(paths, opts.today, opts.shard, opts.note)  # without --today, R9 waits for the backend's
    async with open_session(opts.backend, result.orgs, today=opts.today) as session:
        planned = await plan_in_session(session, paths, result, opts.today)
        for text in planned.notes:
            opts.note(text)
        opts.show(planned.plan)
        if not planned.plan.changes:
            return _idle(planned.plan, planned.world)
        return await _execute(planned.plan, planned.world, session, opts)


async def apply_saved(path: str, paths: Sequence[str], opts: ApplyOptions) -> ApplyReport | None:
    """Apply a saved plan only when it is the plan that review saw: signed (with RECONCILER_PLAN_KEY set), made
    from the config given (or recorded in it), still current for the backend, and re-derived identically."""
    from reconciler.apply.preflight import stale_reasons
    from reconciler.apply.saved import SavedPlanError, load_plan_data, plan_from_data
    from reconciler.apply.signature import SignatureError, check_signature, plan_key
    from reconciler.apply.verify import differences
    from reconciler.backend.connect import parse_backend_spec
    from reconciler.backend.session import open_session

    try:
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
