"""Options shared by several commands, and parsing helpers that turn bad values into click errors."""

from __future__ import annotations

import datetime as dt

import click


class DateParam(click.ParamType):
    """YYYY-MM-DD."""

    name = "YYYY-MM-DD"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date; write YYYY-MM-DD", param, ctx)


DATE = DateParam()

today_option = click.option("--today", type=DATE, default=None,
                            help="Judge end dates as if today were this date (default: the real today).")

backend_option = click.option(
    "--backend", "backend", default=None, metavar="SPEC",
    help="sandbox:PATH (the embedded sandbox; default sandbox:.reconciler/sandbox.db) or https://HOST of a "
         "beheer backend (token from BEHEER_API_TOKEN). Default: $RECONCILER_BACKEND.")


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
