"""The per-request shortcuts of the thin client, each pinned against the long way it replaces:
the cached signing plan (against a from-scratch signature and the server-side verifier), the
compiled ``replace`` (against ``attrs.evolve``), ``LimitState`` copies (against ``_replace``) and
the limiter's synchronous fast paths (against the awaited calls)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from jimeng import _logging
from jimeng._http import Call, Transport
from jimeng._limits import Limiter, Limits, LimitState, _with, holding_slot
from jimeng._retry import RetryPolicy
from jimeng._signing import (
    VOLCENGINE_CV,
    Credentials,
    canonical_request,
    credential_scope,
    hash_payload,
    imagex_profile,
    select_signed_headers,
    sign,
    sign_headers,
    signature,
    signing_key_chain,
    string_to_sign,
    verify,
)
from jimeng.models import ImageResult, Task, TaskKind, TaskStatus
from jimeng.models._replace import replace

KEYS = Credentials(access_key="AKLTthinpath000000000000", secret_key="thin-path-secret==")
TOKEN_KEYS = Credentials(
    access_key="AKLTthinpath000000000000", secret_key="thin-path-secret==", session_token="tok:1"
)
QUERY = "Action=CVSync2AsyncSubmitTask&Version=2022-08-31"
HEADERS = {"Content-Type": "application/json", "Host": "visual.volcengineapi.com"}
MOMENT = datetime(2026, 12, 3, 9, 30, 15, tzinfo=timezone.utc)


def _arguments(body: bytes, *, when: datetime = MOMENT, **overrides: Any) -> dict[str, Any]:
    """The keywords of ``sign``/``sign_headers`` for a Volcengine submit, with ``overrides``."""
    arguments: dict[str, Any] = {
        "method": "POST",
        "host": "visual.volcengineapi.com",
        "path": "/",
        "query": QUERY,
        "headers": HEADERS,
        "body": body,
        "credentials": KEYS,
        "profile": VOLCENGINE_CV,
        "now": when,
    }
    arguments.update(overrides)
    return arguments


def _signed(body: bytes, **overrides: Any) -> dict[str, str]:
    return sign_headers(**_arguments(body, **overrides))


def _verify(headers: dict[str, str], body: bytes, *, when: datetime = MOMENT) -> None:
    verify(
        method="POST",
        path="/",
        query=QUERY,
        headers=headers,
        body=body,
        secret_key_for={KEYS.access_key: KEYS.secret_key}.get,
        profile=VOLCENGINE_CV,
        now=when,
    )


# -- the signing plan ---------------------------------------------------------------------------


def test_sign_headers_are_exactly_what_sign_adds() -> None:
    body = b'{"req_key":"jimeng_t2i_v40","prompt":"fox"}'
    full = sign(**_arguments(body))
    added = _signed(body)
    assert added == {name: value for name, value in full.headers.items() if name not in HEADERS}
    assert list(added) == ["X-Date", "X-Content-Sha256", "Authorization"]
    assert added["X-Date"] == "20261203T093015Z"
    assert added["X-Content-Sha256"] == hash_payload(body)
    assert added["Authorization"].endswith(f"Signature={full.signature}")
    _verify({**HEADERS, **added}, body)


def test_every_attempt_gets_its_own_date_hash_and_signature() -> None:
    first_body, second_body = b'{"n":1}', b'{"n":2}'
    first = _signed(first_body)
    later = _signed(first_body, when=MOMENT + timedelta(seconds=1))
    other = _signed(second_body)
    assert later["X-Date"] == "20261203T093016Z" and first["X-Date"] == "20261203T093015Z"
    assert other["X-Content-Sha256"] == hash_payload(second_body) != first["X-Content-Sha256"]
    assert len({first["Authorization"], later["Authorization"], other["Authorization"]}) == 3
    _verify({**HEADERS, **first}, first_body)
    _verify({**HEADERS, **later}, first_body, when=MOMENT + timedelta(seconds=1))
    _verify({**HEADERS, **other}, second_body)


def test_the_date_is_read_in_utc_whatever_the_zone_of_now() -> None:
    eastern = MOMENT.astimezone(timezone(timedelta(hours=8)))
    assert _signed(b"{}", when=eastern) == _signed(b"{}")


def test_braces_in_a_header_value_are_signed_verbatim() -> None:
    headers = {**HEADERS, "X-Meta": "{0}{{1}}{hash}"}
    added = _signed(b"{}", headers=headers)
    _verify({**headers, **added}, b"{}")
    signed = select_signed_headers({**headers, **added}, VOLCENGINE_CV)
    assert "x-meta" in signed
    text = canonical_request(
        method="POST",
        path="/",
        query=QUERY,
        headers={**headers, **added},
        signed=signed,
        payload_hash=hash_payload(b"{}"),
    )
    assert "x-meta:{0}{{1}}{hash}\n" in text


def test_a_session_token_is_sent_and_signed() -> None:
    added = _signed(b"{}", credentials=TOKEN_KEYS)
    assert added["X-Security-Token"] == "tok:1"
    assert "x-security-token" in added["Authorization"].split("SignedHeaders=")[1]


def test_host_is_added_when_the_call_has_none() -> None:
    added = _signed(b"{}", headers={"Content-Type": "application/json"})
    assert next(iter(added)) == "Host" and added["Host"] == "visual.volcengineapi.com"
    assert "SignedHeaders=content-type;host;x-content-sha256;x-date," in added["Authorization"]


def test_a_query_not_in_canonical_form_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^the URL query is not in canonical form$"):
        _signed(b"{}", query="Version=2022-08-31&Action=CVSync2AsyncSubmitTask")


def test_a_line_break_in_a_header_is_refused_every_time() -> None:
    bad = {**HEADERS, "X-Note": "a\r\nInjected: 1"}
    for _ in range(2):  # a refusal is not cached as a plan
        with pytest.raises(ValueError, match="line break"):
            _signed(b"{}", headers=bad)


def test_a_nul_in_a_header_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^header x-note contains a NUL character$"):
        _signed(b"{}", headers={**HEADERS, "X-Note": "a\x00date\x00"})


header_values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=16
)


@settings(max_examples=150, deadline=None)
@given(
    extra=st.dictionaries(
        st.sampled_from(["X-Meta", "x-trace", "Content-Md5", "X-Empty", "Accept"]),
        header_values,
        max_size=4,
    ),
    body=st.binary(max_size=64),
    token=st.one_of(st.none(), st.text(alphabet="ABCDEF{}0123456789+/=", min_size=1)),
    seconds=st.integers(min_value=0, max_value=2_000_000_000),
)
def test_a_planned_signature_is_the_one_the_stages_make(
    extra: dict[str, str], body: bytes, token: str | None, seconds: int
) -> None:
    """Whatever the headers hold (braces, spaces, any text), the cached plan signs what the
    scheme's stages, run one by one, sign; and the verifier accepts it."""
    credentials = Credentials(
        access_key=KEYS.access_key, secret_key=KEYS.secret_key, session_token=token
    )
    headers = {**HEADERS, **extra}
    when = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds)
    signed = sign(**_arguments(body, when=when, headers=headers, credentials=credentials))
    out = signed.headers
    names = select_signed_headers(out, VOLCENGINE_CV)
    creq = canonical_request(
        method="POST",
        path="/",
        query=QUERY,
        headers=out,
        signed=names,
        payload_hash=hash_payload(body),
    )
    x_date = out["X-Date"]
    scope = credential_scope(x_date[:8], VOLCENGINE_CV)
    sts = string_to_sign(profile=VOLCENGINE_CV, x_date=x_date, scope=scope, canonical_request=creq)
    key = signing_key_chain(KEYS.secret_key, x_date[:8], VOLCENGINE_CV)[3]
    assert (signed.canonical_request, signed.string_to_sign) == (creq, sts)
    assert signed.signature == signature(key, sts)
    assert out["X-Content-Sha256"] == hash_payload(body)
    assert out.get("X-Security-Token") == token
    _verify(out, body, when=when)


def test_stale_auth_headers_of_an_earlier_attempt_do_not_count() -> None:
    earlier = _signed(b"{}", when=MOMENT - timedelta(minutes=1))
    again = _signed(b"{}", headers={**HEADERS, **earlier})
    assert again == _signed(b"{}")


def test_the_amz_flavour_sends_the_content_hash_only_with_a_body() -> None:
    profile = imagex_profile("cn-north-1")
    common: dict[str, Any] = {"headers": {"Host": "imagex.invalid"}, "profile": profile}
    with_body = _signed(b"data", **common)
    without = _signed(b"", **common)
    assert with_body["x-amz-content-sha256"] == hash_payload(b"data")
    assert "x-amz-content-sha256" not in without
    assert "SignedHeaders=x-amz-date," in without["Authorization"]


# -- replace ----------------------------------------------------------------------------------


def _task(**changes: Any) -> Task:
    fields: dict[str, Any] = {
        "id": "7",
        "kind": TaskKind.IMAGE,
        "status": TaskStatus.QUEUED,
        "backend": "volcengine",
        "ref": "k:7",
        "model": "k",
        "raw": {"code": 10000},
        "context": {"req_json": "{}"},
        "notes": ("a note",),
    }
    fields.update(changes)
    return Task(**fields)


def test_replace_makes_the_copy_evolve_makes() -> None:
    task = _task()
    stamp = datetime(2026, 1, 1, tzinfo=timezone.utc)
    changes = {"status": TaskStatus.SUCCEEDED, "created_at": stamp, "completed_at": stamp}
    copy = replace(task, **changes)
    assert copy == attrs.evolve(task, **changes)
    assert (copy.notes, copy.context, copy.raw) == (task.notes, task.context, task.raw)
    assert task.status is TaskStatus.QUEUED  # the original is untouched
    assert replace(task) == task and replace(task) is not task


def test_replace_runs_the_converters_and_validators() -> None:
    secret = "thin-path-registered-secret-value"
    _logging.register_secret(secret)
    copy = replace(_task(), raw={"message": f"key {secret}"})
    assert secret not in str(copy.raw) and "<redacted>" in str(copy.raw)
    with pytest.raises(ValueError, match="max_rps"):
        replace(Limits(), max_rps=-1.0)


def test_replace_refuses_a_field_the_class_does_not_take() -> None:
    with pytest.raises(TypeError, match=r"Task has no init field\(s\) \['colour'\]"):
        replace(_task(), colour="red")


def test_replace_uses_the_init_name_of_a_private_field() -> None:
    @attrs.frozen
    class Private:
        _hidden: int
        shown: str = "x"

    assert replace(Private(1), hidden=2) == Private(2)
    result = ImageResult(images=(), task_id="7")
    assert replace(result, prompt="fox") == attrs.evolve(result, prompt="fox")


# -- limiter state copies -----------------------------------------------------------------------


@pytest.mark.parametrize("field", LimitState._fields)
def test_a_limit_state_copy_changes_only_the_named_field(field: str) -> None:
    state = LimitState(concurrency=3.0, in_flight=2, accepted=1, rate=4.0, window_count=5)
    value = object()
    copy = _with(state, **{field: value})
    assert type(copy) is LimitState
    assert copy == state._replace(**{field: value})


def test_a_limit_state_copy_refuses_an_unknown_field() -> None:
    with pytest.raises(KeyError, match="speed"):
        _with(LimitState(concurrency=1.0), speed=1)


# -- the limiter's synchronous paths --------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Shared:
    """A store that is not the local one (the fast paths must step aside for it)."""

    def __init__(self) -> None:
        self.states: dict[str, LimitState] = {}

    async def update(self, key: str, initial: LimitState, change: Any) -> Any:
        state, result = change(self.states.get(key, initial))
        self.states[key] = state
        return result

    def peek(self, key: str) -> LimitState | None:
        return self.states.get(key)


async def test_unpaced_now_is_the_send_time_only_when_nothing_is_paced() -> None:
    clock = Clock()
    limiter = Limiter(Limits(), "acct", clock=clock)
    assert limiter.unpaced_now() == 100.0
    limiter.store.states["acct"] = LimitState(concurrency=8.0, rate=2.0)  # type: ignore[attr-defined]
    assert limiter.unpaced_now() is None
    capped = Limiter(Limits(max_rps=5.0), "acct", clock=clock)
    assert capped.unpaced_now() is None
    queued = Limiter(Limits(), "acct", clock=clock)
    queued._pacers.append(asyncio.get_running_loop().create_future())
    assert queued.unpaced_now() is None
    shared = Limiter(Limits(store=Shared()), "acct", clock=clock)
    assert shared.unpaced_now() is None


async def test_answered_ok_makes_the_change_the_awaited_calls_make() -> None:
    clock = Clock()
    fast = Limiter(Limits(initial_concurrency=1), "acct", clock=clock)
    slow = Limiter(Limits(initial_concurrency=1, store=Shared()), "acct", clock=clock)
    async with fast.slot():
        clock.now = 101.0
        assert fast.answered_ok(100.5, paced=False, submit=True) is True
        assert fast.answered_ok(100.5, paced=False, submit=True) is True  # accepted once
        assert fast.answered_ok(100.7, paced=False, submit=False) is True
        assert fast.state().accepted == 1
        fast_state = fast.state()
    clock.now = 100.0
    async with slow.slot():
        clock.now = 101.0
        assert slow.answered_ok(100.5, paced=False, submit=True) is False
        await slow.after_request("ok", 100.5, paced=False)
        await slow.accepted()
        await slow.after_request("ok", 100.5, paced=False)
        await slow.accepted()
        await slow.after_request("ok", 100.7, paced=False)
        assert slow.state() == fast_state
    # Slow start: +1 per answer while the slots are all (or all but one) in use: 1 -> 2 -> 3.
    assert fast_state.concurrency == 3.0
    assert (fast.state().in_flight, fast.state().accepted) == (0, 0)


async def test_answered_ok_outside_a_slot_marks_nothing_accepted() -> None:
    limiter = Limiter(Limits(), "acct", clock=Clock())
    assert not holding_slot()
    assert limiter.answered_ok(99.0, paced=False, submit=True) is True
    assert limiter.state().accepted == 0 and limiter.state().window_count == 1


async def test_a_waiter_gets_the_slot_a_grown_limit_opens() -> None:
    limiter = Limiter(Limits(initial_concurrency=1), "acct", clock=Clock())
    order: list[str] = []
    go = asyncio.Event()

    async def second() -> None:  # made before the first slot: it holds none of its own
        await go.wait()
        async with limiter.slot():
            order.append("second in")

    waiter = asyncio.create_task(second())
    async with limiter.slot():
        go.set()
        for _ in range(3):
            await asyncio.sleep(0)
        assert limiter.queued == 1 and order == []
        limiter.answered_ok(99.0, paced=False, submit=True)  # the limit grows to 2
        for _ in range(3):
            await asyncio.sleep(0)
        assert order == ["second in"] and limiter.queued == 0
        order.append("first still in")
    await waiter
    assert order == ["second in", "first still in"]


def test_a_cached_plan_shows_no_token_in_its_repr() -> None:
    from jimeng._signing import _plan

    plan = _plan(
        "POST", "h", "/", QUERY, tuple(HEADERS.items()), VOLCENGINE_CV, "tok:secret-token", True
    )
    assert "tok:secret-token" in plan.template  # signed, as §1.6 says
    assert "tok:secret-token" not in repr(plan)


async def test_only_a_paced_answer_grows_the_learned_rate() -> None:
    limiter = Limiter(Limits(), "acct", clock=Clock())
    limiter.store.states["acct"] = LimitState(concurrency=8.0, rate=5.0)  # type: ignore[attr-defined]
    assert limiter.answered_ok(99.0, paced=False, submit=False) is True
    assert limiter.state().rate == 5.0
    assert limiter.answered_ok(99.0, paced=True, submit=False) is True
    assert limiter.state().rate == 6.0  # still probing: +1 per paced success


class _Answer:
    status = 200
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))

    async def read(self) -> bytes:
        return b'{"ok":true}'

    async def __aenter__(self) -> _Answer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_a_request_sent_unpaced_does_not_grow_a_rate_set_while_it_was_out() -> None:
    limiter = Limiter(Limits(), "acct", clock=Clock())

    class Session:
        def request(self, method: str, url: Any, **kwargs: Any) -> _Answer:
            # Meanwhile another request was refused for rate: the limiter now paces at 5/s.
            limiter.store.states["acct"] = _with(limiter.state(), rate=5.0)  # type: ignore[attr-defined]
            return _Answer()

    async def session() -> Any:
        return Session()

    transport = Transport(
        session=session, timeout=30.0, retry=RetryPolicy.disabled(), limiter=limiter
    )
    call = Call(method="GET", url="https://api.example.test/v1", purpose="poll")
    assert (await transport.execute(call)).status == 200
    assert limiter.state().rate == 5.0 and limiter.state().window_count == 1
