"""Volcengine error envelopes → the library's exceptions (protocols/volcengine.md §2.5, §4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jimeng import _logging
from jimeng._http import Response
from jimeng.backends._endpoint import OPENAPI_ERROR_CODES, error_class_for_status
from jimeng.errors import (
    APIError,
    ContentPolicyError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)

__all__ = [
    "BUSINESS_CODES",
    "GATEWAY_CODES",
    "check_response",
    "check_result_response",
    "error_for",
    "failure_class",
]

SUCCESS = 10000

#: Business ``code`` → exception class (§4.1, §4.2).
BUSINESS_CODES: Mapping[int, type[APIError]] = {
    50411: ContentPolicyError,
    50511: ContentPolicyError,
    50412: ContentPolicyError,
    50512: ContentPolicyError,
    # §3.4.4: the motion and avatar keys' pre-checks of the driving video and the audio.
    50513: ContentPolicyError,
    50514: ContentPolicyError,
    50413: ContentPolicyError,
    50516: ContentPolicyError,
    50517: ContentPolicyError,
    50518: ContentPolicyError,
    50519: ContentPolicyError,
    60208: ContentPolicyError,
    # Moderation services failing is not a verdict on the content; neither doc says to retry.
    50520: APIError,
    50521: APIError,
    50522: APIError,
    50429: RateLimitError,
    50430: RateLimitError,
    # §4.1: the image doc says "no retry" for 50500/50501, the video doc "retry"; we retry,
    # bounded, as most clients do (a failed submit is not billed).
    50500: ServerError,
    50501: ServerError,
    50200: InvalidRequestError,
    50201: InvalidRequestError,
    50204: InvalidRequestError,
    50205: InvalidRequestError,
    50206: InvalidRequestError,
    50207: InvalidRequestError,
    50209: InvalidRequestError,
    50210: InvalidRequestError,
    50211: InvalidRequestError,
    50213: InvalidRequestError,
    50214: InvalidRequestError,
    50215: InvalidRequestError,
    60102: InvalidRequestError,
    50400: PermissionDeniedError,
    50402: NotFoundError,
    30403: PermissionDeniedError,
    30404: NotFoundError,
}

#: ``ResponseMetadata.Error.Code`` → exception class (§4.3), shared with ImageX and VOD.
GATEWAY_CODES = OPENAPI_ERROR_CODES

_HINTS: Mapping[str, str] = {
    "SignatureDoesNotMatch": "check VOLC_SECRETKEY (use it exactly as shown in the console)",
    "InvalidAccessKey": "check VOLC_ACCESSKEY",
    "InvalidTimestamp": "the machine's clock is off; sync it",
}


#: Answers that prove a submit was refused, not accepted: safe to resend (§4.1, §4.3).
#: InternalError / InternalServiceTimeout are left out: the service may have taken the task.
RESEND_SAFE: frozenset[int | str] = frozenset(
    {50429, 50430, 50500, 50501, "FlowLimitExceeded", "FailToConnect"}
)


def error_for(response: Response, payload: Any, *, backend: str) -> APIError | None:
    """The exception an answer stands for, or ``None`` if it is a success."""
    error = _error_for(response, payload, backend=backend)
    if error is not None and error.code in RESEND_SAFE:
        error.resend_safe = True
    return error


def _error_for(response: Response, payload: Any, *, backend: str) -> APIError | None:
    if (
        type(payload) is dict
        and payload.get("code") == SUCCESS
        and "ResponseMetadata" not in payload
    ):
        return None  # the common answer, told at once
    if not isinstance(payload, Mapping):
        retry_after = response.retry_after()
        text = _logging.redact_head(response.body, 200).strip()
        message = f"unexpected non-JSON answer (HTTP {response.status}): {text!r}"
        cls = error_class_for_status(response.status)
        return cls(message, status_code=response.status, backend=backend, retry_after=retry_after)
    metadata = payload.get("ResponseMetadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("Error"), Mapping):
        error = metadata["Error"]
        name = str(error.get("Code") or "")
        message = str(error.get("Message") or name or "gateway error")
        hint = _HINTS.get(name)
        if hint:
            message = f"{message} — {hint}"
        cls = GATEWAY_CODES.get(name) or error_class_for_status(response.status)
        retry_after = response.retry_after()
        return cls(
            message,
            code=name or error.get("CodeN"),
            status_code=response.status,
            request_id=metadata.get("RequestId"),
            backend=backend,
            body=payload,
            retry_after=retry_after,
        )
    code = payload.get("code")
    message = str(payload.get("message") or f"HTTP {response.status}")
    relay_error = payload.get("error")
    if code is None and isinstance(relay_error, Mapping):
        # Relays (gateway.md §10) answer their own failures, e.g. a bad key, OpenAI-style.
        code = relay_error.get("code") or relay_error.get("type")
        message = str(relay_error.get("message") or message)
    if code == SUCCESS or (code is None and response.status < 400):
        return None
    try:
        numeric = int(code) if code is not None else None
    except (TypeError, ValueError):
        numeric = None
    if numeric is not None and numeric in BUSINESS_CODES:
        cls = BUSINESS_CODES[numeric]
    else:
        cls = error_class_for_status(response.status)
    retry_after = response.retry_after()  # read for errors only: a success has no use for it
    return cls(
        message,
        code=numeric if numeric is not None else code,
        status_code=response.status,
        request_id=payload.get("request_id"),
        backend=backend,
        body=payload,
        retry_after=retry_after,
    )


def check_result_response(response: Response, *, backend: str = "volcengine") -> None:
    """Like :func:`check_response`, except that a finished task's own failure (``data.status``
    ``done``/``failed`` with an error code, §2.3) is not an error of the poll: the parser turns
    it into a failed task, so it is neither retried nor taken for a busy service."""
    payload = response.json()
    if isinstance(payload, Mapping) and "ResponseMetadata" not in payload:
        data = payload.get("data")
        if isinstance(data, Mapping) and data.get("status") in ("done", "failed"):
            return
    check_response(response, backend=backend)


def failure_class(code: object) -> type[APIError] | None:
    """The specific error for a task that failed with ``code`` (moderation), else ``None``."""
    try:
        numeric = int(str(code))
    except ValueError:
        return None
    cls = BUSINESS_CODES.get(numeric)
    return cls if cls is ContentPolicyError else None


def check_response(response: Response, *, backend: str = "volcengine") -> None:
    """Raise the typed error an answer stands for, whatever its HTTP status."""
    error = error_for(response, response.json(), backend=backend)
    if error is not None:
        raise error
