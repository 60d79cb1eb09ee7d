"""Options shared by several commands, declared once, and the click types of their values: the parsing is the
library's (`pipeline.parse_day`, `operations.parse_days`, `shard.parse_shard`), its `ValueError` click's error."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, TypeVar

import click

from reconciler.backend.sandbox.operations import parse_days
from reconciler.config.shard import Shard, parse_shard
from reconciler.pipeline import parse_day

F = TypeVar("F", bound=Callable[..., Any])


class LibraryParam(click.ParamType):
    """A click type whose values a library function parses; the function's `ValueError` is the usage error."""

    def __init__(self, name: str, parse: Callable[[object], Any]) -> None:
        self.name, self.parse = name, parse

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return self.parse(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


#: YYYY-MM-DD, up to LATEST_TODAY: five years ahead of a later day would leave the calendar (R9).
DATE = LibraryParam("YYYY-MM-DD", parse_day)
#: `30d`, `2w` or a plain number of days.
DURATION = LibraryParam("DAYS", parse_days)
#: K/N: this job's share of the organisations (stable hash of the KvK).
SHARD = LibraryParam("K/N", lambda value: value if isinstance(value, Shard) else parse_shard(str(value)))

#: `--today`, with what the date means to the command (`help=`); PLAN_TODAY where the command plans.
today_option = partial(click.option, "--today", type=DATE, default=None)
PLAN_TODAY = "Plan as if today were this date (default: the backend's)."
#: `--out FILE`: a file the command writes, checked before any work.
out_option = partial(click.option, "--out", type=click.Path(dir_okay=False, writable=True), default=None)
#: `--tariffs FILE`: a YAML file with the user's tariffs.
tariffs_option = partial(click.option, "--tariffs", "tariff_file", type=click.Path(dir_okay=False), default=None)


def format_option(*choices: str, help: str | None = None) -> Callable[[F], F]:
    """`--format`, the first choice the default."""
    return click.option("--format", "fmt", type=click.Choice(choices), default=choices[0], show_default=True,
                        help=help)


#: `--lang`: the language of a runbook (`plan --format runbook|runbook-html`); None when not given, so a command can
#: refuse it with a format it does not apply to.
lang_option = partial(click.option, "--lang", type=click.Choice(["nl", "en"]), default=None)


def _allow_insecure_http(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """Allow plain http to another host for the rest of this command (reset when its context closes, so an
    in-process caller running several commands does not inherit it)."""
    if not value:
        return
    from reconciler.backend.connect import INSECURE_HTTP_ALLOWED

    token = INSECURE_HTTP_ALLOWED.set(True)
    ctx.call_on_close(lambda: INSECURE_HTTP_ALLOWED.reset(token))


def backend_option(command: F) -> F:
    """`--backend SPEC` and `--allow-insecure-http`, on every command that talks to a backend."""
    backend = click.option(
        "--backend", "backend", default=None, metavar="SPEC",
        help="sandbox:PATH (the embedded sandbox; default sandbox:.reconciler/sandbox.db) or https://HOST of a "
             "beheer backend (token from BEHEER_API_TOKEN); http:// only to loopback (a local `sandbox serve`). "
             "Default: $RECONCILER_BACKEND.")
    insecure_http = click.option(
        "--allow-insecure-http", is_flag=True, default=False, expose_value=False, callback=_allow_insecure_http,
        help="Allow --backend http:// to a host that is not loopback. The API token then travels unencrypted and "
             "can be read on the way; without this flag such a backend is refused before anything is sent.")
    return backend(insecure_http(command))


shard_option = click.option(
    "--shard", type=SHARD, default=None,
    help="Only the organisations of shard K of N (by a stable hash of the KvK), e.g. 3/8: one job of a CI "
         "matrix or a Kubernetes indexed job; the N jobs together cover every organisation exactly once.")
