"""The MCP tools as plain data and coroutines, independent of the ``mcp`` package.

:class:`JimengTools` turns one :class:`jimeng.Client` into tool specifications (name,
description, JSON Schema) and answers tool calls with :class:`ToolResult` values; the server
module only translates those to MCP messages. Everything goes through the public API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from jimeng import _logging
from jimeng._client import Client
from jimeng._handle import TaskHandle
from jimeng._polling import PollPolicy
from jimeng.backends import Backend
from jimeng.errors import (
    APIConnectionError,
    ContentPolicyError,
    DownloadError,
    JimengError,
    RateLimitError,
    ServerError,
    TaskCancelledError,
    TaskExpiredError,
    TaskFailedError,
    TaskNotCancellableError,
    TaskTimeoutError,
    ValidationError,
)
from jimeng.mcp._describe import BackendFacts, backend_facts
from jimeng.models import ImageResult, Task, TaskStatus, VideoResult

__all__ = ["MAX_INLINE_BYTES", "ImageItem", "JimengTools", "ToolResult", "ToolSpec"]

#: Images larger than this are saved and linked, not sent inline (keeps messages small).
MAX_INLINE_BYTES = 4 * 1024 * 1024
#: And all the images of one answer together (four 4K images would make a 30 MB message).
MAX_INLINE_TOTAL = 12 * 1024 * 1024
#: How long a generate/wait call waits by default before handing back the task ref. Many MCP
#: clients give up on a request after 60 s, so the default stays below that.
DEFAULT_WAIT_SECONDS = 50
MAX_WAIT_SECONDS = 3600
#: Tasks whose saved files the server remembers (the oldest are forgotten first).
MAX_REMEMBERED_SAVES = 1000
STATUSES = [status.value for status in TaskStatus if status is not TaskStatus.UNKNOWN]


@attrs.frozen(kw_only=True)
class ToolSpec:
    """One tool as a client lists it."""

    name: str
    title: str
    description: str
    input_schema: Mapping[str, Any]
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False


@attrs.frozen(kw_only=True)
class ImageItem:
    data: bytes = attrs.field(repr=False)
    mime_type: str


@attrs.frozen(kw_only=True)
class ToolResult:
    """What a tool call answers: a JSON document, images to show, and whether it failed."""

    #: Registered secrets replaced (a relay may sign its result links with the caller's key):
    #: what a tool answers goes to the model's client, and often to its logs.
    data: Mapping[str, Any] = attrs.field(converter=_logging.scrub)
    images: tuple[ImageItem, ...] = ()
    is_error: bool = False

    @property
    def text(self) -> str:
        return json.dumps(self.data, ensure_ascii=False, indent=1, default=str)


@attrs.frozen(kw_only=True)
class _Offer:
    """What the backend offers, read from ``backend.capabilities()`` when it has one."""

    image_models: tuple[str, ...] = ()
    video_models: tuple[str, ...] = ()
    image_ratios: tuple[str, ...] = ()
    image_resolutions: tuple[str, ...] = ()
    image_sizes: str = ""
    max_images: int | None = None
    video_ratios: tuple[str, ...] = ()
    video_resolutions: tuple[str, ...] = ()
    durations: tuple[int, ...] = ()
    features: frozenset[str] = frozenset()

    def supports(self, feature: str) -> bool:
        return feature in self.features


def _union(groups: Iterable[Iterable[Any]]) -> tuple[Any, ...]:
    seen: dict[Any, None] = {}
    for group in groups:
        for value in group:
            seen.setdefault(value, None)
    return tuple(seen)


def read_offer(backend: Backend) -> _Offer:
    """The backend's own capability tables, as the schemas need them."""
    caps = backend.capabilities()
    images, videos = caps.image_models, caps.video_models
    return _Offer(
        image_models=tuple(m.name for m in images),
        video_models=tuple(m.name for m in videos),
        image_ratios=_union(m.ratios for m in images),
        image_resolutions=_union(m.resolutions for m in images),
        image_sizes="; ".join(sorted({f"{m.name}: {m.sizes}" for m in images if m.sizes})),
        max_images=max((m.max_images for m in images), default=0),
        video_ratios=_union(m.ratios for m in videos),
        video_resolutions=_union(m.resolutions for m in videos),
        durations=tuple(sorted(_union(m.durations for m in videos))),
        features=frozenset(caps.features),
    )


def _family(backend: Backend) -> str:
    """The protocol family the backend speaks (a sandbox speaks the one it emulates)."""
    name = str(getattr(backend, "protocol", None) or backend.name)
    if name.startswith("volcengine"):
        return "volcengine"
    if name.startswith("gateway"):
        return "gateway"
    return name


def _enum(values: Sequence[Any], schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "enum": list(values)} if values else schema


class JimengTools:
    """The tools for one client. ``output_dir`` is where results are saved."""

    def __init__(self, client: Client, *, output_dir: Path):
        self._client = client
        self._output_dir = output_dir
        backend = client.backend
        self._family = _family(backend)
        self._facts: BackendFacts = backend_facts(backend.name)
        self._offer = read_offer(backend)
        self._specs = {spec.name: spec for spec in self._build_specs()}
        #: Files saved per task ref, so collecting a task again does not download it again.
        self._saved: dict[str, list[Path]] = {}

    # -- specifications ------------------------------------------------------------------------

    def specs(self) -> list[ToolSpec]:
        return list(self._specs.values())

    def schema(self, name: str) -> Mapping[str, Any] | None:
        spec = self._specs.get(name)
        return spec.input_schema if spec else None

    def _build_specs(self) -> list[ToolSpec]:
        specs = [self._generate_image_spec()]
        if self._offer.video_models:
            specs.append(self._generate_video_spec())
        specs += [self._get_task_spec(), self._wait_task_spec()]
        if self._offer.supports("cancel"):
            specs.append(self._cancel_task_spec())
        if self._offer.supports("list") or self._client.journal is not None:
            specs.append(self._list_tasks_spec())
        if self._offer.supports("credits"):
            specs.append(self._credits_spec())
        return specs

    def _where(self) -> str:
        return f"Runs on {self._facts.title}. {self._facts.auth}"

    def _wait_properties(self, kind: str) -> dict[str, Any]:
        return {
            "wait_seconds": {
                "type": "integer",
                "minimum": 0,
                "maximum": MAX_WAIT_SECONDS,
                "default": DEFAULT_WAIT_SECONDS,
                "description": f"How long to wait for the {kind} before returning the task ref "
                "instead (the task keeps running; collect it with wait_task). 0 returns at once "
                "after the submit.",
            },
            "save": {
                "type": "boolean",
                "default": True,
                "description": f"Download the {kind} into {self._output_dir} and return the "
                "paths (result links expire, so keep this on unless only a link is wanted).",
            },
        }

    def _generate_image_spec(self) -> ToolSpec:
        offer = self._offer
        properties: dict[str, Any] = {
            "prompt": {
                "type": "string",
                "minLength": 1,
                "description": "What to draw, in Chinese or English. A count in the prompt "
                "('4 images of …') asks for several images where the model supports it.",
            },
            "model": _enum(
                offer.image_models,
                {"type": "string", "description": "Image model; omit for the backend's default."},
            ),
            "size": {
                "type": "string",
                "pattern": r"^([124][kK]|[1-9][0-9]{2,4}[xX][1-9][0-9]{2,4})$",
                "description": "'1K', '2K', '4K' or an exact 'WxH' such as '2560x1440'. "
                + (f"Per model: {offer.image_sizes}." if offer.image_sizes else ""),
            },
            "width": {"type": "integer", "minimum": 1, "description": "Pixels, with height."},
            "height": {"type": "integer", "minimum": 1, "description": "Pixels, with width."},
            "ratio": _enum(
                offer.image_ratios,
                {"type": "string", "description": "Aspect ratio, e.g. '16:9' (with resolution)."},
            ),
            "resolution": _enum(
                offer.image_resolutions,
                {"type": "string", "description": "Resolution tier used with ratio."},
            ),
            "seed": {
                "type": "integer",
                "minimum": -1,
                "description": "Random seed for repeatable results; -1 or omitted: random.",
            },
        }
        if offer.max_images != 0:
            images: dict[str, Any] = {
                "type": "array",
                "items": {"type": "string", "minLength": 1},
                "minItems": 1,
                "description": "Reference images: https URLs or paths of local JPEG/PNG files "
                "on the machine running this server.",
            }
            if offer.max_images:
                images["maxItems"] = offer.max_images
            properties["images"] = images
        if self._family in {"dreamina", "gateway"}:
            properties["negative_prompt"] = {
                "type": "string",
                "description": "What the image should not contain.",
            }
            properties["sample_strength"] = {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "Detail / how closely to follow the prompt, 0-1 (site default 0.5).",
            }
        properties.update(self._wait_properties("images"))
        properties["inline"] = {
            "type": "boolean",
            "default": True,
            "description": "Also return the images as MCP image content (each up to "
            f"{MAX_INLINE_BYTES // (1024 * 1024)} MiB, {MAX_INLINE_TOTAL // (1024 * 1024)} MiB "
            "in all) so they can be looked at directly.",
        }
        description = (
            "Generate images from a text prompt (and optional reference images) and return them. "
            f"{self._facts.cost} {self._where()} "
            f"Takes {self._facts.image_time}. {self._facts.limits} "
            "Returns MCP image content for each image plus a JSON document with the task ref, "
            "model, saved file paths and result URLs (URLs expire). If the images are not ready "
            "within wait_seconds it returns the task ref with status 'running': call wait_task "
            "with that ref instead of generating again (a new call is a new, billed generation). "
            "Invalid parameters are refused before anything is sent or billed."
        )
        return ToolSpec(
            name="generate_image",
            title="Generate images",
            description=description,
            input_schema=_object(properties, required=["prompt"]),
        )

    def _generate_video_spec(self) -> ToolSpec:
        offer = self._offer
        which = "mode" if self._family == "volcengine" else "model"
        properties: dict[str, Any] = {
            "prompt": {"type": "string", "minLength": 1, "description": "What should happen."},
            which: _enum(
                offer.video_models,
                {
                    "type": "string",
                    "description": (
                        "Video mode (model and resolution in one); omit to choose it from the "
                        "inputs (text only, first frame, first and last frame)."
                        if which == "mode"
                        else "Video model; omit for the backend's default."
                    ),
                },
            ),
            "duration": _enum(
                offer.durations,
                {"type": "integer", "minimum": 1, "description": "Length in seconds."},
            ),
            "ratio": _enum(
                offer.video_ratios,
                {"type": "string", "description": "Aspect ratio (text-to-video)."},
            ),
            "resolution": _enum(
                offer.video_resolutions, {"type": "string", "description": "Output resolution."}
            ),
            "image": {
                "type": "string",
                "description": "First frame: an https URL or a local JPEG/PNG path.",
            },
            "tail_image": {
                "type": "string",
                "description": "Last frame (with image): an https URL or a local JPEG/PNG path.",
            },
            "seed": {"type": "integer", "minimum": -1, "description": "Random seed; -1: random."},
        }
        properties.update(self._wait_properties("video"))
        description = (
            "Generate one short video from a prompt (optionally from a first and last frame). "
            f"{self._facts.cost} {self._where()} "
            f"Takes {self._facts.video_time}, so this call usually returns the task ref with "
            "status 'running' after wait_seconds: then call wait_task with the ref (repeat until "
            f"it is done) rather than calling generate_video again. {self._facts.limits} "
            "When done it returns a JSON document with the saved MP4 path and the video URL "
            "(the link expires). Invalid parameters are refused before anything is billed."
        )
        return ToolSpec(
            name="generate_video",
            title="Generate a video",
            description=description,
            input_schema=_object(properties, required=["prompt"]),
        )

    def _ref_property(self) -> dict[str, Any]:
        return {
            "ref": {
                "type": "string",
                "minLength": 1,
                "description": "The task ref returned by generate_image / generate_video (or "
                "list_tasks).",
            }
        }

    def _get_task_spec(self) -> ToolSpec:
        return ToolSpec(
            name="get_task",
            title="Look at a task",
            description=(
                "Ask the service once for a task's state. Read-only: costs nothing and starts "
                f"nothing. {self._where()} Returns a JSON document with status (queued, running, "
                "succeeded, failed, cancelled, expired), the failure message if any and the "
                "result URLs when finished. Use wait_task to wait and download the files."
            ),
            input_schema=_object(self._ref_property(), required=["ref"]),
            read_only=True,
            idempotent=True,
        )

    def _wait_task_spec(self) -> ToolSpec:
        properties = {**self._ref_property(), **self._wait_properties("result")}
        properties["inline"] = {
            "type": "boolean",
            "default": True,
            "description": "Return images as MCP image content too.",
        }
        return ToolSpec(
            name="wait_task",
            title="Wait for a task",
            description=(
                "Wait for a task submitted earlier (by generate_image, generate_video or another "
                "process) and return its result like the generate tools do: image content, saved "
                "paths and URLs. Does not generate or bill anything again. "
                f"{self._where()} If it is still running after wait_seconds, returns the ref "
                "with its status: call again. A failed task comes back as a tool error with "
                "the reason."
            ),
            input_schema=_object(properties, required=["ref"]),
            read_only=True,
            idempotent=True,
        )

    def _cancel_task_spec(self) -> ToolSpec:
        return ToolSpec(
            name="cancel_task",
            title="Cancel a queued task",
            description=(
                "Cancel a task that is still queued, so it is not generated (nor billed). A "
                "task that is already running or finished cannot be cancelled: that is a tool "
                f"error saying its status. {self._where()} Returns the task's new state."
            ),
            input_schema=_object(self._ref_property(), required=["ref"]),
            destructive=True,
            idempotent=True,
        )

    def _list_tasks_spec(self) -> ToolSpec:
        source = (
            "the service's own task list"
            if self._offer.supports("list")
            else "the local task journal (tasks this server, or programs sharing its journal, "
            "submitted)"
        )
        properties: dict[str, Any] = {
            "status": {"type": "string", "enum": STATUSES, "description": "Only this state."},
            "kind": {
                "type": "string",
                "enum": ["image", "video"],
                "description": "Only this kind.",
            },
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": 200,
                "default": 20,
                "description": "At most this many, newest first.",
            },
        }
        return ToolSpec(
            name="list_tasks",
            title="List tasks",
            description=(
                f"List recent tasks from {source}, newest first, with their refs, states and "
                "result links. Read-only. Use it to find a ref to pass to wait_task or "
                "get_task, e.g. after a generate call returned before the task finished."
            ),
            input_schema=_object(properties, required=[]),
            read_only=True,
            idempotent=True,
        )

    def _credits_spec(self) -> ToolSpec:
        return ToolSpec(
            name="credits",
            title="Credit balance",
            description=(
                "Read the credit balance of each configured session (gift, purchased, VIP and "
                f"total). Read-only: spends nothing and claims nothing. {self._where()} Check it "
                "before large batches; generation fails with InsufficientCreditsError at zero."
            ),
            input_schema=_object({}, required=[]),
            read_only=True,
            idempotent=True,
        )

    # -- calls ---------------------------------------------------------------------------------

    async def call(self, name: str, arguments: Mapping[str, Any] | None) -> ToolResult:
        """Run one tool. Library errors come back as error results with the task ref."""
        arguments = dict(arguments or {})
        try:
            spec = self._specs.get(name)
            if spec is None:
                raise ValidationError("tool", f"unknown tool {name!r}", allowed=list(self._specs))
            _check_arguments(spec, arguments)
            handler = getattr(self, f"_call_{name}")
            result: ToolResult = await handler(**arguments)
            return result
        except JimengError as error:
            return _error_result(error)

    async def _call_generate_image(
        self,
        prompt: str,
        *,
        wait_seconds: int = DEFAULT_WAIT_SECONDS,
        save: bool = True,
        inline: bool = True,
        **options: Any,
    ) -> ToolResult:
        handle = await self._client.images.submit(prompt, **options)
        return await self._finish(handle, wait_seconds, save=save, inline=inline)

    async def _call_generate_video(
        self,
        prompt: str,
        *,
        wait_seconds: int = DEFAULT_WAIT_SECONDS,
        save: bool = True,
        **options: Any,
    ) -> ToolResult:
        handle = await self._client.videos.submit(prompt, **options)
        return await self._finish(handle, wait_seconds, save=save, inline=False)

    async def _call_get_task(self, ref: str) -> ToolResult:
        return ToolResult(data=_task_data(await self._client.tasks.get(ref)))

    async def _call_wait_task(
        self,
        ref: str,
        *,
        wait_seconds: int = DEFAULT_WAIT_SECONDS,
        save: bool = True,
        inline: bool = True,
    ) -> ToolResult:
        handle = self._client.tasks.resume(ref)
        await handle.refresh()
        return await self._finish(handle, wait_seconds, save=save, inline=inline)

    async def _call_cancel_task(self, ref: str) -> ToolResult:
        return ToolResult(data=_task_data(await self._client.tasks.cancel(ref)))

    async def _call_list_tasks(
        self, *, status: str | None = None, kind: str | None = None, limit: int = 20
    ) -> ToolResult:
        if self._offer.supports("list"):
            tasks = await self._client.tasks.list(status=status, kind=kind, limit=limit)
            return ToolResult(data={"source": "service", "tasks": [_task_data(t) for t in tasks]})
        entries = await self._client.tasks.history(status=status, kind=kind, limit=limit)
        return ToolResult(
            data={
                "source": "journal",
                "tasks": [
                    {
                        "ref": entry.ref,
                        "status": entry.status.value,
                        "kind": entry.kind.value,
                        "model": entry.model,
                        "submitted_at": _iso(entry.submitted_at),
                        "completed_at": _iso(entry.completed_at),
                        "urls": [link.url for link in entry.results],
                        "saved": list(entry.saved),
                        "failure": entry.failure,
                    }
                    for entry in entries
                ],
            }
        )

    async def _call_credits(self) -> ToolResult:
        balances = await self._client.account.credits()
        return ToolResult(
            data={
                "balances": [
                    {
                        "session": balance.session,
                        "region": balance.region,
                        "gift": balance.gift,
                        "purchase": balance.purchase,
                        "vip": balance.vip,
                        "total": balance.total,
                    }
                    for balance in balances
                ]
            }
        )

    async def _finish(
        self, handle: TaskHandle[Any], wait_seconds: int, *, save: bool, inline: bool
    ) -> ToolResult:
        """Wait up to ``wait_seconds`` for the task; its result, or its ref and state."""
        if wait_seconds == 0 and not handle.task.status.is_terminal:
            return ToolResult(data=_pending(handle.task, handle.notes))
        base = PollPolicy.for_kind(handle.task.kind)
        poll = attrs.evolve(base, max_attempts=1_000_000, deadline=max(wait_seconds, 1))
        try:
            result = await handle.result(poll=poll)
        except TaskTimeoutError:
            return ToolResult(data=_pending(handle.task, handle.notes))
        return await self._deliver(handle.task, result, save=save, inline=inline)

    async def _deliver(
        self, task: Task, result: ImageResult | VideoResult, *, save: bool, inline: bool
    ) -> ToolResult:
        data = _task_data(task)
        data.pop("urls", None)
        # What the backend changed to serve the request (a size it scaled…), then our own.
        notes = list(result.notes)
        images: list[ImageItem] = []
        if isinstance(result, ImageResult):
            data["urls"] = result.urls
            if save:
                data["saved"] = [str(path) for path in await self._save(task, result)]
            if inline:
                total = 0
                for index, image in enumerate(result.images):
                    content = await image.read()
                    if len(content) > MAX_INLINE_BYTES or total + len(content) > MAX_INLINE_TOTAL:
                        notes.append(
                            f"image {index + 1} ({len(content)} bytes) not inlined: too large "
                            "for one message; open the saved file or the URL"
                        )
                        continue
                    total += len(content)
                    images.append(ImageItem(data=content, mime_type=_mime(image.content_type)))
        else:
            data["urls"] = [result.url] if result.url else []
            data["expires_at"] = _iso(result.expires_at)
            if save:
                data["saved"] = [str(path) for path in await self._save(task, result)]
        if notes:
            data["notes"] = notes
        return ToolResult(data=data, images=tuple(images))

    async def _save(self, task: Task, result: ImageResult | VideoResult) -> list[Path]:
        """Download the task's files once: a ``wait_task`` after the generate call that saved
        them (or a second ``wait_task``) answers with the same files while they are there."""
        saved = self._saved.pop(task.ref, None)
        if not saved or not all(path.is_file() for path in saved):
            if isinstance(result, ImageResult):
                saved = await result.save(self._output_dir)
            else:
                saved = [await result.save(self._output_dir)]
        self._saved[task.ref] = saved  # newest last
        while len(self._saved) > MAX_REMEMBERED_SAVES:
            del self._saved[next(iter(self._saved))]
        return saved


def _object(properties: Mapping[str, Any], *, required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": dict(properties),
        "required": required,
        "additionalProperties": False,
    }


_JSON_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list, tuple),
}


_A_TYPE: Mapping[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "an array",
}


def _range(low: Any, high: Any, unit: str = "") -> str:
    """``0 to 3600``, ``>= 1``, ``<= 10`` (with ``unit`` after the numbers)."""
    unit = f" {unit}" if unit else ""
    if low is not None and high is not None:
        return f"{low} to {high}{unit}"
    return f">= {low}{unit}" if low is not None else f"<= {high}{unit}"


def _check_arguments(spec: ToolSpec, arguments: Mapping[str, Any]) -> None:
    """The schema's rules (the keywords these schemas use), so a client that does not validate
    gets the same answer as one that does: a ValidationError before any request."""
    properties: Mapping[str, Any] = spec.input_schema["properties"]
    for name, value in arguments.items():
        if name not in properties:
            raise ValidationError(name, "is not a parameter of this tool", allowed=list(properties))
        _check_value(name, value, properties[name])
    for name in spec.input_schema["required"]:
        if name not in arguments:
            raise ValidationError(name, "is required")


def _check_value(name: str, given: object, schema: Mapping[str, Any]) -> None:
    # Each message says what is wrong and quotes the value once: ``ValidationError(value=…)``
    # adds ", got <value>", so a message that quotes the value itself passes none.
    kind = schema["type"]
    wrong_bool = isinstance(given, bool) and kind != "boolean"
    if wrong_bool or not isinstance(given, _JSON_TYPES[kind]):
        raise ValidationError(name, f"must be {_A_TYPE[kind]}", value=given)
    value: Any = given  # of the schema's type from here on
    allowed = schema.get("enum")
    if allowed is not None and value not in allowed:
        raise ValidationError(name, f"{value!r} is not offered here", allowed=allowed)
    if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
        raise ValidationError(
            name,
            f"{value!r} does not match {schema['pattern']}",
            allowed=schema.get("description"),
        )
    low, high = schema.get("minimum"), schema.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValidationError(name, f"{value!r} is out of range", allowed=_range(low, high))
    if kind == "string" and len(value) < schema.get("minLength", 0):
        raise ValidationError(name, "must not be empty", value=value)
    if kind == "array":
        count = len(value)
        if count < schema.get("minItems", 0) or count > schema.get("maxItems", count):
            raise ValidationError(
                name,
                f"has {count} items",
                allowed=_range(schema.get("minItems", 0), schema.get("maxItems"), "items"),
            )
        for index, item in enumerate(value):
            _check_value(f"{name}[{index}]", item, schema["items"])


def _mime(content_type: str | None) -> str:
    if content_type and content_type.startswith("image/"):
        return content_type.split(";")[0]
    return "image/png"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _task_data(task: Task) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ref": task.ref,
        "task_id": task.id,
        "kind": task.kind.value,
        "status": task.status.value,
        "model": task.model,
    }
    if task.failure is not None:
        data["failure"] = {"code": task.failure.code, "message": task.failure.message}
    if isinstance(task.result, ImageResult):
        data["urls"] = task.result.urls
    elif isinstance(task.result, VideoResult):
        data["urls"] = [task.result.url] if task.result.url else []
    return data


def _pending(task: Task, notes: Sequence[str] = ()) -> dict[str, Any]:
    data = _task_data(task)
    if notes:
        data["notes"] = list(notes)
    data["next"] = f"still {task.status.value}: call wait_task with ref {task.ref!r}"
    return data


#: Failures that come and go (waiting, the network, a busy service, a download): the task may
#: still give its result, and ``wait_task`` can collect it as things stand.
_TRANSIENT = (TaskTimeoutError, APIConnectionError, RateLimitError, ServerError, DownloadError)
#: The task's own end without a result: failed (moderation included), cancelled, expired.
_ENDED = (TaskFailedError, TaskCancelledError, TaskExpiredError, ContentPolicyError)


def _next_step(error: JimengError, ref: str) -> str:
    """What to do about an error that names an accepted task: collect it, or not. Only the
    task's own end says it has ended; any other error came while watching a task that may
    still finish (an expired session, a refused poll…)."""
    if isinstance(error, TaskNotCancellableError):
        return (
            f"the task was not cancelled and runs on (or has finished): call wait_task with ref "
            f"{ref!r} to collect its result (nothing is billed again)"
        )
    if isinstance(error, _TRANSIENT):
        return (
            f"the task was accepted and may still finish: call wait_task with ref {ref!r} "
            "(nothing is billed again)"
        )
    if isinstance(error, _ENDED):
        return (
            "the task has ended without a result: wait_task would answer this same error "
            "(get_task shows its state); generating again starts a new, billed task"
        )
    return (
        f"the task was accepted and may still finish; this error came while watching it: fix "
        f"its cause, then call wait_task with ref {ref!r} (nothing is billed again)"
    )


def _error_result(error: JimengError) -> ToolResult:
    data: dict[str, Any] = {"error": type(error).__name__, "message": str(error)}
    for name in ("field", "code", "status", "task_ref", "task_id"):
        value = getattr(error, name, None)
        if value is not None:
            data[name] = value if isinstance(value, (str, int, float, list)) else str(value)
    if isinstance(error, ValidationError) and error.allowed:
        # Always an array: the values one by one, or the one sentence that describes them.
        data["allowed"] = list(error.choices or (error.allowed,))
    ref = error.task_ref or error.task_id
    if ref:
        data["next"] = _next_step(error, ref)
    return ToolResult(data=data, is_error=True)
