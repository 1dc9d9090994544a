"""Client overhead: generations per second and client CPU per generation, jimeng versus a raw
aiohttp loop sending the same signed requests (submit, then get-result until done).

Both talk to ``benchmarks/stub_server.py`` in a separate process, which answers the Volcengine
protocol at once, so the client is the bottleneck (the sandbox verifies signatures and draws
images, and would hide the client's cost). The SDK run includes everything a user gets:
validation, a fresh signature per attempt, the rate limiter, error mapping, the poll schedule
and result parsing. Both follow the same schedule (the SDK's with a zero poll interval: a yield
to the event loop before each get-result). Rounds are interleaved (raw, SDK, raw, SDK...) and
the ratios are per round.
Targets (issue 11): SDK/raw throughput >= 0.95 at concurrency 1 and 32, >= 0.9 at 256; client
CPU per generation <= 1.1x raw; >= 8x the official ``volcengine`` SDK at concurrency 32 (run
only when the ``bench`` extra is installed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import aiohttp
from _report import line, spread

import jimeng
from jimeng._signing import VOLCENGINE_CV, Credentials, canonical_query, sign

ACCESS_KEY = "AKLTbenchmark0000000000000000000"
SECRET_KEY = "benchmark-secret-key-0000000000000000=="

PROMPT = "a red fox in snow"
CREDENTIALS = Credentials(access_key=ACCESS_KEY, secret_key=SECRET_KEY)
HERE = Path(__file__).resolve().parent


async def start_stub() -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "stub_server.py"), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    started = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    return process, started.rsplit(" ", 1)[1].strip()


class Rate(NamedTuple):
    per_second: float
    cpu_ms: float  # this (client) process's CPU time per generation


async def run_concurrently(count: int, concurrency: int, job: object) -> Rate:
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            await job()  # type: ignore[operator]

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(count)))
    elapsed = time.perf_counter() - started
    return Rate(count / elapsed, (time.process_time() - cpu) / count * 1000)


async def sdk_rate(url: str, count: int, concurrency: int) -> Rate:
    backend = jimeng.Volcengine(access_key=ACCESS_KEY, secret_key=SECRET_KEY, endpoint=url)
    poll = jimeng.PollPolicy(interval=0.0, max_attempts=100, deadline=60.0, adaptive=False)
    async with jimeng.Client(backend, image_poll=poll) as client:

        async def job() -> None:
            result = await client.images.generate(PROMPT, size="1K")
            assert result.images

        # Warm up at the measured concurrency: session, connection pool, and the rate
        # limiter's slow start (it opens up from 8 generations at once as answers succeed).
        await run_concurrently(concurrency, concurrency, job)
        return await run_concurrently(count, concurrency, job)


#: The two query strings, canonical once (what a hand-written loop would keep around).
QUERIES = {
    action: canonical_query({"Action": action, "Version": "2022-08-31"})
    for action in ("CVSync2AsyncSubmitTask", "CVSync2AsyncGetResult")
}

Post = Callable[[str, bytes, dict[str, str]], Awaitable[dict[str, object]]]


def signed_request(
    url: str, action: str, payload: dict[str, object]
) -> tuple[str, bytes, dict[str, str]]:
    """The raw loop's request: the target URL, the JSON body and its signed headers."""
    host = url.split("://", 1)[1]
    query = QUERIES[action]
    body = json.dumps(payload, separators=(",", ":")).encode()
    signed = sign(
        method="POST",
        host=host,
        path="/",
        query=query,
        headers={"Content-Type": "application/json", "Host": host},
        body=body,
        credentials=CREDENTIALS,
        profile=VOLCENGINE_CV,
        now=datetime.now(timezone.utc),
    )
    return f"{url}/?{query}", body, signed.headers


async def raw_generation(url: str, post: Post) -> None:
    """One generation as a hand-written loop does it: submit, then get-result until done,
    with ``post(target, body, headers)`` sending a signed request and decoding the answer."""

    async def call(action: str, payload: dict[str, object]) -> dict[str, object]:
        return await post(*signed_request(url, action, payload))

    submitted = await call(
        "CVSync2AsyncSubmitTask",
        {"req_key": "jimeng_t2i_v40", "prompt": PROMPT, "size": 1024 * 1024},
    )
    task_id = submitted["data"]["task_id"]  # type: ignore[index]
    while True:
        # The SDK's schedule with a zero interval: yield to the loop before each poll.
        await asyncio.sleep(0)
        answer = await call(
            "CVSync2AsyncGetResult",
            {"req_key": "jimeng_t2i_v40", "task_id": task_id, "req_json": '{"return_url":true}'},
        )
        if answer["data"]["status"] == "done":  # type: ignore[index]
            assert answer["data"]["image_urls"]  # type: ignore[index]
            return


async def raw_rate(url: str, count: int, concurrency: int) -> Rate:
    async with aiohttp.ClientSession() as session:

        async def post(target: str, body: bytes, headers: dict[str, str]) -> dict[str, object]:
            async with session.post(target, data=body, headers=headers) as response:
                result: dict[str, object] = await response.json()
                return result

        async def job() -> None:
            await raw_generation(url, post)

        await run_concurrently(concurrency, concurrency, job)  # the same warm-up
        return await run_concurrently(count, concurrency, job)


def official_rate(url: str, count: int, concurrency: int) -> Rate | None:
    """The official ``volcengine`` SDK (synchronous, one thread per concurrent caller, as its
    users run it); ``None`` when it is not installed."""
    try:
        from volcengine.visual.VisualService import VisualService  # type: ignore[import-not-found]
    except ImportError:
        return None
    import concurrent.futures

    # VisualService is a singleton whose constructor resets its settings: make it once and
    # share it between the threads (its requests session is shared too).
    visual = VisualService()
    visual.set_ak(ACCESS_KEY)
    visual.set_sk(SECRET_KEY)
    visual.set_host(url.split("://", 1)[1])
    visual.set_scheme("http")

    def job() -> None:
        submitted = visual.cv_sync2async_submit_task(  # type: ignore[attr-defined]
            {"req_key": "jimeng_t2i_v40", "prompt": PROMPT, "size": 1024 * 1024}
        )
        task_id = submitted["data"]["task_id"]
        while True:
            answer = visual.cv_sync2async_get_result(  # type: ignore[attr-defined]
                {"req_key": "jimeng_t2i_v40", "task_id": task_id, "req_json": '{"return_url":true}'}
            )
            if answer["data"]["status"] == "done":
                return

    job()
    started, cpu = time.perf_counter(), time.process_time()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: job(), range(count)))
    elapsed = time.perf_counter() - started
    return Rate(count / elapsed, (time.process_time() - cpu) / count * 1000)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=400, help="generations per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per cell")
    parser.add_argument(
        "--concurrency", type=int, nargs="*", default=[1, 32, 256], help="cells to measure"
    )
    args = parser.parse_args()
    process, url = await start_stub()
    results: list[str] = []
    try:
        print(
            f"stub server process {process.pid} at {url}; {args.count} generations x "
            f"{args.rounds} interleaved rounds per cell; client CPU from process_time()"
        )
        print(
            f"{'concurrency':>11}  {'raw gen/s':>9}  {'SDK gen/s':>9}  {'raw CPU ms':>10}"
            f"  {'SDK CPU ms':>10}"
        )
        for concurrency in args.concurrency:
            raws: list[Rate] = []
            sdks: list[Rate] = []
            for _ in range(args.rounds):
                raws.append(await raw_rate(url, args.count, concurrency))
                sdks.append(await sdk_rate(url, args.count, concurrency))
            print(
                f"{concurrency:>11}  {statistics.median(r.per_second for r in raws):>9.0f}"
                f"  {statistics.median(r.per_second for r in sdks):>9.0f}"
                f"  {statistics.median(r.cpu_ms for r in raws):>10.3f}"
                f"  {statistics.median(r.cpu_ms for r in sdks):>10.3f}"
            )
            speed = [s.per_second / r.per_second for r, s in zip(raws, sdks, strict=True)]
            cpu = [s.cpu_ms / r.cpu_ms for r, s in zip(raws, sdks, strict=True)]
            floor = 0.9 if concurrency >= 256 else 0.95
            results.append(
                line(
                    f"throughput SDK/raw, concurrency {concurrency}",
                    f">= {floor}",
                    speed,
                    statistics.median(speed) >= floor,
                )
            )
            results.append(
                line(
                    f"client CPU per generation SDK/raw, conc. {concurrency}",
                    "<= 1.1",
                    cpu,
                    statistics.median(cpu) <= 1.1,
                )
            )
        size = min(args.count, 200)
        ratios: list[float] = []
        ceiling: list[float] = []
        for _ in range(args.rounds):
            official = official_rate(url, size, 32)
            if official is None:
                break
            ours = await sdk_rate(url, size, 32)
            raw = await raw_rate(url, size, 32)
            ratios.append(ours.per_second / official.per_second)
            ceiling.append(raw.per_second / official.per_second)
        if not ratios:
            results.append(
                "SDK / official volcengine SDK (threads, conc. 32)  skipped: install the "
                "'bench' extra (pip install -e '.[bench]') to compare"
            )
        else:
            results.append(
                line(
                    "throughput SDK/official SDK, conc. 32",
                    ">= 8",
                    ratios,
                    statistics.median(ratios) >= 8,
                )
            )
            # The same rounds' raw aiohttp loop: the ceiling any client on this loop can reach.
            name = "throughput raw loop/official SDK, conc. 32"
            results.append(f"{name:<48} reference         measured {spread(ceiling)}")
    finally:
        process.terminate()
        await process.wait()
    for text in results:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
