"""A cursor is accepted only as the exact text the backend handed out (issue #10): base64 decoding skips
characters outside its alphabet and ignores padding, so trailing junk (`%00`, `!`, `==`) used to pass."""

from __future__ import annotations

import pytest

from .test_cursors import LISTS, _assert_invalid, _rich
from .conftest import Sandbox

pytestmark = pytest.mark.anyio

JUNK = {"NUL": "\x00", "bang": "!", "padding": "==", "space": " ", "newline": "\n", "dot": ".", "star": "*"}


async def test_a_handed_out_cursor_with_trailing_junk_is_422_on_every_list(sandbox: Sandbox) -> None:
    await _rich(sandbox)
    for path in LISTS:
        r = await sandbox.get(path, params={"limit": 1})
        cursor = r.json()["next_cursor"]
        assert cursor and (await sandbox.get(path, params={"limit": 1, "cursor": cursor})).status_code == 200
        for why, junk in JUNK.items():
            await _assert_invalid(sandbox, path, cursor + junk, f"trailing {why}")
            await _assert_invalid(sandbox, path, junk + cursor, f"leading {why}")
        await _assert_invalid(sandbox, path, cursor[:3] + "\x00" + cursor[3:], "NUL inside")


async def test_the_raw_query_string_with_percent_00_is_422(sandbox: Sandbox) -> None:
    await _rich(sandbox)
    path = "/v1/services"
    cursor = (await sandbox.get(path, params={"limit": 1})).json()["next_cursor"]
    r = await sandbox.client.get(f"{path}?limit=1&cursor={cursor}%00", headers=sandbox.auth())
    assert r.status_code == 422 and r.json()["code"] == "invalid", r.text
