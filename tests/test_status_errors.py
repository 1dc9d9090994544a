"""One HTTP status → error class table for every backend (an answer whose body says nothing),
and how every backend quotes such a body."""

from __future__ import annotations

import pytest

import jimeng
from jimeng import _logging
from jimeng._http import Call, Response, unreadable_answer
from jimeng.backends._endpoint import error_class_for_status
from jimeng.backends.ark._errors import check_response as ark_check
from jimeng.backends.dreamina._errors import web_error
from jimeng.backends.dreamina._session import Session
from jimeng.backends.dreamina._tables import REGIONS
from jimeng.backends.dreamina._versions import DEFAULT_VERSIONS
from jimeng.backends.gateway._errors import error_for as gateway_error
from jimeng.backends.volcengine._errors import error_for as volcengine_error

EXPECTED = {
    400: jimeng.InvalidRequestError,
    401: jimeng.AuthenticationError,
    402: jimeng.InsufficientCreditsError,
    403: jimeng.PermissionDeniedError,
    404: jimeng.NotFoundError,
    409: jimeng.APIError,
    413: jimeng.InvalidRequestError,
    422: jimeng.InvalidRequestError,
    429: jimeng.RateLimitError,
    500: jimeng.ServerError,
    503: jimeng.ServerError,
}
SESSION = Session(sid="statustablesession", region=REGIONS["cn"])


def _errors(status: int) -> dict[str, type[BaseException]]:
    response = Response(status=status, headers={}, body=b"<html>no</html>")
    found = {
        "volcengine": volcengine_error(response, None, backend="volcengine"),
        "gateway": gateway_error(response, None, backend="gateway"),
        "dreamina": web_error(response, None, session=SESSION, versions=DEFAULT_VERSIONS),
    }
    return {name: type(error) for name, error in found.items() if error is not None}


@pytest.mark.parametrize(("status", "expected"), sorted(EXPECTED.items()))
def test_every_backend_maps_a_bare_status_to_the_same_class(
    status: int, expected: type[jimeng.APIError]
) -> None:
    assert error_class_for_status(status) is expected
    assert _errors(status) == {"volcengine": expected, "gateway": expected, "dreamina": expected}


def test_403_is_permission_denied_not_authentication() -> None:
    # A 403 is an authenticated refusal; retrying with other credentials would not help.
    assert not issubclass(error_class_for_status(403), jimeng.AuthenticationError)


ECHOED = "canary-echoed-bearer-4b8e21"


def _quoted(status: int, body: bytes) -> dict[str, str]:
    """The message each backend makes of a non-JSON error page."""
    response = Response(status=status, headers={}, body=body)
    with pytest.raises(jimeng.APIError) as ark:
        ark_check(response)
    found = {
        "volcengine": volcengine_error(response, None, backend="volcengine"),
        "gateway": gateway_error(response, None, backend="gateway"),
        "dreamina": web_error(response, None, session=SESSION, versions=DEFAULT_VERSIONS),
        "ark": ark.value,
    }
    return {name: error.message for name, error in found.items() if error is not None}


def test_a_quoted_error_page_is_cut_after_redaction() -> None:
    """A secret that crosses the 200-character cut leaves none of its start behind."""
    _logging.register_secret(ECHOED)
    body = b"<html>" + b"x" * 184 + f"Bearer {ECHOED}</html>".encode()
    head = repr("<html>" + "x" * 184 + "Bearer <redacted>")
    assert _quoted(502, body) == {
        "volcengine": f"unexpected non-JSON answer (HTTP 502): {head}",
        "gateway": f"unexpected non-JSON answer (HTTP 502): {head}",
        "dreamina": f"unexpected non-JSON answer (HTTP 502): {head}",
        "ark": f"unexpected answer (HTTP 502): {head}",
    }


def test_an_unreadable_answer_is_cut_after_redaction() -> None:
    _logging.register_secret(ECHOED)
    call = Call(method="POST", url="https://api.example.test/v1", purpose="poll")
    body = b"x" * 75 + ECHOED.encode() + b"y" * 50
    error = unreadable_answer(Response(status=200, headers={}, body=body), call)
    assert error.message == (
        f"unexpected non-JSON answer to the poll (HTTP 200, no Content-Type, {len(body)} bytes): "
        f"{'x' * 75 + '<redacted>'!r}"
    )
