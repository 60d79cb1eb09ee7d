"""A plan as terminal text, Terraform-like: one line per change with + ~ -, grouped per organisation and
person, deferred (>) and manual (!) steps with their rule, and a summary line. Every line goes through
`safe.terminal` before it is coloured: no value from a config or the backend reaches the terminal as a
control character or a line break of its own."""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

import click

from reconciler.plan.model import Change, Deferred, Manual, OrgPlan, Plan, target_text
from reconciler.render.consequences import consequences
from reconciler.render.safe import terminal

_COLOURS = {"+": "green", "~": "yellow", "-": "red", ">": "cyan", "!": "magenta", "?": "bright_black"}
_CHAINS = ("issue_chain", "set_chain_end_date", "revoke_chain", "remove_intermediary")


def render_text(plan: Plan, *, colour: bool = False) -> str:
    paint: Callable[[str, str], str] = (lambda sym, text: click.style(text, fg=_COLOURS.get(sym))) if colour else \
        (lambda sym, text: text)
    lines: list[str] = []
    for org in plan.organisations:
        lines.extend(_org(org, paint))
        lines.append("")
    lines.extend(f"warning: {terminal(w)}" for w in plan.warnings)
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def _org(org: OrgPlan, paint: Callable[[str, str], str]) -> list[str]:
    head = f"organisation {org.kvk} {org.name}"
    extras = []
    if org.revision is not None:
        extras.append(f"revision {org.revision}")
    if (acting := org.acting(str)) is not None:
        extras.append(acting)
    lines = [terminal(head + (f" ({', '.join(extras)})" if extras else ""))]
    if org.matches:
        lines.append("  no changes: the backend matches the config")
    people: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    bulk: list[tuple[int, str, str]] = []
    chains: list[tuple[int, str, str]] = []
    order = 0
    listed: list[Change | Deferred | Manual] = [*org.changes, *org.deferred, *org.manual]
    for item in listed:
        order += 1
        sym, text = _line(item)
        text = terminal(text)
        if isinstance(item, Change):     # what a termination takes away, one escaped line each, under it
            text += "".join(f"\n        {terminal(line)}" for line in consequences(item))
        if item.action.value in _CHAINS:
            chains.append((order, sym, text))
        elif item.person:
            people[item.person].append((order, sym, text))
        else:
            bulk.append((order, sym, text))
    for person, items in people.items():
        lines.append(f"  {terminal(person)}")
        lines.extend(f"    {paint(sym, sym + ' ' + text)}" for _, sym, text in items)
    if bulk:
        lines.append("  bulk steps (several users, one call each, R10)")
        lines.extend(f"    {paint(sym, sym + ' ' + text)}" for _, sym, text in bulk)
    if chains:
        lines.append("  chain authorisations")
        lines.extend(f"    {paint(sym, sym + ' ' + text)}" for _, sym, text in chains)
    if org.unmanaged:
        lines.append("  unmanaged (not in the config; policy.prune is false, so left alone)")
        lines.extend(f"    {paint('?', terminal('? ' + u.kind + ' ' + u.target))}" +
                     (f"  ({terminal(u.detail)})" if u.detail else "")
                     for u in org.unmanaged)
    for w in org.warnings:
        lines.append(f"  warning: {terminal(w)}")
    if org.over_threshold:
        lines.append(f"  {paint('-', 'refused without --force')}: {org.removals} removals, more than "
                     f"policy.max_removals allows ({org.removal_limit} of {org.existing_objects} objects)")
    return lines


def _line(item: Change | Deferred | Manual) -> tuple[str, str]:
    if isinstance(item, Change):
        target = "" if item.person else f" {target_text(item.target)}"
        detail = f"  {item.detail}" if item.detail else ""
        flag = "  [privilege escalation]" if item.escalation else ""
        origin = f"  ({item.origin.value})" if item.origin else ""
        if not item.person and isinstance(item.target, list):
            return item.symbol, f"{item.action.value}{detail} -> {target_text(item.target)}{flag}{origin}"
        return item.symbol, f"{item.action.value}{target}{detail}{flag}{origin}"
    sym = ">" if isinstance(item, Deferred) else "!"
    kind = "deferred" if isinstance(item, Deferred) else "manual"
    target = f" {target_text(item.target)}" if not item.person or isinstance(item.target, list) else ""
    detail = f" {item.detail}" if item.detail else ""
    origin = f"  ({item.origin.value})" if item.origin else ""
    return sym, f"{item.action.value}{target}{detail}  ({kind}, {item.rule}: {item.reason}){origin}"


def summary_line(plan: Plan) -> str:
    s = plan.summary()
    parts = [f"{s['add']} to add", f"{s['change']} to change", f"{s['remove']} to remove"]
    if s["deferred"]:
        parts.append(f"{s['deferred']} deferred")
    if s["manual"]:
        parts.append(f"{s['manual']} manual")
    if s["unmanaged"]:
        parts.append(f"{s['unmanaged']} unmanaged")
    calls = f"{s['api_calls']} API call{'s' if s['api_calls'] != 1 else ''}"
    cost = f"cost EUR {plan.cost.once:.2f} once and EUR {plan.cost.yearly:.2f} a year"
    force = "; needs --force (over policy.max_removals)" if plan.force_required else ""
    return f"Plan: {', '.join(parts)}; {calls}; {cost}{force}."


def render_plan(plan: Plan, fmt: str, *, colour: bool = False, lang: str = "nl") -> str:
    """The plan as `fmt`: text for a terminal, markdown for a pull-request comment, json for scripts, runbook
    (Markdown) or runbook-html for a beheerder who carries it out in the Beheermodule, in `lang` (nl or en)."""
    if fmt in ("runbook", "runbook-html"):
        from reconciler.render.runbook import render_runbook, render_runbook_html

        return (render_runbook if fmt == "runbook" else render_runbook_html)(plan, lang)
    if fmt == "json":
        from reconciler.render.json_plan import render_json

        return render_json(plan)
    if fmt == "markdown":
        from reconciler.render.markdown import render_markdown

        return render_markdown(plan)
    return render_text(plan, colour=colour)
