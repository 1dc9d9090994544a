"""Saved files are the media they claim to be, and killed saves leave nothing behind for long."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

import jimeng
from jimeng._download import STALE_PART_SECONDS, remove_stale_parts
from jimeng.models import Image, ImageResult
from jimeng.sandbox import Sandbox, Stages
from tests.conftest import Sleeps

NOW = datetime(2026, 6, 1, 9, 30, tzinfo=timezone.utc)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 40


@pytest.fixture
async def client(sleeps: Sleeps) -> AsyncIterator[jimeng.Client]:
    sandbox = Sandbox(stages=Stages())
    async with jimeng.Client(
        sandbox, sleep=sleeps, rng=random.Random(0), clock=lambda: NOW
    ) as running:
        yield running


def serve(client: jimeng.Client, name: str, content_type: str, body: bytes) -> ImageResult:
    backend = client.backend
    assert isinstance(backend, Sandbox)
    url = backend.server.add_media(name, content_type, lambda: body)
    result = ImageResult(images=(Image(url=url),))
    client._bind(result)
    return result


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html", b"<!doctype html><html><body>Access denied</body></html>"),
        ("application/json", b'{"error": "link expired"}'),
        ("image/png", b"<html>a CDN page labelled as PNG</html>"),
        ("image/png", b""),
    ],
)
async def test_a_body_that_is_not_media_is_refused_and_nothing_saved(
    client: jimeng.Client, tmp_path: Path, content_type: str, body: bytes
) -> None:
    result = serve(client, "1.png", content_type, body)
    with pytest.raises(jimeng.DownloadError) as caught:
        await result.save(tmp_path / "out/")
    message = str(caught.value)
    assert "the result from 127.0.0.1 is not an image or a video" in message
    assert f"Content-Type {content_type}" in message
    assert "nothing was saved" in message
    assert caught.value.url == result.images[0].url
    assert list((tmp_path / "out").iterdir()) == []  # no file, no .part
    with pytest.raises(jimeng.DownloadError, match="not an image or a video"):
        await result.images[0].read()


async def test_an_html_download_of_a_real_task_is_refused(sleeps: Sleeps, tmp_path: Path) -> None:
    backend = Sandbox(stages=Stages())
    async with jimeng.Client(backend, sleep=sleeps) as client:  # real clock: requests are signed
        result = await client.images.generate("a cat", force_single=True)
        backend.server.inject("download", kind="http", status=200)  # "injected failure" text
        with pytest.raises(jimeng.DownloadError, match=r"Content-Type text/plain"):
            await result.save(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == []
        paths = await result.save(tmp_path)  # the next try gets the real PNG
        assert [p.suffix for p in paths] == [".png"]


async def test_the_extension_is_the_real_contents(client: jimeng.Client, tmp_path: Path) -> None:
    result = serve(client, "named.png", "image/png", JPEG)  # a JPEG behind a .png name
    (path,) = await result.save(tmp_path)
    assert path.name == "jimeng_20260601_093000_1.jpg"
    assert path.read_bytes() == JPEG


async def test_a_chosen_file_name_gets_the_extension_of_the_real_content(
    sleeps: Sleeps, tmp_path: Path
) -> None:
    async with jimeng.Client(
        Sandbox(stages=Stages()), sleep=sleeps
    ) as client:  # signed: real clock
        image = await client.images.generate("a cat", force_single=True)
        video = await client.videos.generate("a dog")
        png, mp4 = await image.images[0].read(), await video.read()

        assert await image.save(tmp_path / "cat.jpg") == [tmp_path / "cat.png"]
        assert await video.save(tmp_path / "dog.png") == tmp_path / "dog.mp4"
        assert await image.images[0].save(tmp_path / "v1.2") == tmp_path / "v1.2.png"
        assert await image.save(tmp_path / "cat.png") == [tmp_path / "cat-2.png"]

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cat-2.png", "cat.png", "dog.mp4", "v1.2.png"
    ]  # fmt: skip
    for name in ("cat.png", "cat-2.png", "v1.2.png"):
        assert (tmp_path / name).read_bytes() == png
    assert png.startswith(PNG[:8])
    assert (tmp_path / "dog.mp4").read_bytes() == mp4
    assert mp4[4:12] == b"ftypisom"


async def test_several_images_under_a_chosen_name_are_numbered_with_their_extension(
    client: jimeng.Client, tmp_path: Path
) -> None:
    result = ImageResult(images=(Image(data=PNG), Image(data=JPEG)))
    client._bind(result)

    paths = await result.save(tmp_path / "cats.webp")

    assert paths == [tmp_path / "cats_1.png", tmp_path / "cats_2.jpg"]
    assert [p.read_bytes() for p in paths] == [PNG, JPEG]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cats_1.png", "cats_2.jpg"]


def part(folder: Path, name: str, age: float) -> Path:
    path = folder / name
    path.write_bytes(b"half a png")
    stamp = NOW.timestamp() - age
    os.utime(path, (stamp, stamp))
    return path


async def test_the_next_save_removes_stale_parts_of_killed_saves(
    client: jimeng.Client, tmp_path: Path
) -> None:
    dead = part(tmp_path, ".jimeng-k1ll3d.part", STALE_PART_SECONDS + 1)
    older = part(tmp_path, ".jimeng-0ld.part", 3 * 86400)
    running = part(tmp_path, ".jimeng-runn1ng.part", STALE_PART_SECONDS - 60)
    foreign = part(tmp_path, ".other-tool.part", 3 * 86400)
    mine = part(tmp_path, "jimeng-notes.part", 3 * 86400)
    result = serve(client, "ok.png", "image/png", PNG)
    (saved,) = await result.save(tmp_path)
    assert not dead.exists() and not older.exists()
    assert running.exists() and foreign.exists() and mine.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [saved.name, running.name, foreign.name, mine.name]
    )


def test_stale_parts_are_judged_by_the_injected_clock(tmp_path: Path) -> None:
    path = part(tmp_path, ".jimeng-x.part", 0)
    assert remove_stale_parts(tmp_path, now=NOW.timestamp() + STALE_PART_SECONDS) == []
    assert remove_stale_parts(tmp_path, now=NOW.timestamp() + STALE_PART_SECONDS + 1) == [path]
    assert remove_stale_parts(tmp_path / "missing", now=NOW.timestamp()) == []


async def test_inline_data_that_is_not_media_is_refused(
    client: jimeng.Client, tmp_path: Path
) -> None:
    result = ImageResult(images=(Image(data=b"not an image at all"),))
    client._bind(result)
    with pytest.raises(jimeng.DownloadError, match="the result inline is not an image"):
        await result.save(tmp_path)
    assert list(tmp_path.iterdir()) == []


KILLED_SAVE = """
import asyncio, sys
from pathlib import Path
import jimeng
from jimeng._download import Downloader
from jimeng.sandbox import Sandbox, Stages

async def main():
    folder = Path(sys.argv[1])
    on_disk = asyncio.Event()
    fetch = Downloader._fetch

    async def watched(self, url, sink, *, reset):
        # Look at the folder after each chunk is written, instead of polling it on a timer.
        async def sink_and_look(chunk):
            await sink(chunk)
            if any(p.stat().st_size for p in folder.glob(".jimeng-*.part")):
                on_disk.set()
        return await fetch(self, url, sink_and_look, reset=reset)

    Downloader._fetch = watched
    backend = Sandbox(stages=Stages())
    async with jimeng.Client(backend) as client:
        result = await client.images.generate("a cat", force_single=True)
        backend.server.inject("download", kind="delay", seconds=60)  # stalls half-way
        saving = asyncio.create_task(result.save(folder))
        seen = asyncio.create_task(on_disk.wait())
        await asyncio.wait({saving, seen}, return_when=asyncio.FIRST_COMPLETED)
        print("saving" if seen.done() else "finished before any byte was seen", flush=True)
        await saving

asyncio.run(main())
"""


def killed_save(folder: Path) -> Path:
    """Run a save in another process and SIGKILL it half-way; return the ``.part`` it left."""
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVE, str(folder)],
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "saving\n"
        process.kill()  # in the middle of the download: no cleanup code runs
    finally:
        process.communicate(timeout=20)
    (left,) = folder.glob(".jimeng-*.part")
    return left


@pytest.mark.subprocess
async def test_no_part_survives_a_killed_save_followed_by_another_save(
    client: jimeng.Client, tmp_path: Path
) -> None:
    left = killed_save(tmp_path)
    assert left.stat().st_size > 0  # half a PNG, under the temporary name only
    assert [p for p in tmp_path.iterdir() if not p.name.startswith(".jimeng-")] == []
    # An hour later (by the client's clock), the next save into the folder clears it.
    stamp = NOW.timestamp() - STALE_PART_SECONDS - 1
    os.utime(left, (stamp, stamp))
    (saved,) = await serve(client, "ok.png", "image/png", PNG).save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [saved.name]


CONCURRENT_SAVES = """
import asyncio, sys
from datetime import datetime
from pathlib import Path
from jimeng._download import Downloader
from jimeng.models import Image

folder, tag, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])

async def main():
    # One clock for every process: they all want the same names.
    downloader = Downloader(transport=None, now=lambda: datetime(2026, 1, 1))
    for number in range(count):
        body = f"{tag}:{number}"
        data = b"\\x89PNG\\r\\n\\x1a\\n" + body.encode()
        path = await downloader.save(Image(data=data), folder, index=1, explicit=False)
        print(path.name, body, flush=True)

print("ready", flush=True)
sys.stdin.readline()
asyncio.run(main())
"""


@pytest.mark.subprocess
def test_processes_saving_into_one_folder_never_overwrite_each_other(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    count = 30
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_SAVES, str(tmp_path), f"p{n}", str(count)],
            env={**os.environ, "PYTHONPATH": str(root)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    outputs = []
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"
        for process in processes:  # all start saving together
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
    finally:
        for process in processes:
            outputs.append(process.communicate(timeout=60))
    assert [process.returncode for process in processes] == [0] * 4, outputs

    claimed = dict(line.split() for out, _ in outputs for line in out.splitlines())
    on_disk = {path.name: path.read_bytes()[8:].decode() for path in tmp_path.iterdir()}
    assert len(claimed) == 4 * count  # every save got a name of its own…
    assert on_disk == claimed  # …which holds what it saved, and nothing else is there
    expected = ["jimeng_20260101_000000_1.png"]
    expected += [f"jimeng_20260101_000000_1-{n}.png" for n in range(2, 4 * count + 1)]
    assert sorted(on_disk) == sorted(expected)
