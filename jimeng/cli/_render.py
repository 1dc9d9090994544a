"""What the commands print: the seeds' "Generation Info" Markdown, or one JSON document."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from jimeng import JournalEntry
from jimeng.backends import AccountBalance
from jimeng.models import ImageResult, Task, VideoResult

__all__ = [
    "SavedMedia",
    "balances_doc",
    "balances_markdown",
    "dump_json",
    "image_doc",
    "image_markdown",
    "submitted_markdown",
    "task_doc",
    "task_markdown",
    "tasks_markdown",
    "video_doc",
    "video_markdown",
]


@attrs.frozen(kw_only=True)
class SavedMedia:
    """One generated file as the CLI reports it."""

    url: str | None
    path: Path | None
    width: int | None = None
    height: int | None = None

    @property
    def size(self) -> tuple[int, int] | None:
        if self.width is None or self.height is None:
            return None
        return self.width, self.height


def dump_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2, default=str)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _urls(task: Task) -> list[str]:
    result = task.result
    if isinstance(result, ImageResult):
        return result.urls
    if isinstance(result, VideoResult) and result.url:
        return [result.url]
    return []


def task_doc(task: Task, *, backend: str | None = None) -> dict[str, Any]:
    """A task as JSON: ids, state, timestamps, failure and result links. ``backend`` is the
    client's backend name when it differs from the task's protocol (the sandbox)."""
    return {
        "task_id": task.id,
        "ref": task.ref,
        "kind": task.kind.value,
        "status": task.status.value,
        "raw_status": task.raw_status,
        "backend": backend or task.backend,
        "model": task.model,
        "created_at": _iso(task.created_at),
        "updated_at": _iso(task.updated_at),
        "completed_at": _iso(task.completed_at),
        "failure": (
            {"code": task.failure.code, "message": task.failure.message} if task.failure else None
        ),
        "urls": _urls(task),
    }


def _common(task: Task, prompt: str | None, backend: str) -> dict[str, Any]:
    return {
        "kind": task.kind.value,
        "task_id": task.id,
        "ref": task.ref,
        "status": task.status.value,
        "backend": backend,
        "model": task.model,
        "prompt": prompt,
    }


def image_doc(
    task: Task,
    result: ImageResult,
    media: Sequence[SavedMedia],
    prompt: str | None,
    *,
    backend: str,
) -> dict[str, Any]:
    doc = _common(task, prompt, backend)
    doc["model"] = result.model or task.model
    doc["request_id"] = result.request_id
    doc["urls"] = [item.url for item in media if item.url]
    doc["saved"] = [str(item.path) for item in media if item.path is not None]
    doc["images"] = [
        {
            "url": item.url,
            "path": str(item.path) if item.path is not None else None,
            "width": item.width,
            "height": item.height,
        }
        for item in media
    ]
    return doc


def video_doc(
    task: Task,
    result: VideoResult,
    media: SavedMedia,
    prompt: str | None,
    *,
    backend: str,
    duration: float | None,
    fps: int | None,
    mode: str | None,
) -> dict[str, Any]:
    doc = _common(task, prompt, backend)
    doc["model"] = result.model or task.model
    doc["request_id"] = result.request_id
    doc["mode"] = mode
    doc["duration"] = duration
    doc["fps"] = fps
    doc["urls"] = [media.url] if media.url else []
    doc["saved"] = [str(media.path)] if media.path is not None else []
    doc["video"] = {
        "url": media.url,
        "path": str(media.path) if media.path is not None else None,
        "width": media.width,
        "height": media.height,
    }
    return doc


def _target(item: SavedMedia) -> str:
    if item.url:
        return item.url
    return f"<{item.path}>" if item.path is not None else ""


def _save_path(paths: Sequence[Path]) -> str:
    """The folder the images went to (each image's own line names its file)."""
    if not paths:
        return "not saved"
    parents = {path.parent for path in paths}
    return str(parents.pop()) if len(parents) == 1 else ", ".join(map(str, paths))


def _size_text(size: tuple[int, int] | None) -> str:
    return f"{size[0]} × {size[1]}" if size else "the backend's default"


def image_markdown(
    media: Sequence[SavedMedia],
    prompt: str | None,
    *,
    requested: tuple[int, int] | None,
    task: Task,
    backend: str,
) -> str:
    """Seed 000's "Generation Info" block, then each image numbered with its link and file."""
    sizes = {item.size for item in media if item.size}
    if len(sizes) == 1:
        size_text = _size_text(next(iter(sizes)))
    elif sizes:
        size_text = ", ".join(_size_text(item.size) for item in media)
    else:
        size_text = _size_text(requested)
    paths = [item.path for item in media if item.path is not None]
    lines = ["**Generation Info:**"]
    if prompt is not None:
        lines.append(f"- Prompt: {prompt}")
    lines.append(f"- Size: {size_text}")
    lines.append(f"- Save Path: {_save_path(paths)}")
    model = f", {task.model}" if task.model else ""
    lines.append(f"- Task: {task.id} ({backend}{model})")
    for number, item in enumerate(media, start=1):
        lines.append("")
        lines.append(f"**Image {number}:** ![Image {number}]({_target(item)})")
        if item.url:
            lines.append(f"- Link: {item.url}")
        if item.path is not None:
            lines.append(f"- File: {item.path}")
        if not item.url and item.path is None:
            lines.append("- (returned inline without a link; save it to keep it)")
    return "\n".join(lines)


def video_markdown(
    media: SavedMedia,
    prompt: str | None,
    *,
    duration: float | None,
    fps: int | None,
    mode: str | None,
    task: Task,
    backend: str,
) -> str:
    """Seed 003's block: the video link first, then "Generation Info"."""
    lines = ["**Generated Video:**"]
    if media.url:
        lines.append(f"[Download Video]({media.url})")
    elif media.path is not None:
        lines.append(f"[Video](<{media.path}>)")
    lines.append("")
    lines.append("**Generation Info:**")
    if prompt is not None:
        lines.append(f"- Prompt: {prompt}")
    lines.append(
        "- Duration: "
        + (f"{duration:g} seconds" if duration is not None else "the backend's default")
    )
    lines.append(f"- Mode: {mode or task.model or 'the backend default'}")
    lines.append(f"- FPS: {fps if fps is not None else 'the backend default'}")
    if media.size:
        lines.append(f"- Size: {_size_text(media.size)}")
    lines.append(f"- Save Path: {media.path if media.path is not None else 'not saved'}")
    lines.append(f"- Task: {task.id} ({backend})")
    return "\n".join(lines)


def submitted_markdown(task: Task, wait_command: str | None, *, backend: str) -> str:
    lines = [
        "**Task submitted:**",
        f"- Task: {task.id}",
        f"- Ref: {task.ref}",
        f"- Status: {task.status.value}",
        f"- Backend: {backend}",
    ]
    if wait_command:
        lines.append(f"- Collect the result: `{wait_command}`")
    return "\n".join(lines)


def task_markdown(task: Task, *, backend: str | None = None) -> str:
    doc = task_doc(task, backend=backend)
    lines = [f"**Task {task.id}:**", f"- Ref: {task.ref}", f"- Kind: {task.kind.value}"]
    status = task.status.value
    if task.raw_status and task.raw_status != status:
        status += f" ({task.raw_status})"
    lines.append(f"- Status: {status}")
    lines.append(f"- Backend: {doc['backend']}")
    if task.model:
        lines.append(f"- Model: {task.model}")
    for key, label in (("created_at", "Created"), ("completed_at", "Completed")):
        if doc[key]:
            lines.append(f"- {label}: {doc[key]}")
    if task.failure is not None:
        code = f"{task.failure.code}: " if task.failure.code is not None else ""
        lines.append(f"- Failure: {code}{task.failure.message}")
    for number, url in enumerate(doc["urls"], start=1):
        lines.append(f"- Result {number}: {url}")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return "" if value is None else str(value).replace("|", "\\|")


def tasks_markdown(tasks: Sequence[Task]) -> str:
    if not tasks:
        return "No tasks."
    rows = ["| task | kind | status | model | created | ref |", "|---|---|---|---|---|---|"]
    for task in tasks:
        rows.append(
            "| "
            + " | ".join(
                _cell(value)
                for value in (
                    task.id,
                    task.kind.value,
                    task.status.value,
                    task.model,
                    _iso(task.created_at),
                    task.ref,
                )
            )
            + " |"
        )
    return "\n".join(rows)


def journal_markdown(entries: Sequence[JournalEntry], *, path: Path) -> str:
    """``jimeng task list --local``: what the journal at ``path`` knows, newest first."""
    if not entries:
        return f"No tasks in the journal ({path})."
    rows = [
        "| ref | backend | kind | model | status | submitted | saved |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        rows.append(
            "| "
            + " | ".join(
                _cell(value)
                for value in (
                    entry.ref,
                    entry.backend,
                    entry.kind.value,
                    entry.model,
                    entry.status.value,
                    _iso(entry.submitted_at),
                    "<br>".join(entry.saved) or None,
                )
            )
            + " |"
        )
    return "\n".join(rows) + f"\n\nJournal: {path}"


def balances_doc(balances: Sequence[AccountBalance]) -> dict[str, Any]:
    return {
        "sessions": [
            {
                "session": balance.session,
                "region": balance.region,
                "gift": balance.gift,
                "purchase": balance.purchase,
                "vip": balance.vip,
                "total": balance.total,
            }
            for balance in balances
        ],
        "total": sum(balance.total for balance in balances),
    }


def balances_markdown(balances: Sequence[AccountBalance]) -> str:
    if not balances:
        return "No sessions."
    rows = [
        "| session | region | gift | purchase | vip | total |",
        "|---|---|---|---|---|---|",
    ]
    for b in balances:
        rows.append(
            f"| {_cell(b.session)} | {_cell(b.region)} | {b.gift} | {b.purchase} | {b.vip} "
            f"| {b.total} |"
        )
    rows.append(f"\n**Total:** {sum(b.total for b in balances)} credits")
    return "\n".join(rows)
