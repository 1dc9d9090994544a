"""Pure build/parse functions for jimeng-api gateways and OpenAI-compatible relays.

protocols/gateway.md §8a (routes), §8b (the async-task fork), §10 (relays). Nothing here does
I/O: builders return :class:`~jimeng._http.Call` objects, parsers take
:class:`~jimeng._http.Response` objects that :func:`check` has already let through.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any
from urllib.parse import quote, urlencode

import attrs

from jimeng._download import decode_base64, sniff_extension
from jimeng._http import Call, Checker, Response
from jimeng._logging import fingerprint
from jimeng.backends._base import AccountBalance, SessionStatus
from jimeng.backends._multipart import FilePart, content_type_of, encode_multipart
from jimeng.backends.gateway._errors import check_response
from jimeng.backends.gateway._params import region_of
from jimeng.errors import APIError, DownloadError, ValidationError
from jimeng.models import (
    Image,
    ImageInput,
    ImageResult,
    QueueStats,
    Task,
    TaskFailure,
    TaskKind,
    TaskStatus,
    Video,
    VideoResult,
)

__all__ = [
    "STATUS",
    "Endpoint",
    "build_cancel",
    "build_get_task",
    "build_image_submit",
    "build_list_tasks",
    "build_openai_image",
    "build_probe",
    "build_token_check",
    "build_token_points",
    "build_token_receive",
    "build_video_submit",
    "dumps",
    "failed_sync_task",
    "merge_task_lists",
    "parse_balances",
    "parse_cancel",
    "parse_check",
    "parse_probe",
    "parse_queue_stats",
    "parse_submit",
    "parse_task",
    "parse_task_list",
    "status_of",
    "wire_statuses",
]

#: DZ task statuses (§8b) → the library's states.
STATUS: Mapping[str, TaskStatus] = {
    "pending": TaskStatus.QUEUED,
    "queued": TaskStatus.QUEUED,
    "processing": TaskStatus.RUNNING,
    "completed": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
    "cancelled": TaskStatus.CANCELLED,
}
#: ``tasks.list(status=…)`` takes the library's states; each becomes the gateway words that
#: make it up ("queued" is both: the library's queued covers the gateway's pending and queued).
_LIST_STATUS: Mapping[str, tuple[str, ...]] = {
    "queued": ("pending", "queued"),
    "running": ("processing",),
    "succeeded": ("completed",),
}
_LIST_TYPES = ("image", "video", "composition")


@attrs.frozen(kw_only=True)
class Endpoint:
    """Where to send (``base`` = scheme://host[:port][/prefix]), with what auth header."""

    base: str
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    #: Fingerprints of the sessions behind the bearer (named by insufficient-credit errors).
    sessions: tuple[str, ...] = ()
    backend: str = "gateway"

    def check(self) -> Checker:
        def checker(response: Response) -> None:
            check_response(response, backend=self.backend, sessions=self.sessions)

        return checker


def _encode(value: Any) -> str:
    if isinstance(value, str):
        # ensure_ascii: NBSP, U+2000–U+200B, U+FEFF, U+3000… travel as \uXXXX escapes, which
        # the cleaner does not touch; a comma is escaped too, so none can precede a ] or }.
        return json.dumps(value, ensure_ascii=True).replace(",", "\\u002c")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_encode(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    return json.dumps(value, allow_nan=False)


def dumps(payload: Any) -> bytes:
    """Compact JSON that reaches a jimeng-api handler byte-identical.

    The peers rewrite the raw body before parsing it, inside strings too (gateway.md §21.1):
    raw NBSP and U+2000–U+200B become spaces, U+FEFF vanishes, ``,]``/``, }`` lose the comma.
    Every non-ASCII character and every comma inside a string is therefore sent as a ``\\u``
    escape, which JSON reads back as the same character and the cleaner leaves alone.
    """
    return _encode(payload).encode("ascii")


def _call(
    endpoint: Endpoint,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    content_type: str | None = None,
    purpose: str,
    idempotent: bool,
    timeout: float | None = None,
) -> Call:
    headers = {"Accept": "application/json", **endpoint.headers}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return Call(
        method=method,
        url=endpoint.base + path,
        headers=headers,
        body=body,
        check=endpoint.check(),
        idempotent=idempotent,
        purpose=purpose,
        timeout=timeout,
        expects_json=True,
    )


def _form_value(value: Any) -> str:
    # Multipart strings are converted back by the gateway ("true"/"false", numbers; §8a).
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _file_part(name: str, image: ImageInput, index: int) -> FilePart:
    assert image.data is not None
    extension = sniff_extension(image.data[:32])
    # The base name only: never the local folders.
    filename = PurePath(image.path).name if image.path else f"image_{index}{extension}"
    return FilePart(
        name=name, filename=filename, data=image.data, content_type=content_type_of(extension)
    )


def _submit(
    endpoint: Endpoint,
    path: str,
    fields: Mapping[str, Any],
    files: Sequence[FilePart],
    *,
    timeout: float | None,
) -> Call:
    # A duplicate submit is billed: the engine resends only when nothing was accepted.
    if files:
        body, content_type = encode_multipart(
            [(name, _form_value(value)) for name, value in fields.items()], files
        )
    else:
        body, content_type = dumps(dict(fields)), "application/json"
    return _call(
        endpoint,
        "POST",
        path,
        body=body,
        content_type=content_type,
        purpose="submit",
        idempotent=False,
        timeout=timeout,
    )


def _with_async(
    fields: dict[str, Any], *, async_mode: bool, callback_url: str | None, extra: Any
) -> dict[str, Any]:
    if async_mode:
        fields["async"] = True  # §8b: ignored by a gateway without the task mode
        if callback_url is not None:
            fields["callback_url"] = callback_url
    if extra:
        fields.update(extra)
    return fields


def build_image_submit(
    endpoint: Endpoint,
    fields: Mapping[str, Any],
    images: Sequence[ImageInput],
    *,
    async_mode: bool,
    callback_url: str | None = None,
    extra: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Call:
    """``/v1/images/generations``, or ``/v1/images/compositions`` when there are images: URLs
    as JSON ``images``, local files as repeated multipart ``images`` fields (§8a)."""
    body = _with_async(dict(fields), async_mode=async_mode, callback_url=callback_url, extra=extra)
    if not images:
        return _submit(endpoint, "/v1/images/generations", body, (), timeout=timeout)
    if all(image.url is not None for image in images):
        body["images"] = [image.url for image in images]
        return _submit(endpoint, "/v1/images/compositions", body, (), timeout=timeout)
    files = [_file_part("images", image, index) for index, image in enumerate(images, start=1)]
    return _submit(endpoint, "/v1/images/compositions", body, files, timeout=timeout)


def build_video_submit(
    endpoint: Endpoint,
    fields: Mapping[str, Any],
    frames: Sequence[ImageInput],
    *,
    async_mode: bool,
    callback_url: str | None = None,
    extra: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Call:
    """``/v1/videos/generations``: frame URLs in ``file_paths`` (JSON), local frames as
    ``image_file_1``/``image_file_2`` (multipart; the names omni mode requires, and plain mode
    takes files in order whatever their names — IPT ``controllers/videos.ts``)."""
    body = _with_async(dict(fields), async_mode=async_mode, callback_url=callback_url, extra=extra)
    if frames and all(frame.url is not None for frame in frames):
        body["file_paths"] = [frame.url for frame in frames]
        frames = ()
    files = [
        _file_part(f"image_file_{index}", frame, index)
        for index, frame in enumerate(frames, start=1)
    ]
    return _submit(endpoint, "/v1/videos/generations", body, files, timeout=timeout)


def build_openai_image(
    endpoint: Endpoint,
    fields: Mapping[str, Any],
    images: Sequence[ImageInput],
    *,
    extra: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Call:
    """A relay's ``/v1/images/generations`` (JSON, ``image`` as URL) or ``/v1/images/edits``
    (multipart with the reference images) (§10)."""
    body = dict(fields)
    if extra:
        body.update(extra)
    if images and all(image.url is not None for image in images):
        body["image"] = images[0].url if len(images) == 1 else [image.url for image in images]
        images = ()
    if not images:
        return _submit(endpoint, "/v1/images/generations", body, (), timeout=timeout)
    files = [_file_part("image", image, index) for index, image in enumerate(images, start=1)]
    return _submit(endpoint, "/v1/images/edits", body, files, timeout=timeout)


def build_probe(endpoint: Endpoint) -> Call:
    """§21.7: the one harmless request that tells DZ from IPT (no auth, no upstream call).
    The answer's envelope is read by :func:`parse_probe`, not raised."""
    call = _call(endpoint, "GET", "/v1/tasks/?limit=1", purpose="probe", idempotent=True)
    return attrs.evolve(call, check=_probe_check)


def _probe_check(response: Response) -> None:
    if response.status >= 400 or response.json() is None:
        check_response(response, backend="gateway")


def build_get_task(endpoint: Endpoint, task_id: str) -> Call:
    return _call(
        endpoint, "GET", f"/v1/tasks/{quote(task_id, safe='')}", purpose="poll", idempotent=True
    )


def wire_statuses(status: str) -> tuple[str, ...]:
    """A ``tasks.list`` status filter as the gateway words to ask for (one request each)."""
    word = str(status.value if isinstance(status, TaskStatus) else status).strip().lower()
    words = _LIST_STATUS.get(word, (word,))
    if any(item not in STATUS for item in words):
        raise ValidationError(
            "status", f"unknown task status {status!r}", allowed=sorted({*STATUS, *_LIST_STATUS})
        )
    return words


def build_list_tasks(
    endpoint: Endpoint, *, status: str | None, kind: str | None, limit: int | None
) -> list[Call]:
    """One call per gateway status word the filter stands for (one call without a filter)."""
    # §8b: only "/v1/tasks/" (trailing slash) is routed; "/v1/tasks?…" is the -1000 route error.
    query: dict[str, str] = {}
    if kind is not None:
        word = str(kind.value if isinstance(kind, TaskKind) else kind).strip().lower()
        if word not in _LIST_TYPES:
            raise ValidationError("kind", f"unknown task type {kind!r}", allowed=_LIST_TYPES)
        query["type"] = word
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
            raise ValidationError("limit", f"must be a positive integer, got {limit!r}")
        query["limit"] = str(limit)
    filters = [{"status": word} for word in wire_statuses(status)] if status is not None else [{}]
    calls = []
    for extra in filters:
        params = {**extra, **query}
        path = "/v1/tasks/" + (f"?{urlencode(params)}" if params else "")
        calls.append(_call(endpoint, "GET", path, purpose="list", idempotent=True))
    return calls


def merge_task_lists(lists: Sequence[Sequence[Task]], limit: int | None) -> list[Task]:
    """Several filtered answers as one list, newest first (the gateway's own order)."""
    if len(lists) == 1:
        return list(lists[0])
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    merged = sorted(
        (task for tasks in lists for task in tasks),
        key=lambda task: task.created_at or oldest,
        reverse=True,
    )
    return merged[:limit] if limit is not None else merged


def build_cancel(endpoint: Endpoint, task_id: str) -> Call:
    # Cancelling twice is harmless (the second says "cancelled, cannot cancel"): resend freely.
    return _call(
        endpoint,
        "POST",
        f"/v1/tasks/{quote(task_id, safe='')}/cancel",
        purpose="cancel",
        idempotent=True,
    )


def build_token_check(endpoint: Endpoint, token: str) -> Call:
    return _call(
        endpoint,
        "POST",
        "/token/check",
        body=dumps({"token": token}),
        content_type="application/json",
        purpose="token",
        idempotent=True,
    )


def build_token_points(endpoint: Endpoint) -> Call:
    return _call(endpoint, "POST", "/token/points", purpose="token", idempotent=True)


def build_token_receive(endpoint: Endpoint) -> Call:
    # Claims only when the balance is at or below zero (§8a), so a resend cannot claim twice.
    return _call(endpoint, "POST", "/token/receive", purpose="token", idempotent=True)


# -- parsing -------------------------------------------------------------------------------------


def _json(response: Response, backend: str) -> Any:
    payload = response.json()
    if payload is None:
        raise APIError(
            "answer is not JSON", status_code=response.status, backend=backend, body=None
        )
    return payload


def _object(response: Response, backend: str) -> Mapping[str, Any]:
    payload = _json(response, backend)
    if not isinstance(payload, Mapping):
        raise APIError(
            "answer is not a JSON object",
            status_code=response.status,
            backend=backend,
            body=payload,
        )
    return payload


def status_of(word: Any) -> TaskStatus:
    return STATUS.get(str(word or ""), TaskStatus.UNKNOWN)


def _kind(type_word: Any, default: TaskKind) -> TaskKind:
    if type_word == "video":
        return TaskKind.VIDEO
    if type_word in ("image", "composition"):
        return TaskKind.IMAGE
    return default


def _time(value: Any) -> datetime | None:
    """DZ stores unix seconds (``task-store.ts``); milliseconds and ISO text are tolerated."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def parse_result(
    payload: Mapping[str, Any],
    *,
    kind: TaskKind,
    task_id: str,
    model: str | None,
    backend: str,
) -> ImageResult | VideoResult | None:
    """The synchronous answer ``{created, data: [{url} | {b64_json}]}`` as a result, or
    ``None`` when it holds no output. A task's ``result`` is the same document (§8b)."""
    data_items = payload.get("data")
    if not isinstance(data_items, list):
        data_items = []
    items = [item for item in data_items if isinstance(item, Mapping)]
    media: list[tuple[str | None, bytes | None]] = []
    for item in items:
        url = item.get("url")
        encoded = item.get("b64_json")
        try:
            data = decode_base64(str(encoded)) if encoded else None
        except DownloadError:
            # One broken item must not discard the rest of a paid result; with none usable,
            # the caller reports the task as finished without output.
            data = None
        if url or data is not None:
            media.append((str(url) if url else None, data))
    if not media:
        return None
    if kind is TaskKind.VIDEO:
        url, data = media[0]
        first: Mapping[str, Any] = items[0] if items else {}

        def extra(name: str) -> str | None:
            # DZ's video extras (controllers/videos.ts): the record, the item, both links.
            return str(first[name]) if first.get(name) else None

        video = Video(
            url=url,
            data=data,
            content_type="video/mp4",
            history_id=extra("history_id"),
            item_id=extra("item_id"),
            preview_url=extra("preview_url"),
            hq_url=extra("hq_url"),
        )
        return VideoResult(
            video=video,
            task_id=task_id,
            model=model,
            backend=backend,
            raw=payload,
        )
    return ImageResult(
        images=tuple(Image(url=url, data=data) for url, data in media),
        task_id=task_id,
        model=model,
        backend=backend,
        raw=payload,
    )


def _sync_id() -> str:
    # A synchronous answer has no server task id: a local one, unique per answer (two identical
    # answers are still two tasks).
    return f"sync-{secrets.token_hex(8)}"


def _sync_task(
    response: Response,
    payload: Mapping[str, Any],
    *,
    kind: TaskKind,
    model: str | None,
    backend: str,
) -> Task:
    task_id = _sync_id()
    result = parse_result(payload, kind=kind, task_id=task_id, model=model, backend=backend)
    created = _time(payload.get("created"))
    failure = None if result is not None else TaskFailure(message="answer holds no output")
    return Task(
        id=task_id,
        kind=kind,
        status=TaskStatus.SUCCEEDED if result is not None else TaskStatus.FAILED,
        backend=backend,
        ref=task_id,
        model=model,
        raw_status="completed" if result is not None else "failed",
        created_at=created,
        completed_at=created,
        result=result,
        failure=failure,
        raw=payload,
        context={"sync": True},
    )


def parse_submit(
    response: Response, *, kind: TaskKind, model: str | None, backend: str = "gateway"
) -> Task:
    """A submit's answer: ``{task_id, status}`` in task mode (§8b), or the finished result when
    the gateway answered synchronously (task mode off, or a gateway without it, §8a)."""
    payload = _object(response, backend)
    task_id = payload.get("task_id")
    if task_id:
        raw_status = str(payload.get("status") or "pending")
        return Task(
            id=str(task_id),
            kind=kind,
            status=status_of(raw_status),
            backend=backend,
            ref=str(task_id),
            model=model,
            raw_status=raw_status,
            raw=payload,
        )
    if isinstance(payload.get("data"), list):
        return _sync_task(response, payload, kind=kind, model=model, backend=backend)
    raise APIError(
        "submit answer carries neither task_id nor data",
        status_code=response.status,
        backend=backend,
        body=payload,
    )


def _envelope_message(error: APIError) -> str:
    body = error.body
    if isinstance(body, Mapping) and isinstance(body.get("message"), str) and body["message"]:
        return str(body["message"])
    return error.message


def failed_sync_task(
    error: APIError, *, kind: TaskKind, model: str | None, backend: str = "gateway"
) -> Task:
    """A synchronous generation that ran and failed (-2007/-2008), as a failed task: the same
    shape an async task that failed has, so ``result()`` raises TaskFailedError either way.

    The local id is random: two requests failing with the same message are two tasks."""
    task_id = f"sync-failed-{secrets.token_hex(8)}"
    return Task(
        id=task_id,
        kind=kind,
        status=TaskStatus.FAILED,
        backend=backend,
        ref=task_id,
        model=model,
        raw_status="failed",
        # The gateway's own words: the engine's "may have been accepted" advice does not apply
        # to a generation the gateway says ran and failed.
        failure=TaskFailure(code=error.code, message=_envelope_message(error)),
        raw=error.body if isinstance(error.body, Mapping) else {},
        context={"sync": True},
    )


def parse_task(payload: Mapping[str, Any], *, backend: str = "gateway") -> Task:
    """A task record (``GET /v1/tasks/:id``, list entries, webhook bodies; §8b)."""
    task_id = payload.get("task_id") or payload.get("id")
    if not task_id:
        raise APIError("task record carries no task_id", backend=backend, body=payload)
    task_id = str(task_id)
    type_word = payload.get("type")
    kind = _kind(type_word, TaskKind.IMAGE)
    raw_status = payload.get("status")
    status = status_of(raw_status)
    model = str(payload["model"]) if payload.get("model") else None
    result: ImageResult | VideoResult | None = None
    failure: TaskFailure | None = None
    if status is TaskStatus.SUCCEEDED:
        outcome = payload.get("result")
        if isinstance(outcome, Mapping):
            result = parse_result(outcome, kind=kind, task_id=task_id, model=model, backend=backend)
        if result is None:
            status = TaskStatus.FAILED
            failure = TaskFailure(message="task completed without output")
    elif status is TaskStatus.FAILED:
        failure = TaskFailure(message=str(payload.get("error") or "generation failed"))
    return Task(
        id=task_id,
        kind=kind,
        status=status,
        backend=backend,
        ref=task_id,
        model=model,
        raw_status=str(raw_status) if raw_status is not None else None,
        created_at=_time(payload.get("created_at")),
        updated_at=_time(payload.get("updated_at")),
        completed_at=_time(payload.get("completed_at")),
        failure=failure,
        result=result,
        queue=parse_queue_stats(payload.get("queue_stats")),
        raw=payload,
        context={"type": type_word} if type_word else {},
    )


def parse_queue_stats(value: Any) -> QueueStats | None:
    """DZ's ``queue_stats: {running, queued, maxConcurrent}`` (§8b)."""
    if not isinstance(value, Mapping):
        return None
    limit = value.get("maxConcurrent")
    return QueueStats(
        running=_int(value.get("running")),
        queued=_int(value.get("queued")),
        max_concurrent=_int(limit) if limit is not None else None,
    )


def parse_probe(response: Response) -> bool:
    """§21.7: whether ``GET /v1/tasks/?limit=1`` showed a task store (DZ) or the route error
    (IPT). Decided by the body's shape; the status is 200 either way."""
    payload = response.json()
    return isinstance(payload, Mapping) and isinstance(payload.get("tasks"), list)


def parse_task_list(response: Response, *, backend: str = "gateway") -> list[Task]:
    payload = _object(response, backend)
    tasks = payload.get("tasks")
    if not isinstance(tasks, list):
        return []
    return [parse_task(item, backend=backend) for item in tasks if isinstance(item, Mapping)]


def parse_cancel(response: Response, task: Task, *, backend: str = "gateway") -> Task:
    """``{task_id, status: "cancelled", message}`` (§8b)."""
    payload = _object(response, backend)
    raw_status = str(payload.get("status") or "cancelled")
    return attrs.evolve(
        task,
        status=status_of(raw_status),
        raw_status=raw_status,
        result=None,
        raw=payload,
    )


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def parse_balances(response: Response, *, backend: str = "gateway") -> list[AccountBalance]:
    """``/token/points`` and ``/token/receive`` answers: one entry per session, named by a
    fingerprint (the raw token the gateway echoes is dropped here)."""
    payload = _json(response, backend)
    if not isinstance(payload, list):
        raise APIError("credits answer is not a list", backend=backend, body=None)
    balances = []
    for entry in payload:
        if not isinstance(entry, Mapping):
            continue
        token = str(entry.get("token") or "")
        points = entry.get("points") or entry.get("credits") or {}
        if not isinstance(points, Mapping):
            points = {}
        received = entry.get("received")
        balances.append(
            AccountBalance(
                session=fingerprint(token),
                gift=_int(points.get("giftCredit", points.get("gift_credit"))),
                purchase=_int(points.get("purchaseCredit", points.get("purchase_credit"))),
                vip=_int(points.get("vipCredit", points.get("vip_credit"))),
                region=region_of(token) if token else None,
                claimed=bool(received) if received is not None else None,
            )
        )
    return balances


def parse_check(response: Response, token: str, *, backend: str = "gateway") -> SessionStatus:
    """``/token/check`` → ``{live}``. International sessions always answer ``false`` there
    (the passport path is a 404 on the international hosts, dreamina-web.md §7.4): unknown."""
    payload = _object(response, backend)
    live = bool(payload.get("live"))
    region = region_of(token)
    if not live and region != "cn":
        return SessionStatus(
            session=fingerprint(token),
            live=None,
            region=region,
            note="the gateway cannot check international sessions (always answers false)",
        )
    return SessionStatus(session=fingerprint(token), live=live, region=region)
