"""Options shared by several commands, and parsing helpers that turn bad values into click errors."""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class DateParam(click.ParamType):
    """YYYY-MM-DD, up to LATEST_TODAY: five years ahead of a later day would leave the calendar (R9)."""

    name = "YYYY-MM-DD"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        from reconciler.domain.rules import LATEST_TODAY

        if isinstance(value, dt.date):
            day = value
        else:
            try:
                day = dt.date.fromisoformat(str(value))
            except ValueError:
                self.fail(f"{value!r} is not a date; write YYYY-MM-DD", param, ctx)
        if day > LATEST_TODAY:
            self.fail(f"{day.isoformat()} is too far ahead: end dates lie up to five years after it, beyond the "
                      f"calendar; give a date up to {LATEST_TODAY.isoformat()}", param, ctx)
        return day


DATE = DateParam()

today_option = click.option("--today", type=DATE, default=None,
                            help="Judge end dates as if today were this date (default: the real today).")

_backend = click.option(
    "--backend", "backend", default=None, metavar="SPEC",
    help="sandbox:PATH (the embedded sandbox; default sandbox:.reconciler/sandbox.db) or https://HOST of a "
         "beheer backend (token from BEHEER_API_TOKEN); http:// only to loopback (a local `sandbox serve`). "
         "Default: $RECONCILER_BACKEND.")


def _allow_insecure_http(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """Allow plain http to another host for the rest of this command (reset when its context closes, so an
    in-process caller running several commands does not inherit it)."""
    if not value:
        return
    from reconciler.backend.connect import INSECURE_HTTP_ALLOWED

    token = INSECURE_HTTP_ALLOWED.set(True)
    ctx.call_on_close(lambda: INSECURE_HTTP_ALLOWED.reset(token))


_insecure_http = click.option(
    "--allow-insecure-http", is_flag=True, default=False, expose_value=False, callback=_allow_insecure_http,
    help="Allow --backend http:// to a host that is not loopback. The API token then travels unencrypted and "
         "can be read on the way; without this flag such a backend is refused before anything is sent.")


def backend_option(command: F) -> F:
    """`--backend SPEC` and `--allow-insecure-http`, on every command that talks to a backend."""
    return _backend(_insecure_http(command))


class DurationParam(click.ParamType):
    """`30d`, `2w` or a plain number of days."""

    name = "DAYS"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        factor = 7 if text.endswith("w") else 1
        digits = text.rstrip("dw")
        if not digits.isdigit():
            self.fail(f"{value!r} is not a duration; write days like 30d (or weeks like 2w)", param, ctx)
        return int(digits) * factor


DURATION = DurationParam()


class ShardParam(click.ParamType):
    """K/N: this job's share of the organisations (stable hash of the KvK)."""

    name = "K/N"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> object:
        from reconciler.config.shard import Shard, parse_shard

        if isinstance(value, Shard):
            return value
        try:
            return parse_shard(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


shard_option = click.option(
    "--shard", type=ShardParam(), default=None,
    help="Only the organisations of shard K of N (by a stable hash of the KvK), e.g. 3/8: one job of a CI "
         "matrix or a Kubernetes indexed job; the N jobs together cover every organisation exactly once.")
