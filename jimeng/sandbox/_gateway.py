"""jimeng-api gateways and OpenAI-compatible relays, emulated (protocols/gateway.md §8, §10).

Three mounts share one sandbox server:

* ``/gateway``: the async-task fork (DZ): ``async: true`` queues a task (``pending`` →
  ``queued`` while ``max_concurrent`` tasks run → ``processing`` → ``completed`` | ``failed``;
  ``cancelled`` from pending/queued only), ``GET /v1/tasks/`` (the trailing slash is required),
  webhooks to loopback callback URLs retried after 5, 15 and 30 s (scaled by the server's
  ``time_factor``).
* ``/gateway-sync``: plain jimeng-api (IPT), which ignores ``async`` and has no ``/v1/tasks``.
* ``/openai``: a relay with the OpenAI image surface and a bearer API key.

Like the real service, errors are HTTP 200 with ``{code: <negative>, message, data: null}``
and unknown routes answer the -1000 "[请求有误]" error. Session ids are not checked locally
(the real gateway only learns upstream); ids containing ``expired`` answer -2002, ``broke``
have no credits and cannot claim any (-2009), ``empty`` have none but may claim 66.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import attrs
from aiohttp import web
from yarl import URL

from jimeng.backends._endpoint import is_loopback
from jimeng.backends.gateway._models import (
    IMAGE_MODELS,
    IMAGE_RATIOS,
    IMAGE_RESOLUTIONS,
    IMAGE_SIZES,
    NANOBANANAPRO_4K_SIZES,
    VIDEO_FUNCTION_MODES,
    VIDEO_MODELS,
    VIDEO_RATIOS,
    VIDEO_RESOLUTIONS,
)
from jimeng.backends.gateway._params import region_of
from jimeng.sandbox._media import render_mp4, render_png
from jimeng.sandbox._server import (
    Fault,
    SandboxServer,
    SandboxTask,
    abort,
    non_json_page,
    truncated_json,
)
from jimeng.sandbox._volcengine import BLOCK_INPUT, BLOCK_OUTPUT, FAIL_TASK

__all__ = [
    "GATEWAY_PREFIX",
    "OPENAI_PREFIX",
    "SANDBOX_API_KEY",
    "SANDBOX_GATEWAY_TOKEN",
    "SYNC_GATEWAY_PREFIX",
    "WEBHOOK_RETRY_DELAYS",
    "GatewayProtocol",
    "GatewayTask",
    "OpenAIRelayProtocol",
    "WebhookAttempt",
]

SANDBOX_GATEWAY_TOKEN = "sandbox-session-0000000000000000"
SANDBOX_API_KEY = "sk-sandbox-0000000000000000000000"
GATEWAY_PREFIX = "/gateway"
SYNC_GATEWAY_PREFIX = "/gateway-sync"
OPENAI_PREFIX = "/openai"

#: Waits before the retries of a failed webhook (DZ ``webhook.ts``: 5 s, 15 s, 30 s).
WEBHOOK_RETRY_DELAYS = (5.0, 15.0, 30.0)
_WEBHOOK_TIMEOUT = 10.0
_DAILY_CREDITS = 66
_IMAGES_PER_TASK = 4  # one history record holds up to 4 images (dreamina-web.md §3.5)
_WAITING = ("pending", "queued")

_MESSAGES = {
    -2002: "[登录失效]: check login error。请重新获取refresh_token并更新配置",
    -2006: "内容由于合规问题已被阻止生成",
    -2007: "图像生成失败",
    -2008: "视频生成失败",
    -2009: "[积分不足]: credit prededuct not enough。建议：检查是否需要购买积分",
}

#: Pixel sizes per video resolution and ratio (sandbox output only; not a protocol fact).
_VIDEO_SIZES: Mapping[str, tuple[int, int]] = {
    "1:1": (720, 720),
    "4:3": (960, 720),
    "3:4": (720, 960),
    "16:9": (1280, 720),
    "9:16": (720, 1280),
    "21:9": (1680, 720),
}


_CLEANED_SPACES = re.compile("[\u00a0\u2000-\u200b]")
_COMMA_BEFORE_CLOSE = re.compile(r",(?=\s*[}\]])")


def clean_json(text: str) -> Any:
    """The peers' JSON body cleaner (gateway.md §21.1, ``server.ts``), which edits the raw text
    before parsing, inside string values too: CRLF → LF; NBSP and U+2000–U+200B → space; BOM
    deleted; trimmed; a comma before ``}``/``]`` dropped. Raises ValueError like ``JSON.parse``
    (an empty body: "Unexpected end of JSON input")."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CLEANED_SPACES.sub(" ", text).replace("\ufeff", "").strip()
    text = _COMMA_BEFORE_CLOSE.sub("", text)
    if not text:
        raise ValueError("Unexpected end of JSON input")
    try:
        return json.loads(text)
    except ValueError:
        pass
    # The fallback pass (single quotes, bare keys, repeated commas), then the real error.
    relaxed = text.replace("'", '"')
    relaxed = re.sub(r"([{,]\s*)([A-Za-z_$][\w$]*)\s*:", r'\1"\2":', relaxed)
    relaxed = re.sub(r",\s*,+", ",", _COMMA_BEFORE_CLOSE.sub("", relaxed))
    try:
        return json.loads(relaxed)
    except ValueError:
        pass
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(error.msg) from None


def _envelope(code: int, message: str, status: int = 200) -> web.Response:
    """The jimeng-api failure body (FailureBody.ts): HTTP 200 unless told otherwise."""
    return web.json_response({"code": code, "message": message, "data": None}, status=status)


def _unix() -> int:
    return int(time.time())


@attrs.define(kw_only=True)
class GatewayTask(SandboxTask):
    """A task of the async-task mode (DZ ``task-store.ts`` fields)."""

    type: str
    mount: str
    status: str = "pending"
    callback_url: str | None = None
    job: dict[str, Any] = attrs.field(factory=dict)
    created_at: int = 0
    updated_at: int = 0
    completed_at: int | None = None
    started: float | None = None
    #: Observations reported while in the current stage (waiting, then processing).
    stage_polls: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None

    def record(self) -> dict[str, Any]:
        """``formatTaskResponse``: what GET and webhooks carry."""
        record: dict[str, Any] = {
            "task_id": self.id,
            "type": self.type,
            "status": self.status,
            "model": self.model,
            "prompt": self.prompt,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.completed_at is not None:
            record["completed_at"] = self.completed_at
        if self.result is not None:
            record["result"] = self.result
        if self.error is not None:
            record["error"] = self.error
        return record


@attrs.define(kw_only=True)
class WebhookAttempt:
    """One webhook POST the sandbox made (or refused to make)."""

    task_id: str
    event: str
    attempt: int
    url: str
    #: Seconds (before scaling by ``time_factor``) waited after the previous attempt.
    delay: float = 0.0
    status: int | None = None
    outcome: str = "delivered"


@attrs.define(kw_only=True)
class _Parsed:
    fields: dict[str, Any]
    files: list[tuple[str, bytes]]
    multipart: bool


class GatewayProtocol:
    """A jimeng-api gateway under ``prefix``; ``task_mode`` adds the DZ async-task fork."""

    def __init__(
        self,
        prefix: str = GATEWAY_PREFIX,
        *,
        task_mode: bool = True,
        max_concurrent: int = 50,
        label: str | None = None,
        images_per_task: int = _IMAGES_PER_TASK,
    ):
        self.prefix = prefix.rstrip("/")
        self.task_mode = task_mode
        #: ``TASK_MAX_CONCURRENT``: tasks beyond it wait as ``queued``.
        self.max_concurrent = max_concurrent
        self.label = label or self.prefix.strip("/")
        self.images_per_task = images_per_task
        self.server: SandboxServer | None = None
        self.tasks: dict[str, GatewayTask] = {}
        #: Every webhook attempt, in order.
        self.deliveries: list[WebhookAttempt] = []
        self._balances: dict[str, list[int]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.TimerHandle] = []

    # -- mounting ------------------------------------------------------------------------------

    def install(self, server: SandboxServer) -> None:
        self.server = server
        router = server.app.router
        p = self.prefix
        router.add_get(p + "/ping", self.ping)
        router.add_get(p + "/v1/models", self.models)
        router.add_post(p + "/v1/images/generations", functools.partial(self.generate, "image"))
        router.add_post(
            p + "/v1/images/compositions", functools.partial(self.generate, "composition")
        )
        router.add_post(p + "/v1/videos/generations", functools.partial(self.generate, "video"))
        if self.task_mode:
            # koa-router as DZ configures it: only "/v1/tasks/" lists (§8b).
            router.add_get(p + "/v1/tasks/", self.list_tasks)
            router.add_get(p + "/v1/tasks/{task_id}", self.get_task)
            router.add_post(p + "/v1/tasks/{task_id}/cancel", self.cancel)
        router.add_post(p + "/token/check", self.token_check)
        router.add_post(p + "/token/points", self.token_points)
        router.add_post(p + "/token/receive", self.token_receive)
        router.add_get(p + "/", self.info)
        router.add_route("*", p + "/{tail:.*}", self.no_route)
        server.app.on_cleanup.append(self._cleanup)

    async def _cleanup(self, app: web.Application) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for job in list(self._background):
            job.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def _server(self) -> SandboxServer:
        assert self.server is not None, "mount the protocol first"
        return self.server

    # -- simple routes -------------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="pong")

    async def info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "service": "jimeng-api",
                "status": "running",
                "version": "1.6.3",
                "description": "jimeng sandbox gateway",
                "documentation": "https://github.com/iptag/jimeng-api",
                "endpoints": {
                    "images": "/v1/images/generations",
                    "videos": "/v1/videos/generations",
                },
            }
        )

    async def models(self, request: web.Request) -> web.Response:
        # §8a: a stale, hard-coded list.
        names = ("jimeng", "jimeng-video-3.0", "jimeng-video-3.0-pro", "jimeng-video-2.0",
                 "jimeng-video-2.0-pro")  # fmt: skip
        return web.json_response(
            {"data": [{"id": name, "object": "model", "owned_by": "jimeng-api"} for name in names]}
        )

    async def no_route(self, request: web.Request) -> web.Response:
        self._server.requests["no_route"] += 1
        path = request.raw_path[len(self.prefix) :] or "/"
        return _envelope(
            -1000,
            f"[请求有误]: 请检查API文档确认正确的请求路径，当前请求为 {request.method} -> {path} "
            "请纠正",
        )

    # -- faults and auth -----------------------------------------------------------------------

    async def _fault(self, request: web.Request, action: str) -> web.StreamResponse | None:
        fault = self._server.take_fault(action)
        if fault is None:
            return None
        return await _apply_fault(self._server, request, fault, envelope=_fault_envelope)

    def _tokens(self, request: web.Request) -> list[str] | None:
        header = request.headers.get("Authorization")
        if not isinstance(header, str) or not header.strip():
            return None
        raw = header[7:] if header.lower().startswith("bearer ") else header
        tokens = [token.strip() for token in raw.split(",") if token.strip()]
        return tokens or None

    def _balance(self, token: str) -> list[int]:
        if token not in self._balances:
            empty = "broke" in token or "empty" in token
            self._balances[token] = [0 if empty else _DAILY_CREDITS, 0, 0]
        return self._balances[token]

    def _claim(self, token: str) -> bool:
        balance = self._balance(token)
        if sum(balance) > 0 or "broke" in token:
            return False
        balance[0] += _DAILY_CREDITS
        return True

    # -- generation ----------------------------------------------------------------------------

    async def _parse(self, request: web.Request) -> _Parsed | web.Response:
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            fields: dict[str, Any] = {}
            files: list[tuple[str, bytes]] = []
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    files.append((name, value.file.read()))
                else:
                    fields[name] = str(value)
            return _Parsed(fields=fields, files=files, multipart=True)
        raw = await request.read()
        if not request.content_type.endswith("json") and not raw:
            return _Parsed(fields={}, files=[], multipart=False)
        try:
            payload = clean_json(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return _envelope(-1000, "无效的JSON格式: invalid UTF-8")
        except ValueError as error:
            return _envelope(-1000, f"无效的JSON格式: {error}")
        if not isinstance(payload, dict):
            return _envelope(-1000, "请求体不是合法的JSON")
        return _Parsed(fields=payload, files=[], multipart=False)

    async def generate(self, route: str, request: web.Request) -> web.StreamResponse:
        server = self._server
        server.requests["submit"] += 1
        injected = await self._fault(request, "submit")
        if injected is not None:
            return injected
        parsed = await self._parse(request)
        if isinstance(parsed, web.Response):
            return parsed
        fields = parsed.fields
        if route != "video":
            unsupported = [name for name in ("size", "width", "height") if name in fields]
            if unsupported:
                return _envelope(
                    -1000,
                    f"不支持的参数: {', '.join(unsupported)}。请使用 ratio 和 resolution 参数控制"
                    "图像尺寸。",
                )
        problem = _check_fields(route, parsed, async_mode=self.task_mode)
        if problem is not None:
            return _envelope(-2000, f"Params {problem} invalid")
        tokens = self._tokens(request)
        if tokens is None:
            return _envelope(-2000, "Params headers.authorization invalid")
        job = _job(route, parsed, dz=self.task_mode)
        if isinstance(job, web.Response):
            return job
        token = server.random.choice(tokens)  # IPT picks one session at random (§2.4)
        # Upstream refusals come from inside the generation: in async mode DZ has already
        # answered with a task id, so they end the task instead (routes/images.ts).
        outcome = self._admit(token, job) or _outcome(job)
        wants_async = self.task_mode and fields.get("async") in (True, "true")
        if wants_async:
            task = self._enqueue(route, job, outcome, fields.get("callback_url"))
            return web.json_response({"task_id": task.id, "status": "pending"})
        stages = server.stages
        await server.delay(stages.queue_delay + stages.generate_delay)
        if outcome is not None:
            return _envelope(outcome[0], outcome[1])
        return web.json_response(self._result(server.new_id("uuid"), job))

    def _admit(self, token: str, job: dict[str, Any]) -> tuple[int, str] | None:
        """What the real gateway learns from upstream before it generates: ``(code, message)``
        of the refusal, or ``None``."""
        if "expired" in token:
            return -2002, _MESSAGES[-2002]
        region = region_of(token)
        table: Mapping[str, Any] = VIDEO_MODELS if job["type"] == "video" else IMAGE_MODELS
        model = table.get(job["model"])
        if model is None:
            if region != "cn":
                return -1000, f"不支持的模型: {job['model']}"
            job["model"] = "jimeng-video-3.5-pro" if job["type"] == "video" else "jimeng-4.5"
        elif region not in model.regions:
            return -1000, f"模型 {job['model']} 在当前站点不可用"
        if sum(self._balance(token)) <= 0 and not self._claim(token):
            # IPT claims the daily credits itself when the balance is 0 (dreamina-web.md §7.2).
            return -2009, _MESSAGES[-2009]
        return None

    def _result(self, name: str, job: dict[str, Any]) -> dict[str, Any]:
        server = self._server
        b64 = job.get("response_format") == "b64_json"
        if job["type"] == "video":
            width, height = job["size"]
            render = functools.partial(
                render_mp4, job["prompt"], width=width, height=height, frames=job["duration"] * 24
            )
            item: dict[str, Any] = {"revised_prompt": job["prompt"]}
            if b64:
                item["b64_json"] = base64.b64encode(render()).decode("ascii")
            else:
                item["url"] = server.add_media(f"{name}/video.mp4", "video/mp4", render)
            if self.task_mode:
                # DZ's video extras (controllers/videos.ts): the upstream record and item, and
                # the preview / high-quality links beside the chosen one.
                preview = server.add_media(f"{name}/preview.mp4", "video/mp4", render)
                item.update(
                    history_id=str(server.new_id()),
                    item_id=str(server.new_id()),
                    preview_url=preview,
                    hq_url=item.get("url") or preview,
                )
            return {"created": _unix(), "data": [item]}
        width, height = job["size"]
        data = []
        for index in range(1, self.images_per_task + 1):
            prompt = job["prompt"] if index == 1 else f"{job['prompt']} #{index}"
            render = functools.partial(render_png, prompt, width, height)
            if b64:
                data.append({"b64_json": base64.b64encode(render()).decode("ascii")})
            else:
                data.append({"url": server.add_media(f"{name}/{index}.png", "image/png", render)})
        result: dict[str, Any] = {"created": _unix(), "data": data}
        if job["type"] == "composition":
            result["input_images"] = job["inputs"]
            result["composition_type"] = "multi_image_synthesis"
        return result

    # -- the task queue (DZ task-queue.ts) ---------------------------------------------------------

    def _enqueue(
        self, route: str, job: dict[str, Any], outcome: tuple[int, str] | None, callback: Any
    ) -> GatewayTask:
        server = self._server
        now = _unix()
        task = GatewayTask(
            id=server.new_id("uuid"),
            kind="video" if route == "video" else "image",
            type=route,
            mount=self.label,
            model=job["model"],
            prompt=job["prompt"],
            params=dict(job),
            created=server.now(),
            stages=server.stages,
            job=job,
            callback_url=str(callback) if callback else None,
            created_at=now,
            updated_at=now,
        )
        if outcome is not None:
            task.outcome = f"failed:{outcome[0]}:{outcome[1]}"
        server.add_task(task)
        self.tasks[task.id] = task
        self._after(server.stages.queue_delay)
        self._advance()
        return task

    def _after(self, seconds: float) -> None:
        """Advance again once ``seconds`` (scaled) have passed, without waiting for a poll."""
        server = self._server
        if seconds <= 0 or server.time_factor <= 0:
            return
        loop = asyncio.get_running_loop()
        self._timers = [timer for timer in self._timers if not timer.cancelled()]
        self._timers.append(loop.call_later(seconds * server.time_factor + 0.001, self._advance))

    def _elapsed(self, since: float) -> float:
        server = self._server
        if server.time_factor <= 0:
            return math.inf
        return (server.now() - since) / server.time_factor

    def _advance(self) -> None:
        """Move every task as far as its stages and the concurrency limit allow."""
        stages = self._server.stages
        changed = True
        while changed:
            changed = False
            for task in self._in("processing"):
                assert task.started is not None
                if (
                    self._elapsed(task.started) >= stages.generate_delay
                    and task.stage_polls >= stages.generate_polls
                ):
                    self._finish(task)
                    changed = True
            running = len(self._in("processing"))
            for task in self._in(*_WAITING):
                ready = (
                    self._elapsed(task.created) >= stages.queue_delay
                    and task.stage_polls >= stages.queue_polls
                )
                if ready and running < self.max_concurrent:
                    self._set(task, "processing")
                    task.started = self._server.now()
                    task.stage_polls = 0
                    running += 1
                    self._after(stages.generate_delay)
                    changed = True
                else:
                    self._set(task, "queued" if running >= self.max_concurrent else "pending")

    def _in(self, *statuses: str) -> list[GatewayTask]:
        return [task for task in self.tasks.values() if task.status in statuses]

    def _set(self, task: GatewayTask, status: str) -> None:
        if task.status != status:
            task.status = status
            task.updated_at = _unix()

    def _finish(self, task: GatewayTask) -> None:
        if task.outcome.startswith("failed:"):
            _, _, message = task.outcome.split(":", 2)
            task.error = message  # DZ keeps err.message only, not the code
            self._set(task, "failed")
        else:
            task.result = self._result(task.id, task.job)
            self._set(task, "completed")
        task.completed_at = _unix()
        if task.callback_url:
            job = asyncio.get_running_loop().create_task(self._deliver(task))
            self._background.add(job)
            job.add_done_callback(self._background.discard)

    def _stats(self) -> dict[str, int]:
        return {
            "running": len(self._in("processing")),
            "queued": len(self._in(*_WAITING)),
            "maxConcurrent": self.max_concurrent,
        }

    async def get_task(self, request: web.Request) -> web.StreamResponse:
        server = self._server
        server.requests["poll"] += 1
        injected = await self._fault(request, "poll")
        if injected is not None:
            return injected
        task_id = request.match_info["task_id"]
        task = self.tasks.get(task_id)
        if task is None:
            return _envelope(-1000, f"任务不存在: {task_id}")
        server.polls[task_id] += 1
        task.polls += 1
        self._advance()
        answer = {**task.record(), "queue_stats": self._stats()}
        if task.status in (*_WAITING, "processing"):
            task.stage_polls += 1
        return web.json_response(answer)

    async def list_tasks(self, request: web.Request) -> web.StreamResponse:
        server = self._server
        server.requests["list"] += 1
        injected = await self._fault(request, "list")
        if injected is not None:
            return injected
        self._advance()
        status = request.query.get("status")
        kind = request.query.get("type")
        # §21.3: parseInt(limit) of a non-empty string, then ``limit || 100``: 0 and NaN
        # ("abc") mean 100; a negative one slices from the end (all but the last N).
        match = re.match(r"\s*([+-]?\d+)", request.query.get("limit") or "")
        limit = int(match.group(1)) if match else 0
        limit = limit or 100
        tasks = [
            task
            for task in self.tasks.values()
            if (not status or task.status == status) and (not kind or task.type == kind)
        ]
        # Newest first by whole seconds; a stable sort keeps same-second tasks oldest first.
        tasks.sort(key=lambda task: task.created_at, reverse=True)
        tasks = tasks[:limit]
        return web.json_response(
            {
                "tasks": [task.record() for task in tasks],
                "total": len(tasks),
                "queue_stats": self._stats(),
                "storage_mode": "memory",
            }
        )

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        server = self._server
        server.requests["cancel"] += 1
        injected = await self._fault(request, "cancel")
        if injected is not None:
            return injected
        if request.content_type.endswith("json"):
            # §21.2: a JSON POST with an empty body is refused before routing.
            parsed = await self._parse(request)
            if isinstance(parsed, web.Response):
                return parsed
        task_id = request.match_info["task_id"]
        task = self.tasks.get(task_id)
        if task is None:
            return _envelope(-1000, f"任务不存在: {task_id}")
        self._advance()
        if task.status not in _WAITING:
            return _envelope(
                -1000,
                f"任务 {task_id} 当前状态为 {task.status}，无法取消。"
                "仅 pending/queued 状态可取消。",
            )
        task.cancelled = True
        self._set(task, "cancelled")
        task.completed_at = _unix()
        self._advance()
        return web.json_response(
            {"task_id": task_id, "status": "cancelled", "message": "任务已取消"}
        )

    # -- webhooks (DZ webhook.ts) -----------------------------------------------------------------

    async def _deliver(self, task: GatewayTask) -> None:
        server = self._server
        url = str(task.callback_url)
        event = "task.completed" if task.status == "completed" else "task.failed"
        body = json.dumps(task.record(), ensure_ascii=False).encode("utf-8")
        host = URL(url).host or ""
        if not is_loopback(host):
            # The sandbox never calls out of the machine.
            self.deliveries.append(
                WebhookAttempt(task_id=task.id, event=event, attempt=1, url=url,
                               outcome="refused: the sandbox only calls loopback URLs")
            )  # fmt: skip
            return
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Event": event,
            "X-Task-Id": task.id,
            "User-Agent": "axios/1.13.2",
        }
        timeout = aiohttp.ClientTimeout(total=max(_WEBHOOK_TIMEOUT * server.time_factor, 1.0))
        for attempt, wait in enumerate((0.0, *WEBHOOK_RETRY_DELAYS), start=1):
            await server.delay(wait)
            fault = server.take_fault("webhook")
            if fault is not None and fault.kind == "delay":
                await server.delay(fault.seconds)
            server.requests["webhook"] += 1
            record = WebhookAttempt(
                task_id=task.id, event=event, attempt=attempt, url=url, delay=wait
            )
            self.deliveries.append(record)
            try:
                async with self._session.post(
                    url, data=body, headers=headers, timeout=timeout, allow_redirects=False
                ) as response:
                    await response.read()
                    record.status = response.status
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
                record.outcome = f"failed: {type(error).__name__}"
                continue
            if fault is not None and fault.kind == "reset":
                record.outcome = "acknowledgement lost"  # delivered, but counted as failed
                continue
            if 200 <= record.status < 400:  # any 2xx or 3xx counts as success
                return
            record.outcome = f"failed: HTTP {record.status}"

    # -- sessions and credits ------------------------------------------------------------------

    async def token_check(self, request: web.Request) -> web.StreamResponse:
        self._server.requests["token"] += 1
        injected = await self._fault(request, "token")
        if injected is not None:
            return injected
        parsed = await self._parse(request)
        if isinstance(parsed, web.Response):
            return parsed
        token = parsed.fields.get("token")
        if not isinstance(token, str) or not token:
            return _envelope(-2000, "Params body.token invalid")
        # dreamina-web.md §7.4: the passport path is a 404 on international hosts → false.
        live = "expired" not in token and region_of(token) == "cn"
        return web.json_response({"live": live})

    async def token_points(self, request: web.Request) -> web.StreamResponse:
        return await self._credits(request, claim=False)

    async def token_receive(self, request: web.Request) -> web.StreamResponse:
        return await self._credits(request, claim=True)

    async def _credits(self, request: web.Request, *, claim: bool) -> web.StreamResponse:
        self._server.requests["token"] += 1
        injected = await self._fault(request, "token")
        if injected is not None:
            return injected
        tokens = self._tokens(request)
        if tokens is None:
            return _envelope(-2000, "Params headers.authorization invalid")
        if any("expired" in token for token in tokens):
            return _envelope(-2002, _MESSAGES[-2002])
        answer = []
        for token in tokens:
            received = self._claim(token) if claim else None
            gift, purchase, vip = self._balance(token)
            credits = {
                "giftCredit": gift,
                "purchaseCredit": purchase,
                "vipCredit": vip,
                "totalCredit": gift + purchase + vip,
            }
            if claim:
                entry: dict[str, Any] = {"token": token, "credits": credits, "received": received}
                if not received and "broke" in token:
                    entry["error"] = "shark check reject"
            else:
                entry = {"token": token, "points": credits}
            answer.append(entry)
        return web.json_response(answer)


def _check_fields(route: str, parsed: _Parsed, *, async_mode: bool) -> str | None:
    """The route's ``request.validate(...)`` calls (IPT/DZ ``routes/*.ts``): the first field
    that fails, or ``None``."""
    fields = parsed.fields

    def string(name: str, required: bool = False) -> bool:
        value = fields.get(name)
        return isinstance(value, str) if (required or value is not None) else True

    def flag(name: str) -> bool:
        value = fields.get(name)
        if value is None:
            return True
        return isinstance(value, bool) or (parsed.multipart and value in ("true", "false"))

    def number(name: str) -> bool:
        value = fields.get(name)
        if value is None:
            return True
        if parsed.multipart and isinstance(value, str):
            try:
                return math.isfinite(float(value))
            except ValueError:
                return False
        return isinstance(value, int | float) and not isinstance(value, bool)

    for name in ("model", "ratio", "resolution", "response_format"):
        if not string(name):
            return f"body.{name}"
    if not string("prompt", required=True):
        return "body.prompt"
    if route != "video":
        if not string("negative_prompt"):
            return "body.negative_prompt"
        if not flag("intelligent_ratio"):
            return "body.intelligent_ratio"
        if not number("sample_strength"):
            return "body.sample_strength"
        composition_json = route == "composition" and not parsed.multipart
        if composition_json and not isinstance(fields.get("images"), list):
            return "body.images"
    else:
        if not number("duration"):
            return "body.duration"
        if async_mode and fields.get("duration") is not None:
            # §21.5: DZ takes an integer 4–15 only (a JSON number, or parseInt of a form value).
            value = fields["duration"]
            if parsed.multipart:
                match = re.match(r"\s*([+-]?\d+)", str(value))
                value = int(match.group(1)) if match else None
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or not 4 <= value <= 15:
                return "body.duration"
        for name in ("file_paths", "filePaths"):
            value = fields.get(name)
            if value is not None and not (isinstance(value, list) and len(value) <= 2):
                return f"body.{name}"
        mode = fields.get("functionMode")
        if mode is not None and mode not in VIDEO_FUNCTION_MODES:
            return "body.functionMode"
    if async_mode:
        if not flag("async"):
            return "body.async"
        callback = fields.get("callback_url")
        if callback is not None and not (isinstance(callback, str) and callback.startswith("http")):
            return "body.callback_url"
    return None


def _dz_duration(model: str, asked: int) -> int:
    """§21.5 (DZ ``controllers/videos.ts``): the duration a model really runs for."""
    if "veo3" in model:
        return 8
    if "sora2" in model:
        return asked if asked in (12, 8) else 4
    if "seedance" in model:
        return min(max(asked, 4), 15)
    if model == "jimeng-video-3.5-pro":
        return asked if asked in (12, 10) else 5
    return 10 if asked == 10 else 5


def _job(route: str, parsed: _Parsed, *, dz: bool = False) -> dict[str, Any] | web.Response:
    """What to generate, with the route's own checks (IPT controllers), or the error answer."""
    fields = parsed.fields
    job: dict[str, Any] = {
        "type": route,
        "prompt": fields["prompt"],
        "response_format": fields.get("response_format") or "url",
    }
    if route == "video":
        job["model"] = str(fields.get("model") or "jimeng-video-3.5-pro")
        model = VIDEO_MODELS.get(job["model"])
        duration = int(float(fields.get("duration") or (model.default_duration if model else 5)))
        if dz:
            # §21.5: DZ maps any accepted duration (4–15) per model, silently.
            job.update(duration=_dz_duration(job["model"], duration))
            duration = job["duration"]
        elif model is not None and duration not in model.durations:
            if len(model.durations) > 3:
                allowed = f"{model.durations[0]}~{model.durations[-1]}"
            else:
                allowed = "、".join(map(str, model.durations))
            return _envelope(-1000, f"该模型仅支持 {allowed} 秒时长，当前值: {duration}")
        frames = fields.get("file_paths") or fields.get("filePaths") or []
        if len(parsed.files) > 2:
            return _envelope(-1000, "最多只能上传2个图片文件")
        if fields.get("functionMode") == "omni_reference" and not parsed.files:
            return _envelope(-1000, "全能模式(omni_reference)至少需要上传1个素材文件(图片或视频)")
        ratio = str(fields.get("ratio") or "1:1")
        resolution = str(fields.get("resolution") or "720p")
        if ratio not in VIDEO_RATIOS or resolution not in VIDEO_RESOLUTIONS:
            return _envelope(-1000, f"不支持的比例或分辨率: {ratio} {resolution}")
        width, height = _VIDEO_SIZES[ratio]
        if resolution == "1080p":
            width, height = width * 3 // 2, height * 3 // 2
        job.update(duration=duration, size=(width, height), inputs=len(frames) + len(parsed.files))
        return job
    job["model"] = str(fields.get("model") or "jimeng-4.5")
    ratio = str(fields.get("ratio") or "1:1")
    resolution = str(fields.get("resolution") or "2k")
    if ratio not in IMAGE_RATIOS:
        return _envelope(-1000, f"不支持的比例: {ratio}，支持: {'、'.join(IMAGE_RATIOS)}")
    if resolution not in IMAGE_RESOLUTIONS:
        return _envelope(-1000, f"不支持的分辨率: {resolution}，支持: 1k、2k、4k")
    if job["model"] == "nanobananapro" and resolution == "4k":
        _, width, height = NANOBANANAPRO_4K_SIZES[ratio]
    else:
        _, width, height = IMAGE_SIZES[(resolution, ratio)]
    job["size"] = (width, height)
    if route == "composition":
        if parsed.multipart:
            images = [name for name, _ in parsed.files if name == "images"]
            if not images:
                return _envelope(-1000, "在form-data中缺少 'images' 字段")
        else:
            images = list(fields.get("images") or [])
            for index, image in enumerate(images, start=1):
                if isinstance(image, dict):
                    if not image.get("url"):
                        return _envelope(-1000, f"图片 {index} 缺少url字段")
                elif not isinstance(image, str):
                    return _envelope(
                        -1000, f"图片 {index} 格式不正确：应为URL字符串或包含url字段的对象"
                    )
        if not images:
            return _envelope(-1000, "至少需要提供1张输入图片")
        if len(images) > 10:
            return _envelope(-1000, "最多支持10张输入图片")
        job["inputs"] = len(images)
    return job


def _outcome(job: Mapping[str, Any]) -> tuple[int, str] | None:
    """The failure a prompt marker asks for (see docs/sandbox.md), as ``(code, message)``."""
    prompt = str(job["prompt"])
    if BLOCK_INPUT in prompt or BLOCK_OUTPUT in prompt:
        return -2006, _MESSAGES[-2006]
    if FAIL_TASK in prompt:
        return (-2008, _MESSAGES[-2008]) if job["type"] == "video" else (-2007, _MESSAGES[-2007])
    return None


def _fault_envelope(fault: Fault) -> web.Response:
    if fault.code is not None:
        # The gateway's quirk: the error travels in an HTTP 200 envelope (§8a).
        code = int(fault.code)
        return _envelope(code, fault.message or _MESSAGES.get(code, "injected failure"))
    response = web.Response(status=fault.status, text=fault.message or "injected failure")
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    return response


async def _apply_fault(
    server: SandboxServer,
    request: web.Request,
    fault: Fault,
    *,
    envelope: Any,
) -> web.StreamResponse | None:
    if fault.kind == "delay":
        await server.delay(fault.seconds)
        return None
    if fault.kind == "reset":
        abort(request)
        return web.Response(status=500)
    if fault.kind == "non_json":
        return non_json_page(fault.status)
    if fault.kind == "truncate":
        return truncated_json(fault.status)
    response: web.StreamResponse = envelope(fault)
    return response


# -- OpenAI-compatible relays (§10) ----------------------------------------------------------------


def _openai_error(
    status: int, message: str, code: str, kind: str = "invalid_request_error"
) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "code": code}}, status=status
    )


def _openai_fault(fault: Fault) -> web.Response:
    code = str(fault.code) if fault.code is not None else "injected"
    response = _openai_error(fault.status, fault.message or "injected failure", code)
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    return response


class OpenAIRelayProtocol:
    """A relay answering ``/v1/images/generations`` (JSON) and ``/v1/images/edits``
    (multipart) synchronously behind ``Authorization: Bearer <api key>``."""

    def __init__(self, prefix: str = OPENAI_PREFIX, *, api_key: str = SANDBOX_API_KEY):
        self.prefix = prefix.rstrip("/")
        self.api_key = api_key
        self.label = "gateway-openai"
        self.server: SandboxServer | None = None

    def install(self, server: SandboxServer) -> None:
        self.server = server
        router = server.app.router
        router.add_post(self.prefix + "/v1/images/generations", self.generations)
        router.add_post(self.prefix + "/v1/images/edits", self.edits)
        router.add_route("*", self.prefix + "/{tail:.*}", self.no_route)

    async def no_route(self, request: web.Request) -> web.Response:
        return _openai_error(404, f"Unknown route {request.method} {request.path}", "not_found")

    async def _begin(self, request: web.Request) -> web.StreamResponse | None:
        server = self.server
        assert server is not None
        server.requests["submit"] += 1
        if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return _openai_error(401, "Incorrect API key provided", "invalid_api_key")
        fault = server.take_fault("submit")
        if fault is not None:
            return await _apply_fault(server, request, fault, envelope=_openai_fault)
        return None

    async def generations(self, request: web.Request) -> web.StreamResponse:
        refused = await self._begin(request)
        if refused is not None:
            return refused
        try:
            payload = json.loads((await request.read()).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _openai_error(400, "body is not JSON", "invalid_json")
        if not isinstance(payload, dict):
            return _openai_error(400, "body is not a JSON object", "invalid_json")
        return self._answer(payload)

    async def edits(self, request: web.Request) -> web.StreamResponse:
        refused = await self._begin(request)
        if refused is not None:
            return refused
        if not request.content_type.startswith("multipart/"):
            return _openai_error(400, "images/edits takes multipart/form-data", "invalid_request")
        form = await request.post()
        fields = {
            name: str(value) for name, value in form.items() if not isinstance(value, web.FileField)
        }
        files = [value for value in form.values() if isinstance(value, web.FileField)]
        if not files:
            return _openai_error(400, "image is required", "missing_image")
        return self._answer(fields)

    def _answer(self, payload: Mapping[str, Any]) -> web.Response:
        server = self.server
        assert server is not None
        prompt = payload.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return _openai_error(400, "prompt is required", "missing_prompt")
        if BLOCK_INPUT in prompt or BLOCK_OUTPUT in prompt:
            return _openai_error(
                400, "Your request was rejected by the safety system", "content_policy_violation"
            )
        width, height = _relay_size(payload)
        name = server.new_id("uuid")
        render = functools.partial(render_png, prompt, width, height)
        if payload.get("response_format") == "b64_json":
            item = {"b64_json": base64.b64encode(render()).decode("ascii")}
        else:
            item = {"url": server.add_media(f"{name}/1.png", "image/png", render)}
        return web.json_response({"created": _unix(), "data": [item]})


def _relay_size(payload: Mapping[str, Any]) -> tuple[int, int]:
    size = payload.get("size")
    if isinstance(size, str) and "x" in size:
        wide, _, high = size.partition("x")
        if wide.isdigit() and high.isdigit():
            return max(16, min(int(wide), 8192)), max(16, min(int(high), 8192))
    ratio = str(payload.get("ratio") or "1:1")
    resolution = str(payload.get("resolution") or "2k").lower()
    _, width, height = IMAGE_SIZES.get((resolution, ratio), (1, 2048, 2048))
    return width, height


def mounts() -> Sequence[Any]:
    """The gateway-family protocol modules every sandbox server mounts."""
    return (
        GatewayProtocol(GATEWAY_PREFIX, task_mode=True, label="gateway"),
        GatewayProtocol(SYNC_GATEWAY_PREFIX, task_mode=False, label="gateway-sync"),
        OpenAIRelayProtocol(OPENAI_PREFIX),
    )
