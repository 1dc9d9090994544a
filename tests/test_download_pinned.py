"""The downloader by value: what each kind of answer does, how many attempts it takes, which
socket timeouts it sets, how media are recognised and how names are chosen."""

from __future__ import annotations

import os
import random
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from jimeng._download import (
    Downloader,
    _free_name,
    decode_base64,
    media_extension,
    remove_stale_parts,
    sniff_extension,
)
from jimeng._http import Transport
from jimeng._retry import RetryPolicy
from jimeng.errors import DownloadError
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
    names = []
    for _ in range(4):
        path = _free_name(tmp_path, "jimeng_x_1", ".png")
        path.write_bytes(b"")
        names.append(path.name)
    assert names == ["jimeng_x_1.png", "jimeng_x_1-2.png", "jimeng_x_1-3.png", "jimeng_x_1-4.png"]


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


async def test_a_save_onto_a_folder_is_a_download_error_and_leaves_nothing(
    downloader: Downloader, tmp_path: Path
) -> None:
    target = tmp_path / "taken.png"
    target.mkdir()

    with pytest.raises(DownloadError) as caught:
        await downloader.save(Image(data=PNG), target, index=1, explicit=True)

    assert str(caught.value).startswith(f"cannot save to {tmp_path}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.png"]
