"""``python -m jimeng.sandbox --port 8787``: serve the sandbox for other processes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from jimeng.sandbox import Stages, banner, build_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jimeng.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port (0 = any free port)")
    parser.add_argument("--queue-delay", type=float, default=0.0, help="seconds queued per task")
    parser.add_argument("--generate-delay", type=float, default=0.0, help="seconds generating")
    parser.add_argument(
        "--delay-distribution",
        choices=("fixed", "uniform", "lognormal"),
        default="fixed",
        help="how each task's generation time varies around --generate-delay",
    )
    parser.add_argument(
        "--delay-spread", type=float, default=0.0, help="uniform: ± fraction; lognormal: sigma"
    )
    parser.add_argument("--max-rps", type=float, default=None, help="API requests per second")
    parser.add_argument(
        "--max-concurrent-tasks", type=int, default=None, help="unfinished tasks at once"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the sandbox only serves on loopback")
    return asyncio.run(
        _serve(
            args.host,
            args.port,
            Stages(
                queue_delay=args.queue_delay,
                generate_delay=args.generate_delay,
                distribution=args.delay_distribution,
                spread=args.delay_spread,
            ),
            max_rps=args.max_rps,
            max_concurrent_tasks=args.max_concurrent_tasks,
            seed=args.seed,
        )
    )


async def _serve(host: str, port: int, stages: Stages, **options: Any) -> int:
    server = build_server(host=host, port=port, stages=stages, **options)
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
