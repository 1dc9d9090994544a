"""The commands, built only on the public API (``jimeng.Client`` and its namespaces).

``main(argv)`` parses, runs one command in a fresh event loop and returns the exit code; it never
lets an expected failure escape as a traceback; what it prints on stdout and every line about a
failure go through the library's secret redaction.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs

import jimeng
from jimeng._logging import install_handler, redact, scrub
from jimeng.backends import NAMES, Backend, create, reference_capabilities
from jimeng.backends._capabilities import comparison_table
from jimeng.cli import _render
from jimeng.cli._batch import batch_client_options, run_batch
from jimeng.cli._exit import (
    IN_PROCESS_SANDBOX,
    ExitCode,
    UsageError,
    describe,
    exit_code,
    render_text,
)
from jimeng.cli._files import convert_webp, default_folder, image_size, is_webp
from jimeng.cli._parser import build_parser, option_names, verb_words
from jimeng.cli._progress import Progress
from jimeng.cli._render import SavedMedia
from jimeng.models import ImageResult, Task, VideoResult

__all__ = ["main"]

#: Test seam: extra keyword arguments for every client the CLI builds (a no-op ``sleep``, so
#: tests never wait). Empty in normal use.
_client_options: dict[str, Any] = {}

_IMAGE_PARAMS = (
    "model",
    "size",
    "width",
    "height",
    "images",
    "ratio",
    "resolution",
    "intelligent_ratio",
    "negative_prompt",
    "sample_strength",
    "scale",
    "seed",
    "watermark",
    "force_single",
    "max_images",
    "response_format",
    "callback_url",
)
_VIDEO_PARAMS = (
    "model",
    "mode",
    "duration",
    "fps",
    "image",
    "tail_image",
    "reference_images",
    "camera",
    "camera_strength",
    "camera_fixed",
    "generate_audio",
    "aspect_ratio",
    "ratio",
    "resolution",
    "seed",
    "watermark",
    "callback_url",
)
_PILLOW_NOTE = (
    "saved as WebP: install the pillow extra (pip install 'jimeng[pillow]') to get PNG files"
)


@attrs.define
class _Run:
    """One invocation: parsed arguments, streams, and the task being worked on."""

    args: argparse.Namespace
    stdout: TextIO
    stderr: TextIO
    options: dict[str, str]
    progress: Progress
    task: Task | None = None
    notes: list[str] = attrs.field(factory=list)
    #: The client's backend name ("sandbox" even though its tasks speak another protocol).
    backend: str = ""
    #: JSON documents gathered instead of printed (``task resume`` prints them as one).
    docs: list[dict[str, Any]] | None = None
    #: The signal (SIGTERM, SIGHUP) that stopped the command, if one did.
    stopped_by: int | None = None

    @property
    def journal(self) -> bool:
        """Whether this run keeps the task journal (the default; ``--no-journal`` opts out)."""
        return not getattr(self.args, "no_journal", False)

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    @property
    def quiet(self) -> bool:
        return bool(getattr(self.args, "quiet", False))

    def out(self, text: str) -> None:
        # Results may quote a secret (a relay's links signed with its key): never print one.
        self.stdout.write(redact(text) + "\n")
        self.stdout.flush()

    def note(self, text: str) -> None:
        self.notes.append(text)
        if not self.json and not self.quiet:
            self.progress.clear()
            self.stderr.write(f"jimeng: note: {redact(text)}\n")
            self.stderr.flush()

    def backend_args(self) -> list[str]:
        """The options that chose the backend, repeated in resume hints."""
        args = self.args
        words: list[str] = []
        if getattr(args, "sandbox", False):
            words.append("--sandbox")
        if getattr(args, "backend", None):
            words += ["--backend", args.backend]
        if getattr(args, "sandbox_url", None):
            words += ["--sandbox-url", args.sandbox_url]
        if getattr(args, "sandbox_protocol", None):
            words += ["--sandbox-protocol", args.sandbox_protocol]
        return words

    @property
    def in_process_sandbox(self) -> bool:
        """A sandbox that lives and dies with this command: no later command can reach it."""
        return self.backend == "sandbox" and not _remote_sandbox(self.args)

    def wait_command(self, ref: str) -> str | None:
        """The command that collects the task later (``None`` when none can)."""
        if self.in_process_sandbox:
            return None
        return " ".join(["jimeng", "task", "wait", *map(shlex.quote, [ref, *self.backend_args()])])

    def accepted(self, task: Task) -> None:
        """Say the task's ref the moment the server accepts it (on stderr, in every mode): a
        process killed after this line can be resumed with ``jimeng task resume``."""
        self.progress.clear()
        self.stderr.write(f"accepted: {task.ref}\n")
        self.stderr.flush()

    def emit(self, doc: dict[str, Any]) -> None:
        doc = scrub(doc)  # before encoding: JSON may escape a secret's characters
        if self.docs is not None:
            self.docs.append(doc)
        else:
            self.out(_render.dump_json(doc))

    def follow_up_args(self) -> list[str] | None:
        """``backend_args()`` for follow-up hints, or ``None`` when none can work."""
        return None if self.in_process_sandbox else self.backend_args()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``jimeng`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code
    (:class:`~jimeng.cli.ExitCode`)."""
    words = verb_words(sys.argv[1:] if argv is None else argv)
    stdout, stderr = sys.stdout, sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(words)
    except UsageError as error:
        info = describe(error, options={}, task=None, backend_args=())
        stderr.write(render_text(info) + "\n")
        if "--json" in words:
            stdout.write(_render.dump_json({"error": info}) + "\n")
        return int(ExitCode.USAGE)
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else int(ExitCode.OK)
    quiet = bool(getattr(args, "json", False) or getattr(args, "quiet", False))
    verbosity = int(getattr(args, "verbose", 0) or 0)
    if verbosity:
        install_handler(logging.DEBUG if verbosity > 1 else logging.INFO, stderr)
    run = _Run(
        args=args,
        stdout=stdout,
        stderr=stderr,
        options=option_names(parser, words),
        progress=Progress(stderr, enabled=not quiet and _isatty(stderr)),
    )
    if args.command == "sandbox":
        return _serve(run)
    if args.command == "mcp":
        return _mcp(run)
    if args.command == "backends":
        return _backends(run)
    try:
        return asyncio.run(_execute(run))
    except BrokenPipeError:  # the reader went away (``jimeng … | head -1``): not worth a word
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the exit-time flush is quiet
        return int(ExitCode.ERROR)
    except KeyboardInterrupt:
        return _interrupted(run, signal.SIGINT)


#: Signals handled like Ctrl-C, and what the command then exits with (128 + the signal number).
_STOP_SIGNALS = {"SIGTERM": ExitCode.TERMINATED, "SIGHUP": ExitCode.HANGUP}


def _interrupted(run: _Run, number: int) -> int:
    """Ctrl-C, SIGTERM or SIGHUP: say how to pick the task up again, exit 130, 143 or 129.
    With ``--json``, stdout gets the same as a JSON ``error`` document."""
    run.progress.clear()
    name = signal.Signals(number).name
    message = "interrupted" if name == "SIGINT" else f"stopped by {name}"
    code = ExitCode.INTERRUPTED if name == "SIGINT" else _STOP_SIGNALS[name]
    info: dict[str, Any] = {
        "type": "Interrupted",
        "message": message,
        "signal": name,
        "exit_code": int(code),
    }
    run.stderr.write(f"jimeng: {message}\n")
    task = run.task
    if task is not None:
        info.update(task_id=task.id, ref=task.ref, status=task.status.value)
    if task is not None and not task.done:
        command = run.wait_command(task.ref)
        if command is None:
            info["note"] = IN_PROCESS_SANDBOX
            run.stderr.write(f"  {IN_PROCESS_SANDBOX}\n")
        else:
            info["resume"] = command
            run.stderr.write(
                f"  task {task.id} keeps running server-side; resume with: {command}\n"
            )
            if run.journal:
                # The same backend flags as the wait hint: without them a sandbox-url run
                # would resume against no backend at all.
                resume = ["jimeng", "task", "resume", *map(shlex.quote, run.backend_args())]
                info["resume_all"] = " ".join(resume)
                run.stderr.write(f"  or finish every unfinished task: {info['resume_all']}\n")
    elif task is not None and task.status is jimeng.TaskStatus.SUCCEEDED:
        # Stopped while its files were being saved: waiting again downloads them (no new task).
        command = run.wait_command(task.ref)
        if command is not None:
            info["resume"] = command
            run.stderr.write(
                f"  task {task.id} is done; its files may not all be saved: {command}\n"
            )
    run.stderr.flush()
    if run.json:
        if run.docs is not None:  # task resume: the tasks done so far, then this one
            entry = {"ref": info.get("ref"), "error": info}
            run.out(_render.dump_json({"tasks": [*run.docs, entry]}))
        else:
            run.out(_render.dump_json({"error": info}))
    return int(code)


def _stop_on_signals(run: _Run) -> list[int]:
    """Turn SIGTERM and SIGHUP into a cancellation of the command (like Ctrl-C), where the
    platform lets the loop handle signals; return the signals handled."""
    loop = asyncio.get_running_loop()
    command = asyncio.current_task()
    handled: list[int] = []

    def stop(number: int) -> None:
        if run.stopped_by is None and command is not None:
            run.stopped_by = number
            command.cancel()

    for name in _STOP_SIGNALS:
        number = getattr(signal, name, None)
        if number is None or signal.getsignal(number) is signal.SIG_IGN:
            continue  # no such signal here (Windows), or ignored on purpose (nohup)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(number, stop, number)
            handled.append(number)
    return handled


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


async def _execute(run: _Run) -> int:
    handled = _stop_on_signals(run)
    try:
        return await _execute_command(run)
    except asyncio.CancelledError:
        if run.stopped_by is None:
            raise
        return _interrupted(run, run.stopped_by)
    finally:
        loop = asyncio.get_running_loop()
        for number in handled:
            loop.remove_signal_handler(number)


def _journal_option(run: _Run) -> bool | None:
    """The CLI journals by default; ``--no-journal`` opts out; ``JIMENG_JOURNAL`` (a path, or
    ``0``) is honoured when set."""
    if not run.journal:
        return False
    return None if os.environ.get("JIMENG_JOURNAL", "").strip() else True


async def _execute_command(run: _Run) -> int:
    try:
        if _command_key(run.args) == "task list" and run.args.local:
            await _task_list_local(run)
            return int(ExitCode.OK)
        backend = _make_backend(run.args)
        run.backend = backend.name
        options = {"journal": _journal_option(run), **_client_options}
        if run.args.command == "batch":
            options.update(batch_client_options(run.args))
        async with jimeng.Client(backend, **options) as client:
            run.progress.start()
            try:
                code = await _COMMANDS[_command_key(run.args)](run, client)
            finally:
                run.progress.stop()
        return int(code or ExitCode.OK)
    except (jimeng.JimengError, UsageError) as error:
        return _fail(run, error)
    except BrokenPipeError:
        raise
    except Exception as error:  # a bug: say so, with the traceback (redacted)
        run.progress.stop()
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        run.stderr.write(redact(text))
        run.stderr.write("jimeng: internal error (please report it with the lines above)\n")
        return int(ExitCode.ERROR)


def _fail(run: _Run, error: BaseException) -> int:
    info = describe(error, options=run.options, task=run.task, backend_args=run.follow_up_args())
    unknown = isinstance(error, jimeng.TaskExpiredError | jimeng.NotFoundError)
    if unknown and run.args.command == "task" and run.in_process_sandbox:
        info["note"] = (
            "this sandbox started inside this command, so it knows no task from an earlier one; "
            "run 'jimeng sandbox serve' in another terminal and pass --sandbox-url (or set "
            "JIMENG_SANDBOX_URL) to every command"
        )
    info = {key: redact(value) if isinstance(value, str) else value for key, value in info.items()}
    run.stderr.write(render_text(info) + "\n")
    if run.json:
        run.out(_render.dump_json({"error": info}))
    return int(exit_code(error))


def _command_key(args: argparse.Namespace) -> str:
    action = getattr(args, "action", None)
    return f"{args.command} {action}" if action else str(args.command)


# -- backend selection -------------------------------------------------------------------------


def _make_backend(args: argparse.Namespace) -> Backend:
    """``--backend`` / ``--sandbox`` / ``--sandbox-url``, else ``$JIMENG_BACKEND``, else what the
    credentials in the environment point to (:func:`jimeng.backend_from_env`)."""
    name: str | None = args.backend
    if args.sandbox:
        if name is not None and name.strip().lower() != "sandbox":
            raise UsageError(f"--sandbox conflicts with --backend {name}", option="--sandbox")
        name = "sandbox"
    sandbox_url = args.sandbox_url or os.environ.get("JIMENG_SANDBOX_URL") or None
    for option, value in (
        ("--sandbox-url", args.sandbox_url),
        ("--sandbox-protocol", args.sandbox_protocol),
    ):
        if value and name is not None and name.strip().lower() != "sandbox":
            raise UsageError(f"only for the sandbox, not --backend {name}", option=option)
        if value:
            name = "sandbox"
    from_env = name is None
    if name is None:
        name = os.environ.get("JIMENG_BACKEND", "").strip() or None
    if name is None:
        try:
            return jimeng.backend_from_env()
        except jimeng.ConfigurationError as error:
            raise jimeng.ConfigurationError(
                f"{error.message}; on the command line: --backend NAME, or --sandbox"
            ) from None
    key = name.strip().lower()
    if key == "sandbox" and (sandbox_url or args.sandbox_protocol):
        options: dict[str, Any] = {}
        if sandbox_url:
            options["url"] = sandbox_url
        if args.sandbox_protocol:
            options["protocol"] = args.sandbox_protocol
        try:
            return jimeng.Sandbox(**options)
        except jimeng.ConfigurationError as error:
            if args.sandbox_protocol and "protocol" in str(error):
                raise UsageError(str(error), option="--sandbox-protocol") from None
            raise
    if key not in NAMES:
        message = f"unknown backend {name!r}; choose from {', '.join(NAMES)}"
        if from_env:
            raise jimeng.ConfigurationError(f"JIMENG_BACKEND: {message}")
        raise UsageError(message, option="--backend")
    return create(key)


# -- generation --------------------------------------------------------------------------------


def _given(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """Only what the user typed (parameter discipline, seed 002)."""
    return {name: value for name in names if (value := getattr(args, name, None)) is not None}


async def _image(run: _Run, client: jimeng.Client) -> None:
    args = run.args
    run.progress.status("submitting")
    handle = await client.images.submit(args.prompt, **_given(args, _IMAGE_PARAMS))
    await _submitted(run, client, handle, prompt=args.prompt)


async def _video(run: _Run, client: jimeng.Client) -> None:
    args = run.args
    if args.ratio is not None and args.aspect_ratio is not None and args.ratio != args.aspect_ratio:
        raise UsageError(
            f"--ratio {args.ratio} and --aspect-ratio {args.aspect_ratio} disagree; give one",
            option="--ratio",
        )
    run.progress.status("submitting")
    given = _given(args, _VIDEO_PARAMS)
    if "ratio" in given:
        given["aspect_ratio"] = given.pop("ratio")
    handle = await client.videos.submit(args.prompt, **given)
    await _submitted(run, client, handle, prompt=args.prompt)


async def _image_edit(run: _Run, client: jimeng.Client) -> None:
    args = run.args
    if args.remove and args.prompt:
        raise UsageError("give a PROMPT or --remove, not both", option="--remove")
    prompt = jimeng.REMOVE_PROMPT if args.remove else args.prompt
    if not prompt:
        raise UsageError("say what to paint (PROMPT), or --remove", option="--remove")
    run.progress.status("submitting")
    handle = await client.images.submit_edit(
        prompt, image=args.image, mask=args.mask, **_given(args, ("seed", "watermark"))
    )
    await _submitted(run, client, handle, prompt=prompt)


async def _image_upscale(run: _Run, client: jimeng.Client) -> None:
    args = run.args
    run.progress.status("submitting")
    handle = await client.images.submit_upscale(
        args.image, **_given(args, ("resolution", "detail", "watermark"))
    )
    await _submitted(run, client, handle, prompt=None)


async def _image_outpaint(run: _Run, client: jimeng.Client) -> None:
    args = run.args
    run.progress.status("submitting")
    names = ("left", "right", "top", "bottom", "mask", "prompt", "seed", "watermark")
    handle = await client.images.submit_outpaint(args.image, **_given(args, names))
    await _submitted(run, client, handle, prompt=args.prompt)


async def _video_imitate(run: _Run, client: jimeng.Client) -> None:
    args = run.args
    run.progress.status("submitting")
    handle = await client.videos.submit_imitate_motion(
        image=args.image,
        video=args.video,
        **_given(args, ("model", "trim_start", "callback_url")),
    )
    await _submitted(run, client, handle, prompt=None)


async def _video_avatar(run: _Run, client: jimeng.Client) -> None:
    args = run.args
    run.progress.status("checking the portrait" if args.check else "submitting")
    handle = await client.videos.submit_avatar(
        image=args.image,
        audio=args.audio,
        check=args.check,
        **_given(args, ("prompt", "resolution", "fast", "seed")),
    )
    await _submitted(run, client, handle, prompt=args.prompt)


async def _video_translate(run: _Run, client: jimeng.Client) -> None:
    args = run.args
    run.progress.status("submitting")
    handle = await client.videos.submit_translate(
        args.video,
        target_language=args.target_language,
        **_given(args, ("source_language",)),
    )
    await _submitted(run, client, handle, prompt=None)


async def _submitted(
    run: _Run, client: jimeng.Client, handle: jimeng.TaskHandle[Any], *, prompt: str | None
) -> None:
    """Every command that submits: say the ref and the backend's notes at once, then collect."""
    run.accepted(handle.task)
    run.task = handle.task
    for note in handle.notes:
        run.note(note)
    await _collect(run, client, handle, prompt=prompt)


async def _collect(
    run: _Run, client: jimeng.Client, handle: jimeng.TaskHandle[Any], *, prompt: str | None
) -> None:
    """Wait for a submitted (or resumed) task, save its files and print the result."""
    run.task = handle.task
    run.progress.on_update(handle.task)
    if getattr(run.args, "no_wait", False):
        _print_submitted(run, client, handle.task)
        return
    try:
        result = await handle.result(on_update=run.progress.on_update)
    finally:
        run.task = handle.task
    for note in result.notes:
        if note not in run.notes:  # said at submit already
            run.note(note)
    if isinstance(result, VideoResult):
        await _finish_video(run, handle.task, result, prompt)
    else:
        await _finish_images(run, client, handle.task, result, prompt)


def _print_submitted(run: _Run, client: jimeng.Client, task: Task) -> None:
    command = run.wait_command(task.ref)
    if command is None:
        run.note(IN_PROCESS_SANDBOX)
    run.progress.stop()
    if run.json:
        doc = {**_render.task_doc(task, backend=run.backend), "wait": command, "notes": run.notes}
        run.out(_render.dump_json(doc))
    elif run.quiet:
        run.out(task.ref)
    else:
        run.out(_render.submitted_markdown(task, command, backend=run.backend))


def _remote_sandbox(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "sandbox_url", None) or os.environ.get("JIMENG_SANDBOX_URL"))


def _save_target(args: argparse.Namespace) -> tuple[str, Path]:
    """What to hand ``result.save()`` and the folder files will land in."""
    if getattr(args, "output", None):
        text = str(args.output)
        path = Path(text).expanduser()
        folder_like = text.endswith(("/", os.sep)) or path.is_dir() or not path.suffix
        return text, path if folder_like else path.parent
    if getattr(args, "output_dir", None):
        folder = Path(args.output_dir).expanduser()
        return str(folder) + os.sep, folder
    folder = default_folder()
    return str(folder) + os.sep, folder


@contextlib.contextmanager
def _saving(target: str) -> Iterator[None]:
    """A folder that cannot be created or written is a failed save, not a crash."""
    try:
        yield
    except OSError as error:
        reason = error.strerror or str(error)
        raise jimeng.DownloadError(f"cannot save to {target}: {reason}") from error


def _requested_size(args: argparse.Namespace) -> tuple[int, int] | None:
    if getattr(args, "width", None) and getattr(args, "height", None):
        return int(args.width), int(args.height)
    if getattr(args, "size", None):
        return jimeng.ImageRequest(prompt="size", size=args.size).size_pixels()
    return None


async def _finish_images(
    run: _Run, client: jimeng.Client, task: Task, result: ImageResult, prompt: str | None
) -> None:
    args = run.args
    media: list[SavedMedia] = []
    if getattr(args, "no_save", False):
        media = [
            SavedMedia(url=image.url, path=None, width=image.width, height=image.height)
            for image in result.images
        ]
    else:
        target, folder = _save_target(args)
        run.progress.downloading(folder)
        with _saving(target):
            paths = await result.save(target)
        for image, path in zip(result.images, paths, strict=True):
            final = _as_png(run, path).resolve()
            if final != path.resolve():
                await client._saved_file_replaced(task, path, final)
            width, height = image_size(final) or (image.width, image.height)
            media.append(SavedMedia(url=image.url, path=final, width=width, height=height))
    run.progress.stop()
    if run.json:
        doc = _render.image_doc(task, result, media, prompt, backend=run.backend)
        doc["notes"] = run.notes
        run.emit(doc)
    elif run.quiet:
        for item in media:
            run.out(str(item.path) if item.path is not None else item.url or "")
    else:
        run.out(
            _render.image_markdown(
                media, prompt, requested=_requested_size(args), task=task, backend=run.backend
            )
        )


def _as_png(run: _Run, path: Path) -> Path:
    """WebP results become PNG when Pillow is installed (seed 002); otherwise a note."""
    try:
        if not is_webp(path):
            return path
        converted = convert_webp(path)
    except OSError as error:
        run.note(f"could not convert {path} to PNG: {error}")
        return path
    if converted is None:
        run.note(f"{path}: {_PILLOW_NOTE}")
        return path
    return converted


async def _finish_video(run: _Run, task: Task, result: VideoResult, prompt: str | None) -> None:
    args = run.args
    path: Path | None = None
    if not getattr(args, "no_save", False):
        target, folder = _save_target(args)
        run.progress.downloading(folder)
        with _saving(target):
            path = (await result.save(target)).resolve()
    run.progress.stop()
    media = SavedMedia(url=result.url, path=path)
    duration = result.video.duration
    duration = duration if duration is not None else getattr(args, "duration", None)
    fps = result.video.fps if result.video.fps is not None else getattr(args, "fps", None)
    mode = getattr(args, "mode", None) or result.model
    if run.json:
        doc = _render.video_doc(
            task,
            result,
            media,
            prompt,
            backend=run.backend,
            duration=duration,
            fps=fps,
            mode=mode,
        )
        doc["notes"] = run.notes
        run.emit(doc)
    elif run.quiet:
        run.out(str(path) if path is not None else result.url or "")
    else:
        run.out(
            _render.video_markdown(
                media,
                prompt,
                duration=duration,
                fps=fps,
                mode=mode,
                task=task,
                backend=run.backend,
            )
        )


# -- tasks and credits -------------------------------------------------------------------------


async def _task_get(run: _Run, client: jimeng.Client) -> None:
    task = await client.tasks.get(run.args.ref, model=run.args.model)
    run.task = task
    _print_task(run, task)


async def _task_wait(run: _Run, client: jimeng.Client) -> None:
    handle = client.tasks.resume(run.args.ref, model=run.args.model)
    run.task = handle.task
    run.progress.status("checking")
    await handle.refresh()
    await _collect(run, client, handle, prompt=None)


async def _task_cancel(run: _Run, client: jimeng.Client) -> None:
    task = await client.tasks.cancel(run.args.ref, model=run.args.model)
    run.task = task
    _print_task(run, task)


async def _task_resume(run: _Run, client: jimeng.Client) -> int:
    """Finish journalled tasks (all unfinished ones, or the refs given): wait, save, print."""
    refs: list[str] = run.args.refs
    if refs:
        handles = [client.tasks.resume(ref, model=run.args.model) for ref in refs]
    elif not run.journal:
        raise UsageError(
            "without REF, task resume reads the task journal: drop --no-journal or name the refs",
            option="--no-journal",
        )
    else:
        handles = await client.tasks.unfinished()
    run.docs = [] if run.json else None
    code = ExitCode.OK
    if not handles and not run.json and not run.quiet:
        run.stderr.write("jimeng: no unfinished tasks in the journal\n")
    for number, handle in enumerate(handles, start=1):
        if not run.quiet and not run.json:
            run.progress.clear()
            run.stderr.write(f"resuming {number}/{len(handles)}: {handle.ref}\n")
            run.stderr.flush()
        run.notes = []
        try:
            run.progress.status("checking")
            await handle.refresh()
            await _collect(run, client, handle, prompt=None)
        except jimeng.JimengError as error:
            info = describe(
                error, options=run.options, task=handle.task, backend_args=run.follow_up_args()
            )
            info = {k: redact(v) if isinstance(v, str) else v for k, v in info.items()}
            run.progress.clear()
            run.stderr.write(render_text(info) + "\n")
            if run.docs is not None:
                run.docs.append({"ref": handle.ref, "error": info})
            code = code or exit_code(error)
    if run.docs is not None:
        run.out(_render.dump_json({"tasks": run.docs}))
    return int(code)


async def _task_list_local(run: _Run) -> None:
    """``task list --local``: the journal of this machine, every backend, newest first."""
    args = run.args
    raw = os.environ.get("JIMENG_JOURNAL", "").strip()
    # JIMENG_JOURNAL may name another file; a switch (1, true, 0…) means the default one.
    switch = raw.lower() in ("", "0", "1", "true", "false", "yes", "no", "on", "off")
    store = jimeng.SQLiteJournal(None if switch else raw)
    try:
        entries = await store.history(
            status=_parse_choice(jimeng.TaskStatus, args.status, "--status"),
            kind=_parse_choice(jimeng.TaskKind, args.kind, "--kind"),
            limit=args.limit,
        )
    finally:
        await store.aclose()
    if run.json:
        run.out(
            _render.dump_json({"journal": str(store.path), "tasks": [e.to_json() for e in entries]})
        )
    elif run.quiet:
        for entry in entries:
            run.out(entry.ref)
    else:
        run.out(_render.journal_markdown(entries, path=store.path))


def _parse_choice(kind: Any, value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return kind(value.strip().lower())
    except ValueError:
        allowed = ", ".join(item.value for item in kind)
        raise UsageError(f"unknown value {value!r} (allowed: {allowed})", option=option) from None


async def _task_list(run: _Run, client: jimeng.Client) -> None:
    args = run.args
    tasks = await client.tasks.list(status=args.status, kind=args.kind, limit=args.limit)
    run.progress.stop()
    if run.json:
        run.out(
            _render.dump_json(
                {"tasks": [_render.task_doc(task, backend=run.backend) for task in tasks]}
            )
        )
    elif run.quiet:
        for task in tasks:
            run.out(task.ref)
    else:
        run.out(_render.tasks_markdown(tasks))


def _print_task(run: _Run, task: Task) -> None:
    run.progress.stop()
    if run.json:
        run.out(_render.dump_json(_render.task_doc(task, backend=run.backend)))
    elif run.quiet:
        run.out(task.status.value)
    else:
        run.out(_render.task_markdown(task, backend=run.backend))


async def _credits(run: _Run, client: jimeng.Client) -> None:
    if run.args.claim:
        balances = await client.account.claim()
    else:
        balances = await client.account.credits()
    run.progress.stop()
    if run.json:
        run.out(_render.dump_json(_render.balances_doc(balances)))
    elif run.quiet:
        run.out(str(sum(balance.total for balance in balances)))
    else:
        run.out(_render.balances_markdown(balances))


_COMMANDS: dict[str, Callable[[_Run, jimeng.Client], Awaitable[int | None]]] = {
    "batch": run_batch,
    "image": _image,
    "video": _video,
    "image-edit": _image_edit,
    "image-upscale": _image_upscale,
    "image-outpaint": _image_outpaint,
    "video-imitate": _video_imitate,
    "video-avatar": _video_avatar,
    "video-translate": _video_translate,
    "task get": _task_get,
    "task wait": _task_wait,
    "task cancel": _task_cancel,
    "task list": _task_list,
    "task resume": _task_resume,
    "credits": _credits,
}


# -- sandbox serve -----------------------------------------------------------------------------

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_FAULT_KINDS = ("reset", "non_json", "truncate")


def _faults(specs: Sequence[str]) -> list[dict[str, Any]]:
    """``ACTION:KIND[:TIMES]`` → keyword arguments for ``server.inject``."""
    faults = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise UsageError(f"expected ACTION:KIND[:TIMES], got {spec!r}", option="--fault")
        action, kind = parts[0], parts[1]
        fault: dict[str, Any] = {"action": action}
        if kind.isdigit():
            fault.update(kind="http", status=int(kind))
        elif kind in _FAULT_KINDS:
            fault["kind"] = kind
        else:
            raise UsageError(
                f"unknown fault kind {kind!r} (allowed: an HTTP status, {', '.join(_FAULT_KINDS)})",
                option="--fault",
            )
        if len(parts) == 3:
            if not parts[2].isdigit() or int(parts[2]) < 1:
                raise UsageError(f"TIMES must be a positive number in {spec!r}", option="--fault")
            fault["times"] = int(parts[2])
        faults.append(fault)
    return faults


def _backends(run: _Run) -> int:
    """``jimeng backends``: the capability tables, read from the backends (no network)."""
    args = run.args
    try:
        if args.backend is not None or args.sandbox:
            every = [_make_backend(args).capabilities()]
        else:
            every = reference_capabilities()
    except (jimeng.JimengError, UsageError) as error:
        return _fail(run, error)
    if run.json:
        run.out(_render.dump_json({"backends": [c.to_dict() for c in every]}))
    else:
        run.out(comparison_table(every).rstrip("\n"))
    return int(ExitCode.OK)


def _serve(run: _Run) -> int:
    args = run.args
    try:
        if args.host not in _LOOPBACK:
            raise UsageError("the sandbox only serves on loopback", option="--host")
        faults = _faults(args.fault)
    except UsageError as error:
        return _fail(run, error)
    try:
        return asyncio.run(_serve_async(run, faults))
    except KeyboardInterrupt:
        run.stderr.write("jimeng sandbox stopped\n")
        return int(ExitCode.OK)
    except OSError as error:  # port in use, address not available
        run.stderr.write(f"jimeng: error: --port: cannot listen on {args.port}: {error}\n")
        return int(ExitCode.CONFIG)


def _mcp(run: _Run) -> int:
    """``jimeng mcp``: stdout belongs to the protocol, so notes go to stderr only."""
    args = run.args
    try:
        from jimeng.mcp import serve

        backend = _make_backend(args)
        output_dir = Path(args.output_dir).expanduser() if args.output_dir else None
        asyncio.run(
            serve(
                backend,
                transport=args.transport,
                host=args.host,
                port=args.port,
                output_dir=output_dir,
                journal=not args.no_journal,
                on_listening=lambda url: print(
                    f"jimeng mcp: streamable HTTP at {url}", file=run.stderr, flush=True
                ),
            )
        )
    except (jimeng.JimengError, UsageError) as error:
        run.args.json = False  # stdout is the protocol's
        return _fail(run, error)
    except KeyboardInterrupt:
        return int(ExitCode.OK)
    return int(ExitCode.OK)


async def _until_stopped() -> None:
    """Wait for Ctrl-C or SIGTERM (where the platform lets the loop handle signals)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        # A SIGINT the shell chose to ignore (background jobs) stays ignored.
        if signal.getsignal(number) is signal.SIG_IGN:
            continue
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(number, stop.set)
    await stop.wait()


async def _serve_async(run: _Run, faults: Sequence[dict[str, Any]]) -> int:
    from jimeng.sandbox import Stages, banner, build_server

    args = run.args
    stages = Stages(
        queue_delay=args.queue_delay,
        generate_delay=args.generate_delay,
        queue_polls=args.queue_polls,
        generate_polls=args.generate_polls,
    )
    server = build_server(host=args.host, port=args.port, stages=stages)
    for fault in faults:
        server.inject(**fault)
    await server.start()
    try:
        run.out(f"jimeng sandbox serving on {server.url}")
        run.out(f'  try: jimeng image "a white cat" --sandbox-url {server.url}')
        for line in banner(server.url):
            run.out(line)
        run.out("  Ctrl-C stops it.")
        await _until_stopped()
        run.stderr.write("jimeng sandbox stopped\n")
    finally:
        await server.stop()
    return int(ExitCode.OK)
