"""What a gateway accepts, checked before any request, and the wire fields it is sent.

Rules come from protocols/gateway.md §8a (routes and their parameters) and
protocols/dreamina-web.md §3.2–§3.4, §6.1 (models per site, ratios, resolutions, durations).
Only what the caller gave is sent: the gateway's own defaults apply to the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jimeng._download import sniff_extension
from jimeng.backends._sizing import SizeChoice, nearest_choice, size_ask
from jimeng.backends.gateway._models import (
    DEFAULT_IMAGE_MODEL,
    DEFAULT_VIDEO_MODEL,
    IMAGE_MODELS,
    IMAGE_RATIOS,
    IMAGE_RESOLUTIONS,
    IMAGE_SIZES,
    NANOBANANAPRO_4K_SIZES,
    REGION_PREFIXES,
    VIDEO_FUNCTION_MODES,
    VIDEO_MODELS,
    VIDEO_RATIOS,
    ImageModel,
    VideoModel,
)
from jimeng.errors import ValidationError
from jimeng.models import ImageInput, ImageRequest, VideoRequest

__all__ = [
    "MAX_MULTIPART_BYTES",
    "image_fields",
    "image_size_fields",
    "openai_image_fields",
    "region_of",
    "token_secrets",
    "validate_image",
    "validate_openai_image",
    "validate_video",
    "video_fields",
]

#: Multipart uploads are limited to 100 MB by the gateway (§8a).
MAX_MULTIPART_BYTES = 100 * 1024 * 1024
_MAX_COMPOSITION_IMAGES = 10
_UPLOAD_FORMATS = (".png", ".jpg", ".webp")  # seed 002: "Supported formats: JPG, PNG, WebP"

_IMAGE_PARAMETERS = frozenset(
    {
        "model",
        "images",
        "size",
        "width",
        "height",
        "ratio",
        "resolution",
        "intelligent_ratio",
        "negative_prompt",
        "sample_strength",
        "response_format",
        "callback_url",
    }
)
_VIDEO_PARAMETERS = frozenset(
    {
        "model",
        "duration",
        "aspect_ratio",
        "resolution",
        "image",
        "tail_image",
        "function_mode",
        "response_format",
        "callback_url",
        "reference_images",
        "ms_token",
        "a_bogus",
    }
)
#: Omni materials one request may carry (IPT: 9 images; dreamina-web.md §11).
_MAX_OMNI_IMAGES = 9
_OPENAI_IMAGE_PARAMETERS = frozenset(
    {"model", "size", "width", "height", "ratio", "resolution", "images", "response_format"}
)
_RESPONSE_FORMATS = ("url", "b64_json")
_SITE = {"cn": "CN", "us": "US", "hk": "HK", "jp": "JP", "sg": "SG"}


_PROXY_SCHEMES = ("http://", "https://", "socks4://", "socks5://", "socks://")


def _split_proxy(token: str) -> tuple[str | None, str]:
    """dreamina-web.md §2.4: a token bound to a proxy (``http://proxy@us-xxxx``) is split at
    the last ``@`` into the proxy and the token proper."""
    token = token.strip()
    if token.lower().startswith(_PROXY_SCHEMES):
        proxy, _, token = token.rpartition("@")
        return proxy or None, token
    return None, token


def region_of(token: str) -> str:
    """The site a session id belongs to: ``cn`` or its prefix (§1.1, §2.4)."""
    return REGION_PREFIXES.get(_split_proxy(token)[1][:3].lower(), "cn")


def token_secrets(token: str) -> list[str]:
    """Every part of a session token that upstream may echo: each comma-separated token as
    given, its proxy, the token without the proxy, and the bare session id (the gateway drops
    the region prefix before it builds the cookie, dreamina-web.md §2.4)."""
    secrets: list[str] = []
    for piece in token.split(","):
        proxy, rest = _split_proxy(piece)
        secrets += [piece.strip(), rest]
        if proxy is not None:
            secrets.append(proxy)
        if rest[:3].lower() in REGION_PREFIXES:
            secrets.append(rest[3:])
    return list(dict.fromkeys(secret for secret in secrets if secret))


def _sites(regions: Iterable[str]) -> str:
    return ", ".join(_SITE.get(region, region.upper()) for region in sorted(regions))


def _reject_unknown(given: Iterable[str], accepted: frozenset[str], where: str) -> None:
    for name in sorted(given):
        if name not in accepted:
            raise ValidationError(name, f"is not a parameter of {where}", allowed=sorted(accepted))


def _check_regions(kind: str, name: str, offered: frozenset[str], regions: frozenset[str]) -> None:
    missing = regions - offered
    if missing:
        table: Mapping[str, ImageModel | VideoModel] = (
            IMAGE_MODELS if kind == "image" else VIDEO_MODELS
        )
        usable = sorted(
            model.name
            for model in table.values()
            if regions <= model.regions and not getattr(model, "legacy", False)
        )
        raise ValidationError(
            "model",
            f"{name} is not offered on the {_sites(missing)} site (sessions here: "
            f"{_sites(regions)}); it is offered on {_sites(offered)}",
            allowed=usable,
        )


def _image_model(name: str | None, regions: frozenset[str]) -> ImageModel:
    if name is None:
        return IMAGE_MODELS[DEFAULT_IMAGE_MODEL]
    model = IMAGE_MODELS.get(name.strip().lower())
    current = sorted(m.name for m in IMAGE_MODELS.values() if not m.legacy)
    if model is None:
        # jimeng-api silently falls back to jimeng-4.5 on CN for unknown names (§3.2).
        raise ValidationError(
            "model", f"unknown image model {name!r} on the gateway", allowed=current
        )
    if model.legacy:
        raise ValidationError(
            "model",
            f"{model.name} was dropped from jimeng-api (de440ad); the gateway would silently "
            "substitute jimeng-4.5",
            allowed=current,
        )
    _check_regions("image", model.name, model.regions, regions)
    return model


def _normal(value: str) -> str:
    return value.strip().lower()


def _check_local_images(images: Sequence[ImageInput], field: str) -> None:
    total = 0
    for index, image in enumerate(images):
        if image.data is None:
            continue
        total += len(image.data)
        extension = sniff_extension(image.data[:32])
        if extension not in _UPLOAD_FORMATS:
            raise ValidationError(
                f"{field}[{index}]" if field == "images" else field,
                f"{image.describe()} is not a PNG, JPEG or WebP image",
                allowed="PNG, JPEG, WebP",
            )
    if total > MAX_MULTIPART_BYTES:
        raise ValidationError(
            field,
            f"local files total {total} bytes; the gateway takes at most {MAX_MULTIPART_BYTES} "
            "bytes per upload",
        )


def _check_all_urls_or_all_files(images: Sequence[ImageInput], field: str) -> None:
    kinds = {image.url is None for image in images}
    if len(kinds) > 1:
        raise ValidationError(
            field,
            "mixes URLs and local files; the gateway takes either URLs (JSON) or uploaded "
            "files (multipart) in one request",
            allowed="all URLs, or all local files/bytes",
        )


def _check_callback(url: str | None) -> None:
    if url is not None and not url.lower().startswith(("http://", "https://")):
        # DZ validates callback_url with startsWith('http') (routes/images.ts).
        raise ValidationError("callback_url", f"must be an http(s) URL, got {url!r}")


def _check_response_format(value: str | None) -> None:
    if value is not None and value not in _RESPONSE_FORMATS:
        raise ValidationError(
            "response_format", f"unknown format {value!r}", allowed=_RESPONSE_FORMATS
        )


def validate_image(request: ImageRequest, *, regions: frozenset[str]) -> None:
    """Raise :class:`ValidationError` if a jimeng-api gateway cannot serve ``request``."""
    given = request.given()
    _reject_unknown(given, _IMAGE_PARAMETERS, "image generation on a jimeng-api gateway")
    model = _image_model(request.model, regions)
    ask = size_ask(request)
    ratio, resolution = ask.ratio, ask.resolution
    if model.name == "nanobanana":
        # §3.2 / seed 002: US is fixed at 1024×1024 (2k); HK/JP/SG are forced to 1k.
        if "us" in regions:
            for name, value in (("ratio", ratio), ("resolution", resolution)):
                if value is not None:
                    raise ValidationError(
                        name,
                        "nanobanana on the US site is fixed at 1024×1024 (2k); the gateway "
                        "ignores ratio and resolution — leave them unset",
                    )
        if regions & {"hk", "jp", "sg"} and resolution not in (None, "1k"):
            raise ValidationError(
                "resolution", "nanobanana is forced to 1k on the HK/JP/SG sites", allowed=["1k"]
            )
    if request.intelligent_ratio:
        if not model.intelligent_ratio:
            raise ValidationError(
                "intelligent_ratio",
                f"{model.name} ignores intelligent_ratio",
                allowed=sorted(m.name for m in IMAGE_MODELS.values() if m.intelligent_ratio),
            )
        if ratio is not None or ask.pixels is not None:
            raise ValidationError(
                "intelligent_ratio",
                "lets the server pick the ratio from the prompt; the ratio (or size) you gave "
                "would be ignored — give one or the other",
            )
        if request.images:  # dreamina-web.md §3.4
            raise ValidationError(
                "intelligent_ratio", "has no effect with reference images; leave it unset"
            )
    images = request.images or ()
    if request.images is not None and not 1 <= len(images) <= _MAX_COMPOSITION_IMAGES:
        raise ValidationError(
            "images",
            f"a composition takes 1–{_MAX_COMPOSITION_IMAGES} images, got {len(images)}",
            allowed=f"1–{_MAX_COMPOSITION_IMAGES} images",
        )
    _check_all_urls_or_all_files(images, "images")
    _check_local_images(images, "images")
    _check_response_format(request.response_format)
    _check_callback(request.callback_url)


def image_fields(request: ImageRequest) -> dict[str, Any]:
    """The given parameters under their wire names (JSON types; images excluded)."""
    fields: dict[str, Any] = {"prompt": request.prompt}
    if request.model is not None:
        fields["model"] = request.model.strip().lower()
    if request.negative_prompt is not None:
        fields["negative_prompt"] = request.negative_prompt
    if request.intelligent_ratio is not None:
        fields["intelligent_ratio"] = bool(request.intelligent_ratio)
    if request.sample_strength is not None:
        fields["sample_strength"] = request.sample_strength
    if request.response_format is not None:
        fields["response_format"] = request.response_format
    return fields


def _size_choices(model: ImageModel, regions: frozenset[str]) -> list[SizeChoice]:
    """The (ratio, resolution) entries the gateway can be asked for, with the pixels it really
    sends upstream for them (its own 1k table, dreamina-web.md §20)."""
    resolutions: Sequence[str] = IMAGE_RESOLUTIONS
    if model.name == "nanobanana" and regions & {"hk", "jp", "sg"}:
        resolutions = ("1k",)
    choices = []
    for resolution in resolutions:
        for ratio in IMAGE_RATIOS:
            if model.name == "nanobananapro" and resolution == "4k":
                _, width, height = NANOBANANAPRO_4K_SIZES[ratio]
            else:
                _, width, height = IMAGE_SIZES[(resolution, ratio)]
            choices.append(
                SizeChoice(ratio=ratio, resolution=resolution, width=width, height=height)
            )
    return choices


def image_size_fields(
    request: ImageRequest, *, regions: frozenset[str]
) -> tuple[dict[str, str], str | None]:
    """``ratio``/``resolution`` for the request's size, and a note when it was approximated.

    jimeng-api takes ratio × resolution only and rejects ``size``/``width``/``height`` (§8a), so
    pixels become the nearest table entry of the same orientation.
    """
    ask = size_ask(request)
    fields: dict[str, str] = {}
    if ask.pixels is None:
        if ask.ratio is not None:
            fields["ratio"] = ask.ratio
        if ask.resolution is not None:
            fields["resolution"] = ask.resolution
        return fields, None
    width, height = ask.pixels
    model = _image_model(request.model, regions)
    if model.name == "nanobanana" and "us" in regions:
        return fields, (
            f"{ask.field} {width}x{height} ignored: nanobanana on the US site always makes "
            "1024x1024"
        )
    choice = nearest_choice(width, height, _size_choices(model, regions))
    fields = {"ratio": choice.ratio, "resolution": choice.resolution}
    if (choice.width, choice.height) == (width, height):
        return fields, None
    return fields, (
        f"{ask.field} {width}x{height} approximated as {choice.ratio} at {choice.resolution} "
        f"({choice.width}x{choice.height}): the gateway takes ratio and resolution only"
    )


def _video_model(name: str | None, regions: frozenset[str]) -> VideoModel:
    if name is None:
        model = VIDEO_MODELS[DEFAULT_VIDEO_MODEL]
    else:
        found = VIDEO_MODELS.get(name.strip().lower())
        if found is None:
            # jimeng-api silently falls back to the site's default for unknown names (§6.1).
            raise ValidationError(
                "model",
                f"unknown video model {name!r} on the gateway",
                allowed=sorted(VIDEO_MODELS),
            )
        model = found
    _check_regions("video", model.name, model.regions, regions)
    return model


def _duration(value: float) -> int:
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValidationError("duration", f"must be whole seconds, got {value!r}")
    return int(value)


def validate_video(request: VideoRequest, *, regions: frozenset[str]) -> None:
    """Raise :class:`ValidationError` if a jimeng-api gateway cannot serve ``request``."""
    given = request.given()
    _reject_unknown(given, _VIDEO_PARAMETERS, "video generation on a jimeng-api gateway")
    model = _video_model(request.model, regions)
    if request.duration is not None:
        seconds = _duration(request.duration)
        if seconds not in model.durations:
            # The gateway checks this itself (§8c: "该模型仅支持 5、10 秒时长，当前值: 7").
            raise ValidationError(
                "duration",
                f"{model.name} takes {', '.join(map(str, model.durations))} seconds, got {seconds}",
                allowed=[f"{d}" for d in model.durations],
            )
    if request.resolution is not None:
        if not model.resolutions:
            raise ValidationError(
                "resolution",
                f"{model.name} takes no resolution (only jimeng-video-3.0 and -3.0-fast do)",
            )
        if _normal(request.resolution) not in model.resolutions:
            raise ValidationError(
                "resolution",
                f"unknown resolution {request.resolution!r}",
                allowed=model.resolutions,
            )
    mode = request.function_mode
    if mode is not None and mode not in VIDEO_FUNCTION_MODES:
        raise ValidationError(
            "function_mode", f"unknown mode {mode!r}", allowed=VIDEO_FUNCTION_MODES
        )
    frames = [image for image in (request.image, request.tail_image) if image is not None]
    references = list(request.reference_images or ())
    if references:
        if mode != "omni_reference":
            raise ValidationError(
                "reference_images",
                "are omni reference materials; pass function_mode='omni_reference'",
            )
        if frames:
            raise ValidationError(
                "image", "omni reference mode takes its materials as reference_images only"
            )
        if len(references) > _MAX_OMNI_IMAGES:
            raise ValidationError(
                "reference_images",
                f"omni reference mode takes at most {_MAX_OMNI_IMAGES} images, got "
                f"{len(references)}",
            )
        frames = references
    if request.tail_image is not None and request.image is None:
        raise ValidationError("tail_image", "a last frame needs a first frame (image=)")
    if mode == "omni_reference":
        if not model.omni:
            raise ValidationError(
                "function_mode",
                f"omni_reference needs a Seedance 2.0 model, not {model.name}",
                allowed=sorted(m.name for m in VIDEO_MODELS.values() if m.omni),
            )
        if not frames or any(image.url is not None for image in frames):
            raise ValidationError(
                "image",
                "omni_reference takes uploaded files only (at least one; no URLs)",
                allowed="local files or bytes",
            )
    if request.aspect_ratio is not None:
        if request.aspect_ratio.strip() not in VIDEO_RATIOS:
            raise ValidationError(
                "aspect_ratio", f"unknown ratio {request.aspect_ratio!r}", allowed=VIDEO_RATIOS
            )
        if frames and mode != "omni_reference":
            # IPT controllers/videos.ts: with an input image the ratio is the image's own.
            raise ValidationError(
                "aspect_ratio",
                "is decided by the first-frame image on the gateway; leave it unset",
            )
    _check_all_urls_or_all_files(frames, "image")
    _check_local_images(frames, "image")
    _check_response_format(request.response_format)
    _check_callback(request.callback_url)


def video_fields(request: VideoRequest) -> dict[str, Any]:
    """The given parameters under their wire names (JSON types; frames excluded)."""
    fields: dict[str, Any] = {"prompt": request.prompt}
    if request.model is not None:
        fields["model"] = request.model.strip().lower()
    if request.aspect_ratio is not None:
        fields["ratio"] = request.aspect_ratio.strip()
    if request.resolution is not None:
        fields["resolution"] = _normal(request.resolution)
    if request.duration is not None:
        fields["duration"] = int(request.duration)
    if request.function_mode is not None:
        fields["functionMode"] = request.function_mode
    # dreamina-web.md §15: the async-task fork passes the caller's browser tokens on to the CN
    # Seedance generate call; plain jimeng-api ignores them.
    if request.ms_token:
        fields["msToken"] = request.ms_token
    if request.a_bogus:
        fields["a_bogus"] = request.a_bogus
    if request.response_format is not None:
        fields["response_format"] = request.response_format
    return fields


def validate_openai_image(request: ImageRequest) -> None:
    """Raise :class:`ValidationError` if an OpenAI-compatible relay cannot serve ``request``.

    Relays define their own model names, so ``model`` is passed through unchecked.
    """
    _reject_unknown(request.given(), _OPENAI_IMAGE_PARAMETERS, "an OpenAI-compatible relay")
    images = request.images or ()
    _check_all_urls_or_all_files(images, "images")
    _check_local_images(images, "images")
    _check_response_format(request.response_format)


def openai_image_fields(request: ImageRequest) -> dict[str, Any]:
    """Fields of ``/v1/images/generations`` and ``/v1/images/edits`` on a relay (§10)."""
    fields: dict[str, Any] = {"prompt": request.prompt}
    if request.model is not None:
        fields["model"] = request.model
    pixels = request.size_pixels()
    if pixels is not None:
        fields["size"] = f"{pixels[0]}x{pixels[1]}"
    if request.ratio is not None:
        fields["ratio"] = request.ratio.strip()
    if request.resolution is not None:
        fields["resolution"] = _normal(request.resolution)
    if request.response_format is not None:
        fields["response_format"] = request.response_format
    return fields
