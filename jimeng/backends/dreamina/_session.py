"""Sessions: the token grammar, cookies, the ``Sign`` header and where each call goes.

protocols/dreamina-web.md §1 (hosts, query), §2 (headers, Sign, cookies, token grammar). Session
ids are secrets: they live only in :class:`Session` (hidden from ``repr``) and in the Cookie
header built per attempt; everything else names a session by its fingerprint.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import urlencode

import attrs
from yarl import URL

from jimeng import _logging
from jimeng.backends.dreamina._tables import REGIONS, Region
from jimeng.backends.dreamina._versions import ClientVersions
from jimeng.errors import ConfigurationError

__all__ = [
    "Router",
    "Session",
    "cookie_header",
    "device_ids",
    "parse_tokens",
    "query_string",
    "sign_headers",
    "sign_value",
    "web_headers",
]

_PROXY_SCHEMES = ("http://", "https://", "socks4://", "socks5://", "socks://")
_REGION_PREFIXES = ("us-", "hk-", "jp-", "sg-")


@attrs.frozen(kw_only=True)
class Session:
    """One browser session: its id (secret), site and optional proxy."""

    sid: str = attrs.field(repr=False)
    region: Region = attrs.field(repr=lambda region: repr(region.code))
    proxy: str | None = attrs.field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        """``…1a2b3c4d``: safe in logs, errors and task references."""
        return _logging.fingerprint(self.sid)

    @property
    def key(self) -> str:
        """The fingerprint's hex part (used in task references)."""
        return self.fingerprint.lstrip("…")

    def label(self) -> str:
        return f"{self.region.code} {self.fingerprint}"


def _parse_one(token: str) -> Session:
    proxy: str | None = None
    text = token.strip()
    # §2.4: a token that starts with a proxy scheme is split at the LAST "@".
    if text.lower().startswith(_PROXY_SCHEMES):
        proxy, sep, text = text.rpartition("@")
        if not sep or not proxy:
            raise ConfigurationError("a proxied token needs the form proxyURL@[region-]sessionid")
        if proxy.lower().startswith("socks"):
            raise ConfigurationError(
                "SOCKS proxies are not supported (aiohttp speaks HTTP(S) proxies only); "
                "use an http:// or https:// proxy in front of the session id"
            )
        proxy = proxy.strip()
        text = text.strip()
    region = REGIONS["cn"]
    lowered = text.lower()
    # §2.4: case-insensitive prefix, then the first 3 characters are dropped; none means CN.
    if lowered.startswith(_REGION_PREFIXES):
        region = REGIONS[lowered[:2]]
        text = text[3:]
    if not text:
        raise ConfigurationError("a Dreamina token has no session id after its region prefix")
    if any(ch in text for ch in ";,\r\n \t"):
        raise ConfigurationError(
            "a Dreamina session id cannot contain spaces, commas or semicolons"
        )
    return Session(sid=text, region=region, proxy=proxy)


def parse_tokens(tokens: str | Sequence[str]) -> list[Session]:
    """``"us-aaa,bbb"`` or ``["us-aaa", "http://proxy:8080@hk-ccc"]`` → sessions, in order.

    Empty entries are dropped (as MCP does), a ``Bearer `` prefix is tolerated (IPT
    ``tokenSplit``), duplicates are kept once. Every id and proxy is registered as a secret.
    """
    raw = [tokens] if isinstance(tokens, str) else list(tokens)
    pieces: list[str] = []
    for item in raw:
        item = item.strip()
        if item[:7].lower() == "bearer ":
            item = item[7:]
        pieces.extend(part for part in item.split(",") if part.strip())
    sessions: list[Session] = []
    seen: set[tuple[str, str]] = set()
    for piece in pieces:
        _logging.register_secret(piece.strip())
        session = _parse_one(piece)
        _logging.register_secret(session.sid)
        _logging.register_secret(session.proxy)
        if (session.region.code, session.sid) not in seen:
            seen.add((session.region.code, session.sid))
            sessions.append(session)
    if not sessions:
        raise ConfigurationError(
            "no Dreamina session id: pass tokens ('[proxy@][us-|hk-|jp-|sg-]sessionid', "
            "comma-separated) or set JIMENG_SESSION_ID"
        )
    return sessions


def device_ids(rng: random.Random) -> tuple[str, str]:
    """A ``webId`` ('7' + 18 digits, like the browser's, §1.4) and a 32-hex ``uid_tt``."""
    web_id = "7" + "".join(str(rng.randrange(10)) for _ in range(18))
    return web_id, f"{rng.getrandbits(128):032x}"


# -- signing and headers ---------------------------------------------------------------------


def sign_value(path: str, device_time: int, versions: ClientVersions) -> str:
    """§2.1: md5 hex of ``9e2c|<last 7 of path>|<pf>|<appvr>|<device time>||11ac``."""
    path = path.split("?", 1)[0]
    text = (
        f"{versions.sign_prefix}|{path[-7:]}|{versions.platform}|{versions.app_version}"
        f"|{device_time}||{versions.sign_suffix}"
    )
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def cookie_header(sid: str, *, web_id: str, user_id: str, now: int) -> str:
    """§2.3 (IPT ``generateCookie``); no ``store-region`` cookies, as IPT."""
    return "; ".join(
        (
            f"_tea_web_id={web_id}",
            "is_staff_user=false",
            f"sid_guard={sid}%7C{now}%7C5184000%7CMon%2C+03-Feb-2025+08%3A17%3A09+GMT",
            f"uid_tt={user_id}",
            f"uid_tt_ss={user_id}",
            f"sid_tt={sid}",
            f"sessionid={sid}",
            f"sessionid_ss={sid}",
        )
    )


def sign_headers(
    *,
    path: str,
    now: datetime,
    session: Session,
    versions: ClientVersions,
    web_id: str,
    user_id: str,
) -> dict[str, str]:
    """The per-attempt headers: Device-Time and Sign from ``now``, and the Cookie."""
    device_time = int(now.timestamp())
    return {
        "Device-Time": str(device_time),
        "Sign": sign_value(path, device_time, versions),
        "Cookie": cookie_header(session.sid, web_id=web_id, user_id=user_id, now=device_time),
    }


def web_headers(
    region: Region, versions: ClientVersions, *, origin: str, referer: str
) -> dict[str, str]:
    """§2.2 header set, minus the per-attempt ones (:func:`sign_headers`)."""
    return {
        "Accept": "application/json, text/plain, */*",
        # §2.2 lists br/zstd too; aiohttp decodes only what is installed, so ask for what it reads.
        "Accept-Encoding": "gzip, deflate",
        "Accept-Language": "zh-CN,zh;q=0.9",
        "Cache-Control": "no-cache",
        "Pragma": "no-cache",
        "Priority": "u=1, i",
        "Content-Type": "application/json",
        "Appvr": versions.app_version,
        "Pf": versions.platform,
        "Sec-Ch-Ua": versions.sec_ch_ua,
        "Sec-Ch-Ua-Mobile": "?0",
        "Sec-Ch-Ua-Platform": '"Windows"',
        "Sec-Fetch-Dest": "empty",
        "Sec-Fetch-Mode": "cors",
        "Sec-Fetch-Site": "same-origin",
        "User-Agent": versions.user_agent,
        "Origin": origin,
        "Referer": referer,
        "App-Sdk-Version": versions.sdk_version,
        "Appid": str(region.aid),
        "Lan": region.lan,
        "Loc": region.loc,
        "Sign-Ver": "1",
        "Tdid": "",
    }


def query_string(
    region: Region,
    versions: ClientVersions,
    *,
    web_id: str,
    extra: Mapping[str, str] | None = None,
) -> str:
    """§1.2 default query (browser order), call-specific parameters merged on top."""
    pairs: dict[str, str] = {
        "aid": str(region.aid),
        "device_platform": "web",
        "region": region.query_region,
    }
    if region.sends_web_id:
        pairs["webId"] = web_id
    pairs.update(
        {
            "da_version": versions.da_version,
            "os": "windows",
            "web_component_open_flag": "1",
            "web_version": versions.web_version,
            "aigc_features": "app_lip_sync",
        }
    )
    pairs.update(extra or {})
    return urlencode(list(pairs.items()))


# -- routing ------------------------------------------------------------------------------------


@attrs.frozen
class Router:
    """Where an upstream URL is really sent.

    ``base_urls`` maps a real origin (``"https://jimeng.jianying.com"``) to a replacement base
    URL, or ``"*"`` to a template with ``{host}`` applied to every upstream origin (the sandbox
    uses ``{"*": "http://127.0.0.1:PORT/_dreamina/{host}"}`` to answer every region on
    loopback). Headers keep the real origin, so only the transport address changes.
    """

    base_urls: Mapping[str, str] = attrs.field(factory=dict)

    def route(self, url: str) -> str:
        if not self.base_urls:
            return url
        parsed = URL(url, encoded=True)
        origin = f"{parsed.scheme}://{parsed.raw_authority}"
        rest = url[len(origin) :]
        if origin in self.base_urls:
            return self.base_urls[origin].rstrip("/") + rest
        template = self.base_urls.get("*")
        if template is not None:
            return template.replace("{host}", parsed.raw_authority).rstrip("/") + rest
        return url
