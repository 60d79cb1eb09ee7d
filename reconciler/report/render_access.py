"""The access overview in three formats: csv (for a spreadsheet), markdown (a table per organisation) and html
(one self-contained page: a table per organisation, sortable by clicking a header, printable).

Each renderer is a pure function of an `AccessReport`. `render_bytes` is what the command writes: a csv
file starts with a UTF-8 byte order mark so that Excel reads it as UTF-8 (standard output gets none). Every
value goes through the escaper of its format in `reconciler.render.safe` (shared with the plan and drift
renderers): a csv cell is never run as a formula and holds no control character, markdown and html cannot be
broken out of.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from reconciler.render.safe import csv_text, html_text, md
from reconciler.report.access import SOON_DAYS, AccessReport, AccessRow

FORMATS = ("csv", "markdown", "html")

#: The csv columns, in order (one per `AccessRow` field, `ends_soon` excepted: a spreadsheet filters days left).
CSV_HEADER = ("kvk", "organisation", "person", "name", "role", "level", "type", "status", "service",
              "service name", "provider", "minimum level", "end date", "days left", "means ends", "config")

#: The per-organisation table columns of the markdown and html reports (the organisation is the heading).
TABLE_HEADER = ("person", "name", "role", "level", "type", "status", "service", "service name", "minimum level",
                "end date", "days left", "means ends", "config")

NO_SERVICE = "no authorisations"

def _date(value: dt.date | None) -> str:
    return value.isoformat() if value is not None else ""


def _days(value: int | None) -> str:
    return str(value) if value is not None else ""


def csv_cells(row: AccessRow) -> list[str]:
    texts = [row.kvk, row.organisation, row.person, row.person_name, row.role, row.level, row.means_type,
             row.status, row.service_key, row.service_name, row.provider, row.service_level]
    return [*map(csv_text, texts), _date(row.end_date), _days(row.days_left), _date(row.means_ends), row.config]


def render_csv(report: AccessReport) -> str:
    """RFC 4180: a header row, then one record per row, CRLF line ends, quoted where needed (no BOM here)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, dialect="excel", lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_cells(row) for row in report.rows)
    return out.getvalue()


# ------------------------------------------------------------------------------------------------ summary
def _summary(report: AccessReport) -> str:
    people = {(r.kvk, r.person.lower()) for r in report.rows if not r.is_chain}
    chains = {(r.kvk, r.person) for r in report.rows if r.is_chain}
    grants = sum(1 for r in report.rows if r.has_service)
    undeclared = sum(1 for r in report.rows if r.undeclared)
    soon = sum(1 for r in report.rows if r.ends_soon)
    orgs = len(report.organisations)
    return (f"{_n(grants, 'authorisation')} of {_n(len(people), 'person', 'people')} and "
            f"{_n(len(chains), 'intermediary', 'intermediaries')} in {_n(orgs, 'organisation')}; "
            f"{undeclared} not in config; {soon} ending within {SOON_DAYS} days.")


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def _table_cells(row: AccessRow) -> list[str]:
    service_name = (f"{row.provider}: {row.service_name}" if row.provider else row.service_name) \
        if row.has_service else NO_SERVICE
    return [row.person, row.person_name, row.role, row.level, row.means_type, row.status, row.service_key,
            service_name, row.service_level, _date(row.end_date), _days(row.days_left), _date(row.means_ends),
            row.config]


def _unreadable_line(report: AccessReport) -> str:
    return ("Not read (the backend does not give access to them): " + ", ".join(report.unreadable)
            if report.unreadable else "")


# ---------------------------------------------------------------------------------------------- markdown
def render_markdown(report: AccessReport) -> str:
    lines = [f"# eHerkenning access on {report.today.isoformat()}", "", md(_summary(report))]
    if report.unreadable:
        lines += ["", md(_unreadable_line(report))]
    grouped = report.by_org()
    for org in report.organisations:
        lines += ["", f"## {md(org.kvk)} {md(org.name)}", ""]
        lines.append("| " + " | ".join(TABLE_HEADER) + " |")
        lines.append("|" + "|".join(" --- " for _ in TABLE_HEADER) + "|")
        for row in grouped.get(org.kvk, []):
            lines.append("| " + " | ".join(md(c) if c else " " for c in _table_cells(row)) + " |")
    footer = f"Read from {report.backend} on {report.today.isoformat()}." if report.backend else ""
    if footer:
        lines += ["", md(footer)]
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------------- html
_STYLE = """
:root { --line: #d0d7de; --head: #f3f4f6; --soon: #fff1b8; --undeclared: #fde0dd; --muted: #57606a; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: #1f2328;
       margin: 24px; }
h1 { font-size: 1.5em; margin: 0 0 .3em; }
h2 { font-size: 1.15em; margin: 1.6em 0 .4em; }
p { margin: .3em 0; }
.muted { color: var(--muted); }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 8px; border: 1px solid var(--line); }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid var(--line); padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: var(--head); cursor: pointer; user-select: none; white-space: nowrap; }
th:focus { outline: 2px solid #0969da; outline-offset: -2px; }
th[aria-sort="ascending"]::after { content: " \\25B2"; }
th[aria-sort="descending"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.date { white-space: nowrap; }
tr.undeclared td, .legend .undeclared { background: var(--undeclared); }
tr.soon td.end, .legend .soon { background: var(--soon); font-weight: 600; }
td.none { color: var(--muted); font-style: italic; }
@page { size: A4 landscape; margin: 12mm; }
@media print {
  body { margin: 0; font-size: 9pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  th { cursor: default; }
  th::after { content: "" !important; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; }
  h2 { break-after: avoid; }
  .screen { display: none; }
}
"""

_SCRIPT = """
(function () {
  function value(cell) { return cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent; }
  function compare(a, b, numeric) {
    if (numeric) {
      var x = parseFloat(a), y = parseFloat(b);
      if (isNaN(x)) { x = Infinity; }
      if (isNaN(y)) { y = Infinity; }
      return x === y ? 0 : (x < y ? -1 : 1);
    }
    return a.localeCompare(b, undefined, {numeric: true, sensitivity: "base"});
  }
  document.querySelectorAll("table.access").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, column) {
      th.tabIndex = 0;
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0], numeric = th.getAttribute("data-type") === "number";
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r, s) {
          var order = compare(value(r.cells[column]), value(s.cells[column]), numeric);
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    });
  });
})();
"""

_NUMERIC = {"days left"}
_DATES = {"end date", "means ends"}


def _html_row(row: AccessRow) -> str:
    classes = [name for name, on in (("undeclared", row.undeclared), ("soon", row.ends_soon)) if on]
    cells = []
    for head, value in zip(TABLE_HEADER, _table_cells(row)):
        css = []
        if head in _NUMERIC:
            css.append("num")
        if head in _DATES:
            css.append("date")
        if head == "end date" or head == "days left":
            css.append("end")
        if head == "service name" and not row.has_service:
            css.append("none")
        attr = f' class="{" ".join(css)}"' if css else ""
        cells.append(f"<td{attr}>{html_text(value)}</td>")
    attr = f' class="{" ".join(classes)}"' if classes else ""
    return f"<tr{attr}>" + "".join(cells) + "</tr>"


def render_html(report: AccessReport) -> str:
    title = f"eHerkenning access on {report.today.isoformat()}"
    number = ' data-type="number"'
    heads = "".join(f'<th scope="col"{number if h in _NUMERIC else ""}>{html_text(h)}</th>' for h in TABLE_HEADER)
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html_text(title)}</title>",
             f"<style>{_STYLE}</style>", "</head>", "<body>", f"<h1>{html_text(title)}</h1>",
             f"<p>{html_text(_summary(report))}</p>"]
    if report.unreadable:
        parts.append(f'<p class="unreadable">{html_text(_unreadable_line(report))}</p>')
    parts.append(f'<p class="legend"><span class="soon">ends within {SOON_DAYS} days</span>'
                 '<span class="undeclared">not in config</span>'
                 '<span class="screen muted">click a column header to sort</span></p>')
    grouped = report.by_org()
    for org in report.organisations:
        parts.append(f'<section id="kvk-{html_text(org.kvk)}">')
        parts.append(f"<h2>{html_text(org.kvk)} {html_text(org.name)}</h2>")
        parts.append(f'<table class="access"><thead><tr>{heads}</tr></thead><tbody>')
        parts.extend(_html_row(row) for row in grouped.get(org.kvk, []))
        parts.append("</tbody></table>")
        parts.append("</section>")
    footer = f"Read from {report.backend} on {report.today.isoformat()}." if report.backend else \
        f"As of {report.today.isoformat()}."
    parts += [f'<p class="muted">{html_text(footer)}</p>', f"<script>{_SCRIPT}</script>", "</body>", "</html>"]
    return "\n".join(parts) + "\n"


def render(report: AccessReport, fmt: str) -> str:
    if fmt == "csv":
        return render_csv(report)
    if fmt == "markdown":
        return render_markdown(report)
    if fmt == "html":
        return render_html(report)
    raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")


def render_bytes(report: AccessReport, fmt: str, *, bom: bool = True) -> bytes:
    """What the command writes: UTF-8, the csv with a byte order mark (Excel then reads it as UTF-8) when
    `bom`: the command asks for it only for a file, since on standard output the mark would be a stray first
    character of the header for the next program in a pipe (`cut`, `grep`, `csvkit`)."""
    return render(report, fmt).encode("utf-8-sig" if fmt == "csv" and bom else "utf-8")
