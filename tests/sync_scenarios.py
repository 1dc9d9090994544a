"""The client's integration scenarios, written for ``jimeng.SyncClient``.

Plain functions with plain asserts, so the same code runs three ways (tests/test_sync.py): from
pytest, from inside a running event loop (as in a Jupyter cell), and as a script in a fresh
interpreter (``python -m tests.sync_scenarios``). Nothing sleeps for real: every client gets a
recording ``sleep``.
"""

from __future__ import annotations

import concurrent.futures
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import jimeng
from jimeng._sync import _Portal
from jimeng.sandbox import BLOCK_INPUT, BLOCK_OUTPUT, Sandbox, Stages, build_server
from jimeng.sandbox._media import mp4_info, png_size


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def client_for(sandbox: Sandbox, sleeps: Sleeps | None = None) -> jimeng.SyncClient:
    return jimeng.SyncClient(sandbox, sleep=sleeps or Sleeps(), rng=random.Random(0))


def staged() -> Sandbox:
    return Sandbox(stages=Stages(queue_polls=1, generate_polls=1))


def generate_saves_real_pngs(tmp: Path) -> None:
    with client_for(staged()) as client:
        result = client.images.generate("a white Siamese cat on a windowsill", size="1K")
        assert isinstance(result, jimeng.ImageResult) and len(result.images) == 1
        assert result.prompt == "a white Siamese cat on a windowsill"
        paths = result.save(tmp)
        assert [p.parent for p in paths] == [tmp]
        assert paths[0].name.startswith("jimeng_") and paths[0].suffix == ".png"
        assert png_size(paths[0].read_bytes()) == (1024, 1024)
        assert list(tmp.glob(".jimeng-*")) == []


def several_images_with_a_file_name(tmp: Path) -> None:
    with client_for(staged()) as client:
        result = client.images.generate("3 images of a sunset", width=2560, height=1440)
        paths = result.save(tmp / "sunset.png")
        assert [p.name for p in paths] == ["sunset_1.png", "sunset_2.png", "sunset_3.png"]
        assert all(png_size(p.read_bytes()) == (2560, 1440) for p in paths)
        one = result.images[1].save(tmp / "second.png")
        assert one.read_bytes() == paths[1].read_bytes()


def base64_results_are_decoded(tmp: Path) -> None:
    with client_for(staged()) as client:
        image = client.images.generate("a lighthouse", size="1K", return_url=False).images[0]
        assert image.url is None and png_size(image.read()) == (1024, 1024)
        assert image.to_pil().size == (1024, 1024)


def submit_updates_and_result(tmp: Path) -> None:
    sandbox = staged()
    with client_for(sandbox) as client:
        handle = client.images.submit("mountain sunset", width=2560, height=1440)
        assert handle.status is jimeng.TaskStatus.QUEUED
        assert handle.ref == f"jimeng_t2i_v40:{handle.id}"
        seen = [update.status.value for update in handle.updates()]
        assert seen == ["queued", "running", "succeeded"]
        result = handle.result()
        assert result.task_id == handle.id and len(result.save(tmp)) == len(result) == 1
        assert sandbox.server.polls[handle.id] == 3


def poll_waits_follow_the_schedule(tmp: Path) -> None:
    sleeps = Sleeps()
    with client_for(staged(), sleeps) as client:
        policy = jimeng.PollPolicy(interval=2.0, backoff=2.0, max_interval=3.0, max_attempts=10)
        client.images.generate("a cat", size="1K", poll=policy)
    assert sleeps.calls == [2.0, 3.0, 3.0]


def resume_from_ref_in_a_new_client(tmp: Path) -> None:
    sandbox = staged()
    with client_for(sandbox) as first:
        handle = first.images.submit("a koi pond", size="1K")
        with client_for(Sandbox(url=sandbox.url)) as other:
            result = other.tasks.wait(handle.ref)
            assert result.task_id == handle.id and png_size(result.images[0].read())
            again = other.tasks.get(handle.id, model="jimeng-4.0")
            assert again.status is jimeng.TaskStatus.SUCCEEDED
            resumed = other.tasks.resume(handle.ref)
            assert resumed.refresh().status is jimeng.TaskStatus.SUCCEEDED


def callbacks_run(tmp: Path) -> None:
    submitted: list[str] = []
    statuses: list[str] = []
    with client_for(staged()) as client:
        client.images.generate(
            "a cat",
            size="1K",
            on_submit=lambda task: submitted.append(task.id),
            on_update=lambda task: statuses.append(task.status.value),
        )
    assert len(submitted) == 1 and statuses == ["queued", "running", "succeeded"]


def timeout_keeps_the_task_id(tmp: Path) -> None:
    slow = Sandbox(stages=Stages(queue_polls=50))
    with client_for(slow) as client:
        try:
            client.images.generate(
                "a cat", size="1K", poll=jimeng.PollPolicy(interval=1, max_attempts=3)
            )
        except jimeng.TaskTimeoutError as error:
            assert error.task_id and error.task_ref and error.task_id in str(error)
            slow.server.tasks[error.task_id].stages = Stages()
            assert client.tasks.wait(error.task_ref).task_id == error.task_id
        else:
            raise AssertionError("no TaskTimeoutError")


def moderation_errors(tmp: Path) -> None:
    with client_for(staged()) as client:
        try:
            client.images.generate(f"a cat {BLOCK_INPUT}", size="1K")
        except jimeng.ContentPolicyError as error:
            assert error.code == 50412 and error.task_id is None
        else:
            raise AssertionError("no ContentPolicyError at submit")
        handle = client.images.submit(f"a cat {BLOCK_OUTPUT}", size="1K")
        try:
            handle.result()
        except jimeng.ContentPolicyError as error:
            assert error.code == 50511 and error.task_id == handle.id
        else:
            raise AssertionError("no ContentPolicyError after acceptance")


def validation_before_any_request(tmp: Path) -> None:
    sandbox = staged()
    with client_for(sandbox) as client:
        try:
            client.images.generate("a cat", size="9K")
        except jimeng.ValidationError as error:
            assert error.field == "size"
        else:
            raise AssertionError("no ValidationError")
    assert sum(sandbox.server.requests.values()) == 0


def video_and_media_after_close(tmp: Path) -> None:
    server = build_server()
    host = _Portal()  # a loop of its own serves the sandbox after the client is gone
    host.run(server.start())
    try:
        with client_for(Sandbox(server=server)) as client:
            clip = client.videos.generate("a golden retriever", mode="t2v_720p")
            assert isinstance(clip, jimeng.VideoResult)
        # closed: the video still reads and saves, with a session of its own
        path = clip.save(tmp / "dog.mp4")
        assert round(mp4_info(path.read_bytes()).duration) == 5
        assert clip.read() == path.read_bytes()
    finally:
        host.run(server.stop())
        host.close()


def gateway_tasks_and_account(tmp: Path) -> None:
    sandbox = Sandbox("gateway", stages=Stages(queue_polls=1, generate_polls=1))
    with client_for(sandbox) as client:
        handle = client.videos.submit("a dog", model="jimeng-video-3.5-pro", duration=10)
        task = client.tasks.get(handle.id)
        assert task.kind is jimeng.TaskKind.VIDEO and task.model == "jimeng-video-3.5-pro"
        clip = client.tasks.wait(handle.ref)
        assert round(mp4_info(clip.read()).duration) == 10
        listed = client.tasks.list(kind="video")
        assert [t.id for t in listed] == [handle.id]
        queued = client.images.submit("later")
        cancelled = client.tasks.cancel(queued.id)
        assert cancelled.status is jimeng.TaskStatus.CANCELLED
    credited = Sandbox("gateway", options={"token": "empty-session-1,us-session-2"})
    with client_for(credited) as client:
        empty, us = client.account.credits()
        assert (empty.total, us.total) == (0, 66)
        assert [s.live for s in client.account.check()] == [True, None]


def threads_share_one_client(tmp: Path) -> None:
    sandbox = staged()
    with client_for(sandbox) as client:
        quick = client.with_options(timeout=30)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = list(
                pool.map(lambda n: quick.images.generate(f"cat {n}", size="1K"), range(4))
            )
        assert sorted(r.prompt or "" for r in results) == [f"cat {n}" for n in range(4)]
        assert len({r.task_id for r in results}) == 4
    assert sandbox.server.requests["submit"] == 4


def batch_iterates_then_sums_up(tmp: Path) -> None:
    sandbox = staged()
    lines = [{"id": "red", "prompt": "a red cube"}, {"id": "blue", "prompt": "a blue cube"}]
    with client_for(sandbox) as client:
        run = client.batch(lines, out=tmp / "shots")
        assert run.summary is None  # nothing ran yet
        first = next(run)  # a plain iterator: next() and for alike
        items = sorted([first, *run], key=lambda item: item.id)
        assert [(item.id, item.status) for item in items] == [("blue", "done"), ("red", "done")]
        assert [path.name for item in items for path in item.paths] == ["blue.png", "red.png"]
        summary = run.summary
        assert summary is not None
        assert (summary.lines, summary.done, summary.failed, summary.submits) == (2, 2, 0, 2)
    assert sandbox.server.requests["submit"] == 2


SCENARIOS: list[Callable[[Path], None]] = [
    generate_saves_real_pngs,
    several_images_with_a_file_name,
    base64_results_are_decoded,
    submit_updates_and_result,
    poll_waits_follow_the_schedule,
    resume_from_ref_in_a_new_client,
    callbacks_run,
    timeout_keeps_the_task_id,
    moderation_errors,
    validation_before_any_request,
    video_and_media_after_close,
    gateway_tasks_and_account,
    threads_share_one_client,
    batch_iterates_then_sums_up,
]


def main() -> int:
    for scenario in SCENARIOS:
        with tempfile.TemporaryDirectory() as folder:
            scenario(Path(folder))
        print(f"ok {scenario.__name__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
