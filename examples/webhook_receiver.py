"""A webhook receiver for a jimeng-api gateway in async-task mode.

Two ways to run it::

    # Offline: the sandbox gateway calls this receiver; its first acknowledgement is "lost", so
    # the gateway retries and the duplicate is answered without being processed twice.
    python examples/webhook_receiver.py demo

    # For a real gateway: listen on 0.0.0.0:8080 and require ?token=<secret> on every callback.
    HOOK_SECRET=change-me python examples/webhook_receiver.py serve --port 8080
    # then submit with callback_url="http://<this host>:8080/hooks/jimeng?token=change-me"

Callbacks carry no signature: the shared secret in the URL is the only proof a callback came
from your gateway. Keep the receiver on a private network, or behind TLS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from aiohttp import web

import jimeng
from jimeng.webhooks import WebhookReceiver

HOOK_PATH = "/hooks/jimeng"


def describe(task: jimeng.Task) -> str:
    if task.result is not None:
        links = (
            task.result.urls if isinstance(task.result, jimeng.ImageResult) else [task.result.url]
        )
        return f"task {task.id} {task.status.value}: " + ", ".join(str(link) for link in links)
    reason = task.failure.message if task.failure else task.raw_status
    return f"task {task.id} {task.status.value}: {reason}"


async def start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    return runner, sockets[0].getsockname()[1] if sockets else port


async def serve(host: str, port: int, secret: str | None, save: Path | None) -> int:
    """Receive callbacks until interrupted; with ``save``, download results there."""
    client = jimeng.Client(jimeng.Gateway()) if save else None
    receiver = WebhookReceiver(secret=secret, client=client)

    async def on_task(task: jimeng.Task) -> None:
        print(describe(task), flush=True)
        if save is not None and task.result is not None:
            saved = await task.result.save(save)
            print(f"  saved to {saved}", flush=True)

    app = web.Application()
    app.router.add_post(HOOK_PATH, receiver.aiohttp_handler(on_task))
    runner, bound = await start(app, host, port)
    print(f"listening on http://{host}:{bound}{HOOK_PATH}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        if client is not None:
            await client.aclose()
    return 0


async def demo(out: Path = Path("pic")) -> int:
    """Offline: the sandbox gateway delivers one callback twice; it is processed once."""
    processed: list[jimeng.Task] = []
    answered = asyncio.Event()
    duplicates = 0
    # time_factor shrinks the gateway's 5/15/30 s retry waits to a few milliseconds.
    sandbox = jimeng.Sandbox("gateway", time_factor=0.001)
    async with jimeng.Client(sandbox) as client:
        receiver = WebhookReceiver(secret="demo-secret", client=client)
        handler = receiver.aiohttp_handler(processed.append)

        async def counting(request: web.Request) -> web.Response:
            nonlocal duplicates
            response = await handler(request)
            if json.loads(bytes(response.body or b"{}")).get("duplicate"):
                duplicates += 1
                answered.set()
            return response

        app = web.Application()
        app.router.add_post(HOOK_PATH, counting)
        runner, port = await start(app, "127.0.0.1", 0)
        try:
            sandbox.server.inject("webhook", kind="reset")  # the first acknowledgement is lost
            url = receiver.callback_url(f"http://127.0.0.1:{port}{HOOK_PATH}")
            handle = await client.images.submit("a red fox in the snow", callback_url=url)
            print(f"submitted task {handle.id}; waiting for its callback")
            await asyncio.wait_for(answered.wait(), timeout=30)
        finally:
            await runner.cleanup()
        [task] = processed
        print(describe(task))
        print(f"callbacks received: {1 + duplicates}, processed: {len(processed)}")
        assert task.result is not None
        for path in await task.result.save(out):
            print(f"saved {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    offline = commands.add_parser("demo", help="run against the offline sandbox")
    offline.add_argument("--out", type=Path, default=Path("pic"), help="where to save images")
    online = commands.add_parser("serve", help="receive callbacks from a real gateway")
    online.add_argument("--host", default="0.0.0.0")
    online.add_argument("--port", type=int, default=8080)
    online.add_argument("--save", type=Path, help="download results into this folder")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return asyncio.run(demo(args.out))
    secret = os.environ.get("HOOK_SECRET") or None
    if secret is None:
        print("warning: HOOK_SECRET is not set; any caller can post callbacks", file=sys.stderr)
    return asyncio.run(serve(args.host, args.port, secret, args.save))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
