"""V4 HMAC-SHA256 request signing, shared by Volcengine and ImageX (AWS SigV4) uploads.

Every stage of the scheme is its own pure function so that tests can pin each one against the
vectors in ``protocols/volcengine-signing-vectors.json`` and a failure names the stage that
diverged. The two flavours differ only in the :class:`SigningProfile` they pass around.

Nothing here reads the clock, the environment or the network: :func:`sign` takes ``now`` and
returns a :class:`SignedRequest`; :func:`verify` is the server side used by the offline sandbox.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Literal, TypeAlias
from urllib.parse import quote, unquote_plus

import attrs

__all__ = [
    "VOLCENGINE_CV",
    "Credentials",
    "ParsedAuthorization",
    "QueryInput",
    "SignatureMismatch",
    "SignedRequest",
    "SigningProfile",
    "authorization_header",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "credential_scope",
    "format_x_date",
    "hash_payload",
    "imagex_profile",
    "parse_authorization",
    "parse_query",
    "select_signed_headers",
    "sign",
    "sign_headers",
    "signature",
    "signing_key_chain",
    "string_to_sign",
    "verify",
]

QueryInput: TypeAlias = Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]]

_AUTHORIZATION = "authorization"
_REDACTED = "<redacted>"


def _fingerprint(access_key: str) -> str:
    # Enough to tell two keys apart in a log, too little to be the key.
    if len(access_key) >= 12:
        return repr(f"{access_key[:4]}…{access_key[-4:]}")
    return repr("…")


def _token_repr(token: str | None) -> str:
    return "None" if token is None else _REDACTED


@attrs.frozen(kw_only=True)
class Credentials:
    """An access key pair, optionally with an STS session token.

    ``repr`` shows only a fingerprint of the access key and never the secret or the token.
    """

    access_key: str = attrs.field(repr=_fingerprint, validator=attrs.validators.min_len(1))
    secret_key: str = attrs.field(repr=False, validator=attrs.validators.min_len(1))
    session_token: str | None = attrs.field(default=None, repr=_token_repr)


@attrs.frozen(kw_only=True, cache_hash=True)
class SigningProfile:
    """Everything that differs between the Volcengine and AWS flavours of the V4 scheme."""

    region: str
    service: str
    algorithm: str = "HMAC-SHA256"
    key_prefix: str = ""
    terminator: str = "request"
    date_header: str = "X-Date"
    content_hash_header: str = "X-Content-Sha256"
    token_header: str = "X-Security-Token"
    # "volcengine": Content-Type, Content-Md5, Host, all X-* (protocols/volcengine.md §1.1 step 6);
    # "amz": only the date, token and content-hash headers (protocols/dreamina-web.md §4.2).
    header_rule: Literal["volcengine", "amz"] = "volcengine"


# protocols/volcengine.md §0: region and service are fixed for the visual API.
VOLCENGINE_CV = SigningProfile(region="cn-north-1", service="cv")


def imagex_profile(region: str, service: str = "imagex") -> SigningProfile:
    """The AWS SigV4 flavour of ImageX (or ``vod``) uploads (protocols/dreamina-web.md §4.2)."""
    return SigningProfile(
        region=region,
        service=service,
        algorithm="AWS4-HMAC-SHA256",
        key_prefix="AWS4",
        terminator="aws4_request",
        date_header="x-amz-date",
        content_hash_header="x-amz-content-sha256",
        token_header="x-amz-security-token",
        header_rule="amz",
    )


# --- stages ------------------------------------------------------------------------------------


def _as_utc(moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def format_x_date(moment: datetime) -> str:
    """``20250101T000000Z``; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is not timezone.utc:
        moment = _as_utc(moment)
    # Formatted by hand: strftime("%Y") does not zero-pad years below 1000 on glibc.
    return (
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}"
        f"T{moment.hour:02d}{moment.minute:02d}{moment.second:02d}Z"
    )


def canonical_uri(path: str) -> str:
    # protocols/volcengine.md §1.2: quote the path, keep "/", empty path means "/".
    return quote(path or "/", safe="/")


def _quote(value: str) -> str:
    # protocols/volcengine.md §1.3: RFC 3986 unreserved set only, space as %20, UTF-8 bytes.
    return quote(value, safe="-_.~")


def canonical_query(query: QueryInput) -> str:
    """The canonical query string, which is also exactly what goes into the URL.

    Pairs are sorted by raw key in code-point order; values of a repeated key keep the order given
    (protocols/volcengine.md §1.3).
    """
    pairs: list[tuple[str, str]] = []
    if isinstance(query, Mapping):
        for key, value in query.items():
            if isinstance(value, str):
                pairs.append((key, value))
            else:
                pairs.extend((key, item) for item in value)
    else:
        pairs.extend(query)
    # sorted() is stable, so repeated keys keep their given order.
    pairs.sort(key=lambda pair: pair[0])
    return "&".join(f"{_quote(key)}={_quote(value)}" for key, value in pairs)


def parse_query(raw: str) -> list[tuple[str, str]]:
    """Split a received query string into decoded pairs, in the order they arrived.

    ``+`` decodes to a space because the official SDK sends form encoding while signing %20
    (protocols/volcengine.md §1.3, vector v3); a canonical string never contains a raw ``+``.
    Raises ``ValueError`` if an escape does not decode as UTF-8.
    """
    raw = raw.removeprefix("?")
    pairs: list[tuple[str, str]] = []
    for part in raw.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote_plus(key, errors="strict"), unquote_plus(value, errors="strict")))
    return pairs


@functools.lru_cache(maxsize=256)
def _canonical_raw(raw: str) -> str:
    return canonical_query(parse_query(raw))


def hash_payload(body: bytes) -> str:
    # protocols/volcengine.md §1.1 step 5: hex SHA-256 of the exact bytes sent.
    return hashlib.sha256(body).hexdigest()


def select_signed_headers(headers: Mapping[str, str], profile: SigningProfile) -> list[str]:
    """Lowercased, sorted, de-duplicated names of the headers that get signed."""
    names = {name.lower() for name in headers}
    if profile.header_rule == "amz":
        # protocols/dreamina-web.md §4.2: ImageX signs only the x-amz-* date/token/hash headers.
        wanted = {
            profile.date_header.lower(),
            profile.token_header.lower(),
            profile.content_hash_header.lower(),
        }
        chosen = names & wanted
    else:
        # protocols/volcengine.md §1.1 step 6, but case-insensitive (the SDK is not: §6 item 7).
        chosen = {
            name
            for name in names
            if name in ("content-type", "content-md5", "host") or name.startswith("x-")
        }
    return sorted(chosen)


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    # First occurrence wins, as with CIMultiDict.__getitem__.
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), value)
    return lowered


def _canonical_value(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"header {name} contains a line break")
    # protocols/volcengine.md §1.1 step 6: the doc says trim, as HTTP parsers do on receipt.
    value = value.strip()
    if name == "host":
        # protocols/volcengine.md §1.1 step 6: default ports are not part of the signed host.
        host, sep, port = value.rpartition(":")
        if sep and port in ("80", "443"):
            value = host
    return value


def canonical_headers(headers: Mapping[str, str], signed: Sequence[str]) -> str:
    """``name:value\\n`` for each signed header, in the order of ``signed``."""
    lowered = _lowered(headers)
    lines = []
    for name in signed:
        key = name.lower()
        if key not in lowered:
            raise ValueError(f"missing header {key}")
        lines.append(f"{name}:{_canonical_value(key, lowered[key])}\n")
    return "".join(lines)


def canonical_request(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed: Sequence[str],
    payload_hash: str,
) -> str:
    # protocols/volcengine.md §1.1 step 9: the header block ends in "\n", so a blank line follows.
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            query,
            canonical_headers(headers, signed),
            ";".join(signed),
            payload_hash,
        )
    )


def credential_scope(date: str, profile: SigningProfile) -> str:
    return f"{date}/{profile.region}/{profile.service}/{profile.terminator}"


def string_to_sign(
    *, profile: SigningProfile, x_date: str, scope: str, canonical_request: str
) -> str:
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{profile.algorithm}\n{x_date}\n{scope}\n{digest}"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


@functools.lru_cache(maxsize=64)
def signing_key_chain(
    secret_key: str, date: str, profile: SigningProfile
) -> tuple[bytes, bytes, bytes, bytes]:
    """``(kDate, kRegion, kService, kSigning)``.

    The secret is used as its literal UTF-8 text, never base64-decoded
    (protocols/volcengine.md §1.1 step 11). Cached: the key only changes with the date.
    """
    k_date = _hmac((profile.key_prefix + secret_key).encode("utf-8"), date)
    k_region = _hmac(k_date, profile.region)
    k_service = _hmac(k_region, profile.service)
    k_signing = _hmac(k_service, profile.terminator)
    return k_date, k_region, k_service, k_signing


def signature(signing_key: bytes, string_to_sign: str) -> str:
    return hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(
    *, profile: SigningProfile, access_key: str, scope: str, signed: Sequence[str], signature: str
) -> str:
    # protocols/volcengine.md §1.1 step 13: one space after the algorithm, ", " between parts.
    return (
        f"{profile.algorithm} Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}"
    )


# --- signing -----------------------------------------------------------------------------------


def _is_token_header(name: str) -> bool:
    return name.lower().endswith("security-token")


def _redact_headers(headers: dict[str, str]) -> str:
    shown = {
        name: _REDACTED if _is_token_header(name) else value for name, value in headers.items()
    }
    return repr(shown)


def _redact_canonical(text: str) -> str:
    lines = []
    for line in text.split("\n"):
        name, sep, _ = line.partition(":")
        lines.append(f"{name}:{_REDACTED}" if sep and _is_token_header(name) else line)
    return repr("\n".join(lines))


@attrs.frozen(kw_only=True)
class SignedRequest:
    """The result of :func:`sign`: what to send, plus every intermediate worth debugging.

    ``repr`` hides the session token (in ``headers`` and ``canonical_request``); the secret key
    never reaches this object.
    """

    headers: dict[str, str] = attrs.field(repr=_redact_headers)
    query: str
    canonical_request: str = attrs.field(repr=_redact_canonical)
    string_to_sign: str
    signature: str


def _sends_content_hash(body: bytes, profile: SigningProfile) -> bool:
    if profile.header_rule == "volcengine":
        # protocols/volcengine.md §1.4: the official SDK always sends and signs it.
        return True
    # protocols/dreamina-web.md §4.2: sent only with a body; an empty body hashes implicitly.
    return bool(body)


#: Stand-ins for the per-attempt values while a plan is built (no header may hold a NUL).
_DATE_SLOT = "\x00date\x00"
_HASH_SLOT = "\x00hash\x00"


@attrs.frozen(repr=False)
class _Plan:
    """What does not change between attempts of one request shape: the headers to send besides
    the per-attempt ones, the canonical request as a template (``{0}`` the date, ``{1}`` the
    payload hash) and the signed header names. No ``repr`` of its fields: the template holds
    the session token when there is one."""

    static: tuple[tuple[str, str], ...]
    added: tuple[tuple[str, str], ...]
    template: str
    signed: tuple[str, ...]
    sends_hash: bool


@functools.lru_cache(maxsize=256)
def _plan(
    method: str,
    host: str,
    path: str,
    query: str,
    headers: tuple[tuple[str, str], ...],
    profile: SigningProfile,
    token: str | None,
    sends_hash: bool,
) -> _Plan:
    replaced = {
        _AUTHORIZATION,
        profile.date_header.lower(),
        profile.content_hash_header.lower(),
        profile.token_header.lower(),
    }
    static = {name: value for name, value in headers if name.lower() not in replaced}
    for name, value in static.items():
        if "\x00" in value:  # never valid in HTTP, and the stand-ins below are made of it
            raise ValueError(f"header {name.lower()} contains a NUL character")
    added: dict[str, str] = {}
    if not any(name.lower() == "host" for name in static):
        added["Host"] = host
        static = {"Host": host, **static}
    out = dict(static)
    out[profile.date_header] = _DATE_SLOT
    if sends_hash:
        out[profile.content_hash_header] = _HASH_SLOT
    if token:
        # protocols/volcengine.md §1.6: the STS token is sent and signed.
        out[profile.token_header] = token
    signed = select_signed_headers(out, profile)
    creq = canonical_request(
        method=method,
        path=path,
        query=query,
        headers=out,
        signed=signed,
        payload_hash=_HASH_SLOT,
    )
    template = (
        creq.replace("{", "{{")
        .replace("}", "}}")
        .replace(_DATE_SLOT, "{0}")
        .replace(_HASH_SLOT, "{1}")
    )
    return _Plan(
        static=tuple(static.items()),
        added=tuple(added.items()),
        template=template,
        signed=tuple(signed),
        sends_hash=sends_hash,
    )


def _attempt(
    plan: _Plan,
    out: dict[str, str],
    *,
    body: bytes,
    credentials: Credentials,
    profile: SigningProfile,
    now: datetime,
) -> tuple[str, str, str]:
    """Add this attempt's date, hash and ``Authorization`` to ``out``; return the canonical
    request, the string to sign and the signature."""
    x_date = format_x_date(now)
    payload_hash = hash_payload(body)
    out[profile.date_header] = x_date
    if plan.sends_hash:
        out[profile.content_hash_header] = payload_hash
    if credentials.session_token:
        out[profile.token_header] = credentials.session_token
    creq = plan.template.format(x_date, payload_hash)
    # protocols/volcengine.md §1.5: the scope date is the first 8 characters of the same reading.
    date = x_date[:8]
    scope = credential_scope(date, profile)
    sts = string_to_sign(profile=profile, x_date=x_date, scope=scope, canonical_request=creq)
    _, _, _, k_signing = signing_key_chain(credentials.secret_key, date, profile)
    sig = signature(k_signing, sts)
    out["Authorization"] = authorization_header(
        profile=profile,
        access_key=credentials.access_key,
        scope=scope,
        signed=plan.signed,
        signature=sig,
    )
    return creq, sts, sig


def _plan_for(
    method: str,
    host: str,
    path: str,
    query: QueryInput | str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    profile: SigningProfile,
) -> tuple[_Plan, str]:
    """The (cached) plan of this request shape, and its canonical query string."""
    query_string = _canonical_raw(query) if isinstance(query, str) else canonical_query(query)
    token = credentials.session_token
    shape = (method, host, path, query_string, tuple(headers.items()), profile, token)
    return _plan(*shape, _sends_content_hash(body, profile)), query_string


def sign(
    *,
    method: str,
    host: str,
    path: str,
    query: QueryInput | str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    profile: SigningProfile,
    now: datetime,
) -> SignedRequest:
    """Sign one request attempt.

    ``query`` is pairs/a mapping, or the raw query string of the URL about to be sent (decoded
    and re-canonicalised, cached: a client sends the same few Action/Version queries again and
    again).

    Stale ``Authorization``, date, content-hash and token headers from an earlier attempt are
    dropped first. ``Host`` is added from ``host`` unless present. Send ``SignedRequest.query``
    verbatim (already encoded) so the request sent is the request signed.

    What does not change between attempts (the canonical headers but the date and the payload
    hash, the signed header names) is worked out once per request shape and cached; every
    attempt still gets its own date, payload hash and signature.
    """
    plan, query_string = _plan_for(method, host, path, query, headers, body, credentials, profile)
    out = dict(plan.static)
    creq, sts, sig = _attempt(
        plan, out, body=body, credentials=credentials, profile=profile, now=now
    )
    return SignedRequest(
        headers=out, query=query_string, canonical_request=creq, string_to_sign=sts, signature=sig
    )


def sign_headers(
    *,
    method: str,
    host: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    profile: SigningProfile,
    now: datetime,
) -> dict[str, str]:
    """The headers :func:`sign` adds to ``headers`` (``Host`` when absent, the date, payload
    hash, token and ``Authorization``), for a transport that sends the others already.
    ``query`` must be the URL's query string in canonical form (``ValueError`` if not): the
    query sent is then byte for byte the query signed."""
    plan, query_string = _plan_for(method, host, path, query, headers, body, credentials, profile)
    if query_string != query:
        raise ValueError("the URL query is not in canonical form")
    out = dict(plan.added)
    _attempt(plan, out, body=body, credentials=credentials, profile=profile, now=now)
    return out


# --- verification (server side) ----------------------------------------------------------------


class SignatureMismatch(ValueError):
    """A request failed verification; ``reason`` is safe to show (it never holds a secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@attrs.frozen
class ParsedAuthorization:
    algorithm: str
    access_key: str
    date: str
    region: str
    service: str
    terminator: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> ParsedAuthorization:
    """Parse ``ALG Credential=AK/DATE/REGION/SERVICE/TERM, SignedHeaders=a;b, Signature=hex``."""
    algorithm, sep, rest = value.strip().partition(" ")
    if not sep or not algorithm:
        raise ValueError("authorization header has no algorithm")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, eq, val = item.strip().partition("=")
        if not eq or key in parts:
            raise ValueError("authorization header is malformed")
        parts[key] = val
    if set(parts) != {"Credential", "SignedHeaders", "Signature"}:
        raise ValueError("authorization header needs Credential, SignedHeaders and Signature")
    # rsplit: the scope has exactly four parts after the access key.
    credential = parts["Credential"].rsplit("/", 4)
    if len(credential) != 5 or not all(credential):
        raise ValueError("authorization credential is malformed")
    access_key, date, region, service, terminator = credential
    if len(date) != 8 or not date.isascii() or not date.isdigit():
        raise ValueError("authorization credential date is not YYYYMMDD")
    signed = tuple(parts["SignedHeaders"].split(";"))
    if not all(name and name == name.lower() for name in signed):
        raise ValueError("authorization signed headers must be non-empty lowercase names")
    sig = parts["Signature"]
    if len(sig) != 64 or any(ch not in "0123456789abcdef" for ch in sig):
        raise ValueError("authorization signature is not 64 lowercase hex digits")
    return ParsedAuthorization(
        algorithm, access_key, date, region, service, terminator, signed, sig
    )


def _parse_x_date(x_date: str) -> datetime:
    if len(x_date) != 16:  # strptime alone would accept unpadded fields
        raise ValueError(x_date)
    return datetime.strptime(x_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)


def verify(
    *,
    method: str,
    path: str,
    query: str | QueryInput,
    headers: Mapping[str, str],
    body: bytes,
    secret_key_for: Callable[[str], str | None],
    profile: SigningProfile,
    now: datetime | None = None,
    max_skew: timedelta = timedelta(minutes=15),
) -> ParsedAuthorization:
    """Check a received request's signature the way the gateway would.

    ``query`` is normally the raw query string as received; it is decoded into pairs in arrival
    order and re-canonicalised. Header names are matched case-insensitively. When ``now`` is given,
    a date header further than ``max_skew`` from it is rejected (protocols/volcengine.md §1.5).
    Raises :class:`SignatureMismatch` with a reason.
    """
    received = _lowered(headers)
    if _AUTHORIZATION not in received:
        raise SignatureMismatch("missing header authorization")
    try:
        parsed = parse_authorization(received[_AUTHORIZATION])
    except ValueError as exc:
        raise SignatureMismatch(f"malformed authorization: {exc}") from None
    if parsed.algorithm != profile.algorithm:
        raise SignatureMismatch("unsupported algorithm")
    if (parsed.region, parsed.service, parsed.terminator) != (
        profile.region,
        profile.service,
        profile.terminator,
    ):
        raise SignatureMismatch("credential scope does not match")
    secret = secret_key_for(parsed.access_key)
    if secret is None:
        raise SignatureMismatch("unknown access key")

    date_name = profile.date_header.lower()
    if date_name not in received:
        raise SignatureMismatch(f"missing header {date_name}")
    required = [date_name, profile.token_header.lower()]
    if profile.header_rule == "volcengine":
        # protocols/volcengine.md §1.1 step 6: host and x-date must be signed when present.
        required.append("host")
    for name in required:
        if name in received and name not in parsed.signed_headers:
            raise SignatureMismatch(f"header {name} is not signed")
    for name in parsed.signed_headers:
        if name not in received:
            raise SignatureMismatch(f"missing header {name}")

    x_date = received[date_name].strip()
    try:
        moment = _parse_x_date(x_date)
    except ValueError:
        raise SignatureMismatch(f"malformed {date_name}") from None
    if x_date[:8] != parsed.date:
        raise SignatureMismatch(f"credential date does not match {date_name}")
    if now is not None and abs(_as_utc(now) - moment) > max_skew:
        raise SignatureMismatch(f"{date_name} is outside the allowed clock skew")

    payload_hash = hash_payload(body)
    hash_name = profile.content_hash_header.lower()
    if hash_name in received and received[hash_name].strip() != payload_hash:
        raise SignatureMismatch("body hash mismatch")

    if isinstance(query, str):
        try:
            query = parse_query(query)
        except ValueError:
            raise SignatureMismatch("malformed query string") from None
    try:
        creq = canonical_request(
            method=method,
            path=path,
            query=canonical_query(query),
            headers=received,
            signed=parsed.signed_headers,
            payload_hash=payload_hash,
        )
    except ValueError as exc:
        raise SignatureMismatch(str(exc)) from None
    scope = credential_scope(parsed.date, profile)
    sts = string_to_sign(profile=profile, x_date=x_date, scope=scope, canonical_request=creq)
    _, _, _, k_signing = signing_key_chain(secret, parsed.date, profile)
    if not hmac.compare_digest(signature(k_signing, sts), parsed.signature):
        raise SignatureMismatch("signature does not match")
    return parsed
