"""``client.batch`` against the in-process sandbox: submits counted, resumes, failures, files."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses

import jimeng
from jimeng.batch import BatchItem, InputError, LineRecord, MemoryLedger
from jimeng.sandbox import BLOCK_INPUT, FAIL_TASK, Stages
from jimeng.sandbox._media import render_png
from tests._images import png
from tests.conftest import Sleeps


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sandbox() -> jimeng.Sandbox:
    return jimeng.Sandbox(stages=Stages(generate_polls=1))


async def _run(client: jimeng.Client, requests: Any, **options: Any) -> tuple[list[BatchItem], Any]:
    run = client.batch(requests, **options)
    items = [item async for item in run]
    return items, run


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


async def test_every_line_once_then_a_rerun_skips_them(
    sandbox: jimeng.Sandbox, sleeps: Sleeps, tmp_path: Path
) -> None:
    requests = [{"id": f"sku-{n}", "prompt": f"shoe {n}", "size": "1K"} for n in range(6)]
    requests.append({"prompt": "a cat", "kind": "video", "duration": 5})
    ledger = MemoryLedger()
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        items, run = await _run(client, requests, out=tmp_path, store=ledger, name="shoes")
        server = sandbox.server
        assert server.requests["submit"] == 7
        assert {item.status for item in items} == {"done"}
        assert {item.skipped for item in items} == {False}
        video = next(item for item in items if item.line == 7)
        assert [path.name for path in video.paths] == [f"{video.id}.mp4"]
        shoe = next(item for item in items if item.id == "sku-3")
        assert [path.name for path in shoe.paths] == ["sku-3.png"]
        assert shoe.paths[0].read_bytes().startswith(b"\x89PNG")
        assert shoe.ref is not None and shoe.urls[0]["url"].startswith("http://127.0.0.1:")
        summary = run.summary
        assert (summary.lines, summary.done, summary.failed, summary.skipped, summary.submits) == (
            7,
            7,
            0,
            0,
            7,
        )
        rows = _rows(tmp_path)
        assert [row["line"] for row in rows] == [1, 2, 3, 4, 5, 6, 7]
        assert rows[3]["id"] == "sku-3" and rows[3]["status"] == "done"
        assert rows[3]["paths"] == [str(tmp_path / "sku-3.png")]
        assert rows[3]["urls"][0]["expires_at"] is not None

        again, run = await _run(client, requests, out=tmp_path, store=ledger, name="shoes")
        assert server.requests["submit"] == 7
        assert {item.skipped for item in again} == {True}
        assert (run.summary.done, run.summary.skipped) == (7, 7)


async def test_an_accepted_line_is_polled_by_ref_never_resubmitted(
    sandbox: jimeng.Sandbox, sleeps: Sleeps, tmp_path: Path
) -> None:
    clock = Clock()
    ledger = MemoryLedger(clock)
    request = {"id": "a", "prompt": "a cat"}
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        (line,), _ = jimeng.batch.parse_lines(json.dumps(request), fmt="jsonl")
        # A worker claimed the line, submitted it and died before it finished.
        await ledger.claim(
            "b", key=line.key, line_id="a", number=1, kind="image", owner="dead", lease=30,
            retry_failed=False,
        )  # fmt: skip
        handle = await client.images.submit("a cat")
        await ledger.update("b", line.key, owner="dead", state="submitting")
        await ledger.update("b", line.key, owner="dead", state="accepted", ref=handle.ref)
        assert sandbox.server.requests["submit"] == 1
        clock.now += 31  # its lease ran out
        (item,), run = await _run(client, [request], out=tmp_path, store=ledger, name="b")
    assert (item.status, item.ref, item.skipped) == ("done", handle.ref, False)
    assert sandbox.server.requests["submit"] == 1
    assert run.summary.submits == 1


async def test_a_live_lease_is_left_to_its_owner(
    sandbox: jimeng.Sandbox, sleeps: Sleeps, tmp_path: Path
) -> None:
    clock = Clock()
    ledger = MemoryLedger(clock)
    (line,), _ = jimeng.batch.parse_lines('{"id": "a", "prompt": "a cat"}', fmt="jsonl")
    await ledger.claim(
        "b", key=line.key, line_id="a", number=1, kind="image", owner="alive", lease=30,
        retry_failed=False,
    )  # fmt: skip

    saved = tmp_path / "a.png"

    async def owner_finishes(seconds: float) -> None:
        saved.write_bytes(png())
        await ledger.update("b", line.key, owner="alive", state="done", paths=[str(saved)])

    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        run = client.batch([line], out=tmp_path, store=ledger, name="b")
        run.sleep = owner_finishes
        items = [item async for item in run]
    assert sandbox.server.requests["submit"] == 0
    assert [(i.status, i.skipped, i.paths) for i in items] == [("done", True, (saved,))]


async def test_a_submit_in_flight_at_a_crash_is_not_repeated_without_asking(
    sandbox: jimeng.Sandbox, sleeps: Sleeps, tmp_path: Path
) -> None:
    clock = Clock()
    ledger = MemoryLedger(clock)
    request = {"id": "a", "prompt": "a cat"}
    (line,), _ = jimeng.batch.parse_lines(json.dumps(request), fmt="jsonl")
    await ledger.claim(
        "b", key=line.key, line_id="a", number=1, kind="image", owner="dead", lease=30,
        retry_failed=False,
    )  # fmt: skip
    await ledger.update("b", line.key, owner="dead", state="submitting")
    clock.now += 31
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        (item,), run = await _run(client, [request], out=tmp_path, store=ledger, name="b")
        assert sandbox.server.requests["submit"] == 0
        assert item.status == "failed"
        assert item.error is not None
        assert (item.error["class"], item.error["maybe_accepted"]) == ("AmbiguousSubmit", True)
        assert "--retry-failed" in item.error["message"]
        assert run.summary.failed == 1

        (item,), _ = await _run(
            client, [request], out=tmp_path, store=ledger, name="b", retry_failed=True
        )
    assert item.status == "done"
    assert sandbox.server.requests["submit"] == 1
    record: LineRecord = (await ledger.records("b"))[line.key]
    assert record.submits == 2  # the lost one and this one: both may have been billed


async def test_failed_lines_keep_their_error_and_are_retried_only_when_asked(
    sandbox: jimeng.Sandbox, sleeps: Sleeps, tmp_path: Path
) -> None:
    ledger = MemoryLedger()
    requests = [{"id": "ok", "prompt": "a cat"}, {"id": "bad", "prompt": f"x {FAIL_TASK}"}]
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        items, run = await _run(client, requests, out=tmp_path, store=ledger, name="b")
        failed = next(item for item in items if item.id == "bad")
        assert failed.status == "failed"
        assert failed.ref is not None
        assert failed.error is not None and failed.error["class"] == "TaskFailedError"
        row = next(row for row in _rows(tmp_path) if row["id"] == "bad")
        assert (row["status"], row["ref"], row["error"]["class"]) == (
            "failed",
            failed.ref,
            "TaskFailedError",
        )
        assert (run.summary.done, run.summary.failed) == (1, 1)

        items, run = await _run(client, requests, out=tmp_path, store=ledger, name="b")
        assert sandbox.server.requests["submit"] == 2
        assert [(i.id, i.status, i.skipped) for i in sorted(items, key=lambda i: i.line)] == [
            ("ok", "done", True),
            ("bad", "failed", True),
        ]
        await _run(client, requests, out=tmp_path, store=ledger, name="b", retry_failed=True)
        assert sandbox.server.requests["submit"] == 3


async def test_invalid_lines_stop_everything_before_any_submit(
    sandbox: jimeng.Sandbox, sleeps: Sleeps, tmp_path: Path
) -> None:
    requests = [
        {"id": "ok", "prompt": "a cat"},
        {"id": "big", "prompt": "a cat", "size": "9K"},
        {"id": "typo", "prompt": "a cat", "sead": 3},
    ]
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        with pytest.raises(InputError) as caught:
            await _run(client, requests, out=tmp_path)
        assert {(p.line, p.field) for p in caught.value.problems} == {(2, "size"), (3, "sead")}
        assert sandbox.server.requests["submit"] == 0
        assert not (tmp_path / "results.jsonl").exists()

        items, run = await _run(client, requests, out=tmp_path, skip_invalid=True)
    assert [item.id for item in items] == ["ok"]
    assert sandbox.server.requests["submit"] == 1
    assert (run.summary.done, run.summary.invalid) == (1, 2)
    rows = _rows(tmp_path)
    assert [(row["line"], row["status"]) for row in rows] == [
        (1, "done"),
        (2, "invalid"),
        (3, "invalid"),
    ]
    assert rows[2]["error"]["fields"] == ["sead"]


class CountingLedger(MemoryLedger):
    """Tracks how many lines are between ``submitting`` and finished at once."""

    def __init__(self) -> None:
        super().__init__()
        self.active: set[str] = set()
        self.peak = 0

    async def update(self, batch: str, key: str, *, owner: str, **changes: Any) -> bool:
        state = changes.get("state")
        if state == "submitting":
            self.active.add(key)
            self.peak = max(self.peak, len(self.active))
        elif state in ("done", "failed"):
            self.active.discard(key)
        return await super().update(batch, key, owner=owner, **changes)


async def test_max_concurrency_bounds_the_lines_in_flight(sleeps: Sleeps, tmp_path: Path) -> None:
    sandbox = jimeng.Sandbox(stages=Stages(generate_polls=3))
    ledger = CountingLedger()
    requests = [{"prompt": f"cat {n}"} for n in range(9)]
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        items, _ = await _run(client, requests, out=tmp_path, store=ledger, max_concurrency=3)
    assert len(items) == 9
    assert ledger.peak == 3
    assert sandbox.server.requests["submit"] == 9


def test_max_concurrency_is_checked() -> None:
    client = jimeng.Client(jimeng.Sandbox())
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(jimeng.ValidationError, match="max_concurrency"):
            client.batch([], max_concurrency=bad)  # type: ignore[arg-type]


async def test_files_take_the_extension_of_their_content(
    sandbox: jimeng.Sandbox, sleeps: Sleeps, tmp_path: Path
) -> None:
    async with jimeng.Client(sandbox, sleep=sleeps, journal=True) as client:
        (item,), _ = await _run(client, [{"id": "x", "prompt": "a cat"}], out=tmp_path)
        (entry,) = await client.tasks.history()
    assert [path.name for path in item.paths] == ["x.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl", "x.png"]
    # The journal knows where the file ended up (and only there: the staging copy is gone).
    assert entry.saved == (str((tmp_path / "x.png").resolve()),)


# -- secrets echoed by a relay ------------------------------------------------------------------

RELAY = "http://127.0.0.1:5100"


async def test_a_relay_key_in_a_result_link_is_not_recorded(sleeps: Sleeps, tmp_path: Path) -> None:
    """A relay may sign its links with the caller's key: the file is saved, the link is
    recorded without the key (results.jsonl, the ledger, the item)."""
    key = "canary-batch-relay-key-51c7"
    link = f"http://cdn.test/i.png?key={key}"
    ledger = MemoryLedger()
    async with jimeng.Client(jimeng.Gateway(RELAY, api_key=key), sleep=sleeps) as client:
        with aioresponses() as mocked:
            mocked.post(f"{RELAY}/v1/images/generations", payload={"data": [{"url": link}]})
            mocked.get(link, body=render_png("x", 8, 8), headers={"Content-Type": "image/png"})
            (item,), _ = await _run(
                client, [{"prompt": "a cat"}], out=tmp_path, store=ledger, name="relay"
            )
    redacted = [{"url": "http://cdn.test/i.png?key=<redacted>", "expires_at": None}]
    assert item.status == "done" and item.paths[0].read_bytes().startswith(b"\x89PNG")
    assert list(item.urls) == redacted
    assert _rows(tmp_path)[0]["urls"] == redacted
    records = await ledger.records("relay")
    assert [list(record.urls) for record in records.values()] == [redacted]


async def test_an_echoed_error_code_is_not_recorded(sleeps: Sleeps, tmp_path: Path) -> None:
    token = "us-canarybatchsession0e4d"
    gateway = jimeng.Gateway(RELAY, token=token, async_tasks=True)
    async with jimeng.Client(gateway, sleep=sleeps) as client:
        with aioresponses() as mocked:
            mocked.post(
                f"{RELAY}/v1/images/generations",
                status=401,
                payload={"error": {"message": "bad token", "code": token}},
            )
            (item,), _ = await _run(client, [{"prompt": "a cat"}], out=tmp_path)
    error = {
        "class": "AuthenticationError",
        "code": "<redacted>",
        "message": "bad token",
        "maybe_accepted": False,
    }
    assert item.error == error
    assert _rows(tmp_path)[0]["error"] == error


async def test_local_reference_files_are_sent_with_their_lines(
    sandbox: jimeng.Sandbox, sleeps: Sleeps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    reference, frame = png(512, 512, prompt="reference"), png(1280, 720, prompt="frame")
    (tmp_path / "ref.png").write_bytes(reference)
    (tmp_path / "frame.png").write_bytes(frame)
    requests = [
        {"id": "rel", "prompt": "watercolor", "images": ["ref.png"]},
        {"id": "abs", "prompt": "watercolor", "images": [str(tmp_path / "ref.png")]},
        {"id": "clip", "kind": "video", "prompt": "pan", "image": "frame.png"},
    ]
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        items, run = await _run(client, requests, out=tmp_path / "out")
        sent = {
            task.prompt: task.params["binary_data_base64"] for task in sandbox.server.tasks.values()
        }
    assert [(item.id, item.status) for item in sorted(items, key=lambda i: i.line)] == [
        ("rel", "done"),
        ("abs", "done"),
        ("clip", "done"),
    ]
    assert sandbox.server.requests["submit"] == 3
    assert {prompt: [base64.b64decode(data) for data in sent[prompt]] for prompt in sent} == {
        "watercolor": [reference],
        "pan": [frame],
    }
    assert (run.summary.done, run.summary.invalid) == (3, 0)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "abs.png",
        "clip.mp4",
        "rel.png",
        "results.jsonl",
    ]


async def test_an_invalid_line_keeps_its_id_in_the_results(
    sandbox: jimeng.Sandbox, sleeps: Sleeps, tmp_path: Path
) -> None:
    requests = [
        {"id": "ok", "prompt": "a cat"},
        {"id": "bad1", "prompt": "a cat", "size": "9K"},
        {"id": "bad2", "prompt": "a cat", "sead": 3},
        {"prompt": "a cat", "images": ["missing.png"]},
        {"id": "bad id!", "prompt": "a cat"},
    ]
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        await _run(client, requests, out=tmp_path, skip_invalid=True)
    rows = _rows(tmp_path)
    derived = rows[3]["id"]
    assert derived.startswith("line4-")
    assert [(row["id"], row["line"], row["status"]) for row in rows] == [
        ("ok", 1, "done"),
        ("bad1", 2, "invalid"),
        ("bad2", 3, "invalid"),
        (derived, 4, "invalid"),
        ("bad id!", 5, "invalid"),
    ]
    assert rows[3]["error"]["message"] == "images[0]: no such file: missing.png"


# -- a batch belongs to one backend; its results say where the files are -----------------------


SHOTS = [{"id": "a", "prompt": "a cat"}, {"id": "b", "prompt": "a dog"}]


async def _in_order(
    client: jimeng.Client, requests: Any, **options: Any
) -> tuple[list[BatchItem], Any]:
    items, run = await _run(client, requests, **options)
    return sorted(items, key=lambda item: item.line), run


async def test_a_batch_name_is_refused_to_another_backend(sleeps: Sleeps, tmp_path: Path) -> None:
    ledger = MemoryLedger()
    async with jimeng.Client(jimeng.Sandbox(), sleep=sleeps) as client:
        await _in_order(client, SHOTS, out=tmp_path / "shots", store=ledger, name="prod")
    other = jimeng.Sandbox("ark")
    async with jimeng.Client(other, sleep=sleeps) as client:
        with pytest.raises(jimeng.ValidationError) as caught:
            await _in_order(client, SHOTS, out=tmp_path / "ark", store=ledger, name="prod")
        assert caught.value.field == "name"
        assert str(caught.value) == (
            "name: the batch 'prod' runs on sandbox (volcengine) in-process, and this client is "
            "sandbox (ark) in-process: its saved lines and accepted tasks belong to that "
            "backend. Run it with that backend, or give this run a name of its own to start a "
            "separate batch"
        )
        assert other.server.requests["submit"] == 0
        assert not (tmp_path / "ark").exists()
        items, _ = await _in_order(
            client, SHOTS, out=tmp_path / "ark", store=ledger, name="prod-ark"
        )
    assert [(item.id, item.status, item.skipped) for item in items] == [
        ("a", "done", False),
        ("b", "done", False),
    ]
    assert other.server.requests["submit"] == 2
    # The next in-process sandbox of the same protocol is the same backend: nothing to redo.
    again = jimeng.Sandbox()
    async with jimeng.Client(again, sleep=sleeps) as client:
        items, _ = await _in_order(client, SHOTS, out=tmp_path / "shots", store=ledger, name="prod")
    assert [(item.status, item.skipped) for item in items] == [("done", True)] * 2
    assert again.server.requests["submit"] == 0


async def test_a_rerun_into_another_folder_copies_the_files_there(
    sandbox: jimeng.Sandbox, sleeps: Sleeps, tmp_path: Path
) -> None:
    ledger = MemoryLedger()
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        await _in_order(client, SHOTS, out=tmp_path / "first", store=ledger, name="b")
        polls = sandbox.server.requests["poll"]
        items, run = await _in_order(client, SHOTS, out=tmp_path / "second", store=ledger, name="b")
    assert [(item.id, item.status, item.skipped) for item in items] == [
        ("a", "done", False),
        ("b", "done", False),
    ]
    assert [item.paths for item in items] == [
        (tmp_path / "second" / "a.png",),
        (tmp_path / "second" / "b.png",),
    ]
    for name in ("a.png", "b.png"):
        assert (tmp_path / "second" / name).read_bytes() == (tmp_path / "first" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "second").iterdir()) == [
        "a.png",
        "b.png",
        "results.jsonl",
    ]
    assert [row["paths"] for row in _rows(tmp_path / "second")] == [
        [str(tmp_path / "second" / "a.png")],
        [str(tmp_path / "second" / "b.png")],
    ]
    # Copied: no submit, no poll.
    assert (sandbox.server.requests["submit"], sandbox.server.requests["poll"]) == (2, polls)
    assert (run.summary.done, run.summary.skipped, run.summary.submits) == (2, 0, 2)


async def test_a_deleted_file_is_saved_again_from_its_task(
    sandbox: jimeng.Sandbox, sleeps: Sleeps, tmp_path: Path
) -> None:
    ledger = MemoryLedger()
    async with jimeng.Client(sandbox, sleep=sleeps, journal=tmp_path / "j.sqlite3") as client:
        first, _ = await _in_order(client, SHOTS, out=tmp_path, store=ledger, name="b")
        original = (tmp_path / "b.png").read_bytes()
        (tmp_path / "b.png").unlink()
        items, run = await _in_order(client, SHOTS, out=tmp_path, store=ledger, name="b")
        entry = await client.journal.get(first[1].ref or "")  # type: ignore[union-attr]
    assert [(item.id, item.status, item.skipped) for item in items] == [
        ("a", "done", True),
        ("b", "done", False),
    ]
    assert (tmp_path / "b.png").read_bytes() == original
    assert items[1].ref == first[1].ref
    assert sandbox.server.requests["submit"] == 2
    assert (run.summary.done, run.summary.skipped, run.summary.submits) == (2, 1, 2)
    assert entry is not None and entry.saved == (str((tmp_path / "b.png").resolve()),)


async def test_a_deleted_file_whose_task_is_gone_is_reported_not_saved(
    sleeps: Sleeps, tmp_path: Path
) -> None:
    ledger = MemoryLedger()
    async with jimeng.Client(jimeng.Sandbox(), sleep=sleeps) as client:
        first, _ = await _in_order(client, SHOTS, out=tmp_path, store=ledger, name="b")
    (tmp_path / "b.png").unlink()
    later = jimeng.Sandbox()  # a new in-process sandbox: the old one's tasks are gone
    async with jimeng.Client(later, sleep=sleeps) as client:
        items, run = await _in_order(client, SHOTS, out=tmp_path, store=ledger, name="b")
        assert later.server.requests["submit"] == 0
        failed = items[1]
        assert (failed.id, failed.status, failed.skipped, failed.paths) == (
            "b",
            "failed",
            False,
            (),
        )
        assert failed.error is not None
        assert failed.error["class"] == "TaskExpiredError"
        assert failed.error["message"] == (
            f"the files saved earlier are not in {tmp_path} ({tmp_path / 'b.png'}) and the task "
            f"could not give them again: task {first[1].ref.split(':')[1]} is unknown to the "  # type: ignore[union-attr]
            "server or expired (not_found); submit again; rerun with --retry-failed to "
            "generate the line again"
        )
        row = _rows(tmp_path)[1]
        assert (row["status"], row["paths"], row["submits"]) == ("failed", [], 1)
        assert (run.summary.done, run.summary.failed, run.summary.skipped) == (1, 1, 1)

        items, run = await _in_order(
            client, SHOTS, out=tmp_path, store=ledger, name="b", retry_failed=True
        )
    assert [(item.status, item.skipped) for item in items] == [("done", True), ("done", False)]
    assert later.server.requests["submit"] == 1
    assert (tmp_path / "b.png").read_bytes().startswith(b"\x89PNG")
    assert run.summary.submits == 3


async def test_a_submit_refused_outright_costs_nothing(
    sandbox: jimeng.Sandbox, sleeps: Sleeps, tmp_path: Path
) -> None:
    requests = [{"id": "ok", "prompt": "a cat"}, {"id": "no", "prompt": f"a cat {BLOCK_INPUT}"}]
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        items, run = await _in_order(client, requests, out=tmp_path)
    refused = next(item for item in items if item.id == "no")
    assert refused.error is not None
    assert (refused.status, refused.ref, refused.error["class"]) == (
        "failed",
        None,
        "ContentPolicyError",
    )
    assert [(row["id"], row["submits"]) for row in _rows(tmp_path)] == [("ok", 1), ("no", 0)]
    assert (run.summary.done, run.summary.failed, run.summary.submits) == (1, 1, 1)
