"""``python -m jimeng.sandbox --port 8787``: serve the sandbox for other processes."""

from __future__ import annotations

import argparse
import asyncio
import sys

from jimeng.sandbox import (
    SANDBOX_ACCESS_KEY,
    SANDBOX_API_KEY,
    SANDBOX_GATEWAY_TOKEN,
    SANDBOX_RELAY_KEY,
    SANDBOX_SECRET_KEY,
    Stages,
    build_server,
    dreamina_base_urls,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jimeng.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port (0 = any free port)")
    parser.add_argument("--queue-delay", type=float, default=0.0, help="seconds queued per task")
    parser.add_argument("--generate-delay", type=float, default=0.0, help="seconds generating")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the sandbox only serves on loopback")
    return asyncio.run(
        _serve(
            args.host,
            args.port,
            Stages(queue_delay=args.queue_delay, generate_delay=args.generate_delay),
        )
    )


async def _serve(host: str, port: int, stages: Stages) -> int:
    server = build_server(host=host, port=port, stages=stages)
    await server.start()
    print(f"jimeng sandbox serving on {server.url}", flush=True)
    print(f"  Volcengine: access key {SANDBOX_ACCESS_KEY}, secret key {SANDBOX_SECRET_KEY}")
    print(f"  Volcengine-format relay: {server.url}/jm, api key {SANDBOX_RELAY_KEY}")
    print(f"  Dreamina: any session ids, base_urls={dreamina_base_urls(server.url)!r}")
    print(f"  Gateway (task mode): {server.url}/gateway, token {SANDBOX_GATEWAY_TOKEN}")
    print(f"  Gateway (sync only): {server.url}/gateway-sync, same token")
    print(f"  OpenAI-compatible relay: {server.url}/openai, api key {SANDBOX_API_KEY}")
    sys.stdout.flush()
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
