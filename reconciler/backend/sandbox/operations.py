"""What `reconciler sandbox init|approve|reject|activate|expire|clock` do with the sandbox controls, beneath the
command line: open the controls of the embedded or a served sandbox, play the supplier, the holder and the
calendar, and hand back what happened for the command to render. Nothing here prints or exits; a user's
mistake is an exception whose message is the line the command prints. Light to import (the HTTP stack is
loaded when a control is used), so the command line can import it at start."""

from __future__ import annotations

import datetime as dt
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable

from reconciler.backend.errors import BackendError, ConfigurationError
from reconciler.domain.levels import MEANS_LEVELS

if TYPE_CHECKING:
    from reconciler.backend.sandbox.controls import SandboxControls, SandboxMeans, SandboxOrganisation

#: The levels a first admin may have: EH2+ or higher (R2).
ADMIN_LEVELS = [level.value for level in MEANS_LEVELS[1:]]
#: The statuses each lifecycle step applies to with `--all` (approve and reject also take a pending change).
WANTED: dict[str, tuple[str, ...]] = {"approve": ("wachten_op_goedkeuring",), "reject": ("wachten_op_goedkeuring",),
                                      "activate": ("wachten_op_activatie",), "expire": ("wachten_op_activatie",)}
#: How each step's outcome is said, before the holder's e-mail.
DONE = {"approve": "approved", "reject": "rejected", "activate": "activated", "expire": "let the activation lapse of"}


class ControlTokenRefused(ConfigurationError):
    """A served sandbox refused SANDBOX_CONTROL_TOKEN: a setting to fix, said as such (not as a bad API token)."""


class UnknownHolders(LookupError):
    """Means named by e-mail that the sandbox does not hold (in the organisation asked for)."""


@asynccontextmanager
async def open_controls(backend: str | None) -> AsyncIterator[SandboxControls]:
    """The sandbox controls of the embedded sandbox (no user action) or of a served one (the control token
    from SANDBOX_CONTROL_TOKEN); a refused control token is said as such, not as a bad API token."""
    from reconciler.backend.connect import open_backend
    from reconciler.backend.sandbox.controls import CONTROL_TOKEN_ENV, SandboxControls

    try:
        async with open_backend(backend, require_token=False, controls=True) as client:
            yield SandboxControls(client)
    except BackendError as exc:
        if exc.status == 401 and (exc.path or "").startswith("/sandbox"):
            raise ControlTokenRefused(
                f"the served sandbox refused the control token in {CONTROL_TOKEN_ENV}: set it to the control token "
                "that `reconciler sandbox serve` printed at start (or was started with)") from None
        raise


async def init(backend: str | None, kvk: str, name: str, *, admin_email: str, admin_name: str | None, level: str,
               branch_number: str | None, second_factor: str | None = None,
               phone: str | None = None) -> SandboxOrganisation:
    """Create an organisation with one active admin (named after the e-mail unless given, with its second factor
    when given: R19); its token is in the answer, once."""
    async with open_controls(backend) as controls:
        return await controls.create_organisation(
            kvk, name, admin_email=admin_email, admin_name=admin_name or admin_email.split("@")[0], level=level,
            second_factor=second_factor, phone=phone, branch_number=branch_number)


def _applies(step: str, means: SandboxMeans) -> bool:
    return means.status in WANTED[step] or (step in ("approve", "reject") and means.pending is not None)


async def lifecycle(backend: str | None, step: str, emails: tuple[str, ...], *, kvk: str | None,
                    done: Callable[[str], None]) -> int:
    """Take `step` for the means named by e-mail, or (no e-mails) for every means it applies to, optionally of
    one organisation; `done(line)` is told what was done (`approved EMAIL: STATUS`) as each is taken, so the
    first ones are said even when a later one is refused. How many were taken; `UnknownHolders`, before any is
    taken, when an e-mail is unknown."""
    async with open_controls(backend) as controls:
        found = await controls.means(kvk=kvk)
        if not emails:
            targets = [m for m in found if _applies(step, m)]
        else:
            by_email = {m.email.lower(): m for m in found}
            missing = [e for e in emails if e.lower() not in by_email]
            if missing:
                where = f" in organisation {kvk}" if kvk else ""
                raise UnknownHolders(f"no means for {', '.join(missing)}{where}")
            targets = [by_email[e.lower()] for e in emails]
        for means in targets:
            done(f"{DONE[step]} {means.email}: {describe(await controls.step(means.id, step))}")
        return len(targets)


def describe(means: SandboxMeans | None) -> str:
    """A means' state after a step: its status, with the activation deadline while it waits on activation."""
    if means is None:
        return "the request is gone"
    text = means.status
    if means.activation_deadline and means.status == "wachten_op_activatie":
        text += f", to activate by {means.activation_deadline}"
    return text


async def today(backend: str | None) -> dt.date:
    """The sandbox's today."""
    async with open_controls(backend) as controls:
        return await controls.today()


async def move_clock(backend: str | None, *, day: dt.date | None = None, days: int = 0) -> list[str]:
    """Set today to `day`, or move it forward by `days`; the lines that say the new today and what the days
    swept (expired activations, authorisations, ...: R5, R9, R14)."""
    async with open_controls(backend) as controls:
        answer = await (controls.set_today(day) if day is not None else controls.advance(days))
    return clock_lines(answer)


def clock_lines(answer: dict[str, Any]) -> list[str]:
    """`today is ...`, then one indented line per kind of thing the clock swept, if any."""
    lines = [f"today is {answer['today']}"]
    swept = answer.get("swept") or {}
    if isinstance(swept, dict):
        lines += [f"  {what}: {count}" for what, count in swept.items() if count]
    return lines


def parse_days(value: object) -> int:
    """`clock advance DAYS`: `30d`, `2w` or a plain number of days; a `ValueError` says what to write."""
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    factor = 7 if text.endswith("w") else 1
    digits = text.rstrip("dw")
    if not digits.isdigit():
        raise ValueError(f"{value!r} is not a duration; write days like 30d (or weeks like 2w)")
    return int(digits) * factor
