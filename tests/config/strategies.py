"""Hypothesis strategies for organisation files: valid configurations (schema and domain checks, for a
fixed today), structural mutations of JSON-like documents, and text/byte mutations of YAML files."""

from __future__ import annotations

import copy
import datetime as dt
import string
from typing import Any

from hypothesis import strategies as st

from reconciler.domain import rules
from reconciler.domain.catalogue import Service, bundled_catalogue
from reconciler.domain.levels import MEANS_LEVELS, Level

CATALOGUE: list[Service] = list(bundled_catalogue())
TAX_SERVICES = [s for s in CATALOGUE if s.belastingdienst]

_LOWER = string.ascii_lowercase + string.digits


# --- scalars -------------------------------------------------------------------------------------------

def kvks() -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=8, max_size=8)


def free_text(min_size: int = 1, max_size: int = 40) -> st.SearchStrategy[str]:
    """Any text YAML can carry: letters, digits, punctuation that YAML cares about, other scripts, and
    characters a YAML dumper must quote or escape."""
    # Control characters and line/paragraph separators are left out: the schema refuses them in names and
    # descriptions (PyYAML would not even round-trip U+0085); the mutation tests still insert them.
    return st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
                   min_size=min_size, max_size=max_size)


def emails() -> st.SearchStrategy[str]:
    local = st.text(_LOWER + "._-", min_size=1, max_size=12).filter(lambda s: s[0] not in "._-")
    domain = st.text(_LOWER + "-", min_size=1, max_size=10).filter(lambda s: s[0] != "-")
    tld = st.sampled_from(["nl", "com", "eu", "org"])
    mixed_case = st.booleans()
    return st.builds(lambda lo, do, t, up: f"{lo.upper() if up else lo}@{do}.{t}", local, domain, tld, mixed_case)


def group_names() -> st.SearchStrategy[str]:
    return st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,15}\Z")


def phones() -> st.SearchStrategy[str]:
    return st.from_regex(r"\A\+[1-9][0-9]{6,14}\Z")


def untils(today: dt.date) -> st.SearchStrategy[str]:
    """`rolling` or a date R9 allows: after today, at most 5 years ahead."""
    latest = rules.max_end_date(today)
    dates = st.dates(min_value=today + dt.timedelta(days=1), max_value=latest).map(dt.date.isoformat)
    return st.one_of(st.just("rolling"), dates, st.just(latest.isoformat()))


def max_removals() -> st.SearchStrategy[int | str]:
    return st.one_of(
        st.integers(min_value=0, max_value=10_000),
        st.integers(min_value=0, max_value=100).map(lambda p: f"{p}%"),
        st.builds(lambda p, d: f"{p}.{d}%", st.integers(0, 99), st.integers(0, 99)),
    )


def renew_befores() -> st.SearchStrategy[str]:
    return st.integers(min_value=1, max_value=9999).map(lambda n: f"{n}d")


# --- a whole valid configuration -----------------------------------------------------------------------

def _authorisations(draw: st.DrawFn, services: list[Service], today: dt.date, max_size: int = 3) -> list[dict]:
    if not services:
        return []
    chosen = draw(st.lists(st.sampled_from(services), max_size=max_size, unique_by=lambda s: s.key))
    return [{"service": s.key, "until": draw(untils(today))} for s in chosen]


@st.composite
def valid_configs(draw: st.DrawFn, today: dt.date) -> dict[str, Any]:
    """An organisation file (as plain data) that the schema accepts and the domain checks find nothing in.

    Invariants kept: unique e-mails (case-insensitively) and not in policy.unmanaged; at least one
    beheerder of level EH2+ or higher; every level covers its services (also through groups); EH2+/EH3
    have a second factor, sms with a phone, otp without; at most one belastingdienst means (EH3,
    gebruiker, Belastingdienst services only, no groups); every group is used; intermediaries unique and
    not the organisation itself; end dates after today and at most 5 years ahead.
    """
    kvk = draw(kvks())
    doc: dict[str, Any] = {"version": 1, "organisation": {"kvk": kvk, "name": draw(free_text(1, 60))}}

    groups: dict[str, dict[str, Any]] = {}
    for name in draw(st.lists(group_names(), max_size=3, unique=True)):
        group: dict[str, Any] = {"authorisations": _authorisations(draw, CATALOGUE, today)}
        if draw(st.booleans()):
            group["description"] = draw(free_text(0, 40))
        groups[name] = group

    def group_level(name: str) -> Level:
        levels = [next(s.level for s in CATALOGUE if s.key == a["service"]) for a in groups[name]["authorisations"]]
        return max(levels, default=Level.EH1)

    all_emails = draw(st.lists(emails(), min_size=1, max_size=6, unique_by=str.lower))
    unmanaged_count = draw(st.integers(0, min(2, len(all_emails) - 1)))
    user_emails, unmanaged = all_emails[unmanaged_count:], all_emails[:unmanaged_count]

    users: list[dict[str, Any]] = []
    has_tax = False
    for i, email in enumerate(user_emails):
        tax = not has_tax and i > 0 and draw(st.integers(0, 4)) == 0
        if tax:
            has_tax = True
            role, level = "gebruiker", Level.EH3
        elif i == 0:
            role, level = "beheerder", draw(st.sampled_from([Level.EH2PLUS, Level.EH3, Level.EH4]))
        else:
            role = draw(st.sampled_from(["beheerder", "gebruiker"]))
            allowed = [lv for lv in MEANS_LEVELS if role == "gebruiker" or rules.admin_level_ok(lv)]
            level = draw(st.sampled_from(allowed))
        user: dict[str, Any] = {"email": email, "name": draw(free_text(1, 40)), "role": role, "level": level.value}
        if tax:
            user["type"] = "belastingdienst"
        elif draw(st.booleans()):
            user["type"] = "regulier"
        if rules.needs_second_factor(level) or draw(st.booleans()):
            if draw(st.booleans()):
                user["second_factor"] = {"type": "sms", "phone": draw(phones())}
            else:
                user["second_factor"] = {"type": "otp"}
        if draw(st.booleans()):
            user["subscription"] = draw(st.sampled_from(["1y", "3y"]))
        if not tax:
            usable = [g for g in groups if group_level(g) <= level]
            if usable:
                chosen = draw(st.lists(st.sampled_from(usable), max_size=len(usable), unique=True))
                if chosen or draw(st.booleans()):
                    user["groups"] = chosen
        services = TAX_SERVICES if tax else [s for s in CATALOGUE if s.level <= level]
        auths = _authorisations(draw, services, today)
        if auths or draw(st.booleans()):
            user["authorisations"] = auths
        users.append(user)
    # Groups nobody uses would be (correctly) warned about; keep only used ones.
    used = {g for u in users for g in u.get("groups", ())}
    groups = {name: g for name, g in groups.items() if name in used}

    if draw(st.booleans()):
        policy: dict[str, Any] = {}
        if draw(st.booleans()):
            policy["prune"] = draw(st.booleans())
        if draw(st.booleans()):
            policy["max_removals"] = draw(max_removals())
        if draw(st.booleans()):
            policy["renew_before"] = draw(renew_befores())
        if unmanaged or draw(st.booleans()):
            policy["unmanaged"] = unmanaged
        doc["policy"] = policy
    if groups or draw(st.booleans()):
        doc["groups"] = groups
    doc["users"] = users

    chains = []
    for other in draw(st.lists(kvks().filter(lambda k: k != kvk), max_size=2, unique=True)):
        intermediary: dict[str, Any] = {"kvk": other}
        if draw(st.booleans()):
            intermediary["name"] = draw(free_text(0, 40))
        services = draw(st.lists(st.sampled_from([s.key for s in CATALOGUE]), min_size=1, max_size=3, unique=True))
        chains.append({"intermediary": intermediary, "services": services, "until": draw(untils(today))})
    if chains or draw(st.booleans()):
        doc["chain_authorisations"] = chains

    # Key order is not meaningful; shuffle the top level to make sure nothing depends on it.
    keys = draw(st.permutations(list(doc)))
    return {k: doc[k] for k in keys}


# --- structural mutations (for the schema validators) -----------------------------------------------------

def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_paths(v, prefix + (k,)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_paths(v, prefix + (i,)))
    return out


def json_values(strings: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    """Any JSON-like value a YAML file can produce."""
    text = strings if strings is not None else st.one_of(
        free_text(0, 12),
        st.sampled_from(["rolling", "EH2", "EH2+", "EH3", "EH4", "EH1", "beheerder", "gebruiker", "sms", "otp",
                         "belastingdienst", "regulier", "1y", "3y", "25%", "100%", "101%", "60d", "12345678",
                         "123456789", "2025-02-29", "2024-02-29", "2030-06-01", "2025-13-01", "a@b.nl", "a@b",
                         "+31612345678", "000012345678", "rvo/tenderned", "Finance", "finance", "", " "]),
    )
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**40), st.floats(allow_nan=False), text)
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(free_text(1, 8), inner, max_size=3)),
                        max_leaves=6)


@st.composite
def mutated(draw: st.DrawFn, doc: Any, values: st.SearchStrategy[Any] | None = None) -> Any:
    """`doc` with 1-3 changes: a value replaced, a key deleted or renamed, a key or list item added."""
    doc = copy.deepcopy(doc)
    values = values if values is not None else json_values()
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        op = draw(st.sampled_from(["replace", "delete", "rename", "add"]))
        if not path:
            if op == "replace":
                doc = draw(values)
            continue
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if op == "replace":
            parent[last] = draw(values)
        elif op == "delete":
            del parent[last]
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(free_text(1, 10))] = parent.pop(last)
        elif op == "add":
            target = parent[last]
            if isinstance(target, dict):
                target[draw(free_text(1, 10))] = draw(values)
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(values))
            else:
                parent[last] = draw(values)
    return doc


def string_paths(doc: Any) -> list[tuple]:
    """Paths of every string value in `doc`."""
    out = []
    for path in _paths(doc):
        node = doc
        for part in path:
            node = node[part]
        if isinstance(node, str):
            out.append(path)
    return out


# --- text and byte mutations (for the loader) -----------------------------------------------------------

YAML_NOISE = st.one_of(
    st.sampled_from(list(":-[]{}&*!|>'\"%@`#,? \t\n\r") + ["\\", "---", "...", "<<: ", "!!python/object:x ",
                                                         "&a ", "*a", "\ufeff", "\x00", "\x07", "\x85", "é"]),
    free_text(1, 5),
)


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> str:
    """`text` with 1-5 edits: characters deleted, inserted or replaced; lines deleted, duplicated or
    swapped; or the text truncated."""
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["delete", "insert", "replace", "del-line", "dup-line", "swap-lines", "truncate"]))
        n = len(text)
        if op in ("delete", "replace"):
            if n == 0:
                continue
            start = draw(st.integers(0, n - 1))
            end = min(n, start + draw(st.integers(1, 8)))
            new = draw(YAML_NOISE) if op == "replace" else ""
            text = text[:start] + new + text[end:]
        elif op == "insert":
            at = draw(st.integers(0, n))
            text = text[:at] + draw(YAML_NOISE) + text[at:]
        elif op == "truncate":
            text = text[: draw(st.integers(0, n))]
        else:
            lines = text.splitlines(keepends=True)
            if not lines:
                continue
            i = draw(st.integers(0, len(lines) - 1))
            if op == "del-line":
                del lines[i]
            elif op == "dup-line":
                lines.insert(i, lines[i])
            else:
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
    return text


@st.composite
def mutated_bytes(draw: st.DrawFn, raw: bytes) -> bytes:
    """`raw` with a few arbitrary bytes inserted or overwritten."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        chunk = draw(st.binary(min_size=1, max_size=4))
        if draw(st.booleans()):
            data[at:at] = chunk
        else:
            data[at:at + len(chunk)] = chunk
    return bytes(data)
