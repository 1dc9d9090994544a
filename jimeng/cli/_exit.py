"""Exit codes, and how a failure is told: one line for usage, details and a hint for the rest."""

from __future__ import annotations

import enum
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from jimeng.backends import NotSupportedError
from jimeng.errors import (
    APIConnectionError,
    AuthenticationError,
    ConfigurationError,
    ContentPolicyError,
    DownloadError,
    InsufficientCreditsError,
    InvalidRequestError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TaskError,
    TaskTimeoutError,
    ValidationError,
)
from jimeng.models import Task

__all__ = ["EXIT_TABLE", "ExitCode", "UsageError", "describe", "exit_code", "option_for"]


class ExitCode(enum.IntEnum):
    """What ``jimeng`` returns to the shell (documented in docs/cli.md)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    CONFIG = 3
    CONTENT_POLICY = 4
    TASK_FAILED = 5
    TIMEOUT = 6
    NO_CREDITS = 7
    NETWORK = 8
    UNAVAILABLE = 9
    DOWNLOAD = 10
    #: SIGHUP (the terminal went away): 128 + 1.
    HANGUP = 129
    #: Ctrl-C (SIGINT): 128 + 2.
    INTERRUPTED = 130
    #: SIGTERM (``kill``, a service manager stopping the command): 128 + 15.
    TERMINATED = 143


#: First match wins, so subclasses come before their bases.
EXIT_TABLE: Sequence[tuple[type[BaseException], ExitCode]] = (
    (ValidationError, ExitCode.USAGE),
    (NotSupportedError, ExitCode.USAGE),
    (InvalidRequestError, ExitCode.USAGE),
    (ConfigurationError, ExitCode.CONFIG),
    (AuthenticationError, ExitCode.CONFIG),
    (PermissionDeniedError, ExitCode.CONFIG),
    (ContentPolicyError, ExitCode.CONTENT_POLICY),
    (InsufficientCreditsError, ExitCode.NO_CREDITS),
    (TaskTimeoutError, ExitCode.TIMEOUT),
    (TaskError, ExitCode.TASK_FAILED),
    (APIConnectionError, ExitCode.NETWORK),
    (RateLimitError, ExitCode.UNAVAILABLE),
    (ServerError, ExitCode.UNAVAILABLE),
    (DownloadError, ExitCode.DOWNLOAD),
)

#: Failures after which the task may still give its result: worth a ``jimeng task wait``.
_RESUMABLE = (TaskTimeoutError, APIConnectionError, RateLimitError, ServerError, DownloadError)


class UsageError(Exception):
    """A command line the parser or the CLI itself rejects (exit 2)."""

    def __init__(self, message: str, *, option: str | None = None):
        super().__init__(message)
        self.option = option
        self.message = message


def exit_code(error: BaseException) -> ExitCode:
    if isinstance(error, UsageError):
        return ExitCode.USAGE
    for cls, code in EXIT_TABLE:
        if isinstance(error, cls):
            return code
    return ExitCode.ERROR


_INDEX = re.compile(r"^(?P<root>[a-z_]+)(?:\[(?P<index>\d+)\])?(?:\.(?P<sub>[a-z_.]+))?$")
_POSITIONALS = {"prompt": "PROMPT", "task": "REF", "ref": "REF"}


def option_for(field: str, options: Mapping[str, str]) -> str:
    """The command-line spelling of a library field: ``images[2]`` → ``--images (item 3)``.

    ``options`` maps destination names to option strings of the running command; a field with
    no option there is shown as the library names it.
    """
    match = _INDEX.match(field)
    if match is None:
        return field
    root = match.group("root")
    if root in _POSITIONALS:
        return _POSITIONALS[root]
    label = options.get(root, field if match.group("index") is None else root)
    if match.group("index") is not None:
        label += f" (item {int(match.group('index')) + 1})"
    if match.group("sub") and label.startswith("--"):
        label += f" ({match.group('sub')})"
    return label


def _validation_text(error: ValidationError) -> str:
    """The message without the field name and the allowed values (shown separately)."""
    text = str(error)
    prefix = f"{error.field}: "
    text = text[len(prefix) :] if text.startswith(prefix) else text
    suffix = f" (allowed: {error.allowed})"
    return text[: -len(suffix)] if error.allowed and text.endswith(suffix) else text


#: Said instead of a follow-up command when the sandbox ran inside this command.
IN_PROCESS_SANDBOX = (
    "this sandbox ran inside this command and stopped with it; to collect tasks later, run "
    "'jimeng sandbox serve' in another terminal and pass --sandbox-url (or set JIMENG_SANDBOX_URL)"
)


def describe(
    error: BaseException,
    *,
    options: Mapping[str, str],
    task: Task | None,
    backend_args: Sequence[str] | None,
) -> dict[str, Any]:
    """Everything worth telling about a failure, as a mapping (rendered as text or JSON).

    ``task`` is the task the command was working on, used when the error itself does not carry
    one (a failed download, say). ``backend_args`` repeat the backend selection in the hint;
    ``None`` when no later command can reach the task (a sandbox that ran inside this command).
    """
    code = exit_code(error)
    info: dict[str, Any] = {"type": type(error).__name__, "exit_code": int(code)}
    if isinstance(error, UsageError):
        info["option"] = error.option
        info["message"] = error.message
        return info
    if isinstance(error, ValidationError):
        info["option"] = option_for(error.field, options)
        info["message"] = _validation_text(error)
        info["allowed"] = error.allowed
        return info
    info["message"] = getattr(error, "message", None) or str(error) or type(error).__name__
    if isinstance(error, NotSupportedError):
        info["option"] = "--backend"
    for name in ("code", "status_code", "request_id", "backend"):
        value = getattr(error, name, None)
        if value is not None:
            info[name] = value
    if isinstance(error, TaskError) and error.status:
        info["status"] = error.status
    if isinstance(error, InsufficientCreditsError) and error.sessions:
        info["sessions"] = list(error.sessions)
    task_id = getattr(error, "task_id", None)
    ref = getattr(error, "task_ref", None)
    if task is not None and task_id in (None, task.id):
        task_id, ref = task.id, ref or task.ref
    if task_id is not None:
        info["task_id"] = task_id
        info["ref"] = ref or task_id
        command = "wait" if isinstance(error, _RESUMABLE) else "get"
        if backend_args is None:
            if command == "wait":
                info["note"] = IN_PROCESS_SANDBOX
        else:
            info["resume" if command == "wait" else "inspect"] = " ".join(
                ["jimeng", "task", command, shlex.quote(info["ref"])]
                + [shlex.quote(arg) for arg in backend_args]
            )
    return info


def render_text(info: Mapping[str, Any], *, program: str = "jimeng") -> str:
    """The stderr text for a failure: one line for usage problems, a short block otherwise."""
    option = info.get("option")
    head = f"{program}: error: "
    if option:
        head += f"{option}: "
    head += str(info.get("message", ""))
    if info.get("allowed"):
        head += f" (allowed: {info['allowed']})"
    if info.get("exit_code") == ExitCode.USAGE and "task_id" not in info and "code" not in info:
        return head
    lines = [head]
    details = []
    for key, label in (
        ("code", "code"),
        ("status_code", "HTTP"),
        ("request_id", "request id"),
        ("backend", "backend"),
        ("status", "task status"),
    ):
        if info.get(key) is not None:
            details.append(f"{label} {info[key]}")
    if details:
        lines.append("  " + " · ".join(details))
    if info.get("sessions"):
        lines.append("  sessions without credits: " + ", ".join(info["sessions"]))
    if info.get("task_id"):
        lines.append(f"  task id {info['task_id']}")
    if info.get("resume"):
        lines.append(f"  the task may still finish; resume with: {info['resume']}")
    elif info.get("inspect"):
        lines.append(f"  details: {info['inspect']}")
    if info.get("note"):
        lines.append(f"  {info['note']}")
    lines.append(f"  exit code {info['exit_code']} ({_MEANING[ExitCode(info['exit_code'])]})")
    return "\n".join(lines)


_MEANING: Mapping[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.ERROR: "error",
    ExitCode.USAGE: "rejected parameters",
    ExitCode.CONFIG: "configuration or credentials",
    ExitCode.CONTENT_POLICY: "content policy",
    ExitCode.TASK_FAILED: "task failed",
    ExitCode.TIMEOUT: "still running, resumable",
    ExitCode.NO_CREDITS: "insufficient credits",
    ExitCode.NETWORK: "network",
    ExitCode.UNAVAILABLE: "service busy or failing",
    ExitCode.DOWNLOAD: "download failed",
    ExitCode.HANGUP: "hung up (SIGHUP)",
    ExitCode.INTERRUPTED: "interrupted",
    ExitCode.TERMINATED: "terminated (SIGTERM)",
}
