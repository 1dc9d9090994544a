"""The client's own session keeps no cookies: a cookie a server sets is not sent back on the
next request (a Dreamina pool shares one session between accounts, and a request must carry
exactly the cookies its backend put in it)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

import jimeng
from tests._servers import loopback

ENVELOPE = {"code": 10000, "message": "Success", "request_id": "20261203COOKIE", "status": 10000}


async def test_a_cookie_set_by_the_server_is_not_sent_back() -> None:
    seen: list[tuple[str, str | None]] = []

    async def visual(request: web.Request) -> web.Response:
        action = request.query["Action"]
        seen.append((action, request.headers.get("Cookie")))
        if action == "CVSync2AsyncSubmitTask":
            answer = web.json_response({**ENVELOPE, "data": {"task_id": "7001"}})
            answer.set_cookie("sessionid", "set-by-the-server")
            return answer
        data: dict[str, Any] = {"status": "done", "image_urls": ["https://cdn.invalid/1.png"]}
        return web.json_response({**ENVELOPE, "data": data})

    app = web.Application()
    app.router.add_post("/", visual)
    async with loopback(app) as base:
        backend = jimeng.Volcengine(
            access_key="AKLTcookietest0000000000",
            secret_key="cookie-test-secret",
            endpoint=base.replace("127.0.0.1", "localhost"),
        )
        poll = jimeng.PollPolicy(interval=0.0, adaptive=False)
        async with jimeng.Client(backend, image_poll=poll) as client:
            result = await client.images.generate("a fox", size="1K")
            again = await client.images.generate("a fox", size="1K")

    assert [image.url for image in result.images + again.images] == [
        "https://cdn.invalid/1.png"
    ] * 2
    assert seen == [
        ("CVSync2AsyncSubmitTask", None),
        ("CVSync2AsyncGetResult", None),
        ("CVSync2AsyncSubmitTask", None),
        ("CVSync2AsyncGetResult", None),
    ]
