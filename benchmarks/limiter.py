"""The adaptive limiter against capped accounts: refusals, failures and throughput.

Scenarios, each on a sandbox that enforces the cap with the real refusal envelopes:

* ``rps``: ``--submits`` image submits at once against ``max_rps`` requests/second, the client
  knowing nothing (adaptive limiter only);
* ``tasks``: ``--generations`` image generations (submit + poll, 10 s each) at once against
  ``max_concurrent_tasks``; throughput is compared with the cap's ideal (cap / generation time).

By default the sandbox and the client share a virtual clock (seconds of traffic in a fraction
of a second, deterministic); ``--real`` runs the ``rps`` scenario on the wall clock instead.
Targets (issue 11): 0 failures, <= 5 % of requests answered 50429/50430, throughput >= 90 % of
the cap.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time

from _report import line

import jimeng
from jimeng.sandbox import Sandbox, Stages, VirtualClock


async def rps(submits: int, cap: float, *, real: bool) -> list[str]:
    clock = VirtualClock()
    sandbox = Sandbox(max_rps=cap, seed=1)
    options: dict[str, object] = {}
    if not real:
        sandbox.server.clock = clock
        options = {"sleep": clock.sleep, "monotonic": clock}
    now = time.monotonic if real else clock
    async with jimeng.Client(sandbox, rng=random.Random(0), **options) as client:  # type: ignore[arg-type]
        started = now()
        outcomes = await asyncio.gather(
            *(client.images.submit(f"cat {i}") for i in range(submits)), return_exceptions=True
        )
        elapsed = now() - started
        learned = client.limits.rate
    failures = sum(isinstance(outcome, BaseException) for outcome in outcomes)
    refused = sandbox.server.refused["rate"]
    sent = sandbox.server.requests["submit"]
    clock_name = "wall clock" if real else "virtual clock"
    print(
        f"rps: {submits} submits, cap {cap:g}/s ({clock_name}): {elapsed:.1f} s, {failures} "
        f"failed, {refused} of {sent} requests refused, learned rate {learned or 0:.1f}/s"
    )
    share = refused / sent
    speed = (submits - failures) / elapsed / cap
    return [
        line("rps cap: failed submits", "0", [float(failures)], failures == 0, unit="run"),
        line("rps cap: share of requests refused", "<= 0.05", [share], share <= 0.05, unit="run"),
        line("rps cap: throughput / cap", ">= 0.9", [speed], speed >= 0.9, unit="run"),
    ]


async def tasks(generations: int, cap: int, seconds: float) -> list[str]:
    clock = VirtualClock()
    sandbox = Sandbox(max_concurrent_tasks=cap, stages=Stages(generate_delay=seconds), seed=1)
    sandbox.server.clock = clock
    async with jimeng.Client(
        sandbox, sleep=clock.sleep, monotonic=clock, rng=random.Random(0)
    ) as client:
        started = clock.now
        outcomes = await asyncio.gather(
            *(client.images.generate(f"dog {i}") for i in range(generations)),
            return_exceptions=True,
        )
        elapsed = clock.now - started
        learned = client.limits.concurrency
    failures = sum(isinstance(outcome, BaseException) for outcome in outcomes)
    refused = sandbox.server.refused["concurrency"]
    sent = sum(sandbox.server.requests.values())
    ideal = generations / (cap / seconds)
    print(
        f"tasks: {generations} generations of {seconds:g} s, cap {cap} at once (virtual clock): "
        f"{elapsed:.1f} s (ideal {ideal:.1f} s), {failures} failed, {refused} of {sent} "
        f"requests refused, learned concurrency {learned}"
    )
    share = refused / sent
    speed = ideal / elapsed
    return [
        line("task cap: failed generations", "0", [float(failures)], failures == 0, unit="run"),
        line("task cap: share of requests refused", "<= 0.05", [share], share <= 0.05, unit="run"),
        line("task cap: throughput / cap", ">= 0.9", [speed], speed >= 0.9, unit="run"),
    ]


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--submits", type=int, default=1000)
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=10, help="concurrent task cap")
    parser.add_argument("--seconds", type=float, default=10.0, help="generation time")
    parser.add_argument("--real", action="store_true", help="rps scenario on the wall clock")
    args = parser.parse_args(argv)
    report = await rps(args.submits, args.rps, real=args.real)
    report += await tasks(args.generations, args.tasks, args.seconds)
    for text in report:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
