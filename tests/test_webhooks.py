"""The webhook receiver: parsing, the shared secret, idempotency, and real deliveries from the
sandbox's gateway to an aiohttp receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import jimeng
from jimeng.sandbox import BLOCK_OUTPUT, Sandbox
from jimeng.sandbox._gateway import WEBHOOK_RETRY_DELAYS, GatewayProtocol
from jimeng.webhooks import MemorySeen, WebhookReceiver, WebhookRejected
from tests.conftest import Sleeps

RECORD = {
    "task_id": "97149680-e596-11f1-8730-29b15e3f778b",
    "type": "image",
    "status": "completed",
    "model": "jimeng-4.5",
    "prompt": "a cat",
    "created_at": 1763260100,
    "updated_at": 1763260188,
    "completed_at": 1763260188,
    "result": {"created": 1763260188, "data": [{"url": "https://img.example/1.png"}]},
}
HEADERS = {
    "Content-Type": "application/json",
    "X-Webhook-Event": "task.completed",
    "X-Task-Id": RECORD["task_id"],
}
BODY = json.dumps(RECORD).encode()


# -- framework-agnostic ------------------------------------------------------------------------


def test_parse_gives_the_task() -> None:
    task = WebhookReceiver().parse(BODY, {k.lower(): v for k, v in HEADERS.items()})
    assert task.id == RECORD["task_id"] and task.status is jimeng.TaskStatus.SUCCEEDED
    assert task.result is not None and task.result.urls == ["https://img.example/1.png"]


def test_a_retried_callback_is_reported_as_a_duplicate() -> None:
    receiver = WebhookReceiver()
    first = receiver.receive(BODY, HEADERS)
    again = receiver.receive(BODY, HEADERS)
    assert (first.duplicate, again.duplicate) == (False, True)
    other_event = receiver.receive(BODY, {**HEADERS, "X-Webhook-Event": "task.failed"})
    assert other_event.duplicate is False  # idempotency is per task id *and* event
    receiver.forget(first)
    assert receiver.receive(BODY, HEADERS).duplicate is False


def test_the_memory_of_seen_callbacks_is_bounded() -> None:
    seen = MemorySeen(limit=2)
    assert seen.add("a") and seen.add("b") and seen.add("c")
    assert "a" not in seen and "c" in seen and not seen.add("c")


@pytest.mark.parametrize(
    ("url", "status"),
    [(None, 401), ("/hooks", 401), ("/hooks?token=", 401), ("/hooks?token=guess", 403)],
)
def test_the_shared_secret_is_required(url: str | None, status: int) -> None:
    receiver = WebhookReceiver(secret="s3cret-value")
    with pytest.raises(WebhookRejected) as caught:
        receiver.parse(BODY, HEADERS, url=url)
    assert caught.value.status == status
    assert receiver.parse(BODY, HEADERS, url="/hooks?token=s3cret-value").id == RECORD["task_id"]


def test_callback_url_carries_the_secret() -> None:
    receiver = WebhookReceiver(secret="s3cret value", secret_param="key")
    url = receiver.callback_url("https://my.app/hooks/jimeng?tenant=7")
    assert url == "https://my.app/hooks/jimeng?tenant=7&key=s3cret+value"
    assert receiver.parse(BODY, HEADERS, url=url).id == RECORD["task_id"]
    assert "s3cret" not in repr(receiver)


def test_the_secret_is_redacted_as_it_travels_in_the_url() -> None:
    """The callback URL carries the secret percent-encoded; an upstream that quotes the URL back
    (or encodes it afresh) must not reveal it either."""
    secret = "Zm9vYmFyY2FuYXJ5+aG9vaw=="
    url = WebhookReceiver(secret=secret).callback_url("https://my.app/h")
    assert url == "https://my.app/h?token=Zm9vYmFyY2FuYXJ5%2BaG9vaw%3D%3D"
    error = jimeng.APIError(f"callback failed: {url}", body={"callback_url": url})
    assert str(error) == "callback failed: https://my.app/h?token=<redacted>"
    assert error.body == {"callback_url": "https://my.app/h?token=<redacted>"}
    spaced = WebhookReceiver(secret="canary hook/secret").callback_url("https://my.app/h")
    assert spaced == "https://my.app/h?token=canary+hook/secret"
    assert str(jimeng.APIError(f"{spaced} canary%20hook%2Fsecret")) == (
        "https://my.app/h?token=<redacted> <redacted>"
    )


@pytest.mark.parametrize(
    ("body", "headers", "needle"),
    [
        (b"<html>", HEADERS, "not JSON"),
        (b"[1]", HEADERS, "not a task record"),
        (b"{}", HEADERS, "task_id"),
        (BODY, {**HEADERS, "X-Task-Id": "another"}, "does not match"),
        (BODY, {**HEADERS, "X-Webhook-Event": "ping"}, "unknown webhook event"),
    ],
)
def test_malformed_callbacks_are_rejected(
    body: bytes, headers: dict[str, str], needle: str
) -> None:
    with pytest.raises(WebhookRejected, match=needle) as caught:
        WebhookReceiver().parse(body, headers)
    assert caught.value.status == 400


@pytest.mark.parametrize("holds_secret", [False, True])
def test_a_parser_error_is_chained_only_without_a_secret(
    monkeypatch: pytest.MonkeyPatch, holds_secret: bool
) -> None:
    secret = "canary-webhook-parse-5f1e"
    jimeng._logging.register_secret(secret)
    problem = ValueError(f"bad date {secret if holds_secret else 'soon'}")

    def parse(payload: object, *, backend: str) -> object:
        raise problem

    monkeypatch.setattr(jimeng.webhooks, "parse_task", parse)
    with pytest.raises(WebhookRejected) as caught:
        WebhookReceiver().parse(BODY, HEADERS)
    shown = "<redacted>" if holds_secret else "soon"
    assert str(caught.value) == f"callback body is not a task record: bad date {shown}"
    assert caught.value.__cause__ is (None if holds_secret else problem)
    assert caught.value.__context__ is None


def test_a_failed_task_names_its_error() -> None:
    failed = {**RECORD, "status": "failed", "error": "内容由于合规问题已被阻止生成"}
    del failed["result"]
    delivery = WebhookReceiver().receive(
        json.dumps(failed).encode(), {**HEADERS, "X-Webhook-Event": "task.failed"}
    )
    error = delivery.error()
    assert isinstance(error, jimeng.ContentPolicyError) and error.task_id == RECORD["task_id"]
    assert WebhookReceiver().receive(BODY, HEADERS).error() is None


# -- a real receiver on loopback ---------------------------------------------------------------


class Receiver:
    """An aiohttp app on a free loopback port that counts the POSTs it answers."""

    def __init__(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self._arrivals = asyncio.Condition()
        self.app = web.Application()
        self.app.router.add_post("/hooks/jimeng", self._counting(handler))
        self.runner = web.AppRunner(self.app)
        self.url = ""

    def _counting(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            response = await handler(request)
            assert isinstance(response, web.Response) and response.body is not None
            async with self._arrivals:
                self.answers.append((response.status, json.loads(bytes(response.body))))
                self._arrivals.notify_all()
            return response

        return handle

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hooks/jimeng"

    async def arrivals(self, count: int) -> None:
        async with self._arrivals:
            await asyncio.wait_for(self._arrivals.wait_for(lambda: len(self.answers) >= count), 10)


@pytest.fixture
async def gateway_client(sleeps: Sleeps) -> AsyncIterator[jimeng.Client]:
    # Time factor 0: the sandbox records the 5/15/30 s retry schedule without waiting for it.
    sandbox = Sandbox("gateway", time_factor=0)
    async with jimeng.Client(sandbox, sleep=sleeps, rng=random.Random(0)) as client:
        yield client


def gateway_of(client: jimeng.Client) -> GatewayProtocol:
    protocol: GatewayProtocol = client.backend.server.protocol("gateway")  # type: ignore[attr-defined]
    return protocol


async def test_a_lost_acknowledgement_is_processed_once(
    gateway_client: jimeng.Client, tmp_path: Path
) -> None:
    processed: list[jimeng.Task] = []
    receiver = WebhookReceiver(secret="hook-secret-123", client=gateway_client)
    sink = Receiver(receiver.aiohttp_handler(processed.append))
    await sink.start()
    try:
        protocol = gateway_of(gateway_client)
        protocol.server.inject("webhook", kind="reset")  # type: ignore[union-attr]
        handle = await gateway_client.images.submit(
            "a cat", callback_url=receiver.callback_url(sink.url)
        )
        await sink.arrivals(2)
    finally:
        await sink.runner.cleanup()
    assert [status for status, _ in sink.answers] == [200, 200]
    assert [answer["duplicate"] for _, answer in sink.answers] == [False, True]
    [task] = processed
    assert task.id == handle.id and task.status is jimeng.TaskStatus.SUCCEEDED
    assert [(a.attempt, a.delay, a.outcome) for a in protocol.deliveries] == [
        (1, 0.0, "acknowledgement lost"),
        (2, WEBHOOK_RETRY_DELAYS[0], "delivered"),
    ]
    assert task.result is not None
    saved = await task.result.save(tmp_path)  # bound to the client: downloads work
    assert len(saved) == 4 and all(path.suffix == ".png" for path in saved)


async def test_a_failing_receiver_gets_the_whole_retry_schedule(
    gateway_client: jimeng.Client,
) -> None:
    calls: list[str] = []

    def explode(task: jimeng.Task) -> None:
        calls.append(task.id)
        raise RuntimeError("database down")

    receiver = WebhookReceiver()
    sink = Receiver(receiver.aiohttp_handler(explode))
    await sink.start()
    try:
        handle = await gateway_client.images.submit(f"p {BLOCK_OUTPUT}", callback_url=sink.url)
        await sink.arrivals(4)
    finally:
        await sink.runner.cleanup()
    deliveries = gateway_of(gateway_client).deliveries
    assert [a.delay for a in deliveries] == [0.0, *WEBHOOK_RETRY_DELAYS]
    assert {a.event for a in deliveries} == {"task.failed"}
    assert [status for status, _ in sink.answers] == [500, 500, 500, 500]
    assert calls == [handle.id] * 4  # a failed callback is forgotten, so each retry runs again
    with pytest.raises(jimeng.ContentPolicyError):
        await handle.result()  # the task itself is unchanged by webhook failures


async def test_the_receiver_answers_rejections_over_http() -> None:
    receiver = WebhookReceiver(secret="hook-secret-123")
    sink = Receiver(receiver.aiohttp_handler(lambda task: None))
    await sink.start()
    try:
        async with aiohttp.ClientSession() as session:
            statuses = []
            for url in (sink.url, sink.url + "?token=wrong", receiver.callback_url(sink.url)):
                async with session.post(url, data=BODY, headers=HEADERS) as response:
                    statuses.append(response.status)
    finally:
        await sink.runner.cleanup()
    assert statuses == [401, 403, 200]


async def test_webhooks_only_go_to_loopback(gateway_client: jimeng.Client) -> None:
    await gateway_client.images.submit("p", callback_url="https://my.app/hooks")
    [refused] = gateway_of(gateway_client).deliveries
    assert refused.outcome.startswith("refused") and refused.status is None
