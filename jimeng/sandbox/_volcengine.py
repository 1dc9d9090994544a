"""The Volcengine visual API, emulated (protocols/volcengine.md §1–§5), and relays of its
format (gateway.md §10).

Official mode (``POST /``): requests must be V4-signed with the sandbox's test credentials; the
signature is verified over the bytes received, and a wrong one gets the real
``SignatureDoesNotMatch`` envelope. Relay mode (``POST /jm``): a bearer key instead, task ids are
UUIDs and task states use the relay's words (``submitted``, ``generating``, ``success``,
``failed``). Both check every ``req_key``'s parameters (``_volcengine_keys``) and serve real PNGs
and a small valid MP4 per video.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from jimeng._signing import VOLCENGINE_CV, SignatureMismatch, verify
from jimeng.sandbox._callbacks import CallbackSender
from jimeng.sandbox._media import render_mp4, render_png
from jimeng.sandbox._server import SandboxServer, SandboxTask, abort, non_json_page, truncated_json
from jimeng.sandbox._visual_keys import TRANSFORM_KEYS, check_transform
from jimeng.sandbox._volcengine_keys import Rejection, check_submit

__all__ = [
    "SANDBOX_ACCESS_KEY",
    "SANDBOX_RELAY_KEY",
    "SANDBOX_SECRET_KEY",
    "VolcengineProtocol",
]

SANDBOX_ACCESS_KEY = "AKLTsandbox000000000000000000000"
SANDBOX_SECRET_KEY = "sandbox-secret-key-000000000000000000=="
#: The bearer key the sandbox's relay (``/jm``) accepts.
SANDBOX_RELAY_KEY = "sk-sandbox-relay-0000000000000000"
RELAY_PATH = "/jm"

#: Prompts containing these markers trigger moderation answers (see docs/sandbox.md).
BLOCK_INPUT = "sandbox:block-input"
BLOCK_OUTPUT = "sandbox:block-output"
FAIL_TASK = "sandbox:fail"

_GATEWAY_ERRORS: Mapping[str, tuple[int, int]] = {
    "MissingAuthenticationToken": (100003, 401),
    "SignatureDoesNotMatch": (100010, 401),
    "InvalidAccessKey": (100009, 401),
    "InvalidTimestamp": (100006, 401),
    "InvalidActionOrVersion": (100008, 404),
    "InternalError": (100014, 500),
}

_BUSINESS_MESSAGES: Mapping[int, str] = {
    50429: "Request Has Reached API Limit, Please Try Later",
    50430: "Request Has Reached API Concurrent Limit, Please Try Later",
    50500: "Internal Error",
    50501: "Internal RPC Error",
    50411: "Pre Img Risk Not Pass",
    50412: "Text Risk Not Pass",
    50511: "Post Img Risk Not Pass",
    50516: "Post Video Risk Not Pass",
    50200: "Invalid args",
    50400: "Access Denied",
}

_SUBMIT = "CVSync2AsyncSubmitTask"
_GET = "CVSync2AsyncGetResult"
_CV_SUBMIT = "CVSubmitTask"
_CV_GET = "CVGetResult"
_CANCEL = "CVCancelTask"
_VERSION = "2022-08-31"
#: §2.1: CVCancelTask lives under another version than the submit/get-result pairs.
_VERSIONS: Mapping[str, str] = {
    _SUBMIT: _VERSION,
    _GET: _VERSION,
    _CV_SUBMIT: _VERSION,
    _CV_GET: _VERSION,
    _CANCEL: "2024-06-06",
}
_LABELS: Mapping[str, str] = {
    _SUBMIT: "submit",
    _GET: "poll",
    _CV_SUBMIT: "submit",
    _CV_GET: "poll",
    _CANCEL: "cancel",
}
#: §3.4.0: the Action pair each submit and get-result belongs to.
_FAMILIES: Mapping[str, str] = {
    _SUBMIT: "sync2async",
    _GET: "sync2async",
    _CV_SUBMIT: "cv",
    _CV_GET: "cv",
}

#: Task stages in the official words (§2.3) and the relay's (gateway.md §10).
_OFFICIAL_WORDS = {"queued": "in_queue", "running": "generating", "done": "done"}
_RELAY_WORDS = {"queued": "submitted", "running": "generating", "done": "success"}


def _request_id(server: SandboxServer) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"{stamp}{server.random.getrandbits(80):020X}"


class VolcengineProtocol:
    """Routes ``POST /?Action=…&Version=…`` (official, signed) or ``POST /jm?…`` (``relay=True``,
    bearer key)."""

    def __init__(
        self,
        *,
        relay: bool = False,
        credentials: Mapping[str, str] | None = None,
        api_keys: tuple[str, ...] = (SANDBOX_RELAY_KEY,),
        max_skew: float = 900.0,
    ):
        self.relay = relay
        self.label = "volcengine-relay" if relay else "volcengine"
        self.path = RELAY_PATH if relay else "/"
        self.credentials = dict(credentials or {SANDBOX_ACCESS_KEY: SANDBOX_SECRET_KEY})
        self.api_keys = api_keys
        self.max_skew = max_skew
        self.server: SandboxServer | None = None
        self.callbacks: CallbackSender | None = None

    def install(self, server: SandboxServer) -> None:
        self.server = server
        server.app.router.add_post(self.path, self.handle)
        self.callbacks = CallbackSender(server)

    async def _call_back(self, task: SandboxTask, url: str) -> None:
        """§3.4.4 (motion imitation 2.0): when the task ends, POST the get-result envelope with
        an extra top-level ``task_id`` and ``data.resp_data`` ""; a failure keeps ``data``."""
        server = self.server
        assert server is not None
        while True:
            # Stages move with time as well as polls: look again until the task ends.
            stage = task.stage(server.now(), server.time_factor)
            if stage not in ("queued", "running"):
                break
            await asyncio.sleep(0.05)
        if stage == "cancelled":
            return
        code, message = 10000, "Success"
        data: dict[str, Any] = {"status": "done", "resp_data": ""}
        if task.outcome.startswith("failed:"):
            _, number, message = task.outcome.split(":", 2)
            code = int(number)
        else:
            data.update(self._video(task, {}))
        body = {
            "code": code,
            "data": data,
            "message": message,
            "request_id": _request_id(server),
            "status": code,
            "time_elapsed": "1.234ms",
            "task_id": task.id,
        }
        assert self.callbacks is not None
        self.callbacks.post(task.id, "done", url, body)

    # -- envelopes -----------------------------------------------------------------------------

    def _business(
        self, code: int, *, status: int, message: str | None = None, data: Any = None
    ) -> web.Response:
        assert self.server is not None
        payload = {
            "code": code,
            "data": data,
            "message": message or _BUSINESS_MESSAGES.get(code, "Error"),
            "request_id": _request_id(self.server),
            "status": code,
            # §2.2: a Go duration string; relays show microseconds ("35.381µs").
            "time_elapsed": "35.381µs" if self.relay else "1.234ms",
        }
        return web.json_response(payload, status=status)

    def _gateway(self, request: web.Request, name: str, message: str) -> web.Response:
        assert self.server is not None
        code_n, status = _GATEWAY_ERRORS[name]
        payload = {
            "ResponseMetadata": {
                "RequestId": _request_id(self.server),
                "Action": request.query.get("Action", ""),
                "Version": request.query.get("Version", ""),
                "Service": "cv",
                "Region": "cn-north-1",
                "Error": {"CodeN": code_n, "Code": name, "Message": message},
            }
        }
        return web.json_response(payload, status=status)

    @staticmethod
    def _relay_error(status: int, code: str, message: str) -> web.Response:
        """A relay's own failure (bad key, unknown action): OpenAI-style, as such relays answer."""
        body = {"error": {"code": code, "message": message, "type": "relay_error"}}
        return web.json_response(body, status=status)

    def _authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        if self.relay:
            return self._authenticate_bearer(request)
        header = request.headers.get("Authorization")
        if not header:
            return self._gateway(
                request, "MissingAuthenticationToken", "Request is missing Authorization header"
            )
        try:
            verify(
                method=request.method,
                path=request.raw_path.split("?", 1)[0],
                query=request.query_string,
                headers=request.headers,
                body=body,
                secret_key_for=self.credentials.get,
                profile=VOLCENGINE_CV,
            )
        except SignatureMismatch as error:
            reason = str(error)
            if "access key" in reason:
                return self._gateway(request, "InvalidAccessKey", "The access key is invalid")
            return self._gateway(
                request,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                f"({reason})",
            )
        x_date = request.headers.get("X-Date", "")
        try:
            sent = datetime.strptime(x_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            return self._gateway(request, "InvalidTimestamp", "X-Date is malformed")
        if abs((datetime.now(timezone.utc) - sent).total_seconds()) > self.max_skew:
            return self._gateway(
                request, "InvalidTimestamp", "The Signature of the request is expired."
            )
        return None

    def _authenticate_bearer(self, request: web.Request) -> web.Response | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not any(
            hmac.compare_digest(key.strip().encode(), known.encode()) for known in self.api_keys
        ):
            return self._relay_error(401, "invalid_api_key", "Invalid API key")
        return None

    # -- dispatch ------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        server = self.server
        assert server is not None
        action = request.query.get("Action", "")
        label = _LABELS.get(action, action)
        server.requests[label] += 1
        body = await request.read()
        failure = self._authenticate(request, body)
        if failure is not None:
            return failure
        version = request.query.get("Version")
        if action not in _VERSIONS or version != _VERSIONS[action]:
            if self.relay:
                return self._relay_error(
                    400, "invalid_action", f"Action and Version are required: {action!r}"
                )
            return self._gateway(
                request, "InvalidActionOrVersion", f"Could not find operation {action}"
            )
        if self.relay and action not in (_SUBMIT, _GET):
            # gateway.md §10 documents submit and query only.
            return self._relay_error(404, "unsupported_action", f"{action} is not supported")
        if not server.take_request_token():
            return self._business(50429, status=429)
        if label == "submit" and not server.has_task_room():
            return self._business(50430, status=429)
        fault = server.take_fault(label)
        if fault is not None:
            injected = await self._apply(request, fault)
            if injected is not None:
                return injected
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._business(50204, status=400, message="Parse Args Error: body is not JSON")
        if not isinstance(payload, dict):
            return self._business(50204, status=400, message="Parse Args Error")
        if label == "submit":
            return self.submit(payload, family=_FAMILIES[action])
        if label == "cancel":
            return self.cancel(payload)
        return await self.get_result(payload, family=_FAMILIES[action])

    async def _apply(self, request: web.Request, fault: Any) -> web.StreamResponse | None:
        assert self.server is not None
        if fault.kind == "delay":
            await self.server.delay(fault.seconds)
            return None
        if fault.kind == "reset":
            abort(request)
            return web.Response(status=500)
        if fault.kind == "non_json":
            return non_json_page(fault.status)
        if fault.kind == "truncate":
            return truncated_json(fault.status)
        code = int(fault.code) if fault.code is not None else _default_code(fault.status)
        response = self._business(code, status=fault.status, message=fault.message)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response

    # -- actions -------------------------------------------------------------------------------

    def submit(self, payload: dict[str, Any], *, family: str = "sync2async") -> web.Response:
        server = self.server
        assert server is not None
        req_key = payload.get("req_key")
        try:
            if isinstance(req_key, str) and req_key in TRANSFORM_KEYS and not self.relay:
                accepted = check_transform(req_key, payload, family=family)
            else:
                accepted = check_submit(payload, relay=self.relay, family=family)
        except Rejection as rejection:
            status = 400 if rejection.code < 50500 else 500
            return self._business(rejection.code, status=status, message=rejection.message)
        prompt = str(payload.get("prompt") or "")
        # Keys without a prompt carry the trigger words in their URLs.
        words = (
            prompt
            + " "
            + " ".join(
                str(payload.get(name) or "") for name in ("image_url", "video_url", "audio_url")
            )
            + " ".join(str(url) for url in payload.get("image_urls") or ())
        )
        if BLOCK_INPUT in words:
            return self._business(50412, status=400)
        task = server.add_task(
            SandboxTask(
                id=server.new_id("uuid" if self.relay else "numeric"),
                kind=accepted.kind,
                model=str(payload["req_key"]),
                prompt=prompt or str(req_key),
                params=payload,
                created=server.now(),
                stages=server.stages,
                extra={"submission": accepted, "relay": self.relay, "family": family},
            )
        )
        if BLOCK_OUTPUT in words:
            code = 50516 if accepted.kind == "video" else 50511
            task.outcome = f"failed:{code}:{_BUSINESS_MESSAGES[code]}"
        elif FAIL_TASK in words:
            task.outcome = "failed:50500:Internal Error"
        elif accepted.outcome is not None:
            task.outcome = accepted.outcome
        callback = payload.get("callback_url")
        if isinstance(callback, str) and self.callbacks is not None:
            self.callbacks.spawn(self._call_back(task, callback))
        data: dict[str, Any] = {"task_id": task.id}
        if self.relay:
            data["status"] = "submitted"
        return self._business(10000, status=200, message="Success", data=data)

    def _find(self, payload: Mapping[str, Any]) -> SandboxTask | None:
        assert self.server is not None
        task = self.server.tasks.get(str(payload.get("task_id", "")))
        if task is None or task.model != payload.get("req_key"):
            return None
        if bool(task.extra.get("relay")) != self.relay:
            return None  # each surface knows its own tasks
        return task

    def cancel(self, payload: dict[str, Any]) -> web.Response:
        """§2.1: queued tasks are cancelled; the FAQ says generating ones cannot be. How the
        real API words the refusal is not documented: the sandbox answers 400 / 50200."""
        server = self.server
        assert server is not None
        if not payload.get("req_key") or not payload.get("task_id"):
            return self._business(50201, status=400, message="Missing args: req_key, task_id")
        task = self._find(payload)
        if task is None:
            return self._business(50200, status=400, message="Invalid args: task not found")
        stage = task.stage(server.now(), server.time_factor)
        if stage == "cancelled":
            return self._business(10000, status=200, message="Success")
        if stage != "queued":
            word = "generating" if stage == "running" else "done"
            return self._business(
                50200,
                status=400,
                message=f"Invalid args: task is {word}; only tasks in queue can be cancelled",
            )
        task.cancelled = True
        return self._business(10000, status=200, message="Success")

    async def get_result(
        self, payload: dict[str, Any], *, family: str = "sync2async"
    ) -> web.Response:
        server = self.server
        assert server is not None
        words = _RELAY_WORDS if self.relay else _OFFICIAL_WORDS
        task = self._find(payload)
        if task is not None and task.extra.get("family", "sync2async") != family:
            # §3.4.0: a key polled on the other Action pair is not served there.
            return self._business(
                50200, status=400, message=f"Invalid args: req_key {task.model} not supported"
            )
        if task is None or task.cancelled:
            # §2.3 lists no "cancelled" state: a cancelled task is no longer known.
            return self._business(
                10000, status=200, message="Success", data={"status": "not_found"}
            )
        try:
            options = json.loads(payload.get("req_json") or "{}")
        except ValueError:
            return self._business(50204, status=400, message="Parse Args Error: req_json")
        if not isinstance(options, dict):
            return self._business(50204, status=400, message="Parse Args Error: req_json")
        task.polls += 1
        server.polls[task.id] += 1
        stage = task.stage(server.now(), server.time_factor)
        if stage in ("queued", "running"):
            word = words[stage]
            if family == "cv" and stage == "queued" and task.polls == 1:
                word = "processing"  # §3.4.5: OmniHuman's pre-processing, before in_queue
            return self._business(10000, status=200, message="Success", data={"status": word})
        if task.outcome.startswith("failed:"):
            _, code, message = task.outcome.split(":", 2)
            if self.relay:  # the relay reports the upstream code with its own word
                return self._business(
                    int(code), status=200, message=message, data={"status": "failed"}
                )
            return self._business(
                int(code),
                status=400 if int(code) < 50500 else 500,
                message=message,
                data={"status": "done"},
            )
        if task.kind == "check":
            subject = task.extra["submission"].subject
            data = {"resp_data": json.dumps({"status": int(bool(subject))})}
        elif task.kind == "video":
            data = self._video(task, options)
            if family == "cv":
                data["resp_data"] = ""
        else:
            data = await self._images(task, options)
        data["status"] = words["done"]
        return self._business(10000, status=200, message="Success", data=data)

    def _video(self, task: SandboxTask, options: Mapping[str, Any]) -> dict[str, Any]:
        server = self.server
        assert server is not None
        accepted = task.extra["submission"]
        url = server.add_media(
            f"{task.id}/video.mp4",
            "video/mp4",
            functools.partial(
                render_mp4,
                task.prompt,
                width=accepted.width,
                height=accepted.height,
                frames=accepted.frames,
                fps=accepted.fps,
            ),
        )
        data: dict[str, Any] = {"video_url": url}
        if "aigc_meta" in options:
            data["aigc_meta_tagged"] = True
        return data

    async def _images(self, task: SandboxTask, options: Mapping[str, Any]) -> dict[str, Any]:
        server = self.server
        assert server is not None
        accepted = task.extra["submission"]
        names = []
        for index in range(accepted.count):
            name = f"{task.id}/{index + 1}.png"
            prompt = task.prompt if index == 0 else f"{task.prompt} #{index + 1}"
            server.add_media(
                name,
                "image/png",
                functools.partial(render_png, prompt, accepted.width, accepted.height),
            )
            names.append((name, prompt))
        data: dict[str, Any] = {"binary_data_base64": None, "image_urls": None}
        if options.get("return_url", False):
            data["image_urls"] = [f"{server.url}/media/{name}" for name, _ in names]
        else:
            # Big PNGs take a while in pure Python: draw them off the event loop.
            data["binary_data_base64"] = [
                base64.b64encode(
                    await asyncio.to_thread(render_png, prompt, accepted.width, accepted.height)
                ).decode("ascii")
                for _, prompt in names
            ]
        logo = options.get("logo_info")
        if isinstance(logo, dict) and logo.get("add_logo"):
            data["logo_applied"] = True
        return data


def _default_code(status: int) -> int:
    if status == 429:
        return 50429
    if status >= 500:
        return 50500
    return 50200
