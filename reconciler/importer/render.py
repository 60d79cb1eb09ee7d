"""Writing an `ImportedOrg` as an organisation file (and its catalogue file), in the style of
`examples/org.yaml`: block structure, one flow mapping per authorisation, comments where a reader needs them.

YAML is written by hand rather than by a dumper because the comments are the point: they say where the file
came from, which states are transient and what was left out. Every scalar goes through `scalar`, which writes
it plain only when YAML reads it back as the same string, and the whole text is read back and compared with
`ImportedOrg.to_data()` before it is returned.
"""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from typing import Any, Callable, Iterable, Sequence

import yaml

from reconciler.domain.catalogue import dump_catalogue
from reconciler.importer.model import ImportedChain, ImportedOrg, ImportedUser, LeftOut

#: Characters a plain scalar may hold here (besides letters and digits): enough for names, e-mail addresses,
#: service keys and levels, and none that YAML gives a meaning to in block or flow context.
_PLAIN_EXTRA = frozenset(" ._@+/-()'")
#: Width comments are wrapped at.
WIDTH = 110


class RenderError(RuntimeError):
    """The rendered YAML does not read back as the data it was made from (a bug here, never the user's)."""


def scalar(value: str) -> str:
    """`value` as a YAML scalar: plain when that reads back as the same string, else double-quoted."""
    if (value and value[0].isalnum() and value[-1] != " " and all(c.isalnum() or c in _PLAIN_EXTRA for c in value)
            and _reads_back(value)):
        return value
    return quoted(value)


def quoted(value: str) -> str:
    """A double-quoted YAML scalar (JSON's escapes are YAML's; what is not printable is escaped too)."""
    text = json.dumps(value, ensure_ascii=False)
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _reads_back(text: str) -> bool:
    """Whether YAML reads `text` as this string: here (PyYAML, YAML 1.1) and in editors that read YAML 1.2,
    where `1e3` is a number."""
    try:
        float(text.replace("_", ""))
        return False
    except ValueError:
        pass
    try:
        return yaml.safe_load(text) == text
    except yaml.YAMLError:
        return False


def comment(text: str, indent: int = 0) -> list[str]:
    """`text` as comment lines (wrapped; line breaks and control characters of user data cannot escape it)."""
    pad = " " * indent
    out: list[str] = []
    for paragraph in str(text).splitlines() or [""]:
        clean = "".join(c if c.isprintable() else " " for c in paragraph).rstrip()
        lead = len(clean) - len(clean.lstrip(" "))
        lines = textwrap.wrap(clean, WIDTH - indent - 2, subsequent_indent=" " * (lead + 2),
                              break_long_words=False, break_on_hyphens=False) or [""]
        out.extend(f"{pad}# {line}".rstrip() for line in lines)
    return out


def _flow(items: Iterable[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"


def _user_lines(user: ImportedUser) -> list[str]:
    data = user.to_data()
    lines = [f"  - email: {scalar(data['email'])}", f"    name: {scalar(data['name'])}",
             f"    role: {data['role']}", f"    level: {scalar(data['level'])}"]
    if "type" in data:
        lines.append(f"    type: {data['type']}")
    if "second_factor" in data:
        factor = data["second_factor"]
        items = [("type", factor["type"])] + ([("phone", quoted(factor["phone"]))] if "phone" in factor else [])
        lines.append(f"    second_factor: {_flow(items)}")
    if "subscription" in data:
        lines.append(f"    subscription: {data['subscription']}")
    if "until" in data:
        lines.append(f"    until: {data['until']}")
    if "authorisations" in data:
        lines.append("    authorisations:")
        lines.extend(f"      - {_flow([('service', scalar(a['service'])), ('until', a['until'])])}"
                     for a in data["authorisations"])
    return lines


def _chain_lines(chain: ImportedChain) -> list[str]:
    data = chain.to_data()
    intermediary = [("kvk", quoted(data["intermediary"]["kvk"]))]
    if "name" in data["intermediary"]:
        intermediary.append(("name", scalar(data["intermediary"]["name"])))
    return [f"  - intermediary: {_flow(intermediary)}",
            f"    services: [{', '.join(scalar(s) for s in data['services'])}]",
            f"    until: {data['until']}"]


def _commented_out(lines: list[str]) -> list[str]:
    """Entry lines (indented by two) as comments at the same indentation: uncommenting is deleting `# `."""
    return [f"  # {line[2:]}" for line in lines]


def _entries(entries: Sequence[Any], lines: Callable[[Any], list[str]], left_out: Sequence[LeftOut],
             left_lines: Callable[[LeftOut], list[str]]) -> list[str]:
    """The entries of a list (users, chains), each under its notes, then those left out, commented out."""
    out: list[str] = []
    for i, entry in enumerate(entries):
        if i:
            out.append("")
        for note in entry.notes:
            out += comment(note, 2)
        out += lines(entry)
    for item in left_out:
        out.append("")
        out += _left_out(item, left_lines(item))
    return out


def _left_out(item: LeftOut, entry: list[str]) -> list[str]:
    lines: list[str] = []
    for note in item.notes:
        lines += comment(note, 2)
    return lines + _commented_out(entry)


def render_org(org: ImportedOrg) -> str:
    """The organisation file's text; raises `RenderError` if it would not read back as `org.to_data()`."""
    out: list[str] = []
    for line in org.header:
        out += comment(line)
    out += ["version: 1", "organisation:", f"  kvk: {quoted(org.kvk)}"]
    name_line = f"  name: {scalar(org.name)}"
    out.append(name_line + (f"   # {org.name_note}" if org.name_note else ""))
    if org.branch_number:
        out.append(f"  branch_number: {quoted(org.branch_number)}")
    if org.catalogue_file:
        out.append(f"catalogue: {scalar(org.catalogue_file)}   # services the bundled catalogue does not have, "
                   "as the backend lists them")
    out += ["", "policy:",
            "  prune: false    # the safe default: what this file does not declare is left alone (listed as unmanaged)"]
    users = org.sorted_users()
    out += ["", "users:" if users else "# users:    (none declared: uncomment the key with an entry below)"]
    out += _entries(users, _user_lines, org.users_left_out,
                    lambda item: _user_lines(item.user) if item.user else [])
    chains = org.sorted_chains()
    if chains or org.chains_left_out:
        out += ["", "chain_authorisations:" if chains else
                "# chain_authorisations:    (none declared: uncomment the key with an entry below)"]
        out += _entries(chains, _chain_lines, org.chains_left_out,
                        lambda item: _chain_lines(item.chain) if item.chain else [])
    text = "\n".join(out) + "\n"
    _check(text, org.to_data())
    return text


def _plain(value: Any) -> Any:
    """YAML's dates as the ISO strings the config loader keeps them as."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _check(text: str, expected: dict[str, Any]) -> None:
    try:
        got = _plain(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise RenderError(f"the imported YAML does not parse: {exc}") from None
    if got != expected:
        raise RenderError("the imported YAML does not read back as what was imported")


def render_catalogue(org: ImportedOrg, source: str) -> str | None:
    """The catalogue file's text for the services the bundled catalogue cannot name, or None when none."""
    if not org.catalogue:
        return None
    header = (f"Services of the beheer backend {source} that organisation {org.kvk} uses and the bundled catalogue\n"
              "does not have (or has with another UUID or level), as the backend lists them. Written by\n"
              f"`reconciler import`; {org.kvk}.yaml names this file with `catalogue:`.")
    return dump_catalogue(sorted(org.catalogue, key=lambda s: s.key), header)
