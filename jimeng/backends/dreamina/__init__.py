"""The Dreamina web-session backend: browser ``sessionid`` cookies, CN or international.

protocols/dreamina-web.md throughout. Each token is ``[proxy@][us-|hk-|jp-|sg-]sessionid``;
several, comma-separated, form a rotation pool: when the generate call answers ``ret 1006`` (no
credits) the session is marked exhausted and the request is submitted again, with a new
``submit_id``, on the next one.
"""

from __future__ import annotations

import datetime
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import attrs

from jimeng import _logging
from jimeng._download import sniff_extension
from jimeng._http import Flow, Response
from jimeng._polling import PollPolicy
from jimeng.backends._base import AccountBalance, Backend, SessionStatus
from jimeng.backends._capabilities import Capabilities, ModelCapabilities
from jimeng.backends._endpoint import check_endpoint
from jimeng.backends.dreamina import _wire
from jimeng.backends.dreamina._errors import BACKEND, CONTENT_FAIL_CODES
from jimeng.backends.dreamina._plan import (
    MAX_REFERENCES,
    ImagePlan,
    VideoPlan,
    plan_image,
    plan_video,
)
from jimeng.backends.dreamina._session import Router, Session, device_ids, parse_tokens
from jimeng.backends.dreamina._tables import (
    IMAGE_MODELS,
    RATIO_CODES,
    RESOLUTIONS,
    VIDEO_MODELS,
    VIDEO_RATIOS,
    Region,
)
from jimeng.backends.dreamina._versions import DEFAULT_VERSIONS, ClientVersions, coerce_versions
from jimeng.errors import (
    APIError,
    ConfigurationError,
    ContentPolicyError,
    InsufficientCreditsError,
    JimengError,
    SessionExpiredError,
    ValidationError,
)
from jimeng.models import (
    ImageInput,
    ImageRequest,
    Task,
    TaskKind,
    TaskStatus,
    VideoRequest,
    VideoResult,
)
from jimeng.models._checks import (
    boolean,
    check_argument,
    instance,
    mapping_of_str,
    required,
    secret_list,
    text,
)
from jimeng.models._transforms import MediaInput

__all__ = ["DEFAULT_VERSIONS", "ClientVersions", "Dreamina"]

P = TypeVar("P", ImagePlan, VideoPlan)
_SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))
#: §14: answers that mean "this benefit type is not yours" (DZ matches "prededuct" and 1000).
_BENEFIT_REFUSALS = frozenset({"5001", "1000"})
#: §11 (IPT): omni video materials may last 15 s in all.
_OMNI_VIDEO_LIMIT_MS = 15_000
_FEATURES = ("async_submit", "credits", "claim", "check", "omni", "multi_image")
_IMAGE_SUFFIXES = (".png", ".jpg", ".webp", ".gif")


#: §18: the peers' limits (IPT: 1800 s for images, 3600 s for videos; 900 polls each).
WEB_POLL_DEADLINES: Mapping[TaskKind, float] = {TaskKind.IMAGE: 1800.0, TaskKind.VIDEO: 3600.0}


def _web_poll_policy(kind: TaskKind) -> PollPolicy:
    base = PollPolicy.for_kind(kind)
    variable = (
        "JIMENG_VIDEO_MAX_POLL_ATTEMPTS" if kind is TaskKind.VIDEO else "JIMENG_MAX_POLL_ATTEMPTS"
    )
    if os.environ.get(variable):
        return base  # the caller set a limit: theirs wins
    return attrs.evolve(base, max_attempts=900, deadline=WEB_POLL_DEADLINES[kind])


def _notes(plan: ImagePlan | VideoPlan) -> tuple[str, ...]:
    return (plan.mapped,) if isinstance(plan, ImagePlan) and plan.mapped else ()


def _register_grant(grant: _wire.UploadGrant) -> None:
    """The upload credentials are secrets too (an ImageX or VOD error may echo the signed
    headers); they expire, so only the newest ones stay registered."""
    credentials = grant.credentials
    for secret in (credentials.access_key, credentials.secret_key, credentials.session_token):
        _logging.register_secret(secret, temporary=True)


class Dreamina(Backend):
    """Jimeng / Dreamina through browser sessions.

    ``tokens`` is one token or several (a comma-separated string or a list); without it,
    ``JIMENG_SESSION_ID`` is read. A token is ``[proxy@][region-]sessionid``: no prefix is the
    CN site (jimeng.jianying.com), ``us-``/``hk-``/``jp-``/``sg-`` the international ones; a
    leading ``http(s)://…@`` sends that session's calls through a proxy.

    ``versions`` overrides the web client's version constants (a :class:`ClientVersions` or a
    mapping of its fields) when upstream answers ``3018``. ``base_urls`` sends calls elsewhere:
    a real origin → replacement base URL, or ``"*"`` → a template with ``{host}`` (the sandbox
    uses this); plain http is refused except to loopback unless ``allow_http``. ``web_id``
    fixes the browser's ``webId`` (random per backend otherwise, like the reference client);
    ``rng`` seeds device ids, upload nonces and default seeds (for reproducible tests).
    """

    name: ClassVar[str] = BACKEND

    def __init__(
        self,
        tokens: str | Sequence[str] | None = None,
        *,
        versions: ClientVersions | Mapping[str, str] | None = None,
        base_urls: Mapping[str, str] | None = None,
        web_id: str | None = None,
        allow_http: bool = False,
        auto_claim: bool = True,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ):
        check_argument("tokens", tokens, secret_list())
        check_argument(
            "versions",
            versions,
            instance((ClientVersions, Mapping), "ClientVersions or a mapping"),
        )
        check_argument("base_urls", base_urls, mapping_of_str(values=True))
        check_argument("web_id", web_id, text())
        check_argument("allow_http", allow_http, required(boolean()))
        check_argument("rng", rng, instance(random.Random, "a random.Random"))
        if tokens is None:
            tokens = os.environ.get("JIMENG_SESSION_ID", "")
        self._sessions = parse_tokens(tokens)
        self.versions = coerce_versions(versions)
        self._rng = rng or random.Random()
        generated_web_id, user_id = device_ids(self._rng)
        for base in (base_urls or {}).values():
            check_endpoint(base.replace("{host}", "host"), allow_http=allow_http)
        self._context = _wire.Context(
            versions=self.versions,
            web_id=web_id or generated_web_id,
            user_id=user_id,
            router=Router(dict(base_urls or {})),
        )
        #: Sessions that answered 1006 (key → the Shanghai day it happened); skipped until
        #: credits() or claim() sees a positive balance again, :meth:`reset_exhausted`, or (with
        #: ``auto_claim``) the next day, when the daily claim may refill them.
        self._exhausted: dict[str, datetime.date] = {}
        #: Sessions that answered 1015 (logged out): key → why; skipped for good.
        self._logged_out: dict[str, str] = {}
        #: key → the Shanghai day its balance was last checked before a submit (§13).
        self._balance_checked: dict[str, datetime.date] = {}
        self.auto_claim = auto_claim
        self._clock = clock
        self._current = 0

    def __repr__(self) -> str:
        return f"Dreamina(sessions={[s.label() for s in self._sessions]!r})"

    def limit_key(self) -> str:
        """One limit per pool of sessions (a fingerprint of its region-qualified session ids,
        in any order): clients of the same sessions share a limit store's state, others not."""
        ids = sorted(f"{session.region.code}-{session.sid}" for session in self._sessions)
        return f"{self.name}:{_logging.fingerprint(','.join(ids))}"

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "sessions": [
                {
                    "session": s.fingerprint,
                    "region": s.region.code,
                    "proxy": s.proxy is not None,
                    "exhausted": s.key in self._exhausted,
                    "logged_out": s.key in self._logged_out,
                }
                for s in self._sessions
            ],
            "app_version": self.versions.app_version,
            "auto_claim": self.auto_claim,
        }

    @property
    def sessions(self) -> list[str]:
        """``"<region> <fingerprint>"`` per configured session, in rotation order."""
        return [s.label() for s in self._sessions]

    @property
    def exhausted(self) -> list[str]:
        """Fingerprints of the sessions marked out of credits."""
        return [s.fingerprint for s in self._sessions if s.key in self._exhausted]

    @property
    def logged_out(self) -> list[str]:
        """Fingerprints of the sessions that answered ``ret 1015`` (not logged in)."""
        return [s.fingerprint for s in self._sessions if s.key in self._logged_out]

    def reset_exhausted(self) -> None:
        """Forget every "out of credits" and "logged out" mark (e.g. after the daily refill,
        or after logging in again with the same session id)."""
        self._exhausted.clear()
        self._logged_out.clear()

    def _today(self) -> datetime.date:
        # §13: the daily credits follow the site's day (the claim sends Asia/Shanghai).
        return datetime.datetime.fromtimestamp(self._clock(), _SHANGHAI).date()

    # -- which sessions can serve a request ------------------------------------------------

    def _rotation(self) -> list[Session]:
        start = self._current % len(self._sessions)
        return self._sessions[start:] + self._sessions[:start]

    def _candidates(self, plan: Callable[[Region], P]) -> list[tuple[Session, P]]:
        """Sessions (rotation order) whose site can serve the request, each with its plan.

        A pool may mix sites; a request is checked per site, and if no session's site can serve
        it, the error for the first configured session's site is raised.
        """
        plans: dict[str, P | ValidationError] = {}
        for session in self._sessions:
            code = session.region.code
            if code not in plans:
                try:
                    plans[code] = plan(session.region)
                except ValidationError as error:
                    plans[code] = error
        out: list[tuple[Session, P]] = []
        for session in self._rotation():
            outcome = plans[session.region.code]
            if not isinstance(outcome, ValidationError):
                out.append((session, outcome))
        if not out:
            first = plans[self._sessions[0].region.code]
            assert isinstance(first, ValidationError)
            raise first
        return out

    @staticmethod
    def _check_inputs(inputs: Sequence[tuple[str, ImageInput]]) -> None:
        for field, image in inputs:
            if image.data is not None:
                if sniff_extension(image.data[:16]) not in _IMAGE_SUFFIXES:
                    raise ValidationError(
                        field, "is not a PNG, JPEG, WebP or GIF image", allowed="image files"
                    )
            elif image.url is None:
                raise ValidationError(
                    field, "a local file must be read first (client.images does this)"
                )

    def validate_image(self, request: ImageRequest) -> None:
        self._candidates(lambda region: plan_image(request, region))
        self._check_inputs([(f"images[{i}]", img) for i, img in enumerate(request.images or ())])

    def validate_video(self, request: VideoRequest) -> None:
        self._candidates(lambda region: plan_video(request, region))
        frames = [("image", request.image), ("tail_image", request.tail_image)]
        self._check_inputs([(field, img) for field, img in frames if img is not None])

    @property
    def image_models(self) -> list[str]:
        regions = {s.region.code for s in self._sessions}
        return [m.name for m in IMAGE_MODELS.values() if m.regions & regions]

    @property
    def video_models(self) -> list[str]:
        regions = {s.region.code for s in self._sessions}
        return [m.name for m in VIDEO_MODELS.values() if m.regions & regions]

    def capabilities(self) -> Capabilities:
        regions = {s.region.code for s in self._sessions}
        models = [
            ModelCapabilities(
                name=model.name,
                kind=TaskKind.IMAGE,
                ratios=RATIO_CODES,
                resolutions=RESOLUTIONS,
                sizes="nearest ratio × resolution",
                max_images=MAX_REFERENCES,
                regions=sorted(model.regions & regions),
            )
            for model in IMAGE_MODELS.values()
            if model.regions & regions and not model.legacy
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
            if model.regions & regions
        ]
        return Capabilities(
            backend=self.name,
            models=tuple(models),
            features=frozenset(_FEATURES),
            sizing="ratio × resolution; WxH → the nearest entry of the same orientation, "
            "with a note",
        )

    # -- submit, with rotation -------------------------------------------------------------------

    def submit_image(self, request: ImageRequest) -> Flow[Task]:
        candidates = self._candidates(lambda region: plan_image(request, region))
        return (yield from self._submit(TaskKind.IMAGE, request.prompt, candidates))

    def submit_video(self, request: VideoRequest) -> Flow[Task]:
        candidates = self._candidates(lambda region: plan_video(request, region))
        return (yield from self._submit(TaskKind.VIDEO, request.prompt, candidates))

    def _body(
        self,
        plan: ImagePlan | VideoPlan,
        prompt: str,
        submit_id: str,
        uploads: Sequence[_wire.UploadedImage],
        videos: Sequence[_wire.UploadedVideo] = (),
    ) -> dict[str, Any]:
        uris = [upload.uri for upload in uploads]
        ids = lambda: str(uuid.uuid4())  # noqa: E731
        now_ms = int(time.time() * 1000)  # draft metadata only; never used for waiting
        if isinstance(plan, ImagePlan):
            if plan.mapped:
                _logging.logger.info("dreamina: %s", plan.mapped)
            # §3.1: IPT draws the default seed from [2.5e9, 2.6e9).
            seed = (
                plan.seed
                if plan.seed is not None
                else self._rng.randrange(2_500_000_000, 2_600_000_000)
            )
            return _wire.image_generate_body(
                plan,
                prompt=prompt,
                submit_id=submit_id,
                uris=uris,
                ids=ids,
                now_ms=now_ms,
                seed=seed,
                versions=self.versions,
            )
        return _wire.video_generate_body(
            plan,
            prompt=prompt,
            submit_id=submit_id,
            uris=uris,
            ids=ids,
            now_ms=now_ms,
            seed=plan.seed if plan.seed is not None else self._rng.randrange(2**32),
            versions=self.versions,
            materials=uploads,
            videos=videos,
        )

    def _submit(
        self,
        kind: TaskKind,
        prompt: str,
        candidates: Sequence[tuple[Session, ImagePlan | VideoPlan]],
    ) -> Flow[Task]:
        pool = [session.fingerprint for session, _ in candidates]
        today = self._today()
        if self.auto_claim:
            # A new day: the daily claim may refill sessions that ran dry yesterday.
            self._exhausted = {key: day for key, day in self._exhausted.items() if day == today}
        why: dict[str, str] = {}
        for session, _ in candidates:
            if session.key in self._logged_out:
                why[session.fingerprint] = self._logged_out[session.key]
            elif session.key in self._exhausted:
                why[session.fingerprint] = "out of credits (ret 1006) earlier today"
        live = [(s, p) for s, p in candidates if s.fingerprint not in why]
        fetched: dict[str, bytes] = {}
        last: APIError | None = None
        for index, (session, plan) in enumerate(live):
            if session.key in self._exhausted or session.key in self._logged_out:
                continue  # marked meanwhile by a concurrent request
            remaining = len(live) - index - 1
            try:
                if self.auto_claim and self._balance_checked.get(session.key) != today:
                    yield from self._claim_if_empty(session, today)
                inputs = plan.images if isinstance(plan, ImagePlan) else plan.frames
                # Uploads belong to the account that made them, so each session uploads its own.
                uploads = (yield from self._upload(session, inputs, fetched)) if inputs else []
                videos: list[_wire.UploadedVideo] = []
                if isinstance(plan, VideoPlan) and plan.videos:
                    videos = yield from self._upload_videos(session, plan.videos, fetched)
                submit_id = str(uuid.uuid4())  # a NEW submit_id for every session tried (MCP)
                body = self._body(plan, prompt, submit_id, uploads, videos)
                response = yield from self._generate(session, plan, body, kind)
            except InsufficientCreditsError as error:
                last = error
                if error.code in ("1006", None):
                    self._mark_exhausted(session, today)
                why[session.fingerprint] = f"out of credits (ret {error.code or '1006'})"
                self._log_skip(session, why[session.fingerprint], remaining)
                continue
            except SessionExpiredError as error:
                if error.code != "1015":
                    raise
                last = error
                self._logged_out[session.key] = "not logged in (ret 1015)"
                why[session.fingerprint] = self._logged_out[session.key]
                self._log_skip(session, why[session.fingerprint], remaining)
                continue
            history_id = _wire.parse_submit(response)
            self._current = self._sessions.index(session)
            return Task(
                id=history_id,
                kind=kind,
                status=TaskStatus.QUEUED,
                backend=self.name,
                ref=f"{kind.value}:{session.key}:{history_id}",
                model=plan.model.name,
                raw_status="submitted",
                raw=response.json() or {},
                context={"session": session.key, "submit_id": submit_id},
                notes=_notes(plan),
            )
        raise self._unusable_error(pool, why, last)

    def _log_skip(self, session: Session, reason: str, remaining: int) -> None:
        _logging.logger.warning(
            "dreamina: session %s cannot serve the request: %s; %s",
            session.fingerprint,
            reason,
            "trying the next session" if remaining else "no other session",
        )

    def _claim_if_empty(self, session: Session, today: datetime.date) -> Flow[None]:
        """§13: read the balance once a day before submitting; at 0, claim the daily credits
        first (as IPT and the MCP server do), so a session that has not claimed today is not
        taken for an exhausted one."""
        gift, purchase, vip = _wire.parse_credit((yield _wire.credit_call(self._context, session)))
        self._balance_checked[session.key] = today
        if gift + purchase + vip > 0:
            return
        try:
            received = _wire.parse_receive(
                (yield _wire.credit_receive_call(self._context, session))
            )
        except SessionExpiredError:
            raise
        except APIError as error:
            _logging.logger.warning(
                "dreamina: session %s has 0 credits and its daily claim failed (ret %s)",
                session.fingerprint,
                error.code,
            )
            raise InsufficientCreditsError(
                f"session {session.fingerprint} has 0 credits and its daily claim failed "
                f"(ret {error.code})",
                sessions=[session.fingerprint],
                code="1006",
                backend=self.name,
            ) from error
        _logging.logger.info(
            "dreamina: session %s had 0 credits; claimed the daily credits (+%d)",
            session.fingerprint,
            received,
        )

    def _generate(
        self, session: Session, plan: ImagePlan | VideoPlan, body: dict[str, Any], kind: TaskKind
    ) -> Flow[Response]:
        """The generate call; a video whose benefit type the account lacks (ret 5001, or the
        generic 1000) is offered the next one of §14, same submit_id and payload."""
        benefits = plan.benefit_types if isinstance(plan, VideoPlan) else ()
        query = plan.browser_tokens if isinstance(plan, VideoPlan) else {}
        for index, benefit in enumerate(benefits or (None,)):
            if benefit is not None:
                _wire.set_benefit_type(body, benefit)
            try:
                response: Response = yield _wire.generate_call(
                    self._context, session, body, kind=kind, query=query
                )
            except APIError as error:
                if error.code not in _BENEFIT_REFUSALS or index + 1 >= len(benefits):
                    raise
                _logging.logger.info(
                    "dreamina: benefit type %s refused (ret %s); trying %s",
                    benefit,
                    error.code,
                    benefits[index + 1],
                )
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _mark_exhausted(self, session: Session, today: datetime.date) -> None:
        self._exhausted[session.key] = today
        if self._sessions[self._current % len(self._sessions)] is session:
            self._current = (self._current + 1) % len(self._sessions)

    def _unusable_error(
        self, pool: Sequence[str], why: Mapping[str, str], last: APIError | None
    ) -> APIError:
        reasons = "; ".join(f"{name}: {why.get(name, 'not tried')}" for name in pool)
        logged_out = all("1015" in reason for reason in why.values()) and bool(why)
        common: dict[str, Any] = {
            "status_code": last.status_code if last else None,
            "request_id": last.request_id if last else None,
            "backend": self.name,
        }
        if logged_out:
            return SessionExpiredError(
                f"no Dreamina session is logged in ({reasons}); log in again and copy a fresh "
                "sessionid",
                code="1015",
                **common,
            )
        return InsufficientCreditsError(
            f"no Dreamina session can pay for this request ({reasons}). Claim the daily "
            "credits (await client.account.claim()), add sessions, or wait for the daily refill",
            sessions=[name for name in pool if "1015" not in why.get(name, "")],
            code=last.code if isinstance(last, InsufficientCreditsError) else "1006",
            **common,
        )

    # -- uploads (§4) ----------------------------------------------------------------------------

    def _upload(
        self, session: Session, inputs: Sequence[ImageInput], fetched: dict[str, bytes]
    ) -> Flow[list[_wire.UploadedImage]]:
        """Upload every input through ImageX; returns them (URI, size, format), in order."""
        context = self._context
        grant = _wire.parse_upload_token(
            (yield _wire.upload_token_call(context, session)), session.region
        )
        _register_grant(grant)
        uploads: list[_wire.UploadedImage] = []
        for image in inputs:
            data = image.data
            if data is None and image.url is not None:
                # URL references are downloaded once (through the engine) and uploaded.
                if image.url not in fetched:
                    fetched[image.url] = (yield _wire.fetch_call(image.url, session)).body
                data = fetched[image.url]
            if data is None:
                raise ValidationError("images", "a local file must be read first")
            nonce = "".join(self._rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=10))
            apply = yield _wire.apply_upload_call(
                context, session, grant, size=len(data), nonce=nonce
            )
            target = _wire.parse_apply(apply)
            _logging.register_secret(target.auth, temporary=True)
            yield _wire.store_upload_call(context, session, target, data)
            commit = yield _wire.commit_upload_call(context, session, grant, target.session_key)
            uploaded = _wire.parse_commit(commit)
            if session.region.code == "cn":
                # §4.3: IPT checks each CN upload; a refusal (2003) stops, other errors are noise.
                try:
                    yield _wire.algo_proxy_call(context, session, uploaded.uri)
                except ContentPolicyError:
                    raise
                except APIError as error:
                    _logging.logger.info("dreamina: image check skipped: %s", error)
            uploads.append(uploaded)
        return uploads

    def _upload_videos(
        self, session: Session, videos: Sequence[MediaInput], fetched: dict[str, bytes]
    ) -> Flow[list[_wire.UploadedVideo]]:
        """§11: each omni video through VOD (token, apply, upload, commit), in order; the
        committed lengths must stay within 15 s in all (IPT's limit)."""
        grant = _wire.parse_vod_token((yield _wire.vod_token_call(self._context, session)))
        _register_grant(grant)
        uploaded: list[_wire.UploadedVideo] = []
        for video in videos:
            data = video.data
            if data is None and video.url is not None:
                if video.url not in fetched:
                    fetched[video.url] = (yield _wire.fetch_call(video.url, session)).body
                data = fetched[video.url]
            if data is None:
                raise ValidationError("reference_videos", "a local file must be read first")
            nonce = "".join(self._rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=10))
            target = _wire.parse_vod_apply(
                (
                    yield _wire.vod_apply_call(
                        self._context, session, grant, size=len(data), nonce=nonce
                    )
                )
            )
            _logging.register_secret(target.auth, temporary=True)
            yield _wire.vod_store_call(self._context, session, target, data)
            committed = yield _wire.vod_commit_call(
                self._context, session, grant, target.session_key
            )
            uploaded.append(_wire.parse_vod_commit(committed))
        total = sum(video.duration_ms for video in uploaded)
        if total > _OMNI_VIDEO_LIMIT_MS:
            raise ValidationError(
                "reference_videos",
                f"the videos last {total / 1000:g} s together; omni reference mode takes at "
                f"most {_OMNI_VIDEO_LIMIT_MS // 1000} s",
            )
        return uploaded

    # -- tasks -------------------------------------------------------------------------------------

    def _session_for(self, key: str) -> Session:
        for session in self._sessions:
            if session.key == key:
                return session
        raise ConfigurationError(
            f"the task belongs to session …{key}, which this client does not hold; "
            "configure that session to follow the task"
        )

    def resume(self, ref: str, *, model: str | None = None) -> Task:
        parts = ref.split(":")
        if len(parts) == 3 and parts[0] in (TaskKind.IMAGE.value, TaskKind.VIDEO.value):
            kind, key, history_id = TaskKind(parts[0]), parts[1], parts[2]
            self._session_for(key)
        else:
            # A bare record id: the first session, and the kind its model names.
            history_id, key = ref, self._sessions[0].key
            video = model is not None and model.strip().lower() in VIDEO_MODELS
            kind = TaskKind.VIDEO if video else TaskKind.IMAGE
        return Task(
            id=history_id,
            kind=kind,
            status=TaskStatus.UNKNOWN,
            backend=self.name,
            ref=f"{kind.value}:{key}:{history_id}",
            model=model,
            context={"session": key},
        )

    def poll(self, task: Task) -> Flow[Task]:
        resumed = self.resume(task.ref)
        session = self._session_for(str(resumed.context["session"]))
        response: Response = yield _wire.history_call(self._context, session, resumed.id, task.kind)
        base = PollPolicy.for_kind(task.kind).interval
        updated = _wire.parse_history(response, task, base_interval=base)
        video = updated.result
        if isinstance(video, VideoResult) and updated.status is TaskStatus.SUCCEEDED:
            items = video.raw.get("item_list") or []
            item = _wire.item_id(items[0]) if items else None
            if item is not None:
                # §5.4: ask for the high-bitrate copy; the preview URL stays if that fails.
                try:
                    better = _wire.parse_local_items(
                        (yield _wire.local_items_call(self._context, session, item))
                    )
                except JimengError as error:
                    _logging.logger.info("dreamina: keeping the preview video URL: %s", error)
                    better = None
                if better:
                    updated = attrs.evolve(updated, result=_wire.with_video_url(video, better))
        return updated

    def failure_error(self, task: Task) -> JimengError | None:
        failure = task.failure
        if failure is None or str(failure.code) not in CONTENT_FAIL_CODES:
            return None
        return ContentPolicyError(
            f"task {task.id} was refused by moderation: {failure.message}",
            code=str(failure.code),
            backend=self.name,
            task_id=task.id,
            task_ref=task.ref,
        )

    # -- sessions (§17) ---------------------------------------------------------------------------

    def check_sessions(self) -> Flow[Sequence[SessionStatus]]:
        """§17: ask each session's site who is logged in (``passport/account/info/v2``)."""
        statuses: list[SessionStatus] = []
        for session in self._sessions:
            response = yield _wire.account_info_call(self._context, session)
            live, note = _wire.parse_account_info(response)
            if live is False and "1015" in (note or ""):
                self._logged_out[session.key] = "not logged in (ret 1015)"
            elif live:
                self._logged_out.pop(session.key, None)
            statuses.append(
                SessionStatus(
                    session=session.fingerprint, live=live, region=session.region.code, note=note
                )
            )
        return statuses

    def poll_policy(self, task: Task) -> PollPolicy:
        """§18: the peers wait 30 minutes for images and an hour for videos before they give
        up, so a slow queue is not reported as a failure. The environment still overrides."""
        return _web_poll_policy(task.kind)

    # -- credits (§7) ----------------------------------------------------------------------------

    def _balance(self, session: Session, response: Response) -> AccountBalance:
        gift, purchase, vip = _wire.parse_credit(response)
        balance = AccountBalance(
            session=session.fingerprint,
            gift=gift,
            purchase=purchase,
            vip=vip,
            region=session.region.code,
        )
        if balance.total > 0:
            self._exhausted.pop(session.key, None)
        return balance

    def credits(self) -> Flow[Sequence[AccountBalance]]:
        balances: list[AccountBalance] = []
        for session in self._sessions:
            response = yield _wire.credit_call(self._context, session)
            balances.append(self._balance(session, response))
        return balances

    def claim_credits(self) -> Flow[Sequence[AccountBalance]]:
        balances: list[AccountBalance] = []
        for session in self._sessions:
            received = _wire.parse_receive(
                (yield _wire.credit_receive_call(self._context, session))
            )
            _logging.logger.info(
                "dreamina: session %s claimed %d credits", session.fingerprint, received
            )
            response = yield _wire.credit_call(self._context, session)
            balances.append(self._balance(session, response))
        return balances
