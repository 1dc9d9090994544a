"""What the transport hands aiohttp on every attempt, how it maps failures, and what its copies
keep: the settings a request goes out with are pinned by value."""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from multidict import CIMultiDict
from yarl import URL

import jimeng
from jimeng._http import (
    Call,
    Response,
    Transport,
    map_transport_error,
    maybe_received,
    unreadable_answer,
)
from jimeng._retry import RetryPolicy
from jimeng.errors import (
    APIConnectionError,
    APITimeoutError,
    JimengError,
    RateLimitError,
    ServerError,
    ValidationError,
)
from tests.conftest import Sleeps

URL_ = "https://api.example.test/v1/thing?x=1"


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as mock:
        yield mock


def transport(session: aiohttp.ClientSession, sleeps: Sleeps, **options: Any) -> Transport:
    async def get() -> aiohttp.ClientSession:
        return session

    settings: dict[str, Any] = {"timeout": 42.0, "retry": RetryPolicy(jitter=0.0)}
    settings.update(options)
    return Transport(session=get, sleep=sleeps, rng=random.Random(0), **settings)


async def sent_kwargs(mocked: aioresponses, call: Call, sleeps: Sleeps, **options: Any) -> Any:
    mocked.add(URL_, call.method, status=200, body=b"{}")
    async with aiohttp.ClientSession() as session:
        await transport(session, sleeps, **options).send_once(call)
    (request,) = mocked.requests[(call.method, URL(URL_))]
    return request.kwargs


async def test_every_request_has_the_transport_timeout(
    mocked: aioresponses, sleeps: Sleeps
) -> None:
    kwargs = await sent_kwargs(mocked, Call(method="GET", url=URL_), sleeps)

    assert kwargs["timeout"] == aiohttp.ClientTimeout(total=42.0)
    assert kwargs["allow_redirects"] is False
    assert kwargs["proxy"] is None


async def test_a_call_timeout_and_proxy_win(mocked: aioresponses, sleeps: Sleeps) -> None:
    call = Call(method="POST", url=URL_, body=b"x", timeout=7.5, proxy="http://127.0.0.1:3128")
    kwargs = await sent_kwargs(mocked, call, sleeps)

    assert kwargs["timeout"] == aiohttp.ClientTimeout(total=7.5)
    assert kwargs["proxy"] == "http://127.0.0.1:3128"
    assert kwargs["data"] == b"x"
    assert kwargs["allow_redirects"] is False


async def test_the_user_agent_is_set_unless_the_call_has_one(
    mocked: aioresponses, sleeps: Sleeps
) -> None:
    plain = await sent_kwargs(mocked, Call(method="GET", url=URL_), sleeps, user_agent="ua/1")
    mocked.requests.clear()
    own = await sent_kwargs(
        mocked, Call(method="GET", url=URL_, headers={"user-agent": "mine/2"}), sleeps
    )

    assert plain["headers"]["User-Agent"] == "ua/1"
    assert own["headers"]["User-Agent"] == "mine/2"


async def test_a_redirect_is_answered_not_followed(mocked: aioresponses, sleeps: Sleeps) -> None:
    mocked.get(URL_, status=302, headers={"Location": "https://elsewhere.test/"})
    async with aiohttp.ClientSession() as session:
        response = await transport(session, sleeps).send_once(Call(method="GET", url=URL_))

    assert response.status == 302
    assert response.header("location") == "https://elsewhere.test/"


def test_evolve_keeps_every_seam_and_shares_the_counters(sleeps: Sleeps) -> None:
    async def session() -> aiohttp.ClientSession:
        raise AssertionError("not called")

    def clock() -> datetime:
        return datetime(2025, 1, 1, tzinfo=timezone.utc)

    rng = random.Random(3)
    policy = RetryPolicy(max_attempts=2)
    original = Transport(
        session=session,
        timeout=10.0,
        retry=RetryPolicy(),
        sleep=sleeps,
        clock=clock,
        rng=rng,
        user_agent="ua/9",
    )
    longer = original.evolve(timeout=300.0)
    stricter = original.evolve(retry=policy)

    for copy in (longer, stricter):
        assert copy.sleep is sleeps
        assert copy.clock is clock
        assert copy.rng is rng
        assert copy.user_agent == "ua/9"
        assert copy.attempts is original.attempts
        assert copy._session is session
    assert (longer.timeout, longer.retry) == (300.0, original.retry)
    assert (stricter.timeout, stricter.retry) == (10.0, policy)


async def test_a_retried_video_request_sleeps_through_the_injected_sleep(sleeps: Sleeps) -> None:
    sandbox = jimeng.Sandbox()
    sandbox.server.inject("submit", "http", status=429, code=50429, times=2)
    async with jimeng.Client(
        sandbox,
        sleep=sleeps,
        rng=random.Random(0),
        retry=RetryPolicy(initial_delay=0.5, jitter=0.0),
        video_timeout=301.0,
        limits=jimeng.Limits.off(),  # only the retry backoff here, no pacing
    ) as client:
        task = await client.videos.submit("a fox running in snow")

    assert task.id
    assert sleeps.calls == [0.5, 1.0]


# -- failures mapped once ----------------------------------------------------------------------


def connector_error(cls: type[aiohttp.ClientConnectorError]) -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("h.test", 443, True, True, None, None, None)
    if cls is aiohttp.ClientConnectorCertificateError:
        return cls(key, ssl.SSLCertVerificationError("bad certificate"))
    return cls(key, OSError(111, "refused"))


@pytest.mark.parametrize(
    ("error", "kind", "sent", "permanent"),
    [
        (aiohttp.InvalidURL("nope://"), APIConnectionError, False, True),
        (
            connector_error(aiohttp.ClientConnectorCertificateError),
            APIConnectionError,
            False,
            True,
        ),
        (connector_error(aiohttp.ClientConnectorError), APIConnectionError, False, False),
        (asyncio.TimeoutError(), APITimeoutError, None, False),
        (aiohttp.ServerTimeoutError("read"), APITimeoutError, None, False),
        (aiohttp.ServerDisconnectedError(), APIConnectionError, None, False),
        (ConnectionResetError(104, "reset"), APIConnectionError, None, False),
        (RuntimeError("odd"), APIConnectionError, None, False),
    ],
)
def test_transport_failures_map_to_connection_errors(
    error: BaseException, kind: type[APIConnectionError], sent: bool | None, permanent: bool
) -> None:
    mapped = map_transport_error(error, "POST", "https://h.test/path?secret=1")

    assert type(mapped) is kind
    assert isinstance(mapped, APIConnectionError)
    assert mapped.sent is sent
    assert mapped.permanent is permanent
    assert "POST https://h.test/path" in str(mapped)
    assert "secret=1" not in str(mapped)


def test_library_errors_pass_through_unchanged() -> None:
    error = ValidationError("size", "must be 1K, 2K or 4K")
    assert map_transport_error(error, "GET", URL_) is error


# -- answers -----------------------------------------------------------------------------------


def answer(headers: Any) -> Response:
    return Response(status=429, headers=headers, body=b"")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("2.5", 2.5), ("-4", 0.0), ("soon", None), (None, None)],
)
def test_retry_after_in_seconds(value: str | None, expected: float | None) -> None:
    headers = {} if value is None else {"Retry-After": value}
    assert answer(headers).retry_after() == expected


def test_retry_after_as_an_http_date() -> None:
    later = datetime.now(timezone.utc) + timedelta(seconds=120)
    earlier = datetime.now(timezone.utc) - timedelta(seconds=120)

    ahead = answer({"Retry-After": format_datetime(later, usegmt=True)}).retry_after()
    behind = answer({"Retry-After": format_datetime(earlier, usegmt=True)}).retry_after()

    assert ahead is not None and 110.0 <= ahead <= 120.0
    assert behind == 0.0


@pytest.mark.parametrize("headers", [{"retry-after": "5"}, {"RETRY-AFTER": "5"}])
def test_headers_are_found_whatever_their_case_in_a_plain_mapping(headers: Any) -> None:
    response = answer(headers)
    assert response.header("Retry-After") == "5"
    assert response.header("retry-after") == "5"
    assert response.header("X-Missing") is None
    assert response.retry_after() == 5.0


def test_headers_are_found_whatever_their_case_in_a_multidict() -> None:
    response = answer(CIMultiDict({"Retry-After": "6"}))
    assert response.header("retry-after") == "6"


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b'{"a": 1}', {"a": 1}), (b"<html>", None), (b"\xff\xfe", None), (b"", None)],
)
def test_json_is_decoded_once_or_none(body: bytes, expected: Any) -> None:
    response = Response(status=200, headers={}, body=body)
    first = response.json()
    assert first == expected
    assert response.json() is first


def test_retry_after_as_an_http_date_without_a_zone_is_utc() -> None:
    # "-0000" means "UTC, zone unknown": parsedate_to_datetime returns a naive datetime.
    later = datetime.now(timezone.utc) + timedelta(seconds=300)
    value = later.strftime("%a, %d %b %Y %H:%M:%S -0000")

    seconds = answer({"Retry-After": value}).retry_after()

    assert seconds is not None and 290.0 <= seconds <= 300.0


@pytest.mark.parametrize(
    ("error", "maybe"),
    [
        (APIConnectionError("reset", sent=None), True),
        (APITimeoutError("slow", sent=None), True),
        (APIConnectionError("after the body", sent=True), True),
        (APIConnectionError("refused", sent=False), False),
        (APIConnectionError("bad certificate", sent=None, permanent=True), False),
        (ServerError("bad gateway", status_code=502), True),
        (RateLimitError("busy", code=50429), False),
        (ValidationError("size", "bad"), False),
    ],
)
def test_which_failures_may_have_reached_the_server(error: JimengError, maybe: bool) -> None:
    assert maybe_received(error) is maybe


def test_a_resend_safe_server_error_was_not_acted_on() -> None:
    error = ServerError("internal", code=50500)
    error.resend_safe = True
    assert maybe_received(error) is False


def test_an_unreadable_answer_names_its_type_size_and_start() -> None:
    call = Call(method="POST", url=URL_, purpose="poll")
    page = b"  <html><body>" + "é".encode() + b"x" * 100 + b"</body></html>"
    html = Response(status=200, headers={"content-type": "text/html"}, body=page)
    bare = Response(status=200, headers={}, body=b"\xff\xfe")

    assert unreadable_answer(html, call).message == (
        f"unexpected non-JSON answer to the poll (HTTP 200, text/html, {len(page)} bytes): "
        f"{page.decode('utf-8')[:80].strip()!r}"  # the first 80 characters, not bytes
    )
    assert unreadable_answer(html, call).status_code == 200
    assert unreadable_answer(bare, call).message == (
        "unexpected non-JSON answer to the poll (HTTP 200, no Content-Type, 2 bytes): '��'"
    )
