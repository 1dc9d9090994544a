"""Inline display in notebooks and short reprs, with no network call from any of them."""

from __future__ import annotations

import base64
import random
from typing import Any

import attrs
import pytest

import jimeng
from jimeng.models._display import REPR_LIMIT, shorten
from jimeng.sandbox import Sandbox, Stages
from tests.conftest import Sleeps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def fox(sleeps: Sleeps) -> Any:
    sandbox = Sandbox(stages=Stages(queue_polls=1))
    async with jimeng.Client(sandbox, sleep=sleeps, rng=random.Random(0)) as client:
        inline = await client.images.generate("a red fox in snow", size="1K", return_url=False)
        linked = await client.images.generate("a red fox <b>in</b> snow")
        video = await client.videos.generate("a dog in sunflowers", mode="t2v_720p")
        yield sandbox, inline, linked, video


async def test_reprs_are_short_and_plain(fox: Any) -> None:
    _, inline, linked, video = fox
    texts = [repr(x) for x in (inline, linked, video, inline.images[0], video.video)]
    for text in texts:
        assert len(text) <= REPR_LIMIT, text
        assert "TaskStatus" not in text and "TaskKind" not in text
    assert repr(inline) == f"<ImageResult 1 image 1024x1024 jimeng-4.0 task={inline.task_id}>"
    assert repr(video) == f"<VideoResult video 5s jimeng-video-3.0 task={video.task_id}>"
    assert repr(inline.images[0]).startswith("<Image 1024x1024 image/png ")
    assert repr(inline.images[0]).endswith(" bytes>")


async def test_task_and_handle_reprs(sleeps: Sleeps) -> None:
    async with jimeng.Client(Sandbox(), sleep=sleeps) as client:
        handle = await client.images.submit("a cat", size="1K")
        model = handle.task.model
        assert repr(handle) == f"<TaskHandle image queued {model} on volcengine id={handle.id}>"
        task = await handle.wait()
        assert repr(task) == f"<Task image succeeded {task.model} on volcengine id={task.id}>"


def test_long_reprs_are_cut_in_the_middle() -> None:
    url = "https://example.com/" + "a" * 300 + "/1.png"
    image = jimeng.Image(url=url, width=2048, height=2048)
    text = repr(image)
    assert len(text) == REPR_LIMIT
    assert text.startswith("<Image 2048x2048 https://example.com/aaa")
    assert text.endswith("aaa/1.png>")
    assert shorten("abcdefghij", 5) == "ab…ij"
    task = jimeng.Task(
        id="x" * 200, kind=jimeng.TaskKind.VIDEO, status=jimeng.TaskStatus.RUNNING,
        backend="gateway", ref="x" * 200,
    )  # fmt: skip
    assert len(repr(task)) == REPR_LIMIT and repr(task).startswith("<Task video running on gateway")


def test_a_link_signed_with_a_secret_is_shown_without_it() -> None:
    """A relay may sign its links with the caller's key: ``url`` stays the working link, what
    is shown hides the key (also when the repr is cut around it)."""
    key = "canary-display-relay-key-2d9a"
    jimeng.Gateway(api_key=key)
    url = f"https://cdn.test/img.png?key={key}"
    image = jimeng.Image(url=url, width=64, height=64)
    assert image.url == url
    assert str(image) == "https://cdn.test/img.png?key=<redacted>"
    assert repr(image) == "<Image 64x64 https://cdn.test/img.png?key=<redacted>>"
    video = jimeng.Video(url=url, content_type="video/mp4")
    assert str(video) == "https://cdn.test/img.png?key=<redacted>"
    long = jimeng.Image(url=f"https://cdn.test/{'a' * 200}?key={key}&{'b' * 40}")
    assert key[:8] not in repr(long) and len(repr(long)) == REPR_LIMIT
    assert repr(long).endswith(f"?key=<redacted>&{'b' * 40}>")


async def test_image_html_uses_bytes_or_url_never_the_network(fox: Any) -> None:
    sandbox, inline, linked, _ = fox
    downloads = sandbox.server.requests["download"]
    image = inline.images[0]
    encoded = base64.b64encode(image.data).decode()
    assert f'src="data:image/png;base64,{encoded}"' in image._repr_html_()
    assert image._repr_png_() == image.data and image._repr_png_().startswith(PNG_MAGIC)
    assert image._repr_jpeg_() is None

    remote = linked.images[0]
    assert remote.data is None
    assert f'src="{remote.url}"' in remote._repr_html_()
    assert remote._repr_png_() is None
    html = linked._repr_html_()
    assert html.count("<img ") == len(linked.images)
    assert "display:grid" in html
    # prompt (escaped), model, backend and task id in the caption
    assert "“a red fox &lt;b&gt;in&lt;/b&gt; snow”" in html
    assert f"task {linked.task_id}" in html and "jimeng-4.0" in html and "on volcengine" in html
    assert sandbox.server.requests["download"] == downloads  # displaying downloaded nothing


async def test_video_html_is_a_player(fox: Any) -> None:
    _, _, _, video = fox
    html = video._repr_html_()
    assert html.count("<video ") == 1 and " controls " in html
    assert f'src="{video.url}"' in html
    assert "“a dog in sunflowers”" in html and f"task {video.task_id}" in html
    assert video.video._repr_html_().count("<video ") == 1
    inline = jimeng.Video(data=b"\x00\x00\x00\x18ftypmp42", content_type="video/mp4")
    assert 'src="data:video/mp4;base64,AAAAGGZ0eXBtcDQy"' in inline._repr_html_()


async def test_jpeg_bytes_display_as_jpeg() -> None:
    pytest.importorskip("PIL")
    import io

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.new("RGB", (3, 2), "red").save(buffer, "JPEG")
    image = jimeng.Image(data=buffer.getvalue())
    assert image._repr_jpeg_() == buffer.getvalue() and image._repr_png_() is None
    assert "data:image/jpeg;base64," in image._repr_html_()
    picture = await image.to_pil()
    assert picture.size == (3, 2) and picture.mode == "RGB"


async def test_to_pil_reads_the_image(fox: Any) -> None:
    _, inline, linked, _ = fox
    picture = await inline.images[0].to_pil()
    assert picture.size == (1024, 1024)
    remote = await linked.images[0].to_pil()  # downloaded first
    assert remote.size == (linked.images[0].width or 2048, linked.images[0].height or 2048)


async def test_an_image_read_once_displays_from_its_bytes(fox: Any) -> None:
    sandbox, _, linked, video = fox
    image = linked.images[0]
    assert image.content is None and f'src="{image.url}"' in image._repr_html_()
    before = sandbox.server.requests["download"]
    data = await image.read()
    assert await image.read() == data  # kept: the second read downloads nothing
    assert sandbox.server.requests["download"] == before + 1
    assert image.content == data and image._repr_png_() == data
    assert "data:image/png;base64," in image._repr_html_()
    assert repr(image).startswith("<Image ") and " image/png " in repr(image)
    assert image == attrs.evolve(image)  # equality and hashing ignore the kept bytes
    assert hash(image) == hash(attrs.evolve(image))

    await video.read()  # videos can be large: not kept
    assert video.video.content is None
    assert sandbox.server.requests["download"] == before + 2
