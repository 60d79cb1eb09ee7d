"""A plan as one pull-request comment (GitHub-flavoured markdown).

Layout, top to bottom:
- a hidden marker line (so CI can find and update its own comment) and a title line with the summary:
  counts, API calls, cost;
- when the plan needs `--force` (over `policy.max_removals`), a warning naming the organisations;
- the privilege escalations of every organisation (new admins, upgrades, general authorities, new
  intermediaries: changes with `escalation=True`) in their own table, first;
- then the removals (terminations with what the person loses, revokes, demotions, removed intermediaries:
  changes with `removal=True` or symbol `-`) in theirs;
- plan-wide warnings;
- one collapsible `<details>` section per organisation: tables of changes (symbol, action, target, detail,
  origin when set), deferred and manual steps (rule, reason), unmanaged objects, and its warnings;
- a footer with what the plan was made on (tool version, today, backend, config digest).

Every value that comes from a config or the backend (e-mails, names, reasons, ...) is escaped: it cannot end
a table cell, start markdown formatting, open an HTML tag or @-mention someone on GitHub; a newline becomes
`<br>`. The comment stays within `limit` characters: when the whole plan does not fit, it is cut between two
items (table rows or list items), every open table and `<details>` is closed, and a note near the top says
how many items were left out and points to the JSON plan. The output is a pure function of the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from reconciler.plan.model import Change, Deferred, Manual, OrgPlan, Plan
from reconciler.render.consequences import consequences
from reconciler.render.safe import MAX_TEXT as MAX_TEXT, md as md, md_html, md_line as md_line

#: The escapers live in `reconciler.render.safe` (one for every renderer); these names stay for callers.
html = md_html

#: GitHub refuses comments over 65,536 characters; the default leaves room for what a CI job adds.
DEFAULT_LIMIT = 60_000
#: Below this there is no room for the title, the note and a few items.
MIN_LIMIT = 1_000
#: The first line: hidden when rendered; lets a CI job find (and update) its previous comment.
MARKER = "<!-- reconciler:plan -->"
#: Long lists in one cell are shortened (the JSON plan has them in full; `safe.MAX_TEXT` shortens long texts).
MAX_LIST = 25
#: Organisations named in the "needs --force" warning (each section says it too).
MAX_FORCE_LISTED = 10
#: Marks a privilege escalation (the warning sign emoji).
ESCALATION = "\u26a0\ufe0f"


def _targets(target: str | list[str]) -> str:
    if isinstance(target, str):
        return md(target)
    shown = ", ".join(md(t) for t in target[:MAX_LIST])
    more = len(target) - MAX_LIST
    return shown + (f" and {more} more" if more > 0 else "")


def _code(word: str) -> str:
    """The tool's own words (actions, symbols) as code; never used for values from a config or backend."""
    return f"`{word}`"


# ------------------------------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class _Column:
    title: str
    cell: Callable[[Any], str]          # the item (a Change, Deferred, Manual or Unmanaged) -> its cell


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c if c else " " for c in cells) + " |\n"


def _header(columns: Sequence[_Column]) -> str:
    return _row([c.title for c in columns]) + _row(["---"] * len(columns))


def _origin(item: Change | Deferred | Manual) -> str:
    return md(item.origin.value) if item.origin is not None else ""


def _symbol(change: Change) -> str:
    return _code(change.symbol) + (f" {ESCALATION}" if change.escalation else "")


def _change_columns(changes: Sequence[Change], *, organisation: bool = False) -> list[_Column]:
    columns = [_Column(" ", _symbol)]
    if organisation:
        columns.append(_Column("organisation", lambda c: md(c.kvk)))
    columns += [_Column("action", lambda c: _code(c.action.value)),
                _Column("target", lambda c: _targets(c.target)),
                _Column("detail", lambda c: md("\n".join([c.detail, *consequences(c)]).strip()))]
    if any(c.origin is not None for c in changes):
        columns.append(_Column("origin", _origin))
    return columns


def _other_user(item: Deferred | Manual) -> bool:
    """Whether the step is about a user other than its target (say, the services a user waits for)."""
    return item.person is not None and item.target != item.person


def _step_columns(items: Sequence[Deferred | Manual]) -> list[_Column]:
    columns = [_Column("action", lambda i: _code(i.action.value)),
               _Column("target", lambda i: _targets(i.target))]
    if any(_other_user(i) for i in items):
        columns.append(_Column("user", lambda i: md(i.person) if _other_user(i) else ""))
    if any(i.detail for i in items):
        columns.append(_Column("detail", lambda i: md(i.detail)))
    columns += [_Column("rule", lambda i: md(i.rule)),
                _Column("reason", lambda i: md(i.reason))]
    if any(i.origin is not None for i in items):
        columns.append(_Column("origin", _origin))
    return columns


_UNMANAGED_COLUMNS = [_Column("kind", lambda u: md(u.kind)), _Column("target", lambda u: md(u.target)),
                      _Column("detail", lambda u: md(u.detail))]

#: An item's place in the plan: (section, organisation index, index); escalation rows reuse their change's.
Key = tuple[str, int, int]


# ------------------------------------------------------------------------------------------------- writer
class _Writer:
    """Appends whole pieces while they fit in `capacity`, always keeping room for the closers of the open
    blocks; after the first piece that does not fit it writes nothing more (so the cut is between items)."""

    def __init__(self, capacity: int) -> None:
        self.parts: list[str] = []
        self.used = 0
        self.capacity = capacity
        self.closers: list[str] = []
        self.cut = False
        self.shown: set[Key] = set()

    def fits(self, size: int) -> bool:
        return self.used + size + sum(len(c) for c in self.closers) <= self.capacity

    def put(self, text: str, closer: str = "") -> bool:
        """Write `text` (opening a block that `closer` ends) when it fits with every closer; else stop."""
        if self.cut or not self.fits(len(text) + len(closer)):
            self.cut = True
            return False
        self._append(text)
        if closer:
            self.closers.append(closer)
        return True

    def _append(self, text: str) -> None:
        self.parts.append(text)
        self.used += len(text)

    def close(self) -> None:
        self._append(self.closers.pop())

    def close_all(self) -> None:
        while self.closers:
            self.close()

    def _block(self, opening: str, rows: Iterator[tuple[Key, str]]) -> None:
        """`opening` and the first row together (never an empty table or list), then row by row."""
        first = next(rows, None) if not self.cut else None
        if first is None or not self.put(opening + first[1], closer="\n"):
            return
        self.shown.add(first[0])
        for key, row in rows:
            if not self.put(row):
                break
            self.shown.add(key)
        self.close()

    def table(self, heading: str, columns: Sequence[_Column], items: Sequence[tuple[Key, object]]) -> None:
        self._block(f"{heading}\n\n{_header(columns)}",
                    ((key, _row([col.cell(obj) for col in columns])) for key, obj in items))

    def bullets(self, heading: str, items: Sequence[tuple[Key, str]]) -> None:
        self._block(f"{heading}\n\n", ((key, f"- {md_line(text)}\n") for key, text in items))


# ------------------------------------------------------------------------------------------------- render
def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def title(plan: Plan) -> str:
    """The title line: what the plan does, how many API calls it makes and what it costs."""
    s = plan.summary()
    parts = [f"{s['add']} to add", f"{s['change']} to change", f"{s['remove']} to remove"]
    parts += [f"{s[key]} {key}" for key in ("deferred", "manual", "unmanaged") if s[key]]
    currency = md(plan.cost.currency)
    cost = f"cost {currency} {plan.cost.once:.2f} once and {currency} {plan.cost.yearly:.2f} a year"
    return f"### Plan: {', '.join(parts)} \u00b7 {_plural(s['api_calls'], 'API call')} \u00b7 {cost}\n\n"


def _force_warning(plan: Plan) -> str:
    lines = ["> [!WARNING]\n",
             "> **Needs `--force`**: this plan removes more than `policy.max_removals` allows; "
             "`reconciler apply` refuses it without `--force`.\n"]
    over = [o for o in plan.organisations if o.over_threshold]
    lines += [f"> - {md(o.kvk)} {md(o.name)}: {_plural(o.removals, 'removal')}, the limit is {o.removal_limit} "
              f"of {o.existing_objects} objects\n" for o in over[:MAX_FORCE_LISTED]]
    if len(over) > MAX_FORCE_LISTED:
        lines.append(f"> - and {len(over) - MAX_FORCE_LISTED} more organisations\n")
    return "".join(lines) + "\n"


def _org_summary(org: OrgPlan) -> str:
    said = [text for n, text in ((len(org.changes), _plural(len(org.changes), "change")),
                                 (len(org.deferred), f"{len(org.deferred)} deferred"),
                                 (len(org.manual), f"{len(org.manual)} manual"),
                                 (len(org.unmanaged), f"{len(org.unmanaged)} unmanaged"),
                                 (len(org.warnings), _plural(len(org.warnings), "warning"))) if n]
    escalations = sum(1 for c in org.changes if c.escalation)
    if escalations:
        said.append(f"{ESCALATION} {_plural(escalations, 'privilege escalation')}")
    if org.over_threshold:
        said.append("needs --force")
    return f"<summary><b>{html(org.name)}</b> (KvK {html(org.kvk)}): {', '.join(said) or 'no changes'}</summary>"


def _org_meta(org: OrgPlan) -> str:
    facts = []
    if org.revision is not None:
        facts.append(f"Planned on backend revision {org.revision}")
    if (acting := org.acting(md)) is not None:
        facts.append(acting if facts else "A" + acting[1:])
    text = ", ".join(facts) + ("." if facts else "")
    if org.matches:
        text = (text + " " if text else "") + "No changes: the backend matches the config."
    return text + "\n\n" if text else ""


def _organisation(out: _Writer, index: int, org: OrgPlan) -> bool:
    """The organisation's `<details>` section (as much of it as fits); False when not even its summary fits."""
    if not out.put(f"<details>\n{_org_summary(org)}\n\n{_org_meta(org)}", closer="</details>\n\n"):
        return False
    if org.over_threshold:
        out.put(f"**Refused without `--force`**: {_plural(org.removals, 'removal')}, more than "
                f"`policy.max_removals` allows ({org.removal_limit} of {org.existing_objects} objects).\n\n")

    def keyed(section: str, items: Sequence[object]) -> list[tuple[Key, object]]:
        return [((section, index, i), obj) for i, obj in enumerate(items)]

    out.table(f"**Changes** ({len(org.changes)})", _change_columns(org.changes),
              keyed("changes", org.changes))
    out.table(f"**Deferred** ({len(org.deferred)}: cannot happen yet)", _step_columns(org.deferred),
              keyed("deferred", org.deferred))
    out.table(f"**Manual** ({len(org.manual)}: a person must act; the reconciler cannot)",
              _step_columns(org.manual), keyed("manual", org.manual))
    out.table(f"**Unmanaged** ({len(org.unmanaged)}: not in the config; `policy.prune` is false, so left alone)",
              _UNMANAGED_COLUMNS, keyed("unmanaged", org.unmanaged))
    out.bullets(f"**Warnings** ({len(org.warnings)})",
                [(("warnings", index, i), w) for i, w in enumerate(org.warnings)])
    out.close()
    return True


def _footer(plan: Plan) -> str:
    facts = [f"reconciler {md(plan.tool_version)}".strip(), f"today {plan.today.isoformat()}"]
    if plan.backend:
        facts.append(f"backend {md(plan.backend)}")
    if plan.config_digest:
        facts.append(f"config {md(plan.config_digest)}")
    if plan.compared_to:
        facts.append(f"compared to {md(plan.compared_to)}")
    return "<sub>" + " \u00b7 ".join(facts) + "</sub>\n"


def _all_items(plan: Plan) -> list[Key]:
    """Every item of the plan, once (an escalation is a change: shown in either table, it counts as shown)."""
    keys: list[Key] = [("plan-warnings", -1, i) for i in range(len(plan.warnings))]
    for o, org in enumerate(plan.organisations):
        for section in ("changes", "deferred", "manual", "unmanaged", "warnings"):
            keys += [(section, o, i) for i in range(len(getattr(org, section)))]
    return keys


def _note(omitted: int, total: int, organisations: int, limit: int) -> str:
    orgs = f" (and {_plural(organisations, 'organisation')} entirely)" if organisations else ""
    return (f"> [!NOTE]\n> **Cut short**: {omitted} of the plan's {total} items{orgs} are left out of this "
            f"comment to stay within {limit} characters. See the JSON plan artifact "
            "(`reconciler plan --out plan.json`) for the full plan.\n\n")


def render_markdown(plan: Plan, *, limit: int = DEFAULT_LIMIT) -> str:
    """The plan as one pull-request comment of at most `limit` characters (see the module docstring)."""
    if limit < MIN_LIMIT:
        raise ValueError(f"limit must be at least {MIN_LIMIT} characters, not {limit}")
    out, _, _ = _write(plan, limit)
    if not out.cut:
        return "".join(out.parts)
    items = _all_items(plan)
    room = len(_note(len(items), len(items), len(plan.organisations), limit))   # the longest the note can be
    out, head, sections = _write(plan, limit - room)
    omitted = sum(1 for key in items if key not in out.shown)
    note = _note(omitted, len(items), len(plan.organisations) - sections, limit)
    return head + note + "".join(out.parts)[len(head):]


def _write(plan: Plan, capacity: int) -> tuple[_Writer, str, int]:
    """Everything that fits in `capacity`: the writer, the head (title and force warning) it starts with,
    and how many organisation sections it opened."""
    head = f"{MARKER}\n{title(plan)}" + (_force_warning(plan) if plan.force_required else "")
    out = _Writer(capacity)
    if not out.put(head):
        raise ValueError(f"{capacity} characters leave no room for this plan's title (and the note)")
    escalations = [(("changes", o, i), c) for o, org in enumerate(plan.organisations)
                   for i, c in enumerate(org.changes) if c.escalation]
    out.table(f"#### {ESCALATION} Privilege escalations ({len(escalations)})",
              _change_columns([c for _, c in escalations], organisation=True), escalations)
    removals = [(("changes", o, i), c) for o, org in enumerate(plan.organisations)
                for i, c in enumerate(org.changes) if c.removal or c.symbol == "-"]
    out.table(f"#### Removals ({len(removals)}: what is taken away, and from whom)",
              _change_columns([c for _, c in removals], organisation=True), removals)
    out.bullets(f"#### Warnings ({len(plan.warnings)})",
                [(("plan-warnings", -1, i), w) for i, w in enumerate(plan.warnings)])
    sections = 0
    for index, org in enumerate(plan.organisations):
        sections += _organisation(out, index, org)
    out.close_all()
    footer = _footer(plan)
    if not out.cut and out.fits(len(footer)):     # the footer is left out, silently, when it alone does not fit
        out.put(footer)
    return out, head, sections
