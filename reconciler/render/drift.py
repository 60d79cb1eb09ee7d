"""The drift report as text (a terminal), markdown (an issue), JSON (scripts) and HTML (one self-contained
file a person would rather look at than read: a table per organisation, colour for drift and for expiry,
sortable by clicking a header, printable).

Every value goes through the escaper of its format in `reconciler.render.safe` (the same ones the plan and
the access report use): a name from the backend cannot colour or retitle a terminal, break a markdown table,
open an HTML tag, or hide a raw control character in the JSON."""

from __future__ import annotations

import unicodedata
from dataclasses import asdict
from typing import Any, Callable, Sequence

from reconciler.drift.report import DriftReport, OrgDrift
from reconciler.plan.cost import money
from reconciler.plan.model import target_text
from reconciler.render.safe import html_text, json_text, md, terminal

DRIFT_FORMAT_VERSION = 1
#: The widest a text column gets (in terminal cells); a longer value is cut with "…" (JSON has it in full).
#: The last column of a table is never cut: nothing after it needs to line up.
MAX_TEXT_COLUMN = 60

#: (section title, attribute, columns) in the order every format shows them.
Column = tuple[str, Callable[[Any], object]]
SECTIONS: list[tuple[str, str, list[Column]]] = [
    ("Drift (changed outside git)", "drift", [
        ("change that undoes it", lambda d: d.action), ("who / what", lambda d: d.target),
        ("expected (git)", lambda d: d.expected), ("actual (backend)", lambda d: d.actual),
        ("changed by", lambda d: d.changed_by), ("on", lambda d: d.changed_on or "")]),
    ("Expiring", "expiring", [
        ("kind", lambda e: e.kind), ("who", lambda e: e.who), ("what", lambda e: e.what),
        ("ends", lambda e: e.end_date), ("days left", lambda e: e.days_left), ("then", lambda e: e.renewal)]),
    ("Waiting on people", "waiting", [
        ("who", lambda w: w.who), ("what", lambda w: w.what), ("deadline", lambda w: w.deadline or ""),
        ("detail", lambda w: w.detail)]),
    ("Idle (active, no authorisations for longer than idle_after: a saving to consider)", "idle", [
        ("who", lambda i: i.who), ("name", lambda i: i.name), ("level", lambda i: i.level),
        ("idle since", lambda i: f"{i.since} ({i.since_what})"), ("days", lambda i: i.days),
        ("yearly cost", lambda i: money(i.yearly_cost)), ("note", lambda i: i.note)]),
    ("Unmanaged (in the backend, not in the config; left alone)", "unmanaged", [
        ("kind", lambda u: u.kind), ("what", lambda u: u.target), ("detail", lambda u: u.detail)]),
    ("Manual (no admin can do it through the backend)", "manual", [
        ("step", lambda m: m.action.value), ("target", lambda m: target_text(m.target)), ("rule", lambda m: m.rule),
        ("why", lambda m: m.reason)]),
]


def _rows(org: OrgDrift, attr: str, columns: list[Column]) -> list[list[str]]:
    return [[str(get(item)) for _, get in columns] for item in getattr(org, attr)]


def _summary_line(report: DriftReport) -> str:
    n = report.summary()
    state = "in sync" if report.in_sync else "DRIFT" if n["drift"] else "EXPIRING" if n["expiring"] else "MANUAL"
    letters = n["activation_letters"]
    cost = f" ({letters} new activation letter{'s' if letters != 1 else ''}: {money(n['activation_letters_cost'])})" \
        if letters else ""
    idle = f", {n['idle']} idle ({money(n['idle_yearly_cost'])} a year to consider)" if n["idle"] else ""
    return (f"Drift report {report.today} ({state}): {n['drift']} drifted, {n['expiring']} expiring, "
            f"{n['waiting']} waiting on people{cost}, {n['unmanaged']} unmanaged, {n['manual']} manual{idle}.")


# ----------------------------------------------------------------------------------------------- text
def width(text: str) -> int:
    """Terminal cells `text` takes: wide (East Asian) characters two, combining marks none."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in text)


def _cut(text: str, most: int) -> str:
    """`text` in at most `most` cells, its end replaced by "…" when it is longer."""
    if width(text) <= most:
        return text
    out, used = [], 0
    for c in text:
        w = width(c)
        if used + w > most - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "\u2026"


def _pad(text: str, cells: int) -> str:
    return text + " " * (cells - width(text))


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "    ") -> list[str]:
    """Aligned columns under a header: every cell escaped by `terminal` first (widths are of what is shown),
    each but the last cut at MAX_TEXT_COLUMN, two spaces between columns, no trailing blanks."""
    shown = [[terminal(cell) for cell in row] for row in [list(header), *rows]]
    last = len(header) - 1
    shown = [[cell if i == last else _cut(cell, MAX_TEXT_COLUMN) for i, cell in enumerate(row)] for row in shown]
    widths = [max(width(row[i]) for row in shown) for i in range(last)]
    lines = [indent + "  ".join([*(_pad(row[i], widths[i]) for i in range(last)), row[last]]).rstrip()
             for row in shown]
    rule = min(max(width(row[last]) for row in shown), MAX_TEXT_COLUMN)
    lines.insert(1, indent + "  ".join([*("-" * w for w in widths), "-" * max(rule, width(shown[0][last]))]))
    return lines


def render_text(report: DriftReport) -> str:
    lines: list[str] = []
    for org in report.organisations:
        revision = f" (revision {org.revision})" if org.revision is not None else ""     # downloads have none
        lines.append(f"organisation {terminal(org.kvk)} {terminal(org.name)}{revision}: "
                     + ("in sync" if org.in_sync else "needs attention"))
        for title, attr, columns in SECTIONS:
            rows = _rows(org, attr, columns)
            if rows:
                lines.append(f"  {title} ({len(rows)}):")
                lines.extend(text_table([c for c, _ in columns], rows))
        lines.append("")
    lines.append(_summary_line(report))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- markdown
def render_markdown(report: DriftReport) -> str:
    out = [f"## {md(_summary_line(report))}", ""]
    for org in report.organisations:
        out.append(f"### {md(org.kvk)} {md(org.name)}: " + ("in sync" if org.in_sync else "needs attention"))
        for title, attr, columns in SECTIONS:
            rows = _rows(org, attr, columns)
            if not rows:
                continue
            out += ["", f"**{title}** ({len(rows)})", "", "| " + " | ".join(c for c, _ in columns) + " |",
                    "|" + "---|" * len(columns)]
            out += ["| " + " | ".join(md(cell) if cell else " " for cell in row) + " |" for row in rows]
        out.append("")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------- json
def report_to_data(report: DriftReport) -> dict[str, Any]:
    def items(org: OrgDrift, attr: str) -> list[dict[str, Any]]:
        out = []
        for item in getattr(org, attr):
            data = asdict(item)
            out.append({k: (v.value if hasattr(v, "value") else str(v) if hasattr(v, "isoformat") else v)
                        for k, v in data.items()})
        return out

    return {"format_version": DRIFT_FORMAT_VERSION, "today": report.today.isoformat(), "backend": report.backend,
            "in_sync": report.in_sync, "summary": report.summary(),
            "organisations": [{"kvk": o.kvk, "name": o.name, "revision": o.revision, "in_sync": o.in_sync,
                               **{attr: items(o, attr) for _, attr, _ in SECTIONS}} for o in report.organisations]}


def render_json(report: DriftReport) -> str:
    return json_text(report_to_data(report), indent=2) + "\n"


# ----------------------------------------------------------------------------------------------- html
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#1c1c1c}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-bottom:2px solid #ddd;padding-bottom:.2em}
h3{font-size:1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;width:100%;margin-bottom:1em}
th,td{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3;cursor:pointer;user-select:none}th:after{content:" \\2195";color:#aaa}
tr.drift td{background:#fde8e8}tr.idle td{background:#e8f0fe}tr.expiring td{background:#fff4d6}tr.soon td{background:#ffe0b2}
.ok{color:#1b7f3b}.bad{color:#b3261e}.badge{display:inline-block;padding:0 .5em;border-radius:1em;font-size:.85em}
.badge.ok{background:#e3f4e8}.badge.bad{background:#fde8e8}
@media print{body{margin:0}th{cursor:auto}th:after{content:""}h2{page-break-before:auto}table{page-break-inside:auto}
tr{page-break-inside:avoid}}
"""

_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){th.addEventListener('click',function(){
    var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows),asc=th.dataset.dir!=='asc';
    t.querySelectorAll('th').forEach(function(h){delete h.dataset.dir});th.dataset.dir=asc?'asc':'desc';
    rows.sort(function(x,y){var p=x.cells[i].textContent,q=y.cells[i].textContent,
      m=parseFloat(p),n=parseFloat(q),r=(!isNaN(m)&&!isNaN(n)&&/^-?[0-9.]+$/.test(p)&&/^-?[0-9.]+$/.test(q))?m-n:p.localeCompare(q);
      return asc?r:-r});
    rows.forEach(function(r){b.appendChild(r)});});});});
"""


def _row_class(attr: str, item: object) -> str:
    if attr in ("drift", "idle"):
        return attr
    if attr == "expiring":
        return "soon" if getattr(item, "days_left", 99) <= 14 else "expiring"
    return ""


def _table(org: OrgDrift, attr: str, columns: Sequence[Column]) -> str:
    items = getattr(org, attr)
    head = "".join(f"<th>{html_text(c)}</th>" for c, _ in columns)
    body = "".join(
        f'<tr class="{_row_class(attr, item)}">' + "".join(f"<td>{html_text(str(get(item)))}</td>"
                                                          for _, get in columns) + "</tr>"
        for item in items)
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_html(report: DriftReport) -> str:
    parts = [f"<h1>{html_text(_summary_line(report))}</h1>",
             f"<p>Backend: {html_text(report.backend)}. Drift is what the backend has that git does not say (or the "
             "reverse), with who changed it and when from the backend's event trail; expiring is what ends "
             "within the organisation's renew_before window; idle is an active gebruiker means without "
             "authorisations for longer than idle_after, a saving to consider (never removed automatically).</p>"]
    for org in report.organisations:
        badge = '<span class="badge ok">in sync</span>' if org.in_sync else \
            '<span class="badge bad">needs attention</span>'
        parts.append(f"<h2>{html_text(org.kvk)} {html_text(org.name)} {badge}</h2>")
        for title, attr, columns in SECTIONS:
            if getattr(org, attr):
                parts.append(f"<h3>{html_text(title)} ({len(getattr(org, attr))})</h3>")
                parts.append(_table(org, attr, columns))
        if not any(getattr(org, attr) for _, attr, _ in SECTIONS):
            parts.append('<p class="ok">Nothing to report.</p>')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>reconciler drift report {report.today}</title><style>{_CSS}</style></head><body>"
            + "\n".join(parts) + f"<script>{_JS}</script></body></html>\n")


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json, "html": render_html}
