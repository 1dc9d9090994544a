"""Line states: claims are leases, changes are fenced by owner, finished lines stay finished."""

from __future__ import annotations

from pathlib import Path

import pytest

from jimeng._journal import configuration_fingerprint
from jimeng.batch import LineRecord, MemoryLedger, SQLiteLedger
from jimeng.batch._ledger import (
    backend_identity,
    claim_record,
    renew_record,
    reopen_record,
    same_backend,
    update_record,
)

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


def test_a_submit_left_in_flight_and_sent_again_counts_both() -> None:
    # A worker stopped with the submit in flight; another reruns it with --retry-failed.
    taken, claim = _claim(_submitting(), "w2", 31.0, retry=True)  # w1's lease ran out at 30
    assert (claim, taken.state, taken.submits) == ("run", "submitting", 0)
    again, _ = update_record(taken, owner="w2", now=32.0, changes={"state": "submitting"})
    assert again is not None and (again.submits, again.submitted_at) == (1, 32.0)
    accepted, _ = update_record(
        again, owner="w2", now=33.0, changes={"state": "accepted", "ref": "r2"}
    )
    assert accepted is not None and accepted.submits == 2


DONE = LineRecord(
    key="a#f", id="a", number=1, kind="image", state="done", ref="r1", paths=("old/a.png",)
)


def test_a_done_line_whose_files_are_gone_is_collected_again_from_its_task() -> None:
    record, claim = reopen_record(DONE, seen=DONE, owner="w1", now=10.0, lease=30.0)
    assert claim == "run"
    assert record is not None
    assert (record.state, record.ref, record.paths, record.owner, record.lease_until) == (
        "accepted",
        "r1",
        ("old/a.png",),  # a source to copy from, if they are there
        "w1",
        40.0,
    )
    assert record.submits == DONE.submits  # nothing is submitted


def test_a_done_line_without_a_ref_fails_when_its_files_are_gone() -> None:
    lost = LineRecord(key="a#f", id="a", number=1, kind="image", state="done", paths=("a.png",))
    record, claim = reopen_record(lost, seen=lost, owner="w1", now=10.0, lease=30.0)
    assert claim == "failed"
    assert record is not None
    assert (record.state, record.paths, record.finished_at, record.owner) == (
        "failed",
        (),
        10.0,
        None,
    )
    assert record.error == {
        "class": "MissingFiles",
        "code": None,
        "message": "the files saved earlier are gone (a.png) and no task ref was recorded to "
        "fetch them again; rerun with --retry-failed to generate the line again",
        "maybe_accepted": False,
    }


def test_a_line_that_changed_meanwhile_is_looked_at_again() -> None:
    moved = LineRecord(
        key="a#f", id="a", number=1, kind="image", state="done", ref="r1", paths=("new/a.png",)
    )
    assert reopen_record(moved, seen=DONE, owner="w1", now=10.0, lease=30.0) == (moved, "busy")
    accepted = LineRecord(key="a#f", id="a", number=1, kind="image", state="accepted", ref="r1")
    assert reopen_record(accepted, seen=DONE, owner="w1", now=10.0, lease=30.0)[1] == "busy"
    assert reopen_record(None, seen=DONE, owner="w1", now=10.0, lease=30.0) == (None, "busy")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_batch_name_is_bound_to_one_backend(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    first = MemoryLedger() if kind == "memory" else SQLiteLedger(path)
    second = first if kind == "memory" else SQLiteLedger(path)
    mine = {"backend": "sandbox", "fingerprint": "f1", "account": "", "where": "here"}
    theirs = {"backend": "ark", "fingerprint": "f2", "account": "…k", "where": "there"}
    try:
        assert await first.bind("b", mine) is None
        assert await second.bind("b", theirs) == mine
        assert await first.bind("b", mine) == mine
        assert await second.bind("other", theirs) is None
    finally:
        await first.aclose()
        await second.aclose()


def test_the_identity_of_a_batch_names_endpoint_and_account() -> None:
    import jimeng

    relay = jimeng.Volcengine(api_key="relay-key-example-1", endpoint="https://relay.example/jm")
    identity = backend_identity(relay)
    assert identity == {
        "backend": "volcengine",
        "fingerprint": configuration_fingerprint(relay),
        "account": relay.account(),
        "in_process": "",
        "where": f"volcengine at https://relay.example/jm, account {relay.account()}",
    }
    other = jimeng.Volcengine(api_key="relay-key-example-2", endpoint="https://relay.example/jm")
    assert not same_backend(identity, backend_identity(other))
    moved = jimeng.Volcengine(api_key="relay-key-example-1", endpoint="https://other.example/jm")
    assert not same_backend(identity, backend_identity(moved))
    assert same_backend(identity, backend_identity(relay))


def test_in_process_sandboxes_of_one_protocol_are_one_backend() -> None:
    import jimeng

    first, second = jimeng.Sandbox(), jimeng.Sandbox()
    assert first.url != second.url
    one, two = backend_identity(first), backend_identity(second)
    assert (one["in_process"], one["where"]) == ("volcengine", "sandbox (volcengine) in-process")
    assert same_backend(one, two)
    assert not same_backend(one, backend_identity(jimeng.Sandbox("ark")))
    # A sandbox served elsewhere is where it is: the same as the in-process one at its address.
    served = backend_identity(jimeng.Sandbox(url=first.url))
    assert served["where"] == f"sandbox (volcengine) at {first.url}"
    assert same_backend(one, served) and not same_backend(two, served)
    assert not same_backend(served, backend_identity(jimeng.Sandbox(url="http://127.0.0.1:9")))
