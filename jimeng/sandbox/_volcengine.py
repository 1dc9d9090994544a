"""The Volcengine visual API, emulated (protocols/volcengine.md §1–§4).

Requests must be V4-signed with the sandbox's test credentials; the signature is verified over
the bytes received, and a wrong one gets the real ``SignatureDoesNotMatch`` envelope.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from jimeng._signing import VOLCENGINE_CV, SignatureMismatch, verify
from jimeng.sandbox._media import render_png
from jimeng.sandbox._server import SandboxServer, SandboxTask, abort, non_json_page

__all__ = ["SANDBOX_ACCESS_KEY", "SANDBOX_SECRET_KEY", "VolcengineProtocol"]

SANDBOX_ACCESS_KEY = "AKLTsandbox000000000000000000000"
SANDBOX_SECRET_KEY = "sandbox-secret-key-000000000000000000=="

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
    50200: "Invalid args",
    50400: "Access Denied",
}

_SUBMIT = "CVSync2AsyncSubmitTask"
_GET = "CVSync2AsyncGetResult"
_VERSION = "2022-08-31"
_N_IMAGES = re.compile(r"(\d+)\s*(?:images|pictures|张)", re.IGNORECASE)


def _request_id(server: SandboxServer) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"{stamp}{server.random.getrandbits(80):020X}"


class VolcengineProtocol:
    """Routes ``POST /?Action=…&Version=…`` (and the same under any relay path later)."""

    label = "volcengine"

    def __init__(self, *, credentials: Mapping[str, str] | None = None, max_skew: float = 900.0):
        self.credentials = dict(credentials or {SANDBOX_ACCESS_KEY: SANDBOX_SECRET_KEY})
        self.max_skew = max_skew
        self.server: SandboxServer | None = None

    def install(self, server: SandboxServer) -> None:
        self.server = server
        server.app.router.add_post("/", self.handle)

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
            "time_elapsed": "1.234ms",
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

    def _authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        header = request.headers.get("Authorization")
        if not header:
            return self._gateway(
                request, "MissingAuthenticationToken", "Request is missing Authorization header"
            )
        try:
            parsed = verify(
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
        del parsed
        return None

    # -- dispatch ------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        server = self.server
        assert server is not None
        action = request.query.get("Action", "")
        label = {_SUBMIT: "submit", _GET: "poll"}.get(action, action)
        server.requests[label] += 1
        body = await request.read()
        failure = self._authenticate(request, body)
        if failure is not None:
            return failure
        if request.query.get("Version") != _VERSION or label == action:
            return self._gateway(
                request, "InvalidActionOrVersion", f"Could not find operation {action}"
            )
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
            return self.submit(payload)
        return await self.get_result(payload)

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
        code = int(fault.code) if fault.code is not None else _default_code(fault.status)
        response = self._business(code, status=fault.status, message=fault.message)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response

    # -- actions -------------------------------------------------------------------------------

    def submit(self, payload: dict[str, Any]) -> web.Response:
        server = self.server
        assert server is not None
        req_key = payload.get("req_key")
        prompt = payload.get("prompt")
        if req_key != "jimeng_t2i_v40":
            return self._business(50200, status=400, message=f"Invalid args: req_key {req_key!r}")
        if not isinstance(prompt, str) or not prompt.strip():
            return self._business(50201, status=400, message="Missing args: prompt")
        problem = _check_v40(payload)
        if problem:
            return self._business(50200, status=400, message=f"Invalid args: {problem}")
        if BLOCK_INPUT in prompt:
            return self._business(50412, status=400)
        task = server.add_task(
            SandboxTask(
                id=server.new_id(),
                kind="image",
                model=req_key,
                prompt=prompt,
                params=payload,
                created=server.now(),
                stages=server.stages,
            )
        )
        if BLOCK_OUTPUT in prompt:
            task.outcome = "failed:50511:Post Img Risk Not Pass"
        elif FAIL_TASK in prompt:
            task.outcome = "failed:50500:Internal Error"
        return self._business(10000, status=200, message="Success", data={"task_id": task.id})

    async def get_result(self, payload: dict[str, Any]) -> web.Response:
        server = self.server
        assert server is not None
        task = server.tasks.get(str(payload.get("task_id", "")))
        if task is None or task.model != payload.get("req_key"):
            return self._business(
                10000, status=200, message="Success", data={"status": "not_found"}
            )
        try:
            options = json.loads(payload.get("req_json") or "{}")
        except ValueError:
            return self._business(50204, status=400, message="Parse Args Error: req_json")
        task.polls += 1
        server.polls[task.id] += 1
        stage = task.stage(server.now(), server.time_factor)
        if stage == "queued":
            return self._business(10000, status=200, message="Success", data={"status": "in_queue"})
        if stage == "running":
            return self._business(
                10000, status=200, message="Success", data={"status": "generating"}
            )
        if task.outcome.startswith("failed:"):
            _, code, message = task.outcome.split(":", 2)
            return self._business(
                int(code),
                status=400 if int(code) < 50500 else 500,
                message=message,
                data={"status": "done"},
            )
        data = await asyncio.to_thread(self._images, task, options)
        return self._business(10000, status=200, message="Success", data=data)

    def _images(self, task: SandboxTask, options: Mapping[str, Any]) -> dict[str, Any]:
        server = self.server
        assert server is not None
        params = task.params
        if "width" in params and "height" in params:
            width, height = int(params["width"]), int(params["height"])
        else:
            side = math.isqrt(int(params.get("size", 2048 * 2048)))
            width = height = side
        inputs = len(params.get("image_urls") or [])
        count = 1
        match = _N_IMAGES.search(task.prompt)
        if match and not params.get("force_single"):
            count = max(1, min(int(match.group(1)), 15 - inputs))
        names = []
        for index in range(count):
            name = f"{task.id}/{index + 1}.png"
            prompt = task.prompt if index == 0 else f"{task.prompt} #{index + 1}"
            server.add_media(
                name, "image/png", functools.partial(render_png, prompt, width, height)
            )
            names.append((name, prompt))
        data: dict[str, Any] = {"status": "done", "binary_data_base64": None, "image_urls": None}
        if options.get("return_url", False):
            data["image_urls"] = [f"{server.url}/media/{name}" for name, _ in names]
        else:
            data["binary_data_base64"] = [
                base64.b64encode(render_png(prompt, width, height)).decode("ascii")
                for _, prompt in names
            ]
        if options.get("logo_info", {}).get("add_logo"):
            data["logo_applied"] = True
        return data


def _default_code(status: int) -> int:
    if status == 429:
        return 50429
    if status >= 500:
        return 50500
    return 50200


def _check_v40(payload: Mapping[str, Any]) -> str | None:
    """The server's own checks for jimeng_t2i_v40 (protocols/volcengine.md §3.1)."""
    urls = payload.get("image_urls") or []
    if not isinstance(urls, list) or len(urls) > 10:
        return "image_urls must be a list of at most 10"
    if ("width" in payload) != ("height" in payload):
        return "width and height go together"
    if "width" in payload:
        width, height = payload["width"], payload["height"]
        if not (1024 * 1024 <= width * height <= 4096 * 4096):
            return "width*height out of range"
        lo, hi = payload.get("min_ratio", 1 / 3), payload.get("max_ratio", 3)
        if not lo <= width / height <= hi:
            return "aspect ratio out of range"
    if "size" in payload and not (1024 * 1024 <= int(payload["size"]) <= 4096 * 4096):
        return "size out of range"
    scale = payload.get("scale")
    if scale is not None and not 0 <= scale <= 1:
        return "scale out of range"
    return None
