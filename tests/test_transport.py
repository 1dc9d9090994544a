"""The engine's transport against mocked HTTP (aioresponses): what is sent, attempt by attempt."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aioresponses import aioresponses
from yarl import URL

import jimeng
from jimeng._retry import compute_delay
from jimeng._signing import VOLCENGINE_CV, verify
from tests.conftest import Sleeps

ENDPOINT = "https://visual.volcengineapi.com"
SUBMIT_URL = f"{ENDPOINT}/?Action=CVSync2AsyncSubmitTask&Version=2022-08-31"


def ticking_clock() -> Any:
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    ticks = iter(range(1000))
    return lambda: start + timedelta(seconds=7 * next(ticks))


async def test_each_attempt_is_signed_afresh_and_sent_as_signed(sleeps: Sleeps) -> None:
    backend = jimeng.Volcengine(access_key="AKLTmock", secret_key="mock-secret", endpoint=ENDPOINT)
    limited = {"code": 50429, "message": "Request Has Reached API Limit", "request_id": "r1"}
    accepted = {"code": 10000, "data": {"task_id": "7392616336519610409"}, "request_id": "r2"}
    with aioresponses() as mocked:
        mocked.post(SUBMIT_URL, status=429, payload=limited)
        mocked.post(SUBMIT_URL, status=200, payload=accepted)
        async with jimeng.Client(
            backend, sleep=sleeps, clock=ticking_clock(), rng=random.Random(0)
        ) as client:
            task = await client.images.submit("a red fox in snow", size="2K")
        sent = mocked.requests[("POST", URL(SUBMIT_URL))]

    assert task.id == "7392616336519610409"
    assert len(sent) == 2
    # One wait, the first backoff step drawn from the client's seeded generator.
    assert sleeps.calls == [compute_delay(1, None, jimeng.RetryPolicy(), random.Random(0))]
    dates = [call.kwargs["headers"]["X-Date"] for call in sent]
    signatures = [call.kwargs["headers"]["Authorization"] for call in sent]
    assert dates[0] != dates[1] and signatures[0] != signatures[1]
    for call in sent:
        headers = call.kwargs["headers"]
        body = call.kwargs["data"]
        assert body == b'{"req_key":"jimeng_t2i_v40","prompt":"a red fox in snow","size":4194304}'
        # The server-side verifier accepts exactly these bytes and headers.
        verify(
            method="POST",
            path="/",
            query="Action=CVSync2AsyncSubmitTask&Version=2022-08-31",
            headers=headers,
            body=body,
            secret_key_for={"AKLTmock": "mock-secret"}.get,
            profile=VOLCENGINE_CV,
        )


async def test_a_refused_submit_is_not_resent(sleeps: Sleeps) -> None:
    backend = jimeng.Volcengine(access_key="AKLTmock", secret_key="mock-secret", endpoint=ENDPOINT)
    timeout = {"ResponseMetadata": {"Error": {"Code": "InternalServiceTimeout", "Message": "slow"}}}
    with aioresponses() as mocked:
        mocked.post(SUBMIT_URL, status=500, payload=timeout)
        async with jimeng.Client(backend, sleep=sleeps) as client:
            with pytest.raises(jimeng.ServerError) as caught:
                await client.images.submit("a cat")
        sent = mocked.requests[("POST", URL(SUBMIT_URL))]
    # The service may have taken the task before timing out: a resend could bill twice.
    assert len(sent) == 1 and sleeps.calls == []
    assert caught.value.code == "InternalServiceTimeout"
