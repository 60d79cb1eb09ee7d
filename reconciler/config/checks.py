"""Domain checks that need no backend: references, levels and the rules a file alone can break.

Each finding carries its rule id (R1..R20, see RULES.md) or a named check, and the position of the node
that is wrong, so a beheerder can fix the exact line.
"""

from __future__ import annotations

import datetime as dt
import difflib
import unicodedata
from collections import defaultdict
from functools import lru_cache
from typing import Sequence

from reconciler.config.effective import effective_authorisations, show
from reconciler.config.loaded import LoadedOrg, Reporter
from reconciler.config.models import ROLLING, Authorisation, MeansType, SecondFactorType, Until, User
from reconciler.config.yamlpos import JsonPath
from reconciler.domain import rules
from reconciler.domain.catalogue import Catalogue, Service
from reconciler.domain.levels import Level


def _unknown_service(catalogue: Catalogue, key: str) -> str:
    guess = catalogue.suggest(key)
    hint = f"; did you mean {guess!r}?" if guess else "; `reconciler catalogue list` shows the known services"
    return f"unknown service {key!r}{hint}"


@lru_cache(maxsize=16)
def _latest(today: dt.date) -> dt.date:
    """R9's latest end date for `today`, once per day rather than once per date in the file (50,000 times)."""
    return rules.max_end_date(today)


def check_until(reporter: Reporter, path: JsonPath, until: Until, today: dt.date | None, what: str) -> None:
    """R9: at most 5 years ahead (error); today or in the past means it will be revoked (warning). Without a
    today (plan and apply before the backend has said which day it is) the date is judged later."""
    if today is None or until == ROLLING:
        return
    assert isinstance(until, dt.date)
    latest = _latest(today)
    if until > latest:
        reporter.error(path, "R9", f"until {until} is more than {rules.MAX_YEARS} years after today ({today}); "
                                   f"the latest allowed end date is {latest} (or write `rolling`)")
    elif until <= today:
        reporter.warning(path, "R9", f"until {until} is not after today ({today}): the {what} must not exist "
                                     "and will be revoked")


def check_person_until(reporter: Reporter, at: JsonPath, user: User, today: dt.date | None) -> None:
    """R9 for a person's `until` (at most 5 years ahead); today or in the past, the means ends now (R14)."""
    if user.until is None or today is None:
        return
    latest = _latest(today)
    if user.until > latest:
        reporter.error(at + ("until",), "R9", f"until {user.until} is more than {rules.MAX_YEARS} years after today "
                                              f"({today}); the latest allowed end date is {latest}")
    elif user.until <= today:
        reporter.warning(at + ("until",), "R14", f"until {user.until} is not after today ({today}): the means of "
                                                 f"{user.email} ends now (it is terminated, with its authorisations)")


def _notes_on_dates(org: LoadedOrg, at: JsonPath, user: User, today: dt.date | None) -> None:
    """Every override and cap of `config.effective`, as a note on the line that causes it: the reviewer sees
    that the person's own date, or the person's end, wins over a group."""
    if user.until is None and not (user.groups and user.authorisations):
        return    # nothing to note: an override needs an own entry and a group, a cap the person's until
    effective = effective_authorisations(user, org.config.groups)
    for eff in effective.values():
        if eff.overrides and eff.own is not None:
            named = ", ".join(f"group {g!r} gives {show(u)}" for g, u in eff.groups)
            org.reporter.note(at + ("authorisations", eff.own, "until"), "override",
                              f"{eff.service}: this entry decides for {user.email} ({named}); "
                              + ("it is revoked" if today is not None and isinstance(eff.until, dt.date)
                                 and eff.until <= today else f"until {show(eff.until)}"))
    capped = [eff for eff in effective.values() if eff.capped_from is not None]
    if capped and user.until is not None:
        listed = ", ".join(f"{e.service} (was {show(e.capped_from)})" for e in capped if e.capped_from is not None)
        org.reporter.note(at + ("until",), "cap", f"{user.email} ends on {user.until}: "
                                                  + ("1 authorisation ends" if len(capped) == 1 else
                                                     f"{len(capped)} authorisations end")
                                                  + f" then too: {listed}")


def check_dates(org: LoadedOrg, reporter: Reporter, today: dt.date) -> None:
    """Only the checks that depend on the date (R9), for a file loaded with `today=None`: plan and apply
    learn the backend's today after loading, and judge the dates on it without loading again."""
    cfg = org.config
    for name, group in cfg.groups.items():
        for k, auth in enumerate(group.authorisations):
            check_until(reporter, ("groups", name, "authorisations", k, "until"), auth.until, today, "authorisation")
    for i, user in enumerate(cfg.users):
        check_person_until(reporter, ("users", i), user, today)
        for k, auth in enumerate(user.authorisations):
            check_until(reporter, ("users", i, "authorisations", k, "until"), auth.until, today, "authorisation")
    for i, chain in enumerate(cfg.chain_authorisations):
        check_until(reporter, ("chain_authorisations", i, "until"), chain.until, today, "chain authorisation")


def check_org(org: LoadedOrg, today: dt.date | None) -> None:
    """All single-file domain checks; findings go to the file's reporter."""
    cfg, r, cat = org.config, org.reporter, org.catalogue
    _check_groups(org, today)
    _check_users(org, today)
    _check_chains(org, today)
    if not any(u.is_admin for u in cfg.users):
        r.error(("users",), "R1",
                "no user has role beheerder: every organisation needs at least one active admin (R1); "
                "declare one (the first beheerder is the acting admin)")
    if cfg.organisation.branch_number:
        used = sorted({a.service for u in cfg.users for a in _all_authorisations(org, u)
                       if (s := cat.get(a.service)) is not None and rules.unusable_with_branch_number(s)})
        extra = f"; this file grants {', '.join(used)}" if used else ""
        r.warning(("organisation", "branch_number"), "R17",
                  "an organisation registered with a branch number cannot log in at UWV and Belastingdienst"
                  + extra)


def _all_authorisations(org: LoadedOrg, user: User) -> list[Authorisation]:
    out = list(user.authorisations)
    for name in user.groups:
        group = org.config.groups.get(name)
        if group is not None:
            out.extend(group.authorisations)
    return out


def _check_groups(org: LoadedOrg, today: dt.date | None) -> None:
    cfg, r, cat = org.config, org.reporter, org.catalogue
    used = {g for u in cfg.users for g in u.groups}
    for name, group in cfg.groups.items():
        seen: dict[str, int] = {}
        for k, auth in enumerate(group.authorisations):
            path: JsonPath = ("groups", name, "authorisations", k)
            if auth.service not in cat:
                r.error(path + ("service",), "unknown-service", _unknown_service(cat, auth.service))
            if auth.service in seen:
                r.error(path + ("service",), "duplicate-authorisation",
                        f"service {auth.service!r} is listed twice in group {name!r} (first at item {seen[auth.service]})")
            seen.setdefault(auth.service, k)
            check_until(r, path + ("until",), auth.until, today, "authorisation")
        if name not in used:
            r.warning(("groups", name), "unused-group", f"group {name!r} is given to no user", at_key=True)


def _look_alike(email: str) -> str:
    """An e-mail as a reader sees it: compatibility-normalised (NFKC: composed accents, full-width forms) and
    case-folded, so two spellings a review cannot tell apart compare equal."""
    return unicodedata.normalize("NFKC", email).casefold()


def _line(org: LoadedOrg, user: int) -> int:
    """The line of users[`user`]'s e-mail: a person counts lines in the file, not 0-based list items."""
    return org.doc.mark(("users", user, "email")).line


def _check_users(org: LoadedOrg, today: dt.date | None) -> None:
    cfg, r, cat = org.config, org.reporter, org.catalogue
    first: dict[str, int] = {}
    looks: dict[str, int] = {}                     # e-mails as a reader sees them -> first user
    unmanaged = cfg.policy.unmanaged_keys
    tax_means: list[int] = []
    known: _Grantable = {}
    refused: _Refused = {}
    for i, user in enumerate(cfg.users):
        at: JsonPath = ("users", i)
        alike = _look_alike(user.email)
        if user.key in first:
            r.error(at + ("email",), "duplicate-email",
                    f"{user.email} is declared twice (first on line {_line(org, first[user.key])}); e-mail "
                    "addresses identify people and are compared case-insensitively")
        elif alike in looks:
            r.error(at + ("email",), "duplicate-email",
                    f"{user.email!a} looks the same as {cfg.users[looks[alike]].email!a} on line "
                    f"{_line(org, looks[alike])} but "
                    "is written with other Unicode characters; a reviewer cannot tell them apart: write both the "
                    "same way")
        first.setdefault(user.key, i)
        looks.setdefault(alike, i)
        if user.key in unmanaged:
            r.error(at + ("email",), "unmanaged",
                    f"{user.email} is listed in policy.unmanaged and also declared as a user; it is either managed "
                    "here or left alone, not both")
        if user.is_admin and not rules.admin_level_ok(user.level):
            r.error(at + ("level",), "R2", f"a beheerder needs level {rules.ADMIN_MIN_LEVEL} or higher; "
                                           f"{user.email} has {user.level}")
        _check_second_factor(r, at, user)
        if user.type is MeansType.BELASTINGDIENST:
            tax_means.append(i)
            if user.level != rules.TAX_MEANS_LEVEL:
                r.error(at + ("level",), "R13", f"a belastingdienst means is {rules.TAX_MEANS_LEVEL} only; "
                                                f"{user.email} has {user.level}")
            if user.is_admin:
                r.error(at + ("role",), "R13", "a belastingdienst means can never be a beheerder; make it a gebruiker")
            if len(tax_means) > 1:
                r.error(at + ("type",), "R13", "an organisation has at most one belastingdienst means; "
                                               f"users[{tax_means[0]}] already is one")
        _check_user_authorisations(org, i, user, today, known, refused)
        check_person_until(r, at, user, today)
        _notes_on_dates(org, at, user, today)


def _check_second_factor(r: Reporter, at: JsonPath, user: User) -> None:
    """R19: EH2+, EH3 and EH4 need a second factor; SMS needs a phone number."""
    factor = user.second_factor
    if factor is None:
        if rules.needs_second_factor(user.level):
            r.error(at + ("level",), "R19", f"level {user.level} needs a second factor: add "
                                            "second_factor: {type: sms, phone: \"+316...\"} or {type: otp}")
        return
    if factor.type is SecondFactorType.SMS and not factor.phone:
        r.error(at + ("second_factor", "type"), "R19", "second factor sms needs a phone (E.164, e.g. \"+31612345678\")")
    if factor.type is SecondFactorType.OTP and factor.phone:
        r.warning(at + ("second_factor", "phone"), "R19", "a phone is only used with second factor sms; "
                                                          "it is ignored for otp")


#: (level, type, service key) -> whether a means of that level and type may hold the service (R8, R13)
_Grantable = dict[tuple[Level, MeansType, str], bool]
#: (group, level, type) -> the group's services a means of that level and type may not hold, in the group's order
_Refused = dict[tuple[str, Level, MeansType], list[Service]]


def _grantable(known: _Grantable, user: User, service: Service) -> bool:
    """R8 and R13 for one means and service, remembered: 10,000 users share a few levels and types."""
    key = (user.level, user.type, service.key)
    ok = known.get(key)
    if ok is None:
        ok = known[key] = rules.level_covers(user.level, service.level) and not (
            user.type is MeansType.BELASTINGDIENST and not service.belastingdienst)
    return ok


def _check_user_authorisations(org: LoadedOrg, i: int, user: User, today: dt.date | None,
                               known: _Grantable, refused: _Refused) -> None:
    cfg, r, cat = org.config, org.reporter, org.catalogue
    at: JsonPath = ("users", i)
    seen: dict[str, int] = {}
    for k, auth in enumerate(user.authorisations):
        path = at + ("authorisations", k)
        service = cat.get(auth.service)
        if service is None:
            r.error(path + ("service",), "unknown-service", _unknown_service(cat, auth.service))
        elif not _grantable(known, user, service):
            _check_grantable(r, path + ("service",), user, service, "")
        if auth.service in seen:
            r.error(path + ("service",), "duplicate-authorisation",
                    f"service {auth.service!r} is listed twice for {user.email} (first at item {seen[auth.service]})")
        seen.setdefault(auth.service, k)
        check_until(r, path + ("until",), auth.until, today, "authorisation")
    for j, name in enumerate(user.groups):
        path = at + ("groups", j)
        group = cfg.groups.get(name)
        if group is None:
            known = sorted(cfg.groups)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else (
                f"; known groups: {', '.join(known)}" if known else "; this file declares no groups")
            r.error(path, "unknown-group", f"unknown group {name!r}{hint}")
            continue
        bad = refused.get((name, user.level, user.type))
        if bad is None:             # every user of a group has one of a few levels and types: judged once each
            bad = refused[name, user.level, user.type] = [
                service for auth in group.authorisations
                if (service := cat.get(auth.service)) is not None and not _grantable(known, user, service)]
        for service in bad:
            _check_grantable(r, path, user, service, f" (via group {name!r})")


def _check_grantable(r: Reporter, path: JsonPath, user: User, service: Service, via: str) -> None:
    """R8 (level covers the service) and R13 (a tax means holds Belastingdienst services only)."""
    if not rules.level_covers(user.level, service.level):
        r.error(path, "R8", f"service {service.key!r}{via} needs level {service.level}; "
                            f"{user.email} has {user.level}")
    if user.type is MeansType.BELASTINGDIENST and not service.belastingdienst:
        r.error(path, "R13", f"a belastingdienst means may hold Belastingdienst services only; "
                             f"{service.key!r}{via} is not one")


def _check_chains(org: LoadedOrg, today: dt.date | None) -> None:
    """R18: each chain authorisation (intermediary x service) has its own end date, so an intermediary may have
    several entries (one per `until`); a service twice for one intermediary, or two names, is ambiguous."""
    cfg, r, cat = org.config, org.reporter, org.catalogue
    seen: dict[tuple[str, str], JsonPath] = {}
    named: dict[str, tuple[str, int]] = {}
    for i, chain in enumerate(cfg.chain_authorisations):
        at: JsonPath = ("chain_authorisations", i)
        kvk, name = chain.intermediary.kvk, chain.intermediary.name
        if kvk == cfg.organisation.kvk:
            r.error(at + ("intermediary", "kvk"), "R18",
                    f"KvK {kvk} is this organisation's own; a chain authorisation goes to another organisation")
        if name is not None:
            other = named.setdefault(kvk, (name, i))
            if other[0] != name:
                r.error(at + ("intermediary", "name"), "intermediary-name",
                        f"intermediary {kvk} is named {other[0]!r} in chain_authorisations[{other[1]}] and {name!r} "
                        "here; give it one name (or leave it out here)")
        for k, key in enumerate(chain.services):
            if key not in cat:
                r.error(at + ("services", k), "unknown-service", _unknown_service(cat, key))
            first = seen.setdefault((kvk, key), at + ("services", k))
            if first != at + ("services", k):
                r.error(at + ("services", k), "duplicate-chain-service",
                        f"{key} of intermediary {kvk} is listed twice (first as {_path(first)}); each chain "
                        "authorisation has one end date: list it once")
        check_until(r, at + ("until",), chain.until, today, "chain authorisation")


def _path(at: JsonPath) -> str:
    """`chain_authorisations[0].services[1]`: a place in the file, as a reader finds it."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in at).lstrip(".")


_LINKED_FIELDS = ("level", "type", "name", "second_factor", "subscription")


def check_estate(orgs: Sequence[LoadedOrg]) -> None:
    """Checks across files: one file per KvK; a person in several files is one linked means (R15)."""
    by_kvk: dict[str, LoadedOrg] = {}
    for org in orgs:
        kvk = org.config.organisation.kvk
        if kvk in by_kvk:
            org.reporter.error(("organisation", "kvk"), "duplicate-kvk",
                               f"KvK {kvk} is also declared in {by_kvk[kvk].display}; write one file per organisation")
        else:
            by_kvk[kvk] = org
    if len(orgs) < 2:
        return                      # one file: no means can be linked to another organisation
    people: dict[str, list[tuple[LoadedOrg, int, User]]] = defaultdict(list)
    for org in orgs:
        for i, user in enumerate(org.config.users):
            people[user.key].append((org, i, user))
    for key, entries in people.items():
        if len({id(o) for o, _, _ in entries}) < 2:
            continue
        first_org, first_i, first_user = entries[0]
        for org, i, user in entries[1:]:
            if org is first_org:
                continue
            for name in _LINKED_FIELDS:
                mine, theirs = getattr(user, name), getattr(first_user, name)
                if mine != theirs:
                    shown = _show(theirs)
                    org.reporter.error(("users", i, name), "R15",
                                       f"{user.email} is also in {first_org.display} (one means linked to both "
                                       f"organisations, R15) with {name} {shown}; a linked means has one {name}")


def _show(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, Level):
        return value.value
    if hasattr(value, "value"):
        return str(value.value)  # enums
    if hasattr(value, "model_dump"):
        return str(value.model_dump(mode="json", exclude_none=True))
    return str(value)
