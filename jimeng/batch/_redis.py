"""One batch shared by many workers through Redis (extra ``redis``: redis-py's asyncio client).

Four things live in Redis under ``jimeng:batch:<name>:``:

* ``lines`` — a hash of line states (:class:`~jimeng.batch.LineRecord` as JSON), changed only
  inside ``WATCH``/``MULTI`` transactions with the Redis server's clock, so leases mean the same
  on every machine;
* ``queue`` — a Redis stream with one consumer group, ``workers``: the job queue that hands
  lines out. Each line is delivered to one worker and stays in the group's pending list until
  that worker acknowledges it finished; the worker resets the entry's idle time with every lease
  renewal, and an entry idle for longer than a lease (its worker died) is claimed by another
  worker with ``XAUTOCLAIM``;
* ``enqueued`` — which lines (by key) were put on the queue, so N workers starting with the
  same file enqueue each line once.
* ``owner`` — the backend the batch runs on (endpoint and account fingerprints): a worker
  configured for another one refuses to join.

Why a stream and not arq: arq's only lease is a job's timeout (plus 10 s) and it cannot be
renewed, so a video line would need a timeout as long as the longest generation and a dead
worker's line would wait that long; a stream's pending list with ``XCLAIM``/``XAUTOCLAIM`` is a
renewable lease built into Redis (>= 6.2), with no extra dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from jimeng._journal import JournalEntry, JournalStore, JournalUpdate, scrub
from jimeng.batch._input import BatchLine
from jimeng.batch._ledger import Ledger, LineRecord
from jimeng.batch._runner import Delivery
from jimeng.errors import ConfigurationError
from jimeng.models import TaskKind, TaskStatus

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisJournal", "RedisLedger", "RedisLimitStore", "StreamSource", "connect"]

T = TypeVar("T")
logger = logging.getLogger("jimeng")

PREFIX = "jimeng:batch:"
GROUP = "workers"
#: Optimistic transactions give up after this many conflicts in a row (then raise).
MAX_CONFLICTS = 200

#: Enqueue each line once: marks ``enqueued[key] = token`` and adds the stream entry only when
#: the mark differs (a line retried after a failure gets a new token).
_ENQUEUE = """
local added = 0
for i = 1, #ARGV, 3 do
    if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
        redis.call('XADD', KEYS[2], '*', 'line', ARGV[i + 2])
        added = added + 1
    end
end
return added
"""


def connect(url: str) -> Redis:
    """A redis-py asyncio client for ``url`` (``redis://host:port/db``)."""
    try:
        from redis.asyncio import Redis
    except ImportError:
        raise ConfigurationError(
            "a Redis store needs the redis extra: pip install 'jimeng[redis]'"
        ) from None
    return Redis.from_url(url, decode_responses=True)


def _key(batch: str, part: str) -> str:
    return f"{PREFIX}{batch}:{part}"


class RedisLedger(Ledger):
    """Line states in Redis; :meth:`source` hands lines out through the batch's stream."""

    def __init__(self, redis: Redis, *, owns: bool = False):
        # redis-py's annotations mix sync and async return types: used untyped here.
        self.redis: Any = redis
        self._owns = owns
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def from_url(cls, url: str) -> RedisLedger:
        return cls(connect(url), owns=True)

    def __repr__(self) -> str:
        return "RedisLedger()"

    async def now(self) -> float:
        seconds, micros = await self.redis.time()
        return float(seconds) + float(micros) / 1e6

    async def apply(
        self,
        batch: str,
        key: str,
        change: Callable[[LineRecord | None, float], tuple[LineRecord | None, T]],
    ) -> T:
        from redis.exceptions import WatchError

        lines = _key(batch, "lines")
        # One transaction per line at a time in this process: conflicts are between workers.
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            for _ in range(MAX_CONFLICTS):
                pipe: Any
                async with self.redis.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(lines)
                        raw = await pipe.hget(lines, key)
                        seconds, micros = await pipe.time()
                        now = float(seconds) + float(micros) / 1e6
                        before = LineRecord.from_json(json.loads(raw)) if raw else None
                        after, result = change(before, now)
                        pipe.multi()
                        if after is not None and after != before:
                            pipe.hset(lines, key, json.dumps(after.to_json()))
                        await pipe.execute()
                        return result
                    except WatchError:
                        continue
        raise ConfigurationError(f"batch {batch}: line {key} kept changing under this worker")

    async def records(self, batch: str) -> dict[str, LineRecord]:
        raw: dict[str, str] = await self.redis.hgetall(_key(batch, "lines"))
        return {key: LineRecord.from_json(json.loads(text)) for key, text in raw.items()}

    async def bind(self, batch: str, owner: Mapping[str, str]) -> Mapping[str, str] | None:
        key = _key(batch, "owner")
        if await self.redis.set(key, json.dumps(dict(owner), sort_keys=True), nx=True):
            return None
        recorded = await self.redis.get(key)
        return dict(json.loads(recorded)) if recorded else None

    async def source(
        self, batch: str, lines: Sequence[BatchLine], *, lease: float, retry_failed: bool = False
    ) -> StreamSource:
        source = StreamSource(self.redis, batch, lease=lease)
        await source.open(lines, await self.records(batch) if retry_failed else {})
        return source

    async def aclose(self) -> None:
        if self._owns:
            await self.redis.aclose()


class StreamSource:
    """Lines handed out by the batch's Redis stream (see the module docstring)."""

    def __init__(self, redis: Redis, batch: str, *, lease: float, consumer: str | None = None):
        from jimeng.batch._runner import worker_name

        self.redis: Any = redis
        self.stream = _key(batch, "queue")
        self.enqueued = _key(batch, "enqueued")
        self.lease_ms = max(1, int(lease * 1000))
        self.consumer = consumer or worker_name()

    async def open(self, lines: Sequence[BatchLine], records: dict[str, LineRecord]) -> None:
        """Create the consumer group if needed and enqueue the lines not enqueued yet (and,
        given their failed records, the failed lines again)."""
        from redis.exceptions import ResponseError

        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        enqueue = self.redis.register_script(_ENQUEUE)
        for start in range(0, len(lines), 200):
            args: list[str] = []
            for line in lines[start : start + 200]:
                record = records.get(line.key)
                token = "1"
                if record is not None and record.state == "failed":
                    token = f"retry:{record.finished_at}"
                args += [line.key, token, json.dumps(line.to_json(), ensure_ascii=False)]
            await enqueue(keys=[self.enqueued, self.stream], args=args)

    def _deliveries(self, entries: Sequence[Any]) -> list[Delivery]:
        deliveries = []
        for entry_id, fields in entries:
            if not fields:  # deleted meanwhile
                continue
            line = BatchLine.from_json(json.loads(fields["line"]))
            deliveries.append(Delivery(line=line, token=entry_id))
        return deliveries

    async def take(self, count: int) -> list[Delivery]:
        # First the lines of workers that stopped renewing, then new ones.
        claimed = await self.redis.xautoclaim(
            self.stream, GROUP, self.consumer, self.lease_ms, start_id="0-0", count=count
        )
        taken = self._deliveries(claimed[1])
        if len(taken) < count:
            fresh = await self.redis.xreadgroup(
                GROUP, self.consumer, {self.stream: ">"}, count=count - len(taken)
            )
            for _, entries in fresh or ():
                taken += self._deliveries(entries)
        return taken

    async def touch(self, delivery: Delivery) -> None:
        await self.redis.xclaim(self.stream, GROUP, self.consumer, 0, [delivery.token], justid=True)

    async def finish(self, delivery: Delivery) -> None:
        await self.redis.xack(self.stream, GROUP, delivery.token)

    async def retry_later(self, delivery: Delivery) -> None:
        # Left pending: once idle for a lease it is claimed again (by whoever looks first).
        return None

    async def exhausted(self) -> bool:
        groups = await self.redis.xinfo_groups(self.stream)
        group = next((g for g in groups if g["name"] == GROUP), None)
        if group is None or int(group["pending"]) > 0:
            return False
        info = await self.redis.xinfo_stream(self.stream)
        return bool(group["last-delivered-id"] == info["last-generated-id"])


JOURNAL_PREFIX = "jimeng:journal:"


class RedisJournal(JournalStore):
    """The task journal in Redis, for workers on several machines: the same entries as the
    SQLite journal (one JSON document per task, already scrubbed of secrets), indexed by
    submission time, by ref and task id, and by "unfinished". Updates are ``WATCH``/``MULTI``
    transactions on the entry, so a slower worker never resurrects a finished task.

    :attr:`ledger` is a :class:`RedisLedger` on the same connection (``client.batch`` uses it)
    and :attr:`limits` a :class:`RedisLimitStore` (for ``jimeng.Limits(store=...)``).
    """

    def __init__(self, redis: Redis, *, owns: bool = False):
        self.redis: Any = redis
        self._owns = owns
        self.ledger = RedisLedger(redis)
        self.limits = RedisLimitStore(redis)

    @classmethod
    def from_url(cls, url: str) -> RedisJournal:
        return cls(connect(url), owns=True)

    def __repr__(self) -> str:
        return "RedisJournal()"

    @staticmethod
    def _entry_key(backend: str, ref: str) -> str:
        return f"{JOURNAL_PREFIX}entry:{backend}\x1f{ref}"

    async def record(self, entry: JournalEntry) -> None:
        key = self._entry_key(entry.backend, entry.ref)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(key, json.dumps(entry.to_json(), separators=(",", ":")))
        pipe.hset(f"{JOURNAL_PREFIX}refs", entry.ref, key)
        pipe.hset(f"{JOURNAL_PREFIX}ids", entry.task_id, key)
        pipe.zadd(f"{JOURNAL_PREFIX}by_time", {key: entry.submitted_at.timestamp()})
        if entry.done:
            pipe.srem(f"{JOURNAL_PREFIX}unfinished", key)
        else:
            pipe.sadd(f"{JOURNAL_PREFIX}unfinished", key)
        await pipe.execute()

    async def _change(
        self, backend: str, ref: str, change: Callable[[JournalEntry], JournalEntry]
    ) -> None:
        from redis.exceptions import WatchError

        key = self._entry_key(backend, ref)
        for _ in range(MAX_CONFLICTS):
            pipe: Any
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return  # unknown tasks are ignored
                    before = JournalEntry.from_json(json.loads(raw))
                    after = change(before)
                    pipe.multi()
                    pipe.set(key, json.dumps(after.to_json(), separators=(",", ":")))
                    if after.done:
                        pipe.srem(f"{JOURNAL_PREFIX}unfinished", key)
                    await pipe.execute()
                    return
                except WatchError:
                    continue
        raise ConfigurationError(f"journal: task {ref} kept changing under this process")

    async def update(self, backend: str, ref: str, change: JournalUpdate) -> None:
        await self._change(backend, ref, lambda entry: entry.evolve(change))

    async def add_saved(self, backend: str, ref: str, paths: Sequence[str]) -> None:
        def add(entry: JournalEntry) -> JournalEntry:
            saved = list(entry.saved)
            for path in paths:
                if path not in saved:
                    saved.append(path)
            return attrs.evolve(entry, saved=tuple(saved))

        await self._change(backend, ref, add)

    async def replace_saved(self, backend: str, ref: str, old: str, new: str) -> None:
        await self._change(backend, ref, lambda entry: entry.with_saved_replaced(old, new))

    async def _load(self, keys: Sequence[str]) -> list[JournalEntry]:
        entries: list[JournalEntry] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            for raw in await self.redis.mget(chunk) if chunk else ():
                if raw is not None:
                    entries.append(JournalEntry.from_json(json.loads(raw)))
        return entries

    async def get(self, ref: str, *, backend: str | None = None) -> JournalEntry | None:
        if backend is not None:
            found = await self._load([self._entry_key(backend, ref)])
            if found:
                return found[0]
        for index in ("refs", "ids"):
            key = await self.redis.hget(f"{JOURNAL_PREFIX}{index}", ref)
            if key is None:
                continue
            found = await self._load([key])
            if found and (backend is None or found[0].backend == backend):
                return found[0]
        return None

    async def unfinished(
        self, *, backend: str | None = None, fingerprint: str | None = None
    ) -> list[JournalEntry]:
        keys = sorted(await self.redis.smembers(f"{JOURNAL_PREFIX}unfinished"))
        entries = [
            entry
            for entry in await self._load(keys)
            if not entry.done
            and (backend is None or entry.backend == backend)
            and (fingerprint is None or entry.fingerprint == fingerprint)
        ]
        return sorted(entries, key=lambda entry: entry.submitted_at)

    async def history(
        self,
        *,
        status: TaskStatus | None = None,
        kind: TaskKind | None = None,
        since: datetime | None = None,
        backend: str | None = None,
        limit: int | None = None,
    ) -> list[JournalEntry]:
        low = since.timestamp() if since is not None else "-inf"
        keys = await self.redis.zrevrangebyscore(f"{JOURNAL_PREFIX}by_time", "+inf", low)
        entries = [
            entry
            for entry in await self._load(keys)
            if (status is None or entry.status is status)
            and (kind is None or entry.kind is kind)
            and (backend is None or entry.backend == backend)
        ]
        return entries[:limit] if limit is not None else entries

    async def get_meta(self, key: str) -> Any:
        raw = await self.redis.hget(f"{JOURNAL_PREFIX}meta", key)
        return None if raw is None else json.loads(raw)

    async def put_meta(self, key: str, value: Any) -> None:
        await self.redis.hset(f"{JOURNAL_PREFIX}meta", key, json.dumps(scrub(value)))

    async def aclose(self) -> None:
        await self.limits.aclose()
        if self._owns:
            await self.redis.aclose()


LIMITS_PREFIX = "jimeng:limits:"
#: How long a process counts as alive without refreshing its mark (seconds).
HOLDER_TTL = 10.0


class RedisLimitStore:
    """The rate limiter's state (:class:`jimeng.Limits` ``store=``) in Redis: one account, one
    limit, for every worker.

    The learned limits live in one JSON document per account, changed in ``WATCH``/``MULTI``
    transactions. The slots in use (``in_flight``, ``accepted``) are kept per process, each with
    a mark that expires unless the process refreshes it: the slots of a worker that was killed
    are freed once its mark expires (``HOLDER_TTL``), not leaked forever. Give the clients a
    wall clock (``Client(monotonic=time.time)``): the state's times are compared across
    machines.
    """

    def __init__(self, redis: Redis, *, holder: str | None = None, ttl: float = HOLDER_TTL):
        from jimeng.batch._runner import worker_name

        self.redis: Any = redis
        self.holder = holder or worker_name()
        self.ttl_ms = max(1, int(ttl * 1000))
        self._last: dict[str, Any] = {}
        self._held: dict[str, tuple[int, int]] = {}
        self._lock = asyncio.Lock()
        self._refresher: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return "RedisLimitStore()"

    def peek(self, key: str) -> Any:
        return self._last.get(key)

    async def update(self, key: str, initial: Any, change: Callable[[Any], tuple[Any, T]]) -> T:
        from redis.exceptions import WatchError

        from jimeng._limits import LimitState

        state_key = f"{LIMITS_PREFIX}{key}"
        held_key = f"{state_key}:held"
        alive = f"{state_key}:alive:"
        # One transaction at a time from this process: conflicts are between workers.
        async with self._lock:
            self._start_refresher()
            for _ in range(MAX_CONFLICTS):
                pipe: Any
                async with self.redis.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(state_key, held_key)
                        raw = await pipe.get(state_key)
                        held: dict[str, str] = await pipe.hgetall(held_key)
                        holders = sorted(held)
                        marks = await pipe.mget([alive + h for h in holders]) if holders else []
                        live = {
                            h: json.loads(held[h])
                            for h, mark in zip(holders, marks, strict=True)
                            if mark is not None or h == self.holder
                        }
                        dead = [h for h in holders if h not in live]
                        in_flight = sum(int(v[0]) for v in live.values())
                        accepted = sum(int(v[1]) for v in live.values())
                        base = json.loads(raw) if raw else initial.to_dict()
                        before = LimitState.from_dict(
                            {**base, "in_flight": in_flight, "accepted": accepted}
                        )
                        after, result = change(before)
                        mine = live.get(self.holder, [0, 0])
                        counts = (
                            max(0, int(mine[0]) + after.in_flight - before.in_flight),
                            max(0, int(mine[1]) + after.accepted - before.accepted),
                        )
                        pipe.multi()
                        pipe.set(state_key, json.dumps(after.to_dict()))
                        pipe.hset(held_key, self.holder, json.dumps(counts))
                        if dead:
                            pipe.hdel(held_key, *dead)
                        pipe.set(alive + self.holder, "1", px=self.ttl_ms)
                        await pipe.execute()
                    except WatchError:
                        continue
                self._held[key] = counts
                self._last[key] = after
                return result
        raise ConfigurationError(f"limits: the state of {key} kept changing under this worker")

    def _start_refresher(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        """Keep this process's mark alive while it holds slots."""
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            for key, counts in list(self._held.items()):
                if any(counts):
                    try:
                        await self.redis.set(
                            f"{LIMITS_PREFIX}{key}:alive:{self.holder}", "1", px=self.ttl_ms
                        )
                    except Exception as error:  # the next beat tries again
                        logger.warning("limits: could not refresh this worker's mark: %s", error)

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
