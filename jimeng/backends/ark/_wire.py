"""Pure build/parse functions for Ark's data plane (protocols/volcengine.md §12).

Builders return :class:`~jimeng._http.Call` objects; parsers take
:class:`~jimeng._http.Response` objects already checked for error answers (``_errors``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

import attrs

from jimeng._download import decode_base64
from jimeng._http import Call, Response
from jimeng.backends.ark._errors import check_response
from jimeng.errors import APIError
from jimeng.models import (
    Image,
    ImageResult,
    Task,
    TaskFailure,
    TaskKind,
    TaskStatus,
    Video,
    VideoResult,
)

__all__ = [
    "MAX_PAGE_SIZE",
    "Endpoint",
    "build_create_task",
    "build_delete_task",
    "build_get_task",
    "build_image_generation",
    "build_list_tasks",
    "parse_create_task",
    "parse_image_generation",
    "parse_task",
    "parse_task_list",
    "status_of",
]

#: §12.2 / §12.3: generated links (images, videos, last frames) live 24 hours.
URL_LIFETIME = timedelta(hours=24)
FPS = 24
#: §12.3: list pages are 1–500 items, page numbers 1–500.
MAX_PAGE_SIZE = 500
MAX_PAGES = 500

_STATUS: Mapping[str, TaskStatus] = {
    "queued": TaskStatus.QUEUED,
    "creating": TaskStatus.QUEUED,  # a 3P model lists it [?]
    "running": TaskStatus.RUNNING,
    "succeeded": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
    "cancelled": TaskStatus.CANCELLED,
    "expired": TaskStatus.EXPIRED,
}
#: The library's words → the list filter's (§12.3: ``filter.status``).
LIST_FILTERS: Mapping[str, str] = {
    "queued": "queued",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


@attrs.frozen(kw_only=True)
class Endpoint:
    """The data-plane base URL (``…/api/v3``) and the bearer header."""

    base: str
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)


def status_of(word: str | None) -> TaskStatus:
    return _STATUS.get(word or "", TaskStatus.UNKNOWN)


def _dumps(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _call(endpoint: Endpoint, method: str, path: str, **kwargs: Any) -> Call:
    headers = {"Accept": "application/json", **endpoint.headers}
    body = kwargs.pop("payload", None)
    if body is not None:
        headers["Content-Type"] = "application/json"
    client_id = kwargs.pop("client_request_id", None)
    if client_id:
        headers["X-Client-Request-Id"] = client_id
    return Call(
        method=method,
        url=endpoint.base + path,
        headers=headers,
        body=_dumps(body) if body is not None else None,
        check=check_response,
        # Every data-plane answer is JSON (a DELETE answers {}): anything else is a failure.
        expects_json=True,
        **kwargs,
    )


def build_image_generation(
    endpoint: Endpoint, body: Mapping[str, Any], *, client_request_id: str, timeout: float
) -> Call:
    """``POST /images/generations`` (§12.2): synchronous, and billed: never resent blindly."""
    return _call(
        endpoint,
        "POST",
        "/images/generations",
        payload=body,
        client_request_id=client_request_id,
        idempotent=False,
        purpose="submit",
        timeout=timeout,
    )


def build_create_task(
    endpoint: Endpoint, body: Mapping[str, Any], *, client_request_id: str
) -> Call:
    """``POST /contents/generations/tasks`` (§12.3). Unlike the official SDK, a create that may
    have reached the server is never resent: a duplicate is a second billed video."""
    return _call(
        endpoint,
        "POST",
        "/contents/generations/tasks",
        payload=body,
        client_request_id=client_request_id,
        idempotent=False,
        purpose="submit",
    )


def build_get_task(endpoint: Endpoint, task_id: str) -> Call:
    return _call(
        endpoint, "GET", f"/contents/generations/tasks/{quote(task_id, safe='')}", purpose="poll"
    )


def build_delete_task(endpoint: Endpoint, task_id: str) -> Call:
    """``DELETE /contents/generations/tasks/{id}``: cancels a queued task, or deletes the record
    of a finished one (§12.3); resending it is harmless."""
    return _call(
        endpoint,
        "DELETE",
        f"/contents/generations/tasks/{quote(task_id, safe='')}",
        purpose="cancel",
    )


def build_list_tasks(
    endpoint: Endpoint,
    *,
    page_num: int,
    page_size: int,
    status: str | None = None,
    model: str | None = None,
    task_ids: Sequence[str] = (),
) -> Call:
    """``GET /contents/generations/tasks`` with its filters (§12.3; ``filter.task_ids`` repeats)."""
    query: list[tuple[str, str]] = [("page_num", str(page_num)), ("page_size", str(page_size))]
    if status is not None:
        query.append(("filter.status", status))
    if model is not None:
        query.append(("filter.model", model))
    query += [("filter.task_ids", task_id) for task_id in task_ids]
    return _call(endpoint, "GET", "/contents/generations/tasks?" + urlencode(query), purpose="list")


# -- parsers ----------------------------------------------------------------------------------


def _payload(response: Response, what: str) -> Mapping[str, Any]:
    payload = response.json()
    if not isinstance(payload, Mapping):
        raise APIError(
            f"{what} answer is not a JSON object", status_code=response.status, backend="ark"
        )
    return payload


def _usage(payload: Mapping[str, Any]) -> dict[str, int] | None:
    usage = payload.get("usage")
    if not isinstance(usage, Mapping):
        return None
    return {
        str(key): int(value)
        for key, value in usage.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def _size(text: Any) -> tuple[int | None, int | None]:
    if isinstance(text, str):
        width, sep, height = text.lower().partition("x")
        if sep and width.isdigit() and height.isdigit():
            return int(width), int(height)
    return None, None


def _time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    return None


def parse_image_generation(
    response: Response, *, task_id: str, model_name: str, backend: str, now: datetime
) -> Task:
    """A finished task from the synchronous images answer (§12.2).

    In group mode one image may fail moderation while the others succeed: the successes are the
    result and the failures stay in ``raw``. When nothing came back the task failed with the
    first item's error (or the top-level one).
    """
    payload = _payload(response, "images")
    images: list[Image] = []
    errors: list[Mapping[str, Any]] = []
    for item in payload.get("data") or ():
        if not isinstance(item, Mapping):
            continue
        if isinstance(item.get("error"), Mapping):
            errors.append(item["error"])
            continue
        width, height = _size(item.get("size"))
        encoded = item.get("b64_json")
        if item.get("url"):
            images.append(
                Image(
                    url=str(item["url"]),
                    data=decode_base64(encoded) if isinstance(encoded, str) and encoded else None,
                    expires_at=now + URL_LIFETIME,
                    width=width,
                    height=height,
                )
            )
        elif isinstance(encoded, str) and encoded:
            images.append(Image(data=decode_base64(encoded), width=width, height=height))
    if isinstance(payload.get("error"), Mapping):
        errors.append(payload["error"])
    created = _time(payload.get("created")) or _time(payload.get("created_at"))
    task = Task(
        id=task_id,
        kind=TaskKind.IMAGE,
        status=TaskStatus.SUCCEEDED,
        backend=backend,
        ref=task_id,
        model=str(payload.get("model") or model_name),
        raw_status="succeeded",
        created_at=created,
        completed_at=now,
        raw=payload,
        context={"sync": True},
    )
    if images:
        result = ImageResult(
            images=tuple(images),
            task_id=task_id,
            model=model_name,
            backend=backend,
            request_id=response.header("X-Request-Id"),
            usage=_usage(payload),
            raw=payload,
        )
        return attrs.evolve(task, result=result)
    first = errors[0] if errors else {}
    failure = TaskFailure(
        code=str(first.get("code")) if first.get("code") else None,
        message=str(first.get("message") or "no image came back"),
    )
    return attrs.evolve(task, status=TaskStatus.FAILED, raw_status="failed", failure=failure)


def parse_create_task(response: Response, *, model_name: str, backend: str) -> Task:
    payload = _payload(response, "create")
    task_id = payload.get("id")
    if not isinstance(task_id, str) or not task_id:
        raise APIError(
            "create answer carries no task id",
            status_code=response.status,
            backend=backend,
            body=payload,
        )
    return Task(
        id=task_id,
        kind=TaskKind.VIDEO,
        status=TaskStatus.QUEUED,
        backend=backend,
        ref=task_id,
        model=model_name,
        raw_status="queued",
        raw=payload,
    )


def parse_task(
    payload: Mapping[str, Any], *, backend: str, now: datetime, model_name: str | None = None
) -> Task:
    """A task object (get, list items and callbacks share the shape, §12.3)."""
    task_id = str(payload.get("id") or "")
    raw_status = payload.get("status") if isinstance(payload.get("status"), str) else None
    status = status_of(raw_status)
    name = model_name or (str(payload["model"]) if payload.get("model") else None)
    failure: TaskFailure | None = None
    result: VideoResult | None = None
    error = payload.get("error")
    if status is TaskStatus.SUCCEEDED:
        content = payload.get("content")
        url = content.get("video_url") if isinstance(content, Mapping) else None
        if url:
            duration = payload.get("duration")
            frames = payload.get("frames")
            fps = payload.get("framespersecond") or FPS
            seconds: float | None = None
            if isinstance(duration, int | float) and duration > 0:
                seconds = float(duration)
            elif isinstance(frames, int) and frames > 0:
                seconds = frames / fps
            result = VideoResult(
                video=Video(
                    url=str(url),
                    content_type="video/mp4",
                    expires_at=now + URL_LIFETIME,
                    duration=seconds,
                    fps=int(fps) if isinstance(fps, int | float) else None,
                ),
                task_id=task_id,
                model=name,
                backend=backend,
                usage=_usage(payload),
                raw=payload,
            )
        else:
            status = TaskStatus.FAILED
            failure = TaskFailure(message="task succeeded without a video_url")
    elif status is TaskStatus.FAILED:
        if isinstance(error, Mapping):
            failure = TaskFailure(
                code=str(error.get("code")) if error.get("code") else None,
                message=str(error.get("message") or "generation failed"),
            )
        else:
            failure = TaskFailure(message="generation failed")
    return Task(
        id=task_id,
        kind=TaskKind.VIDEO,
        status=status,
        backend=backend,
        ref=task_id,
        model=name,
        raw_status=raw_status,
        created_at=_time(payload.get("created_at")),
        updated_at=_time(payload.get("updated_at")),
        completed_at=_time(payload.get("updated_at")) if status.is_terminal else None,
        failure=failure,
        result=result,
        raw=payload,
    )


def parse_task_list(
    response: Response, *, backend: str, now: datetime, names: Mapping[str, str]
) -> tuple[list[Task], int]:
    """The page's tasks and the ``total`` the server counts (§12.3)."""
    payload = _payload(response, "list")
    tasks = [
        parse_task(item, backend=backend, now=now, model_name=names.get(str(item.get("model"))))
        for item in payload.get("items") or ()
        if isinstance(item, Mapping)
    ]
    total = payload.get("total")
    return tasks, total if isinstance(total, int) else len(tasks)
