"""A real redis-server for the tests that need one.

``make test`` starts one and exports ``JIMENG_TEST_REDIS_URL`` (scripts/with_redis.py); run alone,
pytest starts one itself when a ``redis-server`` binary is found. Without one the Redis tests
skip with a message, except under CI (``CI`` set), where they fail: CI must run them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from scripts.with_redis import ENV, RedisServer, find_binary


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {reason}: the Redis tests must run in CI")
    pytest.skip(f"{reason} (install Debian's redis-server or the dev extra; make test starts it)")


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    url = os.environ.get(ENV)
    if url:
        yield url
        return
    binary = find_binary()
    if binary is None:
        _missing("no redis-server binary was found")
    server = RedisServer(str(binary)).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def redis_url(redis_server_url: str) -> AsyncIterator[str]:
    """The server's URL, its database emptied before the test."""
    from redis.asyncio import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = Redis.from_url(redis_server_url)
    try:
        await client.flushdb()
    except RedisConnectionError as error:  # a URL that does not answer
        _missing(f"Redis at {redis_server_url} does not answer ({error})")
    finally:
        await client.aclose()
    yield redis_server_url
