"""Ark's data plane, emulated (protocols/volcengine.md §12): Seedream images answered
synchronously, Seedance video tasks (create, get, list, delete), bearer keys, the error body
``{"error": {code, message, type}}`` with its HTTP status.

Mounted under ``/ark/api/v3`` (the real base URL ends in ``/api/v3``). The rules below are the
sandbox's own reading of §12, written apart from the client's tables so a client-side mistake
shows up as the server's refusal. Unknown body fields are refused (stricter than Ark).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hmac
import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import web

from jimeng._imageinfo import sniff_image
from jimeng.sandbox._callbacks import CallbackSender
from jimeng.sandbox._media import render_mp4, render_png
from jimeng.sandbox._server import SandboxServer, SandboxTask, abort, non_json_page
from jimeng.sandbox._volcengine import BLOCK_INPUT, BLOCK_OUTPUT, FAIL_TASK
from jimeng.sandbox._volcengine_keys import video_size

__all__ = ["ARK_PREFIX", "CALLBACK_RETRIES", "SANDBOX_ARK_KEY", "ArkProtocol"]

ARK_PREFIX = "/ark/api/v3"
SANDBOX_ARK_KEY = "ark-sandbox-0000000000000000000000000000"

#: §12.3: a succeeded/failed callback is retried 3 times when not acknowledged within 5 s.
CALLBACK_RETRIES = 3
_TERMINAL = ("succeeded", "failed", "cancelled", "expired")

_N_IMAGES = re.compile(r"(\d+)\s*(?:images|pictures|张)", re.IGNORECASE)
_PRESET_SIDES = {"1K": 1024, "2K": 2048, "3K": 3072, "4K": 4096}


@attrs.frozen
class _Seedream:
    presets: tuple[str, ...] = ()
    pixels: tuple[int, int] = (1280 * 720, 4096 * 4096)
    sides: tuple[int, int] | None = None
    adaptive: bool = False
    images: tuple[int, int] = (0, 14)
    group: bool = True
    legacy: bool = False


@attrs.frozen
class _Seedance:
    durations: tuple[int, int] = (2, 12)
    auto: bool = False
    resolutions: tuple[str, ...] = ("480p", "720p", "1080p")
    default_resolution: str = "720p"
    text: bool = True
    first: bool = True
    last: bool = True
    references: int = 0
    frames: bool = True
    camera_fixed: bool = True
    audio: bool = False


#: §12.2 model ids and their size rules.
SEEDREAM: Mapping[str, _Seedream] = {
    "doubao-seedream-4-0-250828": _Seedream(presets=("1K", "2K", "4K")),
    "doubao-seedream-4-5-251128": _Seedream(presets=("2K", "4K"), pixels=(3_686_400, 4096 * 4096)),
    "doubao-seedream-5-0-260128": _Seedream(presets=("2K", "3K"), pixels=(3_686_400, 4096 * 4096)),
    "doubao-seedream-3-0-t2i-250415": _Seedream(
        sides=(512, 2048), images=(0, 0), group=False, legacy=True
    ),
    "doubao-seededit-3-0-i2i-250628": _Seedream(
        adaptive=True, images=(1, 1), group=False, legacy=True
    ),
}
#: §12.3 model ids and what each takes.
SEEDANCE: Mapping[str, _Seedance] = {
    "doubao-seedance-1-0-pro-250528": _Seedance(default_resolution="1080p"),
    "doubao-seedance-1-0-pro-fast-251015": _Seedance(default_resolution="1080p", last=False),
    "doubao-seedance-1-0-lite-t2v-250428": _Seedance(first=False, last=False),
    "doubao-seedance-1-0-lite-i2v-250428": _Seedance(text=False, references=4),
    "doubao-seedance-1-5-pro-251215": _Seedance(
        durations=(4, 12), auto=True, frames=False, audio=True
    ),
    "doubao-seedance-2-0-260128": _Seedance(
        durations=(4, 15), auto=True, references=9, frames=False, camera_fixed=False, audio=True
    ),
    "doubao-seedance-2-0-fast-260128": _Seedance(
        durations=(4, 15),
        auto=True,
        resolutions=("480p", "720p"),
        references=9,
        frames=False,
        camera_fixed=False,
        audio=True,
    ),
}
_IMAGE_FIELDS = frozenset(
    {
        "model",
        "prompt",
        "image",
        "size",
        "sequential_image_generation",
        "sequential_image_generation_options",
        "response_format",
        "watermark",
        "seed",
        "guidance_scale",
        "stream",
        "optimize_prompt_options",
    }
)
_VIDEO_FIELDS = frozenset(
    {
        "model",
        "content",
        "callback_url",
        "return_last_frame",
        "service_tier",
        "execution_expires_after",
        "generate_audio",
        "draft",
        "resolution",
        "ratio",
        "duration",
        "frames",
        "seed",
        "camera_fixed",
        "watermark",
    }
)
_RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")
_LIST_STATUSES = ("queued", "running", "cancelled", "succeeded", "failed")


class Refusal(Exception):
    """An Ark error answer."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _invalid(message: str, code: str = "InvalidParameter") -> Refusal:
    return Refusal(400, code, message)


def _model_id(value: Any) -> str:
    """CN ids as given; BytePlus ids (no ``doubao-`` prefix, §12.1) are the same models."""
    text = str(value or "")
    return text if text.startswith("doubao-") else f"doubao-{text}"


def _decode_image(url: Any, field: str) -> tuple[int, int] | None:
    """The size of a ``data:`` image (checked), or ``None`` for an http(s) URL."""
    if not isinstance(url, str):
        raise _invalid(f"{field} must be a string")
    if url.startswith(("http://", "https://")):
        return None
    match = re.match(r"^data:image/([a-z]+);base64,(.*)$", url, re.DOTALL)
    if match is None:
        raise _invalid(f"{field} must be an http(s) URL or a data:image/<format>;base64 URI")
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f"{field}: invalid base64", "InvalidImageURL.InvalidFormat") from None
    sniffed = sniff_image(data)
    if sniffed is None:
        raise _invalid(f"{field}: not an image", "InvalidImageURL.InvalidFormat")
    fmt, width, height = sniffed
    if match.group(1) != fmt and not (match.group(1) == "jpg" and fmt == "jpeg"):
        raise _invalid(f"{field}: data URI says {match.group(1)} but holds {fmt}")
    return width, height


class ArkProtocol:
    """Routes under ``/ark/api/v3`` with bearer keys (``SANDBOX_ARK_KEY``)."""

    label = "ark"

    def __init__(self, *, api_keys: tuple[str, ...] = (SANDBOX_ARK_KEY,)):
        self.api_keys = api_keys
        self.server: SandboxServer | None = None
        #: Task ids deleted by DELETE on a finished task (§12.3): no longer queryable.
        self.deleted: set[str] = set()
        #: Bodies of the image requests received (video bodies are on their task records).
        self.image_bodies: list[dict[str, Any]] = []
        self.callbacks: CallbackSender | None = None
        self._announced: dict[str, str] = {}

    def install(self, server: SandboxServer) -> None:
        self.server = server
        router = server.app.router
        router.add_post(ARK_PREFIX + "/images/generations", self.images)
        router.add_post(ARK_PREFIX + "/contents/generations/tasks", self.create)
        router.add_get(ARK_PREFIX + "/contents/generations/tasks", self.list_tasks)
        router.add_get(ARK_PREFIX + "/contents/generations/tasks/{task_id}", self.get_task)
        router.add_delete(ARK_PREFIX + "/contents/generations/tasks/{task_id}", self.delete)
        self.callbacks = CallbackSender(server)

    # -- callbacks (§12.3) -------------------------------------------------------------------------

    def _announce(self, task: SandboxTask, body: Mapping[str, Any]) -> None:
        """POST the task body to its callback_url when its status changed since the last one."""
        url = task.params.get("callback_url")
        status = str(body["status"])
        if not url or self._announced.get(task.id) == status:
            return
        self._announced[task.id] = status
        assert self.callbacks is not None
        retries = CALLBACK_RETRIES if status in ("succeeded", "failed") else 0
        self.callbacks.post(task.id, status, str(url), body, retries=retries)

    async def _watch(self, task: SandboxTask) -> None:
        """Tasks move with time too: look again until the task ends (a poll also announces)."""
        server = self.server
        assert server is not None
        while task.id in server.tasks and task.id not in self.deleted:
            body = self._task_body(task)
            if body["status"] in _TERMINAL:
                return
            await asyncio.sleep(0.05)

    # -- envelopes and gates ---------------------------------------------------------------------

    def _error(self, status: int, code: str, message: str) -> web.Response:
        assert self.server is not None
        request_id = f"{time.strftime('%Y%m%d%H%M%S')}{self.server.random.getrandbits(64):016x}"
        body = {
            "error": {
                "code": code,
                "message": f"{message} Request ID: {request_id}",
                "param": "",
                "type": "BadRequest" if status == 400 else code,
            }
        }
        return web.json_response(body, status=status, headers={"X-Request-Id": request_id})

    async def _gate(self, request: web.Request, label: str) -> web.StreamResponse | None:
        server = self.server
        assert server is not None
        server.requests[label] += 1
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not any(
            hmac.compare_digest(key.strip().encode(), known.encode()) for known in self.api_keys
        ):
            return self._error(
                401, "AuthenticationError", "The API key in the request is missing or invalid."
            )
        fault = server.take_fault(label)
        if fault is None:
            return None
        if fault.kind == "delay":
            await server.delay(fault.seconds)
            return None
        if fault.kind == "reset":
            abort(request)
            return web.Response(status=500)
        if fault.kind == "non_json":
            return non_json_page(fault.status)
        code = str(fault.code) if fault.code is not None else _default_code(fault.status)
        response = self._error(fault.status, code, fault.message or code)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        try:
            payload = json.loads((await request.read()).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _invalid("the request body is not JSON") from None
        if not isinstance(payload, dict):
            raise _invalid("the request body must be a JSON object")
        return payload

    # -- images (§12.2) ----------------------------------------------------------------------------

    async def images(self, request: web.Request) -> web.StreamResponse:
        gated = await self._gate(request, "submit")
        if gated is not None:
            return gated
        try:
            payload = await self._json(request)
            self.image_bodies.append(payload)
            return await self._images(payload)
        except Refusal as refusal:
            return self._error(refusal.status, refusal.code, refusal.message)

    async def _images(self, payload: dict[str, Any]) -> web.Response:
        server = self.server
        assert server is not None
        unknown = sorted(set(payload) - _IMAGE_FIELDS)
        if unknown:
            raise _invalid(f"unknown parameter {unknown[0]!r}")
        model = SEEDREAM.get(_model_id(payload.get("model")))
        if model is None:
            raise Refusal(
                404,
                "InvalidEndpointOrModel.NotFound",
                f"The model or endpoint {payload.get('model')!r} does not exist.",
            )
        prompt = payload.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise Refusal(400, "MissingParameter", "prompt is required")
        if BLOCK_INPUT in prompt:
            raise _invalid(
                "The request failed because the input text may contain sensitive information.",
                "InputTextSensitiveContentDetected",
            )
        if FAIL_TASK in prompt:
            raise Refusal(500, "InternalServiceError", "The service encountered an internal error.")
        images = payload.get("image")
        items = [images] if isinstance(images, str) else list(images or [])
        low, high = model.images
        if not low <= len(items) <= high:
            raise _invalid(f"this model takes {low}-{high} images, got {len(items)}")
        sizes = [_decode_image(item, f"image[{index}]") for index, item in enumerate(items)]
        width, height = self._image_size(model, payload.get("size"), sizes)
        for name in ("watermark", "stream"):
            if name in payload and not isinstance(payload[name], bool):
                raise _invalid(f"{name} must be a boolean")
        response_format = payload.get("response_format", "url")
        if response_format not in ("url", "b64_json"):
            raise _invalid(f"response_format {response_format!r}")
        count = self._count(model, payload, prompt, len(items))
        if ("seed" in payload or "guidance_scale" in payload) and not model.legacy:
            raise _invalid("seed and guidance_scale are for the 3.0 models")
        scale = payload.get("guidance_scale")
        if scale is not None and not (isinstance(scale, int | float) and 1 <= scale <= 10):
            raise _invalid("guidance_scale must be within [1, 10]")
        data: list[dict[str, Any]] = []
        pixels = 0
        stamp = server.new_id()
        for index in range(count):
            text = prompt if index == 0 else f"{prompt} #{index + 1}"
            if BLOCK_OUTPUT in prompt:
                data.append(
                    {
                        "error": {
                            "code": "OutputImageSensitiveContentDetected",
                            "message": "The generated image may contain sensitive information.",
                        }
                    }
                )
                continue
            item: dict[str, Any] = {"size": f"{width}x{height}"}
            if response_format == "url":
                item["url"] = server.add_media(
                    f"ark-{stamp}/{index + 1}.png",
                    "image/png",
                    functools.partial(render_png, text, width, height),
                )
            else:
                item["b64_json"] = base64.b64encode(render_png(text, width, height)).decode()
            data.append(item)
            pixels += width * height
        tokens = math.floor(pixels / 256)
        body = {
            "model": _model_id(payload.get("model")),
            "created": int(time.time()),
            "data": data,
            "usage": {
                "generated_images": sum("error" not in item for item in data),
                "output_tokens": tokens,
                "total_tokens": tokens,
            },
        }
        return web.json_response(body)

    @staticmethod
    def _image_size(
        model: _Seedream, size: Any, inputs: list[tuple[int, int] | None]
    ) -> tuple[int, int]:
        if model.adaptive:
            if size not in (None, "adaptive"):
                raise _invalid("this model only takes size 'adaptive'")
            return next((found for found in inputs if found), (1024, 1024))
        if size is None:
            return (2048, 2048) if model.presets else (1024, 1024)
        if not isinstance(size, str):
            raise _invalid("size must be a string")
        if size in _PRESET_SIDES:
            if size not in model.presets:
                raise _invalid(f"size {size} is not supported by this model")
            side = _PRESET_SIDES[size]
            return side, side
        match = re.fullmatch(r"(\d+)x(\d+)", size)
        if match is None:
            raise _invalid(f"size {size!r} is neither a preset nor WxH")
        width, height = int(match.group(1)), int(match.group(2))
        if model.sides is not None:
            low, high = model.sides
            if not (low <= width <= high and low <= height <= high):
                raise _invalid(f"size {size}: sides must be within [{low}, {high}]")
            return width, height
        low, high = model.pixels
        if not low <= width * height <= high:
            raise _invalid(f"size {size}: total pixels must be within [{low}, {high}]")
        if not 1 / 16 <= width / height <= 16:
            raise _invalid(f"size {size}: the ratio must be within [1/16, 16]")
        return width, height

    @staticmethod
    def _count(model: _Seedream, payload: Mapping[str, Any], prompt: str, inputs: int) -> int:
        mode = payload.get("sequential_image_generation", "disabled")
        options = payload.get("sequential_image_generation_options")
        if mode not in ("auto", "disabled"):
            raise _invalid(f"sequential_image_generation {mode!r}")
        if mode == "auto" and not model.group:
            raise _invalid("group generation is for the 4.x models")
        if options is not None and mode != "auto":
            raise _invalid(
                "sequential_image_generation_options needs sequential_image_generation=auto"
            )
        if mode != "auto":
            return 1
        limit = 15
        if options is not None:
            if not isinstance(options, dict) or set(options) - {"max_images"}:
                raise _invalid("sequential_image_generation_options takes max_images only")
            limit = options.get("max_images", 15)
            if not isinstance(limit, int) or not 1 <= limit <= 15:
                raise _invalid("max_images must be within [1, 15]")
        if inputs + limit > 15:
            raise _invalid("input images + max_images must be at most 15")
        match = _N_IMAGES.search(prompt)
        wanted = int(match.group(1)) if match else 1
        return max(1, min(wanted, limit))

    # -- video tasks (§12.3) -----------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.StreamResponse:
        gated = await self._gate(request, "submit")
        if gated is not None:
            return gated
        try:
            return self._create(await self._json(request))
        except Refusal as refusal:
            return self._error(refusal.status, refusal.code, refusal.message)

    def _create(self, payload: dict[str, Any]) -> web.Response:
        server = self.server
        assert server is not None
        unknown = sorted(set(payload) - _VIDEO_FIELDS)
        if unknown:
            raise _invalid(f"unknown parameter {unknown[0]!r}")
        model_id = _model_id(payload.get("model"))
        model = SEEDANCE.get(model_id)
        if model is None:
            raise Refusal(
                404,
                "InvalidEndpointOrModel.NotFound",
                f"The model or endpoint {payload.get('model')!r} does not exist.",
            )
        content = payload.get("content")
        if not isinstance(content, list) or not content:
            raise _invalid("content must be a non-empty list")
        texts = [item for item in content if isinstance(item, dict) and item.get("type") == "text"]
        pictures = [
            item for item in content if isinstance(item, dict) and item.get("type") == "image_url"
        ]
        if len(texts) + len(pictures) != len(content) or len(texts) > 1:
            raise _invalid("content items must be one text and image_url items")
        prompt = str(texts[0].get("text") or "") if texts else ""
        if BLOCK_INPUT in prompt:
            raise _invalid(
                "The request failed because the input text may contain sensitive information.",
                "InputTextSensitiveContentDetected",
            )
        roles = []
        first_size: tuple[int, int] | None = None
        for index, item in enumerate(pictures):
            inner = item.get("image_url")
            if not isinstance(inner, dict) or "url" not in inner:
                raise _invalid(f"content image {index}: image_url.url is required")
            found = _decode_image(inner["url"], f"content[{index}].image_url.url")
            if found is not None:
                width, height = found
                if not (min(width, height) > 300 and max(width, height) < 6000):
                    raise _invalid(f"image {width}x{height}: sides must be within (300, 6000)")
                if not 0.4 < width / height < 2.5:
                    raise _invalid(f"image {width}x{height}: the ratio must be within (0.4, 2.5)")
            role = item.get("role", "first_frame" if len(pictures) == 1 else None)
            if role not in ("first_frame", "last_frame", "reference_image"):
                raise _invalid(f"content image {index}: role {role!r}")
            roles.append(role)
            if role == "first_frame":
                first_size = found
        self._check_roles(model, roles)
        if not prompt and not pictures:
            raise _invalid("content needs a text or an image")
        duration = payload.get("duration", 5)
        frames = payload.get("frames")
        if frames is not None:
            if not model.frames:
                raise _invalid("frames is not supported by this model")
            if not isinstance(frames, int) or not 29 <= frames <= 289 or (frames - 25) % 4:
                raise _invalid("frames must be 25 + 4n within [29, 289]")
        low, high = model.durations
        if not isinstance(duration, int) or not (
            low <= duration <= high or (duration == -1 and model.auto)
        ):
            raise _invalid("the specified duration is not supported")
        resolution = payload.get("resolution", model.default_resolution)
        if resolution not in model.resolutions:
            raise _invalid(f"resolution {resolution!r} is not supported")
        if "reference_image" in roles and resolution == "1080p":
            raise _invalid("reference images do not support 1080p")
        ratio = payload.get("ratio", "adaptive" if pictures else "16:9")
        if ratio not in _RATIOS:
            raise _invalid(f"ratio {ratio!r}")
        seed = payload.get("seed", -1)
        if not isinstance(seed, int) or not -1 <= seed <= 2**32 - 1:
            raise _invalid("seed must be within [-1, 2^32-1]")
        for flag in ("camera_fixed", "watermark", "generate_audio", "return_last_frame", "draft"):
            if flag in payload and not isinstance(payload[flag], bool):
                raise _invalid(f"{flag} must be a boolean")
        if "camera_fixed" in payload and (not model.camera_fixed or "reference_image" in roles):
            raise _invalid("camera_fixed is not supported here")
        if "generate_audio" in payload and not model.audio:
            raise _invalid("generate_audio is not supported by this model")
        callback = payload.get("callback_url")
        if callback is not None and not (
            isinstance(callback, str) and callback.startswith(("http://", "https://"))
        ):
            raise _invalid("callback_url must be an http(s) URL")
        seconds = 5 if duration == -1 else duration
        count = frames if frames is not None else seconds * 24
        if ratio == "adaptive":
            shape = f"{first_size[0]}:{first_size[1]}" if first_size else "16:9"
        else:
            shape = ratio
        width, height = video_size(shape)
        task_id = f"cgt-{time.strftime('%Y%m%d%H%M%S')}-{server.random.getrandbits(20):05x}"
        task = server.add_task(
            SandboxTask(
                id=task_id,
                kind="video",
                model=model_id,
                prompt=prompt or "image to video",
                params=payload,
                created=server.now(),
                stages=server.stages,
                extra={
                    "created_at": int(time.time()),
                    "resolution": resolution,
                    "ratio": ratio,
                    "duration": None if frames is not None else duration,
                    "frames": frames,
                    "count": count,
                    "width": width,
                    "height": height,
                    "seed": seed if seed != -1 else server.random.randrange(2**31),
                },
            )
        )
        if BLOCK_OUTPUT in prompt:
            task.outcome = (
                "failed:OutputVideoSensitiveContentDetected:"
                "The generated video may contain sensitive information."
            )
        elif FAIL_TASK in prompt:
            task.outcome = "failed:InternalServiceError:The service encountered an internal error."
        if callback is not None and self.callbacks is not None:
            self._announce(task, self._task_body(task))
            self.callbacks.spawn(self._watch(task))
        return web.json_response({"id": task_id})

    @staticmethod
    def _check_roles(model: _Seedance, roles: list[str]) -> None:
        references = roles.count("reference_image")
        if references and len(roles) != references:
            raise _invalid("reference images cannot be mixed with first/last frames")
        if references > model.references:
            raise _invalid(f"task_type r2v does not support model (at most {model.references})")
        if "first_frame" in roles and not model.first:
            raise _invalid("task_type i2v does not support model")
        if "last_frame" in roles and (not model.last or roles != ["first_frame", "last_frame"]):
            raise _invalid("a last_frame needs exactly one first_frame before it")
        if not roles and not model.text:
            raise _invalid("task_type t2v does not support model")

    def _task_body(self, task: SandboxTask) -> dict[str, Any]:
        """The task object (get, list and callbacks share it); announces status changes."""
        body = self._describe(task)
        self._announce(task, body)
        return body

    def _describe(self, task: SandboxTask) -> dict[str, Any]:
        server = self.server
        assert server is not None
        stage = task.stage(server.now(), server.time_factor)
        extra = task.extra
        body: dict[str, Any] = {
            "id": task.id,
            "model": task.model,
            "status": {"queued": "queued", "running": "running", "cancelled": "cancelled"}.get(
                stage, "succeeded"
            ),
            "error": None,
            "created_at": extra["created_at"],
            "updated_at": extra["created_at"] + (task.polls if stage == "done" else 0),
            "seed": extra["seed"],
            "resolution": extra["resolution"],
            "ratio": extra["ratio"],
            "framespersecond": 24,
            "service_tier": "default",
        }
        if extra["frames"] is not None:
            body["frames"] = extra["frames"]
        else:
            body["duration"] = extra["duration"]
        if stage != "done":
            return body
        if task.outcome.startswith("failed:"):
            _, code, message = task.outcome.split(":", 2)
            body["status"] = "failed"
            body["error"] = {"code": code, "message": message}
            return body
        url = server.add_media(
            f"{task.id}/video.mp4",
            "video/mp4",
            functools.partial(
                render_mp4,
                task.prompt,
                width=extra["width"],
                height=extra["height"],
                frames=extra["count"],
                fps=24,
            ),
        )
        side = {"480p": 480, "720p": 720, "1080p": 1080}[extra["resolution"]]
        tokens = side * side * 16 // 9 * extra["count"] // 1024
        body["content"] = {"video_url": url}
        body["usage"] = {"completion_tokens": tokens, "total_tokens": tokens}
        return body

    def _find(self, task_id: str) -> SandboxTask | None:
        assert self.server is not None
        task = self.server.tasks.get(task_id)
        if task is None or task_id in self.deleted or not task_id.startswith("cgt-"):
            return None
        return task

    def _not_found(self, task_id: str) -> web.Response:
        return self._error(404, "ResourceNotFound", f"The task {task_id} was not found.")

    async def get_task(self, request: web.Request) -> web.StreamResponse:
        gated = await self._gate(request, "poll")
        if gated is not None:
            return gated
        server = self.server
        assert server is not None
        task_id = request.match_info["task_id"]
        task = self._find(task_id)
        if task is None:
            return self._not_found(task_id)
        task.polls += 1
        server.polls[task.id] += 1
        return web.json_response(self._task_body(task))

    async def delete(self, request: web.Request) -> web.StreamResponse:
        """§12.3: queued → cancelled; running / cancelled → refused; finished → deleted."""
        gated = await self._gate(request, "cancel")
        if gated is not None:
            return gated
        server = self.server
        assert server is not None
        task_id = request.match_info["task_id"]
        task = self._find(task_id)
        if task is None:
            return self._not_found(task_id)
        stage = task.stage(server.now(), server.time_factor)
        if stage == "queued":
            task.cancelled = True
            return web.json_response({})
        if stage == "done":
            self.deleted.add(task_id)
            return web.json_response({})
        return self._error(
            400,
            "InvalidParameter",
            f"The task {task_id} is {stage} and cannot be cancelled or deleted.",
        )

    async def list_tasks(self, request: web.Request) -> web.StreamResponse:
        gated = await self._gate(request, "list")
        if gated is not None:
            return gated
        server = self.server
        assert server is not None
        query = request.query
        try:
            page_num = int(query.get("page_num", "1"))
            page_size = int(query.get("page_size", "10"))
        except ValueError:
            return self._error(400, "InvalidParameter", "page_num and page_size are integers")
        if not (1 <= page_num <= 500 and 1 <= page_size <= 500):
            return self._error(
                400, "InvalidParameter", "page_num and page_size are within [1, 500]"
            )
        status = query.get("filter.status")
        if status is not None and status not in _LIST_STATUSES:
            return self._error(400, "InvalidParameter", f"filter.status {status!r}")
        wanted_ids = set(query.getall("filter.task_ids", []))
        model = query.get("filter.model")
        bodies = []
        for task in reversed(list(server.tasks.values())):
            if self._find(task.id) is None:
                continue
            if wanted_ids and task.id not in wanted_ids:
                continue
            if model is not None and task.model != model:
                continue
            body = self._task_body(task)
            if status is not None and body["status"] != status:
                continue
            bodies.append(body)
        start = (page_num - 1) * page_size
        return web.json_response({"total": len(bodies), "items": bodies[start : start + page_size]})


def _default_code(status: int) -> str:
    if status == 429:
        return "RateLimitExceeded.EndpointRPMExceeded"
    if status >= 500:
        return "InternalServiceError"
    if status == 401:
        return "AuthenticationError"
    return "InvalidParameter"
