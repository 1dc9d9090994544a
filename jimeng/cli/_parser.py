"""The ``jimeng`` command line: commands and options (argparse, no extra dependency).

Every generation option defaults to ``None`` and is passed to the library only when given
(seed 002's "parameter discipline"): the backend's own defaults apply otherwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from jimeng import __version__
from jimeng.cli._exit import UsageError

__all__ = [
    "BACKEND_CHOICES",
    "VERB_COMMANDS",
    "Parser",
    "build_parser",
    "option_names",
    "verb_words",
]

#: Shown in help; ``jimeng.backends.create`` decides what really exists.
BACKEND_CHOICES = "volcengine, ark, dreamina, gateway, sandbox"


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that raises :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        option = None
        if message.startswith("argument "):
            head, _, rest = message[len("argument ") :].partition(": ")
            option, message = head.split("/")[-1], rest
        raise UsageError(f"{message} (see '{self.prog} --help')", option=option)


def _bounded(kind: Any, low: float, high: float | None = None) -> Any:
    """An argparse type: ``kind`` within [low, high]; argparse turns the error into exit 2."""

    def convert(text: str) -> Any:
        value = kind(text)
        if value < low or (high is not None and value > high):
            wanted = f"between {low} and {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    convert.__name__ = kind.__name__
    return convert


def _flag(group: Any, *names: str, help: str) -> None:
    """A switch that is ``None`` unless given (so an unset switch is never sent as false)."""
    group.add_argument(*names, action="store_const", const=True, default=None, help=help)


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """Backend and output-style options. On commands they default to SUPPRESS so that a value
    given before the command (``jimeng --json image …``) is not overwritten."""
    default: Any = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("backend and output")
    group.add_argument(
        "--backend",
        metavar="NAME",
        default=default,
        help=f"{BACKEND_CHOICES} (default: $JIMENG_BACKEND, else chosen from the credentials "
        "in the environment)",
    )
    group.add_argument(
        "--sandbox",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="same as --backend sandbox: the offline emulator, no credentials",
    )
    group.add_argument(
        "--sandbox-url",
        metavar="URL",
        default=default,
        help="use a sandbox already serving at URL (jimeng sandbox serve); "
        "default $JIMENG_SANDBOX_URL",
    )
    group.add_argument(
        "--sandbox-protocol",
        metavar="NAME",
        default=default,
        help="which backend protocol the sandbox emulates (default volcengine)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print one JSON document on stdout instead of Markdown",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top else argparse.SUPPRESS,
        help="log what the library does on stderr: -v requests and retries, -vv every HTTP "
        "exchange (same as JIMENG_LOG=info / debug; secrets are redacted)",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="no progress line and no notes; print only the saved paths (or URLs)",
    )
    group.add_argument(
        "--no-journal",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="do not record tasks in the task journal ($JIMENG_HOME/journal.sqlite3)",
    )


def _output(parser: argparse.ArgumentParser, *, what: str) -> None:
    group = parser.add_argument_group("saving")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help=f"file name for the {what} (numbered _1, _2… when several), or a folder",
    )
    where.add_argument(
        "--output-dir",
        metavar="DIR",
        help="folder for jimeng_YYYYMMDD_HHMMSS_N files (default: pic/ at the project root)",
    )
    where.add_argument(
        "--no-save", action="store_true", help="do not download; print the links only"
    )


def _submission(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("task")
    group.add_argument(
        "--no-wait",
        action="store_true",
        help="submit, print the task id and return; collect later with 'jimeng task wait'",
    )
    group.add_argument(
        "--callback-url", metavar="URL", help="webhook the service calls when the task ends"
    )


def _image_command(commands: Any) -> None:
    parser = commands.add_parser(
        "image",
        help="generate images",
        description="Generate images from a prompt (and reference images). To change an "
        "image you have: jimeng image edit | upscale | outpaint (each has --help).",
    )
    parser.add_argument("prompt", metavar="PROMPT", help="what to draw")
    gen = parser.add_argument_group("generation (only the options you give are sent)")
    gen.add_argument("--model", help="model name, e.g. jimeng-4.0 (default: the backend's)")
    gen.add_argument("--size", help="1K, 2K, 4K or WxH such as 2560x1440")
    gen.add_argument("--width", type=int, help="exact width in pixels (with --height)")
    gen.add_argument("--height", type=int, help="exact height in pixels (with --width)")
    gen.add_argument(
        "--images",
        nargs="+",
        metavar="URL_OR_PATH",
        help="reference images for image-to-image: URLs or local files (up to 10)",
    )
    gen.add_argument("--ratio", help="aspect ratio such as 1:1, 16:9, 9:16, 4:3, 21:9")
    gen.add_argument("--resolution", help="1k, 2k or 4k")
    _flag(gen, "--intelligent-ratio", help="let the model pick the ratio from the prompt")
    gen.add_argument("--negative-prompt", metavar="TEXT", help="what to avoid")
    gen.add_argument("--sample-strength", type=float, metavar="0..1", help="sampling strength")
    gen.add_argument(
        "--scale",
        type=float,
        metavar="X",
        help="how closely to follow the text: 0..1 on jimeng-4.0, 1..100 on jimeng-4.6",
    )
    gen.add_argument("--seed", type=int, help="random seed, for reproducible results")
    _flag(gen, "--watermark", help='add the visible "AI generated" mark')
    _flag(gen, "--force-single", help="ask for exactly one image")
    gen.add_argument(
        "--max-images",
        type=_bounded(int, 1, 15),
        metavar="N",
        help="a group of related images, at most N (Ark)",
    )
    gen.add_argument("--response-format", choices=("url", "b64_json"), help="links or inline bytes")
    _submission(parser)
    _output(parser, what="image")
    _common(parser, top=False)


def _video_command(commands: Any) -> None:
    parser = commands.add_parser(
        "video",
        help="generate a video",
        description="Generate a video from a prompt (and first / last frame images). From "
        "media you have: jimeng video imitate | avatar | translate (each has --help).",
    )
    parser.add_argument("prompt", metavar="PROMPT", help="what happens in the video")
    gen = parser.add_argument_group("generation (only the options you give are sent)")
    gen.add_argument("--model", help="model name (default: the backend's)")
    gen.add_argument(
        "--mode",
        help="Volcengine 3.0 mode (Ark has models, not modes): t2v_720p, t2v_1080p, ti2v_pro, "
        "i2v_first_720p, i2v_first_1080p, i2v_first_tail_720p, i2v_first_tail_1080p, "
        "i2v_recamera_720p",
    )
    gen.add_argument("--duration", type=float, metavar="SECONDS", help="e.g. 5 or 10")
    gen.add_argument("--fps", type=int, help="frames per second, e.g. 24")
    gen.add_argument("--image", metavar="URL_OR_PATH", help="first frame")
    gen.add_argument("--tail-image", metavar="URL_OR_PATH", help="last frame")
    gen.add_argument(
        "--reference-images",
        nargs="+",
        metavar="URL_OR_PATH",
        help="images the video draws its subjects from (Ark)",
    )
    _flag(gen, "--camera-fixed", help="keep the camera still (Ark)")
    _flag(gen, "--generate-audio", help="add a sound track (Ark Seedance 1.5 / 2.0)")
    gen.add_argument("--camera", metavar="TEMPLATE", help="camera movement template (recamera)")
    gen.add_argument("--camera-strength", metavar="LEVEL", help="weak, medium or strong")
    # Two options, not two spellings of one: given both, they must agree (as in a batch line).
    gen.add_argument("--aspect-ratio", metavar="RATIO", help="e.g. 16:9")
    gen.add_argument("--ratio", metavar="RATIO", help="same as --aspect-ratio")
    gen.add_argument("--resolution", help="e.g. 720p or 1080p")
    gen.add_argument("--seed", type=int, help="random seed, for reproducible results")
    _flag(gen, "--watermark", help='add the visible "AI generated" mark')
    _submission(parser)
    _output(parser, what="video")
    _common(parser, top=False)


#: ``jimeng image edit …`` is parsed as the command ``image-edit`` (see :func:`verb_words`), so
#: that ``jimeng image "a prompt"`` keeps working.
VERB_COMMANDS = {
    "image": ("edit", "upscale", "outpaint"),
    "video": ("imitate", "avatar", "translate"),
}
_VALUE_OPTIONS = ("--backend", "--sandbox-url", "--sandbox-protocol")


def verb_words(words: Sequence[str]) -> list[str]:
    """``image edit …`` → ``image-edit …`` (and the other verbs), for the parser."""
    out = list(words)
    for index, word in enumerate(out[:-1]):
        if index and out[index - 1] in _VALUE_OPTIONS:
            continue
        if word.startswith("-"):
            continue
        # ``jimeng image edit`` alone is the prompt "edit"; a verb always has arguments.
        if out[index + 1] in VERB_COMMANDS.get(word, ()) and len(out) > index + 2:
            out[index : index + 2] = [f"{word}-{out[index + 1]}"]
        break  # only the command word decides
    return out


def _image_verbs(commands: Any) -> None:
    edit = commands.add_parser(
        "image-edit",
        prog="jimeng image edit",
        help="jimeng image edit: repaint the white area of a mask (Volcengine)",
        description="Inpainting: repaint the white area of --mask on --image with PROMPT; "
        "--remove erases it instead.",
    )
    edit.add_argument("prompt", metavar="PROMPT", nargs="?", help="what to paint there")
    gen = edit.add_argument_group("edit")
    gen.add_argument("--image", required=True, metavar="URL_OR_PATH", help="the image")
    gen.add_argument(
        "--mask", required=True, metavar="URL_OR_PATH", help="white = repaint, black = keep"
    )
    gen.add_argument("--remove", action="store_true", help='erase the masked area ("删除")')
    gen.add_argument("--seed", type=int, help="random seed")
    _flag(gen, "--watermark", help='add the visible "AI generated" mark')
    upscale = commands.add_parser(
        "image-upscale",
        prog="jimeng image upscale",
        help="jimeng image upscale: to 4K or 8K (Volcengine)",
        description="Upscale an image to 4K or 8K.",
    )
    upscale.add_argument("image", metavar="URL_OR_PATH", help="the image")
    gen = upscale.add_argument_group("upscale")
    gen.add_argument("--resolution", choices=("4k", "8k"), help="target (default 4k)")
    gen.add_argument(
        "--detail", type=_bounded(int, 0, 100), metavar="0..100", help="invented detail (50)"
    )
    _flag(gen, "--watermark", help='add the visible "AI generated" mark')
    outpaint = commands.add_parser(
        "image-outpaint",
        prog="jimeng image outpaint",
        help="jimeng image outpaint: extend an image beyond its borders (Volcengine)",
        description="Outpainting: add --left/--right/--top/--bottom (fractions of the side) "
        "around an image, or paint the white area of --mask on a padded canvas.",
    )
    outpaint.add_argument("image", metavar="URL_OR_PATH", help="the image (or padded canvas)")
    gen = outpaint.add_argument_group("outpaint")
    for side in ("left", "right", "top", "bottom"):
        gen.add_argument(
            f"--{side}", type=_bounded(float, 0, 1), metavar="0..1", help=f"add on the {side}"
        )
    gen.add_argument("--mask", metavar="URL_OR_PATH", help="instead of the fractions")
    gen.add_argument("--prompt", metavar="TEXT", help="what to add")
    gen.add_argument("--seed", type=int, help="random seed")
    _flag(gen, "--watermark", help='add the visible "AI generated" mark')
    for parser in (edit, upscale, outpaint):
        task = parser.add_argument_group("task")
        task.add_argument(
            "--no-wait", action="store_true", help="submit, print the task id and return"
        )
        _output(parser, what="image")
        _common(parser, top=False)


def _video_verbs(commands: Any) -> None:
    imitate = commands.add_parser(
        "video-imitate",
        prog="jimeng video imitate",
        help="jimeng video imitate: move like a driving video (Volcengine)",
        description="Motion imitation: make the subject of IMAGE move like the one in --video.",
    )
    imitate.add_argument("image", metavar="URL_OR_PATH", help="the portrait")
    gen = imitate.add_argument_group("motion")
    gen.add_argument("--video", required=True, metavar="URL", help="driving video URL (<= 30 s)")
    gen.add_argument("--model", help="motion-2.0 (default) or motion-1.0")
    gen.add_argument(
        "--keep-start",
        action="store_const",
        const=False,
        dest="trim_start",
        help="keep the ~1 s transition at the start (2.0 trims it)",
    )
    avatar = commands.add_parser(
        "video-avatar",
        prog="jimeng video avatar",
        help="jimeng video avatar: a portrait speaks an audio (OmniHuman, Volcengine)",
        description="OmniHuman: make the portrait at IMAGE (a URL) speak --audio (a URL, < 60 s).",
    )
    avatar.add_argument("image", metavar="URL", help="the portrait")
    gen = avatar.add_argument_group("avatar")
    gen.add_argument("--audio", required=True, metavar="URL", help="the speech (< 60 s)")
    gen.add_argument("--prompt", metavar="TEXT", help="steers picture, motion and camera")
    gen.add_argument("--resolution", type=int, choices=(720, 1080), help="default 1080")
    _flag(gen, "--fast", help="faster, lower quality")
    gen.add_argument(
        "--no-check",
        action="store_false",
        dest="check",
        help="skip the subject check before the paid video",
    )
    gen.add_argument("--seed", type=int, help="random seed")
    translate = commands.add_parser(
        "video-translate",
        prog="jimeng video translate",
        help="jimeng video translate: dub a speaker into another language (Volcengine)",
        description="Video translation: dub the speaker of VIDEO (a URL, 5–180 s) into --to.",
    )
    translate.add_argument("video", metavar="URL", help="the video")
    gen = translate.add_argument_group("translate")
    gen.add_argument("--to", required=True, dest="target_language", metavar="LANG", help="e.g. en")
    gen.add_argument("--from", dest="source_language", metavar="LANG", help="default zh")
    for parser in (imitate, avatar, translate):
        task = parser.add_argument_group("task")
        task.add_argument(
            "--no-wait", action="store_true", help="submit, print the task id and return"
        )
        if parser is imitate:
            task.add_argument("--callback-url", metavar="URL", help="called when the task ends")
        _output(parser, what="video")
        _common(parser, top=False)


def _task_commands(commands: Any) -> None:
    task = commands.add_parser(
        "task",
        help="look at, wait for, list or cancel tasks",
        description="Tasks by reference: the 'ref' printed when a task was submitted.",
    )
    actions = task.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    actions.required = True
    for name, text in (
        ("get", "ask the server once about a task"),
        ("wait", "wait for a task, then save and print its result"),
        ("cancel", "cancel a task that has not started"),
    ):
        action = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        action.add_argument("ref", metavar="REF", help="the task's ref (or id, with --model)")
        action.add_argument(
            "--model", help="the model the task was submitted with, when REF is a bare id"
        )
        if name == "wait":
            _output(action, what="result")
        _common(action, top=False)
    resume = actions.add_parser(
        "resume",
        help="finish journalled tasks: wait, save and print them",
        description="Finish tasks recorded in the task journal (every unfinished one by "
        "default, or the refs given): wait for each, save its files and print it. Nothing is "
        "submitted again.",
    )
    resume.add_argument(
        "refs", nargs="*", metavar="REF", help="tasks to finish (default: every unfinished one)"
    )
    resume.add_argument(
        "--model", help="the model the tasks were submitted with, when REFs are bare ids"
    )
    _output(resume, what="results")
    _common(resume, top=False)
    listing = actions.add_parser(
        "list",
        help="tasks the backend (or, with --local, the journal) knows about",
        description="List tasks (newest first).",
    )
    listing.add_argument("--status", help="only tasks in this state, e.g. queued")
    listing.add_argument("--kind", choices=("image", "video"), help="only images or videos")
    listing.add_argument("--limit", type=_bounded(int, 1), help="at most this many")
    listing.add_argument(
        "--local",
        action="store_true",
        help="list the task journal of this machine instead (every backend; needs no "
        "credentials): ref, backend, kind, model, status, saved files",
    )
    _common(listing, top=False)


def _batch_command(commands: Any) -> None:
    parser = commands.add_parser(
        "batch",
        help="generate one request per line of a JSONL or CSV file",
        description="Generate every line of a JSONL or CSV file (fields: the options of "
        "'jimeng image' / 'jimeng video' by their library names, plus 'id' and 'kind'). Every "
        "line is checked before anything is sent. Run the same command again to continue "
        "after a crash: accepted tasks are collected, never submitted twice.",
    )
    parser.add_argument(
        "file",
        metavar="FILE",
        help="requests: .jsonl (one JSON object per line) or .csv (a header row naming the fields)",
    )
    parser.add_argument(
        "--out", metavar="DIR", required=True, help="folder for the files and results.jsonl"
    )
    parser.add_argument(
        "--kind",
        choices=("image", "video"),
        default="image",
        help="what lines without a 'kind' field generate (default image)",
    )
    parser.add_argument("--model", help="model for lines without a 'model' field")
    parser.add_argument(
        "--store",
        metavar="URL_OR_PATH",
        help="where line states and the task journal live: redis://host:port/db to share the "
        "batch between workers, or a SQLite file (default: the journal, "
        "$JIMENG_HOME/journal.sqlite3)",
    )
    parser.add_argument(
        "--name", help="the batch's name in the store (default: FILE's name without extension)"
    )
    parser.add_argument(
        "--max-concurrency",
        type=_bounded(int, 1),
        metavar="N",
        help="at most N generations in flight for the account (shared by the workers of a "
        "Redis --store; default: the adaptive rate limiter decides)",
    )
    parser.add_argument(
        "--lease",
        type=_bounded(float, 0.1),
        default=30.0,
        metavar="SECONDS",
        help="how long a worker's claim on a line lasts without renewal; a worker that dies "
        "leaves its lines to the others after this (default 30)",
    )
    parser.add_argument(
        "--retry-failed", action="store_true", help="submit lines that failed before again"
    )
    parser.add_argument(
        "--skip-invalid", action="store_true", help="run the valid lines when some are invalid"
    )
    _common(parser, top=False)


def _credits_command(commands: Any) -> None:
    parser = commands.add_parser(
        "credits",
        help="credit balance of web sessions",
        description="Credit balance per session (Dreamina and gateway backends).",
    )
    parser.add_argument("--claim", action="store_true", help="claim the daily free credits first")
    _common(parser, top=False)


def _backends_command(commands: Any) -> None:
    parser = commands.add_parser(
        "backends",
        help="what each backend can do (models, sizes, durations, features)",
        description="Compare the backends: features, then every model with its ratios, "
        "resolutions, sizes and durations. With --backend (or --sandbox) only that backend, "
        "as configured from the environment. Nothing is sent.",
    )
    _common(parser, top=False)


def _sandbox_commands(commands: Any) -> None:
    sandbox = commands.add_parser(
        "sandbox", help="the offline emulator", description="The offline emulator."
    )
    actions = sandbox.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    actions.required = True
    serve = actions.add_parser(
        "serve",
        help="serve the sandbox for other programs (Ctrl-C stops it)",
        description="Serve the sandbox on loopback in the foreground; Ctrl-C stops it.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_bounded(int, 0, 65535), default=8787, help="port (default 8787; 0 = any)"
    )
    serve.add_argument(
        "--queue-delay", type=_bounded(float, 0), default=0.0, help="seconds queued per task"
    )
    serve.add_argument(
        "--generate-delay", type=_bounded(float, 0), default=0.0, help="seconds generating"
    )
    serve.add_argument(
        "--queue-polls", type=_bounded(int, 0), default=0, help="polls a task stays queued"
    )
    serve.add_argument(
        "--generate-polls", type=_bounded(int, 0), default=0, help="polls a task runs"
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="ACTION:KIND[:TIMES]",
        help="inject failures: ACTION is submit, poll, download… or *; KIND an HTTP status "
        "(429, 500…) or reset, non_json, truncate; e.g. --fault submit:429:2",
    )


def _mcp_command(commands: Any) -> None:
    parser = commands.add_parser(
        "mcp",
        help="serve the generation tools to AI agents (Model Context Protocol)",
        description="Serve generate_image, generate_video and the task tools over the Model "
        "Context Protocol: on stdio for a desktop agent, or streamable HTTP. Needs the mcp "
        "extra: pip install 'jimeng[mcp]'.",
    )
    parser.add_argument(
        "--transport",
        choices=("stdio", "http"),
        default="stdio",
        help="stdio (default) or http (streamable HTTP at http://HOST:PORT/mcp)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=_bounded(int, 1, 65535), default=8000, help="HTTP port (default 8000)"
    )
    parser.add_argument(
        "--output-dir",
        metavar="DIR",
        help="where results are saved (default $JIMENG_MCP_OUTPUT_DIR, else ~/jimeng/pic)",
    )
    # --no-journal comes with the common options (every command journals by default).
    _common(parser, top=False)


def build_parser() -> Parser:
    parser = Parser(
        prog="jimeng",
        description="Jimeng (即梦 / Dreamina) image and video generation from the command line.",
        epilog='Try it offline: jimeng image "a white cat" --sandbox',
    )
    parser.add_argument("--version", action="version", version=f"jimeng {__version__}")
    _common(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    _image_command(commands)
    _video_command(commands)
    _image_verbs(commands)
    _video_verbs(commands)
    _task_commands(commands)
    _batch_command(commands)
    _credits_command(commands)
    _backends_command(commands)
    _sandbox_commands(commands)
    _mcp_command(commands)
    return parser


def option_names(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, str]:
    """Destination name → long option string for the command ``argv`` selects."""
    names: dict[str, str] = {}
    current: argparse.ArgumentParser | None = parser
    words = list(argv)
    while current is not None:
        for action in current._actions:
            longs = [o for o in action.option_strings if o.startswith("--")]
            if longs:
                names.setdefault(action.dest, longs[0])
        sub = next((a for a in current._actions if isinstance(a, argparse._SubParsersAction)), None)
        current = None
        if sub is not None:
            for index, word in enumerate(words):
                if word in sub.choices:
                    current = sub.choices[word]
                    words = words[index + 1 :]
                    break
    return names
