"""The aioresponses compatibility shim works on the installed aiohttp."""

from __future__ import annotations

import aiohttp
from aioresponses import aioresponses


async def test_mocked_json_response() -> None:
    with aioresponses() as mocked:
        mocked.get("http://mock.test/a", payload={"ok": 1}, status=201)
        async with aiohttp.ClientSession() as session, session.get("http://mock.test/a") as resp:
            assert resp.status == 201
            assert await resp.json() == {"ok": 1}
