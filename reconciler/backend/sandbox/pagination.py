"""Opaque keyset cursors: base64url of the list's name and the last row's sort key, so a page never re-reads
what came before and concurrent inserts or deletes cannot shift later pages (as OFFSET would).

A cursor comes back from the client, so it is untrusted input: `decode_cursor` checks the list it was made
for, its arity and the type of every key element (integers within SQLite's 64-bit range, never a bool), and
that it is exactly the text this backend hands out (no trailing junk, no other spelling of the same bytes);
it answers anything else with 422 `invalid`, never a server error.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Callable, Sequence

from reconciler.domain.rules import Invalid

#: limits of `limit` on every list endpoint (docs/beheer-api.md; the client's MAX_LIMIT asks for the largest).
DEFAULT_LIMIT = 100
MAX_LIMIT = 2000
#: SQLite's INTEGER range: a larger number cannot even be bound to a query (OverflowError).
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1

_NOT_OURS = "the cursor is not one this backend handed out for this list; start again without a cursor"


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    """The cursor of list `kind` after a row whose sort key is `key` (a tuple of strings and integers)."""
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _fits(value: Any, kind: type) -> bool:
    if kind is int:
        return type(value) is int and INT64_MIN <= value <= INT64_MAX      # bool is an int: refused
    if kind is str and type(value) is str:
        try:
            value.encode("utf-8")           # JSON can carry a lone surrogate, which SQLite cannot bind
        except UnicodeEncodeError:
            return False
        return True
    return False


def decode_cursor(cursor: str | None, kind: str, types: Sequence[type]) -> list[Any] | None:
    """The sort key in `cursor` (None for the first page), checked against the list `kind` whose key has one
    element of each of `types`. A cursor that was not handed out for this list is a bad request (422)."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, RecursionError):
        data = None
    if (not isinstance(data, list) or len(data) != len(types) + 1 or data[0] != kind
            or not all(_fits(value, t) for value, t in zip(data[1:], types))):
        raise Invalid("invalid", _NOT_OURS)
    # Strict: only the exact text encode_cursor makes. base64 decoding skips characters outside its alphabet and
    # ignores padding and trailing bits, so `<cursor>%00` or `<cursor>==` would otherwise pass as the cursor.
    if encode_cursor(kind, data[1:]) != cursor:
        raise Invalid("invalid", _NOT_OURS)
    return data[1:]


def page_of(rows: list[Any], limit: int, kind: str, key_of: Callable[[Any], Sequence[Any]]
            ) -> tuple[list[Any], str | None]:
    """Split `limit + 1` fetched rows into a page and the cursor to the next one (None on the last page)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(kind, key_of(rows[-1]))
