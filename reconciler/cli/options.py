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
