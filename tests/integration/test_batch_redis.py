"""The Redis stores against a real redis-server: line states, the job queue, the journal."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import jimeng
from jimeng._journal import JournalEntry, JournalUpdate, ResultLink
from jimeng.batch import parse_lines
from jimeng.batch._redis import RedisJournal, RedisLedger, StreamSource
from jimeng.models import TaskKind, TaskStatus
from jimeng.sandbox import Stages
from tests.conftest import Sleeps

KEY = dict(key="a#f", line_id="a", number=1, kind="image")


async def test_two_workers_see_one_line_state(redis_url: str) -> None:
    first, second = RedisLedger.from_url(redis_url), RedisLedger.from_url(redis_url)
    try:
        _, claim = await first.claim("b", **KEY, owner="w1", lease=30.0, retry_failed=False)
        assert claim == "run"
        _, claim = await second.claim("b", **KEY, owner="w2", lease=30.0, retry_failed=False)
        assert claim == "busy"
        assert await first.update("b", "a#f", owner="w1", state="accepted", ref="r1")
        assert not await second.update("b", "a#f", owner="w2", state="done")
        assert await first.renew("b", "a#f", owner="w1", lease=30.0)
        # Leases use the Redis server's clock, the same for every machine.
        assert abs(await first.now() - (await first.records("b"))["a#f"].lease_until + 30) < 5
        assert await first.update("b", "a#f", owner="w1", state="done", paths=["x.png"])
        record = (await second.records("b"))["a#f"]
        assert (record.state, record.ref, record.paths, record.owner) == (
            "done",
            "r1",
            ("x.png",),
            None,
        )
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_batch_name_is_bound_to_one_backend_for_every_worker(
    redis_url: str, sleeps: Sleeps, tmp_path: Path
) -> None:
    mine = {"backend": "sandbox", "fingerprint": "f1", "account": "", "where": "here"}
    theirs = {"backend": "ark", "fingerprint": "f2", "account": "…k", "where": "there"}
    first, second = RedisLedger.from_url(redis_url), RedisLedger.from_url(redis_url)
    try:
        assert await asyncio.gather(first.bind("b", mine), second.bind("b", mine)) in (
            [None, mine],
            [mine, None],
        )
        assert await second.bind("b", theirs) == mine
        # A worker configured for another backend does not join the batch.
        async with jimeng.Client(jimeng.Sandbox("ark"), sleep=sleeps) as client:
            run = client.batch([{"prompt": "a cat"}], out=tmp_path, name="b", store=second)
            with pytest.raises(jimeng.ValidationError) as caught:
                [item async for item in run]
        assert caught.value.field == "name"
        assert "the batch 'b' runs on here, and this client is sandbox (ark)" in str(caught.value)
        assert not (tmp_path / "results.jsonl").exists()
    finally:
        await first.aclose()
        await second.aclose()


async def test_concurrent_claims_give_the_line_to_one_worker(redis_url: str) -> None:
    ledgers = [RedisLedger.from_url(redis_url) for _ in range(4)]
    try:
        claims = await asyncio.gather(
            *(
                ledger.claim("b", **KEY, owner=f"w{n}", lease=30.0, retry_failed=False)
                for n, ledger in enumerate(ledgers)
                for _ in range(5)
            )
        )
        owners = {record.owner for record, claim in claims if claim == "run"}
        assert len(owners) == 1
        assert sum(claim == "busy" for _, claim in claims) >= 15
    finally:
        for ledger in ledgers:
            await ledger.aclose()


def _lines(count: int) -> list[jimeng.batch.BatchLine]:
    text = "\n".join(json.dumps({"id": f"l{n}", "prompt": f"cat {n}"}) for n in range(count))
    lines, problems = parse_lines(text, fmt="jsonl")
    assert not problems
    return lines


async def test_the_queue_hands_each_line_out_once(redis_url: str) -> None:
    ledger = RedisLedger.from_url(redis_url)
    lines = _lines(10)
    try:
        sources = [await ledger.source("q", lines, lease=30.0) for _ in range(3)]
        # Every worker enqueues the same file: each line is on the queue once.
        assert await ledger.redis.xlen("jimeng:batch:q:queue") == 10
        taken = [await source.take(4) for source in sources]
        ids = [d.line.id for batch in taken for d in batch]
        assert sorted(ids) == sorted(line.id for line in lines)
        assert [len(batch) for batch in taken] == [4, 4, 2]
        assert taken[0][0].line == lines[0]
        assert not await sources[0].exhausted()
        for source, batch in zip(sources, taken, strict=True):
            for delivery in batch:
                await source.finish(delivery)
        assert await sources[2].exhausted()
        assert await sources[0].take(5) == []
    finally:
        await ledger.aclose()


async def test_a_dead_workers_line_is_claimed_after_its_lease(redis_url: str) -> None:
    ledger = RedisLedger.from_url(redis_url)
    try:
        dead = await ledger.source("q", _lines(2), lease=0.2)
        alive = await ledger.source("q", _lines(2), lease=0.2)
        (first,) = await dead.take(1)
        (second,) = await alive.take(1)
        assert await alive.take(1) == []
        await asyncio.sleep(0.1)
        await alive.touch(second)  # renewals keep a live worker's line
        await asyncio.sleep(0.15)
        (claimed,) = await alive.take(5)
        assert claimed.line == first.line
        assert claimed.token == first.token
    finally:
        await ledger.aclose()


async def test_two_workers_share_a_batch_with_one_submit_per_line(
    redis_url: str, sleeps: Sleeps, tmp_path: Path
) -> None:
    sandbox = jimeng.Sandbox(stages=Stages(generate_polls=1))
    requests = [{"id": f"l{n}", "prompt": f"cat {n}"} for n in range(12)]

    async def worker(client: jimeng.Client, ledger: RedisLedger) -> list[str]:
        run = client.batch(requests, out=tmp_path, name="pair", store=ledger, max_concurrency=2)
        return [item.id async for item in run if not item.skipped]

    first, second = RedisLedger.from_url(redis_url), RedisLedger.from_url(redis_url)
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        other = jimeng.Client(jimeng.Sandbox(url=sandbox.url), sleep=sleeps)
        async with other:
            mine, theirs = await asyncio.gather(worker(client, first), worker(other, second))
    await first.aclose()
    await second.aclose()
    assert sorted(mine + theirs) == sorted(r["id"] for r in requests)
    assert mine and theirs
    assert sandbox.server.requests["submit"] == 12
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(row["status"], row["submits"]) for row in rows] == [("done", 1)] * 12


def _entry(ref: str, *, minutes: int = 0, status: TaskStatus = TaskStatus.QUEUED) -> JournalEntry:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes)
    return JournalEntry(
        ref=ref,
        task_id=f"id-{ref}",
        backend="sandbox",
        protocol="volcengine",
        fingerprint="f" * 16,
        kind=TaskKind.IMAGE,
        status=status,
        submitted_at=when,
        updated_at=when,
        model="jimeng-4.0",
        context={"req_json": "{}"},
    )


async def test_the_journal_in_redis(redis_url: str) -> None:
    journal = RedisJournal.from_url(redis_url)
    try:
        await journal.record(_entry("a", minutes=1))
        await journal.record(_entry("b", minutes=2))
        await journal.record(_entry("c", minutes=3, status=TaskStatus.SUCCEEDED))
        assert [e.ref for e in await journal.unfinished()] == ["a", "b"]
        assert (await journal.get("id-b")).ref == "b"  # type: ignore[union-attr]
        assert await journal.get("a", backend="other") is None
        done = JournalUpdate(
            status=TaskStatus.SUCCEEDED,
            updated_at=datetime(2026, 1, 1, 1, tzinfo=timezone.utc),
            results=(ResultLink(url="http://x/1.png"),),
        )
        await journal.update("sandbox", "a", done)
        late = JournalUpdate(status=TaskStatus.RUNNING, updated_at=done.updated_at)
        await journal.update("sandbox", "a", late)  # a slower process cannot resurrect it
        await journal.add_saved("sandbox", "a", ["/p/1.png", "/p/1.png", "/p/2.webp"])
        await journal.replace_saved("sandbox", "a", "/p/2.webp", "/p/2.png")
        entry = await journal.get("a")
        assert entry is not None
        assert (entry.status, entry.saved, entry.results[0].url) == (
            TaskStatus.SUCCEEDED,
            ("/p/1.png", "/p/2.png"),
            "http://x/1.png",
        )
        assert [e.ref for e in await journal.unfinished()] == ["b"]
        assert [e.ref for e in await journal.history()] == ["c", "b", "a"]
        assert [e.ref for e in await journal.history(status=TaskStatus.SUCCEEDED)] == ["c", "a"]
        since = datetime(2026, 1, 1, 0, 2, tzinfo=timezone.utc)
        assert [e.ref for e in await journal.history(since=since, limit=1)] == ["c"]
        await journal.update("sandbox", "missing", done)  # unknown tasks are ignored
        await journal.put_meta("poll:x", {"n": [1, 2]})
        assert await journal.get_meta("poll:x") == {"n": [1, 2]}
        assert await journal.get_meta("nothing") is None
    finally:
        await journal.aclose()


async def test_a_client_journals_to_redis(redis_url: str, sleeps: Sleeps, tmp_path: Path) -> None:
    journal = RedisJournal.from_url(redis_url)
    try:
        async with jimeng.Client(jimeng.Sandbox(), journal=journal, sleep=sleeps) as client:
            result = await client.images.generate("a cat")
            await result.save(tmp_path / "cat.png")
            (entry,) = await client.tasks.history()
        assert entry.status is TaskStatus.SUCCEEDED
        assert entry.saved == (str((tmp_path / "cat.png").resolve()),)
    finally:
        await journal.aclose()


def test_the_stream_source_needs_the_redis_extra_only_when_used() -> None:
    assert StreamSource.__module__ == "jimeng.batch._redis"
    with pytest.raises(jimeng.ConfigurationError, match="redis extra"):
        import builtins

        real = builtins.__import__

        def refuse(name: str, *args: object, **kwargs: object) -> object:
            if name.startswith("redis"):
                raise ImportError(name)
            return real(name, *args, **kwargs)  # type: ignore[arg-type]

        builtins.__import__ = refuse  # type: ignore[assignment]
        try:
            RedisLedger.from_url("redis://127.0.0.1:1/0")
        finally:
            builtins.__import__ = real


async def test_one_concurrency_budget_for_every_worker(redis_url: str) -> None:
    import time
    import uuid

    from jimeng._limits import Limiter, Limits, LimitState

    account = f"account-{uuid.uuid4().hex}"  # nothing left over from another run
    journals = [RedisJournal.from_url(redis_url) for _ in range(3)]
    limiters = [
        Limiter(Limits(max_concurrency=3, store=j.limits), account, clock=time.time)
        for j in journals
    ]
    active = 0
    peak = 0
    full = asyncio.Event()

    async def generation(limiter: Limiter) -> None:
        nonlocal active, peak
        async with limiter.slot():
            active += 1
            peak = max(peak, active)
            if active == 3:
                full.set()
            # The first holders keep their slots until the budget is used up, whatever the
            # machine's speed; the rest pass through one at a time under the same budget.
            await asyncio.wait_for(full.wait(), 30)
            active -= 1

    try:
        await asyncio.wait_for(
            asyncio.gather(*(generation(limiters[n % 3]) for n in range(24))), 60
        )
        assert peak == 3
        fresh = await limiters[0].store.update(
            account, LimitState.initial(limiters[0].limits), lambda s: (s, s)
        )
        assert fresh.in_flight == 0
    finally:
        for journal in journals:
            await journal.aclose()


async def test_a_dead_workers_slots_are_freed(redis_url: str) -> None:
    from jimeng._limits import LimitState, admit, release
    from jimeng.batch._redis import RedisLimitStore

    limits = jimeng.Limits(max_concurrency=2)
    redis = RedisJournal.from_url(redis_url).redis
    dead = RedisLimitStore(redis, holder="dead", ttl=0.2)
    alive = RedisLimitStore(redis, holder="alive", ttl=5)
    initial = LimitState.initial(limits)
    try:
        assert await dead.update("acct", initial, lambda s: admit(s, limits))
        assert await dead.update("acct", initial, lambda s: admit(s, limits))
        assert not await alive.update("acct", initial, lambda s: admit(s, limits))
        await dead.aclose()  # killed: it stops refreshing its mark
        await asyncio.sleep(0.3)
        assert await alive.update("acct", initial, lambda s: admit(s, limits))
        assert await alive.update("acct", initial, lambda s: admit(s, limits))
        assert not await alive.update("acct", initial, lambda s: admit(s, limits))
        await alive.update("acct", initial, lambda s: (release(s), None))
        assert alive.peek("acct").in_flight == 1
    finally:
        await alive.aclose()
        await redis.aclose()
