"""SDK overhead: generations per second through the public API versus a raw aiohttp loop.

Both talk to the same sandbox served by a separate process (``python -m jimeng.sandbox``) with
zero task delays, and send the same signed requests (submit, then get-result until done). The
SDK run includes everything a user gets: validation, signing per attempt, retry controller,
polling schedule and result parsing. Run with ``make bench`` or ``python benchmarks/overhead.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from typing import NamedTuple

import aiohttp

import jimeng
from jimeng._signing import VOLCENGINE_CV, Credentials, canonical_query, sign
from jimeng.sandbox import SANDBOX_ACCESS_KEY, SANDBOX_SECRET_KEY

PROMPT = "a red fox in snow"
CREDENTIALS = Credentials(access_key=SANDBOX_ACCESS_KEY, secret_key=SANDBOX_SECRET_KEY)


async def start_sandbox() -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "jimeng.sandbox", "--port", "0", stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    return process, line.rsplit(" ", 1)[1].strip()


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
    backend = jimeng.Volcengine(
        access_key=SANDBOX_ACCESS_KEY, secret_key=SANDBOX_SECRET_KEY, endpoint=url
    )
    poll = jimeng.PollPolicy(interval=0.0, max_attempts=100, deadline=60.0)
    async with jimeng.Client(backend, image_poll=poll) as client:

        async def job() -> None:
            result = await client.images.generate(PROMPT, size="1K")
            assert result.images

        await job()  # warm up: session, connection pool
        return await run_concurrently(count, concurrency, job)


async def raw_rate(url: str, count: int, concurrency: int) -> Rate:
    host = url.split("://", 1)[1]

    def request(action: str, payload: dict[str, object]) -> tuple[str, bytes, dict[str, str]]:
        query = canonical_query({"Action": action, "Version": "2022-08-31"})
        body = json.dumps(payload, separators=(",", ":")).encode()
        signed = sign(
            method="POST",
            host=host,
            path="/",
            query=query and [tuple(p.split("=", 1)) for p in query.split("&")],  # type: ignore[misc]
            headers={"Content-Type": "application/json", "Host": host},
            body=body,
            credentials=CREDENTIALS,
            profile=VOLCENGINE_CV,
            now=datetime.now(timezone.utc),
        )
        return f"{url}/?{query}", body, signed.headers

    async with aiohttp.ClientSession() as session:

        async def post(action: str, payload: dict[str, object]) -> dict[str, object]:
            target, body, headers = request(action, payload)
            async with session.post(target, data=body, headers=headers) as response:
                result: dict[str, object] = await response.json()
                return result

        async def job() -> None:
            submitted = await post(
                "CVSync2AsyncSubmitTask",
                {"req_key": "jimeng_t2i_v40", "prompt": PROMPT, "size": 1024 * 1024},
            )
            task_id = submitted["data"]["task_id"]  # type: ignore[index]
            while True:
                answer = await post(
                    "CVSync2AsyncGetResult",
                    {
                        "req_key": "jimeng_t2i_v40",
                        "task_id": task_id,
                        "req_json": '{"return_url":true}',
                    },
                )
                if answer["data"]["status"] == "done":  # type: ignore[index]
                    assert answer["data"]["image_urls"]  # type: ignore[index]
                    return
                await asyncio.sleep(0)

        await job()
        return await run_concurrently(count, concurrency, job)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=400, help="generations per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per cell (median)")
    args = parser.parse_args()
    process, url = await start_sandbox()
    try:
        print(
            f"sandbox process {process.pid} at {url}; {args.count} generations x "
            f"{args.rounds} rounds, median shown"
        )
        print(
            f"{'concurrency':>11}  {'raw aiohttp/s':>13}  {'jimeng SDK/s':>12}  {'SDK/raw':>7}"
            f"  {'raw CPU ms/gen':>14}  {'SDK CPU ms/gen':>14}"
        )
        for concurrency in (1, 32):
            raws: list[Rate] = []
            sdks: list[Rate] = []
            for _ in range(args.rounds):  # interleaved so drift affects both alike
                raws.append(await raw_rate(url, args.count, concurrency))
                sdks.append(await sdk_rate(url, args.count, concurrency))
            raw = statistics.median(r.per_second for r in raws)
            sdk = statistics.median(r.per_second for r in sdks)
            raw_cpu = statistics.median(r.cpu_ms for r in raws)
            sdk_cpu = statistics.median(r.cpu_ms for r in sdks)
            print(
                f"{concurrency:>11}  {raw:>13.1f}  {sdk:>12.1f}  {sdk / raw:>7.2f}"
                f"  {raw_cpu:>14.3f}  {sdk_cpu:>14.3f}"
            )
    finally:
        process.terminate()
        await process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
