"""Polling: GetResult calls per task and latency added by the schedule, learned versus fixed.

The sandbox draws each task's generation time (uniform, ±20 % around 5, 13, 20 and 60 s for
images; 30, 60 and 120 s for videos) and the sandbox and the client share a virtual clock, so
minutes of generation run in a second. Per cell: 5 warm-up tasks, then ``--tasks`` tasks
measured with the learned schedule; the default fixed schedule (``adaptive=False``) is measured
on the same draws as the baseline. Targets (issue 11), after warm-up: median <= 2 GetResult
calls per task, median added latency <= max(10 % of the generation time, 1 s).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
from typing import Literal

from _report import line

import jimeng
from jimeng.models import TaskKind
from jimeng.sandbox import Sandbox, Stages, VirtualClock

Kind = Literal["image", "video"]


async def measure(
    kind: Kind, seconds: float, tasks: int, *, learn: bool, seed: int
) -> tuple[list[int], list[float]]:
    clock = VirtualClock()
    stages = Stages(generate_delay=seconds, distribution="uniform", spread=0.2)
    sandbox = Sandbox(stages=stages, seed=seed)
    sandbox.server.clock = clock
    policy = jimeng.PollPolicy.for_kind(TaskKind(kind))
    if not learn:
        policy = jimeng.PollPolicy(
            interval=policy.interval,
            max_attempts=policy.max_attempts,
            backoff=policy.backoff,
            max_interval=policy.max_interval,
            adaptive=False,
        )
    polls: list[int] = []
    added: list[float] = []
    async with jimeng.Client(
        sandbox,
        sleep=clock.sleep,
        monotonic=clock,
        rng=random.Random(seed),
        image_poll=policy,
        video_poll=policy,
    ) as client:
        namespace = client.videos if kind == "video" else client.images
        for index in range(5):
            await namespace.generate(f"warm-up {index}")

        async def one(index: int) -> None:
            handle = await namespace.submit(f"measured {index}")
            submitted = clock.now
            await handle.result()
            task = sandbox.server.tasks[handle.id]
            polls.append(task.polls)
            added.append(clock.now - submitted - task.stages.generate_delay)

        for index in range(tasks):  # one at a time: each task sees every earlier one
            await one(index)
    return polls, added


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=20, help="measured tasks per cell")
    args = parser.parse_args(argv)
    cells: list[tuple[Kind, float]] = [
        ("image", 5.0),
        ("image", 13.0),
        ("image", 20.0),
        ("image", 60.0),
        ("video", 30.0),
        ("video", 60.0),
        ("video", 120.0),
    ]
    print(
        f"{'cell':<12} {'fixed polls':>11} {'fixed +s':>9} {'learned polls':>13} "
        f"{'learned +s':>10}  (medians of {args.tasks} tasks after 5 warm-ups, virtual time)"
    )
    report: list[str] = []
    for kind, seconds in cells:
        fixed_polls, fixed_added = await measure(kind, seconds, args.tasks, learn=False, seed=7)
        polls, added = await measure(kind, seconds, args.tasks, learn=True, seed=7)
        print(
            f"{kind} {seconds:>4.0f} s  {statistics.median(fixed_polls):>11.1f} "
            f"{statistics.median(fixed_added):>9.2f} {statistics.median(polls):>13.1f} "
            f"{statistics.median(added):>10.2f}"
        )
        budget = max(0.1 * seconds, 1.0)
        report.append(
            line(
                f"GetResult calls per {kind} task, {seconds:g} s",
                "<= 2",
                [float(p) for p in polls],
                statistics.median(polls) <= 2,
                unit="tasks",
            )
        )
        report.append(
            line(
                f"added latency / budget ({budget:g} s), {kind} {seconds:g} s",
                "<= 1.0",
                [a / budget for a in added],
                statistics.median(added) <= budget,
                unit="tasks",
            )
        )
    for text in report:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
