"""Pure build/parse functions for the Volcengine visual API (protocols/volcengine.md §2).

Nothing here does I/O: builders return :class:`~jimeng._http.Call` objects, parsers take
:class:`~jimeng._http.Response` objects (already checked for error envelopes).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from jimeng._download import decode_base64
from jimeng._http import Call, Response, Signer
from jimeng._signing import canonical_query
from jimeng.backends.volcengine._errors import SUCCESS, check_response, check_result_response
from jimeng.errors import APIError
from jimeng.models import (
    AigcMeta,
    Image,
    ImageResult,
    Task,
    TaskFailure,
    TaskKind,
    TaskStatus,
    Video,
    VideoResult,
    Watermark,
)
from jimeng.models._replace import replace

__all__ = [
    "API_VERSION",
    "Endpoint",
    "build_cancel",
    "build_get_result",
    "build_submit",
    "dumps",
    "parse_cancel",
    "parse_result",
    "parse_submit",
    "req_json",
    "status_of",
]

API_VERSION = "2022-08-31"
SUBMIT = "CVSync2AsyncSubmitTask"
GET_RESULT = "CVSync2AsyncGetResult"
#: §3.4.5: the other async family (OmniHuman): same envelope, other Actions.
CV_SUBMIT = "CVSubmitTask"
CV_GET_RESULT = "CVGetResult"
#: Submit and get-result Actions per family (§3.4.0).
ACTIONS: Mapping[str, tuple[str, str]] = {
    "sync2async": (SUBMIT, GET_RESULT),
    "cv": (CV_SUBMIT, CV_GET_RESULT),
}
CANCEL = "CVCancelTask"
CANCEL_VERSION = "2024-06-06"  # §2.1: the SDK's version for CVCancelTask (not in a doc page, §8.12)
IMAGE_URL_LIFETIME = timedelta(hours=24)  # §5: image_urls valid 24 h
VIDEO_URL_LIFETIME = timedelta(hours=1)  # §5: video_url valid 1 h
FPS = 24  # §3.2: frames = 24·n + 1

#: Official words (§2.3) and relay words (gateway.md §10) for task states.
_STATUS: Mapping[str, TaskStatus] = {
    "in_queue": TaskStatus.QUEUED,
    "submitted": TaskStatus.QUEUED,
    "processing": TaskStatus.QUEUED,  # §3.4.5: OmniHuman's pre-processing, before in_queue
    "generating": TaskStatus.RUNNING,
    "done": TaskStatus.SUCCEEDED,
    "success": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
    "not_found": TaskStatus.EXPIRED,
    "expired": TaskStatus.EXPIRED,
    # Not documented for get-result [?]; tolerated should a server report cancelled tasks.
    "cancelled": TaskStatus.CANCELLED,
    "canceled": TaskStatus.CANCELLED,
}


@attrs.frozen(kw_only=True)
class Endpoint:
    """Where and how to send: base URL (scheme://host[:port]), path, and per-attempt auth."""

    base: str
    path: str = "/"
    sign: Signer | None = attrs.field(default=None, repr=False)
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    host: str = ""


#: One encoder for every body (``json.dumps`` with options builds a new one per call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; the bytes hashed for the signature are exactly these."""
    return _ENCODER.encode(payload).encode("utf-8")


@functools.lru_cache(maxsize=32)
def _query(action: str, version: str) -> str:
    return canonical_query({"Action": action, "Version": version})


def _call(endpoint: Endpoint, action: str, payload: Mapping[str, Any], **kwargs: Any) -> Call:
    query = _query(action, kwargs.pop("version", API_VERSION))
    headers = {"Content-Type": "application/json", **endpoint.headers}
    if endpoint.host:
        headers["Host"] = endpoint.host
    return Call(
        method="POST",
        url=f"{endpoint.base}{endpoint.path}?{query}",
        headers=headers,
        body=dumps(payload),
        sign=endpoint.sign,
        check=kwargs.pop("check", check_response),
        expects_json=True,
        **kwargs,
    )


def build_submit(endpoint: Endpoint, body: Mapping[str, Any], *, action: str = SUBMIT) -> Call:
    # A duplicate submit is billed: the engine may resend only when nothing was accepted.
    return _call(endpoint, action, body, idempotent=False, purpose="submit")


@functools.lru_cache(maxsize=64)  # the same few option sets for every task
def req_json(
    *,
    return_url: bool | None = None,
    watermark: Watermark | None = None,
    aigc_meta: AigcMeta | None = None,
    images: bool = True,
) -> str:
    """The ``req_json`` string of get-result (§2.3): a JSON document *inside* a string.

    Image tasks ask for URLs unless told otherwise; video results are always a URL, so video
    tasks send only the watermark and AIGC options, and nothing (``""``) without them.
    """
    options: dict[str, Any] = {}
    if images:
        options["return_url"] = True if return_url is None else return_url
    if watermark is not None:
        logo: dict[str, Any] = {
            "add_logo": True,
            "position": int(watermark.position),
            "language": watermark.language,
            "opacity": watermark.opacity,
        }
        if watermark.text:
            logo["logo_text_content"] = watermark.text
        options["logo_info"] = logo
    if aigc_meta is not None:
        options["aigc_meta"] = {
            key: value for key, value in attrs.asdict(aigc_meta).items() if value is not None
        }
    if not options:
        return ""
    return _ENCODER.encode(options)


def build_get_result(
    endpoint: Endpoint, req_key: str, task_id: str, options: str, *, action: str = GET_RESULT
) -> Call:
    body = {"req_key": req_key, "task_id": task_id}
    if options:
        body["req_json"] = options  # optional (§2.3); left out when there is nothing to ask
    return _call(
        endpoint, action, body, idempotent=True, purpose="poll", check=check_result_response
    )


def resp_data(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data.resp_data``: a JSON document inside a string (§3.4.5), decoded; ``{}`` when
    empty or not JSON."""
    text = data.get("resp_data")
    if isinstance(text, Mapping):
        return text
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        decoded = json.loads(text)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, Mapping) else {}


def parse_subject_check(response: Response, task: Task) -> Task:
    """The OmniHuman subject check (§3.4.5 step 1): done with ``resp_data.status`` 1 (a person
    or person-like subject) or 0 (none), kept in ``context["subject"]``."""
    payload = _payload(response)
    data = payload.get("data") or {}
    if not isinstance(data, Mapping):
        data = {}
    raw_status = data.get("status") if isinstance(data.get("status"), str) else None
    status = status_of(raw_status)
    decoded = resp_data(data)
    failure: TaskFailure | None = None
    code = payload.get("code")
    if status is TaskStatus.SUCCEEDED and code not in (None, SUCCESS):
        status = TaskStatus.FAILED
    if status is TaskStatus.FAILED:
        failure = TaskFailure(
            code=code, message=str(decoded.get("message") or payload.get("message") or "failed")
        )
    context = dict(task.context)
    if status is TaskStatus.SUCCEEDED:
        context["subject"] = decoded.get("status") in (1, "1", True)
    return replace(
        task,
        status=status,
        raw_status=raw_status,
        failure=failure,
        raw=payload,
        context=context,
    )


def build_cancel(endpoint: Endpoint, req_key: str, task_id: str) -> Call:
    """``CVCancelTask`` (§2.1): only queued tasks can be cancelled. Resending is harmless."""
    body = {"req_key": req_key, "task_id": task_id}
    return _call(endpoint, CANCEL, body, version=CANCEL_VERSION, idempotent=True, purpose="cancel")


def parse_cancel(response: Response, task: Task) -> Task:
    """The task after an accepted cancel (the answer carries nothing else we need)."""
    payload = _payload(response)
    return attrs.evolve(task, status=TaskStatus.CANCELLED, raw_status="cancelled", raw=payload)


def _payload(response: Response) -> Mapping[str, Any]:
    payload = response.json()
    if not isinstance(payload, Mapping):
        raise APIError("answer is not a JSON object", status_code=response.status)
    return payload


def parse_submit(
    response: Response,
    *,
    req_key: str,
    kind: TaskKind,
    backend: str,
    context: Mapping[str, Any] | None = None,
    notes: tuple[str, ...] = (),
) -> Task:
    """The accepted task; ``context`` (what its polls need) and ``notes`` go on it."""
    payload = _payload(response)
    data = payload.get("data") or {}
    task_id = data.get("task_id") if isinstance(data, Mapping) else None
    if not task_id:
        raise APIError(
            "submit answer carries no task_id",
            status_code=response.status,
            request_id=payload.get("request_id"),
            backend=backend,
            body=payload,
        )
    task_id = str(task_id)  # exceeds 2**53: never a float (§2.2)
    raw_status = data.get("status") if isinstance(data.get("status"), str) else None
    return Task(
        id=task_id,
        kind=kind,
        status=_STATUS.get(raw_status or "", TaskStatus.QUEUED),
        backend=backend,
        ref=f"{req_key}:{task_id}",
        model=req_key,
        raw_status=raw_status or "in_queue",
        raw=payload,
        context=context if context is not None else {},
        notes=notes,
    )


def status_of(word: str | None) -> TaskStatus:
    return _STATUS.get(word or "", TaskStatus.UNKNOWN)


def parse_result(
    response: Response,
    task: Task,
    *,
    now: datetime,
) -> Task:
    """The task as get-result describes it, with its result when done."""
    payload = _payload(response)
    data = payload.get("data") or {}
    if not isinstance(data, Mapping):
        data = {}
    raw_status = data.get("status")
    status = status_of(raw_status if isinstance(raw_status, str) else None)
    result: ImageResult | VideoResult | None = None
    failure: TaskFailure | None = None
    code = payload.get("code")
    if status is TaskStatus.SUCCEEDED and code not in (None, SUCCESS):
        # §2.3: "done" means finished, success *or* failure; the outer code decides.
        status = TaskStatus.FAILED
    if status is TaskStatus.SUCCEEDED:
        if task.kind is TaskKind.VIDEO:
            result = _video_result(data, payload, task, now)
        else:
            pixels = task.context.get("pixels")
            width, height = pixels if pixels else (None, None)
            images = [
                Image(url=str(url), expires_at=now + IMAGE_URL_LIFETIME, width=width, height=height)
                for url in data.get("image_urls") or ()
                if url
            ]
            encoded = data.get("binary_data_base64") or ()
            if images and len(encoded) == len(images):
                images = [
                    attrs.evolve(image, data=decode_base64(text))
                    for image, text in zip(images, encoded, strict=True)
                ]
            elif not images:
                images = [
                    Image(data=decode_base64(text), width=width, height=height)
                    for text in encoded
                    if text
                ]
            result = ImageResult(
                images=tuple(images),
                task_id=task.id,
                model=_model_name(task),
                backend=task.backend,
                request_id=payload.get("request_id"),
                raw=payload,
            )
        if result is None or (isinstance(result, ImageResult) and not result.images):
            status = TaskStatus.FAILED
            failure = TaskFailure(code=payload.get("code"), message="task finished without output")
    elif status is TaskStatus.FAILED:
        # A CVGetResult "failed" carries its reason in resp_data (§3.4.5, [3P]).
        reason = resp_data(data).get("message") if code in (None, SUCCESS) else None
        failure = TaskFailure(
            code=payload.get("code"),
            message=str(reason or payload.get("message") or "generation failed"),
        )
    return replace(
        task,
        status=status,
        raw_status=raw_status if isinstance(raw_status, str) else None,
        result=result,
        failure=failure,
        raw=payload,
    )


def _video_result(
    data: Mapping[str, Any], payload: Mapping[str, Any], task: Task, now: datetime
) -> VideoResult | None:
    """``video_url`` (valid 1 h, §5) and ``aigc_meta_tagged`` (§2.3)."""
    url = data.get("video_url")
    if not url:
        return None
    frames = task.context.get("frames")
    duration = (int(frames) - 1) / FPS if isinstance(frames, int) else None
    tagged = data.get("aigc_meta_tagged")
    return VideoResult(
        video=Video(
            url=str(url),
            content_type="video/mp4",
            expires_at=now + VIDEO_URL_LIFETIME,
            duration=duration,
            fps=FPS if duration is not None else None,
        ),
        task_id=task.id,
        model=_model_name(task),
        backend=task.backend,
        request_id=payload.get("request_id"),
        aigc_meta_tagged=tagged if isinstance(tagged, bool) else None,
        raw=payload,
    )


def _model_name(task: Task) -> str | None:
    """Results name the public model ("jimeng-4.0"); the task keeps the req_key for polling."""
    name = task.context.get("model_name")
    return str(name) if name else task.model
