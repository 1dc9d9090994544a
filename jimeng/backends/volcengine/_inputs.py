"""Input images on the Volcengine wire (protocols/volcengine.md §3.1, §3.2, §5).

A request carries its images either as ``image_urls`` or as ``binary_data_base64`` (raw base64, no
``data:`` prefix, which the server rejects with 50207), never a mix of both. Local images (paths and
bytes, already read into :attr:`ImageInput.data`) are sniffed and checked against the model's
limits before any request; when a request mixes URLs and local images, the URLs are fetched first
and everything is sent inline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from yarl import URL

from jimeng._http import Call, Response
from jimeng._imageinfo import ImageInfo, ImageLimits, check_image, encode_base64
from jimeng.errors import ServerError, ValidationError
from jimeng.models import ImageInput

__all__ = [
    "I2I_INPUT",
    "IMAGE_INPUT",
    "VIDEO_INPUT",
    "build_fetch",
    "check_local",
    "check_same_ratio",
    "encode_images",
    "needs_fetch",
]

_MB = 1024 * 1024

#: 4.0 / 4.6 reference images: JPEG/PNG, <= 15 MB, <= 4096x4096, w/h in [1/3, 3] (§3.1, §5).
IMAGE_INPUT = ImageLimits(formats=("jpeg", "png"), max_bytes=15 * _MB, max_side=4096, max_ratio=3.0)

#: Video 3.0 frames: JPEG/PNG, base64 <= 4.7 MB, <= 4096x4096, short side >= 320, long/short <= 3
#: (§3.2). "4.7 MB base64" is read as the base64 text, in MiB: the stricter reading of the doc
#: would be 4.7e6; a file between the two is rare and the server's 50205 still maps to an error.
VIDEO_INPUT = ImageLimits(
    formats=("jpeg", "png"),
    max_base64_bytes=int(4.7 * _MB),
    max_side=4096,
    min_short_side=320,
    max_ratio=3.0,
)

#: i2i 3.0: the docs state no size limit of their own [?]; the 3.0 family's base64 limit (the
#: video one) is applied, without the video-only short-side rule.
I2I_INPUT = ImageLimits(
    formats=("jpeg", "png"), max_base64_bytes=int(4.7 * _MB), max_side=4096, max_ratio=3.0
)

#: First and tail frames "must share the aspect ratio" (§3.2); allow rounding of odd sizes.
RATIO_TOLERANCE = 0.01


def check_local(image: ImageInput, limits: ImageLimits, *, field: str) -> ImageInfo | None:
    """Check a local image's bytes; ``None`` for a URL (the server checks what it downloads)."""
    if image.data is not None:
        return check_image(image.data, limits, field=field)
    if image.url is not None:
        return None
    raise ValidationError(
        field,
        f"the file {image.describe()} has not been read; pass it through client.images or "
        "client.videos, or give bytes",
    )


def check_same_ratio(first: ImageInfo | None, tail: ImageInfo | None) -> None:
    """First and tail frames must have the same aspect ratio (§3.2)."""
    if first is None or tail is None:
        return
    if abs(first.ratio - tail.ratio) > RATIO_TOLERANCE * first.ratio:
        raise ValidationError(
            "tail_image",
            f"is {tail.width}x{tail.height} (ratio {tail.ratio:.3f}) but the first frame is "
            f"{first.width}x{first.height} (ratio {first.ratio:.3f}); both frames must share "
            "one aspect ratio",
            allowed=f"width/height = {first.ratio:.3f}",
        )


def needs_fetch(images: Sequence[ImageInput]) -> bool:
    """True when URLs and local images are mixed: the URLs must then be sent inline too."""
    local = [image.data is not None for image in images]
    return any(local) and not all(local)


def encode_images(images: Sequence[ImageInput]) -> dict[str, Any]:
    """``image_urls`` when every image is a URL, else ``binary_data_base64`` (raw base64)."""
    if not images:
        return {}
    if all(image.data is not None for image in images):
        return {"binary_data_base64": [encode_base64(image.data or b"") for image in images]}
    if all(image.url is not None for image in images):
        return {"image_urls": [image.url for image in images]}
    raise ValidationError("images", "URLs and local images cannot be mixed in one request")


def build_fetch(image: ImageInput, *, field: str) -> Call:
    """A GET of a reference image given by URL, to send it inline beside local images."""
    assert image.url is not None

    def check(response: Response) -> None:
        if response.status == 429 or response.status >= 500:
            raise ServerError(
                f"fetching {field} answered HTTP {response.status}", status_code=response.status
            )
        if response.status >= 300:
            raise ValidationError(field, f"could not fetch {image.url}: HTTP {response.status}")

    # Only the URL: the API's credentials never travel to a third-party host.
    return Call(
        method="GET",
        url=str(URL(image.url)),
        check=check,
        idempotent=True,
        purpose="fetch-input",
    )


def fetched(image: ImageInput, response: Response) -> ImageInput:
    """The image with the bytes its URL served."""
    return attrs.evolve(image, data=response.body)
