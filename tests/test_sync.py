"""``jimeng.SyncClient``: the client's scenarios in sync code, in a running loop and in a script;
its surface kept in step with the async classes."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import textwrap
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import jimeng
from jimeng._handle import TaskHandle
from jimeng._sync import (
    SyncAccount,
    SyncImages,
    SyncTaskHandle,
    SyncTasks,
    SyncVideos,
    _Blocking,
)
from jimeng.resources.account import Account
from jimeng.resources.images import Images
from jimeng.resources.tasks import Tasks
from jimeng.resources.videos import Videos
from jimeng.sandbox import Stages
from tests import sync_scenarios
from tests.sync_scenarios import SCENARIOS, client_for, staged

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_scenario_in_plain_code(scenario: Any, tmp_path: Path) -> None:
    scenario(tmp_path)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
async def test_scenario_inside_a_running_loop(scenario: Any, tmp_path: Path) -> None:
    # As in a Jupyter cell: this coroutine's loop is running and blocked while the sync
    # client works on its own loop thread.
    scenario(tmp_path)


def test_scenarios_in_a_fresh_interpreter() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "tests.sync_scenarios"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [word for s in SCENARIOS for word in ("ok", s.__name__)]
    assert done.stderr == ""


PAIRS = [
    (jimeng.Client, jimeng.SyncClient),
    (Images, SyncImages),
    (Videos, SyncVideos),
    (Tasks, SyncTasks),
    (Account, SyncAccount),
    (TaskHandle, SyncTaskHandle),
]
RENAMED = {"aclose": "close"}


def public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p[0].__name__)
def test_every_async_method_has_its_sync_twin(pair: tuple[type, type]) -> None:
    async_cls, sync_cls = pair
    missing = sorted(
        name for name in public(async_cls) if RENAMED.get(name, name) not in public(sync_cls)
    )
    assert not missing, (
        f"{sync_cls.__name__} lacks {missing}: in jimeng/_sync.py add "
        f"`name = blocking({async_cls.__name__}.name)` for a method, a forwarding property for "
        "a property"
    )


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p[0].__name__)
def test_sync_twins_wrap_the_method_of_the_same_name(pair: tuple[type, type]) -> None:
    async_cls, sync_cls = pair
    for name in public(async_cls):
        original = inspect.getattr_static(async_cls, name)
        if isinstance(original, property | cached_property) or not callable(original):
            continue
        twin = inspect.getattr_static(sync_cls, RENAMED.get(name, name))
        if isinstance(twin, _Blocking):
            assert twin.__wrapped__ is original, name
        else:  # written out: same parameters
            assert inspect.signature(twin).parameters == inspect.signature(original).parameters
    assert inspect.signature(jimeng.SyncClient).parameters == (
        inspect.signature(jimeng.Client).parameters
    )


def test_types_reach_the_ide(tmp_path: Path) -> None:
    mypy_api = pytest.importorskip("mypy.api")
    snippet = tmp_path / "uses_sync.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from pathlib import Path
            import jimeng

            with jimeng.SyncClient(jimeng.Sandbox(), timeout=3) as client:
                result = client.images.generate("a cat", size="1K")
                paths: list[Path] = result.save("pic/")
                data: bytes = result.images[0].read()
                clip = client.videos.submit("a dog").result()
                path: Path = clip.save("dog.mp4")
                reveal_type(client.images.generate)
                client.images.generate("a cat", sizee="1K")
            """
        )
    )
    out, _, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(ROOT / ".mypy_cache"), str(snippet)]
    )
    lines = out.strip().splitlines()
    assert status == 1
    assert any("def (prompt: str, *, model: str | None =" in line for line in lines), out
    assert any("-> jimeng._sync.SyncImageResult" in line for line in lines), out
    errors = [line for line in lines if ": error:" in line]
    assert len(errors) == 1 and 'Unexpected keyword argument "sizee"' in errors[0], out


def test_callbacks_must_not_call_the_sync_client() -> None:
    with client_for(staged()) as client:

        def reentrant(task: jimeng.Task) -> None:
            client.tasks.get(task.ref)

        with pytest.raises(RuntimeError, match="from its own event loop thread"):
            client.images.generate("a cat", size="1K", on_update=reentrant)


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_ctrl_c_after_the_submit_names_the_task() -> None:
    sandbox = jimeng.Sandbox(stages=Stages(queue_polls=100_000))
    main = threading.main_thread().ident
    assert main is not None and threading.get_ident() == main

    def ctrl_c(task: jimeng.Task) -> None:  # the server has the task; the user presses Ctrl-C
        signal.pthread_kill(main, signal.SIGINT)

    with client_for(sandbox) as client, pytest.raises(KeyboardInterrupt) as caught:
        client.images.generate("a cat", size="1K", on_submit=ctrl_c)
    (task_id,) = sandbox.server.tasks
    error: Any = caught.value
    assert (error.task_id, error.task_ref) == (task_id, f"jimeng_t2i_v40:{task_id}")
    if sys.version_info >= (3, 11):
        assert error.__notes__ == [
            f"jimeng: task {task_id} keeps running server-side; resume it with "
            f"client.tasks.resume('jimeng_t2i_v40:{task_id}')"
        ]
    assert sandbox.server.requests["submit"] == 1


async def test_a_borrowed_session_is_refused() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(jimeng.ConfigurationError, match="cannot borrow an aiohttp session"):
            jimeng.SyncClient(jimeng.Sandbox(), session=session)


def test_close_is_idempotent_and_results_are_the_same_models() -> None:
    client = client_for(staged())
    result = client.images.generate("a cat", size="1K")
    handle = client.images.submit("a dog", size="1K")
    client.close()
    client.close()
    assert isinstance(result, jimeng.ImageResult) and isinstance(result.images[0], jimeng.Image)
    assert repr(result).startswith("<ImageResult 1 image ")
    assert repr(handle).startswith("<TaskHandle image queued")
    assert "<img " in result._repr_html_()
    with pytest.raises(jimeng.ConfigurationError, match="closed"):
        client.images.generate("a cat", size="1K")


def test_scenarios_module_lists_every_scenario() -> None:
    defined = {
        name
        for name, value in vars(sync_scenarios).items()
        if inspect.isfunction(value)
        and value.__module__ == sync_scenarios.__name__
        and list(inspect.signature(value).parameters) == ["tmp"]
    }
    assert defined == {s.__name__ for s in SCENARIOS}
