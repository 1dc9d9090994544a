"""What a backend can do, as data: models, sizes, ratios, durations and features.

Each backend builds its :class:`Capabilities` from the same tables its validation reads, so the
CLI (``jimeng backends``), the docs' comparison table and the ValidationErrors never disagree.
A new backend fills one in by overriding :meth:`Backend.capabilities
<jimeng.backends._base.Backend.capabilities>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from jimeng.models import TaskKind

__all__ = ["FEATURES", "Capabilities", "ModelCapabilities", "comparison_table"]

#: Features a backend may offer, with what each means (the docs print this list).
FEATURES: Mapping[str, str] = {
    "async_submit": "submit() returns at once with a server task id",
    "cancel": "queued tasks can be cancelled",
    "list": "the server lists its tasks",
    "credits": "credit balance (account.credits())",
    "claim": "daily credits claim (account.claim())",
    "check": "session liveness check (account.check())",
    "webhooks": "callback_url is called when a task ends",
    "omni": "omni reference video (Seedance 2.0 materials)",
    "multi_image": "several images from one prompt (a story, N张)",
    "image_edits": "images.edit / upscale / outpaint on an image you have",
    "video_transforms": "videos.imitate_motion / avatar / translate from media you have",
}


def _strings(values: Iterable[Any]) -> tuple[str, ...]:
    return tuple(str(value) for value in values)


@attrs.frozen(kw_only=True)
class ModelCapabilities:
    """One model as a backend offers it."""

    name: str
    kind: TaskKind
    #: Aspect ratios accepted as ``ratio=`` (images) or ``aspect_ratio=`` (videos).
    ratios: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    #: ``resolution=`` values (images: ``1k``/``2k``/``4k``; videos: ``720p``…).
    resolutions: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    #: How pixel sizes are honoured, in a few words ("exact WxH, area 1024²–4096²").
    sizes: str = ""
    #: Video lengths in seconds.
    durations: tuple[int, ...] = ()
    #: Reference images a request may carry (0: none).
    max_images: int = 0
    #: Sites where the model is offered (web sessions), empty when it does not depend on one.
    regions: tuple[str, ...] = attrs.field(default=(), converter=_strings)


@attrs.frozen(kw_only=True)
class Capabilities:
    """What one backend, as configured, can do."""

    backend: str
    models: tuple[ModelCapabilities, ...] = ()
    features: frozenset[str] = frozenset()
    #: How ``size``/``width``/``height`` reach this backend's protocol, in a sentence.
    sizing: str = ""

    def __attrs_post_init__(self) -> None:
        unknown = self.features - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}; known: {sorted(FEATURES)}")

    def supports(self, feature: str) -> bool:
        return feature in self.features

    def model(self, name: str) -> ModelCapabilities | None:
        wanted = name.strip().lower()
        return next((model for model in self.models if model.name == wanted), None)

    @property
    def image_models(self) -> tuple[ModelCapabilities, ...]:
        return tuple(model for model in self.models if model.kind is TaskKind.IMAGE)

    @property
    def video_models(self) -> tuple[ModelCapabilities, ...]:
        return tuple(model for model in self.models if model.kind is TaskKind.VIDEO)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for ``--json``)."""
        return {
            "backend": self.backend,
            "features": sorted(self.features),
            "sizing": self.sizing,
            "models": [
                {**attrs.asdict(model, recurse=False), "kind": model.kind.value}
                for model in self.models
            ],
        }


def _cell(values: Iterable[object]) -> str:
    text = ", ".join(str(value) for value in values)
    return text or "–"


def _durations(values: tuple[int, ...]) -> str:
    if len(values) > 3 and values == tuple(range(values[0], values[-1] + 1)):
        return f"{values[0]}–{values[-1]}"
    return _cell(values)


def comparison_table(capabilities: Iterable[Capabilities]) -> str:
    """A Markdown comparison of several backends: features, then every model."""
    every = list(capabilities)
    names = [c.backend for c in every]
    lines = [
        "| feature | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for feature, meaning in FEATURES.items():
        marks = ["yes" if c.supports(feature) else "–" for c in every]
        lines.append(f"| `{feature}`: {meaning} | " + " | ".join(marks) + " |")
    lines.append("| sizes | " + " | ".join(c.sizing or "–" for c in every) + " |")
    lines += [
        "",
        "| backend | model | kind | ratios | resolutions | sizes | durations (s) | "
        "reference images | sites |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in every:
        for m in c.models:
            lines.append(
                f"| {c.backend} | `{m.name}` | {m.kind.value} | {_cell(m.ratios)} | "
                f"{_cell(m.resolutions)} | {m.sizes or '–'} | {_durations(m.durations)} | "
                f"{m.max_images or '–'} | {_cell(m.regions)} |"
            )
    return "\n".join(lines) + "\n"
