"""The transport by value, against a recording session and a recording limiter: which retry
policy an attempt runs under, what the limiter hears after each answer, the log lines, the
URL handed to aiohttp and the error each failure becomes."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
from datetime import datetime, timezone
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from jimeng import _logging
from jimeng._http import Call, Response, Transport, map_transport_error
from jimeng._limits import Limiter, Limits
from jimeng._retry import RetryPolicy
from jimeng.errors import APIConnectionError, APIError, RateLimitError, ServerError
from tests.conftest import Sleeps

URL_ = "https://api.example.test/v1/thing?Action=Get&sig=a%2Bb%7E"
WHERE = "https://api.example.test/v1/thing"
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
JSON = b'{"ok":true}'


class Raw:
    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None):
        self.status = status
        self.headers = CIMultiDictProxy(CIMultiDict(headers or {}))
        self.body = body

    async def read(self) -> bytes:
        return self.body


class Exchange:
    """``session.request(...)`` as an async context manager: the answer, or the failure."""

    def __init__(self, answer: Raw | BaseException):
        self.answer = answer

    async def __aenter__(self) -> Raw:
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer

    async def __aexit__(self, *exc: object) -> None:
        return None


class FakeSession:
    """Answers requests in order and records what each one was handed."""

    def __init__(self, *answers: Raw | BaseException):
        self.answers = list(answers)
        self.requests: list[tuple[str, Any, dict[str, Any]]] = []

    def request(self, method: str, url: Any, **kwargs: Any) -> Exchange:
        self.requests.append((method, url, kwargs))
        return Exchange(self.answers.pop(0))


class RecordingLimiter:
    """The limiter's side of the conversation, written down in order."""

    enabled = True

    def __init__(self, events: list[Any], *, sent_at: float = 12.5, paced: bool = False):
        self.events = events
        self.sent_at = sent_at
        self.paced = paced

    def slot(self) -> RecordingSlot:
        return RecordingSlot(self.events)

    def unpaced_now(self) -> float | None:
        return None  # no fast path: every request takes the awaited one below

    def answered_ok(self, sent_at: float, *, paced: bool, submit: bool) -> bool:
        return False

    async def before_request(self) -> tuple[float, bool]:
        self.events.append("before")
        return self.sent_at, self.paced

    async def after_request(self, signal: str, sent_at: float, *, paced: bool = True) -> None:
        self.events.append(("after", signal, sent_at, paced))

    async def requeue(self) -> None:
        self.events.append("requeue")

    async def accepted(self) -> None:
        self.events.append("accepted")


class RecordingSlot:
    def __init__(self, events: list[Any]):
        self.events = events

    async def __aenter__(self) -> None:
        self.events.append("slot")

    async def __aexit__(self, *exc: object) -> None:
        self.events.append("slot-end")


def transport(
    session: FakeSession, sleeps: Sleeps, *, limiter: Any = None, retry: RetryPolicy | None = None
) -> Transport:
    async def get() -> Any:
        return session

    return Transport(
        session=get,
        timeout=30.0,
        retry=retry or RetryPolicy.disabled(),
        sleep=sleeps,
        clock=lambda: NOW,
        rng=random.Random(0),
        limiter=limiter,
    )


def json_answer() -> Raw:
    return Raw(200, JSON, {"Content-Type": "application/json"})


def refuse(code: int) -> Any:
    """A check that refuses every answer with a rate limit error of ``code``."""

    def check(response: Response) -> None:
        raise RateLimitError("busy", code=code, status_code=429)

    return check


def fail_twice_then_pass() -> Any:
    seen: list[int] = []

    def check(response: Response) -> None:
        seen.append(response.status)
        if len(seen) <= 2:
            raise RateLimitError("busy", code=50429, status_code=429)

    return check


#: What the limiter hears back for an answer sent at 12.5, unpaced.
OK = ("after", "ok", 12.5, False)
RATE = ("after", "rate", 12.5, False)
BUSY = ("after", "concurrency", 12.5, False)
PER_CALL = RetryPolicy(max_attempts=3, initial_delay=0.5, jitter=0.0)


# -- the retry policy of a call --------------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose", "limited", "events"),
    [
        ("poll", False, []),
        ("poll", True, ["before", RATE] * 2 + ["before", OK]),
        (
            "submit",
            True,
            ["slot"] + ["before", RATE] * 2 + ["before", OK, "accepted", "slot-end"],
        ),
    ],
    ids=["unlimited", "limited", "bare-submit"],
)
async def test_a_per_call_retry_policy_is_the_one_used(
    sleeps: Sleeps, purpose: str, limited: bool, events: list[Any]
) -> None:
    session = FakeSession(json_answer(), json_answer(), json_answer())
    seen: list[Any] = []
    limiter = RecordingLimiter(seen) if limited else None
    call = Call(method="POST", url=URL_, purpose=purpose, check=fail_twice_then_pass())

    response = await transport(session, sleeps, limiter=limiter).execute(call, retry=PER_CALL)

    # The transport's own policy allows one attempt: three attempts mean the call's policy ran.
    assert response.status == 200
    assert len(session.requests) == 3
    assert sleeps.calls == [0.5, 1.0]
    assert seen == events


async def test_a_per_call_policy_can_also_retry_less_than_the_transport() -> None:
    sleeps = Sleeps()
    session = FakeSession(json_answer(), json_answer())
    call = Call(method="GET", url=URL_, purpose="poll", check=fail_twice_then_pass())
    busy = transport(session, sleeps, retry=PER_CALL)

    with pytest.raises(RateLimitError):
        await busy.execute(call, retry=RetryPolicy.disabled())

    assert len(session.requests) == 1 and sleeps.calls == []


@pytest.mark.parametrize(
    ("attempts", "sleeps_made"),
    [
        (1, []),
        # Two attempts: the first failure is retried once, after its own Retry-After.
        (2, [3.0]),
        (3, [3.0, 3.0]),
    ],
)
async def test_the_first_failure_is_retried_with_its_own_wait(
    attempts: int, sleeps_made: list[float]
) -> None:
    sleeps = Sleeps()
    session = FakeSession(*[json_answer() for _ in range(attempts)])

    def check(response: Response) -> None:
        raise RateLimitError("slow down", code=50429, status_code=429, retry_after=3.0)

    call = Call(method="GET", url=URL_, purpose="poll", check=check)
    policy = RetryPolicy(max_attempts=attempts, initial_delay=0.5, jitter=0.0)

    with pytest.raises(RateLimitError):
        await transport(session, sleeps).execute(call, retry=policy)

    assert len(session.requests) == attempts
    assert sleeps.calls == sleeps_made


# -- the limiter's side ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("purpose", "events"),
    [
        ("submit", ["slot", "before", OK, "accepted", "slot-end"]),
        ("poll", ["before", OK]),
        ("cancel", ["before", OK]),
        ("download", []),
        ("upload", []),
    ],
)
async def test_what_the_limiter_hears_for_an_answer(
    sleeps: Sleeps, purpose: str, events: list[Any]
) -> None:
    seen: list[Any] = []
    limiter = RecordingLimiter(seen)
    call = Call(method="POST", url=URL_, purpose=purpose)

    await transport(FakeSession(json_answer()), sleeps, limiter=limiter).execute(call)

    assert seen == events


async def test_the_send_time_and_pacing_are_passed_back_as_given(sleeps: Sleeps) -> None:
    seen: list[Any] = []
    limiter = RecordingLimiter(seen, sent_at=99.25, paced=True)
    call = Call(method="POST", url=URL_, purpose="poll")

    await transport(FakeSession(json_answer()), sleeps, limiter=limiter).execute(call)
    refused = Call(method="POST", url=URL_, purpose="poll", check=refuse(50429))
    with pytest.raises(RateLimitError):
        await transport(FakeSession(json_answer()), sleeps, limiter=limiter).execute(refused)

    assert seen == [
        "before",
        ("after", "ok", 99.25, True),
        "before",
        ("after", "rate", 99.25, True),
    ]


@pytest.mark.parametrize(
    ("purpose", "code", "events"),
    [
        # Only a submit refused for concurrency gives its slot back and queues again.
        ("submit", 50430, ["slot", "before", BUSY, "requeue", "slot-end"]),
        ("submit", 50429, ["slot", "before", RATE, "slot-end"]),
        ("poll", 50430, ["before", BUSY]),
        ("poll", 50429, ["before", RATE]),
    ],
)
async def test_what_the_limiter_hears_for_a_refusal(
    sleeps: Sleeps, purpose: str, code: int, events: list[Any]
) -> None:
    seen: list[Any] = []
    call = Call(method="POST", url=URL_, purpose=purpose, check=refuse(code))

    limiter = RecordingLimiter(seen)
    with pytest.raises(RateLimitError):
        await transport(FakeSession(json_answer()), sleeps, limiter=limiter).execute(call)

    assert seen == events


async def test_a_failure_that_is_not_a_refusal_tells_the_limiter_nothing(sleeps: Sleeps) -> None:
    seen: list[Any] = []
    call = Call(method="POST", url=URL_, purpose="submit")
    session = FakeSession(Raw(502, b"bad gateway"), aiohttp.ServerDisconnectedError())

    def check(response: Response) -> None:
        raise ServerError("bad gateway", status_code=response.status)

    limiter = RecordingLimiter(seen)
    with pytest.raises(ServerError):
        await transport(session, sleeps, limiter=limiter).execute(
            Call(method="POST", url=URL_, purpose="submit", check=check)
        )
    with pytest.raises(APIConnectionError):
        await transport(session, sleeps, limiter=limiter).execute(call)

    assert seen == ["slot", "before", "slot-end"] * 2


async def test_a_submit_inside_a_held_slot_takes_no_other(sleeps: Sleeps) -> None:
    seen: list[Any] = []
    holder = Limiter(Limits(max_concurrency=2), "k")
    call = Call(method="POST", url=URL_, purpose="submit")

    limiter = RecordingLimiter(seen)
    async with holder.slot():
        await transport(FakeSession(json_answer()), sleeps, limiter=limiter).execute(call)

    assert seen == ["before", OK, "accepted"]


async def test_a_disabled_limiter_is_not_consulted(sleeps: Sleeps) -> None:
    seen: list[Any] = []
    limiter = RecordingLimiter(seen)
    limiter.enabled = False

    for purpose in ("submit", "poll"):
        call = Call(method="POST", url=URL_, purpose=purpose)
        await transport(FakeSession(json_answer()), sleeps, limiter=limiter).execute(call)

    assert seen == []


# -- logs ------------------------------------------------------------------------------------


async def test_each_retry_is_logged_with_the_attempt_and_its_error(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jimeng")
    call = Call(method="POST", url=URL_, purpose="poll", check=fail_twice_then_pass())

    session = FakeSession(json_answer(), json_answer(), json_answer())
    await transport(session, sleeps).execute(call, retry=PER_CALL)

    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
        "retrying POST poll after attempt 1: busy (code=50429, http=429)",
        "retrying POST poll after attempt 2: busy (code=50429, http=429)",
    ]


async def test_each_answer_is_logged_at_debug_without_its_query(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="jimeng")
    call = Call(method="PUT", url=URL_, purpose="upload")

    await transport(FakeSession(Raw(204, b"")), sleeps).execute(call)

    (record,) = [r for r in caplog.records if r.levelno == logging.DEBUG]
    match = re.fullmatch(
        r"PUT https://api\.example\.test/v1/thing -> 204 in (\d+\.\d{3})s \(upload\)",
        record.getMessage(),
    )
    assert match is not None, record.getMessage()
    assert 0.0 <= float(match.group(1)) < 60.0


async def test_no_debug_line_unless_debug_is_on(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jimeng")

    await transport(FakeSession(json_answer()), sleeps).execute(Call(method="GET", url=URL_))

    assert caplog.records == []


# -- what is sent, what comes back -----------------------------------------------------------


async def test_the_url_is_handed_over_exactly_as_built(sleeps: Sleeps) -> None:
    session = FakeSession(json_answer())

    response = await transport(session, sleeps).execute(Call(method="GET", url=URL_))

    ((method, url, _),) = session.requests
    assert method == "GET"
    # Already encoded (and signed as such): "%7E" must not become "~".
    assert isinstance(url, URL) and str(url) == URL_
    assert response.url == URL_


async def test_the_default_user_agent(sleeps: Sleeps) -> None:
    session = FakeSession(json_answer())

    async def get() -> Any:
        return session

    plain = Transport(session=get, timeout=1.0, retry=RetryPolicy.disabled(), sleep=sleeps)
    await plain.execute(Call(method="GET", url=URL_))

    ((_, _, kwargs),) = session.requests
    assert kwargs["headers"]["User-Agent"] == "jimeng-python"
    assert plain.user_agent == "jimeng-python"
    assert plain.limiter is None
    assert isinstance(plain.rng, random.Random)
    assert plain.attempts == {"request": 1}


@pytest.mark.parametrize("status", [200, 299])
async def test_a_2xx_answer_that_is_not_json_is_a_server_failure(
    sleeps: Sleeps, status: int
) -> None:
    page = Raw(status, b"<html>proxy</html>", {"Content-Type": "text/html"})
    call = Call(method="POST", url=URL_, purpose="poll", expects_json=True)

    with pytest.raises(ServerError) as caught:
        await transport(FakeSession(page), sleeps).execute(call)

    assert caught.value.message == (
        f"unexpected non-JSON answer to the poll (HTTP {status}, text/html, 18 bytes): "
        "'<html>proxy</html>'"
    )


@pytest.mark.parametrize("status", [199, 300, 302, 404, 502])
async def test_only_2xx_answers_must_be_json(sleeps: Sleeps, status: int) -> None:
    page = Raw(status, b"<html>elsewhere</html>", {"Content-Type": "text/html"})
    call = Call(method="POST", url=URL_, purpose="poll", expects_json=True)

    response = await transport(FakeSession(page), sleeps).execute(call)

    assert response.status == status
    assert response.body == b"<html>elsewhere</html>"


async def test_a_submit_that_may_have_arrived_says_so_with_its_purpose(sleeps: Sleeps) -> None:
    call = Call(method="POST", url=URL_, purpose="submit", idempotent=False)

    with pytest.raises(APIConnectionError) as caught:
        await transport(FakeSession(aiohttp.ServerDisconnectedError()), sleeps).execute(call)

    error = caught.value
    assert error.maybe_accepted is True
    assert error.message.startswith(
        f"connection failed for POST {WHERE}: Server disconnected — the submit may have "
        "reached the server, which may have accepted (and will bill) the task though no task "
        "id came back; before submitting again, look for a task submitted at "
        "2025-03-04 05:06:07 UTC"
    )


async def test_a_failure_names_the_method(sleeps: Sleeps) -> None:
    call = Call(method="DELETE", url=URL_, purpose="cancel")

    with pytest.raises(APIConnectionError) as caught:
        await transport(FakeSession(ConnectionResetError(104, "reset")), sleeps).execute(call)

    assert caught.value.message == f"connection failed for DELETE {WHERE}: [Errno 104] reset"


# -- failures mapped, by message -------------------------------------------------------------


def connector_error(cls: type[aiohttp.ClientConnectorError]) -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("h.test", 443, True, True, None, None, None)
    if cls is aiohttp.ClientConnectorCertificateError:
        return cls(key, ssl.SSLCertVerificationError("bad certificate"))
    return cls(key, OSError(111, "refused"))


class Odd(Exception):
    pass


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (aiohttp.InvalidURL("nope://"), "cannot send GET {where}: nope://"),
        (
            connector_error(aiohttp.ClientConnectorCertificateError),
            "cannot send GET {where}: {error}",
        ),
        (
            connector_error(aiohttp.ClientConnectorError),
            "cannot connect for GET {where}: {error}",
        ),
        (asyncio.TimeoutError(), "timed out waiting for GET {where}"),
        (aiohttp.ServerTimeoutError("read"), "timed out waiting for GET {where}"),
        (aiohttp.ClientPayloadError("cut"), "connection failed for GET {where}: cut"),
        (OSError(113, "no route"), "connection failed for GET {where}: [Errno 113] no route"),
        (Odd("secret detail"), "request failed for GET {where}: Odd"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else "",
)
def test_transport_failures_by_message(error: BaseException, message: str) -> None:
    # A second "?" inside the query is still query: only the path is named.
    mapped = map_transport_error(error, "GET", "https://h.test/p?a=1?b=2")

    assert mapped.message == message.format(where="https://h.test/p", error=error)


# -- answers ---------------------------------------------------------------------------------


def test_a_header_spelt_exactly_wins_over_another_case() -> None:
    response = Response(status=200, headers={"x-trace": "lower", "X-Trace": "exact"}, body=b"")

    assert response.header("X-Trace") == "exact"
    assert response.header("x-trace") == "lower"
    assert response.header("X-TRACE") == "lower"  # no exact match: the first in order


def test_a_decoded_answer_without_a_secret_is_remembered_clean() -> None:
    canary = "canary-http-pinned-5d1e"
    _logging.register_secret(canary)
    clean = Response(status=200, headers={}, body=b'{"task_id":"7"}')
    tainted = Response(status=200, headers={}, body=f'{{"token":"{canary}"}}'.encode())

    value = clean.json()
    held = _logging._clean.get(id(value))

    assert value == {"task_id": "7"}
    assert held is not None and held[0] is value
    assert id(tainted.json()) not in _logging._clean
    assert _logging.scrub(tainted.json()) == {"token": "<redacted>"}


def test_an_api_error_mapped_twice_is_the_same_error() -> None:
    error = APIError("refused", code=1)
    assert map_transport_error(error, "GET", URL_) is error


async def test_the_default_clock_is_aware_utc(sleeps: Sleeps) -> None:
    async def get() -> Any:
        return FakeSession(aiohttp.ServerDisconnectedError())

    plain = Transport(session=get, timeout=1.0, retry=RetryPolicy.disabled(), sleep=sleeps)
    call = Call(method="POST", url=URL_, purpose="submit", idempotent=False)
    with pytest.raises(APIConnectionError) as caught:
        await plain.execute(call)

    now = plain.clock()
    assert now.tzinfo is timezone.utc
    assert abs((now - datetime.now(timezone.utc)).total_seconds()) < 60
    # The time a user is told to look for a task at names its zone.
    assert re.search(r"submitted at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC ", caught.value.message)
