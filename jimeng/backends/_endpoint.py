"""Endpoint URLs shared by every HTTP backend: parsing, and plain http only where it is safe."""

from __future__ import annotations

import ipaddress

from yarl import URL

from jimeng.errors import ConfigurationError

__all__ = ["check_endpoint", "is_loopback"]


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
