"""``client.videos``: generate (submit + wait) and submit."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from jimeng._handle import OnUpdate, TaskHandle
from jimeng._polling import PollPolicy
from jimeng.errors import ValidationError
from jimeng.models import AigcMeta, ImageInput, ImageInputLike, VideoRequest, VideoResult, Watermark
from jimeng.models._checks import check_argument, instance, required, text
from jimeng.models._task import TaskKind
from jimeng.models._transforms import AvatarRequest, MediaInput, MotionRequest, TranslateRequest
from jimeng.resources._common import (
    OnSubmit,
    check_wait_options,
    load_input,
    load_media,
    submit_transform,
    wait_for_result,
)

if TYPE_CHECKING:
    from jimeng._client import Client

__all__ = ["Videos"]

_IS_REQUEST = required(instance(VideoRequest, "a VideoRequest"))


class Videos:
    """Video generation. Parameters left at ``None`` are not sent: the backend's defaults apply."""

    def __init__(self, client: Client):
        self._client = client

    async def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        mode: str | None = None,
        duration: float | None = None,
        fps: int | None = None,
        frames: int | None = None,
        aspect_ratio: str | None = None,
        ratio: str | None = None,
        resolution: str | None = None,
        seed: int | None = None,
        image: ImageInputLike | ImageInput | None = None,
        tail_image: ImageInputLike | ImageInput | None = None,
        reference_images: Sequence[ImageInputLike | ImageInput] | ImageInputLike | None = None,
        reference_videos: Sequence[str | os.PathLike[str] | bytes | MediaInput]
        | str
        | os.PathLike[str]
        | bytes
        | None = None,
        camera: str | None = None,
        camera_fixed: bool | None = None,
        generate_audio: bool | None = None,
        camera_strength: str | None = None,
        function_mode: str | None = None,
        watermark: Watermark | bool | None = None,
        aigc_meta: AigcMeta | None = None,
        return_url: bool | None = None,
        response_format: Literal["url", "b64_json"] | None = None,
        callback_url: str | None = None,
        ms_token: str | None = None,
        a_bogus: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        poll: PollPolicy | None = None,
        on_submit: OnSubmit | None = None,
        on_update: OnUpdate | None = None,
    ) -> VideoResult:
        """Generate one video and wait for it.

        ``mode`` picks the variant (Volcengine: ``t2v_720p`` by default, ``t2v_1080p``,
        ``i2v_first_720p``, ``i2v_first_tail_1080p``, ``i2v_recamera_720p``, ``ti2v_pro``…);
        without it the mode follows from the inputs. ``image``/``tail_image`` are the first and
        last frames (URL, path or bytes); ``reference_images`` are images the video draws its
        subjects from (Ark). ``camera_fixed`` keeps the camera still and ``generate_audio`` adds
        a sound track (Ark). ``duration`` (5 or 10 s), ``fps`` (24) and ``frames``
        (121 or 241) set the length; ``ratio`` is an alias of ``aspect_ratio`` (text-to-video
        only). ``camera``/``camera_strength`` drive the camera-movement mode. The result's link
        expires (``expires_at``); ``save()`` streams the MP4.

        Dreamina: ``function_mode="omni_reference"`` with ``reference_images`` (Seedance 2.0)
        makes a video from materials the prompt names as ``@image_file_1``…; ``ms_token`` and
        ``a_bogus`` pass a browser's tokens to a Seedance generate call on the CN site.
        """
        check_wait_options(poll, on_submit, on_update)
        # One generation slot of the rate limiter from submit until the result.
        async with self._client._limiter.slot():
            handle = await self.submit(
                prompt,
                model=model,
                mode=mode,
                duration=duration,
                fps=fps,
                frames=frames,
                aspect_ratio=aspect_ratio,
                ratio=ratio,
                resolution=resolution,
                seed=seed,
                image=image,
                tail_image=tail_image,
                reference_images=reference_images,
                reference_videos=reference_videos,
                camera=camera,
                camera_fixed=camera_fixed,
                generate_audio=generate_audio,
                camera_strength=camera_strength,
                function_mode=function_mode,
                watermark=watermark,
                aigc_meta=aigc_meta,
                return_url=return_url,
                response_format=response_format,
                callback_url=callback_url,
                ms_token=ms_token,
                a_bogus=a_bogus,
                extra_body=extra_body,
            )
            result: VideoResult = await wait_for_result(
                self._client, handle, on_submit=on_submit, poll=poll, on_update=on_update
            )
        return result

    async def submit(
        self,
        prompt: str,
        *,
        model: str | None = None,
        mode: str | None = None,
        duration: float | None = None,
        fps: int | None = None,
        frames: int | None = None,
        aspect_ratio: str | None = None,
        ratio: str | None = None,
        resolution: str | None = None,
        seed: int | None = None,
        image: ImageInputLike | ImageInput | None = None,
        tail_image: ImageInputLike | ImageInput | None = None,
        reference_images: Sequence[ImageInputLike | ImageInput] | ImageInputLike | None = None,
        reference_videos: Sequence[str | os.PathLike[str] | bytes | MediaInput]
        | str
        | os.PathLike[str]
        | bytes
        | None = None,
        camera: str | None = None,
        camera_fixed: bool | None = None,
        generate_audio: bool | None = None,
        camera_strength: str | None = None,
        function_mode: str | None = None,
        watermark: Watermark | bool | None = None,
        aigc_meta: AigcMeta | None = None,
        return_url: bool | None = None,
        response_format: Literal["url", "b64_json"] | None = None,
        callback_url: str | None = None,
        ms_token: str | None = None,
        a_bogus: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> TaskHandle[VideoResult]:
        """Submit and return at once with a :class:`~jimeng.TaskHandle`."""
        check_argument("ratio", ratio, text())
        request = VideoRequest(
            prompt=prompt,
            model=model,
            mode=mode,
            duration=duration,
            fps=fps,
            frames=frames,
            aspect_ratio=aspect_ratio if aspect_ratio is not None else ratio,
            resolution=resolution,
            seed=seed,
            image=image,
            tail_image=tail_image,
            reference_images=reference_images,
            reference_videos=reference_videos,
            camera=camera,
            camera_fixed=camera_fixed,
            generate_audio=generate_audio,
            camera_strength=camera_strength,
            function_mode=function_mode,
            watermark=watermark,
            aigc_meta=aigc_meta,
            return_url=return_url,
            response_format=response_format,
            callback_url=callback_url,
            ms_token=ms_token,
            a_bogus=a_bogus,
            extra=extra_body,
        )
        if ratio is not None and aspect_ratio is not None and ratio != aspect_ratio:
            raise ValidationError(
                "ratio", "ratio and aspect_ratio disagree; give one", value=(ratio, aspect_ratio)
            )
        return await self.submit_request(request)

    async def submit_request(self, request: VideoRequest) -> TaskHandle[VideoResult]:
        """Submit a prebuilt :class:`~jimeng.VideoRequest`."""
        check_argument("request", request, _IS_REQUEST)
        references = None
        if request.reference_images:
            loaded = [
                await load_input(image, f"reference_images[{index}]")
                for index, image in enumerate(request.reference_images)
            ]
            references = tuple(image for image in loaded if image is not None)
        videos = None
        if request.reference_videos:
            videos = tuple(
                [
                    await load_media(video, f"reference_videos[{index}]")
                    for index, video in enumerate(request.reference_videos)
                ]
            )
        request = attrs.evolve(
            request,
            image=await load_input(request.image, "image"),
            tail_image=await load_input(request.tail_image, "tail_image"),
            reference_images=references,
            reference_videos=videos,
        )
        backend = self._client.backend
        backend.validate_video(request)
        task = await self._client._submit(backend.submit_video(request), kind=TaskKind.VIDEO)
        return TaskHandle(self._client, task, prompt=request.prompt)

    # -- videos from media the caller has (Volcengine visual API) ------------------------------

    async def imitate_motion(
        self,
        *,
        image: ImageInputLike | ImageInput,
        video: str | os.PathLike[str] | MediaInput,
        model: str | None = None,
        trim_start: bool | None = None,
        callback_url: str | None = None,
        aigc_meta: AigcMeta | None = None,
        extra_body: Mapping[str, Any] | None = None,
        poll: PollPolicy | None = None,
        on_submit: OnSubmit | None = None,
        on_update: OnUpdate | None = None,
    ) -> VideoResult:
        """Make the subject of ``image`` move like the one in ``video`` (a public URL of a
        driving video up to 30 s). ``model`` is ``"motion-2.0"`` (default: several people,
        non-human subjects; the image may be a file) or ``"motion-1.0"`` (image by URL).
        ``trim_start`` (2.0, default on) drops the ~1 s transition the model adds."""
        check_wait_options(poll, on_submit, on_update)
        handle = await self.submit_imitate_motion(
            image=image,
            video=video,
            model=model,
            trim_start=trim_start,
            callback_url=callback_url,
            aigc_meta=aigc_meta,
            extra_body=extra_body,
        )
        result: VideoResult = await wait_for_result(
            self._client, handle, on_submit=on_submit, poll=poll, on_update=on_update
        )
        return result

    async def submit_imitate_motion(
        self,
        *,
        image: ImageInputLike | ImageInput,
        video: str | os.PathLike[str] | MediaInput,
        model: str | None = None,
        trim_start: bool | None = None,
        callback_url: str | None = None,
        aigc_meta: AigcMeta | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> TaskHandle[VideoResult]:
        """Submit a motion imitation and return at once with a :class:`~jimeng.TaskHandle`."""
        request = MotionRequest(
            image=image,
            video=video,
            model=model,
            trim_start=trim_start,
            callback_url=callback_url,
            aigc_meta=aigc_meta,
            extra=extra_body,
        )
        task = await submit_transform(self._client, request)
        return TaskHandle(self._client, task)

    async def avatar(
        self,
        *,
        image: ImageInputLike | ImageInput,
        audio: str | os.PathLike[str] | MediaInput,
        prompt: str | None = None,
        resolution: int | None = None,
        fast: bool | None = None,
        masks: Sequence[str] | None = None,
        seed: int | None = None,
        check: bool = True,
        aigc_meta: AigcMeta | None = None,
        extra_body: Mapping[str, Any] | None = None,
        poll: PollPolicy | None = None,
        on_submit: OnSubmit | None = None,
        on_update: OnUpdate | None = None,
    ) -> VideoResult:
        """Make the portrait in ``image`` speak ``audio`` (OmniHuman 1.5). Both are public URLs;
        the audio must be shorter than 60 s. ``resolution`` is 720 or 1080 (default), ``fast``
        trades quality for speed, ``masks`` pick the speaking subject. ``check`` (default) runs
        the subject check first and refuses a portrait without a person-like subject before the
        paid video is submitted."""
        check_wait_options(poll, on_submit, on_update)
        handle = await self.submit_avatar(
            image=image,
            audio=audio,
            prompt=prompt,
            resolution=resolution,
            fast=fast,
            masks=masks,
            seed=seed,
            check=check,
            aigc_meta=aigc_meta,
            extra_body=extra_body,
        )
        result: VideoResult = await wait_for_result(
            self._client, handle, on_submit=on_submit, poll=poll, on_update=on_update
        )
        return result

    async def submit_avatar(
        self,
        *,
        image: ImageInputLike | ImageInput,
        audio: str | os.PathLike[str] | MediaInput,
        prompt: str | None = None,
        resolution: int | None = None,
        fast: bool | None = None,
        masks: Sequence[str] | None = None,
        seed: int | None = None,
        check: bool = True,
        aigc_meta: AigcMeta | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> TaskHandle[VideoResult]:
        """Run the subject check (unless ``check=False``), submit the avatar video and return at
        once with its :class:`~jimeng.TaskHandle`."""
        request = AvatarRequest(
            image=image,
            audio=audio,
            prompt=prompt,
            resolution=resolution,
            fast=fast,
            masks=masks,
            seed=seed,
            check=check,
            aigc_meta=aigc_meta,
            extra=extra_body,
        )
        task = await submit_transform(self._client, request)
        return TaskHandle(self._client, task, prompt=prompt)

    async def translate(
        self,
        video: str | os.PathLike[str] | MediaInput,
        *,
        target_language: str,
        source_language: str | None = None,
        aigc_meta: AigcMeta | None = None,
        extra_body: Mapping[str, Any] | None = None,
        poll: PollPolicy | None = None,
        on_submit: OnSubmit | None = None,
        on_update: OnUpdate | None = None,
    ) -> VideoResult:
        """Dub the one front-facing speaker of ``video`` (a public URL, 5–180 s) into
        ``target_language`` with lip sync. Languages are short codes (``"en"``, ``"ja"``…);
        ``source_language`` defaults to ``"zh"``."""
        check_wait_options(poll, on_submit, on_update)
        handle = await self.submit_translate(
            video,
            target_language=target_language,
            source_language=source_language,
            aigc_meta=aigc_meta,
            extra_body=extra_body,
        )
        result: VideoResult = await wait_for_result(
            self._client, handle, on_submit=on_submit, poll=poll, on_update=on_update
        )
        return result

    async def submit_translate(
        self,
        video: str | os.PathLike[str] | MediaInput,
        *,
        target_language: str,
        source_language: str | None = None,
        aigc_meta: AigcMeta | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> TaskHandle[VideoResult]:
        """Submit a translation and return at once with a :class:`~jimeng.TaskHandle`."""
        request = TranslateRequest(
            video=video,
            target_language=target_language,
            source_language=source_language,
            aigc_meta=aigc_meta,
            extra=extra_body,
        )
        task = await submit_transform(self._client, request)
        return TaskHandle(self._client, task)
