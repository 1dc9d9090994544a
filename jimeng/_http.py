"""The engine's one way to talk HTTP.

Backends never touch sockets: they describe requests as :class:`Call` objects, yielded from
generator *flows*, and receive :class:`Response` objects back. :class:`Transport` sends each call
(signing every attempt afresh, retrying per :mod:`jimeng._retry`, mapping aiohttp failures to
:mod:`jimeng.errors`), and :func:`drive` runs a flow to its return value.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from jimeng import _logging
from jimeng._limits import UNLIMITED_PURPOSES, Limiter, holding_slot, rate_limit_signal
from jimeng._retry import RetryPolicy, retry_after_first, should_retry
from jimeng.errors import APIConnectionError, APIError, APITimeoutError, JimengError, ServerError

__all__ = ["Call", "Flow", "Response", "Transport", "drive"]

T = TypeVar("T")

#: Signs one attempt: gets the call and the current UTC time, returns the headers to add.
Signer = Callable[["Call", datetime], Mapping[str, str]]
#: Inspects an answer and raises the right :class:`jimeng.errors.APIError` if it is an error.
Checker = Callable[["Response"], None]


@attrs.frozen(kw_only=True)
class Call:
    """One HTTP request as a backend describes it.

    ``url`` carries the exact query string to send (the one that is signed). ``body`` is the
    exact bytes to send. ``idempotent`` tells the retry policy whether a resend is harmless.
    """

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    body: bytes | None = attrs.field(default=None, repr=False)
    sign: Signer | None = attrs.field(default=None, repr=False, eq=False)
    check: Checker | None = attrs.field(default=None, repr=False, eq=False)
    idempotent: bool = True
    #: Short label for logs and counters ("submit", "poll", "cancel", "upload"…).
    purpose: str = "request"
    #: The answer must be a JSON document: a 2xx answer that is not (an HTML page from a proxy,
    #: a truncated body) is a server failure, retried like a 5xx when the call is idempotent.
    expects_json: bool = False
    timeout: float | None = None
    proxy: str | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class Response:
    """An HTTP answer, fully read."""

    status: int
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)
    url: str = ""
    _decoded: list[Any] = attrs.field(factory=list, init=False, repr=False, eq=False)

    def json(self) -> Any:
        """The body decoded as JSON, or ``None`` if it is not JSON (decoded once, then cached:
        the error check and the parser both read it)."""
        if not self._decoded:
            try:
                decoded = json.loads(self.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                decoded = None
            _logging.decoded_clean(decoded, self.body)
            self._decoded.append(decoded)
        return self._decoded[0]

    def retry_after(self) -> float | None:
        """``Retry-After`` in seconds, from a number or an HTTP date (RFC 9110 §10.2.3)."""
        value = self.header("Retry-After")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())

    def header(self, name: str) -> str | None:
        """A header by name, ignoring case."""
        value = self.headers.get(name)
        if value is None and not isinstance(self.headers, CIMultiDictProxy | CIMultiDict):
            lowered = name.lower()
            for key, item in self.headers.items():
                if key.lower() == lowered:
                    return item
        return value


#: A backend flow: yields calls, receives responses, returns a value.
Flow = Generator[Call, Response, T]

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Transport:
    """Sends :class:`Call` objects over one aiohttp session."""

    def __init__(
        self,
        *,
        session: Callable[[], Awaitable[aiohttp.ClientSession]],
        timeout: float,
        retry: RetryPolicy,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = utc_now,
        rng: random.Random | None = None,
        user_agent: str = "jimeng-python",
        limiter: Limiter | None = None,
    ):
        self._session = session
        #: Paces API calls and feeds their answers back (shared by ``evolve`` copies).
        self.limiter = limiter
        self.timeout = timeout
        self.retry = retry
        self.sleep = sleep
        self.clock = clock
        self.rng = rng or random.Random()
        self.user_agent = user_agent
        #: Attempts made by this transport, per call purpose (for tests and diagnostics).
        self.attempts: dict[str, int] = {}

    def evolve(self, **changes: Any) -> Transport:
        """A copy with other settings that shares the session."""
        clone = Transport(
            session=self._session,
            timeout=changes.get("timeout", self.timeout),
            retry=changes.get("retry", self.retry),
            sleep=self.sleep,
            clock=self.clock,
            rng=self.rng,
            user_agent=self.user_agent,
            limiter=self.limiter,
        )
        clone.attempts = self.attempts
        return clone

    async def session(self) -> aiohttp.ClientSession:
        return await self._session()

    async def execute(self, call: Call, *, retry: RetryPolicy | None = None) -> Response:
        """Send ``call``, retrying per the policy; return the checked response.

        A call that is not idempotent (a submit) and fails in a way that does not prove the
        server refused it raises an error marked :attr:`~jimeng.JimengError.maybe_accepted`.
        """
        limiter = self.limiter
        send: Callable[[Call], Awaitable[Response]] = self.send_once
        if limiter is not None and limiter.enabled and call.purpose not in UNLIMITED_PURPOSES:
            send = self._send_limited
            if call.purpose == "submit" and not holding_slot():
                # A bare submit holds a generation slot for its request (generate() holds one
                # through the whole wait instead).
                async with limiter.slot():
                    return await self._execute(call, retry, send)
        return await self._execute(call, retry, send)

    async def _send_limited(self, call: Call) -> Response:
        """One attempt under the limiter: wait for the pace, then feed the answer back."""
        limiter = self.limiter
        assert limiter is not None
        # The common case (nothing to pace, a local store) runs without suspending.
        sent_at = limiter.unpaced_now()
        if sent_at is None:
            sent_at, paced = await limiter.before_request()
        else:
            paced = False
        try:
            response = await self.send_once(call)
        except JimengError as error:
            signal = rate_limit_signal(error)
            if signal is not None:
                await limiter.after_request(signal, sent_at, paced=paced)
                if signal == "concurrency" and call.purpose == "submit":
                    await limiter.requeue()
            raise
        submit = call.purpose == "submit"
        if not limiter.answered_ok(sent_at, paced=paced, submit=submit):
            await limiter.after_request("ok", sent_at, paced=paced)
            if submit:
                await limiter.accepted()
        return response

    async def _execute(
        self,
        call: Call,
        retry: RetryPolicy | None,
        send: Callable[[Call], Awaitable[Response]],
    ) -> Response:
        policy = retry or self.retry
        try:
            # The first attempt runs here, without the retry machinery (most calls succeed).
            try:
                return await send(call)
            except Exception as error:
                if policy.max_attempts <= 1 or not should_retry(
                    error, idempotent=call.idempotent, policy=policy
                ):
                    raise
                first = error
            return await retry_after_first(
                lambda: send(call),
                first,
                policy,
                idempotent=call.idempotent,
                sleep=self.sleep,
                rng=self.rng,
                on_retry=lambda attempt, error: _logging.logger.info(
                    "retrying %s %s after attempt %d: %s", call.method, call.purpose, attempt, error
                ),
            )
        except JimengError as error:
            if not call.idempotent and maybe_received(error):
                error.mark_maybe_accepted(call.purpose, self.clock())
            raise

    async def send_once(self, call: Call) -> Response:
        """One attempt: sign now, send, read, check."""
        headers: CIMultiDict[str] = CIMultiDict(call.headers)
        headers.setdefault("User-Agent", self.user_agent)
        if call.sign is not None:
            headers.update(call.sign(call, self.clock()))
        self.attempts[call.purpose] = self.attempts.get(call.purpose, 0) + 1
        session = await self._session()
        timeout = _client_timeout(call.timeout or self.timeout)
        started = time.perf_counter()
        failure: JimengError | None = None
        try:
            async with session.request(
                call.method,
                _url(call.url),
                headers=headers,
                data=call.body,
                timeout=timeout,
                proxy=call.proxy,
                allow_redirects=False,
            ) as raw:
                body = await raw.read()
                response = Response(
                    status=raw.status,
                    headers=raw.headers,
                    body=body,
                    url=call.url,
                )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            failure = map_transport_error(error, call.method, call.url)
            if not _logging.error_holds_secret(error):
                raise failure from error
        if failure is not None:
            raise failure from None  # outside the handler: see map_transport_error
        if _logging.logger.isEnabledFor(logging.DEBUG):
            _logging.logger.debug(
                "%s %s -> %d in %.3fs (%s)",
                call.method,
                _strip_query(call.url),
                response.status,
                time.perf_counter() - started,
                call.purpose,
            )
        if call.expects_json and 200 <= response.status < 300 and response.json() is None:
            raise unreadable_answer(response, call)
        if call.check is not None:
            call.check(response)
        return response


def unreadable_answer(response: Response, call: Call) -> ServerError:
    """The error for a 2xx answer that should be JSON and is not: the server (or a proxy in
    front of it) failed, so it is retried like a 5xx where resending is harmless."""
    kind = response.header("Content-Type") or "no Content-Type"
    head = _logging.redact_head(response.body, 80).strip()
    return ServerError(
        f"unexpected non-JSON answer to the {call.purpose} (HTTP {response.status}, {kind}, "
        f"{len(response.body)} bytes): {head!r}",
        status_code=response.status,
    )


def maybe_received(error: JimengError) -> bool:
    """Whether a failed request may still have reached the server and been acted on: no answer
    after sending (reset, timeout), or a server failure that is not a documented refusal."""
    if isinstance(error, APIConnectionError):
        return not error.permanent and error.sent is not False
    if isinstance(error, APIError):
        return isinstance(error, ServerError) and not error.resend_safe
    return False


@functools.lru_cache(maxsize=16)
def _client_timeout(total: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total)


@functools.lru_cache(maxsize=256)
def _url(url: str) -> URL:
    """The URL to send, exactly as built (already encoded: the signed query stays as it is).
    Cached: most calls go to a handful of URLs, and yarl objects are immutable."""
    return URL(url, encoded=True)


def map_transport_error(error: BaseException, method: str, url: str) -> JimengError:
    """Translate an aiohttp/asyncio failure into the library's connection errors.

    Callers chain the result to ``error`` for debugging, except when ``error`` (or what it
    chains to) shows a registered secret (:func:`jimeng._logging.error_holds_secret`: a redirect
    to a URL with a key in its query, say). The result, whose message is redacted, is then
    raised with ``from None`` outside the ``except`` block, so that neither its ``__cause__``
    nor its ``__context__`` is the original error, and no traceback prints it.
    """
    where = f"{method} {_strip_query(url)}"
    if isinstance(error, JimengError):
        return error
    if isinstance(error, aiohttp.InvalidURL | aiohttp.ClientConnectorCertificateError):
        return APIConnectionError(f"cannot send {where}: {error}", sent=False, permanent=True)
    if isinstance(error, aiohttp.ClientConnectorError):
        # The TCP (or TLS) connection was never made: the server cannot have seen the request.
        return APIConnectionError(f"cannot connect for {where}: {error}", sent=False)
    if isinstance(error, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return APITimeoutError(f"timed out waiting for {where}", sent=None)
    if isinstance(error, aiohttp.ClientError | OSError):
        return APIConnectionError(f"connection failed for {where}: {error!s}", sent=None)
    return APIConnectionError(f"request failed for {where}: {type(error).__name__}", sent=None)


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


async def drive(flow: Flow[T], transport: Transport) -> T:
    """Run a backend flow: send each yielded call, feed back the response or the error."""
    try:
        call = next(flow)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    while True:
        try:
            response = await transport.execute(call)
        except JimengError as error:
            try:
                call = flow.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            continue
        try:
            call = flow.send(response)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
