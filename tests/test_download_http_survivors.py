"""Details of the transport a caller can see: the spelling of the header names it looks up and
sends, and how a flow goes on after an engine error was thrown into it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from jimeng._http import Call, Response, Transport, drive, unreadable_answer
from jimeng._retry import RetryPolicy
from jimeng.errors import RateLimitError, ServerError
from tests._servers import loopback
from tests.conftest import Sleeps

# -- header names: looked up by their canonical spelling -----------------------------------------
#
# In a plain mapping a header spelt exactly as asked wins over another spelling of the same
# name (tests/test_transport_pinned.py pins that). The canonical spelling the engine asks for is
# therefore what decides between two spellings of one header.


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7", "Retry-After": "5", "RETRY-AFTER": "9"}, 5.0),
        ({"retry-after": "7", "RETRY-AFTER": "9"}, 7.0),  # no exact spelling: the first
        ({"RETRY-AFTER": "9"}, 9.0),
    ],
)
def test_retry_after_is_read_under_its_canonical_name(
    headers: dict[str, str], seconds: float
) -> None:
    answer = Response(status=429, headers=headers, body=b"")

    assert answer.retry_after() == seconds


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"content-type": "text/a", "Content-Type": "text/b", "CONTENT-TYPE": "text/c"}, "text/b"),
        ({"content-type": "text/a", "CONTENT-TYPE": "text/c"}, "text/a"),
    ],
)
def test_an_unreadable_answer_reports_the_canonical_content_type(
    headers: dict[str, str], kind: str
) -> None:
    answer = Response(status=200, headers=headers, body=b"<p>")
    call = Call(method="GET", url="https://api.example.test/v1?sig=s", purpose="poll")

    error = unreadable_answer(answer, call)

    assert error.message == (
        f"unexpected non-JSON answer to the poll (HTTP 200, {kind}, 3 bytes): '<p>'"
    )


# -- the User-Agent on the wire ------------------------------------------------------------------


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, list[list[tuple[bytes, bytes]]]]]:
    """A loopback server that writes down the raw header lines of each request."""
    seen: list[list[tuple[bytes, bytes]]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(list(request.raw_headers))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/v1", handle)
    async with loopback(app) as base:
        yield f"{base}/v1", seen


@pytest.mark.parametrize(
    ("own", "line"),
    [
        ({}, (b"User-Agent", b"ua/1")),
        ({"user-agent": "mine/2"}, (b"user-agent", b"mine/2")),
    ],
)
async def test_the_user_agent_line_is_sent_as_spelt(
    echo: tuple[str, list[list[tuple[bytes, bytes]]]],
    sleeps: Sleeps,
    own: dict[str, str],
    line: tuple[bytes, bytes],
) -> None:
    """The engine's own User-Agent goes out in its usual spelling, exactly once; a caller's own
    header goes out as the caller spelt it and is not doubled."""
    url, seen = echo
    async with aiohttp.ClientSession() as session:

        async def get() -> aiohttp.ClientSession:
            return session

        transport = Transport(
            session=get,
            timeout=5.0,
            retry=RetryPolicy.disabled(),
            sleep=sleeps,
            user_agent="ua/1",
        )
        answer = await transport.execute(Call(method="GET", url=url, headers=own))

    assert answer.status == 200
    (sent,) = seen
    agents = [(name, value) for name, value in sent if name.lower() == b"user-agent"]
    assert agents == [line]
    assert sleeps.calls == []


# -- drive: a flow that handles an error goes on with the call it yields next ---------------------

FIRST = Call(method="POST", url="https://api.example.test/submit", purpose="submit")
SECOND = Call(method="GET", url="https://api.example.test/poll", purpose="poll")


class ScriptedTransport:
    """Fails the first call with a rate limit, answers the second; anything else is a bug."""

    def __init__(self) -> None:
        self.calls: list[Any] = []

    async def execute(self, call: Any) -> Response:
        self.calls.append(call)
        if len(self.calls) > 2:
            raise AssertionError(f"unexpected call {call!r}")
        if call is FIRST:
            raise RateLimitError("busy", code=50429)
        if call is SECOND:
            return Response(status=200, headers={}, body=b'{"n":2}')
        raise AssertionError(f"unexpected call {call!r}")


async def test_drive_sends_the_call_a_flow_yields_after_handling_an_error() -> None:
    errors: list[BaseException] = []

    def flow() -> Generator[Call, Response, Any]:
        try:
            yield FIRST
        except RateLimitError as error:
            errors.append(error)
            answer = yield SECOND
            return ("after", answer.json())
        return "no error"

    transport = ScriptedTransport()

    assert await drive(flow(), transport) == ("after", {"n": 2})  # type: ignore[arg-type]
    assert transport.calls == [FIRST, SECOND]
    assert [type(error) for error in errors] == [RateLimitError]


async def test_drive_passes_a_second_error_back_into_the_flow() -> None:
    """Each failure is thrown into the flow at the call that failed, including after a first
    recovery."""

    class AlwaysBusy:
        def __init__(self) -> None:
            self.calls: list[Any] = []

        async def execute(self, call: Any) -> Response:
            self.calls.append(call)
            if len(self.calls) > 2 or not isinstance(call, Call):
                raise AssertionError(f"unexpected call {call!r}")
            raise ServerError("down", status_code=503)

    def flow() -> Generator[Call, Response, str]:
        try:
            yield FIRST
        except ServerError:
            try:
                yield SECOND
            except ServerError as error:
                return f"gave up: {error.status_code}"
        return "unexpected"

    transport = AlwaysBusy()

    assert await drive(flow(), transport) == "gave up: 503"  # type: ignore[arg-type]
    assert transport.calls == [FIRST, SECOND]
