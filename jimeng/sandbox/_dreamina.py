"""The Dreamina web protocol, emulated (protocols/dreamina-web.md).

Every region's hosts are answered on loopback under ``/_dreamina/<real host>/…``; the backend is
pointed here with ``Dreamina(..., base_urls=base_urls(server.url))``. What the real service
checks is checked: the ``Sign`` and a fresh ``Device-Time``, the client version (``3018``), the
session cookies and the site a session belongs to (``1015`` elsewhere), the ImageX SigV4
signature (:func:`jimeng._signing.verify`) and the upload's CRC32, per-session credits (``1006``,
``5000``), region-restricted models and the Seedance browser check (``1019``).

Sessions are created on first use with :data:`DEFAULT_CREDITS`, bound to the site they are first
seen on; configure one before use with ``protocol.session(sid)``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
import time
import zlib
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import attrs
from aiohttp import web

from jimeng._signing import SignatureMismatch, imagex_profile, parse_authorization, verify
from jimeng.backends.dreamina._tables import (
    FOUR_K_CODE_OFFSET,
    IMAGE_MODELS,
    RATIO_CODES,
    REGIONS,
    VIDEO_MODELS,
    VIDEO_RATIOS,
    ImageModel,
    Region,
    VideoModel,
)
from jimeng.sandbox._media import mp4_info, render_mp4, render_png, sniff_image
from jimeng.sandbox._server import (
    Fault,
    SandboxServer,
    SandboxTask,
    abort,
    non_json_page,
    truncated_json,
)
from jimeng.sandbox._volcengine import BLOCK_INPUT, BLOCK_OUTPUT, FAIL_TASK

__all__ = [
    "BANNED_WORDS",
    "DEFAULT_CREDITS",
    "RET_TRIGGERS",
    "ROUTE_PREFIX",
    "SANDBOX_TOKENS",
    "DreaminaProtocol",
    "SandboxSession",
    "base_urls",
]

ROUTE_PREFIX = "/_dreamina"
#: What ``Sandbox(protocol="dreamina")`` uses when no tokens are given (one CN session).
SANDBOX_TOKENS = "sandbox-session-cn-0001"
DEFAULT_CREDITS = 100
DAILY_QUOTA = 60
IMAGE_COST = 1
IMAGE_4K_COST = 4
VIDEO_COST_PER_SECOND = 1
MIN_APP_VERSION = "8.4.0"  # §1.3: older clients get 3018

BANNED_WORDS = "sandbox:banned-words"
#: Prompt markers → the ``ret`` the generate call answers (see docs/dreamina.md).
RET_TRIGGERS: Mapping[str, tuple[str, str]] = {
    BLOCK_INPUT: ("4001", "content violation"),
    "sandbox:param-error": ("4002", "param error"),
    "sandbox:compliance": ("4010", "aigc compliance not confirmed"),
    "sandbox:risk": ("4013", "生成失败，疑似存在异常行为"),
    "sandbox:shark": ("1019", "shark not pass"),
    "sandbox:entitlement": ("5001", "credit prededuct failed"),
    "sandbox:region": ("3000", "region not allow"),
    "sandbox:video-failed": ("5002", "video generation failed"),
}
#: Prompt markers → the ``fail_code`` of a record that fails (status 30).
FAIL_TRIGGERS: Mapping[str, tuple[str, str]] = {
    BLOCK_OUTPUT: ("2038", "content filtered"),
    BANNED_WORDS: ("2047", "banned words"),
    FAIL_TASK: ("1017", "generation failed"),
}

_MAIN_HOSTS: dict[str, list[Region]] = {}
_COMMERCE_HOSTS: dict[str, list[Region]] = {}
_IMAGEX_HOSTS: dict[str, list[Region]] = {}
for _region in REGIONS.values():
    _MAIN_HOSTS.setdefault(_region.main.split("://", 1)[1], []).append(_region)
    _COMMERCE_HOSTS.setdefault(_region.commerce.split("://", 1)[1], []).append(_region)
    _IMAGEX_HOSTS.setdefault(_region.imagex.split("://", 1)[1], []).append(_region)
_UPLOAD_HOSTS: Mapping[str, str] = {f"tos-{code}-upload.sandbox.invalid": code for code in REGIONS}
#: §11: VOD is one host for every region.
_VOD_HOST = "vod.bytedanceapi.com"
_UPLOAD_HOST_OF = {code: host for host, code in _UPLOAD_HOSTS.items()}

#: §6.1 / ZH: pixel sizes of 720p videos per ratio (1080p is 1.5×).
_VIDEO_720P: Mapping[str, tuple[int, int]] = {
    "1:1": (720, 720),
    "4:3": (960, 720),
    "3:4": (720, 960),
    "16:9": (1280, 720),
    "9:16": (720, 1280),
    "21:9": (1680, 720),
}


def base_urls(server_url: str) -> dict[str, str]:
    """The ``base_urls`` that send every Dreamina host to this sandbox."""
    return {"*": f"{server_url.rstrip('/')}{ROUTE_PREFIX}/{{host}}"}


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return (0,)


@attrs.define(kw_only=True)
class SandboxSession:
    """One emulated account."""

    sid: str
    region: str | None = None  # bound on first use
    gift: int = DEFAULT_CREDITS
    purchase: int = 0
    vip: int = 0
    expired: bool = False
    #: ``ret`` that credit_receive answers (``"-4"`` shark check, ``"34010100"`` param error).
    claim_error: str | None = None
    claimed: bool = False
    #: Video benefit types this account lacks: offering one answers ``5001`` (§14).
    refused_benefits: set[str] = attrs.field(factory=set)

    @property
    def total(self) -> int:
        return self.gift + self.purchase + self.vip

    def debit(self, cost: int) -> None:
        for pocket in ("gift", "purchase", "vip"):
            take = min(cost, getattr(self, pocket))
            setattr(self, pocket, getattr(self, pocket) - take)
            cost -= take


@attrs.define(kw_only=True)
class _Grant:
    secret: str
    token: str
    sid: str
    region: str
    service: str
    vod: bool = False


@attrs.define(kw_only=True)
class _StoredVideo:
    region: str
    sid: str
    width: int
    height: int
    seconds: float


@attrs.define(kw_only=True)
class _Pending:
    store_uri: str
    auth: str
    size: int
    access_key: str
    data: bytes | None = None


@attrs.define(kw_only=True)
class _Stored:
    region: str
    sid: str
    data: bytes
    width: int
    height: int


class _Reject(Exception):
    """Answer with a web envelope carrying this ``ret``."""

    def __init__(self, ret: str, errmsg: str, status: int = 200):
        super().__init__(errmsg)
        self.ret = ret
        self.errmsg = errmsg
        self.status = status


class DreaminaProtocol:
    """Routes ``/_dreamina/{host}/{path}`` for every host of every region."""

    label = "dreamina"

    def __init__(self, *, max_skew: float = 300.0, min_app_version: str = MIN_APP_VERSION):
        self.max_skew = max_skew
        self.min_app_version = min_app_version
        self.server: SandboxServer | None = None
        self.sessions: dict[str, SandboxSession] = {}
        #: Every submit_id seen, in order (a resubmission must never reuse one).
        self.submit_ids: list[str] = []
        #: Every generate call as received: its query and JSON body, in order.
        self.generated: list[dict[str, Any]] = []
        #: Requests answered, per real host (to check which region's host was used).
        self.hosts: dict[str, int] = {}
        #: ``Device-Time`` of each web request, per action label, in arrival order.
        self.device_times: dict[str, list[int]] = {}
        self._grants: dict[str, _Grant] = {}
        self._pending: dict[str, _Pending] = {}
        self._by_store_uri: dict[str, str] = {}
        self.store: dict[str, _Stored] = {}
        #: Committed VOD uploads by ``Vid`` (§11).
        self.videos: dict[str, _StoredVideo] = {}

    def install(self, server: SandboxServer) -> None:
        self.server = server
        server.app.router.add_route("*", ROUTE_PREFIX + "/{host}/{path:.*}", self.handle)

    def session(self, sid: str) -> SandboxSession:
        """The emulated account for ``sid`` (created with the default credits if new)."""
        if sid not in self.sessions:
            self.sessions[sid] = SandboxSession(sid=sid)
        return self.sessions[sid]

    # -- envelopes -----------------------------------------------------------------------------

    def _envelope(
        self, ret: str, errmsg: str, data: Any = None, *, status: int = 200
    ) -> web.Response:
        payload = {
            "ret": ret,
            "errmsg": errmsg,
            "systime": str(int(time.time())),
            "logid": secrets.token_hex(12).upper(),
            "data": data,
        }
        return web.json_response(payload, status=status)

    def _ok(self, data: Any) -> web.Response:
        return self._envelope("0", "success", data)

    def _imagex_error(
        self, request: web.Request, code: str, message: str, status: int
    ) -> web.Response:
        return web.json_response(
            {
                "ResponseMetadata": {
                    "RequestId": secrets.token_hex(12),
                    "Action": request.query.get("Action", ""),
                    "Version": request.query.get("Version", ""),
                    "Service": "imagex",
                    "Error": {"Code": code, "Message": message},
                }
            },
            status=status,
        )

    async def _fault(self, request: web.Request, label: str) -> web.StreamResponse | None:
        assert self.server is not None
        fault: Fault | None = self.server.take_fault(label)
        if fault is None:
            return None
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
        response = self._envelope(
            str(fault.code) if fault.code is not None else "-1",
            fault.message or "injected failure",
            status=fault.status,
        )
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response

    # -- dispatch ------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        host = request.match_info["host"]
        path = "/" + request.match_info["path"]
        body = await request.read()
        self.hosts[host] = self.hosts.get(host, 0) + 1
        if host in _UPLOAD_HOSTS:
            return await self._store_upload(request, host, path, body)
        if host in _IMAGEX_HOSTS:
            return await self._imagex(request, host, body)
        if host == _VOD_HOST:
            return await self._vod(request, body)
        if host in _MAIN_HOSTS or host in _COMMERCE_HOSTS:
            return await self._web(request, host, path, body)
        return web.Response(status=404, text=f"unknown host {host}")

    _ROUTES: Mapping[str, str] = {
        "/mweb/v1/aigc_draft/generate": "submit",
        "/mweb/v1/get_history_by_ids": "poll",
        "/mweb/v1/get_local_item_list": "poll",
        "/mweb/v1/get_upload_token": "upload",
        "/mweb/v1/algo_proxy": "upload",
        "/commerce/v1/benefits/user_credit": "credits",
        "/commerce/v1/benefits/credit_receive": "credits",
        "/passport/account/info/v2": "check",
    }

    async def _web(
        self, request: web.Request, host: str, path: str, body: bytes
    ) -> web.StreamResponse:
        assert self.server is not None
        label = self._ROUTES.get(path)
        commerce = path.startswith("/commerce/")
        regions = (_COMMERCE_HOSTS if commerce else _MAIN_HOSTS).get(host)
        if label is None or request.method != "POST" or not regions:
            return web.Response(status=404, text="not found")
        if label == "check" and any(r.code in ("hk", "jp", "sg") for r in regions):
            # §7.4 / §17: the HK/JP/SG host has no passport endpoint.
            return web.Response(status=404, text="not found")
        self.server.requests[label] += 1
        device_time = request.headers.get("Device-Time", "")
        if device_time.isdigit():
            self.device_times.setdefault(label, []).append(int(device_time))
        injected = await self._fault(request, label)
        if injected is not None:
            return injected
        try:
            region = self._region(request, regions)
            session = self._authenticate(request, region, host, path)
            if path == "/passport/account/info/v2" and body:
                raise _Reject("4002", "param error: account info takes no body")
            try:
                payload = json.loads(body.decode("utf-8")) if body else {}
            except (UnicodeDecodeError, ValueError):
                raise _Reject("4002", "param error: body is not JSON") from None
            if not isinstance(payload, dict):
                raise _Reject("4002", "param error: body is not an object")
            handler = {
                "/mweb/v1/aigc_draft/generate": self._generate,
                "/mweb/v1/get_history_by_ids": self._history,
                "/mweb/v1/get_local_item_list": self._local_items,
                "/mweb/v1/get_upload_token": self._upload_token,
                "/mweb/v1/algo_proxy": self._algo_proxy,
                "/commerce/v1/benefits/user_credit": self._user_credit,
                "/commerce/v1/benefits/credit_receive": self._credit_receive,
                "/passport/account/info/v2": self._account_info,
            }[path]
            return handler(request, region, session, payload)
        except _Reject as reject:
            return self._envelope(reject.ret, reject.errmsg, status=reject.status)

    def _region(self, request: web.Request, regions: list[Region]) -> Region:
        """Which site a request is for: the host, then its ``region`` query (or ``Loc``)."""
        query = request.query
        if query:
            wanted = query.get("region", "")
            matches = [r for r in regions if r.query_region == wanted]
            if not matches:
                # §1.1: the wrong region on a host gives cross-region errors.
                raise _Reject("1015", "login error: region does not match this host")
            region = matches[0]
            if query.get("aid") != str(region.aid):
                raise _Reject("4002", "param error: aid")
            if query.get("device_platform") != "web":
                raise _Reject("4002", "param error: device_platform")
            return region
        matches = [r for r in regions if r.loc == request.headers.get("Loc")]
        if not matches:
            raise _Reject("1015", "login error: cannot tell the site")
        return matches[0]

    def _authenticate(
        self, request: web.Request, region: Region, host: str, path: str
    ) -> SandboxSession:
        headers = request.headers
        if _version(headers.get("Appvr", "")) < _version(self.min_app_version):
            raise _Reject("3018", "permission denied")
        if headers.get("Appid") != str(region.aid):
            raise _Reject("4002", "param error: Appid")
        if headers.get("Origin") != f"https://{host}":
            raise _Reject("4002", "param error: Origin does not match the host")
        if (headers.get("Lan"), headers.get("Loc")) != (region.lan, region.loc):
            raise _Reject("4002", "param error: Lan/Loc do not match the site")
        device_time = headers.get("Device-Time", "")
        if headers.get("Sign-Ver") != "1" or not device_time.isdigit():
            raise _Reject("4002", "param error: Sign-Ver/Device-Time missing")
        if abs(time.time() - int(device_time)) > self.max_skew:
            raise _Reject("4002", "param error: Device-Time is not current")
        expected = hashlib.md5(
            f"9e2c|{path[-7:]}|{headers.get('Pf', '')}|{headers.get('Appvr', '')}|"
            f"{device_time}||11ac".encode()
        ).hexdigest()
        if headers.get("Sign") != expected:
            raise _Reject("4002", "param error: Sign does not match")
        cookies = dict(
            part.strip().split("=", 1)
            for part in headers.get("Cookie", "").split(";")
            if "=" in part
        )
        sid = cookies.get("sessionid", "")
        if not sid or cookies.get("sessionid_ss") != sid or cookies.get("sid_tt") != sid:
            raise _Reject("1015", "login error")
        session = self.session(sid)
        if session.region is None:
            session.region = region.code
        if session.region != region.code or session.expired:
            raise _Reject("1015", "check login error")
        return session

    # -- generation ----------------------------------------------------------------------------

    def _generate(
        self,
        request: web.Request,
        region: Region,
        session: SandboxSession,
        payload: dict[str, Any],
    ) -> web.Response:
        assert self.server is not None
        submit_id = payload.get("submit_id")
        root = (payload.get("extend") or {}).get("root_model")
        if not isinstance(submit_id, str) or not submit_id or not isinstance(root, str):
            raise _Reject("4002", "param error: submit_id/root_model")
        if (payload.get("http_common_info") or {}).get("aid") != region.aid:
            raise _Reject("4002", "param error: http_common_info.aid")
        self.submit_ids.append(submit_id)
        self.generated.append({"query": dict(request.query), "body": payload})
        try:
            draft = json.loads(payload["draft_content"])
            json.loads(payload["metrics_extra"])
            component = draft["component_list"][0]
            kind = component["generate_type"]
        except (KeyError, IndexError, TypeError, ValueError):
            raise _Reject("4002", "param error: draft_content") from None
        if kind in ("generate", "blend"):
            record = self._image_record(region, session, root, component, kind == "blend")
            record.extra["count"] = _image_count(payload, record.prompt)
        elif kind == "gen_video":
            record = self._video_record(request, region, session, root, payload, component)
        else:
            raise _Reject("4002", f"param error: generate_type {kind!r}")
        record.extra["submit_id"] = submit_id
        self.server.add_task(record)
        return self._ok(
            {
                "aigc_data": {
                    "history_record_id": record.id,
                    "submit_id": submit_id,
                    "task": {"task_id": record.id, "status": 20},
                }
            }
        )

    def _charge(self, session: SandboxSession, cost: int) -> None:
        if session.total <= 0:
            raise _Reject("1006", "Not enough credits left")
        if session.total < cost:
            raise _Reject("5000", "credit prededuct not enough")
        session.debit(cost)

    def _new_record(
        self, kind: str, model: str, prompt: str, session: SandboxSession, region: Region
    ) -> SandboxTask:
        assert self.server is not None
        record = SandboxTask(
            id=self.server.new_id(),
            kind=kind,
            model=model,
            prompt=prompt,
            params={},
            created=self.server.now(),
            stages=self.server.stages,
            extra={"sid": session.sid, "region": region.code},
        )
        for marker, (code, message) in FAIL_TRIGGERS.items():
            if marker in prompt:
                record.outcome = f"failed:{code}:{message}"
        return record

    @staticmethod
    def _triggers(prompt: str) -> None:
        for marker, (ret, message) in RET_TRIGGERS.items():
            if marker in prompt:
                raise _Reject(ret, message)

    def _image_record(
        self,
        region: Region,
        session: SandboxSession,
        root: str,
        component: Mapping[str, Any],
        blend: bool,
    ) -> SandboxTask:
        abilities = component.get("abilities") or {}
        ability = abilities.get("blend" if blend else "generate") or {}
        core = ability.get("core_param") or {}
        model = _image_model(core.get("model"))
        if model is None or core.get("model") != root:
            raise _Reject("4002", "param error: model")
        if region.code not in model.regions:
            raise _Reject("4002", f"param error: {model.name} is not offered on this site")
        prompt = core.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise _Reject("4002", "param error: prompt")
        info = core.get("large_image_info") or {}
        resolution = info.get("resolution_type")
        width, height = info.get("width"), info.get("height")
        if (
            resolution not in ("1k", "2k", "4k")
            or not isinstance(width, int)
            or not isinstance(height, int)
        ):
            raise _Reject("4002", "param error: large_image_info")
        code = core.get("image_ratio")
        if code is None and not (core.get("intelligent_ratio") and not blend):
            raise _Reject("4002", "param error: image_ratio")
        if code is not None:
            base = code - FOUR_K_CODE_OFFSET if code > FOUR_K_CODE_OFFSET else code
            offset_ok = (code > FOUR_K_CODE_OFFSET) == (resolution == "4k" and model.four_k_offset)
            if base not in RATIO_CODES.values() or not offset_ok:
                raise _Reject("4002", "param error: image_ratio")
        if core.get("intelligent_ratio") and not model.intelligent_ratio:
            raise _Reject("4002", "param error: intelligent_ratio")
        if blend:
            items = ability.get("ability_list") or []
            if not 1 <= len(items) <= 10 or "seed" in core:
                raise _Reject("4002", "param error: ability_list")
            hashes = "#" * (2 * len(items))
            if not prompt.startswith(hashes):
                raise _Reject("4002", "param error: blend prompt placeholders")
            prompt = prompt[len(hashes) :]
            for item in items:
                uri = (item.get("image_uri_list") or [None])[0]
                stored = self.store.get(str(uri))
                if stored is None or stored.region != region.code:
                    raise _Reject("4002", f"param error: unknown image uri {uri!r}")
        self._triggers(prompt)
        self._charge(session, IMAGE_4K_COST if resolution == "4k" else IMAGE_COST)
        record = self._new_record("image", model.internal, prompt, session, region)
        record.extra.update(width=width, height=height)
        return record

    def _video_record(
        self,
        request: web.Request,
        region: Region,
        session: SandboxSession,
        root: str,
        payload: Mapping[str, Any],
        component: Mapping[str, Any],
    ) -> SandboxTask:
        try:
            params = component["abilities"]["gen_video"]["text_to_video_params"]
            gen_input = params["video_gen_inputs"][0]
        except (KeyError, IndexError, TypeError):
            raise _Reject("4002", "param error: gen_video") from None
        model = _video_model(params.get("model_req_key"))
        if model is None or model.internal != root:
            raise _Reject("4002", "param error: model_req_key")
        if region.code not in model.regions:
            raise _Reject("4002", f"param error: {model.name} is not offered on this site")
        extend = payload.get("extend") or {}
        benefit = (extend.get("m_video_commerce_info") or {}).get("benefit_type")
        listed = [
            item.get("benefit_type") for item in extend.get("m_video_commerce_info_list") or []
        ]
        duration_ms = gen_input.get("duration_ms")
        seconds_asked = duration_ms // 1000 if isinstance(duration_ms, int) else 0
        if (
            benefit not in model.benefit_types(seconds_asked)
            or listed != [benefit]
            or benefit in session.refused_benefits
        ):
            raise _Reject("5001", "credit prededuct failed")
        if model.browser_check and "a_bogus" not in request.query:
            # §6.2 / §9: Seedance on CN needs the browser's a_bogus token.
            raise _Reject("1019", "shark not pass")
        duration_ms = gen_input.get("duration_ms")
        if not isinstance(duration_ms, int) or duration_ms // 1000 not in model.durations:
            raise _Reject("4002", "param error: duration_ms")
        ratio = params.get("video_aspect_ratio")
        if ratio not in VIDEO_RATIOS or gen_input.get("fps") != 24:
            raise _Reject("4002", "param error: video_aspect_ratio/fps")
        resolution = gen_input.get("resolution")
        if (resolution is not None) != bool(model.resolutions) or (
            resolution is not None and resolution not in model.resolutions
        ):
            raise _Reject("4002", "param error: resolution")
        prompt = gen_input.get("prompt")
        if not isinstance(prompt, str):
            raise _Reject("4002", "param error: prompt")
        frame: _Stored | None = None
        draft = json.loads(payload["draft_content"])
        if "AIGC_Video_UnifiedEdit" in (draft.get("min_features") or []):
            prompt, frame = self._omni_inputs(request, region, model, draft, gen_input)
        first = gen_input.get("first_frame_image")
        last = gen_input.get("end_frame_image")
        if last is not None and first is None:
            raise _Reject("4002", "param error: end frame without a first frame")
        for image in (first, last):
            if image is not None:
                stored = self.store.get(str(image.get("image_uri")))
                if stored is None or stored.region != region.code:
                    raise _Reject("4002", "param error: unknown frame uri")
                frame = frame or stored
        self._triggers(prompt)
        seconds = duration_ms // 1000
        self._charge(session, seconds * VIDEO_COST_PER_SECOND)
        record = self._new_record("video", model.internal, prompt, session, region)
        width, height = _VIDEO_720P[str(ratio)]
        if frame is not None:  # §6.1: the first frame decides the ratio
            aspect = min(max(frame.width / frame.height, 1 / 3), 3.0)
            width, height = (
                (round(720 * aspect), 720) if aspect >= 1 else (720, round(720 / aspect))
            )
        if resolution == "1080p":
            width, height = width * 3 // 2, height * 3 // 2
        record.extra.update(width=width - width % 2, height=height - height % 2, seconds=seconds)
        return record

    def _omni_inputs(
        self,
        request: web.Request,
        region: Region,
        model: VideoModel,
        draft: Mapping[str, Any],
        gen_input: Mapping[str, Any],
    ) -> tuple[str, _Stored | None]:
        """§11: an omni draft — the prompt rebuilt from ``meta_list``, the first image."""
        if not model.omni or region.code != "cn":
            raise _Reject("4002", "param error: omni reference needs Seedance 2.0 on CN")
        if draft.get("version") != "3.3.9" or request.query.get("da_version") != "3.3.9":
            raise _Reject("4002", "param error: omni drafts are version 3.3.9")
        if gen_input.get("prompt") != "" or "first_frame_image" in gen_input:
            raise _Reject("4002", "param error: omni input carries prompt or frames")
        unified = gen_input.get("unified_edit_input") or {}
        materials = unified.get("material_list") or []
        if not 1 <= len(materials) <= 12:
            raise _Reject("4002", "param error: material_list")
        stored_materials = []
        kinds = []
        for material in materials:
            kind = material.get("material_type")
            kinds.append(kind)
            if kind == "video":
                video = (material.get("video_info") or {}).get("vid")
                stored_video = self.videos.get(str(video))
                if stored_video is None or stored_video.region != region.code:
                    raise _Reject("4002", "param error: unknown video material")
                continue
            info = material.get("image_info") or {}
            stored = self.store.get(str(info.get("image_uri")))
            if kind != "image" or stored is None:
                raise _Reject("4002", "param error: unknown material")
            if stored.region != region.code or info.get("uri") != info.get("image_uri"):
                raise _Reject("4002", "param error: material uri")
            stored_materials.append(stored)
        if kinds != sorted(kinds, key=lambda kind: kind == "video"):
            raise _Reject("4002", "param error: images come before videos")
        text = []
        for meta in unified.get("meta_list") or []:
            if meta.get("meta_type") == "text":
                text.append(str(meta.get("text", "")))
            else:
                index = (meta.get("material_ref") or {}).get("material_idx")
                if not isinstance(index, int) or not 0 <= index < len(materials):
                    raise _Reject("4002", "param error: material_ref")
                if meta.get("meta_type") != kinds[index]:
                    raise _Reject("4002", "param error: meta_type")
                images = kinds.count("image")
                number = index + 1 if kinds[index] == "image" else index - images + 1
                text.append(f"@{kinds[index]}_file_{number}")
        if not text:
            raise _Reject("4002", "param error: meta_list")
        return "".join(text), (stored_materials[0] if stored_materials else None)

    # -- polling -------------------------------------------------------------------------------

    def _history(
        self,
        request: web.Request,
        region: Region,
        session: SandboxSession,
        payload: dict[str, Any],
    ) -> web.Response:
        assert self.server is not None
        by_submit = "submit_ids" in payload
        wanted = payload.get("submit_ids" if by_submit else "history_ids")
        if not isinstance(wanted, list) or not wanted:
            raise _Reject("4002", "param error: history_ids")
        data: dict[str, Any] = {}
        for key in wanted:
            record = self._record(str(key), by_submit)
            if record is None or record.extra.get("sid") != session.sid:
                continue  # unknown here, or another account's record: not listed
            data[str(key)] = self._observe(record, region)
        return self._ok(data)

    def _record(self, key: str, by_submit: bool) -> SandboxTask | None:
        assert self.server is not None
        if not by_submit:
            return self.server.tasks.get(key)
        return next(
            (t for t in self.server.tasks.values() if t.extra.get("submit_id") == key), None
        )

    def _observe(self, record: SandboxTask, region: Region) -> dict[str, Any]:
        assert self.server is not None
        record.polls += 1
        self.server.polls[record.id] += 1
        stage = record.stage(self.server.now(), self.server.time_factor)
        entry: dict[str, Any] = {
            "history_record_id": record.id,
            "submit_id": record.extra.get("submit_id"),
            "status": 20,
            "fail_code": "",
            "item_list": [],
            "task": {"task_id": record.id, "finish_time": 0},
        }
        if stage == "running":
            seen = record.extra.get("running_polls", 0)
            record.extra["running_polls"] = seen + 1
            entry["status"] = 42 if seen == 0 else 45  # post-processing, then finalizing
        elif stage == "done":
            entry["task"]["finish_time"] = int(time.time())
            if record.outcome.startswith("failed:"):
                _, code, _message = record.outcome.split(":", 2)
                entry.update(status=30, fail_code=code)
            elif record.kind == "image":
                entry.update(status=50, item_list=self._image_items(record, region))
            else:
                entry.update(status=10, item_list=[self._video_item(record, region)])
        return entry

    def _signed(self, url: str, region: Region) -> str:
        expires = int(time.time()) + 86400
        # §5.4: international answers carry a literal "\u0026" where "&" belongs.
        amp = "&" if region.code == "cn" else "\\u0026"
        return f"{url}?x-expires={expires}{amp}x-signature=sandbox"

    def _image_items(self, record: SandboxTask, region: Region) -> list[dict[str, Any]]:
        assert self.server is not None
        width, height = record.extra["width"], record.extra["height"]
        items = []
        for index in range(1, record.extra.get("count", 4) + 1):  # §3.5, §12
            name = f"dreamina/{record.id}/{index}.png"
            prompt = record.prompt if index == 1 else f"{record.prompt} #{index}"
            url = self.server.add_media(
                name, "image/png", functools.partial(render_png, prompt, width, height)
            )
            url = self._signed(url, region)
            items.append(
                {
                    "common_attr": {"id": f"{record.id}-{index}", "cover_url": url},
                    "image": {
                        "large_images": [
                            {"image_url": url, "width": width, "height": height, "format": "png"}
                        ]
                    },
                }
            )
        return items

    def _video_media(self, record: SandboxTask, name: str) -> str:
        assert self.server is not None
        render = functools.partial(
            render_mp4,
            record.prompt,
            width=record.extra["width"],
            height=record.extra["height"],
            frames=record.extra["seconds"] * 24,
            fps=24,
        )
        return self.server.add_media(f"dreamina/{record.id}/{name}", "video/mp4", render)

    def _video_item(self, record: SandboxTask, region: Region) -> dict[str, Any]:
        url = self._signed(self._video_media(record, "preview.mp4"), region)
        transcoded = {"origin": {"video_url": url}}
        if region.code in ("hk", "jp", "sg"):  # §5.4: the Asia shape
            return {"common_attr": {"id": f"{record.id}-v", "transcoded_video": transcoded}}
        return {"item_id": f"{record.id}-v", "video": {"transcoded_video": transcoded}}

    def _local_items(
        self,
        request: web.Request,
        region: Region,
        session: SandboxSession,
        payload: dict[str, Any],
    ) -> web.Response:
        assert self.server is not None
        items = []
        for item in payload.get("item_id_list") or []:
            record = self.server.tasks.get(str(item).removesuffix("-v"))
            if record is None or record.extra.get("sid") != session.sid or record.kind != "video":
                continue
            url = self._signed(self._video_media(record, "origin.mp4"), region)
            items.append({"video": {"transcoded_video": {"origin": {"video_url": url}}}})
        return self._ok({"item_list": items})

    # -- uploads -------------------------------------------------------------------------------

    def _upload_token(
        self,
        request: web.Request,
        region: Region,
        session: SandboxSession,
        payload: dict[str, Any],
    ) -> web.Response:
        scene = payload.get("scene")
        if scene not in (1, 2):  # 2: ImageX images (§4.1); 1: VOD videos (§11)
            raise _Reject("4002", "param error: scene")
        access_key = "AKTP" + secrets.token_hex(16)
        grant = _Grant(
            secret=secrets.token_urlsafe(30),
            token="STS2" + secrets.token_urlsafe(60),
            sid=session.sid,
            region=region.code,
            service=region.default_upload_service if scene == 2 else "dreamina",
            vod=scene == 1,
        )
        self._grants[access_key] = grant
        return self._ok(
            {
                "access_key_id": access_key,
                "secret_access_key": grant.secret,
                "session_token": grant.token,
                ("space_name" if scene == 1 else region.upload_service_field): grant.service,
                "expired_time": int(time.time()) + 3600,
            }
        )

    async def _imagex(self, request: web.Request, host: str, body: bytes) -> web.StreamResponse:
        assert self.server is not None
        self.server.requests["upload"] += 1
        injected = await self._fault(request, "upload")
        if injected is not None:
            return injected
        region = _IMAGEX_HOSTS[host][0]
        try:
            access_key = parse_authorization(request.headers.get("Authorization", "")).access_key
        except ValueError:
            return self._imagex_error(request, "MissingSignature", "no valid authorization", 401)
        grant = self._grants.get(access_key)
        if grant is None:
            return self._imagex_error(request, "InvalidAccessKey", "unknown access key", 401)
        try:
            verify(
                method=request.method,
                path=request.raw_path.split("?", 1)[0],
                query=request.query_string,
                headers=request.headers,
                body=body,
                secret_key_for=lambda key: grant.secret if key == access_key else None,
                profile=imagex_profile(region.aws_region),
                now=datetime.now(timezone.utc),
            )
        except SignatureMismatch as error:
            return self._imagex_error(request, "SignatureDoesNotMatch", error.reason, 401)
        if request.headers.get("x-amz-security-token") != grant.token:
            return self._imagex_error(request, "InvalidAccessKey", "bad security token", 401)
        if request.query.get("ServiceId") != grant.service or grant.region not in {
            r.code for r in _IMAGEX_HOSTS[host]
        }:
            return self._imagex_error(request, "AccessDenied", "service not granted", 403)
        action = request.query.get("Action")
        if action == "ApplyImageUpload" and request.method == "GET":
            return self._apply(request, grant, access_key)
        if action == "CommitImageUpload" and request.method == "POST":
            return self._commit(request, grant, access_key, body)
        return self._imagex_error(request, "InvalidActionOrVersion", f"no action {action}", 404)

    async def _vod(self, request: web.Request, body: bytes) -> web.StreamResponse:
        """§11: ApplyUploadInner / CommitUploadInner, SigV4 with service ``vod``."""
        assert self.server is not None
        self.server.requests["upload"] += 1
        try:
            access_key = parse_authorization(request.headers.get("Authorization", "")).access_key
        except ValueError:
            return self._imagex_error(request, "MissingSignature", "no valid authorization", 401)
        grant = self._grants.get(access_key)
        if grant is None or not grant.vod:
            return self._imagex_error(request, "InvalidAccessKey", "unknown access key", 401)
        try:
            verify(
                method=request.method,
                path=request.raw_path.split("?", 1)[0],
                query=request.query_string,
                headers=request.headers,
                body=body,
                secret_key_for=lambda key: grant.secret if key == access_key else None,
                profile=imagex_profile(REGIONS[grant.region].aws_region, service="vod"),
                now=datetime.now(timezone.utc),
            )
        except SignatureMismatch as error:
            return self._imagex_error(request, "SignatureDoesNotMatch", error.reason, 401)
        query = request.query
        if query.get("SpaceName") != grant.service or query.get("Version") != "2020-11-19":
            return self._imagex_error(request, "AccessDenied", "space not granted", 403)
        action = query.get("Action")
        if action == "ApplyUploadInner" and request.method == "GET":
            size = query.get("FileSize", "")
            if query.get("FileType") != "video" or query.get("IsInner") != "1":
                return self._imagex_error(request, "InvalidParameter", "FileType/IsInner", 400)
            if not size.isdigit() or int(size) <= 0:
                return self._imagex_error(request, "InvalidParameter", "FileSize", 400)
            store_uri = f"tos-{grant.region}-v-{grant.service}/{secrets.token_hex(16)}"
            key = secrets.token_urlsafe(24)
            pending = _Pending(
                store_uri=store_uri,
                auth="SpaceKey/" + secrets.token_urlsafe(24),
                size=int(size),
                access_key=access_key,
            )
            self._pending[key] = pending
            self._by_store_uri[store_uri] = key
            node = {
                "UploadHost": _UPLOAD_HOST_OF[grant.region],
                "StoreInfos": [{"StoreUri": store_uri, "Auth": pending.auth}],
                "SessionKey": key,
                "Vid": "v0" + secrets.token_hex(14),
                "Type": "video",
            }
            return web.json_response(
                {
                    "ResponseMetadata": {"RequestId": secrets.token_hex(12), "Action": action},
                    "Result": {"InnerUploadAddress": {"UploadNodes": [node]}},
                }
            )
        if action == "CommitUploadInner" and request.method == "POST":
            try:
                fields = json.loads(body.decode("utf-8"))
                key = fields.get("SessionKey")
            except (UnicodeDecodeError, ValueError, AttributeError):
                return self._imagex_error(request, "InvalidParameter", "body", 400)
            upload = self._pending.get(str(key))
            if upload is None or upload.access_key != access_key or upload.data is None:
                return self._imagex_error(request, "InvalidParameter", "unknown SessionKey", 400)
            if fields.get("Functions") != []:
                return self._imagex_error(request, "InvalidParameter", "Functions", 400)
            try:
                info = mp4_info(upload.data)
            except ValueError:
                return self._imagex_error(request, "InvalidParameter", "not an MP4 video", 400)
            vid = "v0" + secrets.token_hex(14)
            self.videos[vid] = _StoredVideo(
                region=grant.region,
                sid=grant.sid,
                width=info.width,
                height=info.height,
                seconds=info.duration,
            )
            del self._pending[str(key)]
            meta = {
                "Width": info.width,
                "Height": info.height,
                "Duration": info.duration,
                "Format": "mp4",
                "Size": len(upload.data),
            }
            return web.json_response(
                {
                    "ResponseMetadata": {"RequestId": secrets.token_hex(12), "Action": action},
                    "Result": {"Results": [{"Vid": vid, "VideoMeta": meta}]},
                }
            )
        return self._imagex_error(request, "InvalidActionOrVersion", f"no action {action}", 404)

    def _apply(self, request: web.Request, grant: _Grant, access_key: str) -> web.Response:
        size = request.query.get("FileSize", "")
        if not size.isdigit() or int(size) <= 0:
            return self._imagex_error(request, "InvalidParameter", "FileSize", 400)
        store_uri = f"tos-{grant.region}-i-{grant.service}/{secrets.token_hex(16)}"
        key = secrets.token_urlsafe(24)
        pending = _Pending(
            store_uri=store_uri,
            auth="SpaceKey/" + secrets.token_urlsafe(24),
            size=int(size),
            access_key=access_key,
        )
        self._pending[key] = pending
        self._by_store_uri[store_uri] = key
        return web.json_response(
            {
                "ResponseMetadata": {
                    "RequestId": secrets.token_hex(12),
                    "Action": "ApplyImageUpload",
                },
                "Result": {
                    "UploadAddress": {
                        "StoreInfos": [{"StoreUri": store_uri, "Auth": pending.auth}],
                        "UploadHosts": [_UPLOAD_HOST_OF[grant.region]],
                        "SessionKey": key,
                    }
                },
            }
        )

    def _commit(
        self, request: web.Request, grant: _Grant, access_key: str, body: bytes
    ) -> web.Response:
        try:
            key = json.loads(body.decode("utf-8")).get("SessionKey")
        except (UnicodeDecodeError, ValueError, AttributeError):
            return self._imagex_error(request, "InvalidParameter", "body", 400)
        pending = self._pending.get(str(key))
        if pending is None or pending.access_key != access_key:
            return self._imagex_error(request, "InvalidParameter", "unknown SessionKey", 400)
        results: dict[str, Any] = {"Uri": pending.store_uri, "UriStatus": 2000}
        plugin: list[dict[str, Any]] = []
        sniffed = sniff_image(pending.data) if pending.data is not None else None
        if sniffed is None:
            results["UriStatus"] = 2001  # nothing uploaded, or not an image
        else:
            fmt, width, height = sniffed
            assert pending.data is not None
            self.store[pending.store_uri] = _Stored(
                region=grant.region, sid=grant.sid, data=pending.data, width=width, height=height
            )
            plugin.append({"ImageWidth": width, "ImageHeight": height, "ImageFormat": fmt})
            del self._pending[str(key)]
        return web.json_response(
            {
                "ResponseMetadata": {
                    "RequestId": secrets.token_hex(12),
                    "Action": "CommitImageUpload",
                },
                "Result": {"Results": [results], "PluginResult": plugin},
            }
        )

    async def _store_upload(
        self, request: web.Request, host: str, path: str, body: bytes
    ) -> web.StreamResponse:
        assert self.server is not None
        self.server.requests["upload"] += 1
        injected = await self._fault(request, "upload")
        if injected is not None:
            return injected
        store_uri = path.removeprefix("/upload/v1/")
        pending = self._pending.get(self._by_store_uri.get(store_uri, ""))
        if request.method != "POST" or pending is None or not store_uri:
            return web.json_response({"code": 4004, "message": "unknown store uri"}, status=404)
        if _UPLOAD_HOSTS[host] != self._grants[pending.access_key].region:
            return web.json_response({"code": 4004, "message": "wrong upload host"}, status=404)
        if request.headers.get("Authorization") != pending.auth:
            return web.json_response({"code": 4001, "message": "auth failed"}, status=401)
        crc = f"{zlib.crc32(body) & 0xFFFFFFFF:08x}"
        if request.headers.get("Content-CRC32", "").lower() != crc:
            return web.json_response({"code": 4002, "message": "crc32 mismatch"}, status=400)
        if len(body) != pending.size:
            return web.json_response({"code": 4003, "message": "size mismatch"}, status=400)
        pending.data = body
        return web.json_response(
            {"code": 2000, "apiversion": "v1", "message": "Success", "data": {"crc32": crc}}
        )

    def _algo_proxy(
        self,
        request: web.Request,
        region: Region,
        session: SandboxSession,
        payload: dict[str, Any],
    ) -> web.Response:
        for entry in payload.get("file_list") or []:
            stored = self.store.get(str(entry.get("file_uri")))
            if stored is not None and BLOCK_INPUT.encode() in stored.data:
                raise _Reject("2003", "risk not pass")
        return self._ok({})

    # -- credits -------------------------------------------------------------------------------

    def _user_credit(
        self,
        request: web.Request,
        region: Region,
        session: SandboxSession,
        payload: dict[str, Any],
    ) -> web.Response:
        return self._ok(
            {
                "credit": {
                    "gift_credit": session.gift,
                    "purchase_credit": session.purchase,
                    "vip_credit": session.vip,
                },
                "expiring_credits": [],
                "credits_detail": {"gift_credits": []},
            }
        )

    def _credit_receive(
        self,
        request: web.Request,
        region: Region,
        session: SandboxSession,
        payload: dict[str, Any],
    ) -> web.Response:
        if session.claim_error is not None:
            message = {"-4": "shark check reject", "34010100": "param error"}
            raise _Reject(session.claim_error, message.get(session.claim_error, "error"))
        quota = 0 if session.claimed else DAILY_QUOTA
        session.claimed = True
        session.gift += quota
        return self._ok({"receive_quota": quota, "cur_total_credits": session.total})

    def _account_info(
        self,
        request: web.Request,
        region: Region,
        session: SandboxSession,
        payload: dict[str, Any],
    ) -> web.Response:
        # §17: a passport answer has no ``ret``; logged-out sessions were refused (1015) above.
        if request.query.get("account_sdk_source") != "web":
            raise _Reject("4002", "param error: account_sdk_source")
        user_id = int(hashlib.sha256(session.sid.encode()).hexdigest()[:12], 16)
        return web.json_response(
            {"message": "success", "data": {"user_id": user_id, "screen_name": "sandbox"}}
        )


def _image_model(internal: Any) -> ImageModel | None:
    return next((m for m in IMAGE_MODELS.values() if m.internal == internal), None)


def _image_count(payload: Mapping[str, Any], prompt: str) -> int:
    """§3.5: four images; the multi-image scene (§12) makes the prompt's ``N张`` (else 4)."""
    try:
        metrics = json.loads(payload["metrics_extra"])
        scene = json.loads(metrics["sceneOptions"])[0]["scene"]
    except (KeyError, IndexError, TypeError, ValueError):
        return 4
    if scene != "ImageMultiGenerate":
        return 4
    match = re.search(r"(\d+)张", prompt)
    return max(1, min(int(match.group(1)), 10)) if match else 4


def _video_model(internal: Any) -> VideoModel | None:
    return next((m for m in VIDEO_MODELS.values() if m.internal == internal), None)
