"""Pure build/parse functions for the Dreamina web protocol (protocols/dreamina-web.md).

Builders take data (a plan, a session, ids and times handed in) and return dicts or
:class:`~jimeng._http.Call` objects; parsers take :class:`~jimeng._http.Response` objects. No I/O,
no clock, no randomness of their own: tests call them with fixed ids and hand-made responses.
"""

from __future__ import annotations

import functools
import json
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs
from yarl import URL

from jimeng._download import sniff_extension
from jimeng._http import Call, Response
from jimeng._signing import Credentials, canonical_query, imagex_profile, sign
from jimeng.backends._endpoint import error_class_for_status
from jimeng.backends.dreamina._errors import (
    BACKEND,
    FAIL_CODE_MESSAGES,
    check_imagex,
    check_store,
    check_web,
)
from jimeng.backends.dreamina._plan import ImagePlan, VideoPlan
from jimeng.backends.dreamina._session import (
    Router,
    Session,
    query_string,
    sign_headers,
    web_headers,
)
from jimeng.backends.dreamina._tables import Region
from jimeng.backends.dreamina._versions import ClientVersions
from jimeng.errors import APIError, DownloadError, ServerError
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
    "GENERATE",
    "HISTORY",
    "Context",
    "UploadGrant",
    "UploadTarget",
    "UploadedImage",
    "algo_proxy_call",
    "apply_upload_call",
    "commit_upload_call",
    "credit_call",
    "credit_receive_call",
    "dumps",
    "extract_images",
    "extract_video_url",
    "fetch_call",
    "generate_call",
    "history_call",
    "image_generate_body",
    "local_items_call",
    "parse_apply",
    "parse_commit",
    "parse_credit",
    "parse_history",
    "parse_local_items",
    "parse_receive",
    "parse_submit",
    "parse_upload_token",
    "store_upload_call",
    "upload_token_call",
    "video_generate_body",
]

GENERATE = "/mweb/v1/aigc_draft/generate"
HISTORY = "/mweb/v1/get_history_by_ids"
LOCAL_ITEMS = "/mweb/v1/get_local_item_list"
UPLOAD_TOKEN = "/mweb/v1/get_upload_token"
ALGO_PROXY = "/mweb/v1/algo_proxy"
USER_CREDIT = "/commerce/v1/benefits/user_credit"
CREDIT_RECEIVE = "/commerce/v1/benefits/credit_receive"
IMAGEX_VERSION = "2018-08-01"

Ids = Callable[[], str]


def dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


@attrs.frozen(kw_only=True)
class Context:
    """What every web call of one backend shares: version constants, device ids, routing."""

    versions: ClientVersions
    web_id: str = attrs.field(repr=False)
    user_id: str = attrs.field(repr=False)
    router: Router = attrs.field(factory=Router)


def _sign_web(
    call: Call, now: datetime, *, path: str, session: Session, context: Context
) -> Mapping[str, str]:
    # §2.1: Device-Time and Sign come from the engine's clock for THIS attempt.
    return sign_headers(
        path=path,
        now=now,
        session=session,
        versions=context.versions,
        web_id=context.web_id,
        user_id=context.user_id,
    )


def web_call(
    context: Context,
    session: Session,
    *,
    path: str,
    body: Mapping[str, Any],
    commerce: bool = False,
    query: Mapping[str, str] | None = None,
    default_query: bool = True,
    referer: str | None = None,
    purpose: str,
    idempotent: bool = True,
    headers: Mapping[str, str] | None = None,
) -> Call:
    """A signed POST to the session's site (mweb or commerce host)."""
    region = session.region
    origin = region.commerce if commerce else region.main
    url = origin + path
    if default_query:
        url += "?" + query_string(region, context.versions, web_id=context.web_id, extra=query)
    all_headers = web_headers(
        region, context.versions, origin=origin, referer=referer or f"{origin}/"
    )
    all_headers.update(headers or {})
    return Call(
        method="POST",
        url=context.router.route(url),
        headers=all_headers,
        body=dumps(body).encode("utf-8"),
        sign=functools.partial(_sign_web, path=path, session=session, context=context),
        check=functools.partial(check_web, session=session, versions=context.versions),
        idempotent=idempotent,
        purpose=purpose,
        proxy=session.proxy,
        expects_json=True,
    )


# -- generation payloads (§3.1, §4.3, §6.2) ---------------------------------------------------


def _node(ids: Ids, **fields: Any) -> dict[str, Any]:
    """§3.1: every nested object carries ``type: ""`` and a fresh uuid ``id``."""
    return {"type": "", "id": ids(), **fields}


def _metadata(ids: Ids, now_ms: int) -> dict[str, Any]:
    return _node(
        ids,
        created_platform=3,
        created_platform_version="",
        created_time_in_ms=str(now_ms),
        created_did="",
    )


def _report_params(key: str) -> dict[str, Any]:
    return {
        "enterSource": "generate",
        "vipSource": "generate",
        "extraVipFunctionKey": key,
        "useVipFunctionDetailsReporterHoc": True,
    }


def image_metrics(plan: ImagePlan, submit_id: str, blobs: Sequence[str]) -> str:
    """§3.1 ``metrics_extra`` (IPT ``buildMetricsExtra``); blend adds one ability per image."""
    ability_list = [
        {"abilityName": "byte_edit", "strength": plan.sample_strength, "source": {"imageUrl": blob}}
        for blob in blobs
    ]
    scene: dict[str, Any] = {
        "type": "image",
        "scene": "ImageMultiGenerate" if plan.multi_image else "ImageBasicGenerate",
        "modelReqKey": plan.model.internal,
        "resolutionType": plan.resolution,
        "abilityList": ability_list,
        "benefitCount": 4,
        "reportParams": _report_params(f"{plan.model.internal}-{plan.resolution}"),
    }
    metrics: dict[str, Any] = {
        "promptSource": "custom",
        "generateCount": 1,
        "enterFrom": "click",
        "generateId": submit_id,
        "isRegenerate": False,
    }
    if plan.multi_image:
        # §12: the multi-image scene has no benefitCount and four empty template keys.
        del scene["benefitCount"]
        metrics.update(templateId="", templateSource="", lastRequestId="", originRequestId="")
    metrics["sceneOptions"] = dumps([scene])  # a JSON string inside the JSON string (§3.1)
    return dumps(metrics)


def _core_param(
    plan: ImagePlan, prompt: str, ids: Ids, seed: int | None, versions: ClientVersions
) -> dict[str, Any]:
    core: dict[str, Any] = _node(
        ids,
        model=plan.model.internal,
        prompt=prompt,
        negative_prompt=plan.negative_prompt,
    )
    if seed is not None:
        core["seed"] = seed
    core["sample_strength"] = plan.sample_strength
    # §3.4: with intelligent_ratio the server infers the ratio, so text-to-image leaves it out;
    # a blend always keeps it.
    if not (plan.intelligent_ratio and not plan.is_blend):
        core["image_ratio"] = plan.ratio_code
    core["large_image_info"] = _node(
        ids,
        min_version=versions.draft_min_version,
        height=plan.height,
        width=plan.width,
        resolution_type=plan.resolution,
    )
    core["intelligent_ratio"] = plan.intelligent_ratio
    core.update(plan.extra)
    return core


def _image_ref(ids: Ids, uri: str) -> dict[str, Any]:
    return {
        "type": "image",
        "id": ids(),
        "source_from": "upload",
        "platform_type": 1,
        "name": "",
        "image_uri": uri,
        "width": 0,
        "height": 0,
        "format": "",
        "uri": uri,
    }


def image_generate_body(
    plan: ImagePlan,
    *,
    prompt: str,
    submit_id: str,
    uris: Sequence[str],
    ids: Ids,
    now_ms: int,
    seed: int | None,
    versions: ClientVersions,
) -> dict[str, Any]:
    """The ``aigc_draft/generate`` body for text-to-image (§3.1) or blend (§4.3)."""
    component_id = ids()
    blend = bool(uris)
    if blend:
        count = len(uris)
        # §4.3: the prompt is prefixed by "#" repeated 2×imageCount; no seed in a blend.
        core = _core_param(plan, "#" * (2 * count) + prompt, ids, None, versions)
        blend_ability: dict[str, Any] = _node(ids, min_features=[], core_param=core)
        blend_ability["ability_list"] = [
            _node(
                ids,
                name="byte_edit",
                image_uri_list=[uri],
                image_list=[_image_ref(ids, uri)],
                strength=plan.sample_strength,
            )
            for uri in uris
        ]
        blend_ability["prompt_placeholder_info_list"] = [
            _node(ids, ability_index=index) for index in range(count)
        ]
        blend_ability["postedit_param"] = _node(ids, generate_type=0)
        if count >= 2:
            blend_ability["min_version"] = versions.blend_min_version
        abilities = _node(ids, blend=blend_ability, gen_option=_node(ids, generate_all=False))
        draft_min = versions.blend_min_version
        blobs = [f"blob:{plan.region.site}/{ids()}" for _ in uris]
    else:
        core = _core_param(plan, prompt, ids, seed, versions)
        abilities = _node(
            ids,
            generate=_node(ids, core_param=core, gen_option=_node(ids, generate_all=False)),
        )
        draft_min = versions.draft_min_version
        blobs = []
    draft = {
        "type": "draft",
        "id": ids(),
        "min_version": draft_min,
        "min_features": [],
        "is_from_tsn": True,
        "version": versions.draft_version,
        "main_component_id": component_id,
        "component_list": [
            {
                "type": "image_base_component",
                "id": component_id,
                "min_version": versions.draft_min_version,
                "aigc_mode": "workbench",
                "metadata": _metadata(ids, now_ms),
                "generate_type": "blend" if blend else "generate",
                "abilities": abilities,
            }
        ],
    }
    return {
        "extend": {"root_model": plan.model.internal},
        "submit_id": submit_id,
        "metrics_extra": image_metrics(plan, submit_id, blobs),
        "draft_content": dumps(draft),
        "http_common_info": {"aid": plan.region.aid},
    }


def _frame(ids: Ids, uri: str) -> dict[str, Any]:
    # §6.2: width/height 0, as IPT sends (MCP sends the requested size instead).
    return {
        "format": "",
        "height": 0,
        "id": ids(),
        "image_uri": uri,
        "name": "",
        "platform_type": 1,
        "source_from": "upload",
        "type": "image",
        "uri": uri,
        "width": 0,
    }


def video_generate_body(
    plan: VideoPlan,
    *,
    prompt: str,
    submit_id: str,
    uris: Sequence[str],
    ids: Ids,
    now_ms: int,
    seed: int,
    versions: ClientVersions,
    materials: Sequence[UploadedImage] = (),
    videos: Sequence[UploadedVideo] = (),
) -> dict[str, Any]:
    """The ``aigc_draft/generate`` body for text-to-video or first/last frames (§6.2)."""
    if plan.omni:
        return _omni_body(
            plan,
            prompt=prompt,
            submit_id=submit_id,
            materials=materials or [UploadedImage(uri=uri) for uri in uris],
            videos=videos,
            ids=ids,
            now_ms=now_ms,
            seed=seed,
            versions=versions,
        )
    model = plan.model
    commerce = _commerce(plan.benefit_types[0] if plan.benefit_types else model.benefit_type)
    scene: dict[str, Any] = {"type": "video", "scene": "BasicVideoGenerateButton"}
    if plan.resolution is not None:
        scene["resolution"] = plan.resolution
    scene.update(
        {
            "modelReqKey": model.internal,
            "videoDuration": plan.duration,
            "materialTypes": [],
            "reportParams": _report_params(
                f"{model.internal}-{plan.resolution}" if plan.resolution else model.internal
            ),
        }
    )
    metrics = dumps(
        {
            "promptSource": "custom",
            "isDefaultSeed": 1,
            "originSubmitId": submit_id,
            "isRegenerate": False,
            "enterFrom": "use_bgimage_prompt",
            "position": "page_bottom_box",
            "functionMode": "first_last_frames",
            "sceneOptions": dumps([scene]),
        }
    )
    gen_input: dict[str, Any] = _node(
        ids,
        min_version=versions.video_min_version,
        prompt=prompt,
        video_mode=2,
        fps=24,
        duration_ms=plan.duration * 1000,
    )
    if plan.resolution is not None:
        gen_input["resolution"] = plan.resolution
    if uris:
        gen_input["first_frame_image"] = _frame(ids, uris[0])
    if len(uris) > 1:
        gen_input["end_frame_image"] = _frame(ids, uris[1])
    gen_input["idip_meta_list"] = []
    gen_input.update(plan.extra)
    component_id = ids()
    draft = {
        "type": "draft",
        "id": ids(),
        "min_version": versions.video_min_version,
        "min_features": [],
        "is_from_tsn": True,
        "version": versions.draft_version,
        "main_component_id": component_id,
        "component_list": [
            {
                "type": "video_base_component",
                "id": component_id,
                "min_version": versions.video_component_min_version,
                "aigc_mode": "workbench",
                "metadata": _metadata(ids, now_ms),
                "generate_type": "gen_video",
                "process_type": 1,
                "abilities": _node(
                    ids,
                    gen_video=_node(
                        ids,
                        text_to_video_params=_node(
                            ids,
                            video_gen_inputs=[gen_input],
                            video_aspect_ratio=plan.ratio,
                            seed=seed,
                            model_req_key=model.internal,
                            priority=0,
                        ),
                        video_task_extra=metrics,
                    ),
                ),
            }
        ],
    }
    return {
        "extend": {
            "root_model": model.internal,
            "m_video_commerce_info": commerce,
            "m_video_commerce_info_list": [commerce],
        },
        "submit_id": submit_id,
        "metrics_extra": metrics,
        "draft_content": dumps(draft),
        "http_common_info": {"aid": plan.region.aid},
    }


_OMNI_VERSION = "3.3.9"  # §11: DRAFT_VERSION_OMNI, the draft and da_version of omni calls
_OMNI_REFERENCE = re.compile(r"@(image|video)_file_(\d+)")


def _commerce(benefit_type: str) -> dict[str, Any]:
    return {
        "benefit_type": benefit_type,
        "resource_id": "generate_video",
        "resource_id_type": "str",
        "resource_sub_type": "aigc",
    }


def set_benefit_type(body: dict[str, Any], benefit_type: str) -> None:
    """§14: offer another benefit type, in both places, leaving the rest of the body as is."""
    extend = body["extend"]
    extend["m_video_commerce_info"] = _commerce(benefit_type)
    extend["m_video_commerce_info_list"] = [_commerce(benefit_type)]


def omni_meta_list(prompt: str, images: int, videos: int = 0) -> list[dict[str, Any]]:
    """§11: the prompt cut at each ``@image_file_N`` / ``@video_file_N`` that names a material
    (videos come after the images in material order); other ``@words`` stay text, and a prompt
    without references is one text piece."""
    pieces: list[dict[str, Any]] = []
    position = 0
    for match in _OMNI_REFERENCE.finditer(prompt):
        kind, number = match.group(1), int(match.group(2))
        count, offset = (images, 0) if kind == "image" else (videos, images)
        if not 1 <= number <= count:
            continue
        if match.start() > position:
            pieces.append({"meta_type": "text", "text": prompt[position : match.start()]})
        pieces.append(
            {"meta_type": kind, "text": "", "material_ref": {"material_idx": offset + number - 1}}
        )
        position = match.end()
    if position < len(prompt) or not pieces:
        pieces.append({"meta_type": "text", "text": prompt[position:]})
    return pieces


def _omni_body(
    plan: VideoPlan,
    *,
    prompt: str,
    submit_id: str,
    materials: Sequence[UploadedImage],
    ids: Ids,
    now_ms: int,
    seed: int,
    versions: ClientVersions,
    videos: Sequence[UploadedVideo] = (),
) -> dict[str, Any]:
    """The omni reference (全能参考) body of §11: materials plus the prompt as ``meta_list``."""
    model = plan.model
    commerce = _commerce(plan.benefit_types[0] if plan.benefit_types else model.benefit_type)
    scene = {
        "type": "video",
        "scene": "BasicVideoGenerateButton",
        "modelReqKey": model.internal,
        "videoDuration": plan.duration,
        "materialTypes": [1 for _ in materials] + [2 for _ in videos],  # 1 image, 2 video
        "reportParams": _report_params(model.internal),
    }
    metrics = dumps(
        {
            "position": "page_bottom_box",
            "isDefaultSeed": 1,
            "originSubmitId": submit_id,
            "isRegenerate": False,
            "enterFrom": "click",
            "functionMode": "omni_reference",
            "sceneOptions": dumps([scene]),
        }
    )
    material_list = [
        {
            "material_type": "image",
            "image_info": {
                "type": "image",
                "source_from": "upload",
                "platform_type": 1,
                "image_uri": item.uri,
                "width": item.width or 0,
                "height": item.height or 0,
                "format": item.format or "",
                "uri": item.uri,
            },
        }
        for item in materials
    ] + [
        {
            "material_type": "video",
            "video_info": {
                "type": "video",
                "source_from": "upload",
                "vid": video.vid,
                "fps": 0,
                "width": video.width,
                "height": video.height,
                "duration": video.duration_ms,
            },
        }
        for video in videos
    ]
    gen_input: dict[str, Any] = _node(
        ids,
        min_version=versions.video_min_version,
        prompt="",  # §11: the prompt travels in meta_list only
        video_mode=2,
        fps=24,
        duration_ms=plan.duration * 1000,
        unified_edit_input={
            "material_list": material_list,
            "meta_list": omni_meta_list(prompt, len(materials), len(videos)),
        },
        idip_meta_list=[],
    )
    gen_input.update(plan.extra)
    component_id = ids()
    draft = {
        "type": "draft",
        "id": ids(),
        "min_version": _OMNI_VERSION,
        "min_features": ["AIGC_Video_UnifiedEdit"],
        "is_from_tsn": True,
        "version": _OMNI_VERSION,
        "main_component_id": component_id,
        "component_list": [
            {
                "type": "video_base_component",
                "id": component_id,
                "min_version": versions.video_component_min_version,
                "aigc_mode": "workbench",
                "metadata": _metadata(ids, now_ms),
                "generate_type": "gen_video",
                "process_type": 1,
                "abilities": _node(
                    ids,
                    gen_video=_node(
                        ids,
                        text_to_video_params=_node(
                            ids,
                            video_gen_inputs=[gen_input],
                            video_aspect_ratio=plan.ratio,
                            seed=seed,
                            model_req_key=model.internal,
                            priority=0,
                        ),
                        video_task_extra=metrics,
                    ),
                ),
            }
        ],
    }
    return {
        "extend": {
            "root_model": model.internal,
            "m_video_commerce_info": commerce,
            "m_video_commerce_info_list": [commerce],
        },
        "submit_id": submit_id,
        "metrics_extra": metrics,
        "draft_content": dumps(draft),
        "http_common_info": {"aid": plan.region.aid},
    }


def generate_call(
    context: Context,
    session: Session,
    body: Mapping[str, Any],
    *,
    kind: TaskKind,
    query: Mapping[str, str] | None = None,
) -> Call:
    """``aigc_draft/generate``. ``query`` adds to the default query string: an omni draft's
    version (§11) and the caller's browser tokens (``msToken``, ``a_bogus``, §15), last."""
    # §1.1: generate calls override the Referer with the site's generate page.
    page = "video" if kind is TaskKind.VIDEO else "image"
    extra: dict[str, str] = {}
    draft = body.get("draft_content")
    if isinstance(draft, str) and '"AIGC_Video_UnifiedEdit"' in draft:
        extra.update(da_version=_OMNI_VERSION, web_version="7.5.0")
    extra.update(query or {})
    # A duplicate submit is billed: resent only when the server certainly refused it.
    return web_call(
        context,
        session,
        path=GENERATE,
        body=body,
        query=extra or None,
        referer=f"{session.region.site}/ai-tool/generate?type={page}",
        purpose="submit",
        idempotent=False,
    )


def _payload(response: Response) -> Mapping[str, Any]:
    payload = response.json()
    if not isinstance(payload, Mapping):
        raise APIError("answer is not a JSON object", status_code=response.status, backend=BACKEND)
    return payload


def _data(response: Response) -> Mapping[str, Any]:
    data = _payload(response).get("data")
    return data if isinstance(data, Mapping) else {}


def parse_submit(response: Response) -> str:
    """§3.1: the record id (``data.aigc_data.history_record_id``)."""
    payload = _payload(response)
    aigc = _data(response).get("aigc_data")
    record = aigc.get("history_record_id") if isinstance(aigc, Mapping) else None
    if not record:
        raise APIError(
            "generate answer carries no history_record_id (记录ID不存在)",
            status_code=response.status,
            request_id=payload.get("logid"),
            backend=BACKEND,
            body=payload,
        )
    return str(record)


# -- polling (§5) -------------------------------------------------------------------------------

#: §5.1 (IPT): what the image poll asks for; video polls send only the ids.
IMAGE_INFO: Mapping[str, Any] = {
    "width": 2048,
    "height": 2048,
    "format": "webp",
    "image_scene_list": [
        {
            "scene": "smart_crop",
            "width": 360,
            "height": 360,
            "uniq_key": "smart_crop-w:360-h:360",
            "format": "webp",
        },
        {"scene": "normal", "width": 2400, "height": 2400, "uniq_key": "2400", "format": "webp"},
    ],
}


def history_call(context: Context, session: Session, history_id: str, kind: TaskKind) -> Call:
    # §5.1: polled by history_record_id, as IPT does on every site; the browser's submit_ids form
    # is unconfirmed on the international hosts (open question 3).
    body: dict[str, Any] = {"history_ids": [history_id]}
    if kind is TaskKind.IMAGE:
        body["image_info"] = IMAGE_INFO
    return web_call(
        context, session, path=HISTORY, body=body, purpose="poll", headers={"X-Platform": "pc"}
    )


#: §5.2 status → (task state, poll interval factor hinted to the poller).
STATUSES: Mapping[int, tuple[TaskStatus, float | None]] = {
    20: (TaskStatus.RUNNING, None),
    42: (TaskStatus.RUNNING, 1.2),
    45: (TaskStatus.RUNNING, 1.5),
    10: (TaskStatus.SUCCEEDED, None),
    50: (TaskStatus.SUCCEEDED, None),
    30: (TaskStatus.FAILED, None),
}


def _clean_url(url: str) -> str:
    # §5.4: image URLs arrive with a literal "\u0026" for "&".
    return url.replace("\\u0026", "&")


def _expiry(url: str) -> datetime | None:
    try:
        value = URL(url).query.get("x-expires")
        return datetime.fromtimestamp(int(value), timezone.utc) if value else None
    except (ValueError, OverflowError, OSError):
        return None


def _dig(value: Any, *path: str | int) -> Any:
    for step in path:
        if isinstance(step, int):
            if not isinstance(value, list) or len(value) <= step:
                return None
            value = value[step]
        elif isinstance(value, Mapping):
            value = value.get(step)
        else:
            return None
    return value


def extract_images(items: Sequence[Any]) -> list[Image]:
    """§5.4: ``image.large_images[0].image_url``, else the older ``common_attr.cover_url``."""
    images: list[Image] = []
    for item in items:
        large = _dig(item, "image", "large_images", 0)
        url = _dig(large, "image_url") or _dig(item, "common_attr", "cover_url")
        if not isinstance(url, str) or not url:
            continue
        url = _clean_url(url)
        width = _dig(large, "width")
        height = _dig(large, "height")
        images.append(
            Image(
                url=url,
                width=width if isinstance(width, int) else None,
                height=height if isinstance(height, int) else None,
                expires_at=_expiry(url),
            )
        )
    return images


#: §5.4 video URL shapes, in the order IPT tries them.
VIDEO_URL_PATHS: tuple[tuple[str, ...], ...] = (
    ("common_attr", "transcoded_video", "origin", "video_url"),  # Asia international
    ("video", "transcoded_video", "origin", "video_url"),  # CN
    ("video", "play_url"),
    ("video", "download_url"),
    ("video", "url"),
)


def extract_video_url(item: Any) -> str | None:
    for path in VIDEO_URL_PATHS:
        url = _dig(item, *path)
        if isinstance(url, str) and url:
            return _clean_url(url)
    return None


def item_id(item: Any) -> str | None:
    """§5.4: ``item_id``, else ``id``, else ``local_item_id``, else ``common_attr.id``."""
    for path in (("item_id",), ("id",), ("local_item_id",), ("common_attr", "id")):
        value = _dig(item, *path)
        if value:
            return str(value)
    return None


def _timestamp(value: Any) -> datetime | None:
    """Unix seconds (milliseconds tolerated); ``None`` for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    seconds = value / 1000 if value > 1e11 else value
    try:
        return datetime.fromtimestamp(seconds, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def parse_history(response: Response, task: Task, *, base_interval: float) -> Task:
    """The task as ``get_history_by_ids`` describes it, with its result when done."""
    payload = _payload(response)
    data = _data(response)
    record = data.get(task.id)
    if not isinstance(record, Mapping):
        # §5.5 (IPT video): a record missing right after submit is eventual consistency.
        waiting = task.status if task.status is not TaskStatus.UNKNOWN else TaskStatus.QUEUED
        return attrs.evolve(task, status=waiting, raw_status="missing", raw=payload)
    raw_status = record.get("status")
    code = raw_status if isinstance(raw_status, int) else -1
    if isinstance(raw_status, str) and raw_status.strip().isdigit():
        code = int(raw_status)
    status, factor = STATUSES.get(code, (TaskStatus.UNKNOWN, None))
    items = record.get("item_list")
    items = items if isinstance(items, list) else []
    result: ImageResult | VideoResult | None = None
    failure: TaskFailure | None = None
    fail_code = str(record.get("fail_code") or "").strip()
    if task.kind is TaskKind.VIDEO:
        url = next((u for u in map(extract_video_url, items) if u), None)
        if url:
            result = VideoResult(
                video=Video(url=url, content_type="video/mp4", expires_at=_expiry(url)),
                task_id=task.id,
                model=task.model,
                backend=task.backend,
                raw=record,
            )
    else:
        images = extract_images(items)
        if images:
            result = ImageResult(
                images=tuple(images),
                task_id=task.id,
                model=task.model,
                backend=task.backend,
                raw=record,
            )
    if status is TaskStatus.SUCCEEDED and result is None:
        status = TaskStatus.FAILED
        failure = TaskFailure(code=fail_code or None, message="task finished without output")
    elif status is TaskStatus.FAILED:
        # §5.2: a failed record may still carry partial results; they stay on task.result.
        failure = TaskFailure(
            code=fail_code or None,
            message=FAIL_CODE_MESSAGES.get(fail_code, f"generation failed (fail_code {fail_code})")
            if fail_code
            else "generation failed",
        )
    finished = _dig(record, "task", "finish_time")
    completed_at = _timestamp(finished) if status.is_terminal else None
    return attrs.evolve(
        task,
        status=status,
        raw_status=str(raw_status),
        result=result,
        failure=failure,
        poll_after=base_interval * factor if factor is not None else None,
        completed_at=completed_at or task.completed_at,
        raw=payload,
    )


def local_items_call(context: Context, session: Session, item: str) -> Call:
    """§5.4: IPT asks for the high-bitrate copy of a finished video."""
    body = {
        "item_id_list": [item],
        "pack_item_opt": {"scene": 1, "need_data_integrity": True},
        "is_for_video_download": True,
    }
    return web_call(context, session, path=LOCAL_ITEMS, body=body, purpose="poll")


def parse_local_items(response: Response) -> str | None:
    data = _data(response)
    items = data.get("item_list") or data.get("local_item_list") or []
    if isinstance(items, list):
        for item in items:
            url = extract_video_url(item)
            if url:
                return url
    return None


# -- uploads (§4.1, §4.2) -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class UploadGrant:
    """Temporary ImageX credentials from ``get_upload_token`` (secrets: hidden from repr)."""

    credentials: Credentials
    service: str


@attrs.frozen(kw_only=True)
class UploadTarget:
    store_uri: str
    auth: str = attrs.field(repr=False)
    host: str
    session_key: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class UploadedImage:
    uri: str
    width: int | None = None
    height: int | None = None
    format: str | None = None


def upload_token_call(context: Context, session: Session) -> Call:
    # §4.1: scene 2 = ImageX images.
    return web_call(context, session, path=UPLOAD_TOKEN, body={"scene": 2}, purpose="upload")


def parse_upload_token(response: Response, region: Region) -> UploadGrant:
    data = _data(response)
    access_key = data.get("access_key_id")
    secret = data.get("secret_access_key")
    token = data.get("session_token")
    if not (access_key and secret and token):
        raise APIError(
            "get_upload_token answered without credentials (the session may be logged out)",
            status_code=response.status,
            backend=BACKEND,
        )
    service = data.get(region.upload_service_field) or region.default_upload_service
    return UploadGrant(
        credentials=Credentials(
            access_key=str(access_key), secret_key=str(secret), session_token=str(token)
        ),
        service=str(service),
    )


def _sign_imagex(
    call: Call, now: datetime, *, credentials: Credentials, aws_region: str
) -> Mapping[str, str]:
    """§4.2: standard SigV4 with service ``imagex``, through the shared signer."""
    url = URL(call.url, encoded=True)
    signed = sign(
        method=call.method,
        host=url.raw_authority,
        path=url.raw_path or "/",
        query=list(url.query.items()),
        headers=call.headers,
        body=call.body or b"",
        credentials=credentials,
        profile=imagex_profile(aws_region),
        now=now,
    )
    return {k: v for k, v in signed.headers.items() if k not in call.headers}


def _imagex_call(
    context: Context,
    session: Session,
    grant: UploadGrant,
    *,
    method: str,
    query: Sequence[tuple[str, str]],
    body: bytes | None,
    headers: Mapping[str, str],
) -> Call:
    region = session.region
    url = f"{region.imagex}/?{canonical_query(list(query))}"
    return Call(
        method=method,
        url=context.router.route(url),
        headers=dict(headers),
        body=body,
        sign=functools.partial(
            _sign_imagex, credentials=grant.credentials, aws_region=region.aws_region
        ),
        check=check_imagex,
        purpose="upload",
        proxy=session.proxy,
    )


def apply_upload_call(
    context: Context, session: Session, grant: UploadGrant, *, size: int, nonce: str
) -> Call:
    query = [
        ("Action", "ApplyImageUpload"),
        ("Version", IMAGEX_VERSION),
        ("ServiceId", grant.service),
        ("FileSize", str(size)),
        ("s", nonce),
    ]
    if session.region.code != "cn":
        query.append(("device_platform", "web"))
    return _imagex_call(context, session, grant, method="GET", query=query, body=None, headers={})


def _result(response: Response) -> Mapping[str, Any]:
    result = _payload(response).get("Result")
    return result if isinstance(result, Mapping) else {}


def parse_apply(response: Response) -> UploadTarget:
    address = _result(response).get("UploadAddress")
    store = _dig(address, "StoreInfos", 0)
    host = _dig(address, "UploadHosts", 0)
    key = _dig(address, "SessionKey")
    if not (isinstance(store, Mapping) and store.get("StoreUri") and host and key):
        raise APIError(
            "ApplyImageUpload answered without an upload address",
            status_code=response.status,
            backend=BACKEND,
        )
    return UploadTarget(
        store_uri=str(store["StoreUri"]),
        auth=str(store.get("Auth") or ""),
        host=str(host),
        session_key=str(key),
    )


def store_upload_call(
    context: Context, session: Session, target: UploadTarget, data: bytes
) -> Call:
    """§4.2 step 2: raw bytes with the store's own Authorization and a CRC32 header."""
    url = f"https://{target.host}/upload/v1/{target.store_uri}"
    return Call(
        method="POST",
        url=context.router.route(url),
        headers={
            "Authorization": target.auth,
            "Content-CRC32": f"{zlib.crc32(data) & 0xFFFFFFFF:08x}",
            "Content-Type": "application/octet-stream",
            "Content-Disposition": 'attachment; filename="undefined"',
        },
        body=data,
        check=check_store,
        purpose="upload",
        proxy=session.proxy,
    )


def commit_upload_call(
    context: Context, session: Session, grant: UploadGrant, session_key: str
) -> Call:
    query = [
        ("Action", "CommitImageUpload"),
        ("Version", IMAGEX_VERSION),
        ("ServiceId", grant.service),
    ]
    return _imagex_call(
        context,
        session,
        grant,
        method="POST",
        query=query,
        body=dumps({"SessionKey": session_key}).encode("utf-8"),
        headers={"Content-Type": "application/json"},
    )


def parse_commit(response: Response) -> UploadedImage:
    result = _result(response)
    first = _dig(result, "Results", 0)
    if not isinstance(first, Mapping) or first.get("UriStatus") != 2000 or not first.get("Uri"):
        raise APIError(
            f"CommitImageUpload did not accept the image (UriStatus {_dig(first, 'UriStatus')})",
            status_code=response.status,
            backend=BACKEND,
            body=dict(result),
        )
    info = _dig(result, "PluginResult", 0)
    width, height = _dig(info, "ImageWidth"), _dig(info, "ImageHeight")
    fmt = _dig(info, "ImageFormat")
    return UploadedImage(
        uri=str(first["Uri"]),
        width=width if isinstance(width, int) else None,
        height=height if isinstance(height, int) else None,
        format=str(fmt) if fmt else None,
    )


def algo_proxy_call(context: Context, session: Session, uri: str) -> Call:
    """§4.3 CN-only content check IPT runs after each upload (``ret 2003`` = refused)."""
    babi = dumps(
        {
            "scenario": "image_video_generation",
            "feature_key": "aigc_to_image",
            "feature_entrance": "to-generate",
            "feature_entrance_detail": "to-generate-algo_proxy",
        }
    )
    body = {
        "scene": "image_face_ip",
        "options": {"ip_check": True},
        "req_key": "benchmark_test_user_upload_image_input",
        "file_list": [{"file_uri": uri}],
        "req_params": {},
    }
    return web_call(
        context, session, path=ALGO_PROXY, body=body, query={"babi_param": babi}, purpose="upload"
    )


# -- VOD video uploads (§11) -----------------------------------------------------------------------

VOD = "https://vod.bytedanceapi.com"  # §11: the same host for every region
VOD_VERSION = "2020-11-19"


@attrs.frozen(kw_only=True)
class UploadedVideo:
    """A committed VOD upload: its ``vid`` and ``VideoMeta``."""

    vid: str
    width: int = 0
    height: int = 0
    duration_ms: int = 0


def vod_token_call(context: Context, session: Session) -> Call:
    # §11 step 1: scene 1 = VOD videos.
    return web_call(context, session, path=UPLOAD_TOKEN, body={"scene": 1}, purpose="upload")


def parse_vod_token(response: Response) -> UploadGrant:
    data = _data(response)
    access_key = data.get("access_key_id")
    secret = data.get("secret_access_key")
    token = data.get("session_token")
    if not (access_key and secret and token):
        raise APIError(
            "get_upload_token (scene 1) answered without credentials",
            status_code=response.status,
            backend=BACKEND,
        )
    return UploadGrant(
        credentials=Credentials(
            access_key=str(access_key), secret_key=str(secret), session_token=str(token)
        ),
        service=str(data.get("space_name") or "dreamina"),
    )


def _sign_vod(
    call: Call, now: datetime, *, credentials: Credentials, aws_region: str
) -> Mapping[str, str]:
    """§11: SigV4 with service ``vod``, through the shared signer."""
    url = URL(call.url, encoded=True)
    signed = sign(
        method=call.method,
        host=url.raw_authority,
        path=url.raw_path or "/",
        query=list(url.query.items()),
        headers=call.headers,
        body=call.body or b"",
        credentials=credentials,
        profile=imagex_profile(aws_region, service="vod"),
        now=now,
    )
    return {k: v for k, v in signed.headers.items() if k not in call.headers}


def _vod_call(
    context: Context,
    session: Session,
    grant: UploadGrant,
    *,
    method: str,
    query: Sequence[tuple[str, str]],
    body: bytes | None,
) -> Call:
    origin = session.region.site
    headers = {
        "origin": origin,
        "referer": f"{origin}/ai-tool/generate",
        "sec-fetch-site": "cross-site",
    }
    if body is not None:
        headers["Content-Type"] = "application/json"
    return Call(
        method=method,
        url=context.router.route(f"{VOD}/?{canonical_query(list(query))}"),
        headers=headers,
        body=body,
        sign=functools.partial(
            _sign_vod, credentials=grant.credentials, aws_region=session.region.aws_region
        ),
        check=check_imagex,  # the same ResponseMetadata.Error envelope
        purpose="upload",
        proxy=session.proxy,
    )


def vod_apply_call(
    context: Context, session: Session, grant: UploadGrant, *, size: int, nonce: str
) -> Call:
    query = [
        ("Action", "ApplyUploadInner"),
        ("Version", VOD_VERSION),
        ("SpaceName", grant.service),
        ("FileType", "video"),
        ("IsInner", "1"),
        ("FileSize", str(size)),
        ("s", nonce),
    ]
    return _vod_call(context, session, grant, method="GET", query=query, body=None)


def parse_vod_apply(response: Response) -> UploadTarget:
    node = _dig(_result(response), "InnerUploadAddress", "UploadNodes", 0)
    store = _dig(node, "StoreInfos", 0)
    if not (
        isinstance(node, Mapping)
        and isinstance(store, Mapping)
        and store.get("StoreUri")
        and node.get("UploadHost")
        and node.get("SessionKey")
    ):
        raise APIError(
            "ApplyUploadInner answered without an upload node",
            status_code=response.status,
            backend=BACKEND,
        )
    return UploadTarget(
        store_uri=str(store["StoreUri"]),
        auth=str(store.get("Auth") or ""),
        host=str(node["UploadHost"]),
        session_key=str(node["SessionKey"]),
    )


def vod_store_call(context: Context, session: Session, target: UploadTarget, data: bytes) -> Call:
    """§11 step 3: the raw bytes, the store's Authorization and a CRC32; no Content-Disposition."""
    return Call(
        method="POST",
        url=context.router.route(f"https://{target.host}/upload/v1/{target.store_uri}"),
        headers={
            "Authorization": target.auth,
            "Content-CRC32": f"{zlib.crc32(data) & 0xFFFFFFFF:08x}",
            "Content-Type": "application/octet-stream",
        },
        body=data,
        check=check_store,
        purpose="upload",
        proxy=session.proxy,
    )


def vod_commit_call(
    context: Context, session: Session, grant: UploadGrant, session_key: str
) -> Call:
    query = [
        ("Action", "CommitUploadInner"),
        ("Version", VOD_VERSION),
        ("SpaceName", grant.service),
    ]
    body = dumps({"SessionKey": session_key, "Functions": []}).encode("utf-8")
    return _vod_call(context, session, grant, method="POST", query=query, body=body)


def parse_vod_commit(response: Response) -> UploadedVideo:
    first = _dig(_result(response), "Results", 0)
    vid = _dig(first, "Vid")
    if not vid:
        raise APIError(
            "CommitUploadInner answered without a Vid",
            status_code=response.status,
            backend=BACKEND,
        )
    meta = _dig(first, "VideoMeta")
    meta = meta if isinstance(meta, Mapping) else {}
    try:
        duration_ms = round(float(meta.get("Duration") or 0) * 1000)
    except (TypeError, ValueError):
        duration_ms = 0
    return UploadedVideo(
        vid=str(vid),
        width=_int(meta.get("Width")),
        height=_int(meta.get("Height")),
        duration_ms=duration_ms,
    )


def _check_fetch(response: Response) -> None:
    if response.status >= 500:
        raise ServerError(
            f"reference image host failed (HTTP {response.status})",
            status_code=response.status,
            backend=BACKEND,
        )
    if response.status >= 300:
        raise DownloadError(
            f"cannot fetch reference image: HTTP {response.status}", url=response.url
        )
    if sniff_extension(response.body[:16]) not in (".png", ".jpg", ".webp", ".gif"):
        raise DownloadError(
            "reference URL did not return a PNG, JPEG, WebP or GIF image", url=response.url
        )


def fetch_call(url: str, session: Session) -> Call:
    """Download a reference image given by URL, to upload it (the web protocol takes no URLs).

    Sent through the session's proxy, like every call made for that session (§2.4)."""
    # The engine sends URLs as already encoded; let yarl encode what a caller wrote raw.
    return Call(
        method="GET",
        url=str(URL(url)),
        check=_check_fetch,
        purpose="fetch",
        proxy=session.proxy,
    )


# -- credits (§7) -------------------------------------------------------------------------------


def credit_call(context: Context, session: Session) -> Call:
    # §7.1: IPT and the browser send no query string to user_credit.
    return web_call(
        context,
        session,
        path=USER_CREDIT,
        body={},
        commerce=True,
        default_query=False,
        referer=f"{session.region.site}/ai-tool/image/generate",
        purpose="credits",
    )


def credit_receive_call(context: Context, session: Session) -> Call:
    return web_call(
        context,
        session,
        path=CREDIT_RECEIVE,
        body={"time_zone": "Asia/Shanghai"},
        commerce=True,
        # §13: CN claims from the home page; the international site from its root.
        referer=(
            f"{session.region.site}/ai-tool/home"
            if session.region.code == "cn"
            else f"{session.region.site}/"
        ),
        purpose="credits",
        idempotent=False,
    )


ACCOUNT_INFO = "/passport/account/info/v2"


def account_info_call(context: Context, session: Session) -> Call:
    """§17: the passport's account info, on the main host, with no body. A 1015 is an answer
    here (not logged in), so the envelope is read by :func:`parse_account_info`."""
    call = web_call(
        context,
        session,
        path=ACCOUNT_INFO,
        body={},
        query={"account_sdk_source": "web"},
        purpose="credits",
    )
    return attrs.evolve(call, body=None, check=_check_status_only)


def _check_status_only(response: Response) -> None:
    if response.status < 400 or response.status == 404:
        return
    raise error_class_for_status(response.status)(
        f"the account check answered HTTP {response.status}",
        status_code=response.status,
        retry_after=response.retry_after(),
        backend=BACKEND,
    )


def parse_account_info(response: Response) -> tuple[bool | None, str | None]:
    """§17 (the SDK rule): live when ``data.user_id`` or a top-level ``user_id`` is present
    with no ``ret`` ≠ 0, no ``message: "error"`` and no ``data.error_code``. ``None`` when the
    host has no such endpoint (404 on the HK/JP/SG host, §7.4)."""
    if response.status == 404:
        return None, "this site's host has no account endpoint (404); liveness unknown"
    payload = response.json()
    if not isinstance(payload, Mapping):
        return None, f"unexpected answer (HTTP {response.status})"
    found = payload.get("data")
    data: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    ret = str(payload.get("ret", "0")).strip()
    if ret not in ("0", ""):
        return False, f"ret {ret}: {payload.get('errmsg') or payload.get('message') or ''}".strip()
    if payload.get("message") == "error" or data.get("error_code"):
        return False, str(data.get("description") or data.get("error_code") or "error")
    if data.get("user_id") or payload.get("user_id"):
        return True, None
    return False, "no user_id in the answer"


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def parse_credit(response: Response) -> tuple[int, int, int]:
    """§7.1: ``data.credit.{gift_credit, purchase_credit, vip_credit}``."""
    credit = _data(response).get("credit")
    credit = credit if isinstance(credit, Mapping) else {}
    return (
        _int(credit.get("gift_credit")),
        _int(credit.get("purchase_credit")),
        _int(credit.get("vip_credit")),
    )


def parse_receive(response: Response) -> int:
    """§7.2: how many credits the claim added (``receive_quota``)."""
    return _int(_data(response).get("receive_quota"))


def with_video_url(result: VideoResult, url: str) -> VideoResult:
    """The result with a better URL for the same video (the high-bitrate copy, §5.4)."""
    video = attrs.evolve(result.video, url=url, expires_at=_expiry(url))
    return attrs.evolve(result, video=video)
