"""Importing from the beheer backend: read one organisation with the same session and reader as `plan`
(list endpoints only, all pages) and declare exactly what it holds, so that `reconciler plan` on the result
has nothing to do.

What "exactly" means is decided against the planner (`reconciler.plan.planner`), per state a means can be in:

- awaiting approval or activation: declared as it is; the planner only waits (nothing to request again);
- a pending level change (R6): declared at the *new* level, which the planner recognises as "asked for
  already" (declaring the old one would plan the change back once the supplier has processed it);
- a lapsed activation (R5): left out, commented: declared, the plan would buy a new activation letter;
- a scheduled termination (R14): declared with the person's `until:` on that date, which is exactly what the
  planner schedules for a person-level end (and what it would keep).

Authorisations and chain authorisations get the fixed end dates the backend has. Services are named by key:
the bundled catalogue's keys where it has the same service, else a catalogue file written next to the
organisation file (or, without one, the entry is left out with a comment).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path

from reconciler.config.models import SecondFactorType
from reconciler.domain import rules
from reconciler.domain.catalogue import Catalogue, Service, bundled_catalogue
from reconciler.domain.state import Means, Membership, OrgState, PendingKind, Status, World
from reconciler.importer.model import (
    ImportedAuthorisation, ImportedChain, ImportedOrg, ImportedUser, ImportFailure, LeftOut,
)
from reconciler.importer.phones import E164, to_e164


@dataclass
class Snapshot:
    """One organisation as the backend listed it, with what the header says about where it came from."""

    kvk: str
    world: World
    services: Catalogue            # the backend's own catalogue (`GET /v1/services`)
    today: dt.date                 # the backend's today
    backend: str                   # the --backend spec (never a token)
    acting_admin: str | None       # whose token read it
    revision: int | None

    @property
    def state(self) -> OrgState:
        return self.world.orgs[self.kvk]


async def read_snapshot(backend: str | None, kvk: str) -> Snapshot:
    """Read organisation `kvk` (all pages); `ImportFailure` when the backend does not know it or cannot be used."""
    from reconciler.backend.connect import parse_backend_spec
    from reconciler.backend.session import open_plan_session
    from reconciler.backend.read import read_state

    spec = parse_backend_spec(backend)
    if spec.kind == "export":
        from reconciler.domain.catalogue import bundled_catalogue
        from reconciler.importer.downloads import read_downloads

        assert spec.export_dir is not None
        services = bundled_catalogue()
        made = read_downloads(spec.export_dir, [kvk], services)
        if kvk in made.actual.unknown:
            raise ImportFailure(f"there is no users download of organisation {kvk} in {spec.export_dir / kvk}")
        return Snapshot(kvk, made.actual.world, services, dt.date.today(), str(spec), None, None)
    if spec.embedded:
        await _embedded_knows(backend, spec.db_path, kvk)     # before a session bootstraps or creates anything
    async with open_plan_session(backend, {kvk: None}) as session:
        catalogue = await session.catalogue()
        actual = await read_state(session.clients, [kvk], catalogue)
        actor = session.actors.get(kvk)
        actor_means = actual.world.get_means(actor) if actor else None
        snapshot = Snapshot(kvk, actual.world, catalogue, session.today, session.backend,
                            actor_means.email if actor_means else None, actual.revisions.get(kvk))
    if kvk in actual.unknown or kvk not in snapshot.world.orgs:
        raise ImportFailure(f"organisation {kvk} is not known to the backend {snapshot.backend}, or the token's "
                            "admin is not linked to it")
    return snapshot


async def _embedded_knows(backend: str | None, db_path: Path | None, kvk: str) -> None:
    """An embedded import reads; it never creates a sandbox database or an organisation."""
    from reconciler.backend.connect import open_backend
    from reconciler.backend.sandbox.controls import SandboxControls

    assert db_path is not None
    if not db_path.is_file():
        raise ImportFailure(f"there is no sandbox database at {db_path}: nothing to import (`reconciler apply` or "
                            "`reconciler sandbox init` creates one)")
    async with open_backend(backend, require_token=False) as client:
        members = await SandboxControls(client).means(kvk=kvk)
    if not members:
        raise ImportFailure(f"organisation {kvk} is not known to the sandbox sandbox:{db_path}")


# ------------------------------------------------------------------------------------------------ building
class _Namer:
    """Service UUIDs -> catalogue keys a config can write, collecting what a catalogue file must add."""

    def __init__(self, services: Catalogue, bundled: Catalogue, catalogue_file: str | None) -> None:
        self.services = services
        self.bundled = bundled
        self.catalogue_file = catalogue_file
        self.extra: dict[str, Service] = {}
        self.needs_file = False            # a service was left out that a catalogue file could have named

    def key(self, uuid: str) -> tuple[str | None, str]:
        """(key, "") or (None, why it cannot be named)."""
        service = self.services.by_uuid(uuid)
        if service is None:
            return None, f"service {uuid} is not in the backend's service list, so no key names it"
        known = self.bundled.get(service.key)
        if known is not None and _same(known, service):
            return service.key, ""
        if self.catalogue_file is None:
            self.needs_file = True
            return None, (f"service {service.key} ({uuid}) is not in the bundled catalogue"
                          + (" with this UUID and level" if known else "")
                          + "; import with --out DIR to have it written to a catalogue file")
        self.extra[service.uuid] = _complete(service)
        return service.key, ""

    def describe(self, uuid: str) -> str:
        service = self.services.by_uuid(uuid)
        return f"{service.key} ({uuid})" if service else uuid


def _same(a: Service, b: Service) -> bool:
    """Whether a config naming the key means the same thing to validate and plan (UUID, level, flags)."""
    return (a.uuid, a.level, a.belastingdienst, a.general) == (b.uuid, b.level, b.belastingdienst, b.general)


def _complete(service: Service) -> Service:
    """A catalogue file needs a provider and a name; the backend may leave them empty."""
    return replace(service, provider=service.provider or service.key.split("/")[0], name=service.name or service.key)


def build_org(snap: Snapshot, *, catalogue_file: str | None, when: dt.datetime) -> ImportedOrg:
    """The organisation file for `snap` (pure): what `reconciler plan` finds nothing to do for."""
    state = snap.state
    namer = _Namer(snap.services, bundled_catalogue(), catalogue_file)
    org = ImportedOrg(kvk=snap.kvk, name=state.info.name, branch_number=state.info.branch_number)
    org.header = _header(snap, when)
    for means_id, membership in state.members.items():
        means = snap.world.means[means_id]
        user = _user(means, membership, state.authorisations.get(means_id, {}), snap.today, namer)
        reason = _left_out_reason(means, membership)
        if reason:
            org.users_left_out.append(LeftOut([reason], user=user))
        else:
            org.users.append(user)
    _keep_a_beheerder(org)
    org.users_left_out.sort(key=lambda item: item.user.sort_key() if item.user else (2, ""))
    for ikvk, chain in sorted(state.chains.items()):
        _chain(org, ikvk, chain.name, chain.ends, snap.today, namer)
    if namer.extra:
        org.catalogue = list(namer.extra.values())
        org.catalogue_file = catalogue_file
    if namer.needs_file:
        org.warnings.append("some authorisations name services the bundled catalogue does not have; they are left "
                            "out (see the comments): --out DIR also writes a catalogue file for them")
    return org


def _header(snap: Snapshot, when: dt.datetime) -> list[str]:
    stamp = when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    read_as = f", read as {snap.acting_admin}" if snap.acting_admin else ""
    revision = f", revision {snap.revision}" if snap.revision is not None else ""
    return [
        f"KvK {snap.kvk}: imported by `reconciler import` at {stamp} (UTC)",
        f"from the beheer backend {snap.backend}",
        f"(its today {snap.today}{revision}{read_as}).",
        "",
        "Declared as the backend holds it: the people with their roles, levels and second factors, and the",
        "authorisations with the fixed end dates they have (write `rolling` to keep one extended). `reconciler",
        "plan` on this file has nothing to do. Comments mark what is transient and what was left out. Review it,",
        "put it in git, and from then on change access here.",
    ] + ([] if snap.today == dt.date.today() else [
        "", f"The backend's today ({snap.today}) is not today's date: `reconciler validate --today {snap.today}`",
        "judges the end dates as the backend does."])


def _left_out_reason(means: Means, membership: Membership) -> str | None:
    what = f"{means.email} ({membership.role.value}, {means.level})"
    if means.status is Status.ACTIVATIE_VERLOPEN:
        deadline = f" on {means.activation_deadline}" if means.activation_deadline else ""
        return (f"Left out: {what}. Its activation lapsed{deadline} (R5). Declared, the plan sends a new "
                "activation letter at once (it costs money): uncomment it if that is wanted. Undeclared, "
                "`policy.prune: false` leaves it alone.")
    return None


def _keep_a_beheerder(org: ImportedOrg) -> None:
    """A file needs a beheerder (R1): should only left-out people be admins, the first is declared after all."""
    if any(u.is_admin for u in org.users):
        return
    for item in org.users_left_out:
        if item.user is not None and item.user.is_admin:
            org.users_left_out.remove(item)
            item.user.notes[:0] = item.notes + ["Declared all the same: the file needs a beheerder (R1)."]
            org.users.append(item.user)
            return


def _user(means: Means, membership: Membership, held: dict[str, dt.date], today: dt.date,
          namer: _Namer) -> ImportedUser:
    user = ImportedUser(email=means.email, name=means.name or means.email.split("@")[0], role=membership.role,
                        level=means.level, type=means.type, second_factor=means.second_factor,
                        phone=means.phone, subscription=means.subscription)
    notes = user.notes
    if not means.name:
        notes.append("The backend has no name for this means; the part of the e-mail before @ stands in.")
    if means.status is Status.WACHTEN_OP_GOEDKEURING:
        notes.append("Transient: requested, it awaits the supplier's approval, then the holder's activation (R5).")
    elif means.status is Status.WACHTEN_OP_ACTIVATIE:
        by = f" by {means.activation_deadline}" if means.activation_deadline else ""
        notes.append(f"Transient: approved, it awaits activation by the holder{by} (R5).")
    pending = means.pending
    if pending is not None and pending.kind is PendingKind.LEVEL and pending.level is not None:
        user.level = pending.level
        notes.append(f"Transient: a level change {means.level} -> {pending.level} awaits the supplier (R6). Declared "
                     f"at {pending.level}, so the plan waits for it instead of asking again; until then it is "
                     f"{means.level}.")
    elif pending is not None and pending.kind is PendingKind.LINK:
        role = f" as {pending.role.value}" if pending.role else ""
        notes.append(f"Transient: a link of this means to organisation {pending.kvk}{role} awaits the supplier (R15).")
    _second_factor(user, means)
    if membership.terminates_on is not None:
        user.until = membership.terminates_on
        notes.append(f"Its end on {membership.terminates_on} is scheduled in the backend (R14): declared as the "
                     "person's until, which caps its authorisations too; the backend cannot move it.")
    if not means.active and held:
        notes.append(f"Left out: {', '.join(sorted(namer.describe(u) for u in held))}, held by a means that is not "
                     "active (declared, the plan would wait for its activation).")
        return user
    for uuid, end in sorted(held.items()):
        if end <= today:
            notes.append(f"Left out: {namer.describe(uuid)} until {end}: it ends today (R9).")
            continue
        key, why = namer.key(uuid)
        if key is None:
            notes.append(f"Left out: the authorisation until {end}: {why}. `policy.prune: false` leaves it alone.")
        else:
            user.authorisations.append(ImportedAuthorisation(key, end))
    return user


def _second_factor(user: ImportedUser, means: Means) -> None:
    """What the file must say for validate (R19) without the plan changing anything: the backend's factor;
    for a pending upgrade from EH2 the factor chosen with it, which the backend's lists do not show."""
    if user.second_factor is SecondFactorType.SMS:
        phone = means.phone or ""
        if E164.match(phone):
            return
        fixed = to_e164(phone)
        if fixed is not None:
            user.phone = fixed
            user.notes.append(f"The backend has the mobile number as {phone!r}; written in E.164 form (the plan "
                              "sets it so).")
            return
        user.phone = None
        if not rules.needs_second_factor(user.level):
            user.second_factor = None
            user.notes.append("The backend has sms as second factor without a usable mobile number; not declared "
                              "(this level needs none).")
            return
        user.second_factor = SecondFactorType.OTP
        user.notes.append("The backend has sms as second factor without a usable mobile number: `otp` is a "
                          "placeholder so the file validates (R19). Write {type: sms, phone: \"+316...\"}.")
        return
    if user.second_factor is None and rules.needs_second_factor(user.level):
        user.second_factor = SecondFactorType.OTP
        user.notes.append(f"{user.level} needs a second factor (R19); the one chosen with the pending change is not in "
                          "the backend's lists, so `otp` is a placeholder: check it (once the change is processed, "
                          "`reconciler plan` reports a manual step if it differs).")


def _chain(org: ImportedOrg, ikvk: str, name: str | None, ends: dict[str, dt.date], today: dt.date,
           namer: _Namer) -> None:
    """An intermediary's chain authorisations as config entries, one per end date (each has its own, R18); the
    whole intermediary is left out when one of its services cannot be named (declared without it, the plan
    would revoke it)."""
    label = f"{name} ({ikvk})" if name else ikvk
    by_end: dict[dt.date, list[str]] = {}
    unnamed: list[str] = []
    for uuid, end in sorted(ends.items()):
        key, why = namer.key(uuid)
        if key is None:
            unnamed.append(why)
        else:
            by_end.setdefault(end, []).append(key)
    for end, keys in sorted(by_end.items()):
        chain = ImportedChain(ikvk, name, sorted(keys), end)
        if end <= today:
            org.chains_left_out.append(LeftOut([f"Left out: the chain authorisation of {label} for "
                                                f"{', '.join(sorted(keys))}: it ends today (R9)."], chain=chain))
        elif unnamed:
            org.chains_left_out.append(LeftOut([
                f"Left out: the chain authorisation of {label} until {end}, because not all its services can be "
                "named: " + "; ".join(unnamed) + ". Declared without them, the plan would revoke them; "
                "undeclared, `policy.prune: false` leaves the intermediary alone."], chain=chain))
        else:
            org.chains.append(chain)
    if unnamed and not by_end:
        org.chains_left_out.append(LeftOut([f"Left out: the chain authorisation of {label}: none of its services "
                                            "can be named: " + "; ".join(unnamed) + "."]))


__all__ = ["ImportFailure", "Snapshot", "build_org", "read_snapshot"]
