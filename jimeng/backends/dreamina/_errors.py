"""Dreamina ``ret`` codes and task ``fail_code`` values → the library's exceptions.

protocols/dreamina-web.md §7.3 (envelope and ``ret`` codes), §5.3 (``fail_code``), §4.2 (ImageX).
Every message names the session by fingerprint, never by id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jimeng import _logging
from jimeng._http import Response
from jimeng.backends._endpoint import OPENAPI_ERROR_CODES, error_class_for_status
from jimeng.backends.dreamina._session import Session
from jimeng.backends.dreamina._versions import ClientVersions
from jimeng.errors import (
    AntiBotError,
    APIError,
    ContentPolicyError,
    InsufficientCreditsError,
    InvalidRequestError,
    PermissionDeniedError,
    ServerError,
    SessionExpiredError,
)

__all__ = [
    "BACKEND",
    "CONTENT_FAIL_CODES",
    "FAIL_CODE_MESSAGES",
    "RET_CODES",
    "check_imagex",
    "check_store",
    "check_web",
    "web_error",
]

BACKEND = "dreamina"

_BROWSER_CHECK = (
    "upstream demanded a browser check (risk control: its a_bogus/msToken browser tokens); "
    "this request cannot pass without a real browser session. Seedance models on the CN site "
    "need it today; other models usually do not"
)

#: §7.3 ``ret`` → (exception class, what it means for the caller).
RET_CODES: Mapping[str, tuple[type[APIError], str]] = {
    "1006": (InsufficientCreditsError, "not enough credits left on session {session}"),
    # 5000 is "credit prededuct not enough": this request costs more than the balance (4k on HK,
    # IPT #36) while cheaper ones may still pass, so rotation skips the session for this request
    # only instead of marking it exhausted.
    "5000": (
        InsufficientCreditsError,
        "session {session} cannot pay for this request (credit prededuct not enough)",
    ),
    "1015": (
        SessionExpiredError,
        "session {session} ({region}) is not logged in: the session id is wrong or expired, or "
        "its region prefix is wrong; log in again and copy a fresh sessionid",
    ),
    "1019": (AntiBotError, "shark not pass: " + _BROWSER_CHECK),
    "4013": (AntiBotError, "suspected abnormal behaviour: " + _BROWSER_CHECK),
    "-4": (AntiBotError, "shark check reject on session {session}: " + _BROWSER_CHECK),
    "3018": (
        PermissionDeniedError,
        "permission denied: the client version constants are outdated ({versions}); upstream "
        "raised its minimum. Pass newer values, e.g. jimeng.Dreamina(tokens, "
        "versions={{'app_version': '…', 'da_version': '…', 'web_version': '…'}}) "
        "(see the 'Dreamina sessions' docs)",
    ),
    "4001": (ContentPolicyError, "content violation: the prompt or an input was refused"),
    # §19: "region not allow" comes from the server; most often the egress IP's country does
    # not match the session's site (a CN IP with a us-/hk- session, or a proxy elsewhere).
    "3000": (
        PermissionDeniedError,
        "region not allowed for session {session} ({region}): the network you reach upstream "
        "from does not match the session's site (check proxies and the region prefix), or the "
        "model is restricted there for now",
    ),
    # §19: a generic parameter error; for Seedance 2.0 it usually means the benefit type (§14).
    "1000": (InvalidRequestError, "invalid parameter"),
    "4002": (InvalidRequestError, "parameter error"),
    "4010": (
        PermissionDeniedError,
        "session {session} has not confirmed the AIGC compliance (face detection) prompt; "
        "open the site in a browser once and accept it",
    ),
    "5001": (
        PermissionDeniedError,
        "generation refused (credit prededuct failed): session {session} has no entitlement "
        "for this model",
    ),
    "5002": (ServerError, "video generation failed upstream"),
    "34010100": (InvalidRequestError, "param error"),
    "2003": (ContentPolicyError, "an input image did not pass the risk check"),
}

#: §5.3: ``fail_code`` values of failed records that are moderation verdicts.
CONTENT_FAIL_CODES = frozenset({"2038", "2047"})
FAIL_CODE_MESSAGES: Mapping[str, str] = {
    "2038": "content filtered",
    "2047": "banned words in the prompt",
    "1017": "generation failed upstream (fail_code 1017; reported under load, try again later)",
}


def web_error(
    response: Response, payload: Any, *, session: Session, versions: ClientVersions
) -> APIError | None:
    """The exception a web (mweb / commerce) answer stands for, or ``None`` for success."""
    if not isinstance(payload, Mapping):
        text = _logging.redact_head(response.body, 200).strip()
        return error_class_for_status(response.status)(
            f"unexpected non-JSON answer (HTTP {response.status}): {text!r}",
            status_code=response.status,
            backend=BACKEND,
        )
    ret = str(payload.get("ret", "")).strip()
    if ret == "0" and response.status < 400:
        return None
    errmsg = str(payload.get("errmsg") or payload.get("message") or "").strip()
    request_id = payload.get("logid") or payload.get("log_id")
    known = RET_CODES.get(ret)
    if known is not None:
        cls, meaning = known
        message = meaning.format(
            session=session.fingerprint, region=session.region.code, versions=versions.describe()
        )
    else:
        cls = error_class_for_status(response.status) if response.status >= 400 else APIError
        message = f"upstream error ret={ret or '?'}"
    if errmsg:
        message = f"{message} (upstream: {errmsg})"
    kwargs: dict[str, Any] = {
        "code": ret or None,
        "status_code": response.status,
        "retry_after": response.retry_after(),
        "request_id": str(request_id) if request_id else None,
        "backend": BACKEND,
        "body": payload,
    }
    if cls is InsufficientCreditsError:
        return InsufficientCreditsError(message, sessions=[session.fingerprint], **kwargs)
    error = cls(message, **kwargs)
    if ret:
        # The app answered with its own envelope and a non-zero ret: the draft was refused,
        # nothing was created, so even a generate call may be sent again.
        error.resend_safe = True
    return error


def check_web(response: Response, *, session: Session, versions: ClientVersions) -> None:
    error = web_error(response, response.json(), session=session, versions=versions)
    if error is not None:
        raise error


def check_imagex(response: Response) -> None:
    """ImageX answers in the ByteDance OpenAPI envelope (``ResponseMetadata.Error``, §4.2); its
    error names are the gateway's, so Volcengine's table classifies them."""
    payload = response.json()
    metadata = payload.get("ResponseMetadata") if isinstance(payload, Mapping) else None
    error = metadata.get("Error") if isinstance(metadata, Mapping) else None
    if not isinstance(error, Mapping) and isinstance(payload, Mapping) and response.status < 400:
        return
    name = str(error.get("Code") or "") if isinstance(error, Mapping) else ""
    message = str(error.get("Message") or name) if isinstance(error, Mapping) else ""
    cls = OPENAPI_ERROR_CODES.get(name) or error_class_for_status(response.status)
    raise cls(
        f"ImageX upload refused: {message or f'HTTP {response.status}'}",
        code=name or None,
        status_code=response.status,
        request_id=metadata.get("RequestId") if isinstance(metadata, Mapping) else None,
        backend=BACKEND,
        body=payload,
    )


def check_store(response: Response) -> None:
    """§4.2 step 2: the store answers ``{"code": 2000}`` on success."""
    payload = response.json()
    code = payload.get("code") if isinstance(payload, Mapping) else None
    if code == 2000 and response.status < 400:
        return
    message = payload.get("message") if isinstance(payload, Mapping) else None
    cls = error_class_for_status(response.status) if response.status >= 400 else APIError
    raise cls(
        f"image upload refused: {message or 'no reason given'}",
        code=code,
        status_code=response.status,
        backend=BACKEND,
        body=payload,
    )
