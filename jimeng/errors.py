"""The public exception hierarchy.

Every exception the library raises on purpose derives from :class:`JimengError`::

    JimengError
    ├── ConfigurationError          missing credentials, bad endpoint, unknown backend
    ├── ValidationError             bad input, raised before any network call (also a ValueError)
    ├── APIError                    the server answered with an error
    │   ├── AuthenticationError     signature, key or session rejected
    │   │   └── SessionExpiredError
    │   ├── PermissionDeniedError   service not enabled, model not entitled, client too old
    │   ├── InvalidRequestError     the server rejected the parameters
    │   │   └── TaskNotCancellableError  the task already started (or ended): it runs on
    │   ├── NotFoundError           unknown task or route
    │   ├── RateLimitError          QPS / concurrency limits (retried)
    │   ├── ServerError             5xx, internal errors (retried)
    │   ├── ContentPolicyError      moderation refused the input or the output
    │   ├── InsufficientCreditsError
    │   └── AntiBotError            upstream demanded a browser check
    ├── APIConnectionError          the network failed (refused, reset, DNS)
    │   └── APITimeoutError
    ├── TaskError                   a task that exists on the server did not give a result
    │   ├── TaskFailedError
    │   ├── TaskTimeoutError
    │   ├── TaskCancelledError
    │   └── TaskExpiredError
    └── DownloadError               a result could not be saved

Any error raised while a server-side task exists carries its id in ``task_id`` (and the
backend-specific ``task_ref`` that :meth:`jimeng.Client.tasks.resume` accepts), so a paid
generation is never lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from jimeng import _logging

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AntiBotError",
    "AuthenticationError",
    "ConfigurationError",
    "ContentPolicyError",
    "DownloadError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "JimengError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "SessionExpiredError",
    "TaskCancelledError",
    "TaskError",
    "TaskExpiredError",
    "TaskFailedError",
    "TaskNotCancellableError",
    "TaskTimeoutError",
    "ValidationError",
]


class JimengError(Exception):
    """Base class of every error raised by the library."""

    #: Server-side task id, when the error happened after a task was accepted.
    task_id: str | None = None
    #: Opaque reference that ``client.tasks.resume()`` accepts to pick the task up again.
    task_ref: str | None = None
    #: ``True`` when a submit failed in a way that does not prove the server refused it (a reset
    #: or timeout after sending, a 5xx from a proxy): the task may exist and be billed.
    maybe_accepted: bool = False

    def __init__(self, message: str, *, task_id: str | None = None, task_ref: str | None = None):
        # Messages often quote server text: scrub any secret a backend registered.
        message = _logging.redact(message)
        super().__init__(message)
        self.message = message
        if task_id is not None:
            self.task_id = task_id
        if task_ref is not None:
            self.task_ref = task_ref

    def attach_task(self, task_id: str, task_ref: str | None = None) -> None:
        """Record the task this error belongs to (kept if already set)."""
        if self.task_id is None:
            self.task_id = task_id
        if self.task_ref is None:
            self.task_ref = task_ref

    def mark_maybe_accepted(self, purpose: str, when: datetime) -> None:
        """Say that the server may have accepted the request this error ended (once)."""
        if self.maybe_accepted:
            return
        self.maybe_accepted = True
        self.message = (
            f"{self.message} — the {purpose} may have reached the server, which may have "
            f"accepted (and will bill) the task though no task id came back; before submitting "
            f"again, look for a task submitted at {when:%Y-%m-%d %H:%M:%S %Z} with "
            "client.tasks.list() / 'jimeng task list' (backends with a task list) or in the "
            "provider's console"
        )
        self.args = (self.message,)

    def __str__(self) -> str:
        text = self.message
        if self.task_id is not None and "task_id=" not in text:
            text = f"{text} (task_id={self.task_id})"
        return text


def _redact_text(value: Any) -> Any:
    """``value`` with registered secrets replaced when it is text (codes may be numbers)."""
    return _logging.redact(value) if isinstance(value, str) else value


class ConfigurationError(JimengError):
    """The client is missing something it needs (credentials, endpoint, backend)."""


_NOT_GIVEN: Any = object()
#: A refused value is quoted up to this many characters (a huge prompt or bytes stay readable).
MAX_VALUE_REPR = 80


def short_repr(value: Any) -> str:
    """``repr(value)`` with registered secrets scrubbed, then cut to :data:`MAX_VALUE_REPR`
    characters."""
    try:
        text = repr(value)
    except Exception:  # a caller's object with a broken __repr__ is still refused cleanly
        text = f"<{type(value).__name__} object>"
    return _logging.redact_cut(text, MAX_VALUE_REPR, ellipsis="…")


class ValidationError(JimengError, ValueError):
    """A parameter is invalid. Raised before any request is sent.

    ``field`` names the parameter; ``allowed`` describes the accepted values; ``choices`` lists
    them one by one when they were given as a list (``allowed`` joins them), else ``None``;
    ``value`` is a short repr of what was given (cut to 80 characters, secrets scrubbed), when the
    error is about it.
    """

    def __init__(
        self,
        field: str,
        message: str,
        *,
        allowed: str | Sequence[Any] | None = None,
        value: Any = _NOT_GIVEN,
    ):
        self.field = field
        self.choices: tuple[str, ...] | None = None
        if allowed is not None and not isinstance(allowed, str):
            self.choices = tuple(str(item) for item in allowed)
            allowed = ", ".join(self.choices)
        self.allowed = allowed
        self.value: str | None = None if value is _NOT_GIVEN else short_repr(value)
        text = f"{field}: {message}"
        if self.value is not None:
            text += f", got {self.value}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


class APIError(JimengError):
    """The server answered with an error.

    ``code`` is the backend's own error code (``50412``, ``"SignatureDoesNotMatch"``, ``-2009``,
    ``"1006"``…), ``status_code`` the HTTP status, ``request_id`` the id to quote to support and
    ``backend`` the name of the backend that raised it.
    """

    #: Whether the engine may send the same request again.
    retryable: bool = False
    #: Whether the answer proves the server accepted nothing, so even a submit (which would be
    #: billed twice) may be resent. Backends set it for codes that mean "refused".
    resend_safe: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: int | str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        backend: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
        task_id: str | None = None,
        task_ref: str | None = None,
    ):
        super().__init__(message, task_id=task_id, task_ref=task_ref)
        # Both come from the answer and are shown by str(): an upstream may echo a secret.
        self.code: int | str | None = _redact_text(code)
        self.status_code = status_code
        self.request_id: str | None = _redact_text(request_id)
        self.backend = backend
        #: The decoded answer, registered secrets scrubbed (an upstream may echo headers).
        self.body = _logging.scrub(body)
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [self.message]
        details = []
        if self.code is not None:
            details.append(f"code={self.code}")
        if self.status_code is not None:
            details.append(f"http={self.status_code}")
        if self.request_id:
            details.append(f"request_id={self.request_id}")
        if self.task_id:
            details.append(f"task_id={self.task_id}")
        if details:
            parts.append("(" + ", ".join(details) + ")")
        return " ".join(parts)


class AuthenticationError(APIError):
    """Credentials were rejected: bad signature, unknown key, invalid session."""


class SessionExpiredError(AuthenticationError):
    """A web session id is no longer valid; log in again and copy a fresh one."""


class PermissionDeniedError(APIError):
    """Credentials are valid but not allowed to do this."""


class InvalidRequestError(APIError):
    """The server rejected the request's parameters."""


class TaskNotCancellableError(InvalidRequestError):
    """The server refused to cancel a task because it already started or finished.

    The task keeps running (and is billed); wait for it with ``client.tasks.wait(...)``.
    ``task_id`` names it, ``status`` is its state when the refusal was checked, if known.
    """

    def __init__(self, message: str, *, status: str | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.status = status


class NotFoundError(APIError):
    """The task, route or resource does not exist (or no longer exists)."""


class RateLimitError(APIError):
    """Too many requests or too many concurrent tasks. Retried with backoff."""

    retryable = True
    resend_safe = True


class ServerError(APIError):
    """The server failed. Retried with backoff."""

    retryable = True


class ContentPolicyError(APIError):
    """Content moderation refused the prompt, an input image, or the generated output."""


class InsufficientCreditsError(APIError):
    """The account (or every session in the rotation) has no credits left."""

    def __init__(self, message: str, *, sessions: Iterable[str] = (), **kwargs: Any):
        super().__init__(message, **kwargs)
        #: Fingerprints of the sessions found exhausted (never the session ids themselves).
        self.sessions = tuple(sessions)


class AntiBotError(APIError):
    """Upstream demanded a browser check (risk control); the request cannot pass without one."""


class APIConnectionError(JimengError):
    """The request did not get an answer: connection refused or reset, DNS failure, TLS."""

    def __init__(
        self, message: str, *, sent: bool | None = None, permanent: bool = False, **kwargs: Any
    ):
        super().__init__(message, **kwargs)
        #: ``False`` when the request certainly never reached the server, ``None`` when unknown.
        self.sent = sent
        #: ``True`` when trying again cannot help (a bad URL, an untrusted certificate).
        self.permanent = permanent


class APITimeoutError(APIConnectionError):
    """The server did not answer within the request timeout."""


class TaskError(JimengError):
    """A task that the server accepted did not produce a result."""

    def __init__(
        self,
        message: str,
        *,
        task_id: str,
        task_ref: str | None = None,
        status: str | None = None,
        code: int | str | None = None,
    ):
        super().__init__(message, task_id=task_id, task_ref=task_ref)
        self.status = status
        self.code: int | str | None = _redact_text(code)


class TaskFailedError(TaskError):
    """The task ended in failure."""


class TaskTimeoutError(TaskError):
    """The task did not finish before the polling deadline. It may still finish: resume it."""


class TaskCancelledError(TaskError):
    """The task was cancelled."""


class TaskExpiredError(TaskError):
    """The server no longer knows the task (results expire); submit again."""


class DownloadError(JimengError):
    """A generated file could not be downloaded or saved. No partial file is left behind."""

    def __init__(self, message: str, *, url: str | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.url = None if url is None else _logging.redact(url)
