"""The Ark (方舟) backend: Seedream images and Seedance videos with a bearer API key
(protocols/volcengine.md §12)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal

import attrs

from jimeng import _logging
from jimeng._http import Flow, Response
from jimeng.backends._base import Backend
from jimeng.backends._capabilities import Capabilities, ModelCapabilities
from jimeng.backends._endpoint import check_endpoint
from jimeng.backends._sizing import RATIOS, RESOLUTIONS
from jimeng.backends.ark import _wire
from jimeng.backends.ark._errors import failure_class
from jimeng.backends.ark._models import (
    DEFAULT_IMAGE_MODEL,
    DEFAULT_VIDEO_MODEL,
    IMAGE_MODELS,
    VIDEO_MODELS,
    VIDEO_RATIOS,
    ArkImageModel,
    ArkVideoModel,
    model_for,
    model_ids,
)
from jimeng.errors import (
    APIError,
    ConfigurationError,
    InvalidRequestError,
    JimengError,
    NotFoundError,
    TaskNotCancellableError,
    ValidationError,
)
from jimeng.models import ImageRequest, Task, TaskKind, TaskStatus, VideoRequest
from jimeng.models._checks import (
    boolean,
    check_argument,
    mapping_of_str,
    number,
    required,
    secret_text,
    text,
)

__all__ = ["HOSTS", "Ark"]

Region = Literal["cn", "byteplus"]
#: §12.1: data-plane base URLs (API keys are bound to one of them).
HOSTS: Mapping[str, str] = {
    "cn": "https://ark.cn-beijing.volces.com/api/v3",
    "byteplus": "https://ark.ap-southeast.bytepluses.com/api/v3",
}
#: §12.2: the images call blocks until every image exists; the official SDK waits 600 s.
DEFAULT_IMAGE_TIMEOUT = 600.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Ark(Backend):
    """Seedream and Seedance through Ark.

    ``api_key`` is the Ark API key (``ARK_API_KEY`` when not given); keys are bound to a region:
    ``region="cn"`` (default, ``ark.cn-beijing.volces.com``) or ``"byteplus"``
    (``ark.ap-southeast.bytepluses.com``, model ids without the ``doubao-`` prefix).
    ``base_url`` (``ARK_BASE_URL``) replaces the host, path ``/api/v3`` included. ``models``
    maps a public name to another model id or to an endpoint id (``ep-…``), e.g.
    ``models={"seedance-1.0-pro": "ep-20250101-abcde"}``.
    """

    name: ClassVar[str] = "ark"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        region: Region | None = None,
        base_url: str | None = None,
        models: Mapping[str, str] | None = None,
        allow_http: bool = False,
        image_timeout: float = DEFAULT_IMAGE_TIMEOUT,
    ):
        check_argument("api_key", api_key, secret_text())
        check_argument("region", region, text())
        check_argument("base_url", base_url, text())
        check_argument("models", models, mapping_of_str(values=True))
        check_argument("allow_http", allow_http, required(boolean()))
        check_argument("image_timeout", image_timeout, required(number(positive=True)))
        key = api_key or os.environ.get("ARK_API_KEY")
        if not key:
            raise ConfigurationError(
                "Ark needs an API key: pass api_key= or set ARK_API_KEY (AK/SK is refused by "
                "Ark for Seedream and Seedance calls)"
            )
        _logging.register_secret(key)
        self._key = key
        chosen = region or os.environ.get("ARK_REGION") or "cn"
        if chosen not in HOSTS:
            raise ConfigurationError(
                f"unknown Ark region {chosen!r}; choose from {', '.join(HOSTS)}"
            )
        self.region: Region = chosen  # type: ignore[assignment]
        url = check_endpoint(
            base_url or os.environ.get("ARK_BASE_URL") or HOSTS[self.region], allow_http=allow_http
        )
        self.base_url = str(url).rstrip("/")
        self.image_timeout = image_timeout
        self._ids = model_ids(
            models or {}, byteplus=self.region == "byteplus", known=(IMAGE_MODELS, VIDEO_MODELS)
        )
        #: The id sent → the public name results report.
        self._names = {model_id: name for name, model_id in self._ids.items()}
        self._endpoint = _wire.Endpoint(
            base=self.base_url, headers={"Authorization": f"Bearer {key}"}
        )

    def __repr__(self) -> str:
        return f"Ark(base_url={self.base_url!r}, region={self.region!r})"

    def limit_key(self) -> str:
        """One limit per API key and host (§12.4: quotas are per account and model)."""
        return f"{self.name}:{self.account()}"

    def account(self) -> str:
        """The API key's fingerprint and the host: a task is the account's own, in its region
        (the journal's fingerprint of where requests go does not name the host)."""
        return f"{_logging.fingerprint(self._key)}@{self.base_url}"

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "base_url": self.base_url,
            "region": self.region,
            "models": dict(self._ids),
        }

    @property
    def image_models(self) -> list[str]:
        return list(IMAGE_MODELS)

    @property
    def video_models(self) -> list[str]:
        return list(VIDEO_MODELS)

    def capabilities(self) -> Capabilities:
        images = [
            ModelCapabilities(
                name=spec.name,
                kind=TaskKind.IMAGE,
                ratios=() if spec.adaptive_only else RATIOS,
                resolutions=() if spec.adaptive_only else RESOLUTIONS,
                sizes=spec.sizes,
                max_images=spec.max_images,
            )
            for spec in IMAGE_MODELS.values()
        ]
        videos = [
            ModelCapabilities(
                name=spec.name,
                kind=TaskKind.VIDEO,
                ratios=VIDEO_RATIOS,
                resolutions=spec.resolutions,
                durations=tuple(range(spec.durations[0], spec.durations[1] + 1)),
                max_images=max(
                    spec.max_references, 2 if spec.last_frame else int(spec.first_frame)
                ),
            )
            for spec in VIDEO_MODELS.values()
        ]
        return Capabilities(
            backend=self.name,
            models=(*images, *videos),
            features=frozenset({"async_submit", "cancel", "list", "webhooks", "multi_image"}),
            sizing="presets, or exact WxH within each model's pixel bounds; ratio × resolution "
            "→ the recommended sizes; out-of-range sizes scaled, with a note",
        )

    def _image(self, model: str | None) -> tuple[ArkImageModel, str]:
        spec, model_id = model_for(
            model, IMAGE_MODELS, self._ids, default=DEFAULT_IMAGE_MODEL, what="image"
        )
        return spec, model_id

    def _video(self, model: str | None) -> tuple[ArkVideoModel, str]:
        spec, model_id = model_for(
            model, VIDEO_MODELS, self._ids, default=DEFAULT_VIDEO_MODEL, what="video"
        )
        return spec, model_id

    # -- validation ----------------------------------------------------------------------------

    def validate_image(self, request: ImageRequest) -> None:
        if request.callback_url is not None:
            raise ValidationError(
                "callback_url", "Ark answers image requests synchronously; there is no callback"
            )
        self._image(request.model)[0].validate(request)

    def validate_video(self, request: VideoRequest) -> None:
        if request.mode is not None:
            raise ValidationError(
                "mode",
                "Ark has no video modes: pick a model, and give image/tail_image or "
                "reference_images",
                allowed=list(VIDEO_MODELS),
            )
        self._video(request.model)[0].validate(request)

    # -- flows ---------------------------------------------------------------------------------

    def submit_image(self, request: ImageRequest) -> Flow[Task]:
        spec, model_id = self._image(request.model)
        client_id = uuid.uuid4().hex
        response: Response = yield _wire.build_image_generation(
            self._endpoint,
            spec.body(request, model_id),
            client_request_id=client_id,
            timeout=self.image_timeout,
        )
        task = _wire.parse_image_generation(
            response,
            task_id=f"sync-{client_id}",
            model_name=spec.name,
            backend=self.name,
            now=_now(),
        )
        return attrs.evolve(task, notes=spec.notes(request))

    def submit_video(self, request: VideoRequest) -> Flow[Task]:
        spec, model_id = self._video(request.model)
        response: Response = yield _wire.build_create_task(
            self._endpoint, spec.body(request, model_id), client_request_id=uuid.uuid4().hex
        )
        return _wire.parse_create_task(response, model_name=spec.name, backend=self.name)

    def _not_stored(self, task: Task, action: str) -> JimengError:
        return NotFoundError(
            f"Ark answered image request {task.id} synchronously; there is no task to {action}",
            backend=self.name,
            task_id=task.id,
            task_ref=task.ref,
        )

    def poll(self, task: Task) -> Flow[Task]:
        if task.kind is TaskKind.IMAGE or task.id.startswith("sync-"):
            raise self._not_stored(task, "poll")
        response: Response = yield _wire.build_get_task(self._endpoint, task.id)
        payload = response.json()
        if not isinstance(payload, Mapping):
            raise APIError("task answer is not a JSON object", backend=self.name, task_id=task.id)
        latest = _wire.parse_task(
            payload,
            backend=self.name,
            now=_now(),
            model_name=self._names.get(str(payload.get("model"))),
        )
        # The id asked for is the id: a body that omits it still describes this task.
        return attrs.evolve(latest, id=task.id, ref=task.ref)

    def resume(self, ref: str, *, model: str | None = None) -> Task:
        ref = ref.strip()
        image = ref.startswith("sync-")
        return Task(
            id=ref,
            kind=TaskKind.IMAGE if image else TaskKind.VIDEO,
            status=TaskStatus.UNKNOWN,
            backend=self.name,
            ref=ref,
            model=model,
        )

    def cancel(self, task: Task) -> Flow[Task]:
        """§12.3: DELETE cancels a *queued* task but deletes the record of a finished one, so the
        task is looked at first and only a queued task is sent the DELETE."""
        if task.kind is TaskKind.IMAGE or task.id.startswith("sync-"):
            raise self._not_stored(task, "cancel")
        answer: Response = yield _wire.build_get_task(self._endpoint, task.id)
        payload = answer.json()
        state = _wire.parse_task(
            payload if isinstance(payload, Mapping) else {}, backend=self.name, now=_now()
        )
        if state.status is TaskStatus.CANCELLED:
            return state
        if state.status is not TaskStatus.QUEUED:
            raise self._not_cancellable(task, state.raw_status, None)
        try:
            yield _wire.build_delete_task(self._endpoint, task.id)
        except InvalidRequestError as refusal:
            # Started between the look and the DELETE: Ark refuses running tasks.
            raise self._not_cancellable(task, "running", refusal) from refusal
        except APIError as error:
            error.attach_task(task.id, task.ref)
            raise
        return Task(
            id=task.id,
            kind=TaskKind.VIDEO,
            status=TaskStatus.CANCELLED,
            backend=self.name,
            ref=task.ref,
            model=state.model,
            raw_status="cancelled",
            raw=state.raw,
        )

    def _not_cancellable(
        self, task: Task, status: str | None, refusal: APIError | None
    ) -> TaskNotCancellableError:
        where = f"already {status}" if status else "not queued"
        return TaskNotCancellableError(
            f"task {task.id} cannot be cancelled: it is {where}; Ark cancels queued tasks only. "
            f"A running task keeps running and is billed: wait for it with "
            f"client.tasks.wait({task.ref!r})",
            status=status,
            code=refusal.code if refusal else None,
            status_code=refusal.status_code if refusal else None,
            request_id=refusal.request_id if refusal else None,
            backend=self.name,
            body=refusal.body if refusal else None,
            task_id=task.id,
            task_ref=task.ref,
        )

    def list_tasks(
        self, *, status: str | None, kind: str | None, limit: int | None
    ) -> Flow[Sequence[Task]]:
        """Video tasks of the last 7 days, newest first, page by page until ``limit``."""
        if kind not in (None, "video"):
            if kind == "image":
                return []  # images are synchronous on Ark: never stored as tasks
            raise ValidationError("kind", f"unknown kind {kind!r}", allowed=["image", "video"])
        word = None
        if status is not None:
            word = _wire.LIST_FILTERS.get(status.strip().lower())
            if word is None:
                raise ValidationError(
                    "status", f"Ark cannot filter by {status!r}", allowed=list(_wire.LIST_FILTERS)
                )
        if limit is not None and limit < 1:
            raise ValidationError("limit", f"must be positive, got {limit}")
        page_size = min(limit or _wire.MAX_PAGE_SIZE, _wire.MAX_PAGE_SIZE)
        tasks: list[Task] = []
        for page in range(1, _wire.MAX_PAGES + 1):
            response: Response = yield _wire.build_list_tasks(
                self._endpoint, page_num=page, page_size=page_size, status=word
            )
            items, total = _wire.parse_task_list(
                response, backend=self.name, now=_now(), names=self._names
            )
            tasks.extend(items)
            if not items or len(tasks) >= total or (limit is not None and len(tasks) >= limit):
                break
        return tasks[:limit] if limit is not None else tasks

    def failure_error(self, task: Task) -> JimengError | None:
        """A task refused by moderation is a :class:`ContentPolicyError` (with its id)."""
        if task.failure is None:
            return None
        cls = failure_class(task.failure.code)
        if cls is None:
            return None
        return cls(
            task.failure.message or "refused by content moderation",
            code=task.failure.code,
            backend=self.name,
            body=task.raw,
            task_id=task.id,
            task_ref=task.ref,
        )
