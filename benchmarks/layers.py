"""Micro-benchmarks, one per layer of a generation, so a regression points at its layer.

Each line is microseconds per operation (median of ``--rounds``), without any network:
building the submit (validation, body, the call), signing one attempt, parsing the answers,
a task model with its scrubbed answer, the limiter's bookkeeping for one generation, the
wait loop around an instant poll, and the transport's one attempt at a submit (signing,
sending to an in-memory session, reading and checking the answer, the limiter) next to what
a hand-written loop does for it. ``overhead.py`` measures the whole against a raw loop.

The last three lines are a whole generation (submit, one poll that finds it done) over an
in-memory aiohttp session: ``client.images.generate``; the same parts of the library called
one after the other in a flat loop (validation, the backend's build and parse, signing, the
limiter's bookkeeping, the task copies), which is what the parts cost without the engine's
glue between them; and the raw loop's work (sign, post, decode). SDK minus parts is the
glue; parts minus raw is what the parts themselves add.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from overhead import raw_generation

import jimeng
from jimeng._http import Call, Flow, Response, Transport, _client_timeout, _url
from jimeng._limits import Limiter, Limits, _holding, _Slot
from jimeng._polling import PollPolicy, watch
from jimeng._retry import RetryPolicy
from jimeng._signing import VOLCENGINE_CV, Credentials, canonical_query, sign
from jimeng.backends.volcengine import _wire
from jimeng.models import ImageRequest, ImageResult, Task, TaskKind, TaskStatus
from jimeng.models._replace import replace

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


def build_submit() -> Call:
    request = ImageRequest(prompt="a red fox in snow", size="1K")
    BACKEND.validate_image(request)
    flow = BACKEND.submit_image(request)
    call = next(flow)
    flow.close()
    return call


CALL = build_submit()


def sign_attempt() -> object:
    assert CALL.sign is not None
    return CALL.sign(CALL, datetime.now(timezone.utc))


def sign_raw() -> object:
    return sign(
        method="POST",
        host="example.invalid",
        path="/",
        query=canonical_query({"Action": "CVSync2AsyncSubmitTask", "Version": "2022-08-31"}),
        headers={"Content-Type": "application/json", "Host": "example.invalid"},
        body=CALL.body or b"",
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
            await transport.execute(CALL)
    return (time.perf_counter() - started) / count * 1e6


_ids = itertools.count(7_390_000_000_000_000_000)
_SUBMIT_ACTION = "Action=CVSync2AsyncSubmitTask"


class _Reply:
    """An in-memory aiohttp answer: a task id to a submit, a finished task to a poll."""

    status = 200
    headers = _Answer.headers

    def __init__(self, url: object):
        if _SUBMIT_ACTION in str(url):
            self._body = json.dumps({"code": 10000, "data": {"task_id": str(next(_ids))}}).encode()
        else:
            self._body = DONE

    async def read(self) -> bytes:
        return self._body

    async def json(self) -> object:
        return json.loads(self._body)

    async def __aenter__(self) -> _Reply:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # aiohttp discourages subclasses

    class _MemorySession(aiohttp.ClientSession):
        """What ``Client(session=...)`` accepts, answering from memory."""

        def __init__(self) -> None:  # no connector, nothing to close
            pass

        def __del__(self, *args: object) -> None:
            pass

        @property
        def closed(self) -> bool:
            return False

        def request(self, method: str, url: object, **kwargs: object) -> _Reply:  # type: ignore[override]
            return _Reply(url)

        def post(self, url: object, **kwargs: object) -> _Reply:  # type: ignore[override]
            return _Reply(url)

        async def close(self) -> None:
            return None


PROMPT = "a red fox in snow"


async def generation_sdk(count: int) -> float:
    poll = jimeng.PollPolicy(interval=0.0, max_attempts=100, deadline=60.0, adaptive=False)
    backend = jimeng.Volcengine(
        access_key=KEY, secret_key=SECRET, endpoint="https://example.invalid"
    )
    async with jimeng.Client(backend, image_poll=poll, session=_MemorySession()) as client:
        started = time.perf_counter()
        for _ in range(count):
            result = await client.images.generate(PROMPT, size="1K")
            assert result.images
    return (time.perf_counter() - started) / count * 1e6


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def generation_parts(count: int) -> float:
    """The parts of a generation, called in a flat loop: no engine glue between them."""
    backend = jimeng.Volcengine(
        access_key=KEY, secret_key=SECRET, endpoint="https://example.invalid"
    )
    session = _MemorySession()
    limiter = Limiter(Limits(), "bench", clock=time.monotonic)
    timeout = _client_timeout(30.0)

    async def send(call: Call, submit: bool) -> Response:
        sent_at = limiter.unpaced_now()
        assert sent_at is not None
        headers = dict(call.headers)
        headers["User-Agent"] = "bench"
        assert call.sign is not None and call.check is not None
        headers.update(call.sign(call, _now()))
        async with session.request(
            call.method,
            _url(call.url),
            headers=headers,
            data=call.body,
            timeout=timeout,
            allow_redirects=False,
        ) as answer:
            body = await answer.read()
            response = Response(status=answer.status, headers=answer.headers, body=body)
        call.check(response)
        limiter.answered_ok(sent_at, paced=False, submit=submit)
        return response

    def finish(flow: Flow[Task], response: Response) -> Task:
        try:
            flow.send(response)
        except StopIteration as stop:
            task: Task = stop.value
            return task
        raise AssertionError("the flow asked for another call")

    started = time.perf_counter()
    for _ in range(count):
        assert limiter._take_local_slot()
        held = _Slot()
        token = _holding.set(held)
        request = ImageRequest(prompt=PROMPT, size="1K")
        backend.validate_image(request)
        flow = backend.submit_image(request)
        task = finish(flow, await send(next(flow), True))
        moment = _now()
        task = replace(task, created_at=moment, updated_at=moment)
        while not task.done:
            flow = backend.poll(task)
            latest = finish(flow, await send(next(flow), False))
            moment = _now()
            task = replace(
                latest, created_at=task.created_at, updated_at=moment, completed_at=moment
            )
        assert isinstance(task.result, ImageResult)
        result = replace(task.result, prompt=PROMPT)
        _holding.reset(token)
        limiter._give_local_slot(held)
        assert result.images
    return (time.perf_counter() - started) / count * 1e6


async def generation_raw(count: int) -> float:
    """What the raw loop of ``overhead.py`` does (its own code): sign, post, decode, twice."""
    session = _MemorySession()

    async def post(target: str, body: bytes, headers: dict[str, str]) -> dict[str, object]:
        async with session.post(target, data=body, headers=headers) as answer:
            decoded = await answer.json()
            assert isinstance(decoded, dict)
            return decoded

    started = time.perf_counter()
    for _ in range(count):
        await raw_generation("https://example.invalid", post)
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
        ("generation: client.images.generate", lambda: asyncio.run(generation_sdk(args.count))),
        ("generation: its parts, no glue", lambda: asyncio.run(generation_parts(args.count))),
        (
            "generation: raw loop (sign, post, decode)",
            lambda: asyncio.run(generation_raw(args.count)),
        ),
    ]
    print(f"{'layer':<40} {'µs/op (median)':>14}  min–max over {args.rounds} rounds")
    for name, case in cases:
        values = [case() for _ in range(args.rounds)]
        print(f"{name:<40} {statistics.median(values):>14.1f}  {min(values):.1f}–{max(values):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
