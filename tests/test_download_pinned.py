"""The downloader by value: what each kind of answer does, how many attempts it takes, which
socket timeouts it sets, how media are recognised and how names are chosen."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import re
import stat
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from jimeng._download import (
    Downloader,
    _read_umask,
    content_name,
    decode_base64,
    media_extension,
    move_to_free_name,
    remove_stale_parts,
    sniff_extension,
)
from jimeng._http import Transport
from jimeng._retry import RetryPolicy
from jimeng.errors import APIConnectionError, APITimeoutError, DownloadError, ServerError
from jimeng.models import Image
from tests.conftest import Sleeps

URL_ = "https://cdn.example.test/out/1.png?sig=abc"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 40
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 30
GIF = b"GIF89a" + b"\x00" * 40
MP4 = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 30


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with aioresponses() as mock:
        yield mock


@pytest.fixture
async def downloader(sleeps: Sleeps) -> AsyncIterator[Downloader]:
    async with aiohttp.ClientSession() as session:

        async def get() -> aiohttp.ClientSession:
            return session

        transport = Transport(
            session=get,
            timeout=33.0,
            retry=RetryPolicy(max_attempts=3, initial_delay=0.5, jitter=0.0),
            sleep=sleeps,
            rng=random.Random(0),
        )
        yield Downloader(transport, max_bytes=1000)


def attempts(mocked: aioresponses) -> list[Any]:
    return mocked.requests.get(("GET", URL(URL_)), [])


# -- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_server_errors_and_rate_limits_are_retried(
    mocked: aioresponses, downloader: Downloader, sleeps: Sleeps, status: int
) -> None:
    mocked.get(URL_, status=status, body=b"busy")
    mocked.get(URL_, status=200, body=PNG, headers={"Content-Type": "image/png"})

    data = await downloader.read(Image(url=URL_))

    assert data == PNG
    assert len(attempts(mocked)) == 2
    assert downloader.transport.attempts == {"download": 2}  # the transport's own counter
    assert sleeps.calls == [0.5]


async def test_server_errors_stop_at_the_budget(
    mocked: aioresponses, downloader: Downloader, sleeps: Sleeps
) -> None:
    for _ in range(5):
        mocked.get(URL_, status=503, body=b"busy")

    with pytest.raises(DownloadError) as caught:
        await downloader.read(Image(url=URL_))

    assert str(caught.value).startswith("download failed: download answered HTTP 503")
    assert len(attempts(mocked)) == 3
    assert sleeps.calls == [0.5, 1.0]


@pytest.mark.parametrize("status", [403, 404, 410])
async def test_client_errors_are_final(
    mocked: aioresponses, downloader: Downloader, sleeps: Sleeps, status: int
) -> None:
    mocked.get(URL_, status=status, body=b"gone")

    with pytest.raises(DownloadError) as caught:
        await downloader.read(Image(url=URL_))

    assert f"download answered HTTP {status} (the link may have expired)" in str(caught.value)
    assert len(attempts(mocked)) == 1 and sleeps.calls == []


async def test_a_declared_size_above_the_cap_is_refused_before_reading(
    mocked: aioresponses, downloader: Downloader
) -> None:
    mocked.get(URL_, status=200, body=PNG, headers={"Content-Length": "1001"})

    with pytest.raises(DownloadError, match="file is 1001 bytes, above the 1000-byte limit"):
        await downloader.read(Image(url=URL_))
    assert len(attempts(mocked)) == 1


async def test_an_undeclared_body_above_the_cap_is_cut_off(
    mocked: aioresponses, downloader: Downloader
) -> None:
    mocked.get(URL_, status=200, body=PNG + b"\x00" * 1000)

    with pytest.raises(DownloadError, match="file exceeds the 1000-byte limit"):
        await downloader.read(Image(url=URL_))
    assert len(attempts(mocked)) == 1


async def test_a_body_exactly_at_the_cap_is_accepted(
    mocked: aioresponses, downloader: Downloader
) -> None:
    body = PNG + b"\x00" * (1000 - len(PNG))
    mocked.get(URL_, status=200, body=body, headers={"Content-Length": "1000"})

    assert await downloader.read(Image(url=URL_)) == body


async def test_a_short_body_is_a_truncation_and_is_retried(
    mocked: aioresponses, downloader: Downloader, sleeps: Sleeps
) -> None:
    mocked.get(URL_, status=200, body=PNG[:20], headers={"Content-Length": str(len(PNG))})
    mocked.get(URL_, status=200, body=PNG, headers={"Content-Length": str(len(PNG))})

    assert await downloader.read(Image(url=URL_)) == PNG
    assert len(attempts(mocked)) == 2
    assert sleeps.calls == [0.5]


async def test_a_body_that_stays_short_is_refused_with_its_sizes(
    mocked: aioresponses, downloader: Downloader
) -> None:
    for _ in range(3):
        mocked.get(URL_, status=200, body=PNG[:20], headers={"Content-Length": str(len(PNG))})

    with pytest.raises(DownloadError, match=f"download truncated: 20 of {len(PNG)} bytes"):
        await downloader.read(Image(url=URL_))


async def test_socket_timeouts_come_from_the_transport(
    mocked: aioresponses, downloader: Downloader
) -> None:
    mocked.get(URL_, status=200, body=PNG)

    await downloader.read(Image(url=URL_))

    (request,) = attempts(mocked)
    assert request.kwargs["timeout"] == aiohttp.ClientTimeout(
        total=None, sock_connect=33.0, sock_read=33.0
    )


async def test_a_save_names_the_file_by_its_content(
    mocked: aioresponses, downloader: Downloader, tmp_path: Path
) -> None:
    # A JPEG behind a ".png" URL, announced as PNG: the bytes decide.
    mocked.get(URL_, status=200, body=JPEG, headers={"Content-Type": "image/png"})

    path = await downloader.save(
        Image(url=URL_), tmp_path, index=3, explicit=False, stamp="20250101_000000"
    )

    assert path == tmp_path / "jimeng_20250101_000000_3.jpg"
    assert path.read_bytes() == JPEG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jimeng_20250101_000000_3.jpg"]


# -- recognising media -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "ext"),
    [
        (PNG, ".png"),
        (JPEG, ".jpg"),
        (WEBP, ".webp"),
        (b"GIF87a" + b"\x00" * 10, ".gif"),
        (GIF, ".gif"),
        (MP4, ".mp4"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", None),
        (b"<!doctype html>", None),
        (b'{"code": 50500}', None),
        (b"\x89PNG", None),
        (b"", None),
    ],
)
def test_media_extension(head: bytes, ext: str | None) -> None:
    assert media_extension(head) == ext


@pytest.mark.parametrize(
    ("head", "content_type", "url", "ext"),
    [
        (JPEG, "image/png", "https://h/x.png", ".jpg"),
        (b"????", "Image/JPEG; charset=binary", None, ".jpg"),
        (b"????", "image/jpg", None, ".jpg"),
        (b"????", "image/webp", "https://h/x.png", ".webp"),
        (b"????", "image/gif", None, ".gif"),
        (b"????", "video/mp4", None, ".mp4"),
        (b"????", " image/png ", None, ".png"),
        (b"????", "text/html", "https://h/a/x.JPEG?sig=1", ".jpg"),
        (b"????", None, "https://h/x.webp", ".webp"),
        (b"????", None, "https://h/x.jpg", ".jpg"),
        (b"????", None, "https://h/x.gif", ".gif"),
        (b"????", None, "https://h/x.mp4", ".mp4"),
        (b"????", None, "https://h/x.PNG", ".png"),
        (b"????", None, "https://h/x.exe", ".bin"),
        (b"????", "", "", ".bin"),
    ],
)
def test_sniff_extension_prefers_bytes_then_content_type_then_url(
    head: bytes, content_type: str | None, url: str | None, ext: str
) -> None:
    assert sniff_extension(head, content_type, url) == ext


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("aGVsbG8=", b"hello"),
        ("aGVsbG8", b"hello"),
        ("aGVsbA", b"hell"),
        ("aGVs\nbG8=\n", b"hello"),
        ("data:image/png;base64,aGVsbG8=", b"hello"),
        ("data:image/png;base64,aGVsbG8", b"hello"),
        ("", b""),
    ],
)
def test_decode_base64(text: str, data: bytes) -> None:
    assert decode_base64(text) == data


@pytest.mark.parametrize("text", ["aGVs*bG8=", "data:image/png;base64,!!!!", "a"])
def test_decode_base64_refuses_what_is_not_base64(text: str) -> None:
    with pytest.raises(DownloadError, match="result is not valid base64"):
        decode_base64(text)


def test_a_data_prefix_without_a_comma_is_not_stripped() -> None:
    with pytest.raises(DownloadError):
        decode_base64("data:aGVsbG8=")


def test_only_the_first_comma_ends_a_data_prefix() -> None:
    # Everything after the first comma is the payload: a second comma makes it invalid.
    with pytest.raises(DownloadError):
        decode_base64("data:image/png;base64,aGVs,bG8=")


# -- names and leftovers -----------------------------------------------------------------------


def test_free_names_count_up_past_every_collision(tmp_path: Path) -> None:
    names = ["jimeng_x_1.png", "jimeng_x_1-2.png", "jimeng_x_1-3.png", "jimeng_x_1-4.png"]
    for number, name in enumerate(names):
        temp = tmp_path / f".jimeng-{number}.part"
        temp.write_bytes(b"%d" % number)
        path = move_to_free_name(temp, tmp_path, "jimeng_x_1", ".png")
        assert path == tmp_path / name  # taken only when free: a wrong count cannot loop
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == sorted(
        (name, b"%d" % number) for number, name in enumerate(names)
    )


def test_only_old_part_files_of_this_library_are_removed(tmp_path: Path) -> None:
    now = time.time()
    old = tmp_path / ".jimeng-old.part"
    edge = tmp_path / ".jimeng-edge.part"
    young = tmp_path / ".jimeng-young.part"
    foreign = tmp_path / ".other-old.part"
    folder = tmp_path / ".jimeng-dir.part"
    for path in (old, edge, young, foreign):
        path.write_bytes(b"x")
    folder.mkdir()
    os.utime(old, (now - 3601, now - 3601))
    os.utime(edge, (now - 3600, now - 3600))
    os.utime(foreign, (now - 9999, now - 9999))
    os.utime(folder, (now - 9999, now - 9999))

    removed = remove_stale_parts(tmp_path, now=now)

    assert removed == [old]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".jimeng-edge.part", ".jimeng-young.part", ".other-old.part", ".jimeng-dir.part"]
    )
    assert remove_stale_parts(tmp_path / "missing", now=now) == []


async def test_a_refused_body_names_where_it_came_from_and_what_it_was(
    mocked: aioresponses, downloader: Downloader
) -> None:
    mocked.get(URL_, status=200, body=b"<!doctype html><p>sign in</p>", content_type="text/html")

    with pytest.raises(DownloadError) as caught:
        await downloader.read(Image(url=URL_))

    assert str(caught.value) == (
        "the result from cdn.example.test is not an image or a video (Content-Type text/html, "
        "starts with '<!doctype html><'); nothing was saved"
    )


async def test_a_save_creates_missing_folders_and_streams_through_a_part_file(
    mocked: aioresponses, downloader: Downloader, tmp_path: Path
) -> None:
    folder = tmp_path / "a" / "b" / "c"
    seen: list[list[str]] = []

    def during(url: Any, **kwargs: Any) -> None:
        seen.append(sorted(p.name for p in folder.iterdir()))

    mocked.get(URL_, status=200, body=PNG, callback=during)

    path = await downloader.save(
        Image(url=URL_), folder, index=1, explicit=False, stamp="20250101_000000"
    )

    (during_names,) = seen
    assert len(during_names) == 1
    assert during_names[0].startswith(".jimeng-") and during_names[0].endswith(".part")
    assert path == folder / "jimeng_20250101_000000_1.png"
    assert sorted(p.name for p in folder.iterdir()) == [path.name]


async def test_a_file_name_held_by_a_folder_is_taken_and_the_next_one_is_used(
    downloader: Downloader, tmp_path: Path
) -> None:
    target = tmp_path / "taken.png"
    target.mkdir()

    path = await downloader.save(Image(data=PNG), target, index=1, explicit=True)

    assert path == tmp_path / "taken-2.png"
    assert path.read_bytes() == PNG
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken-2.png", "taken.png"]


# -- errors by value ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_server_error_at_the_budget_is_a_download_error_caused_by_it(
    mocked: aioresponses, downloader: Downloader, sleeps: Sleeps, status: int
) -> None:
    for _ in range(3):
        mocked.get(URL_, status=status, body=b"busy")

    with pytest.raises(DownloadError) as caught:
        await downloader.read(Image(url=URL_))

    assert str(caught.value) == (
        f"download failed: download answered HTTP {status} (http={status})"
    )
    assert caught.value.url == URL_
    cause = caught.value.__cause__
    assert isinstance(cause, ServerError)
    assert cause.status_code == status
    assert cause.__cause__ is None  # raised as is, not re-wrapped by the transport mapping
    assert downloader.transport.attempts == {"download": 3}
    assert sleeps.calls == [0.5, 1.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 499])
async def test_a_client_error_is_raised_unwrapped_after_one_attempt(
    mocked: aioresponses, downloader: Downloader, sleeps: Sleeps, status: int
) -> None:
    mocked.get(URL_, status=status, body=b"gone")

    with pytest.raises(DownloadError) as caught:
        await downloader.read(Image(url=URL_))

    assert str(caught.value) == f"download answered HTTP {status} (the link may have expired)"
    assert caught.value.url == URL_
    assert caught.value.__cause__ is None
    assert downloader.transport.attempts == {"download": 1}
    assert sleeps.calls == []


async def test_size_errors_name_the_sizes_and_the_url(
    mocked: aioresponses, downloader: Downloader, sleeps: Sleeps
) -> None:
    mocked.get(URL_, status=200, body=PNG, headers={"Content-Length": "1001"})
    mocked.get(URL_, status=200, body=PNG + b"\x00" * 953)  # 1001 bytes, undeclared

    with pytest.raises(DownloadError) as declared:
        await downloader.read(Image(url=URL_))
    with pytest.raises(DownloadError) as streamed:
        await downloader.read(Image(url=URL_))

    assert str(declared.value) == "file is 1001 bytes, above the 1000-byte limit"
    assert str(streamed.value) == "file exceeds the 1000-byte limit"
    assert declared.value.url == streamed.value.url == URL_
    assert declared.value.__cause__ is None and streamed.value.__cause__ is None
    assert downloader.transport.attempts == {"download": 2}  # neither is retried
    assert sleeps.calls == []


async def test_a_truncation_at_the_budget_keeps_its_sizes_and_says_the_request_was_sent(
    mocked: aioresponses, downloader: Downloader, sleeps: Sleeps
) -> None:
    for _ in range(3):
        mocked.get(URL_, status=200, body=PNG[:20], headers={"Content-Length": str(len(PNG))})

    with pytest.raises(DownloadError) as caught:
        await downloader.read(Image(url=URL_))

    assert str(caught.value) == f"download failed: download truncated: 20 of {len(PNG)} bytes"
    assert caught.value.url == URL_
    cause = caught.value.__cause__
    assert type(cause) is APIConnectionError
    assert cause.sent is True
    assert cause.__cause__ is None
    assert len(attempts(mocked)) == 3
    assert sleeps.calls == [0.5, 1.0]


@pytest.mark.parametrize(
    ("error", "message", "kind"),
    [
        (
            aiohttp.ClientConnectionError("reset by peer"),
            "connection failed for GET https://cdn.example.test/out/1.png: reset by peer",
            APIConnectionError,
        ),
        (
            asyncio.TimeoutError(),
            "timed out waiting for GET https://cdn.example.test/out/1.png",
            APITimeoutError,
        ),
        (
            ValueError("odd"),
            "request failed for GET https://cdn.example.test/out/1.png: ValueError",
            APIConnectionError,
        ),
    ],
)
async def test_transport_failures_are_mapped_retried_and_name_the_host_without_the_query(
    mocked: aioresponses,
    downloader: Downloader,
    sleeps: Sleeps,
    error: Exception,
    message: str,
    kind: type[Exception],
) -> None:
    for _ in range(3):
        mocked.get(URL_, exception=error)

    with pytest.raises(DownloadError) as caught:
        await downloader.read(Image(url=URL_))

    assert str(caught.value) == f"download failed: {message}"
    assert caught.value.url == URL_
    cause = caught.value.__cause__
    assert type(cause) is kind
    assert cause.__cause__ is error
    assert downloader.transport.attempts == {"download": 3}
    assert sleeps.calls == [0.5, 1.0]


async def test_a_transport_failure_then_success_reads_the_second_answer(
    mocked: aioresponses, downloader: Downloader, sleeps: Sleeps
) -> None:
    mocked.get(URL_, exception=aiohttp.ServerDisconnectedError())
    mocked.get(URL_, status=200, body=PNG)

    assert await downloader.read(Image(url=URL_)) == PNG
    assert downloader.transport.attempts == {"download": 2}
    assert sleeps.calls == [0.5]


async def test_a_cancelled_download_is_not_retried_and_leaves_no_part(
    mocked: aioresponses, downloader: Downloader, sleeps: Sleeps, tmp_path: Path
) -> None:
    mocked.get(URL_, exception=asyncio.CancelledError())
    mocked.get(URL_, status=200, body=PNG)

    with pytest.raises(asyncio.CancelledError):
        await downloader.save(Image(url=URL_), tmp_path, index=1, explicit=False, stamp="s")

    assert downloader.transport.attempts == {"download": 1}
    assert sleeps.calls == []
    assert list(tmp_path.iterdir()) == []


async def test_jittered_delays_come_from_the_transports_random_source(
    mocked: aioresponses, sleeps: Sleeps
) -> None:
    for _ in range(2):
        mocked.get(URL_, status=502, body=b"busy")
    mocked.get(URL_, status=200, body=PNG)
    draws = random.Random(7)
    expected = [0.5 * (1 - 0.5 * draws.random()), 1.0 * (1 - 0.5 * draws.random())]

    async with aiohttp.ClientSession() as session:

        async def get() -> aiohttp.ClientSession:
            return session

        transport = Transport(
            session=get,
            timeout=5.0,
            retry=RetryPolicy(max_attempts=3, initial_delay=0.5, jitter=0.5),
            sleep=sleeps,
            rng=random.Random(7),
        )
        assert await Downloader(transport).read(Image(url=URL_)) == PNG

    assert sleeps.calls == expected


async def test_the_attempt_counter_adds_to_the_transports_other_counters(
    mocked: aioresponses, downloader: Downloader
) -> None:
    downloader.transport.attempts.update({"poll": 4, "download": 5})
    mocked.get(URL_, status=200, body=PNG)

    await downloader.read(Image(url=URL_))

    assert downloader.transport.attempts == {"poll": 4, "download": 6}


# -- sessions and the request ------------------------------------------------------------------


class CountingSession:
    """The transport's session, handed out through a counter; records what ``get`` was given."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.handed_out = 0
        self.urls: list[Any] = []

    async def __call__(self) -> Any:
        self.handed_out += 1
        return self

    def get(self, url: Any, **kwargs: Any) -> Any:
        self.urls.append(url)
        return self.session.get(url, **kwargs)


@pytest.fixture
async def counted(sleeps: Sleeps) -> AsyncIterator[tuple[Transport, CountingSession]]:
    async with aiohttp.ClientSession() as session:
        counter = CountingSession(session)
        transport = Transport(
            session=counter,
            timeout=33.0,
            retry=RetryPolicy(max_attempts=3, initial_delay=0.5, jitter=0.0),
            sleep=sleeps,
        )
        yield transport, counter


async def test_an_attached_download_takes_the_clients_session_once_for_all_its_attempts(
    mocked: aioresponses, counted: tuple[Transport, CountingSession]
) -> None:
    transport, counter = counted
    mocked.get(URL_, status=503, body=b"busy")
    mocked.get(URL_, status=200, body=PNG)

    assert await Downloader(transport).read(Image(url=URL_)) == PNG

    assert counter.handed_out == 1
    assert len(counter.urls) == 2


async def test_a_signed_url_is_requested_exactly_as_given(
    mocked: aioresponses, counted: tuple[Transport, CountingSession]
) -> None:
    transport, counter = counted
    signed = "https://cdn.example.test/out/%41b.png?sig=a%2Bb%3D&t=%7e1"
    mocked.get(re.compile(r"https://cdn\.example\.test/out/.*"), status=200, body=PNG)

    await Downloader(transport).read(Image(url=signed))

    (url,) = counter.urls
    assert str(url) == signed  # not re-quoted: a CDN signature covers the bytes as sent


@pytest.mark.parametrize("trust_env", [False, True])
async def test_a_detached_download_opens_and_closes_a_session_of_its_own(
    mocked: aioresponses,
    counted: tuple[Transport, CountingSession],
    monkeypatch: pytest.MonkeyPatch,
    sleeps: Sleeps,
    trust_env: bool,
) -> None:
    transport, counter = counted
    opened: list[tuple[dict[str, Any], aiohttp.ClientSession]] = []
    real = aiohttp.ClientSession

    def spy(**kwargs: Any) -> aiohttp.ClientSession:
        session = real(**kwargs)
        opened.append((kwargs, session))
        return session

    monkeypatch.setattr(aiohttp, "ClientSession", spy)
    mocked.get(URL_, status=503, body=b"busy")
    mocked.get(URL_, status=200, body=PNG)
    if trust_env:
        downloader = Downloader(transport, detached=lambda: True, trust_env=True)
    else:
        downloader = Downloader(transport, detached=lambda: True)

    assert await downloader.read(Image(url=URL_)) == PNG

    ((kwargs, session),) = opened
    jar = kwargs.pop("cookie_jar")
    assert isinstance(jar, aiohttp.DummyCookieJar)  # a download sends no cookies
    assert kwargs == {"trust_env": trust_env}
    assert session.closed
    assert counter.handed_out == 0
    assert transport.attempts == {"download": 2}
    assert sleeps.calls == [0.5]


# -- saving ------------------------------------------------------------------------------------


async def test_a_retried_save_keeps_only_the_last_attempts_bytes_and_head(
    mocked: aioresponses, downloader: Downloader, tmp_path: Path
) -> None:
    # The first attempt writes 60 bytes of a JPEG before it is cut; the second is a short PNG.
    small_png = PNG[:12]
    mocked.get(URL_, status=200, body=JPEG + b"\x01" * 16, headers={"Content-Length": "90"})
    mocked.get(URL_, status=200, body=small_png, headers={"Content-Type": "image/png"})

    path = await downloader.save(Image(url=URL_), tmp_path, index=2, explicit=False, stamp="s")

    assert path == tmp_path / "jimeng_s_2.png"
    assert path.read_bytes() == small_png
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jimeng_s_2.png"]


async def test_a_saved_file_gets_the_usual_umask_mode(
    downloader: Downloader, tmp_path: Path
) -> None:
    mask = os.umask(0o022)
    os.umask(mask)

    path = await downloader.save(Image(data=PNG), tmp_path, index=1, explicit=False, stamp="s")

    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


async def test_an_explicit_target_never_replaces_what_was_there(
    downloader: Downloader, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "new" / "cover.png"
    target.parent.mkdir()
    target.write_bytes(b"old")
    (tmp_path / "new" / "cover-2.png").write_bytes(b"older")

    with caplog.at_level(logging.INFO, logger="jimeng"):
        path = await downloader.save(Image(data=PNG), target, index=7, explicit=True)

    assert path == tmp_path / "new" / "cover-3.png"
    assert path.read_bytes() == PNG
    assert sorted((p.name, p.read_bytes()) for p in target.parent.iterdir()) == [
        ("cover-2.png", b"older"),
        ("cover-3.png", PNG),
        ("cover.png", b"old"),
    ]
    assert [r.getMessage() for r in caplog.records] == [
        f"{target} saved as cover-3.png: cover.png is taken"
    ]


async def test_an_explicit_name_gets_the_suffix_of_the_real_content(
    downloader: Downloader, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cat.png").write_bytes(b"another cat")

    with caplog.at_level(logging.INFO, logger="jimeng"):
        jpeg = await downloader.save(
            Image(data=JPEG), tmp_path / "cover.png", index=1, explicit=True
        )
        png = await downloader.save(Image(data=PNG), tmp_path / "cat.jpg", index=1, explicit=True)
        video = await downloader.save(Image(data=MP4), tmp_path / "dog.PNG", index=1, explicit=True)
        kept = await downloader.save(Image(data=JPEG), tmp_path / "x.JPEG", index=1, explicit=True)

    assert [jpeg, png, video, kept] == [
        tmp_path / "cover.jpg",
        tmp_path / "cat-2.png",
        tmp_path / "dog.mp4",
        tmp_path / "x.JPEG",
    ]
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == [
        ("cat-2.png", PNG),
        ("cat.png", b"another cat"),
        ("cover.jpg", JPEG),
        ("dog.mp4", MP4),
        ("x.JPEG", JPEG),
    ]
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'cover.png'} saved as cover.jpg: the content is JPEG",
        f"{tmp_path / 'cat.jpg'} saved as cat-2.png: the content is PNG and cat.png is taken",
        f"{tmp_path / 'dog.PNG'} saved as dog.mp4: the content is MP4",
    ]
    assert [r.levelno for r in caplog.records] == [logging.INFO] * 3


async def test_an_explicit_target_creates_its_folder(
    downloader: Downloader, tmp_path: Path
) -> None:
    target = tmp_path / "a" / "b" / "cover.jpg"

    assert await downloader.save(Image(data=JPEG), target, index=1, explicit=True) == target
    assert target.read_bytes() == JPEG


async def test_default_names_use_the_injected_clock_and_count_past_collisions(
    downloader: Downloader, tmp_path: Path
) -> None:
    clocked = Downloader(downloader.transport, now=lambda: datetime(2026, 1, 2, 3, 4, 5))
    (tmp_path / "jimeng_20260102_030405_2.png").write_bytes(b"taken")

    assert clocked.stamp() == "20260102_030405"
    first = await clocked.save(Image(data=PNG), tmp_path, index=2, explicit=False)
    second = await clocked.save(Image(data=PNG), tmp_path, index=2, explicit=False)
    given = await clocked.save(Image(data=PNG), tmp_path, index=2, explicit=False, stamp="x")

    assert first.name == "jimeng_20260102_030405_2-2.png"
    assert second.name == "jimeng_20260102_030405_2-3.png"
    assert given.name == "jimeng_x_2.png"


async def test_stale_parts_are_judged_by_the_downloaders_clock(
    downloader: Downloader, tmp_path: Path
) -> None:
    later = datetime.now() + timedelta(hours=2)
    clocked = Downloader(downloader.transport, now=lambda: later)
    left = tmp_path / ".jimeng-left.part"
    left.write_bytes(b"half")  # written just now: two hours old by the downloader's clock

    saved = await clocked.save(Image(data=PNG), tmp_path, index=1, explicit=False, stamp="s")

    assert sorted(p.name for p in tmp_path.iterdir()) == [saved.name]


async def test_a_folder_that_cannot_be_made_is_a_download_error_naming_it(
    downloader: Downloader, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")

    with pytest.raises(DownloadError) as under_a_file:
        await downloader.save(Image(data=PNG), blocker / "sub", index=1, explicit=False)
    with pytest.raises(DownloadError) as is_a_file:
        await downloader.save(Image(data=PNG), blocker, index=1, explicit=False)

    assert str(under_a_file.value) == f"cannot write to {blocker / 'sub'}: Not a directory"
    assert str(is_a_file.value) == f"cannot write to {blocker}: File exists"
    assert isinstance(under_a_file.value.__cause__, NotADirectoryError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


async def test_a_save_that_cannot_be_renamed_names_the_folder_and_the_reason(
    downloader: Downloader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(src: Any, dst: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(os, "link", full)

    with pytest.raises(DownloadError) as caught:
        await downloader.save(Image(data=PNG), tmp_path / "a.png", index=1, explicit=True)

    assert str(caught.value) == f"cannot save to {tmp_path}: No space left on device"
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.__cause__.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def taken_at_the_last_moment(
    monkeypatch: pytest.MonkeyPatch, name: Path, theirs: bytes = b"their image"
) -> None:
    """Make another writer save ``name`` just before this process puts its file there: after
    the name was found free, before the rename or link that gives it the content."""

    def racing(step: Any) -> Any:
        def wrapped(src: Any, dst: Any, **kwargs: Any) -> Any:
            if Path(dst) == name and not name.exists():
                name.write_bytes(theirs)
            return step(src, dst, **kwargs)

        return wrapped

    monkeypatch.setattr(os, "link", racing(os.link))
    monkeypatch.setattr(os, "replace", racing(os.replace))


async def test_a_name_taken_by_another_writer_at_the_last_moment_is_left_to_it(
    downloader: Downloader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = tmp_path / "jimeng_s_1.png"
    taken_at_the_last_moment(monkeypatch, theirs)

    path = await downloader.save(Image(data=PNG), tmp_path, index=1, explicit=False, stamp="s")

    assert path == tmp_path / "jimeng_s_1-2.png"
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == [
        ("jimeng_s_1-2.png", PNG),
        ("jimeng_s_1.png", b"their image"),
    ]


async def test_an_explicit_name_taken_at_the_last_moment_is_left_to_its_writer(
    downloader: Downloader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "cover.png"
    taken_at_the_last_moment(monkeypatch, target)

    path = await downloader.save(Image(data=PNG), target, index=1, explicit=True)

    assert path == tmp_path / "cover-2.png"
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == [
        ("cover-2.png", PNG),
        ("cover.png", b"their image"),
    ]


@pytest.fixture
def no_hard_links(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A filesystem without hard links (FAT, some network mounts): ``os.link`` is refused."""
    tried: list[str] = []

    def refused(src: Any, dst: Any, **kwargs: Any) -> None:
        tried.append(Path(dst).name)
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), str(dst))

    monkeypatch.setattr(os, "link", refused)
    return tried


async def test_without_hard_links_a_claimed_name_is_still_never_overwritten(
    downloader: Downloader, tmp_path: Path, no_hard_links: list[str]
) -> None:
    (tmp_path / "jimeng_s_1.png").write_bytes(b"first")

    path = await downloader.save(Image(data=PNG), tmp_path, index=1, explicit=False, stamp="s")

    assert path == tmp_path / "jimeng_s_1-2.png"
    assert no_hard_links == ["jimeng_s_1.png"]  # tried once, then claims by exclusive creation
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == [
        ("jimeng_s_1-2.png", PNG),
        ("jimeng_s_1.png", b"first"),
    ]
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_read_umask()


async def test_without_hard_links_a_failed_move_gives_its_claim_back(
    downloader: Downloader,
    tmp_path: Path,
    no_hard_links: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full(src: Any, dst: Any, **kwargs: Any) -> None:
        assert Path(dst).read_bytes() == b""  # the claim: empty, never part of the content
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(os, "replace", full)

    with pytest.raises(DownloadError) as caught:
        await downloader.save(Image(data=PNG), tmp_path, index=1, explicit=False, stamp="s")

    assert str(caught.value) == f"cannot save to {tmp_path}: No space left on device"
    assert list(tmp_path.iterdir()) == []


# -- refusing what is not media ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("served", "declared", "shown"),
    [
        ("text/html; charset=utf-8", "image/png", "text/html; charset=utf-8"),
        ("", "image/png", "image/png"),
        ("", None, "not given"),
    ],
)
async def test_a_refused_save_names_the_servers_content_type_else_the_declared_one(
    mocked: aioresponses,
    downloader: Downloader,
    tmp_path: Path,
    served: str,
    declared: str | None,
    shown: str,
) -> None:
    mocked.get(URL_, status=200, body=b"<html>denied</html>", content_type=served)

    with pytest.raises(DownloadError) as caught:
        await downloader.save(
            Image(url=URL_, content_type=declared), tmp_path, index=1, explicit=False, stamp="s"
        )

    assert str(caught.value) == (
        f"the result from cdn.example.test is not an image or a video (Content-Type {shown}, "
        "starts with '<html>denied</ht'); nothing was saved"
    )
    assert caught.value.url == URL_
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        (
            b"not an image at all",
            None,
            "the result inline is not an image or a video (Content-Type not given, "
            "starts with 'not an image at '); nothing was saved",
        ),
        (
            b"\xff\xfe\x00ok",
            "image/png",
            "the result inline is not an image or a video (Content-Type image/png, "
            "starts with '\ufffd\ufffd\\x00ok'); nothing was saved",
        ),
        (
            b"",
            "image/jpeg",
            "the result inline is not an image or a video (Content-Type image/jpeg, "
            "starts with ''); nothing was saved",
        ),
    ],
)
async def test_inline_data_that_is_not_media_is_refused_by_value(
    downloader: Downloader, tmp_path: Path, data: bytes, content_type: str | None, message: str
) -> None:
    with pytest.raises(DownloadError) as caught:
        await downloader.save(
            Image(data=data, content_type=content_type), tmp_path, index=1, explicit=False
        )

    assert str(caught.value) == message
    assert caught.value.url is None
    assert list(tmp_path.iterdir()) == []


# -- pure functions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "head",
    [
        b"RIFX\x10\x00\x00\x00WEBPVP8 ",  # WEBP without a RIFF header
        b"RIFF\x10\x00\x00WEBPVP8 ",  # WEBP at the wrong offset
        b"GIF88a" + b"\x00" * 10,
        b"\x00\x00\x00\x18\x00ftypisom",  # ftyp one byte late
        b"\xff\xd8\x00\xe0",
        b"\x89PNG\r\n\x1a\x00",
    ],
)
def test_near_misses_are_not_media(head: bytes) -> None:
    assert media_extension(head) is None


def ftyp(brand: bytes, *compatible: bytes) -> bytes:
    """The start of an ISO-BMFF file: its ``ftyp`` box with a major brand and compatible ones."""
    body = brand + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00" * 40


@pytest.mark.parametrize(
    "brand",
    [b"isom", b"iso2", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash", b"qt  "],
)
def test_video_brands_are_mp4(brand: bytes) -> None:
    assert media_extension(ftyp(brand, b"isom", b"mp41")) == ".mp4"


@pytest.mark.parametrize(
    "brand",
    [b"avif", b"avis", b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"M4A ", b"crx ", b"\0\0\0\0"],
)
def test_other_iso_media_brands_are_not_media(brand: bytes) -> None:
    # An AVIF or HEIC image, M4A audio, a camera raw: the same box, not a video.
    assert media_extension(ftyp(brand, b"mif1", b"isom")) is None


async def test_an_avif_image_is_refused_and_nothing_is_saved(
    downloader: Downloader, tmp_path: Path
) -> None:
    avif = b"\x00\x00\x00\x1cftypavif" + b"\x00" * 80

    with pytest.raises(DownloadError) as caught:
        await downloader.save(Image(data=avif), tmp_path, index=1, explicit=False, stamp="s")

    assert str(caught.value) == (
        "the result inline is not an image or a video (Content-Type not given, "
        "starts with '\\x00\\x00\\x00\\x1cftypavif\\x00\\x00\\x00\\x00'); nothing was saved"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "ext", "expected"),
    [
        ("cat.png", ".png", "cat.png"),
        ("cat.jpg", ".png", "cat.png"),
        ("cat.JPG", ".jpg", "cat.JPG"),
        ("cat.jpeg", ".jpg", "cat.jpeg"),
        ("cat.jfif", ".jpg", "cat.jfif"),
        ("cat.png", ".jpg", "cat.jpg"),
        ("cat.PNG", ".webp", "cat.webp"),
        ("cat.gif", ".webp", "cat.webp"),
        ("cat.webp", ".gif", "cat.gif"),
        ("cat.avif", ".png", "cat.png"),
        ("cat.heic", ".jpg", "cat.jpg"),
        ("cat.bmp", ".png", "cat.png"),
        ("dog.png", ".mp4", "dog.mp4"),
        ("dog.webm", ".mp4", "dog.mp4"),
        ("dog.mov", ".mp4", "dog.mov"),
        ("dog.M4V", ".mp4", "dog.M4V"),
        ("dog.mp4", ".png", "dog.png"),
        ("render_v1.2", ".png", "render_v1.2.png"),
        ("out.dat", ".jpg", "out.dat.jpg"),
        ("notes.txt", ".mp4", "notes.txt.mp4"),
        ("cat.png.bak", ".png", "cat.png.bak.png"),
        ("cat", ".png", "cat.png"),
    ],
)
def test_a_chosen_name_gets_the_suffix_of_its_content(name: str, ext: str, expected: str) -> None:
    assert content_name(Path("a") / name, ext) == Path("a") / expected


@pytest.mark.parametrize(
    ("text", "data"),
    [
        ("aGVsbA==", b"hell"),
        ("aGVsbG8h", b"hello!"),
        ("aGVsbG8hIQ", b"hello!!"),
        ("  aGVs bG8h\t", b"hello!"),
        ("data:,aGVsbG8h", b"hello!"),
    ],
)
def test_decode_base64_pads_only_what_is_missing(text: str, data: bytes) -> None:
    assert decode_base64(text) == data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("aGVs*bG8=", "result is not valid base64: Only base64 data is allowed"),
        (
            "aGVsbG8h,aGVsbG8h",  # a comma is only a separator after "data:"
            "result is not valid base64: Only base64 data is allowed",
        ),
        (
            "a",
            "result is not valid base64: Invalid base64-encoded string: number of data "
            "characters (1) cannot be 1 more than a multiple of 4",
        ),
        (
            "aGVsbG8é",
            "result is not valid base64: string argument should contain only ASCII characters",
        ),
    ],
)
def test_decode_base64_errors_by_value(text: str, message: str) -> None:
    with pytest.raises(DownloadError) as caught:
        decode_base64(text)
    assert str(caught.value) == message
    assert caught.value.url is None
    assert isinstance(caught.value.__cause__, ValueError)


def test_a_part_that_vanishes_while_stale_parts_are_cleared_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    names = [".jimeng-a.part", ".jimeng-b.part", ".jimeng-c.part"]
    for name in names:
        path = tmp_path / name
        path.write_bytes(b"x")
        os.utime(path, (now - 7200, now - 7200))
    real = Path.lstat
    vanished: list[Path] = []

    def lstat(self: Path) -> os.stat_result:
        if not vanished:  # the first one looked at was removed by another process meanwhile
            vanished.append(self)
            self.unlink()
        return real(self)

    monkeypatch.setattr(Path, "lstat", lstat)

    removed = remove_stale_parts(tmp_path, now=now)

    assert len(vanished) == 1
    assert sorted(removed) == sorted(tmp_path / n for n in names if tmp_path / n != vanished[0])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("age", "removed"), [(10.0, True), (30.0, False)])
def test_stale_parts_honour_a_given_age(tmp_path: Path, age: float, removed: bool) -> None:
    now = time.time()
    path = tmp_path / ".jimeng-x.part"
    path.write_bytes(b"x")
    os.utime(path, (now - 20, now - 20))

    assert remove_stale_parts(tmp_path, now=now, age=age) == ([path] if removed else [])


def test_reading_the_umask_leaves_it_as_it_was() -> None:
    previous = os.umask(0o027)
    try:
        assert _read_umask() == 0o027
        assert os.umask(0o027) == 0o027  # still what it was before the read
    finally:
        os.umask(previous)


async def test_a_part_file_removed_during_the_save_is_a_download_error(
    mocked: aioresponses, downloader: Downloader, tmp_path: Path
) -> None:
    def remove_part(url: Any, **kwargs: Any) -> None:
        for part in tmp_path.glob(".jimeng-*.part"):
            part.unlink()  # another program cleaned the folder meanwhile

    mocked.get(URL_, status=200, body=PNG, callback=remove_part)

    with pytest.raises(DownloadError) as caught:
        await downloader.save(Image(url=URL_), tmp_path, index=1, explicit=False, stamp="s")

    assert str(caught.value) == f"cannot save to {tmp_path}: No such file or directory"
    assert isinstance(caught.value.__cause__, FileNotFoundError)
    assert list(tmp_path.iterdir()) == []


async def test_a_failed_download_whose_part_file_was_removed_keeps_its_own_error(
    mocked: aioresponses, downloader: Downloader, tmp_path: Path
) -> None:
    def remove_part(url: Any, **kwargs: Any) -> None:
        for part in tmp_path.glob(".jimeng-*.part"):
            part.unlink()

    mocked.get(URL_, status=404, body=b"gone", callback=remove_part)

    with pytest.raises(DownloadError) as caught:
        await downloader.save(Image(url=URL_), tmp_path, index=1, explicit=False, stamp="s")

    assert str(caught.value) == "download answered HTTP 404 (the link may have expired)"
    assert list(tmp_path.iterdir()) == []
