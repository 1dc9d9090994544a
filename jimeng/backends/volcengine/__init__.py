"""The Volcengine visual OpenAPI backend (official endpoint, signed; or relays, bearer key)."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import unquote

import attrs
from yarl import URL

from jimeng import _logging
from jimeng._http import Call, Flow, Response
from jimeng._imageinfo import ImageLimits
from jimeng._polling import PollPolicy
from jimeng._signing import VOLCENGINE_CV, Credentials, SigningProfile, sign_headers
from jimeng.backends._base import Backend, NotSupportedError
from jimeng.backends._capabilities import Capabilities, ModelCapabilities
from jimeng.backends._endpoint import check_endpoint
from jimeng.backends._sizing import RATIOS, RESOLUTIONS
from jimeng.backends.volcengine import _wire
from jimeng.backends.volcengine._errors import failure_class
from jimeng.backends.volcengine._family import (
    AVATAR_CHECK,
    OUTPAINT_FIELDS,
    TRANSFORMS,
    TransformSpec,
    transform_spec,
)
from jimeng.backends.volcengine._inputs import (
    build_fetch,
    check_local,
    check_same_ratio,
    encode_images,
    fetched,
    needs_fetch,
)
from jimeng.backends.volcengine._models import (
    IMAGE_MODELS,
    Built,
    ImageModelSpec,
    check_overrides,
    image_spec,
    with_req_keys,
)
from jimeng.backends.volcengine._video import (
    ASPECT_RATIOS,
    DEFAULT_FRAMES,
    FRAMES_BY_DURATION,
    VIDEO_MODES,
    frames_for,
    video_mode,
)
from jimeng.errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    JimengError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TaskExpiredError,
    TaskFailedError,
    TaskNotCancellableError,
    ValidationError,
)
from jimeng.models import ImageInput, ImageRequest, Task, TaskKind, TaskStatus, VideoRequest
from jimeng.models._checks import (
    boolean,
    check_argument,
    instance,
    mapping_of_str,
    required,
    secret_text,
    text,
)
from jimeng.models._transforms import AvatarRequest, TransformRequest

__all__ = ["DEFAULT_ENDPOINT", "Volcengine", "check_endpoint"]

DEFAULT_ENDPOINT = "https://visual.volcengineapi.com"


class Volcengine(Backend):
    """Jimeng on the Volcengine visual API.

    Signed with an access key pair (``VOLC_ACCESSKEY`` / ``VOLC_SECRETKEY`` when not given,
    ``session_token`` for STS credentials), or, for relays that speak the official format, a
    bearer ``api_key`` with the relay's ``endpoint`` (its path, e.g. ``/jm``, is kept).

    ``JIMENG_API_URL`` overrides the default endpoint and ``JIMENG_VIDEO_API_URL`` the one video
    calls use (``video_endpoint=``); an explicit ``endpoint=`` serves both unless
    ``video_endpoint=`` is given too. ``req_keys`` replaces the ``req_key`` behind a public model
    or video mode name, e.g. ``req_keys={"jimeng-4.6": "jimeng_t2i_v46"}`` (the 4.6 key is
    disputed).
    """

    name: ClassVar[str] = "volcengine"

    def __init__(
        self,
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        session_token: str | None = None,
        api_key: str | None = None,
        endpoint: str | None = None,
        video_endpoint: str | None = None,
        req_keys: Mapping[str, str] | None = None,
        outpaint_fields: Mapping[str, str] | None = None,
        allow_http: bool = False,
        profile: SigningProfile = VOLCENGINE_CV,
    ):
        for field, value in (
            ("access_key", access_key),
            ("secret_key", secret_key),
            ("session_token", session_token),
            ("api_key", api_key),
        ):
            check_argument(field, value, secret_text())
        check_argument("endpoint", endpoint, text())
        check_argument("video_endpoint", video_endpoint, text())
        check_argument("req_keys", req_keys, mapping_of_str(values=True))
        check_argument("outpaint_fields", outpaint_fields, mapping_of_str())
        check_argument("allow_http", allow_http, required(boolean()))
        check_argument("profile", profile, required(instance(SigningProfile, "a SigningProfile")))
        self._api_key = api_key
        #: The last image request validate_image() checked, with what its checks built.
        self._checked: tuple[ImageRequest, Built] | None = None
        if api_key is None:
            access_key = access_key or os.environ.get("VOLC_ACCESSKEY")
            secret_key = secret_key or os.environ.get("VOLC_SECRETKEY")
            if not access_key or not secret_key:
                raise ConfigurationError(
                    "Volcengine needs an access key pair: pass access_key= and secret_key=, "
                    "or set VOLC_ACCESSKEY and VOLC_SECRETKEY (or pass api_key= for a relay)"
                )
            self._credentials: Credentials | None = Credentials(
                access_key=access_key, secret_key=secret_key, session_token=session_token
            )
        else:
            self._credentials = None
        for secret in (access_key, secret_key, session_token, api_key):
            _logging.register_secret(secret)
        self._profile = profile
        main = endpoint or os.environ.get("JIMENG_API_URL") or DEFAULT_ENDPOINT
        if video_endpoint is None:
            # seed 003: JIMENG_VIDEO_API_URL; an explicit endpoint (a relay, the sandbox) wins.
            video_endpoint = endpoint or os.environ.get("JIMENG_VIDEO_API_URL") or main
        url = check_endpoint(main, allow_http=allow_http)
        self.base_url = str(url.origin())
        self.path = url.path or "/"
        self._endpoint = self._make_endpoint(url)
        video_url = check_endpoint(video_endpoint, allow_http=allow_http)
        self.video_url = str(video_url.origin()) + (video_url.path or "/")
        self._video_endpoint = self._make_endpoint(video_url)
        overrides = dict(req_keys or {})
        check_overrides(
            overrides, set(IMAGE_MODELS) | set(VIDEO_MODES) | set(TRANSFORMS) | {AVATAR_CHECK.name}
        )
        unknown = set(outpaint_fields or {}) - set(OUTPAINT_FIELDS)
        if unknown:
            raise ConfigurationError(
                f"outpaint_fields: unknown {sorted(unknown)}; rename {sorted(OUTPAINT_FIELDS)}"
            )
        self._outpaint_fields = {**OUTPAINT_FIELDS, **(outpaint_fields or {})}
        self._transforms = {
            name: attrs.evolve(spec, req_key=overrides[name]) if name in overrides else spec
            for name, spec in TRANSFORMS.items()
        }
        self._avatar_check = (
            attrs.evolve(AVATAR_CHECK, req_key=overrides[AVATAR_CHECK.name])
            if AVATAR_CHECK.name in overrides
            else AVATAR_CHECK
        )
        #: req_key → its transform spec (Action family, polling, result options).
        self._by_req_key = {
            spec.req_key: spec for spec in (*self._transforms.values(), self._avatar_check)
        }
        self._image_models = with_req_keys(IMAGE_MODELS, overrides)
        self._video_modes = {
            mode: attrs.evolve(spec, req_key=overrides[mode]) if mode in overrides else spec
            for mode, spec in VIDEO_MODES.items()
        }
        self._kinds: dict[str, TaskKind] = {
            spec.req_key: TaskKind.IMAGE for spec in self._image_models.values()
        }
        self._kinds.update({spec.req_key: TaskKind.VIDEO for spec in self._video_modes.values()})
        #: req_key → the public model name results report.
        self._names = {spec.req_key: spec.name for spec in self._image_models.values()}
        self._names.update({spec.req_key: spec.model for spec in self._video_modes.values()})
        self._kinds.update({key: spec.kind for key, spec in self._by_req_key.items()})
        self._names.update({key: spec.name for key, spec in self._by_req_key.items()})

    def _make_endpoint(self, url: URL) -> _wire.Endpoint:
        return _wire.Endpoint(
            base=str(url.origin()),
            path=url.path or "/",
            sign=self._sign if self._credentials else None,
            headers={"Authorization": f"Bearer {self._api_key}"} if self._api_key else {},
            host=url.raw_authority if self._credentials else "",
        )

    @property
    def relay(self) -> bool:
        """True for a relay of the official format (bearer key, gateway.md §10)."""
        return self._api_key is not None

    def __repr__(self) -> str:
        auth = "bearer" if self._api_key else "signed"
        return f"Volcengine(endpoint={self.base_url + self.path!r}, auth={auth})"

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "endpoint": self.base_url + self.path,
            "video_endpoint": self.video_url,
            "relay": self.relay,
            "req_keys": {
                **{name: spec.req_key for name, spec in self._image_models.items()},
                **{mode: spec.req_key for mode, spec in self._video_modes.items()},
            },
        }

    def limit_key(self) -> str:
        """One limit per account (access key or relay key) and service host."""
        return f"{self.name}:{self.account()}@{self.base_url}"

    def account(self) -> str:
        """The access key's (or relay key's) fingerprint: a task is the account's own."""
        key = self._credentials.access_key if self._credentials else self._api_key
        return _logging.fingerprint(key or "")

    # -- auth ----------------------------------------------------------------------------------

    def _sign(self, call: Call, now: datetime) -> Mapping[str, str]:
        """Sign one attempt at time ``now`` (a retry gets a fresh X-Date and signature)."""
        assert self._credentials is not None
        path, raw_query = _split_target(call.url)
        # Host and path of *this* call: the video endpoint may differ from the image one.
        # protocols/volcengine.md §1.3: the URL already carries the canonical query, so the
        # query sent is byte for byte the query signed (sign_headers checks it).
        return sign_headers(
            method=call.method,
            host=call.headers.get("Host") or self._endpoint.host,
            path=path,
            query=raw_query,
            headers=call.headers,
            body=call.body or b"",
            credentials=self._credentials,
            profile=self._profile,
            now=now,
        )

    def capabilities(self) -> Capabilities:
        images = [
            ModelCapabilities(
                name=spec.name,
                kind=TaskKind.IMAGE,
                ratios=RATIOS,
                resolutions=RESOLUTIONS,
                sizes=spec.sizes,
                max_images=spec.max_images,
            )
            for spec in self._image_models.values()
        ]
        videos = [
            ModelCapabilities(
                name=mode.mode,
                kind=TaskKind.VIDEO,
                ratios=ASPECT_RATIOS if mode.first_frame != "required" else (),
                resolutions=(mode.resolution,),
                durations=tuple(FRAMES_BY_DURATION),
                max_images=2 if mode.tail_frame else int(mode.first_frame != "none"),
            )
            for mode in self._video_modes.values()
        ]
        return Capabilities(
            backend=self.name,
            models=(*images, *videos),
            features=frozenset(
                {"async_submit"}
                if self.relay
                else {"async_submit", "cancel", "image_edits", "video_transforms"}
            ),
            sizing="exact WxH; ratio × resolution → the recommended sizes; out-of-range "
            "sizes scaled, with a note",
        )

    def failure_error(self, task: Task) -> JimengError | None:
        """A task refused by output moderation is a :class:`ContentPolicyError` (with its id)."""
        if task.failure is None:
            return None
        spec = self._by_req_key.get(task.model or "")
        if spec is not None and spec.verb == "avatar" and str(task.failure.code) == "50215":
            # §3.4.5: audio of 60 s or more is accepted at submit and refused here.
            return TaskFailedError(
                f"task {task.id} failed: {task.failure.message} (OmniHuman takes audio shorter "
                "than 60 s, and image and audio URLs it can download)",
                task_id=task.id,
                task_ref=task.ref,
                status=task.raw_status,
                code=task.failure.code,
            )
        cls = failure_class(task.failure.code)
        if cls is None:
            return None
        return cls(
            task.failure.message or "refused by content moderation",
            code=task.failure.code,
            backend=self.name,
            request_id=task.raw.get("request_id") if isinstance(task.raw, Mapping) else None,
            body=task.raw,
            task_id=task.id,
            task_ref=task.ref,
        )

    def _endpoint_for(self, kind: TaskKind) -> _wire.Endpoint:
        return self._video_endpoint if kind is TaskKind.VIDEO else self._endpoint

    # -- inputs --------------------------------------------------------------------------------

    def _inline(
        self, images: Sequence[ImageInput], fields: Sequence[str], limits: ImageLimits
    ) -> Flow[tuple[ImageInput, ...]]:
        """Fetch the URL images of a request that mixes URLs and local images (sent inline)."""
        out: list[ImageInput] = []
        for image, field in zip(images, fields, strict=True):
            if image.data is None:
                response: Response = yield build_fetch(image, field=field)
                image = fetched(image, response)
                check_local(image, limits, field=field)
            out.append(image)
        return tuple(out)

    # -- images --------------------------------------------------------------------------------

    @property
    def image_models(self) -> list[str]:
        return sorted(self._image_models)

    def _image_spec(self, model: str | None) -> ImageModelSpec:
        return image_spec(model, self._image_models)

    def validate_image(self, request: ImageRequest) -> None:
        built = self._image_spec(request.model).validate(request, relay=self.relay)
        _image_options(request)
        # The submit of this very request (the next call, as a rule) reuses the checked fields.
        self._checked = (request, built)

    def submit_image(self, request: ImageRequest) -> Flow[Task]:
        spec = self._image_spec(request.model)
        images = request.images or ()
        if needs_fetch(images):
            fields = [f"images[{index}]" for index in range(len(images))]
            inline = yield from self._inline(images, fields, spec.limits)
            request = attrs.evolve(request, images=inline)
        checked, self._checked = self._checked, None
        built = checked[1] if checked is not None and checked[0] is request else None
        body, notes = spec.prepare(request, relay=self.relay, built=built)
        # Everything the task's polls need is built before the (billed) submit is sent.
        context: dict[str, Any] = {"req_json": _image_options(request), "model_name": spec.name}
        if "width" in body and "height" in body:
            # An exact size is the output size; an area preset leaves the ratio to the model.
            context["pixels"] = (body["width"], body["height"])
        response: Response = yield _wire.build_submit(self._endpoint, body)
        task = _wire.parse_submit(
            response,
            req_key=spec.req_key,
            kind=TaskKind.IMAGE,
            backend=self.name,
            context=context,
            notes=notes,
        )
        for note in notes:
            _logging.logger.info("volcengine: %s", note)
        return task

    # -- videos --------------------------------------------------------------------------------

    @property
    def video_modes(self) -> list[str]:
        return list(self._video_modes)

    def validate_video(self, request: VideoRequest) -> None:
        video_mode(request, self._video_modes).validate(request)
        _video_options(request)

    def submit_video(self, request: VideoRequest) -> Flow[Task]:
        spec = video_mode(request, self._video_modes)
        frames = [image for image in (request.image, request.tail_image) if image is not None]
        if needs_fetch(frames):
            fields = ["image", "tail_image"][: len(frames)]
            first, *tail = yield from self._inline(frames, fields, spec.limits)
            request = attrs.evolve(request, image=first, tail_image=tail[0] if tail else None)
            if tail:
                check_same_ratio(
                    check_local(first, spec.limits, field="image"),
                    check_local(tail[0], spec.limits, field="tail_image"),
                )
        body = spec.body(request)
        context = {  # before the submit, as for images
            "req_json": _video_options(request),
            "frames": frames_for(request) or DEFAULT_FRAMES,
            "mode": spec.mode,
            "model_name": spec.model,
        }
        response: Response = yield _wire.build_submit(self._video_endpoint, body)
        return _wire.parse_submit(
            response, req_key=spec.req_key, kind=TaskKind.VIDEO, backend=self.name, context=context
        )

    # -- tasks ---------------------------------------------------------------------------------

    # -- transforms (§3.4) -----------------------------------------------------------------------

    def validate_transform(self, request: TransformRequest) -> None:
        spec = transform_spec(request, self._transforms)
        if self.relay:  # gateway.md §10
            raise NotSupportedError(
                f"relays of the official format offer image and video generation only, "
                f"not {spec.name}"
            )
        spec.fields(request, self._outpaint_fields)  # every check, no request

    def submit_transform(self, request: TransformRequest) -> Flow[Task]:
        spec = transform_spec(request, self._transforms)
        pairs = spec.inputs(request)
        images = [image for _, image in pairs]
        if needs_fetch(images):
            images = list((yield from self._inline(images, [f for f, _ in pairs], spec.limits)))
        body = {**encode_images(images), **spec.fields(request, self._outpaint_fields)}
        task = yield from self._submit_spec(spec, body)
        if spec.result_options == "image":
            options = _wire.req_json(
                return_url=getattr(request, "return_url", None),
                watermark=getattr(request, "watermark", None),
                aigc_meta=request.aigc_meta,
            )
        else:
            options = _wire.req_json(aigc_meta=request.aigc_meta, images=False)
        return _with_context(task, req_json=options, model_name=spec.name)

    def _submit_spec(self, spec: TransformSpec, body: Mapping[str, Any]) -> Flow[Task]:
        submit, _ = _wire.ACTIONS[spec.family]
        response: Response = yield _wire.build_submit(
            self._endpoint_for(spec.kind), body, action=submit
        )
        return _wire.parse_submit(response, req_key=spec.req_key, kind=spec.kind, backend=self.name)

    def check_subject(self, request: AvatarRequest) -> Flow[Task]:
        """§3.4.5 step 1 (``CVSubmitTask``): does the portrait hold a person-like subject?"""
        if self.relay:
            raise NotSupportedError("relays of the official format have no OmniHuman check")
        spec = self._avatar_check
        task = yield from self._submit_spec(spec, spec.fields(request))
        return _with_context(task, req_json="", model_name=spec.name)

    def poll_policy(self, task: Task) -> PollPolicy | None:
        spec = self._by_req_key.get(task.model or "")
        return spec.poll if spec is not None else None

    # -- tasks ---------------------------------------------------------------------------------

    def poll(self, task: Task) -> Flow[Task]:
        options = _options(task)
        spec = self._by_req_key.get(task.model or "")
        _, get_result = _wire.ACTIONS[spec.family if spec else "sync2async"]
        response: Response = yield _wire.build_get_result(
            self._endpoint_for(task.kind), task.model or "", task.id, options, action=get_result
        )
        if spec is self._avatar_check:
            return _wire.parse_subject_check(response, task)
        updated = _wire.parse_result(response, task, now=datetime.now(timezone.utc))
        if updated.context.get("req_json") == options:  # parse_result kept the context
            return updated
        return _with_context(updated, req_json=options)

    def _req_key_for(self, model: str) -> str:
        wanted = model.strip().lower()
        for spec in self._video_modes.values():
            if wanted in (spec.mode, spec.req_key):
                return spec.req_key
        return self._image_spec(model).req_key

    def resume(self, ref: str, *, model: str | None = None) -> Task:
        req_key, sep, task_id = ref.rpartition(":")
        if not sep:
            task_id = ref
            req_key = self._req_key_for(model) if model else ""
        if not req_key or not task_id:
            raise ValidationError(
                "task",
                "a Volcengine task needs its model: pass 'req_key:task_id' (the task's ref) or "
                "model= (a model name, video mode or req_key)",
            )
        if req_key not in self._kinds:
            # Asked anyway, the service answers "not found", which reads like an expired task.
            raise ValidationError(
                "task",
                f"{req_key!r} in {ref!r} is not a model key of this backend; a ref is "
                "'req_key:task_id' as printed when the task was submitted",
                allowed=sorted(self._kinds),
            )
        return Task(
            id=task_id,
            kind=self._kinds[req_key],
            status=TaskStatus.UNKNOWN,
            backend=self.name,
            ref=f"{req_key}:{task_id}",
            model=req_key,
            context={"model_name": self._names.get(req_key, req_key)},
        )

    def cancel(self, task: Task) -> Flow[Task]:
        """``CVCancelTask`` (§2.1). Only queued tasks can be cancelled; a refusal is checked with
        one get-result and raised as :class:`~jimeng.errors.TaskNotCancellableError`."""
        if self.relay:  # gateway.md §10: no CVCancelTask
            raise NotSupportedError(
                "relays of the official format cannot cancel tasks; the task keeps running"
            )
        spec = self._by_req_key.get(task.model or "")
        if spec is not None and not spec.cancellable:  # CVSubmitTask documents no cancel (§2.1)
            raise NotSupportedError(
                f"{spec.name} tasks cannot be cancelled on Volcengine; the task keeps running"
            )
        req_key = task.model or ""
        endpoint = self._endpoint_for(task.kind)
        try:
            response: Response = yield _wire.build_cancel(endpoint, req_key, task.id)
        except APIError as refusal:
            refusal.attach_task(task.id, task.ref)
            if isinstance(refusal, _NOT_ABOUT_THE_TASK):
                raise
            state: Task | None = None
            try:
                answer: Response = yield _wire.build_get_result(
                    endpoint, req_key, task.id, _options(task)
                )
                state = _wire.parse_result(answer, task, now=datetime.now(timezone.utc))
            except APIError:
                state = None  # a finished task may answer its own failure: still refused
            error = _refused(task, refusal, state)
            if error is refusal:
                raise refusal
            raise error from refusal
        return _wire.parse_cancel(response, task)


#: Errors of a cancel call that say nothing about the task's state.
_NOT_ABOUT_THE_TASK = (AuthenticationError, PermissionDeniedError, RateLimitError, ServerError)


def _refused(task: Task, refusal: APIError, state: Task | None) -> JimengError:
    """The error for a refused cancel, told by the task's state (§2.1 FAQ: running tasks
    cannot be cancelled)."""
    if state is not None and state.status is TaskStatus.EXPIRED:
        return TaskExpiredError(
            f"task {task.id} is unknown to the server or expired ({state.raw_status}); "
            "nothing to cancel",
            task_id=task.id,
            task_ref=task.ref,
            status=state.raw_status,
        )
    if state is not None and state.status is TaskStatus.QUEUED:
        return refusal  # refused for another reason: the server's own words
    if state is not None and state.status.is_terminal:
        return TaskNotCancellableError(
            f"task {task.id} already {state.status.value}; nothing to cancel",
            status=state.raw_status,
            code=refusal.code,
            status_code=refusal.status_code,
            request_id=refusal.request_id,
            backend=refusal.backend,
            body=refusal.body,
            task_id=task.id,
            task_ref=task.ref,
        )
    if state is None:
        where = "already started or finished"
    else:
        where = f"already {state.status.value} (server status {state.raw_status!r})"
    return TaskNotCancellableError(
        f"task {task.id} cannot be cancelled: it is {where}; only queued tasks can be. It keeps "
        f"running and is billed: wait for it with client.tasks.wait({task.ref!r}) "
        f"(server said: {refusal.message})",
        status=state.raw_status if state is not None else None,
        code=refusal.code,
        status_code=refusal.status_code,
        request_id=refusal.request_id,
        backend=refusal.backend,
        body=refusal.body,
        task_id=task.id,
        task_ref=task.ref,
    )


def _image_options(request: ImageRequest) -> str:
    """The get-result ``req_json`` an image task is polled with (§2.3)."""
    return _wire.req_json(
        return_url=request.return_url, watermark=request.watermark, aigc_meta=request.aigc_meta
    )


def _video_options(request: VideoRequest) -> str:
    return _wire.req_json(watermark=request.watermark, aigc_meta=request.aigc_meta, images=False)


def _options(task: Task) -> str:
    """The get-result ``req_json`` of a task (a resumed image task asks for URLs)."""
    options = task.context.get("req_json")
    if isinstance(options, str):
        return options
    return _wire.req_json() if task.kind is TaskKind.IMAGE else ""


def _with_context(task: Task, **values: Any) -> Task:
    """Carry backend state (get-result options, frames) from submit to every poll."""
    return attrs.evolve(task, context={**task.context, **values})


@functools.lru_cache(maxsize=64)
def _split_target(url: str) -> tuple[str, str]:
    """The decoded path and the raw query string of a call's URL (a client sends to a handful
    of URLs, so this is worked out once per URL)."""
    target, _, raw_query = url.partition("?")
    return unquote("/" + target.split("://", 1)[-1].partition("/")[2]), raw_query
