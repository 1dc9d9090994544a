"""V4 signer: stage-by-stage vectors, verification, and the ImageX (AWS SigV4) flavour."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from jimeng._signing import (
    VOLCENGINE_CV,
    Credentials,
    ParsedAuthorization,
    SignatureMismatch,
    SignedRequest,
    SigningProfile,
    authorization_header,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    credential_scope,
    format_x_date,
    hash_payload,
    imagex_profile,
    parse_authorization,
    parse_query,
    select_signed_headers,
    sign,
    signature,
    signing_key_chain,
    string_to_sign,
    verify,
)

VECTORS_NAME = "volcengine-signing-vectors.json"
LOCAL_VECTORS = Path(__file__).resolve().parent / "data" / VECTORS_NAME
SHARED_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "protocols" / VECTORS_NAME
VECTORS: list[dict[str, Any]] = json.loads(LOCAL_VECTORS.read_text(encoding="utf-8"))["vectors"]

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ADDED_BY_SIGNER = {"authorization", "x-date", "x-content-sha256", "x-security-token"}
AUTH_RE = re.compile(
    r"^(?P<alg>\S+) Credential=(?P<ak>[^/]+)/(?P<scope>\S+), "
    r"SignedHeaders=(?P<signed>\S+), Signature=(?P<sig>[0-9a-f]{64})$"
)


def stage(name: str, actual: object, expected: object) -> None:
    assert actual == expected, f"stage {name!r} diverged"


def moment_of(x_date: str) -> datetime:
    return datetime.strptime(x_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def sent_headers(vector: dict[str, Any]) -> dict[str, str]:
    headers = vector.get("headers_sent_by_official_sdk") or vector["headers_after_sign"]
    return dict(headers)


def body_of(vector: dict[str, Any]) -> bytes:
    text: str = vector["body"] if "body" in vector else vector["body_utf8"]
    return text.encode("utf-8")


def query_of(vector: dict[str, Any]) -> Any:
    if "query" in vector:
        return vector["query"]
    # The official SDK sent urlencode(query) in insertion order (protocols/volcengine.md §1.3).
    return parse_qsl(urlsplit(vector["url_sent_by_official_sdk"]).query, keep_blank_values=True)


# --- the vector file ---------------------------------------------------------------------------


def test_vector_copy_matches_shared_file() -> None:
    if not SHARED_VECTORS.exists():
        pytest.skip("shared/ is not checked out next to the repository")
    assert LOCAL_VECTORS.read_bytes() == SHARED_VECTORS.read_bytes()


def test_there_are_six_vectors() -> None:
    assert len(VECTORS) == 6


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_stage_by_stage(vector: dict[str, Any]) -> None:
    sent = sent_headers(vector)
    expected_auth = sent["Authorization"]
    match = AUTH_RE.match(expected_auth)
    assert match is not None
    expected_signed = match["signed"].split(";")
    expected_creq: str = vector["canonical_request"]
    expected_query = vector.get("canonical_query", expected_creq.split("\n")[2])
    body = body_of(vector)
    x_date = vector["x_date"]
    profile = SigningProfile(region=vector["region"], service=vector["service"])
    assert profile == VOLCENGINE_CV

    # Each stage on its own, fed with the official SDK's headers (minus Authorization).
    on_wire = {name: value for name, value in sent.items() if name != "Authorization"}
    query = canonical_query(query_of(vector))
    stage("canonical query", query, expected_query)
    payload_hash = hash_payload(body)
    stage("payload hash", payload_hash, vector["body_sha256"])
    signed = select_signed_headers(on_wire, profile)
    stage("signed headers", signed, expected_signed)
    creq = canonical_request(
        method=vector["method"],
        path=vector["path"],
        query=query,
        headers=on_wire,
        signed=signed,
        payload_hash=payload_hash,
    )
    stage("canonical request", creq, expected_creq)
    creq_hash = hashlib.sha256(creq.encode()).hexdigest()
    stage("canonical request sha256", creq_hash, vector["canonical_request_sha256"])
    scope = credential_scope(x_date[:8], profile)
    stage("credential scope", scope, match["scope"])
    sts = string_to_sign(profile=profile, x_date=x_date, scope=scope, canonical_request=creq)
    expected_sts = vector.get(
        "string_to_sign", f"HMAC-SHA256\n{x_date}\n{scope}\n{vector['canonical_request_sha256']}"
    )
    stage("string to sign", sts, expected_sts)
    keys = signing_key_chain(vector["sk"], x_date[:8], profile)
    for key_name, key in zip(
        ("k_date_hex", "k_region_hex", "k_service_hex", "signing_key_hex"), keys, strict=True
    ):
        if key_name in vector:
            stage(key_name, key.hex(), vector[key_name])
    sig = signature(keys[3], sts)
    stage("signature", sig, match["sig"])
    auth = authorization_header(
        profile=profile, access_key=vector["ak"], scope=scope, signed=signed, signature=sig
    )
    stage("authorization header", auth, expected_auth)

    # The same request through sign(), starting from what a caller provides.
    given_headers = {k: v for k, v in sent.items() if k.lower() not in ADDED_BY_SIGNER}
    signed_request = sign(
        method=vector["method"],
        host="visual.volcengineapi.com",
        path=vector["path"],
        query=query_of(vector),
        headers=given_headers,
        body=body,
        credentials=Credentials(
            access_key=vector["ak"],
            secret_key=vector["sk"],
            session_token=vector["session_token"] or None,
        ),
        profile=VOLCENGINE_CV,
        now=moment_of(x_date),
    )
    stage("sign(): query", signed_request.query, expected_query)
    stage("sign(): canonical request", signed_request.canonical_request, expected_creq)
    stage("sign(): string to sign", signed_request.string_to_sign, expected_sts)
    stage("sign(): signature", signed_request.signature, match["sig"])
    stage("sign(): headers", signed_request.headers, sent)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_verify_accepts_what_the_official_sdk_sent(vector: dict[str, Any]) -> None:
    # v3/v4 were sent with "+" for spaces but signed with %20 (protocols/volcengine.md §1.3).
    if "url_sent_by_official_sdk" in vector:
        raw_query = urlsplit(vector["url_sent_by_official_sdk"]).query
    else:
        raw_query = vector["canonical_query"]
    parsed = verify(
        method=vector["method"],
        path=vector["path"],
        query=raw_query,
        headers=CIMultiDict(sent_headers(vector)),
        body=body_of(vector),
        secret_key_for={vector["ak"]: vector["sk"]}.get,
        profile=VOLCENGINE_CV,
    )
    assert parsed.access_key == vector["ak"]
    assert parsed.date == vector["x_date"][:8]


def test_demo_sign_only_cross_service_vector() -> None:
    # protocols/volcengine.md §1.9: the SDK's DemoSignOnly (service iam).
    iam = SigningProfile(region="cn-north-1", service="iam")
    now = datetime.fromtimestamp(1640712206, tz=timezone.utc)
    assert format_x_date(now) == "20211228T172326Z"
    signed = sign(
        method="GET",
        host="open.volcengineapi.com",
        path="/",
        query={"Action": "ListUsers", "Version": "2018-01-01", "Limit": "5", "Offset": "0"},
        headers={},
        body=b"",
        credentials=Credentials(access_key="ak", secret_key="sk"),
        profile=iam,
        now=now,
    )
    assert signed.query == "Action=ListUsers&Limit=5&Offset=0&Version=2018-01-01"
    assert "SignedHeaders=host;x-content-sha256;x-date," in signed.headers["Authorization"]
    assert signed.signature == "4f5b9d2b436092f11a41b5ad0d6eb6a868b30bd3955f480fa1d6bf1ed3073eba"
    assert signed.headers["Authorization"].startswith(
        "HMAC-SHA256 Credential=ak/20211228/cn-north-1/iam/request, "
    )


# --- stage functions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2025, 1, 1, tzinfo=timezone.utc), "20250101T000000Z"),
        (datetime(2025, 1, 1, 8, 0, 0, tzinfo=timezone(timedelta(hours=8))), "20250101T000000Z"),
        (datetime(2025, 12, 31, 23, 59, 59, 999999), "20251231T235959Z"),
        (datetime(999, 2, 3, 4, 5, 6, tzinfo=timezone.utc), "09990203T040506Z"),
    ],
)
def test_format_x_date(moment: datetime, expected: str) -> None:
    assert format_x_date(moment) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [("", "/"), ("/", "/"), ("/a b/c+d", "/a%20b/c%2Bd"), ("/中", "/%E4%B8%AD")],
)
def test_canonical_uri(path: str, expected: str) -> None:
    assert canonical_uri(path) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ""),
        ([], ""),
        ({"b": "2", "a": "1"}, "a=1&b=2"),
        # code-point order on raw keys: uppercase first (protocols/volcengine.md §1.3)
        ({"a": "x", "Action": "y", "A": "z", "b key": "v"}, "A=z&Action=y&a=x&b%20key=v"),
        ([("tag", "b"), ("x", "1"), ("tag", "a")], "tag=b&tag=a&x=1"),
        ({"tag": ["b", "a", "c d"]}, "tag=b&tag=a&tag=c%20d"),
        ({"k": ""}, "k="),
        ({"r": "-_.~!*'()/+=&?#%"}, "r=-_.~%21%2A%27%28%29%2F%2B%3D%26%3F%23%25"),
    ],
)
def test_canonical_query(query: Any, expected: str) -> None:
    assert canonical_query(query) == expected


def test_parse_query_decodes_plus_and_keeps_order() -> None:
    assert parse_query("?b+key=hello+world&A=%E4%B8%AD&flag&&a=%2B") == [
        ("b key", "hello world"),
        ("A", "中"),
        ("flag", ""),
        ("a", "+"),
    ]
    with pytest.raises(ValueError):
        parse_query("a=%FF")


def test_select_signed_headers_volcengine_rule() -> None:
    headers = {
        "Host": "h",
        "User-Agent": "ua",
        "Content-Length": "3",
        "content-type": "application/json",
        "Content-MD5": "x",
        "x-custom": "1",
        "X-Date": "d",
        "Authorization": "a",
    }
    assert select_signed_headers(headers, VOLCENGINE_CV) == [
        "content-md5",
        "content-type",
        "host",
        "x-custom",
        "x-date",
    ]


def test_select_signed_headers_amz_rule() -> None:
    headers = {
        "Host": "h",
        "Content-Type": "application/json",
        "X-Amz-Date": "d",
        "x-amz-security-token": "t",
        "x-amz-content-sha256": "s",
        "x-amz-meta": "m",
    }
    assert select_signed_headers(headers, imagex_profile("cn-north-1")) == [
        "x-amz-content-sha256",
        "x-amz-date",
        "x-amz-security-token",
    ]


def test_canonical_headers_lookup_and_host_port() -> None:
    headers = {"HOST": "example.com:443", "x-date": "  d  ", "X-Other": "o"}
    block = canonical_headers(headers, ["host", "x-date", "x-other"])
    assert block == "host:example.com\nx-date:d\nx-other:o\n"
    assert canonical_headers({"Host": "example.com:80"}, ["host"]) == "host:example.com\n"
    assert canonical_headers({"Host": "127.0.0.1:8080"}, ["host"]) == "host:127.0.0.1:8080\n"
    with pytest.raises(ValueError, match="missing header x-date"):
        canonical_headers({"Host": "h"}, ["host", "x-date"])
    with pytest.raises(ValueError, match="line break"):
        canonical_headers({"X-Evil": "a\r\nb"}, ["x-evil"])


def test_sign_replaces_stale_auth_headers_on_retry() -> None:
    creds = Credentials(access_key="AKLTretry000001", secret_key="s", session_token="t1")
    first = sign(
        method="POST",
        host="visual.volcengineapi.com",
        path="/",
        query={"Action": "A"},
        headers={"Content-Type": "application/json"},
        body=b"{}",
        credentials=creds,
        profile=VOLCENGINE_CV,
        now=datetime(2025, 1, 1, tzinfo=timezone.utc),
    )
    again = sign(
        method="POST",
        host="visual.volcengineapi.com",
        path="/",
        query={"Action": "A"},
        headers={k.lower(): v for k, v in first.headers.items()},
        body=b"{}",
        credentials=creds,
        profile=VOLCENGINE_CV,
        now=datetime(2025, 1, 1, 0, 0, 5, tzinfo=timezone.utc),
    )
    names = [name.lower() for name in again.headers]
    assert len(names) == len(set(names))
    assert again.headers["X-Date"] == "20250101T000005Z"
    assert again.signature != first.signature


# --- parse_authorization -----------------------------------------------------------------------


SIG_A = "a" * 64
GOOD_CREDENTIAL = "AK/20250101/cn-north-1/cv/request"


def authz(credential: str = GOOD_CREDENTIAL, signed: str = "host;x-date", sig: str = SIG_A) -> str:
    return f"HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={sig}"


def test_parse_authorization() -> None:
    assert parse_authorization(authz()) == ParsedAuthorization(
        "HMAC-SHA256", "AK", "20250101", "cn-north-1", "cv", "request", ("host", "x-date"), SIG_A
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        "HMAC-SHA256",
        f"HMAC-SHA256 Credential={GOOD_CREDENTIAL}, Signature={SIG_A}",
        authz(credential="AK/2025/cn-north-1/cv/request"),
        authz(credential="AK/20250101/cv/request"),
        authz(sig="xyz"),
        authz(sig="A" * 64),
        authz(signed=""),
        authz(signed="Host;x-date"),
        authz() + f", Signature={'b' * 64}",
        authz().replace(", ", " "),
    ],
)
def test_parse_authorization_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError):
        parse_authorization(value)


# --- verify ------------------------------------------------------------------------------------

SECRET = "CanarySecret/Key+With=Chars-9f2c"
TOKEN = "CanarySessionToken-5d1e"
CREDS = Credentials(access_key="AKLTverifyExample0042", secret_key=SECRET, session_token=TOKEN)
NOW = datetime(2025, 6, 15, 8, 30, tzinfo=timezone.utc)
BODY = b'{"req_key":"jimeng_t2i_v40","prompt":"\xe7\x8c\xab"}'
QUERY = {"Action": "CVSync2AsyncSubmitTask", "Version": "2022-08-31", "note": "a b/c"}


def signed_submit(profile: SigningProfile = VOLCENGINE_CV) -> SignedRequest:
    return sign(
        method="POST",
        host="visual.volcengineapi.com",
        path="/",
        query=QUERY,
        headers={"Content-Type": "application/json", "User-Agent": "jimeng-test"},
        body=BODY,
        credentials=CREDS,
        profile=profile,
        now=NOW,
    )


def lookup(access_key: str) -> str | None:
    return SECRET if access_key == CREDS.access_key else None


def check(
    signed: SignedRequest,
    *,
    query: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = BODY,
    secrets: Any = lookup,
    now: datetime | None = None,
) -> ParsedAuthorization:
    return verify(
        method="POST",
        path="/",
        query=signed.query if query is None else query,
        headers=CIMultiDict(signed.headers if headers is None else headers),
        body=body,
        secret_key_for=secrets,
        profile=VOLCENGINE_CV,
        now=now,
    )


def test_verify_accepts_sign_output() -> None:
    signed = signed_submit()
    parsed = check(signed)
    # User-Agent is sent but not signed (protocols/volcengine.md §1.1 step 6).
    assert parsed.signed_headers == (
        "content-type",
        "host",
        "x-content-sha256",
        "x-date",
        "x-security-token",
    )
    assert check(signed, now=NOW + timedelta(minutes=10)) == parsed
    # Header names arrive in any case.
    assert check(signed, headers={k.upper(): v for k, v in signed.headers.items()}) == parsed
    # An already-decoded query is canonicalised as given.
    decoded = verify(
        method="POST",
        path="/",
        query=QUERY,
        headers=signed.headers,
        body=BODY,
        secret_key_for=lookup,
        profile=VOLCENGINE_CV,
    )
    assert decoded == parsed


def without(signed: SignedRequest, name: str) -> dict[str, Any]:
    return {"headers": {k: v for k, v in signed.headers.items() if k.lower() != name}}


def replacing(signed: SignedRequest, name: str, value: str) -> dict[str, Any]:
    return {"headers": {**signed.headers, name: value}}


def editing_auth(signed: SignedRequest, old: str, new: str) -> dict[str, Any]:
    return replacing(signed, "Authorization", signed.headers["Authorization"].replace(old, new))


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        pytest.param(
            lambda s: {"secrets": lambda ak: "not-the-secret"},
            "signature does not match",
            id="wrong secret",
        ),
        pytest.param(lambda s: {"secrets": lambda ak: None}, "unknown access key", id="unknown ak"),
        pytest.param(lambda s: {"body": BODY + b" "}, "body hash mismatch", id="tampered body"),
        pytest.param(
            lambda s: {"query": s.query.replace("a%20b", "a%20c")},
            "signature does not match",
            id="tampered query value",
        ),
        pytest.param(
            lambda s: {"query": s.query + "&extra=1"},
            "signature does not match",
            id="extra query pair",
        ),
        pytest.param(lambda s: without(s, "x-date"), "missing header x-date", id="no x-date"),
        pytest.param(
            lambda s: without(s, "content-type"),
            "missing header content-type",
            id="no signed content-type",
        ),
        pytest.param(
            lambda s: without(s, "x-security-token"),
            "missing header x-security-token",
            id="no token",
        ),
        pytest.param(
            lambda s: without(s, "authorization"),
            "missing header authorization",
            id="no authorization",
        ),
        pytest.param(
            lambda s: replacing(s, "Content-Type", "text/plain"),
            "signature does not match",
            id="changed content-type",
        ),
        pytest.param(
            lambda s: replacing(s, "X-Date", "20250615T083001Z"),
            "signature does not match",
            id="changed x-date",
        ),
        pytest.param(
            lambda s: replacing(s, "X-Date", "20250616T083000Z"),
            "credential date does not match x-date",
            id="x-date on another day",
        ),
        pytest.param(
            lambda s: replacing(s, "X-Date", "yesterday"), "malformed x-date", id="bad x-date"
        ),
        pytest.param(
            lambda s: {"now": NOW + timedelta(minutes=16)},
            "x-date is outside the allowed clock skew",
            id="clock skew",
        ),
        pytest.param(
            lambda s: replacing(s, "Authorization", "Bearer abc"),
            "malformed authorization",
            id="not v4",
        ),
        pytest.param(
            lambda s: editing_auth(s, "/cv/", "/iam/"),
            "credential scope does not match",
            id="other service",
        ),
        pytest.param(
            lambda s: editing_auth(s, "HMAC-SHA256 ", "AWS4-HMAC-SHA256 "),
            "unsupported algorithm",
            id="other algorithm",
        ),
        pytest.param(
            lambda s: editing_auth(s, ";x-security-token", ""),
            "header x-security-token is not signed",
            id="token not signed",
        ),
        pytest.param(
            lambda s: editing_auth(s, "content-type;host;", "content-type;"),
            "header host is not signed",
            id="host not signed",
        ),
        pytest.param(
            lambda s: editing_auth(s, ";x-date", ""),
            "header x-date is not signed",
            id="x-date not signed",
        ),
        pytest.param(
            lambda s: replacing(s, "Content-Type", "application/json\nX-Injected: 1"),
            "header content-type contains a line break",
            id="bare LF in a signed header",
        ),
        pytest.param(
            lambda s: replacing(s, "Content-Type", "application/json\rX-Injected: 1"),
            "header content-type contains a line break",
            id="bare CR in a signed header",
        ),
    ],
)
def test_verify_rejects_with_reason(tamper: Any, reason: str) -> None:
    signed = signed_submit()
    with pytest.raises(SignatureMismatch) as info:
        check(signed, **tamper(signed))
    assert info.value.reason.startswith(reason)
    assert isinstance(info.value, ValueError)
    assert SECRET not in str(info.value)
    assert TOKEN not in str(info.value)


query_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("&=+%/?#~*'()! ;,:@[]\"\\\t")),
        st.characters(codec="utf-8"),
    ),
    max_size=12,
)
query_values = st.one_of(query_text, st.lists(query_text, max_size=3))


@settings(max_examples=200, deadline=None)
@given(
    query=st.dictionaries(query_text, query_values, max_size=6),
    body=st.binary(max_size=256),
    method=st.sampled_from(["GET", "POST"]),
    profile=st.sampled_from([VOLCENGINE_CV, imagex_profile("cn-north-1")]),
    token=st.one_of(st.none(), st.text(alphabet="ABCDEFabcdef0123456789+/=", min_size=1)),
    now=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(None)
    ),
)
def test_verify_accepts_whatever_sign_produces(
    query: dict[str, str | list[str]],
    body: bytes,
    method: str,
    profile: SigningProfile,
    token: str | None,
    now: datetime,
) -> None:
    creds = Credentials(access_key="AKLTpropertyKey0001", secret_key=SECRET, session_token=token)
    signed = sign(
        method=method,
        host="127.0.0.1:8443",
        path="/",
        query=query,
        headers={"Content-Type": "application/json"},
        body=body,
        credentials=creds,
        profile=profile,
        now=now,
    )
    verify(
        method=method,
        path="/",
        query=signed.query,
        headers=CIMultiDict(signed.headers),
        body=body,
        secret_key_for={creds.access_key: SECRET}.get,
        profile=profile,
        now=now,
    )
    # The query string sent decodes back to the given pairs, in canonical order.
    pairs = [(k, v) for k, vs in query.items() for v in ([vs] if isinstance(vs, str) else vs)]
    pairs.sort(key=lambda pair: pair[0])
    assert parse_query(signed.query) == pairs
    assert canonical_query(parse_query(signed.query)) == signed.query


# --- ImageX: the AWS SigV4 flavour -------------------------------------------------------------

IMAGEX_HOST = "imagex.bytedanceapi.com"
UPLOAD_CREDS = Credentials(
    access_key="AKTPimagexExample0001", secret_key="ImagexSecret+/=Example", session_token=TOKEN
)


def textbook_sigv4(
    *,
    method: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    secret: str,
    amz_date: str,
    region: str,
    service: str,
) -> tuple[str, str]:
    """AWS SigV4 written out from the AWS documentation; returns (scope, signature)."""

    def enc(text: str) -> str:
        return quote(text, safe="-_.~")

    canonical_qs = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(query))
    names = sorted(headers)
    creq = "\n".join(
        [
            method,
            "/",
            canonical_qs,
            "".join(f"{n}:{headers[n]}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    sts = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (amz_date[:8], region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return scope, hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("method", "action", "extra", "body", "expected_signed"),
    [
        (
            "GET",
            "ApplyImageUpload",
            [("FileSize", "12345"), ("s", "k3j9x0q2ab")],
            b"",
            ["x-amz-date", "x-amz-security-token"],
        ),
        (
            "POST",
            "CommitImageUpload",
            [],
            b'{"SessionKey":"eyJhY2NvdW50VHlwZSI6ImltYWdleCJ9"}',
            ["x-amz-content-sha256", "x-amz-date", "x-amz-security-token"],
        ),
    ],
)
def test_imagex_upload_signing(
    method: str,
    action: str,
    extra: list[tuple[str, str]],
    body: bytes,
    expected_signed: list[str],
) -> None:
    profile = imagex_profile("cn-north-1")
    query = [("Action", action), ("Version", "2018-08-01"), ("ServiceId", "tb4s082cfz"), *extra]
    headers = {"Content-Type": "application/json"} if body else {}
    signed = sign(
        method=method,
        host=IMAGEX_HOST,
        path="/",
        query=query,
        headers=headers,
        body=body,
        credentials=UPLOAD_CREDS,
        profile=profile,
        now=NOW,
    )
    match = AUTH_RE.match(signed.headers["Authorization"])
    assert match is not None
    assert match["alg"] == "AWS4-HMAC-SHA256"
    assert match["scope"].endswith("/cn-north-1/imagex/aws4_request")
    # protocols/dreamina-web.md §4.2: Host is sent but not signed; the body hash only with a body.
    assert match["signed"].split(";") == expected_signed
    assert signed.headers["Host"] == IMAGEX_HOST
    assert signed.headers["x-amz-date"] == "20250615T083000Z"
    assert signed.headers["x-amz-security-token"] == TOKEN
    assert ("x-amz-content-sha256" in signed.headers) == bool(body)

    textbook_headers = {"x-amz-date": "20250615T083000Z", "x-amz-security-token": TOKEN}
    if body:
        textbook_headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    scope, expected_sig = textbook_sigv4(
        method=method,
        query=query,
        headers=textbook_headers,
        body=body,
        secret=UPLOAD_CREDS.secret_key,
        amz_date="20250615T083000Z",
        region="cn-north-1",
        service="imagex",
    )
    assert match["scope"] == scope
    assert signed.signature == expected_sig
    assert verify(
        method=method,
        path="/",
        query=signed.query,
        headers=CIMultiDict(signed.headers),
        body=body,
        secret_key_for={UPLOAD_CREDS.access_key: UPLOAD_CREDS.secret_key}.get,
        profile=profile,
    ) == parse_authorization(signed.headers["Authorization"])


def test_aws_published_signing_key_example() -> None:
    # AWS documentation's signing-key derivation example (secret, 20150830, us-east-1, iam).
    profile = SigningProfile(
        region="us-east-1",
        service="iam",
        algorithm="AWS4-HMAC-SHA256",
        key_prefix="AWS4",
        terminator="aws4_request",
    )
    keys = signing_key_chain("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", profile)
    assert keys[3].hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"


def test_aws_testsuite_get_vanilla() -> None:
    # aws4_testsuite "get-vanilla", via the stage functions (it signs host, which ImageX does not).
    profile = imagex_profile("us-east-1", service="service")
    headers = {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"}
    creq = canonical_request(
        method="GET",
        path="/",
        query=canonical_query({}),
        headers=headers,
        signed=["host", "x-amz-date"],
        payload_hash=EMPTY_SHA256,
    )
    scope = credential_scope("20150830", profile)
    sts = string_to_sign(
        profile=profile, x_date="20150830T123600Z", scope=scope, canonical_request=creq
    )
    assert sts == (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
    )
    keys = signing_key_chain("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", profile)
    sig = signature(keys[3], sts)
    assert sig == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    assert authorization_header(
        profile=profile,
        access_key="AKIDEXAMPLE",
        scope=scope,
        signed=["host", "x-amz-date"],
        signature=sig,
    ) == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


# --- secrets stay out of repr ------------------------------------------------------------------


def test_credentials_repr_hides_secrets() -> None:
    creds = Credentials(
        access_key="AKLTcanaryAccessKey0001",
        secret_key="CANARY-SECRET-8c1f",
        session_token="CANARY-TOKEN-77ab",
    )
    for text in (repr(creds), str(creds)):
        assert "CANARY-SECRET-8c1f" not in text
        assert "CANARY-TOKEN-77ab" not in text
        assert "AKLTcanaryAccessKey0001" not in text
        assert "'AKLT…0001'" in text
    assert "canary" not in repr(Credentials(access_key="canary", secret_key="x"))


def test_credentials_require_keys() -> None:
    with pytest.raises(ValueError):
        Credentials(access_key="", secret_key="x")
    with pytest.raises(ValueError):
        Credentials(access_key="AK", secret_key="")


@pytest.mark.parametrize("profile", [VOLCENGINE_CV, imagex_profile("cn-north-1")])
def test_signed_request_repr_hides_secrets(profile: SigningProfile) -> None:
    signed = signed_submit(profile)
    assert TOKEN in signed.headers[profile.token_header]
    text = repr(signed)
    assert SECRET not in text
    assert TOKEN not in text
    assert signed.signature in text


@pytest.mark.parametrize(
    ("access_key", "shown"),
    [
        ("AKLT12345678", "'AKLT…5678'"),  # 12 characters: long enough to show both ends
        ("AKLT1234567", "'…'"),
        ("A", "'…'"),
    ],
)
def test_credentials_repr_shows_a_fingerprint_of_long_keys_only(
    access_key: str, shown: str
) -> None:
    creds = Credentials(access_key=access_key, secret_key="s")
    assert repr(creds) == f"Credentials(access_key={shown}, session_token=None)"
    with_token = attrs.evolve(creds, session_token="t-123")
    assert repr(with_token) == f"Credentials(access_key={shown}, session_token=<redacted>)"


def test_signed_request_repr_redacts_only_the_token() -> None:
    signed = SignedRequest(
        headers={"Host": "h.test", "X-Security-Token": "tok-1", "X-Date": "d"},
        query="a=1",
        canonical_request="POST\n/\na=1\nhost:h.test\nx-security-token:tok-1\nx-date:d\n\nhost;x",
        string_to_sign="s",
        signature="sig",
    )
    assert repr(signed) == (
        "SignedRequest(headers={'Host': 'h.test', 'X-Security-Token': '<redacted>', "
        "'X-Date': 'd'}, query='a=1', canonical_request='POST\\n/\\na=1\\nhost:h.test\\n"
        "x-security-token:<redacted>\\nx-date:d\\n\\nhost;x', string_to_sign='s', "
        "signature='sig')"
    )


def test_a_query_with_invalid_percent_encoding_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_query("%ff=1")
    with pytest.raises(ValueError):
        parse_query("a=%ff")


def test_signature_mismatch_reads_as_its_reason() -> None:
    error = SignatureMismatch("body hash mismatch")
    assert str(error) == error.reason == "body hash mismatch"
