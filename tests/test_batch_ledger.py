"""Line states: claims are leases, changes are fenced by owner, finished lines stay finished."""

from __future__ import annotations

from pathlib import Path

import pytest

from jimeng.batch import LineRecord, MemoryLedger, SQLiteLedger
from jimeng.batch._ledger import claim_record, renew_record, update_record

KEY = dict(key="a#f", line_id="a", number=1, kind="image")


def _claim(record: LineRecord | None, owner: str, now: float, *, retry: bool = False) -> tuple:
    return claim_record(record, **KEY, owner=owner, now=now, lease=30.0, retry_failed=retry)


def test_a_claim_is_a_lease() -> None:
    record, claim = _claim(None, "w1", 100.0)
    assert (claim, record.owner, record.lease_until, record.state) == (
        "run",
        "w1",
        130.0,
        "pending",
    )
    assert _claim(record, "w2", 129.9)[1] == "busy"
    taken, claim = _claim(record, "w2", 130.1)
    assert (claim, taken.owner, taken.lease_until) == ("run", "w2", 160.1)
    assert _claim(record, "w1", 110.0)[1] == "run"  # the owner may claim again


def test_renew_and_update_are_fenced_by_owner() -> None:
    record, _ = _claim(None, "w1", 0.0)
    renewed, kept = renew_record(record, owner="w1", now=20.0, lease=30.0)
    assert kept and renewed is not None and renewed.lease_until == 50.0
    assert renew_record(record, owner="w2", now=20.0, lease=30.0)[1] is False
    assert update_record(record, owner="w2", now=1.0, changes={"state": "done"})[1] is False
    submitting, ok = update_record(record, owner="w1", now=5.0, changes={"state": "submitting"})
    assert ok and submitting is not None
    assert (submitting.submits, submitting.submitted_at) == (0, 5.0)  # nothing accepted yet
    accepted, ok = update_record(
        submitting, owner="w1", now=6.0, changes={"state": "accepted", "ref": "r1"}
    )
    assert ok and accepted is not None and (accepted.submits, accepted.ref) == (1, "r1")
    done, ok = update_record(
        accepted, owner="w1", now=9.0, changes={"state": "done", "paths": ["a.png"]}
    )
    assert ok and done is not None
    assert (done.owner, done.lease_until, done.finished_at, done.paths) == (
        None,
        0.0,
        9.0,
        ("a.png",),
    )


def test_finished_lines_are_reported_not_run() -> None:
    record = LineRecord(**{"key": "a#f", "id": "a", "number": 1, "kind": "image"}, state="done")
    assert _claim(record, "w1", 0.0)[1] == "done"
    failed = LineRecord(
        key="a#f", id="a", number=1, kind="image", state="failed", ref="r1", error={"x": 1}
    )
    assert _claim(failed, "w1", 0.0)[1] == "failed"
    retried, claim = _claim(failed, "w1", 0.0, retry=True)
    assert claim == "run"
    assert (retried.state, retried.ref, retried.error) == ("pending", None, None)


def test_records_round_trip_through_json() -> None:
    record = LineRecord(
        key="a#f",
        id="a",
        number=3,
        kind="video",
        state="accepted",
        ref="r",
        urls=({"url": "http://x", "expires_at": None},),
        paths=("p.mp4",),
        error={"class": "X", "code": 1, "message": "m", "maybe_accepted": False},
    )
    assert LineRecord.from_json(record.to_json()) == record


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_stores_apply_the_rules(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    first = MemoryLedger() if kind == "memory" else SQLiteLedger(path)
    # A second process opening the same file sees the first one's claims.
    second = first if kind == "memory" else SQLiteLedger(path)
    try:
        _, claim = await first.claim("b", **KEY, owner="w1", lease=30.0, retry_failed=False)
        assert claim == "run"
        assert (await second.claim("b", **KEY, owner="w2", lease=30.0, retry_failed=False))[
            1
        ] == "busy"
        assert await first.update("b", "a#f", owner="w1", state="accepted", ref="r1")
        assert not await second.update("b", "a#f", owner="w2", state="done")
        assert await first.renew("b", "a#f", owner="w1", lease=30.0)
        assert await first.update("b", "a#f", owner="w1", state="done", paths=["x.png"])
        records = await second.records("b")
        assert records["a#f"].state == "done"
        assert records["a#f"].ref == "r1"
        assert await second.records("other") == {}
    finally:
        await first.aclose()
        await second.aclose()


def test_a_lease_of_a_process_known_gone_is_not_waited_for() -> None:
    record, _ = _claim(None, "w1", 0.0)
    taken, claim = claim_record(
        record, **KEY, owner="w2", now=1.0, lease=30.0, retry_failed=False,
        abandoned=lambda owner: owner == "w1",
    )  # fmt: skip
    assert (claim, taken.owner) == ("run", "w2")


def test_gone_means_a_dead_process_of_this_machine() -> None:
    import socket
    import subprocess
    import sys

    from jimeng.batch._runner import gone, worker_name

    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()
    host = socket.gethostname()
    assert gone(f"{host}:{dead_pid.pid}:abcd")
    assert not gone(worker_name())  # this process
    assert not gone(f"another-host:{dead_pid.pid}:abcd")
    assert not gone(f"{host}:1:abcd")  # init: alive
    assert not gone("not a worker name")


def _submitting() -> LineRecord:
    record, _ = _claim(None, "w1", 0.0)
    submitting, _ = update_record(record, owner="w1", now=1.0, changes={"state": "submitting"})
    assert submitting is not None
    return submitting


@pytest.mark.parametrize(
    ("changes", "submits"),
    [
        ({"state": "accepted", "ref": "r1"}, 1),  # accepted: billed
        ({"state": "failed", "error": {"class": "APITimeoutError", "maybe_accepted": True}}, 1),
        ({"state": "failed", "error": {"class": "ContentPolicyError", "maybe_accepted": False}}, 0),
        ({"state": "failed", "error": {"class": "ValidationError"}}, 0),
        ({"state": "failed", "error": None}, 0),
    ],
)
def test_submits_count_what_may_have_been_spent(changes: dict[str, object], submits: int) -> None:
    after, ok = update_record(_submitting(), owner="w1", now=2.0, changes=changes)
    assert ok and after is not None and after.submits == submits


def test_a_submit_is_counted_once() -> None:
    accepted, _ = update_record(
        _submitting(), owner="w1", now=2.0, changes={"state": "accepted", "ref": "r1"}
    )
    assert accepted is not None
    failed, _ = update_record(
        accepted,
        owner="w1",
        now=3.0,
        changes={"state": "failed", "error": {"class": "TaskFailedError", "maybe_accepted": True}},
    )
    assert failed is not None and failed.submits == 1
