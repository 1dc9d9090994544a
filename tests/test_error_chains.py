"""No exception reachable from an error the library raises shows a registered secret: not its
message, and not the ``__cause__``/``__context__`` chain a traceback prints. An aiohttp error
whose text holds one (a redirect to a URL with a key in its query) is left out of the chain;
any other is kept there for debugging."""

from __future__ import annotations

import random
import traceback
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import jimeng
from jimeng import _logging
from jimeng._download import Downloader
from jimeng._http import Call, Transport
from jimeng._retry import RetryPolicy
from jimeng.errors import APIConnectionError, DownloadError
from jimeng.models import Image, ImageResult
from tests._servers import loopback
from tests.conftest import Sleeps

SECRET = "canary-chain-key-7c41d9e2"
NOT_A_SECRET = "public-value-0123456789"


def chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception reachable through ``__cause__`` and ``__context__``."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        item = pending.pop(0)
        if item is None or any(item is known for known in seen):
            continue
        seen.append(item)
        pending += [item.__cause__, item.__context__]
    return seen


def everything_shown(error: BaseException) -> str:
    """The printed traceback, and the message, repr, arguments and attributes of each link."""
    parts = ["".join(traceback.format_exception(error))]
    for item in chain(error):
        parts += [str(item), repr(item), repr(item.args), repr(vars(item))]
    return "\n".join(parts)


@pytest.fixture(autouse=True)
def registered() -> None:
    _logging.register_secret(SECRET)


def redirects(location: str) -> web.Application:
    """A server whose image answers 302 to ``location`` (``{n}`` counts the redirects)."""

    async def image(request: web.Request) -> web.Response:
        hops = int(request.query.get("n", "0")) + 1
        raise web.HTTPFound(location.format(n=hops))

    app = web.Application()
    app.router.add_get("/img.png", image)
    return app


@pytest.fixture
async def downloader(sleeps: Sleeps) -> AsyncIterator[Downloader]:
    async with aiohttp.ClientSession() as session:

        async def get() -> aiohttp.ClientSession:
            return session

        transport = Transport(session=get, timeout=5.0, retry=RetryPolicy.disabled(), sleep=sleeps)
        yield Downloader(transport)


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        (f"/img.png?key={SECRET}&n={{n}}", "0, message='', url='{base}/img.png'"),
        (f"ftp://files.test/{SECRET}", "ftp://files.test/<redacted>"),
    ],
    ids=["redirect-loop", "non-http-redirect"],
)
async def test_a_secret_in_a_redirect_is_in_no_exception_of_a_failed_download(
    downloader: Downloader, tmp_path: Path, location: str, reason: str
) -> None:
    async with loopback(redirects(location)) as base:
        with pytest.raises(DownloadError) as caught:
            await downloader.save(
                Image(url=f"{base}/img.png"), tmp_path, index=1, explicit=False, stamp="s"
            )

    links = chain(caught.value)
    mapped = f"connection failed for GET {base}/img.png: {reason.format(base=base)}"
    assert [(type(link), str(link)) for link in links] == [
        (DownloadError, f"download failed: {mapped}"),
        (APIConnectionError, mapped),
    ]
    assert links[1].__cause__ is None and links[1].__context__ is None
    assert SECRET not in everything_shown(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        (f"/img.png?key={NOT_A_SECRET}&n={{n}}", aiohttp.TooManyRedirects),
        (f"ftp://files.test/{NOT_A_SECRET}", aiohttp.NonHttpUrlRedirectClientError),
    ],
    ids=["redirect-loop", "non-http-redirect"],
)
async def test_an_aiohttp_error_without_a_secret_stays_in_the_chain(
    downloader: Downloader, tmp_path: Path, location: str, kind: type[Exception]
) -> None:
    async with loopback(redirects(location)) as base:
        with pytest.raises(DownloadError) as caught:
            await downloader.read(Image(url=f"{base}/img.png"))

    links = chain(caught.value)
    assert [type(link) for link in links] == [DownloadError, APIConnectionError, kind]
    assert links[1].__cause__ is links[2]
    assert NOT_A_SECRET in everything_shown(caught.value)  # the whole story, for debugging


async def test_a_saved_result_of_a_client_keeps_the_secret_of_its_backend_out_of_the_chain(
    sleeps: Sleeps, tmp_path: Path
) -> None:
    key = "sk-chain-relay-key-0f9e8d7c"
    backend = jimeng.Volcengine(endpoint="http://127.0.0.1:9/jm", api_key=key)  # registers it
    async with (
        loopback(redirects(f"ftp://files.test/{key}")) as base,
        jimeng.Client(backend, sleep=sleeps, rng=random.Random(0)) as client,
    ):
        result = ImageResult(images=(Image(url=f"{base}/img.png"),))
        client._bind(result)
        with pytest.raises(DownloadError) as caught:
            await result.save(tmp_path / "out/")

    assert [type(link) for link in chain(caught.value)] == [DownloadError, APIConnectionError]
    assert str(caught.value) == (
        f"download failed: connection failed for GET {base}/img.png: ftp://files.test/<redacted>"
    )
    assert key not in everything_shown(caught.value)
    assert list((tmp_path / "out").iterdir()) == []


class Failing:
    """A session whose every request fails with ``error`` before any answer."""

    def __init__(self, error: BaseException):
        self.error = error

    def request(self, method: str, url: Any, **kwargs: Any) -> Failing:
        return self

    async def __aenter__(self) -> None:
        raise self.error

    async def __aexit__(self, *exc: object) -> None:
        return None


def api_transport(error: BaseException, sleeps: Sleeps) -> Transport:
    async def get() -> Any:
        return Failing(error)

    return Transport(session=get, timeout=5.0, retry=RetryPolicy.disabled(), sleep=sleeps)


async def test_an_api_call_failing_with_a_secret_in_its_error_raises_it_unchained(
    sleeps: Sleeps,
) -> None:
    raw = aiohttp.InvalidURL(f"https://relay.test/jm?key={SECRET}")
    transport = api_transport(raw, sleeps)

    with pytest.raises(APIConnectionError) as caught:
        await transport.execute(Call(method="GET", url="https://relay.test/jm?Action=Get"))

    assert chain(caught.value) == [caught.value]
    assert str(caught.value) == (
        "cannot send GET https://relay.test/jm: https://relay.test/jm?key=<redacted>"
    )
    assert SECRET not in everything_shown(caught.value)


async def test_an_api_call_failing_without_a_secret_keeps_the_cause(sleeps: Sleeps) -> None:
    raw = aiohttp.InvalidURL(f"https://relay.test/jm?key={NOT_A_SECRET}")
    transport = api_transport(raw, sleeps)

    with pytest.raises(APIConnectionError) as caught:
        await transport.execute(Call(method="GET", url="https://relay.test/jm?Action=Get"))

    assert chain(caught.value) == [caught.value, raw]
    assert caught.value.__cause__ is raw


@pytest.mark.parametrize(
    ("error", "holds"),
    [
        (ValueError(f"at {SECRET}"), True),
        (ValueError("plain", {"url": f"https://h.test/?k={SECRET}"}), True),
        (ValueError("plain"), False),
    ],
)
def test_an_error_holds_a_secret_in_its_message_or_arguments(
    error: BaseException, holds: bool
) -> None:
    assert _logging.error_holds_secret(error) is holds


def test_an_error_holds_a_secret_in_its_attributes_or_its_chain() -> None:
    in_attribute = ValueError("plain")
    in_attribute.history = (f"https://h.test/?k={SECRET}",)  # type: ignore[attr-defined]
    caused = RuntimeError("outer")
    caused.__cause__ = ValueError(SECRET)
    in_context = RuntimeError("outer")
    in_context.__context__ = in_attribute
    looped = RuntimeError("loop")
    looped.__context__ = RuntimeError("back")
    looped.__context__.__context__ = looped

    assert _logging.error_holds_secret(in_attribute)
    assert _logging.error_holds_secret(caused)
    assert _logging.error_holds_secret(in_context)
    assert not _logging.error_holds_secret(looped)  # a cycle ends the search


def test_an_error_that_cannot_be_shown_is_taken_to_hold_one() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text")

    assert _logging.error_holds_secret(Unprintable())
