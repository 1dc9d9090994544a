"""V4 signer details the vector tests do not reach: the local time zone, signed paths, IPv6 hosts,
tokens with colons, unusual access keys, the Authorization grammar's edges and the skew boundary."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from multidict import CIMultiDict

from jimeng._signing import (
    VOLCENGINE_CV,
    Credentials,
    ParsedAuthorization,
    SignatureMismatch,
    SignedRequest,
    canonical_headers,
    canonical_request,
    format_x_date,
    parse_authorization,
    sign,
    verify,
)

SECRET = "PinnedSecret/Key+With=Chars-31ab"
NOW = datetime(2025, 6, 15, 8, 30, tzinfo=timezone.utc)
BODY = b'{"req_key":"jimeng_t2i_v40"}'
SIG = "0123456789abcdef" * 4


def signed_request(
    *,
    path: str = "/",
    access_key: str = "AKLTpinnedExample0007",
    token: str | None = None,
    now: datetime = NOW,
) -> SignedRequest:
    return sign(
        method="POST",
        host="visual.volcengineapi.com",
        path=path,
        query={"Action": "CVSync2AsyncSubmitTask", "Version": "2022-08-31"},
        headers={"Content-Type": "application/json"},
        body=BODY,
        credentials=Credentials(access_key=access_key, secret_key=SECRET, session_token=token),
        profile=VOLCENGINE_CV,
        now=now,
    )


def verify_signed(
    signed: SignedRequest,
    *,
    path: str = "/",
    query: str | None = None,
    now: datetime | None = None,
    max_skew: timedelta = timedelta(minutes=15),
) -> ParsedAuthorization:
    return verify(
        method="POST",
        path=path,
        query=signed.query if query is None else query,
        headers=CIMultiDict(signed.headers),
        body=BODY,
        secret_key_for=lambda access_key: SECRET,
        profile=VOLCENGINE_CV,
        now=now,
        max_skew=max_skew,
    )


# --- the clock reading is converted to UTC, whatever the machine's zone -------------------------


@pytest.fixture
def local_zone_utc_plus_8() -> Iterator[None]:
    """Run with the process's local time zone at UTC+8 (a POSIX TZ string: no tzdata needed)."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX-only")
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "CST-8"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


@pytest.mark.usefixtures("local_zone_utc_plus_8")
@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2025, 1, 1, tzinfo=timezone.utc), "20250101T000000Z"),
        (datetime(2025, 1, 1, 8, tzinfo=timezone(timedelta(hours=8))), "20250101T000000Z"),
        (datetime(2025, 1, 1, 3, tzinfo=timezone(timedelta(hours=-5))), "20250101T080000Z"),
        (datetime(2025, 1, 1, 7, 59, 59), "20250101T075959Z"),  # naive: taken as UTC
    ],
)
def test_x_date_is_utc_whatever_the_local_zone(moment: datetime, expected: str) -> None:
    assert time.localtime(0).tm_gmtoff == 8 * 3600  # the fixture took effect
    assert format_x_date(moment) == expected


@pytest.mark.usefixtures("local_zone_utc_plus_8")
def test_sign_dates_and_scopes_in_utc_whatever_the_local_zone() -> None:
    # 23:30 UTC on Dec 31 is already Jan 1 in the local zone: both date and scope stay in UTC.
    signed = signed_request(now=datetime(2024, 12, 31, 23, 30, tzinfo=timezone.utc))
    assert signed.headers["X-Date"] == "20241231T233000Z"
    assert (
        "Credential=AKLTpinnedExample0007/20241231/cn-north-1/cv/request,"
        in (signed.headers["Authorization"])
    )
    assert signed.string_to_sign.split("\n")[1:3] == [
        "20241231T233000Z",
        "20241231/cn-north-1/cv/request",
    ]


# --- the path is part of what is signed ---------------------------------------------------------


def test_canonical_request_carries_the_encoded_path() -> None:
    creq = canonical_request(
        method="post",
        path="/upload/a b/中",
        query="a=1",
        headers={"Host": "h.test"},
        signed=["host"],
        payload_hash="p",
    )
    assert creq == "POST\n/upload/a%20b/%E4%B8%AD\na=1\nhost:h.test\n\nhost\np"


def test_a_request_replayed_on_another_path_fails_verification() -> None:
    signed = signed_request(path="/api/v1/submit")
    assert signed.canonical_request.split("\n")[1] == "/api/v1/submit"
    assert verify_signed(signed, path="/api/v1/submit").access_key == "AKLTpinnedExample0007"
    with pytest.raises(SignatureMismatch) as info:
        verify_signed(signed, path="/api/v1/delete")
    assert info.value.reason == "signature does not match"


# --- Host: the default port is dropped after the last colon (IPv6 literals) ---------------------


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("[::1]:443", "[::1]"),
        ("[2001:db8::7]:80", "[2001:db8::7]"),
        ("[::1]:8443", "[::1]:8443"),
        ("[::1]", "[::1]"),
        ("example.com:443", "example.com"),
    ],
)
def test_host_default_port_is_stripped_from_ipv6_literals(host: str, canonical: str) -> None:
    assert canonical_headers({"Host": host}, ["host"]) == f"host:{canonical}\n"


# --- repr never shows the session token, even one containing colons -----------------------------


def test_signed_request_repr_hides_a_token_containing_colons() -> None:
    token = "STS2:tok:en-with:colons"
    signed = signed_request(token=token)
    assert f"x-security-token:{token}\n" in signed.canonical_request
    text = repr(signed)
    assert "x-security-token:<redacted>\\n" in text
    assert "tok:en" not in text
    assert "colons" not in text


# --- parse_authorization: access keys with "/" or "=", and what it refuses ---------------------


@pytest.mark.parametrize(
    "access_key",
    ["AKLTpinnedExample0007", "AKLTbase64Padded0007==", "team/AKLTslashed0007", "a/b=c/d=="],
)
def test_unusual_access_keys_round_trip(access_key: str) -> None:
    signed = signed_request(access_key=access_key)
    expected = ParsedAuthorization(
        "HMAC-SHA256",
        access_key,
        "20250615",
        "cn-north-1",
        "cv",
        "request",
        ("content-type", "host", "x-content-sha256", "x-date"),
        signed.signature,
    )
    assert parse_authorization(signed.headers["Authorization"]) == expected
    assert verify_signed(signed) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(
            f"HMAC-SHA256 Credential=/20250101/cn-north-1/cv/request, "
            f"SignedHeaders=host, Signature={SIG}",
            id="empty access key",
        ),
        pytest.param(
            f"HMAC-SHA256 Credential=AK/20250101//cv/request, SignedHeaders=host, Signature={SIG}",
            id="empty region",
        ),
        pytest.param(
            f"HMAC-SHA256 Credential=AK/2025010a/cn-north-1/cv/request, "
            f"SignedHeaders=host, Signature={SIG}",
            id="date with a letter",
        ),
        pytest.param(
            f"HMAC-SHA256 Credential=AK/2025-1-1/cn-north-1/cv/request, "
            f"SignedHeaders=host, Signature={SIG}",
            id="date with dashes",
        ),
        pytest.param(
            "HMAC-SHA256 Credential=AK/20250101/cn-north-1/cv/request, "
            f"SignedHeaders=host, Signature={SIG[:-1]}X",
            id="signature with an X",
        ),
        pytest.param(
            "HMAC-SHA256 Credential=AK/20250101/cn-north-1/cv/request, "
            f"SignedHeaders=host, Signature={'X' * 64}",
            id="signature of Xs",
        ),
    ],
)
def test_parse_authorization_refuses(value: str) -> None:
    with pytest.raises(ValueError):
        parse_authorization(value)


# --- verify: the clock-skew boundary and the malformed-query reason -----------------------------


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (timedelta(minutes=15), True),
        (-timedelta(minutes=15), True),
        (timedelta(minutes=15, microseconds=1), False),
        (-timedelta(minutes=15, microseconds=1), False),
    ],
)
def test_clock_skew_of_exactly_max_skew_is_accepted(offset: timedelta, accepted: bool) -> None:
    signed = signed_request()
    if accepted:
        assert verify_signed(signed, now=NOW + offset).date == "20250615"
    else:
        with pytest.raises(SignatureMismatch) as info:
            verify_signed(signed, now=NOW + offset)
        assert info.value.reason == "x-date is outside the allowed clock skew"


def test_clock_skew_boundary_follows_max_skew() -> None:
    signed = signed_request()
    assert verify_signed(signed, now=NOW + timedelta(seconds=30), max_skew=timedelta(seconds=30))
    with pytest.raises(SignatureMismatch):
        verify_signed(signed, now=NOW + timedelta(seconds=31), max_skew=timedelta(seconds=30))


def test_a_query_that_does_not_decode_is_refused_with_a_reason() -> None:
    signed = signed_request()
    with pytest.raises(SignatureMismatch) as info:
        verify_signed(signed, query=signed.query + "&note=%FF")
    assert info.value.reason == "malformed query string"
    assert str(info.value) == "malformed query string"
