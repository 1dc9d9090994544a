"""The gateway backend: a self-hosted jimeng-api service, or a relay with an OpenAI surface.

A jimeng-api gateway (iptag/jimeng-api) holds Dreamina session ids and answers synchronously;
its async-task fork (DerekZhang90/jimeng-api) adds ``async: true``, ``/v1/tasks`` and webhooks
(protocols/gateway.md §8). OpenAI-compatible relays answer ``/v1/images/generations`` and
``/v1/images/edits`` synchronously behind a bearer API key (§10).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import attrs

from jimeng import _logging
from jimeng._http import Call, Flow, Response
from jimeng.backends._base import AccountBalance, Backend, NotSupportedError, SessionStatus
from jimeng.backends._capabilities import Capabilities, ModelCapabilities
from jimeng.backends._endpoint import check_endpoint
from jimeng.backends.gateway import _params, _wire
from jimeng.backends.gateway._errors import (
    GENERATION_FAILED,
    failure_error,
    refused_cancel_status,
)
from jimeng.backends.gateway._models import (
    DEFAULT_IMAGE_MODEL,
    DEFAULT_VIDEO_MODEL,
    IMAGE_MODELS,
    IMAGE_RATIOS,
    IMAGE_RESOLUTIONS,
    VIDEO_MODELS,
    VIDEO_RATIOS,
)
from jimeng.errors import (
    APIError,
    ConfigurationError,
    InvalidRequestError,
    JimengError,
    NotFoundError,
    ServerError,
    TaskNotCancellableError,
)
from jimeng.models import ImageRequest, Task, TaskKind, TaskStatus, VideoRequest
from jimeng.models._checks import (
    boolean,
    check_argument,
    number,
    required,
    secret_list,
    secret_text,
    text,
)

__all__ = ["DEFAULT_URL", "Flavor", "Gateway"]

#: jimeng-api's ``configs/dev/service.yml`` port (§8a; the code default without it is 5566).
DEFAULT_URL = "http://localhost:5100"
#: IPT waits up to 1200 s for a video (``SmartPoller`` in ``controllers/videos.ts``) before it
#: answers a synchronous call; a shorter client timeout would lose a paid, unresumable video.
DEFAULT_VIDEO_TIMEOUT = 1260.0
#: IPT polls an image for up to 1800 s before answering a synchronous call (dreamina-web.md §5.5).
DEFAULT_IMAGE_TIMEOUT = 1860.0

Flavor = Literal["jimeng-api", "openai"]
_FLAVORS = ("jimeng-api", "openai")
_TRUE = ("1", "true", "yes", "on")


def _tokens(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]


def _flag(name: str) -> bool | None:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    return raw.strip().lower() in _TRUE


#: The gateway's words for a finished task, in the plain terms of a refused cancel.
_FINISHED_WORDS = {
    "completed": "succeeded",
    "succeeded": "succeeded",
    "success": "succeeded",
    "failed": "failed",
}


class Gateway(Backend):
    """Jimeng through a gateway.

    ``url`` is the service's base URL, path prefix included (``JIMENG_GATEWAY_URL``, default
    ``http://localhost:5100``); plain http is refused for anything but loopback unless
    ``allow_http=True``.

    **jimeng-api** (``flavor="jimeng-api"``, the default): ``token`` is one Dreamina session id
    or several (a list, or a comma-separated string; ``us-``/``hk-``/``jp-``/``sg-`` prefixes
    pick the site). When not given it comes from ``JIMENG_GATEWAY_TOKEN``, else
    ``JIMENG_SESSION_ID``. ``async_tasks=True`` (or ``JIMENG_GATEWAY_ASYNC=1``) submits with
    ``async: true`` so ``submit()`` returns at once with a task id; a call that passes
    ``callback_url=`` is always submitted that way. A gateway without the task mode answers
    synchronously anyway: the handle then comes back finished.

    **OpenAI-compatible relay** (``flavor="openai"``, implied by ``api_key=``): ``api_key`` is
    the relay's bearer key (``JIMENG_GATEWAY_API_KEY``); images only, synchronous.

    ``video_timeout`` and ``image_timeout`` bound a submit, which a synchronous gateway (and an
    OpenAI-compatible relay) answers only when the generation is done: up to 20 minutes for a
    video and 30 for images. A shorter timeout would lose a paid result that has no id to resume.
    """

    name: ClassVar[str] = "gateway"

    def __init__(
        self,
        url: str | None = None,
        token: str | Sequence[str] | None = None,
        *,
        api_key: str | None = None,
        flavor: Flavor | None = None,
        async_tasks: bool | None = None,
        allow_http: bool = False,
        video_timeout: float = DEFAULT_VIDEO_TIMEOUT,
        image_timeout: float = DEFAULT_IMAGE_TIMEOUT,
    ):
        check_argument("url", url, text())
        check_argument("token", token, secret_list())
        check_argument("api_key", api_key, secret_text())
        check_argument("flavor", flavor, text())
        check_argument("async_tasks", async_tasks, boolean())
        check_argument("allow_http", allow_http, required(boolean()))
        check_argument("video_timeout", video_timeout, required(number(positive=True)))
        check_argument("image_timeout", image_timeout, required(number(positive=True)))
        chosen = flavor or os.environ.get("JIMENG_GATEWAY_FLAVOR") or None
        if chosen is None:
            relay = api_key is not None or (
                token is None and bool(os.environ.get("JIMENG_GATEWAY_API_KEY"))
            )
            chosen = "openai" if relay else "jimeng-api"
        if chosen not in _FLAVORS:
            raise ConfigurationError(
                f"unknown gateway flavor {chosen!r}; choose from {', '.join(_FLAVORS)}"
            )
        self.flavor: Flavor = chosen  # type: ignore[assignment]
        self._tokens: list[str] = []
        self._api_key: str | None = None
        if self.flavor == "openai":
            if token is not None:
                raise ConfigurationError(
                    "an OpenAI-compatible relay takes api_key=, not session tokens"
                )
            self._api_key = api_key or os.environ.get("JIMENG_GATEWAY_API_KEY") or None
            if not self._api_key:
                raise ConfigurationError(
                    "an OpenAI-compatible relay needs its API key: pass api_key= or set "
                    "JIMENG_GATEWAY_API_KEY"
                )
            bearer = self._api_key
        else:
            if api_key is not None:
                raise ConfigurationError(
                    "a jimeng-api gateway authenticates with Dreamina session ids (token=); "
                    "api_key= is for OpenAI-compatible relays (flavor='openai')"
                )
            self._tokens = _tokens(
                token
                if token is not None
                else os.environ.get("JIMENG_GATEWAY_TOKEN") or os.environ.get("JIMENG_SESSION_ID")
            )
            if not self._tokens:
                raise ConfigurationError(
                    "a jimeng-api gateway needs a Dreamina session id: pass token= or set "
                    "JIMENG_GATEWAY_TOKEN (or JIMENG_SESSION_ID)"
                )
            bearer = ",".join(self._tokens)  # §2.4: several sessions, comma-separated
        for secret in (self._api_key, bearer):
            _logging.register_secret(secret)
        for token in self._tokens:
            for secret in _params.token_secrets(token):
                _logging.register_secret(secret)
        self._account = _logging.fingerprint(bearer)
        parsed = check_endpoint(
            url or os.environ.get("JIMENG_GATEWAY_URL") or DEFAULT_URL, allow_http=allow_http
        )
        self.url = str(parsed.with_query(None).with_fragment(None)).rstrip("/")
        if async_tasks is None:
            async_tasks = _flag("JIMENG_GATEWAY_ASYNC")
        #: ``True``/``False`` as configured; ``None``: asked of the gateway once (§21.7).
        self.async_tasks = async_tasks
        self.video_timeout = video_timeout
        self.image_timeout = image_timeout
        #: What the gateway showed about its task mode: ``None`` until a submit or task call
        #: told, ``False`` once it answered an ``async: true`` submit synchronously.
        self.task_mode: bool | None = None
        self._regions = frozenset(_params.region_of(t) for t in self._tokens)
        self._endpoint = _wire.Endpoint(
            base=self.url,
            headers={"Authorization": f"Bearer {bearer}"},
            sessions=tuple(_logging.fingerprint(t) for t in self._tokens)
            or (_logging.fingerprint(bearer),),
            backend=self.name,
        )

    def __repr__(self) -> str:
        if self.flavor == "openai":
            auth = f"api_key={_logging.fingerprint(self._api_key or '')!r}"
        else:
            auth = f"sessions={list(self.sessions)!r}"
        return (
            f"Gateway(url={self.url!r}, flavor={self.flavor!r}, {auth}, "
            f"async_tasks={self.async_tasks})"
        )

    @property
    def sessions(self) -> tuple[str, ...]:
        """Fingerprints of the session ids (never the ids)."""
        return tuple(_logging.fingerprint(t) for t in self._tokens)

    @property
    def regions(self) -> frozenset[str]:
        """The sites of the session ids (``cn``, ``us``, ``hk``, ``jp``, ``sg``)."""
        return self._regions

    def limit_key(self) -> str:
        """One limit per credential (session ids or relay key, fingerprinted) and gateway."""
        return f"{self.name}:{self._account}@{self.url}"

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "url": self.url,
            "flavor": self.flavor,
            "sessions": list(self.sessions),
            "regions": sorted(self._regions),
            "async_tasks": self.async_tasks,
            "task_mode": self.task_mode,
        }

    def capabilities(self) -> Capabilities:
        if self.flavor == "openai":
            return Capabilities(
                backend=self.name,
                sizing="size, ratio and resolution passed through; the relay decides",
            )
        regions = self._regions
        models = [
            ModelCapabilities(
                name=model.name,
                kind=TaskKind.IMAGE,
                ratios=IMAGE_RATIOS,
                resolutions=IMAGE_RESOLUTIONS,
                sizes="nearest ratio × resolution",
                max_images=10,
                regions=sorted(model.regions & regions),
            )
            for model in IMAGE_MODELS.values()
            if regions <= model.regions and not model.legacy
        ]
        models += [
            ModelCapabilities(
                name=model.name,
                kind=TaskKind.VIDEO,
                ratios=VIDEO_RATIOS,
                resolutions=model.resolutions,
                durations=model.durations,
                max_images=2,
                regions=sorted(model.regions & regions),
            )
            for model in VIDEO_MODELS.values()
            if regions <= model.regions
        ]
        features = {"credits", "claim", "check", "omni"}
        if self.async_tasks or (self.async_tasks is None and self.task_mode):
            features |= {"async_submit", "cancel", "list", "webhooks"}
        return Capabilities(
            backend=self.name,
            models=tuple(models),
            features=frozenset(features),
            sizing="ratio × resolution; WxH → the nearest entry of the same orientation, "
            "with a note",
        )

    # -- validation ----------------------------------------------------------------------------

    def validate_image(self, request: ImageRequest) -> None:
        if self.flavor == "openai":
            if request.callback_url is not None:
                raise NotSupportedError(
                    "OpenAI-compatible relays answer synchronously; no webhooks"
                )
            _params.validate_openai_image(request)
        else:
            _params.validate_image(request, regions=self._regions)

    def validate_video(self, request: VideoRequest) -> None:
        if self.flavor == "openai":  # protocols/gateway.md §10
            raise NotSupportedError(
                "OpenAI-compatible relays generate images only, not videos; a jimeng-api "
                "gateway generates both"
            )
        _params.validate_video(request, regions=self._regions)

    # -- submits -------------------------------------------------------------------------------

    def _probe(self) -> Flow[None]:
        """§21.7: once per backend, ``GET /v1/tasks/?limit=1`` tells a task-capable gateway
        (DZ: a task list) from one without tasks (IPT: the -1000 route error). Harmless: no
        auth, no upstream call. An explicit ``async_tasks=`` skips it."""
        if self.async_tasks is not None or self.task_mode is not None:
            return
        response: Response = yield _wire.build_probe(self._endpoint)
        self.task_mode = _wire.parse_probe(response)
        _logging.logger.info(
            "gateway at %s %s",
            self.url,
            "runs async tasks: submits return at once"
            if self.task_mode
            else "has no task mode: submits wait for the result",
        )

    def _asks_async(self, callback_url: str | None) -> bool:
        if self.async_tasks is not None:
            return self.async_tasks or callback_url is not None
        return bool(self.task_mode) or callback_url is not None

    def submit_image(self, request: ImageRequest) -> Flow[Task]:
        images = request.images or ()
        if self.flavor == "openai":
            call = _wire.build_openai_image(
                self._endpoint,
                _params.openai_image_fields(request),
                images,
                extra=request.extra,
                timeout=self.image_timeout,
            )
            return (yield from self._submit(call, TaskKind.IMAGE, request.model, asked=False))
        yield from self._probe()
        asked = self._asks_async(request.callback_url)
        sized, note = _params.image_size_fields(request, regions=self._regions)
        if note:
            _logging.logger.info("gateway: %s", note)
        call = _wire.build_image_submit(
            self._endpoint,
            {**_params.image_fields(request), **sized},
            images,
            async_mode=asked,
            callback_url=request.callback_url,
            extra=request.extra,
            timeout=self.image_timeout,
        )
        model = request.model or DEFAULT_IMAGE_MODEL
        task = yield from self._submit(call, TaskKind.IMAGE, model, asked=asked)
        if note:
            task = attrs.evolve(task, notes=(note,))
        return self._observed(task, asked=asked, callback_url=request.callback_url)

    def submit_video(self, request: VideoRequest) -> Flow[Task]:
        if self.flavor == "openai":
            raise NotSupportedError("OpenAI-compatible relays expose images only")
        yield from self._probe()
        asked = self._asks_async(request.callback_url)
        frames = list(request.reference_images or ()) or [
            frame for frame in (request.image, request.tail_image) if frame is not None
        ]
        call = _wire.build_video_submit(
            self._endpoint,
            _params.video_fields(request),
            frames,
            async_mode=asked,
            callback_url=request.callback_url,
            extra=request.extra,
            timeout=self.video_timeout,
        )
        model = request.model or DEFAULT_VIDEO_MODEL
        task = yield from self._submit(call, TaskKind.VIDEO, model, asked=asked)
        return self._observed(task, asked=asked, callback_url=request.callback_url)

    def _submit(self, call: Call, kind: TaskKind, model: str | None, *, asked: bool) -> Flow[Task]:
        try:
            response: Response = yield call
        except APIError as error:
            ran = error.code in GENERATION_FAILED or (
                not asked and isinstance(error, ServerError) and isinstance(error.code, int)
            )
            if ran:
                # The generation ran and failed (-2007/-2008, or upstream failing under a
                # synchronous call: -2001, -1000 "ENOTFOUND"): a failed task with a local id,
                # as async mode reports it, so one ``except TaskFailedError`` serves both.
                task = _wire.failed_sync_task(error, kind=kind, model=model, backend=self.name)
                _logging.logger.info(
                    "gateway: the synchronous generation failed (%s): task %s", error.code, task.id
                )
                return task
            raise
        return _wire.parse_submit(response, kind=kind, model=model, backend=self.name)

    def _observed(self, task: Task, *, asked: bool, callback_url: str | None) -> Task:
        if not asked:
            return task
        synchronous = bool(task.context.get("sync"))
        if synchronous and self.task_mode is not False:
            _logging.logger.info(
                "the gateway at %s answered an async submit synchronously: it has no task mode",
                self.url,
            )
        if synchronous and callback_url is not None:
            _logging.logger.warning(
                "the gateway at %s has no task mode: callback_url will never be called "
                "(the result came back with the submit)",
                self.url,
            )
        self.task_mode = not synchronous
        return task

    # -- tasks ---------------------------------------------------------------------------------

    def _require_task_mode(self, action: str) -> None:
        if self.flavor == "openai":
            raise NotSupportedError(f"OpenAI-compatible relays have no tasks to {action}")

    def _not_stored(self, task: Task, action: str) -> JimengError:
        return NotFoundError(
            f"task {task.id} was answered synchronously; the gateway keeps no record to {action}",
            backend=self.name,
            task_id=task.id,
            task_ref=task.ref,
        )

    def poll(self, task: Task) -> Flow[Task]:
        self._require_task_mode("poll")
        if task.context.get("sync") or task.id.startswith("sync-"):
            raise self._not_stored(task, "poll")
        try:
            response: Response = yield _wire.build_get_task(self._endpoint, task.id)
        except NotFoundError as error:
            if not task.done and task.status is not TaskStatus.UNKNOWN:
                # §8b: finished tasks are forgotten after TASK_EXPIRE_HOURS (or on a restart
                # without Redis); a task this client saw alive is expired, not a wrong id.
                return attrs.evolve(task, status=TaskStatus.EXPIRED, raw_status="not found")
            error.attach_task(task.id, task.ref)
            raise
        payload = response.json()
        if not isinstance(payload, Mapping):
            payload = {}
        latest = _wire.parse_task(payload, backend=self.name)
        self.task_mode = True
        if "type" not in payload:
            latest = attrs.evolve(latest, kind=task.kind)
        return latest

    def resume(self, ref: str, *, model: str | None = None) -> Task:
        ref = ref.strip()
        return Task(
            id=ref,
            kind=TaskKind.IMAGE,
            status=TaskStatus.UNKNOWN,
            backend=self.name,
            ref=ref,
            model=model,
            context={"sync": True} if ref.startswith("sync-") else {},
        )

    def cancel(self, task: Task) -> Flow[Task]:
        self._require_task_mode("cancel")
        if task.context.get("sync") or task.id.startswith("sync-"):
            raise InvalidRequestError(
                f"task {task.id} finished synchronously; there is nothing to cancel",
                backend=self.name,
                task_id=task.id,
                task_ref=task.ref,
            )
        try:
            response: Response = yield _wire.build_cancel(self._endpoint, task.id)
        except InvalidRequestError as error:
            status = refused_cancel_status(error.message)
            if status == "cancelled":  # a resend after a lost answer: it is cancelled already
                return attrs.evolve(task, status=TaskStatus.CANCELLED, raw_status=status)
            if status is None:
                error.attach_task(task.id, task.ref)
                raise
            finished = _FINISHED_WORDS.get(status)
            raise TaskNotCancellableError(
                f"task {task.id} already {finished}; nothing to cancel"
                if finished
                else f"task {task.id} cannot be cancelled: it is {status}; only pending or "
                "queued tasks can be cancelled",
                status=status,
                code=error.code,
                status_code=error.status_code,
                backend=self.name,
                body=error.body,
                task_id=task.id,
                task_ref=task.ref,
            ) from error
        except APIError as error:
            error.attach_task(task.id, task.ref)
            raise
        cancelled = _wire.parse_cancel(response, task, backend=self.name)
        # The cancel answer carries only id and status; the record says what the task was
        # (a task resumed by id alone is otherwise reported as an image with no model).
        try:
            record: Response = yield _wire.build_get_task(self._endpoint, task.id)
        except APIError as error:
            _logging.logger.info("gateway: task %s cancelled; record not read: %s", task.id, error)
            return cancelled
        payload = record.json()
        if not isinstance(payload, Mapping) or payload.get("status") != cancelled.raw_status:
            return cancelled
        latest = _wire.parse_task(payload, backend=self.name)
        return attrs.evolve(latest, kind=latest.kind if "type" in payload else task.kind)

    def list_tasks(
        self, *, status: str | None, kind: str | None, limit: int | None
    ) -> Flow[Sequence[Task]]:
        self._require_task_mode("list")
        calls = _wire.build_list_tasks(self._endpoint, status=status, kind=kind, limit=limit)
        lists = []
        for call in calls:
            try:
                response: Response = yield call
            except NotFoundError as error:
                self.task_mode = False
                raise NotSupportedError(
                    f"the gateway at {self.url} has no task mode (no /v1/tasks/ route): it is a "
                    "jimeng-api without the async-task fork"
                ) from error
            self.task_mode = True
            lists.append(_wire.parse_task_list(response, backend=self.name))
        return _wire.merge_task_lists(lists, limit)

    def failure_error(self, task: Task) -> JimengError | None:
        return failure_error(task, backend=self.name, sessions=self._endpoint.sessions)

    # -- sessions and credits --------------------------------------------------------------------

    def _require_sessions(self, action: str) -> None:
        if self.flavor == "openai":
            raise NotSupportedError(f"OpenAI-compatible relays have no sessions to {action}")

    def credits(self) -> Flow[Sequence[AccountBalance]]:
        self._require_sessions("read credits of")
        response: Response = yield _wire.build_token_points(self._endpoint)
        return _wire.parse_balances(response, backend=self.name)

    def claim_credits(self) -> Flow[Sequence[AccountBalance]]:
        self._require_sessions("claim credits for")
        response: Response = yield _wire.build_token_receive(self._endpoint)
        return _wire.parse_balances(response, backend=self.name)

    def check_sessions(self) -> Flow[Sequence[SessionStatus]]:
        self._require_sessions("check")
        statuses = []
        for token in self._tokens:
            response: Response = yield _wire.build_token_check(self._endpoint, token)
            statuses.append(_wire.parse_check(response, token, backend=self.name))
        return statuses
