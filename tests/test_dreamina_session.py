"""Dreamina sessions: the Sign vectors, headers, cookies, token grammar, routing, secrets."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import pytest

import jimeng
from jimeng.backends.dreamina import _wire
from jimeng.backends.dreamina._session import (
    Router,
    cookie_header,
    parse_tokens,
    query_string,
    sign_value,
)
from jimeng.backends.dreamina._tables import REGIONS
from jimeng.backends.dreamina._versions import DEFAULT_VERSIONS, ClientVersions, coerce_versions
from jimeng.errors import ConfigurationError

# protocols/dreamina-web.md §2.1: recomputed against real browser requests (pf 7, appvr 8.4.0).
SIGN_VECTORS = [
    ("/mweb/v1/aigc_draft/generate", 1771893826, "19724735691862919106b8c4808a6ce7"),
    ("/mweb/v1/get_history_by_ids", 1771893831, "656c1e00cf94dfd5bcfaf031e32493e4"),
    ("/mweb/v1/get_history_by_ids", 1771893881, "cd10f9d7d6a45a52bc58acf278a5314c"),
    ("/commerce/v1/benefits/user_credit_history", 1771893881, "ba360efb1e59afe44e5d672d1224ec79"),
]


@pytest.mark.parametrize(("path", "device_time", "expected"), SIGN_VECTORS)
def test_sign_matches_browser_vectors(path: str, device_time: int, expected: str) -> None:
    assert sign_value(path, device_time, DEFAULT_VERSIONS) == expected
    # The query string is not part of the signed path.
    assert sign_value(path + "?aid=513695&x=1", device_time, DEFAULT_VERSIONS) == expected


def test_sign_depends_on_version_constants() -> None:
    path, device_time, expected = SIGN_VECTORS[0]
    newer = ClientVersions(app_version="8.5.0")
    assert sign_value(path, device_time, newer) != expected


def test_call_signs_each_attempt_from_the_engine_clock() -> None:
    backend = jimeng.Dreamina("sid-cn-0001", rng=random.Random(7))
    session = backend._sessions[0]
    call = _wire.credit_call(backend._context, session)
    assert call.sign is not None
    first = datetime.fromtimestamp(1771893881, timezone.utc)
    later = first + timedelta(seconds=5)
    one, two = call.sign(call, first), call.sign(call, later)
    assert one["Device-Time"] == "1771893881"
    assert two["Device-Time"] == "1771893886"
    assert one["Sign"] == sign_value(
        "/commerce/v1/benefits/user_credit", 1771893881, DEFAULT_VERSIONS
    )
    assert one["Sign"] != two["Sign"]
    assert "sessionid=sid-cn-0001" in one["Cookie"]
    # Nothing secret sits in the call's static headers or URL.
    assert "sid-cn-0001" not in repr(call)
    assert all("sid-cn-0001" not in value for value in call.headers.values())


def test_header_set_per_region() -> None:
    backend = jimeng.Dreamina("sg-sid-0001", rng=random.Random(7))
    session = backend._sessions[0]
    call = _wire.history_call(backend._context, session, "123", jimeng.TaskKind.IMAGE)
    headers = call.headers
    assert headers["Appid"] == "513641"
    assert headers["Appvr"] == "8.4.0"
    assert headers["Pf"] == "7"
    assert headers["Sign-Ver"] == "1"
    assert headers["App-Sdk-Version"] == "48.0.0"
    assert (headers["Lan"], headers["Loc"]) == ("en", "sg")
    assert headers["Origin"] == "https://mweb-api-sg.capcut.com"
    assert headers["X-Platform"] == "pc"
    assert headers["Tdid"] == ""
    assert call.url.startswith("https://mweb-api-sg.capcut.com/mweb/v1/get_history_by_ids?")
    query = dict(parse_qsl(urlsplit(call.url).query))
    assert query["region"] == "SG"
    assert "webId" not in query  # §1.2: international calls carry no webId


def test_generate_referer_is_the_sites_generate_page() -> None:
    cn = jimeng.Dreamina("sid-cn-0001")
    us = jimeng.Dreamina("us-sid-0001")
    call = _wire.generate_call(cn._context, cn._sessions[0], {}, kind=jimeng.TaskKind.IMAGE)
    assert call.headers["Referer"] == "https://jimeng.jianying.com/ai-tool/generate?type=image"
    assert call.idempotent is False
    call = _wire.generate_call(us._context, us._sessions[0], {}, kind=jimeng.TaskKind.VIDEO)
    assert call.headers["Referer"] == "https://dreamina.capcut.com/ai-tool/generate?type=video"
    assert call.headers["Origin"] == "https://dreamina-api.us.capcut.com"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "cn",
            "aid=513695&device_platform=web&region=cn&webId=7000&da_version=3.3.9&os=windows"
            "&web_component_open_flag=1&web_version=7.5.0&aigc_features=app_lip_sync",
        ),
        (
            "us",
            "aid=513641&device_platform=web&region=US&da_version=3.3.9&os=windows"
            "&web_component_open_flag=1&web_version=7.5.0&aigc_features=app_lip_sync",
        ),
        (
            "jp",
            "aid=513641&device_platform=web&region=JP&da_version=3.3.9&os=windows"
            "&web_component_open_flag=1&web_version=7.5.0&aigc_features=app_lip_sync",
        ),
    ],
)
def test_default_query(code: str, expected: str) -> None:
    assert query_string(REGIONS[code], DEFAULT_VERSIONS, web_id="7000") == expected


def test_credit_balance_call_has_no_query_string() -> None:
    backend = jimeng.Dreamina("hk-sid-0001")
    call = _wire.credit_call(backend._context, backend._sessions[0])
    assert call.url == "https://commerce-api-sg.capcut.com/commerce/v1/benefits/user_credit"


def test_cookie_string() -> None:
    cookie = cookie_header("abc123", web_id="7111", user_id="f" * 32, now=1700000000)
    assert cookie.split("; ") == [
        "_tea_web_id=7111",
        "is_staff_user=false",
        "sid_guard=abc123%7C1700000000%7C5184000%7CMon%2C+03-Feb-2025+08%3A17%3A09+GMT",
        "uid_tt=" + "f" * 32,
        "uid_tt_ss=" + "f" * 32,
        "sid_tt=abc123",
        "sessionid=abc123",
        "sessionid_ss=abc123",
    ]


@pytest.mark.parametrize(
    ("token", "region", "sid", "proxy"),
    [
        ("abcdef", "cn", "abcdef", None),
        ("us-abcdef", "us", "abcdef", None),
        ("US-abcdef", "us", "abcdef", None),
        ("hk-abcdef", "hk", "abcdef", None),
        ("Jp-abcdef", "jp", "abcdef", None),
        ("sg-abcdef", "sg", "abcdef", None),
        ("  sg-abcdef ", "sg", "abcdef", None),
        ("http://127.0.0.1:8080@us-abcdef", "us", "abcdef", "http://127.0.0.1:8080"),
        # Split at the LAST "@": proxy credentials may contain one.
        ("http://u:p@proxy:3128@abcdef", "cn", "abcdef", "http://u:p@proxy:3128"),
        ("https://proxy:443@hk-abcdef", "hk", "abcdef", "https://proxy:443"),
    ],
)
def test_token_grammar(token: str, region: str, sid: str, proxy: str | None) -> None:
    (session,) = parse_tokens(token)
    assert (session.region.code, session.sid, session.proxy) == (region, sid, proxy)


def test_token_lists() -> None:
    sessions = parse_tokens("Bearer us-aaaa, bbbb,,hk-cccc, us-aaaa")
    assert [(s.region.code, s.sid) for s in sessions] == [
        ("us", "aaaa"),
        ("cn", "bbbb"),
        ("hk", "cccc"),
    ]
    assert [s.sid for s in parse_tokens(["us-aaaa", "bbbb,cccc"])] == ["aaaa", "bbbb", "cccc"]


@pytest.mark.parametrize(
    "token", ["", " , ", "us-", "socks5://127.0.0.1:1080@abcdef", "http://proxy-without-at"]
)
def test_bad_tokens(token: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_tokens(token)


def test_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIMENG_SESSION_ID", "us-env0001,env0002")
    backend = jimeng.Dreamina()
    assert [label.split()[0] for label in backend.sessions] == ["us", "cn"]
    monkeypatch.setenv("JIMENG_BACKEND", "dreamina")
    assert isinstance(jimeng.backend_from_env(), jimeng.Dreamina)
    monkeypatch.delenv("JIMENG_SESSION_ID")
    with pytest.raises(ConfigurationError, match="JIMENG_SESSION_ID"):
        jimeng.Dreamina()


def test_per_token_proxy_goes_on_every_call() -> None:
    backend = jimeng.Dreamina("http://127.0.0.1:3128@us-aaaa0001,bbbb0002")
    proxied, direct = backend._sessions
    assert _wire.credit_call(backend._context, proxied).proxy == "http://127.0.0.1:3128"
    assert _wire.upload_token_call(backend._context, proxied).proxy == "http://127.0.0.1:3128"
    assert _wire.fetch_call("https://example.com/a.png", proxied).proxy == "http://127.0.0.1:3128"
    assert _wire.credit_call(backend._context, direct).proxy is None


def test_secrets_stay_out_of_repr_describe_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret = "canarysessionid0123456789"
    backend = jimeng.Dreamina(f"http://user:pw@proxy:3128@us-{secret}")
    text = repr(backend) + repr(backend.describe()) + repr(backend._sessions)
    assert secret not in text
    assert "pw@proxy" not in text
    assert backend._sessions[0].fingerprint in repr(backend)
    with caplog.at_level(logging.DEBUG, logger="jimeng"):
        logging.getLogger("jimeng").info("token is %s", secret)
    assert secret not in caplog.text


def test_versions_override() -> None:
    assert coerce_versions({"app_version": "9.0.0"}).app_version == "9.0.0"
    assert coerce_versions({"app_version": "9.0.0"}).da_version == DEFAULT_VERSIONS.da_version
    with pytest.raises(ConfigurationError, match="unknown Dreamina version field"):
        coerce_versions({"appvr": "9.0.0"})
    backend = jimeng.Dreamina("abcdef", versions={"app_version": "9.0.0"})
    call = _wire.credit_call(backend._context, backend._sessions[0])
    assert call.headers["Appvr"] == "9.0.0"


def test_router() -> None:
    router = Router({"*": "http://127.0.0.1:9/_dreamina/{host}"})
    assert (
        router.route("https://jimeng.jianying.com/mweb/v1/x?a=1")
        == "http://127.0.0.1:9/_dreamina/jimeng.jianying.com/mweb/v1/x?a=1"
    )
    exact = Router({"https://jimeng.jianying.com": "http://127.0.0.1:9/cn"})
    assert exact.route("https://jimeng.jianying.com/a") == "http://127.0.0.1:9/cn/a"
    assert exact.route("https://other.example/a") == "https://other.example/a"
    with pytest.raises(ConfigurationError, match="plain http"):
        jimeng.Dreamina("abcdef", base_urls={"*": "http://example.com/{host}"})
