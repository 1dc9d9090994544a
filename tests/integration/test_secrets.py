"""A canary secret never appears in any log record, repr, exception or saved file."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pytest

import jimeng
from jimeng.sandbox import Sandbox, SandboxServer, Stages
from jimeng.sandbox._volcengine import VolcengineProtocol
from tests.conftest import Sleeps

CANARY_AK = "AKLTcanaryAccessKey7f3a9"
CANARY_SK = "canary-secret-key-41d2e8"
CANARY_TOKEN = "canary-sts-token-9b7c11"
CANARIES = (CANARY_AK, CANARY_SK, CANARY_TOKEN)


def assert_clean(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"{where} leaks a secret"


async def test_canary_secret_never_leaks(
    caplog: pytest.LogCaptureFixture, sleeps: Sleeps, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG, logger="jimeng")
    server = SandboxServer(stages=Stages(queue_polls=1))
    server.mount(VolcengineProtocol(credentials={CANARY_AK: CANARY_SK}))
    texts: list[tuple[str, str]] = []
    async with server:
        backend = jimeng.Volcengine(
            access_key=CANARY_AK,
            secret_key=CANARY_SK,
            session_token=CANARY_TOKEN,
            endpoint=server.url,
        )
        texts.append(("backend repr", repr(backend)))
        async with jimeng.Client(backend, sleep=sleeps) as client:
            texts.append(("client repr", repr(client)))
            server.inject("submit", "http", status=429, code=50429)
            task = await client.images.submit("a cat", size="1K")
            texts.append(("handle repr", repr(task)))
            texts.append(("task repr", repr(task.task)))
            result = await task.result()
            texts.append(("result repr", repr(result)))
            paths = await result.save(tmp_path)
            server.inject("poll", "http", status=400, code=50511, times=1)
            failing = await client.images.submit("a dog", size="1K")
            with pytest.raises(jimeng.ContentPolicyError) as caught:
                await failing.result()
            texts.append(("error", str(caught.value)))
            texts.append(("error repr", repr(caught.value)))
            texts.append(("traceback", "".join(traceback.format_exception(caught.value))))
            texts.append(("error body", repr(caught.value.body)))

        wrong = jimeng.Volcengine(access_key=CANARY_AK, secret_key="wrong", endpoint=server.url)
        async with jimeng.Client(wrong, sleep=sleeps) as client:
            with pytest.raises(jimeng.AuthenticationError) as auth:
                await client.images.generate("a cat")
            texts.append(("auth error", str(auth.value)))
            texts.append(("auth body", repr(auth.value.body)))

    for record in caplog.records:
        texts.append(("log message", record.getMessage()))
        if record.exc_info:
            texts.append(("log traceback", "".join(traceback.format_exception(*record.exc_info))))
    assert any(where == "log message" for where, _ in texts), "debug logging produced nothing"
    for where, text in texts:
        assert_clean(text, where)
    for path in paths:
        data = path.read_bytes()
        for canary in CANARIES:
            assert canary.encode() not in data


def test_logger_redacts_registered_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jimeng")
    jimeng.Volcengine(access_key=CANARY_AK, secret_key=CANARY_SK)
    logging.getLogger("jimeng").info("oops %s then %s", CANARY_SK, CANARY_AK)
    assert caplog.records[-1].getMessage() == "oops <redacted> then <redacted>"


def test_sandbox_backend_repr_has_no_secret() -> None:
    text = repr(Sandbox()) + repr(jimeng.Client(Sandbox()))
    assert jimeng.sandbox.SANDBOX_SECRET_KEY not in text
