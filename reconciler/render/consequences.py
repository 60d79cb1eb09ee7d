"""What a removal takes away, in lines a reviewer reads under the change (text) or in its cell (markdown): the
authorisations and chain authorisations a terminated means loses, the organisations it stays linked to, and why
it cannot be undone. Built from the change's `before`/`after` (issue 11); the lines are raw: each renderer
escapes them (`safe.terminal`, `safe.md`)."""

from __future__ import annotations

from collections import defaultdict

from reconciler.plan.model import Action, Change


def consequences(change: Change) -> list[str]:
    """The lines under a `terminate_means`; none for other changes (their detail says old -> new)."""
    if change.action is not Action.TERMINATE_MEANS or not change.before:
        return []
    before, after = change.before, change.after or {}
    held = before.get("end_dates") or {}
    lines = ["loses " + ", ".join(f"{_service(key)} (until {end})" for key, end in held.items())
             if held else "holds no authorisations here"]
    chains: dict[str, list[str]] = defaultdict(list)
    for chain in before.get("chain_authorisations") or []:
        chains[f"{chain['kvk']} {chain['name']}".strip()].append(f"{chain['service']} (until {chain['end_date']})")
    lines += [f"loses, acting for {org} through its chain authorisation: {', '.join(items)}"
              for org, items in chains.items()]
    lines += [f"stays linked to {o['kvk']} " + (f"{o['name']} ({o['role']})" if o.get("role") else
                                                "(not in this config)")
              + ": the means is terminated only here (R14)" for o in after.get("other_organisations") or []]
    if after.get("undo"):
        lines.append(str(after["undo"]))
    return lines


def _service(key: str) -> str:
    """The service of an `end_dates` key ("<e-mail> <service>")."""
    return key.rsplit(" ", 1)[-1]
