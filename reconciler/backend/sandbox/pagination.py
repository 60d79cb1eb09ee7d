"""Opaque keyset cursors: base64url of the last row's sort key, so a page never re-reads what came before
and concurrent inserts or deletes cannot shift later pages (as OFFSET would)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Sequence

from reconciler.domain.rules import Invalid

#: limits of `limit` on every list endpoint (docs/beheer-api.md).
DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def encode_cursor(key: Sequence[Any]) -> str:
    """The cursor after a row whose sort key is `key` (a tuple of JSON scalars)."""
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    """The sort key in `cursor`; None for the first page. A cursor that was not ours is a bad request."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        key = None
    if not isinstance(key, list) or len(key) != arity or not all(isinstance(k, (str, int)) for k in key):
        raise Invalid("invalid", "the cursor is not one this backend handed out; start again without a cursor")
    return key


def page_of(rows: list[Any], limit: int, key_of: Any) -> tuple[list[Any], str | None]:
    """Split `limit + 1` fetched rows into a page and the cursor to the next one (None on the last page)."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(key_of(rows[-1]))
