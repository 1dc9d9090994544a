"""Gateway error answers → the library's exceptions (protocols/gateway.md §8a, §8b).

jimeng-api answers errors with ``{code: <negative>, message, data: null}``, usually at HTTP 200
(§8a, observed on v1.9.6; some IPT versions set 400/401/402/413/500 from the code instead, see
IPT ``Exception.ts``), so the envelope's code decides and the HTTP status is only a fallback.
Relays with an OpenAI surface answer ``{"error": {message, type, code}}`` with a real HTTP status.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from jimeng import _logging
from jimeng._http import Response
from jimeng.backends._endpoint import error_class_for_status
from jimeng.errors import (
    APIError,
    AuthenticationError,
    ContentPolicyError,
    InsufficientCreditsError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
    SessionExpiredError,
)
from jimeng.models import Task

__all__ = [
    "CODES",
    "GENERATION_FAILED",
    "check_response",
    "error_for",
    "failure_class",
    "failure_error",
    "refused_cancel_status",
]

#: Envelope code → exception class (§8a; -1001/-1002/-2005 from IPT ``consts/exceptions.ts``).
CODES: Mapping[int, type[APIError]] = {
    -1000: APIError,  # a plain Error: refined by its message below
    -1001: InvalidRequestError,  # request validation
    -1002: NotFoundError,  # no matching route
    -2000: InvalidRequestError,  # parameter check failed (auth header: refined below)
    -2001: ServerError,  # upstream request failed (not retried: see _NOT_RETRIED)
    -2002: SessionExpiredError,  # token expired
    -2003: InvalidRequestError,  # file URL invalid
    -2004: InvalidRequestError,  # file too large
    -2005: APIError,  # "a chat stream is already being output": chat-only, removed in 2d14b2b
    -2006: ContentPolicyError,  # content filtered
    -2007: APIError,  # image generation failed: submit flows turn it into a failed task
    -2008: APIError,  # video generation failed: likewise
    -2009: InsufficientCreditsError,
}

#: Codes that mean "the generation ran and failed" rather than "the request was refused".
GENERATION_FAILED = frozenset({-2007, -2008})

#: -2001 may come after upstream accepted (and billed) the generation: never resend a submit.
_NOT_RETRIED = frozenset({-2001})

#: -1000 carries any plain ``Error``; its message says what it was (§8b, §8c; DZ ``tasks.ts``).
_UNKNOWN_TASK = re.compile(r"任务不存在[:：]\s*(\S+)")
_NO_ROUTE = ("[请求有误]", "无匹配的路由")
_CANNOT_CANCEL = re.compile(r"当前状态为\s*([a-z_]+)\s*[，,]\s*无法取消")
_INVALID_PARAMETER = ("不支持的参数", "仅支持", "参数", "最多", "至少", "缺少")
_UPSTREAM_UNREACHABLE = ("ENOTFOUND", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "timeout")

#: Words of IPT/DZ failure messages (``error-handler.ts``, ``exceptions.ts``) → class. A failed
#: async task carries only ``error: err.message`` (DZ ``routes/images.ts``), no code.
_FAILURE_WORDS: tuple[tuple[tuple[str, ...], type[APIError]], ...] = (
    (
        ("内容被过滤", "内容违规", "合规问题", "content filtered", "risk not pass"),
        ContentPolicyError,
    ),
    (("积分不足", "not enough credits", "credit prededuct"), InsufficientCreditsError),
    (("Token已失效", "登录失效", "login error"), SessionExpiredError),
)

#: OpenAI-style ``error.code`` strings (relays) → class.
_OPENAI_CODES: Mapping[str, type[APIError]] = {
    "invalid_api_key": AuthenticationError,
    "content_policy_violation": ContentPolicyError,
    "insufficient_quota": InsufficientCreditsError,
    "rate_limit_exceeded": RateLimitError,
    "not_found": NotFoundError,
    "model_not_found": NotFoundError,
}


def failure_class(message: str) -> type[APIError] | None:
    """The specific class a failure message stands for, from its words (``None``: generic)."""
    lowered = message.lower()
    for words, cls in _FAILURE_WORDS:
        if any(word.lower() in lowered for word in words):
            return cls
    return None


_SPECIFIC = (ContentPolicyError, InsufficientCreditsError, SessionExpiredError)


def failure_error(task: Task, *, backend: str, sessions: Iterable[str] = ()) -> APIError | None:
    """The specific error a failed task stands for (content, credits, session), or ``None``.

    A failure converted from a synchronous answer keeps its code; an async task's record keeps
    only the message (DZ stores ``err.message``), so its words decide.
    """
    failure = task.failure
    if failure is None:
        return None
    code = failure.code
    cls = CODES.get(code) if isinstance(code, int) else None
    if cls is None or not issubclass(cls, _SPECIFIC):
        cls = failure_class(failure.message)
    if cls is None:
        return None
    message = f"task {task.id} failed: {failure.message}"
    if issubclass(cls, InsufficientCreditsError):
        return cls(message, code=code, backend=backend, sessions=tuple(sessions))
    return cls(message, code=code, backend=backend)


def refused_cancel_status(message: str) -> str | None:
    """The status named by DZ's "cannot cancel" message (``processing``…), if it is one."""
    match = _CANNOT_CANCEL.search(message)
    return match.group(1) if match else None


def _refine(code: int, message: str) -> tuple[type[APIError], str]:
    """Class and message for a code, using what the message says where the code is generic."""
    cls = CODES.get(code, APIError)
    if code == -2000 and "authorization" in message.lower():
        return AuthenticationError, f"{message} — the gateway needs a session token (Bearer)"
    if code == -2001:
        specific = failure_class(message)
        if specific is InsufficientCreditsError:  # IPT maps upstream ret 1006 to -2001 (§7.3)
            return specific, message
    if code != -1000:
        return cls, message
    if _UNKNOWN_TASK.search(message):
        return NotFoundError, message
    if any(marker in message for marker in _NO_ROUTE):
        return NotFoundError, (
            f"{message} — this gateway has no such route (a jimeng-api without the async-task "
            "mode has no /v1/tasks; task lists need the trailing slash)"
        )
    status = refused_cancel_status(message)
    if status is not None:
        return InvalidRequestError, message
    if any(marker in message for marker in _INVALID_PARAMETER):
        return InvalidRequestError, message
    if any(marker in message for marker in _UPSTREAM_UNREACHABLE):
        return ServerError, f"the gateway could not reach upstream: {message}"
    return failure_class(message) or APIError, message


def _openai_error(
    response: Response, error: Mapping[str, Any], *, backend: str, sessions: Iterable[str]
) -> APIError:
    message = str(error.get("message") or f"HTTP {response.status}")
    code = error.get("code")
    if isinstance(code, int) and code < 0:  # a jimeng-api code in the OpenAI shape (seed 002)
        return _from_code(response, code, message, error, backend=backend, sessions=sessions)
    named = _OPENAI_CODES.get(str(code or error.get("type") or ""))
    cls = named or error_class_for_status(response.status)
    return _make(cls, message, code=code, response=response, body=error, backend=backend,
                 sessions=sessions)  # fmt: skip


def _make(
    cls: type[APIError],
    message: str,
    *,
    code: int | str | None,
    response: Response,
    body: Any,
    backend: str,
    sessions: Iterable[str],
) -> APIError:
    retry_after = response.retry_after()
    common: dict[str, Any] = {
        "code": code,
        "status_code": response.status,
        "backend": backend,
        "body": body,
        "retry_after": retry_after,
    }
    if issubclass(cls, InsufficientCreditsError):
        return cls(message, sessions=tuple(sessions), **common)
    return cls(message, **common)


def _from_code(
    response: Response,
    code: int,
    message: str,
    body: Any,
    *,
    backend: str,
    sessions: Iterable[str],
) -> APIError:
    cls, text = _refine(code, message)
    error = _make(cls, text, code=code, response=response, body=body, backend=backend,
                  sessions=sessions)  # fmt: skip
    if code in _NOT_RETRIED or (isinstance(error, ServerError) and code == -1000):
        error.retryable = False  # the gateway answered; a resend could run (and bill) twice
    return error


def error_for(
    response: Response, payload: Any, *, backend: str, sessions: Iterable[str] = ()
) -> APIError | None:
    """The exception an answer stands for, or ``None`` if it is a success.

    Success bodies are bare JSON (objects or lists); an error is an object with a negative
    ``code``, an OpenAI-style ``error`` object, a non-JSON body, or an HTTP error status.
    """
    if isinstance(payload, Mapping):
        code = payload.get("code")
        if isinstance(code, int) and not isinstance(code, bool) and code < 0:
            message = str(payload.get("message") or f"gateway error {code}")
            return _from_code(response, code, message, payload, backend=backend,
                              sessions=sessions)  # fmt: skip
        error = payload.get("error")
        if isinstance(error, Mapping) and (response.status >= 400 or "message" in error):
            return _openai_error(response, error, backend=backend, sessions=sessions)
    if payload is None:
        text = _logging.redact_head(response.body, 200).strip()
        cls = error_class_for_status(response.status) if response.status >= 400 else APIError
        return _make(
            cls,
            f"unexpected non-JSON answer (HTTP {response.status}): {text!r}",
            code=None,
            response=response,
            body=None,
            backend=backend,
            sessions=sessions,
        )
    if response.status >= 400:
        return _make(
            error_class_for_status(response.status),
            f"HTTP {response.status}",
            code=None,
            response=response,
            body=payload,
            backend=backend,
            sessions=sessions,
        )
    return None


def check_response(response: Response, *, backend: str, sessions: Iterable[str] = ()) -> None:
    """Raise the typed error an answer stands for, whatever its HTTP status."""
    error = error_for(response, response.json(), backend=backend, sessions=sessions)
    if error is not None:
        raise error
