"""pytest fixtures for testing your own code against the sandbox (``pytest11`` plugin).

Installed with the package and loaded by pytest on its own; nothing to configure::

    async def test_my_app(jimeng_sandbox):
        async with jimeng.Client(jimeng_sandbox) as client:
            result = await my_app.make_thumbnail(client, "a cat")
        assert jimeng_sandbox.server.requests["submit"] == 1

Fixtures:

``jimeng_sandbox``
    A :class:`jimeng.Sandbox` whose server is already serving (on a loop of its own, so it works
    with sync and async tests alike). ``jimeng_sandbox.server`` has the counters
    (``requests``, ``polls``, ``tasks``) and fault injection (``inject(action, kind, …)``). Its
    tasks finish at the first poll and clients poll every 10 ms (``JIMENG_POLL_INTERVAL`` and
    ``JIMENG_VIDEO_POLL_INTERVAL`` are set for the test), so tests take milliseconds.
    ``@pytest.mark.jimeng_sandbox(protocol="gateway", stages=Stages(queue_polls=1), …)`` picks
    the protocol, the task stages and any other :class:`~jimeng.Sandbox` option.

``jimeng_client``
    An open :class:`jimeng.Client` on ``jimeng_sandbox`` that never waits between polls
    (an async fixture: needs pytest-asyncio), closed after the test.

``jimeng_sync_client``
    The same as a :class:`jimeng.SyncClient`, for synchronous code.

The package's own test suite does not use these fixtures; they exist for applications.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import jimeng
    from jimeng._sync import _Portal

__all__ = ["jimeng_client", "jimeng_sandbox", "jimeng_sync_client"]

#: Seconds between polls of clients made during a ``jimeng_sandbox`` test.
POLL_INTERVAL = "0.01"
_SERVER_OPTIONS = ("stages", "time_factor", "seed", "clock")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "jimeng_sandbox(protocol='volcengine', stages=None, **options): how the jimeng_sandbox "
        "fixture is set up (protocol, task stages, time_factor, seed, other Sandbox options)",
    )


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)  # still lets other tasks run


@pytest.fixture(scope="session")
def _jimeng_sandbox_loop() -> Iterator[_Portal]:
    """One event loop in a background thread that serves every test's sandbox."""
    from jimeng._sync import _Portal

    portal = _Portal()
    yield portal
    portal.close()


@pytest.fixture
def jimeng_sandbox(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    _jimeng_sandbox_loop: _Portal,
) -> Iterator[jimeng.Sandbox]:
    """A started :class:`jimeng.Sandbox` with counters and fault injection on ``.server``."""
    from jimeng.sandbox import Sandbox, build_server

    marker = request.node.get_closest_marker("jimeng_sandbox")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        options.setdefault("protocol", marker.args[0])
    server = build_server(**{k: options.pop(k) for k in _SERVER_OPTIONS if k in options})
    _jimeng_sandbox_loop.run(server.start())
    monkeypatch.setenv("JIMENG_POLL_INTERVAL", POLL_INTERVAL)
    monkeypatch.setenv("JIMENG_VIDEO_POLL_INTERVAL", POLL_INTERVAL)
    try:
        yield Sandbox(server=server, **options)
    finally:
        _jimeng_sandbox_loop.run(server.stop())


def _async_fixture(function: Any) -> Any:
    """An async fixture with pytest-asyncio in strict mode too (plain pytest otherwise)."""
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - pytest-asyncio is what runs async tests
        return pytest.fixture(function)
    return pytest_asyncio.fixture(function)


@_async_fixture
async def jimeng_client(jimeng_sandbox: jimeng.Sandbox) -> AsyncIterator[jimeng.Client]:
    """An open client on ``jimeng_sandbox`` that never waits between polls."""
    import jimeng

    async with jimeng.Client(jimeng_sandbox, sleep=_no_wait) as client:
        yield client


@pytest.fixture
def jimeng_sync_client(jimeng_sandbox: jimeng.Sandbox) -> Iterator[jimeng.SyncClient]:
    """A :class:`jimeng.SyncClient` on ``jimeng_sandbox`` that never waits between polls."""
    import jimeng

    with jimeng.SyncClient(jimeng_sandbox, sleep=_no_wait) as client:
        yield client
