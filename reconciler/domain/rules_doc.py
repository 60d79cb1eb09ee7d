"""The rules document, read by rule id: `reconciler explain R8` prints one entry, so a user who meets R8 in a
finding, a plan or a refusal reads what the rule means, where the manual says so, what the backend answers
and what the planner does, without the repository at hand. The document ships in the package
(`reconciler/data/rules.md`; `docs/rules.md` links to it), so installed copies have it too.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

#: A section heading: `## R8 Level covers the service`. Its id is a stable anchor.
_HEADING = re.compile(r"^## (\S+)(?: .*)?$", re.MULTILINE)
#: A rule id as people type it: R8, r8, 8 (leading zeros and spaces are forgiven).
_SPELLING = re.compile(r"\s*[Rr]?0*([1-9][0-9]*)\s*")


def document() -> str:
    """The whole rules document, as packaged."""
    return resources.files("reconciler").joinpath("data", "rules.md").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _entries() -> dict[str, str]:
    """Rule id -> its section (heading included, up to the next `## ` heading), in document order."""
    text = document()
    headings = list(_HEADING.finditer(text))
    out: dict[str, str] = {}
    for n, match in enumerate(headings):
        end = headings[n + 1].start() if n + 1 < len(headings) else len(text)
        if re.fullmatch(r"R[1-9][0-9]*", match.group(1)):
            out[match.group(1)] = text[match.start():end].rstrip() + "\n"
    return out


def ids() -> list[str]:
    """The rule ids the document has an entry for, in its order (R1..R20)."""
    return list(_entries())


def entry(rule_id: str) -> str:
    """The section of rule `rule_id` (`R8`, `r8` or `8`), heading first, ending in one line feed. An id with no
    entry raises ValueError naming the ids there are."""
    entries = _entries()
    match = _SPELLING.fullmatch(rule_id)
    key = f"R{match.group(1)}" if match else None
    if key is None or key not in entries:
        raise ValueError(f"unknown rule {rule_id!r}; the rules are {', '.join(entries)}")
    return entries[key]
