"""Micro-benchmarks, one per layer of a generation, so a regression points at its layer.

Each line is microseconds per operation (median of ``--rounds``), without any network:
building the submit (validation, body, the call), signing one attempt, parsing the answers,
a task model with its scrubbed answer, the limiter's bookkeeping for one generation, the
wait loop around an instant poll, and the transport's one attempt at a submit (signing,
sending to an in-memory session, reading and checking the answer, the limiter) next to what
a hand-written loop does for it. ``overhead.py`` measures the whole against a raw loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone

from multidict import CIMultiDict, CIMultiDictProxy

import jimeng
from jimeng._http import Response, Transport
from jimeng._limits import Limiter, Limits
from jimeng._polling import PollPolicy, watch
from jimeng._retry import RetryPolicy
from jimeng._signing import VOLCENGINE_CV, Credentials, canonical_query, sign
from jimeng.backends.volcengine import _wire
from jimeng.models import ImageRequest, Task, TaskKind, TaskStatus

KEY, SECRET = "AKLTbenchmark0000000000000000000", "benchmark-secret-key-0000000000000000=="
BACKEND = jimeng.Volcengine(access_key=KEY, secret_key=SECRET, endpoint="https://example.invalid")
SUBMITTED = json.dumps({"code": 10000, "data": {"task_id": "7390000000000000001"}}).encode()
DONE = json.dumps(
    {"code": 10000, "data": {"status": "done", "image_urls": ["https://cdn.invalid/1.png"]}}
).encode()


def per_op(work: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        work()
    return (time.perf_counter() - started) / count * 1e6


def build_submit() -> object:
    request = ImageRequest(prompt="a red fox in snow", size="1K")
    BACKEND.validate_image(request)
    flow = BACKEND.submit_image(request)
    call = next(flow)
    flow.close()
    return call


CALL = build_submit()


def sign_attempt() -> object:
    return CALL.sign(CALL, datetime.now(timezone.utc))  # type: ignore[attr-defined]


def sign_raw() -> object:
    return sign(
        method="POST",
        host="example.invalid",
        path="/",
        query=canonical_query({"Action": "CVSync2AsyncSubmitTask", "Version": "2022-08-31"}),
        headers={"Content-Type": "application/json", "Host": "example.invalid"},
        body=CALL.body or b"",  # type: ignore[attr-defined]
        credentials=Credentials(access_key=KEY, secret_key=SECRET),
        profile=VOLCENGINE_CV,
        now=datetime.now(timezone.utc),
    )


TASK = _wire.parse_submit(
    Response(status=200, headers={}, body=SUBMITTED),
    req_key="jimeng_t2i_v40",
    kind=TaskKind.IMAGE,
    backend="volcengine",
)


def parse_submit() -> object:
    return _wire.parse_submit(
        Response(status=200, headers={}, body=SUBMITTED),
        req_key="jimeng_t2i_v40",
        kind=TaskKind.IMAGE,
        backend="volcengine",
    )


def parse_result() -> object:
    return _wire.parse_result(
        Response(status=200, headers={}, body=DONE), TASK, now=datetime.now(timezone.utc)
    )


def task_model() -> object:
    return Task(
        id="1",
        kind=TaskKind.IMAGE,
        status=TaskStatus.RUNNING,
        backend="volcengine",
        ref="1",
        raw=json.loads(DONE),
    )


async def limiter_ops(count: int) -> float:
    limiter = Limiter(Limits(), "bench")
    started = time.perf_counter()
    for _ in range(count):
        # What one generation asks of it: a slot, then a submit and a poll, each paced (no
        # rate in force: the fast path) and fed back.
        async with limiter.slot():
            for submit in (True, False):
                sent = limiter.unpaced_now()
                if sent is None:
                    sent, paced = await limiter.before_request()
                else:
                    paced = False
                if not limiter.answered_ok(sent, paced=paced, submit=submit):
                    await limiter.after_request("ok", sent, paced=paced)
    return (time.perf_counter() - started) / count * 1e6


async def wait_loop(count: int) -> float:
    queued = Task(id="1", kind=TaskKind.IMAGE, status=TaskStatus.QUEUED, backend="b", ref="1")
    done = Task(id="1", kind=TaskKind.IMAGE, status=TaskStatus.SUCCEEDED, backend="b", ref="1")

    async def poll(task: Task) -> Task:
        return done

    async def no_sleep(seconds: float) -> None:
        return None

    policy = PollPolicy(interval=0, adaptive=False)
    started = time.perf_counter()
    for _ in range(count):
        async for _ in watch(queued, poll, policy=policy, sleep=no_sleep):
            pass
    return (time.perf_counter() - started) / count * 1e6


class _Answer:
    """An aiohttp answer already read (what an in-memory session hands back)."""

    status = 200
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))

    async def read(self) -> bytes:
        return DONE

    async def json(self) -> object:
        return json.loads(DONE)

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Session:
    def request(self, method: str, url: object, **kwargs: object) -> _Answer:
        return _Answer()

    def post(self, url: object, **kwargs: object) -> _Answer:
        return _Answer()


async def transport_ops(count: int, *, bare: bool) -> float:
    session = _Session()

    async def get() -> _Session:
        return session

    transport = Transport(
        session=get,  # type: ignore[arg-type]
        timeout=30.0,
        retry=RetryPolicy(),
        limiter=Limiter(Limits(), "bench"),
    )
    started = time.perf_counter()
    if bare:
        for _ in range(count):  # what a raw loop does per request: sign, post, decode
            headers = sign_attempt()
            async with session.post(CALL.url, data=CALL.body, headers=headers) as answer:
                await answer.json()
    else:
        for _ in range(count):
            await transport.execute(CALL)  # type: ignore[arg-type]
    return (time.perf_counter() - started) / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    cases: list[tuple[str, Callable[[], float]]] = [
        ("build submit (validate, body, call)", lambda: per_op(build_submit, args.count)),
        ("sign one attempt (SDK)", lambda: per_op(sign_attempt, args.count)),
        ("sign one attempt (bare signer)", lambda: per_op(sign_raw, args.count)),
        ("parse submit answer", lambda: per_op(parse_submit, args.count)),
        ("parse result answer", lambda: per_op(parse_result, args.count)),
        ("task model with scrubbed answer", lambda: per_op(task_model, args.count)),
        ("limiter: slot + pace + feedback", lambda: asyncio.run(limiter_ops(args.count))),
        ("wait loop, one instant poll", lambda: asyncio.run(wait_loop(args.count))),
        (
            "transport: one attempt, in memory",
            lambda: asyncio.run(transport_ops(args.count, bare=False)),
        ),
        (
            "the same by hand (sign, post, decode)",
            lambda: asyncio.run(transport_ops(args.count, bare=True)),
        ),
    ]
    print(f"{'layer':<40} {'µs/op (median)':>14}  min–max over {args.rounds} rounds")
    for name, case in cases:
        values = [case() for _ in range(args.rounds)]
        print(f"{name:<40} {statistics.median(values):>14.1f}  {min(values):.1f}–{max(values):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
