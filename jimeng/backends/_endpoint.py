"""What every HTTP backend shares: endpoint URLs (parsing, plain http only where it is safe),
the HTTP status → error class table, and the ByteDance OpenAPI error names (Volcengine's
gateway, ImageX and VOD answer in the same ``ResponseMetadata.Error`` envelope)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from yarl import URL

from jimeng.errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    InsufficientCreditsError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)

__all__ = ["OPENAPI_ERROR_CODES", "check_endpoint", "error_class_for_status", "is_loopback"]

#: HTTP status → error class, for answers whose body does not say better. One table for every
#: backend: 401 is "who are you" (credentials), 403 "not allowed" (authenticated, refused).
_STATUS_CLASSES: Mapping[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitError,
}


def error_class_for_status(status: int) -> type[APIError]:
    """The error class an HTTP status stands for (5xx: :class:`ServerError`; any other status
    without an entry, including a 2xx that carried an error body: :class:`APIError`)."""
    if status >= 500:
        return ServerError
    return _STATUS_CLASSES.get(status, APIError)


#: ``ResponseMetadata.Error.Code`` → exception class (protocols/volcengine.md §4.3).
OPENAPI_ERROR_CODES: Mapping[str, type[APIError]] = {
    "MissingParameter": InvalidRequestError,
    "MissingAuthenticationToken": AuthenticationError,
    "MissingRequestInfo": InvalidRequestError,
    "MissingSignature": AuthenticationError,
    "InvalidTimestamp": AuthenticationError,
    "ServiceNotFound": NotFoundError,
    "InvalidActionOrVersion": NotFoundError,
    "InvalidAccessKey": AuthenticationError,
    "SignatureDoesNotMatch": AuthenticationError,
    "LackPolicy": PermissionDeniedError,
    "AccessDenied": PermissionDeniedError,
    "InternalError": ServerError,
    "FailToConnect": ServerError,
    "InternalServiceTimeout": ServerError,
    "FlowLimitExceeded": RateLimitError,
}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (IPv4 and IPv6, bracketed or not)."""
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: str, *, allow_http: bool) -> URL:
    """Parse an endpoint; plain http is only for loopback hosts unless explicitly allowed."""
    try:
        url = URL(endpoint)
        url.port  # noqa: B018 - parses the port, raising on a bad one
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"endpoint is not a valid URL: {error}") from None
    if url.user is not None or url.password is not None:
        # A URL is printed in reprs, logs and errors: credentials inside it would leak there.
        raise ConfigurationError(
            f"endpoint {url.with_user(None)!s} carries credentials in the URL; pass them as "
            "the backend's key or token arguments instead"
        )
    if url.raw_query_string or url.raw_fragment:
        raise ConfigurationError(
            f"endpoint {url.with_query(None).with_fragment(None)!s} has a query string or "
            "fragment, which would be dropped; give the base URL only"
        )
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"endpoint must be an http(s) URL, got {endpoint!r}")
    if url.scheme == "http" and not allow_http and not is_loopback(url.host):
        raise ConfigurationError(
            f"refusing plain http to {url.host}: credentials would travel unencrypted; "
            "use https, or pass allow_http=True if you really mean it"
        )
    return url
