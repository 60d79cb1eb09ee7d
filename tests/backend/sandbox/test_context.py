"""What every `/v1` request shares: here, the encoder of read answers."""

from __future__ import annotations

import pytest

from reconciler.backend.sandbox.context import json_response, read_response

#: Every character class JSON escapes or not (controls, quotes, backslash, DEL, non-ASCII, astral), the integer
#: range SQLite holds and beyond, booleans, null, nesting: the types a read answers.
SAMPLES = [
    {"items": [{"id": "30000000-00001", "email": "j\u00f6rg@acme.nl", "name": "\u2028 \U0001f600 \x7f",
                "control": "".join(chr(c) for c in range(32)) + "\"\\/", "n": [0, -1, 2 ** 63 - 1, -2 ** 63, 2 ** 70],
                "flags": [True, False, None], "nested": {"": {"k": []}}}], "next_cursor": None},
    {"items": [], "next_cursor": "WyJtZWFucyIsIjMwMDAwMDAwLTAwNTAwIl0"},
    {"means_id": "m1", "today": "2026-12-01", "read_only": False},
]


@pytest.mark.parametrize("data", SAMPLES)
def test_read_answers_are_the_bytes_json_bytes_writes(data: object) -> None:
    """Reads answer with pydantic-core's encoder (3x faster for a page of 500); the wire is unchanged."""
    fast, plain = read_response(data, revision=7), json_response(data, revision=7)
    assert fast.body == plain.body
    assert fast.headers.items() == plain.headers.items() and fast.status_code == plain.status_code == 200
    assert read_response(data).headers.get("etag") is None
