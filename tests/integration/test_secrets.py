"""A canary secret never appears in any log record, repr, exception or saved file."""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path

import pytest

import jimeng
from jimeng._http import Response
from jimeng.backends.volcengine._errors import error_for as volcengine_error_for
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


def chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception behind it (``__cause__`` and ``__context__``)."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        pending += [current.__cause__, current.__context__]
    return seen


def exception_texts(error: BaseException, where: str) -> list[tuple[str, str]]:
    """Everything an exception stores, for each exception of its chain: message, args, repr,
    traceback and ``vars()`` (``body``, ``raw``, ``url``…, walked to any depth by ``repr``)."""
    texts = [(f"{where} traceback", "".join(traceback.format_exception(error)))]
    for index, item in enumerate(chain(error)):
        label = f"{where} chain[{index}] {type(item).__name__}"
        texts += [
            (f"{label} str", str(item)),
            (f"{label} repr", repr(item)),
            (f"{label} args", repr(item.args)),
            (f"{label} vars", repr(vars(item))),
            (f"{label} notes", repr(getattr(item, "__notes__", None))),
        ]
    return texts


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
            texts += exception_texts(caught.value, "content error")
            failed = caught.value
            # An upstream that echoes the request's credentials in its error answer.
            server.inject(
                "submit", "http", status=400, code=50400, message=f"bad header {CANARY_TOKEN}"
            )
            with pytest.raises(jimeng.APIError) as echoed:
                await client.images.submit("a fox", size="1K")
            assert "<redacted>" in repr(echoed.value.body)
            texts += exception_texts(echoed.value, "echoed error")
            # A connection dropped on every attempt: the aiohttp exception behind it is walked too.
            dropped = await client.images.submit("a hare", size="1K")
            server.inject("poll", "reset", times=10)
            with pytest.raises(jimeng.APIConnectionError) as reset:
                await dropped.result()
            assert len(chain(reset.value)) >= 2
            texts += exception_texts(reset.value, "reset error")

        wrong = jimeng.Volcengine(access_key=CANARY_AK, secret_key="wrong", endpoint=server.url)
        async with jimeng.Client(wrong, sleep=sleeps) as client:
            with pytest.raises(jimeng.AuthenticationError) as auth:
                await client.images.generate("a cat")
            texts += exception_texts(auth.value, "auth error")

    texts.append(("failed task raw", repr(failed.task_id) + repr(vars(failed))))
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


def test_error_codes_and_request_ids_are_scrubbed() -> None:
    """An upstream may echo a credential as the error code or the request id, which str() and
    every record of the error (results.jsonl, the CLI's JSON) show."""
    jimeng.Volcengine(access_key=CANARY_AK, secret_key=CANARY_SK, session_token=CANARY_TOKEN)
    metadata = {"RequestId": f"echo {CANARY_TOKEN}", "Error": {"Code": CANARY_AK, "Message": "bad"}}
    payload = {"ResponseMetadata": metadata}
    response = Response(status=401, headers={}, body=json.dumps(payload).encode())
    error = volcengine_error_for(response, payload, backend="volcengine")
    assert error is not None
    assert (error.code, error.request_id) == ("<redacted>", "echo <redacted>")
    assert str(error) == "bad (code=<redacted>, http=401, request_id=echo <redacted>)"
    assert_clean(repr(vars(error)), "error attributes")
    failed = jimeng.TaskFailedError("failed", task_id="t1", code=f"E-{CANARY_SK}")
    assert failed.code == "E-<redacted>"
    assert jimeng.APIError("x", code=50429).code == 50429  # numbers are kept as they are


def test_logger_redacts_registered_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jimeng")
    jimeng.Volcengine(access_key=CANARY_AK, secret_key=CANARY_SK)
    logging.getLogger("jimeng").info("oops %s then %s", CANARY_SK, CANARY_AK)
    assert caplog.records[-1].getMessage() == "oops <redacted> then <redacted>"


def test_sandbox_backend_repr_has_no_secret() -> None:
    text = repr(Sandbox()) + repr(jimeng.Client(Sandbox()))
    assert jimeng.sandbox.SANDBOX_SECRET_KEY not in text


def test_stored_answers_are_scrubbed() -> None:
    """Every stored copy of a server answer loses registered secrets, at any depth."""
    jimeng.Volcengine(access_key=CANARY_AK, secret_key=CANARY_SK, session_token=CANARY_TOKEN)
    answer = {"echo": {"headers": [f"Bearer {CANARY_TOKEN}", "ok"]}, "code": 1, "n": None}
    error = jimeng.APIError("refused", body=answer, code=1)
    assert error.body == {"echo": {"headers": ["Bearer <redacted>", "ok"]}, "code": 1, "n": None}
    assert answer["echo"]["headers"][0] == f"Bearer {CANARY_TOKEN}"  # the caller's copy is theirs
    task = jimeng.Task(
        id="t",
        kind=jimeng.TaskKind.IMAGE,
        status=jimeng.TaskStatus.FAILED,
        backend="x",
        ref="t",
        raw=answer,
        failure=jimeng.TaskFailure(code=CANARY_SK, message=f"echo {CANARY_AK}"),
    )
    text = repr(task.raw) + repr(task.failure)
    assert_clean(text, "task")
    clean = {"a": ["b", {"c": "d"}]}
    assert jimeng.APIError("x", body=clean).body is clean  # nothing to scrub: not copied
    download = jimeng.DownloadError("failed", url=f"https://cdn.test/x?sig={CANARY_SK}")
    assert_clean(repr(vars(download)), "download error")
