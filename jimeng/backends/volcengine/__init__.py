"""The Volcengine visual OpenAPI backend (official endpoint, signed; or relays, bearer key)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

import attrs
from yarl import URL

from jimeng import _logging
from jimeng._http import Call, Flow, Response
from jimeng._signing import VOLCENGINE_CV, Credentials, SigningProfile, sign
from jimeng.backends._base import Backend
from jimeng.backends._endpoint import check_endpoint
from jimeng.backends.volcengine import _wire
from jimeng.backends.volcengine._models import IMAGE_MODELS, image_spec, spec_for_req_key
from jimeng.errors import ConfigurationError, ValidationError
from jimeng.models import ImageRequest, Task, TaskKind, TaskStatus

__all__ = ["DEFAULT_ENDPOINT", "Volcengine", "check_endpoint"]

DEFAULT_ENDPOINT = "https://visual.volcengineapi.com"


class Volcengine(Backend):
    """Jimeng on the Volcengine visual API.

    Signed with an access key pair (``VOLC_ACCESSKEY`` / ``VOLC_SECRETKEY`` when not given,
    ``session_token`` for STS credentials), or, for relays that speak the official format, a
    bearer ``api_key`` with the relay's ``endpoint`` (its path, e.g. ``/jm``, is kept).
    ``JIMENG_API_URL`` overrides the default endpoint.
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
        allow_http: bool = False,
        profile: SigningProfile = VOLCENGINE_CV,
    ):
        self._api_key = api_key
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
        url = check_endpoint(
            endpoint or os.environ.get("JIMENG_API_URL") or DEFAULT_ENDPOINT, allow_http=allow_http
        )
        self.base_url = str(url.origin())
        self.path = url.path or "/"
        self._endpoint = _wire.Endpoint(
            base=self.base_url,
            path=self.path,
            sign=self._sign if self._credentials else None,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            host=url.raw_authority if self._credentials else "",
        )

    def __repr__(self) -> str:
        auth = "bearer" if self._api_key else "signed"
        return f"Volcengine(endpoint={self.base_url + self.path!r}, auth={auth})"

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "endpoint": self.base_url + self.path,
            "relay": bool(self._api_key),
        }

    # -- auth ----------------------------------------------------------------------------------

    def _sign(self, call: Call, now: datetime) -> Mapping[str, str]:
        """Sign one attempt at time ``now`` (a retry gets a fresh X-Date and signature)."""
        assert self._credentials is not None
        url = URL(call.url, encoded=True)
        signed = sign(
            method=call.method,
            host=url.raw_authority,
            path=url.path or "/",
            query=[(key, value) for key, value in url.query.items()],
            headers=call.headers,
            body=call.body or b"",
            credentials=self._credentials,
            profile=self._profile,
            now=now,
        )
        return {k: v for k, v in signed.headers.items() if k not in call.headers}

    # -- images --------------------------------------------------------------------------------

    @property
    def image_models(self) -> list[str]:
        return sorted(IMAGE_MODELS)

    def validate_image(self, request: ImageRequest) -> None:
        image_spec(request.model).validate(request)

    def submit_image(self, request: ImageRequest) -> Flow[Task]:
        spec = image_spec(request.model)
        response: Response = yield _wire.build_submit(self._endpoint, spec.body(request))
        task = _wire.parse_submit(
            response, req_key=spec.req_key, kind=TaskKind.IMAGE, backend=self.name
        )
        options = _wire.req_json(
            return_url=request.return_url,
            watermark=request.watermark,
            aigc_meta=request.aigc_meta,
        )
        return _with_options(task, options)

    # -- tasks ---------------------------------------------------------------------------------

    def poll(self, task: Task) -> Flow[Task]:
        req_key = task.model or ""
        options = str(task.context.get("req_json") or _wire.req_json())
        response: Response = yield _wire.build_get_result(self._endpoint, req_key, task.id, options)
        updated = _wire.parse_result(response, task, now=datetime.now(timezone.utc))
        return _with_options(updated, options)

    def resume(self, ref: str, *, model: str | None = None) -> Task:
        req_key, sep, task_id = ref.rpartition(":")
        if not sep:
            task_id = ref
            req_key = image_spec(model).req_key if model else ""
        if not req_key:
            raise ValidationError(
                "task", "a Volcengine task needs its model: pass 'req_key:task_id' or model="
            )
        spec = spec_for_req_key(req_key)
        kind = spec.kind if spec is not None else TaskKind.IMAGE
        return Task(
            id=task_id,
            kind=kind,
            status=TaskStatus.UNKNOWN,
            backend=self.name,
            ref=f"{req_key}:{task_id}",
            model=req_key,
        )


def _with_options(task: Task, options: str) -> Task:
    """Carry the get-result options (``req_json``) from submit to every poll."""
    return attrs.evolve(task, context={**task.context, "req_json": options})
