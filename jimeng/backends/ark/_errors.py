"""Ark error answers → the library's exceptions (protocols/volcengine.md §12.4).

Ark answers ``{"error": {"code", "message", "type", "param"}}`` with a meaningful HTTP status,
so the status decides the class and a few codes refine it. A failed task carries the same
``code``/``message`` in its ``error`` at HTTP 200: that is the task's outcome, not an error of
the poll.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from jimeng import _logging
from jimeng._http import Response
from jimeng.backends._endpoint import error_class_for_status
from jimeng.errors import APIError, ContentPolicyError, InsufficientCreditsError, RateLimitError

__all__ = ["check_response", "error_class", "failure_class"]

#: Codes whose meaning is not their status's: money, not permission or rate.
_CREDIT_CODES = frozenset(
    {"AccountOverdueError", "OperationDenied.ServiceOverdue", "SetLimitExceeded"}
)
_MODERATION = re.compile(r"^(Input|Output)(Text|Image|Video|Audio)SensitiveContentDetected")
_REQUEST_ID = re.compile(r"Request ID:\s*([0-9A-Za-z-]+)")


def error_class(status: int, code: str, message: str) -> type[APIError]:
    """The exception class for an Ark error answer."""
    if _MODERATION.match(code):
        return ContentPolicyError
    if code in _CREDIT_CODES:
        return InsufficientCreditsError
    if code == "QuotaExceeded":
        # §12.4: two meanings. "Too many tasks in queued state" is a wait; a used-up free
        # quota is money.
        return RateLimitError if "queue" in message.lower() else InsufficientCreditsError
    # §12.4's statuses read as on every backend (400 request, 401 key, 403 not allowed, 404,
    # 429 rate, 5xx server).
    return error_class_for_status(status)


def check_response(response: Response, *, backend: str = "ark") -> None:
    """Raise the typed error of an answer with an error status (any 4xx/5xx)."""
    if response.status < 400:
        return
    payload = response.json()
    error = payload.get("error") if isinstance(payload, Mapping) else None
    if isinstance(error, Mapping):
        code = str(error.get("code") or error.get("type") or f"HTTP{response.status}")
        message = str(error.get("message") or code)
    else:
        text = _logging.redact_head(response.body, 200).strip()
        code = f"HTTP{response.status}"
        message = f"unexpected answer (HTTP {response.status}): {text!r}"
    found = _REQUEST_ID.search(message)
    request_id = response.header("X-Request-Id") or (found.group(1) if found else None)
    cls = error_class(response.status, code, message)
    raise cls(
        message,
        code=code,
        status_code=response.status,
        request_id=request_id,
        backend=backend,
        body=payload,
        retry_after=response.retry_after(),
    )


def failure_class(code: object) -> type[APIError] | None:
    """The specific error of a task that failed with ``code`` (moderation), else ``None``."""
    if isinstance(code, str) and _MODERATION.match(code):
        return ContentPolicyError
    return None
