"""``client.images``: generate (submit + wait) and submit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from jimeng._handle import OnUpdate, TaskHandle
from jimeng._polling import PollPolicy
from jimeng.models import (
    AigcMeta,
    ImageInput,
    ImageInputLike,
    ImageRequest,
    ImageResult,
    TaskKind,
    Watermark,
)
from jimeng.models._checks import check_argument, instance, required
from jimeng.models._transforms import InpaintRequest, OutpaintRequest, UpscaleRequest
from jimeng.resources._common import (
    OnSubmit,
    check_wait_options,
    load_input,
    submit_transform,
    wait_for_result,
)

if TYPE_CHECKING:
    from jimeng._client import Client

__all__ = ["Images"]

_IS_REQUEST = required(instance(ImageRequest, "a ImageRequest"))


class Images:
    """Image generation. Parameters left at ``None`` are not sent: the backend's defaults apply."""

    def __init__(self, client: Client):
        self._client = client

    async def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str | None = None,
        width: int | None = None,
        height: int | None = None,
        images: Sequence[ImageInputLike | ImageInput] | ImageInputLike | None = None,
        scale: float | None = None,
        force_single: bool | None = None,
        min_ratio: float | None = None,
        max_ratio: float | None = None,
        seed: int | None = None,
        use_pre_llm: bool | None = None,
        ratio: str | None = None,
        resolution: str | None = None,
        intelligent_ratio: bool | None = None,
        negative_prompt: str | None = None,
        sample_strength: float | None = None,
        max_images: int | None = None,
        watermark: Watermark | bool | None = None,
        aigc_meta: AigcMeta | None = None,
        return_url: bool | None = None,
        response_format: Literal["url", "b64_json"] | None = None,
        callback_url: str | None = None,
        multi_image: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
        poll: PollPolicy | None = None,
        on_submit: OnSubmit | None = None,
        on_update: OnUpdate | None = None,
    ) -> ImageResult:
        """Generate images and wait for them.

        ``size`` is ``"1K"``, ``"2K"``, ``"4K"`` or ``"WxH"``; or give ``width`` and ``height``.
        ``images`` are reference images (URLs, paths or bytes). ``max_images`` asks for a group
        of related images (Ark): at most that many, the model decides how many. ``on_submit``
        is called with the accepted task as soon as the server returns its id; ``on_update`` on
        every status change. Any error after acceptance carries ``task_id``.
        """
        check_wait_options(poll, on_submit, on_update)
        # One generation slot of the rate limiter from submit until the result.
        async with self._client._limiter.slot():
            handle = await self.submit(
                prompt,
                model=model,
                size=size,
                width=width,
                height=height,
                images=images,
                scale=scale,
                force_single=force_single,
                min_ratio=min_ratio,
                max_ratio=max_ratio,
                seed=seed,
                use_pre_llm=use_pre_llm,
                ratio=ratio,
                resolution=resolution,
                intelligent_ratio=intelligent_ratio,
                negative_prompt=negative_prompt,
                sample_strength=sample_strength,
                max_images=max_images,
                watermark=watermark,
                aigc_meta=aigc_meta,
                return_url=return_url,
                response_format=response_format,
                callback_url=callback_url,
                multi_image=multi_image,
                extra_body=extra_body,
            )
            result: ImageResult = await wait_for_result(
                self._client, handle, on_submit=on_submit, poll=poll, on_update=on_update
            )
        return result

    async def submit(
        self,
        prompt: str,
        *,
        model: str | None = None,
        size: str | None = None,
        width: int | None = None,
        height: int | None = None,
        images: Sequence[ImageInputLike | ImageInput] | ImageInputLike | None = None,
        scale: float | None = None,
        force_single: bool | None = None,
        min_ratio: float | None = None,
        max_ratio: float | None = None,
        seed: int | None = None,
        use_pre_llm: bool | None = None,
        ratio: str | None = None,
        resolution: str | None = None,
        intelligent_ratio: bool | None = None,
        negative_prompt: str | None = None,
        sample_strength: float | None = None,
        max_images: int | None = None,
        watermark: Watermark | bool | None = None,
        aigc_meta: AigcMeta | None = None,
        return_url: bool | None = None,
        response_format: Literal["url", "b64_json"] | None = None,
        callback_url: str | None = None,
        multi_image: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> TaskHandle[ImageResult]:
        """Submit and return at once with a :class:`~jimeng.TaskHandle` (its id is durable)."""
        request = ImageRequest(
            prompt=prompt,
            model=model,
            size=size,
            width=width,
            height=height,
            images=images,
            scale=scale,
            force_single=force_single,
            min_ratio=min_ratio,
            max_ratio=max_ratio,
            seed=seed,
            use_pre_llm=use_pre_llm,
            ratio=ratio,
            resolution=resolution,
            intelligent_ratio=intelligent_ratio,
            negative_prompt=negative_prompt,
            sample_strength=sample_strength,
            max_images=max_images,
            watermark=watermark,
            aigc_meta=aigc_meta,
            return_url=return_url,
            response_format=response_format,
            callback_url=callback_url,
            multi_image=multi_image,
            extra=extra_body,
        )
        return await self.submit_request(request)

    async def submit_request(self, request: ImageRequest) -> TaskHandle[ImageResult]:
        """Submit a prebuilt :class:`~jimeng.ImageRequest`."""
        check_argument("request", request, _IS_REQUEST)
        if request.images:
            loaded = [
                await load_input(image, f"images[{index}]")
                for index, image in enumerate(request.images)
            ]
            request = attrs.evolve(request, images=tuple(i for i in loaded if i is not None))
        backend = self._client.backend
        backend.validate_image(request)
        task = await self._client._submit(backend.submit_image(request), kind=TaskKind.IMAGE)
        return TaskHandle(self._client, task, prompt=request.prompt)

    # -- edits of an image the caller has (Volcengine visual API) ------------------------------

    async def edit(
        self,
        prompt: str,
        *,
        image: ImageInputLike | ImageInput,
        mask: ImageInputLike | ImageInput,
        seed: int | None = None,
        watermark: Watermark | bool | None = None,
        aigc_meta: AigcMeta | None = None,
        return_url: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
        poll: PollPolicy | None = None,
        on_submit: OnSubmit | None = None,
        on_update: OnUpdate | None = None,
    ) -> ImageResult:
        """Repaint the white area of ``mask`` (black keeps, white repaints; the image's size)
        with ``prompt``. The prompt ``jimeng.REMOVE_PROMPT`` (``"删除"``) erases it instead.
        Images are URLs, paths or bytes."""
        check_wait_options(poll, on_submit, on_update)
        handle = await self.submit_edit(
            prompt,
            image=image,
            mask=mask,
            seed=seed,
            watermark=watermark,
            aigc_meta=aigc_meta,
            return_url=return_url,
            extra_body=extra_body,
        )
        result: ImageResult = await wait_for_result(
            self._client, handle, on_submit=on_submit, poll=poll, on_update=on_update
        )
        return result

    async def submit_edit(
        self,
        prompt: str,
        *,
        image: ImageInputLike | ImageInput,
        mask: ImageInputLike | ImageInput,
        seed: int | None = None,
        watermark: Watermark | bool | None = None,
        aigc_meta: AigcMeta | None = None,
        return_url: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> TaskHandle[ImageResult]:
        """Submit an edit and return at once with a :class:`~jimeng.TaskHandle`."""
        request = InpaintRequest(
            prompt=prompt,
            image=image,
            mask=mask,
            seed=seed,
            watermark=watermark,
            aigc_meta=aigc_meta,
            return_url=return_url,
            extra=extra_body,
        )
        task = await submit_transform(self._client, request)
        return TaskHandle(self._client, task, prompt=prompt)

    async def upscale(
        self,
        image: ImageInputLike | ImageInput,
        *,
        resolution: str | None = None,
        detail: int | None = None,
        watermark: Watermark | bool | None = None,
        aigc_meta: AigcMeta | None = None,
        return_url: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
        poll: PollPolicy | None = None,
        on_submit: OnSubmit | None = None,
        on_update: OnUpdate | None = None,
    ) -> ImageResult:
        """Upscale ``image`` to ``resolution`` ``"4k"`` (the default) or ``"8k"``; ``detail``
        (0–100, default 50) is how much new detail the model may invent."""
        check_wait_options(poll, on_submit, on_update)
        handle = await self.submit_upscale(
            image,
            resolution=resolution,
            detail=detail,
            watermark=watermark,
            aigc_meta=aigc_meta,
            return_url=return_url,
            extra_body=extra_body,
        )
        result: ImageResult = await wait_for_result(
            self._client, handle, on_submit=on_submit, poll=poll, on_update=on_update
        )
        return result

    async def submit_upscale(
        self,
        image: ImageInputLike | ImageInput,
        *,
        resolution: str | None = None,
        detail: int | None = None,
        watermark: Watermark | bool | None = None,
        aigc_meta: AigcMeta | None = None,
        return_url: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> TaskHandle[ImageResult]:
        """Submit an upscale and return at once with a :class:`~jimeng.TaskHandle`."""
        request = UpscaleRequest(
            image=image,
            resolution=resolution,
            detail=detail,
            watermark=watermark,
            aigc_meta=aigc_meta,
            return_url=return_url,
            extra=extra_body,
        )
        task = await submit_transform(self._client, request)
        return TaskHandle(self._client, task)

    async def outpaint(
        self,
        image: ImageInputLike | ImageInput,
        *,
        left: float | None = None,
        right: float | None = None,
        top: float | None = None,
        bottom: float | None = None,
        prompt: str | None = None,
        mask: ImageInputLike | ImageInput | None = None,
        seed: int | None = None,
        watermark: Watermark | bool | None = None,
        aigc_meta: AigcMeta | None = None,
        return_url: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
        poll: PollPolicy | None = None,
        on_submit: OnSubmit | None = None,
        on_update: OnUpdate | None = None,
    ) -> ImageResult:
        """Extend ``image`` beyond its borders: ``left``/``right``/``top``/``bottom`` add that
        fraction (0–1) of the original side. Or give ``mask`` for an image already padded to the
        canvas (white where to paint). ``prompt`` describes what to add."""
        check_wait_options(poll, on_submit, on_update)
        handle = await self.submit_outpaint(
            image,
            left=left,
            right=right,
            top=top,
            bottom=bottom,
            prompt=prompt,
            mask=mask,
            seed=seed,
            watermark=watermark,
            aigc_meta=aigc_meta,
            return_url=return_url,
            extra_body=extra_body,
        )
        result: ImageResult = await wait_for_result(
            self._client, handle, on_submit=on_submit, poll=poll, on_update=on_update
        )
        return result

    async def submit_outpaint(
        self,
        image: ImageInputLike | ImageInput,
        *,
        left: float | None = None,
        right: float | None = None,
        top: float | None = None,
        bottom: float | None = None,
        prompt: str | None = None,
        mask: ImageInputLike | ImageInput | None = None,
        seed: int | None = None,
        watermark: Watermark | bool | None = None,
        aigc_meta: AigcMeta | None = None,
        return_url: bool | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ) -> TaskHandle[ImageResult]:
        """Submit an outpaint and return at once with a :class:`~jimeng.TaskHandle`."""
        request = OutpaintRequest(
            image=image,
            left=left,
            right=right,
            top=top,
            bottom=bottom,
            prompt=prompt,
            mask=mask,
            seed=seed,
            watermark=watermark,
            aigc_meta=aigc_meta,
            return_url=return_url,
            extra=extra_body,
        )
        task = await submit_transform(self._client, request)
        return TaskHandle(self._client, task, prompt=prompt)
