"""``python -m jimeng.sandbox --port 8787``: serve the sandbox for other processes."""

from __future__ import annotations

import argparse
import asyncio
import sys

from jimeng.sandbox import Stages, banner, build_server


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
    for line in banner(server.url):
        print(line)
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
