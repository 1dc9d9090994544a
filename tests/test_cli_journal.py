"""The command line and the task journal: ``accepted:``, signals, ``task resume``, ``--local``.

The in-process tests run ``main()`` against a sandbox served from a thread; the crash tests run
real processes (a served sandbox, a command killed with SIGKILL after acceptance, a new command
that resumes) and count the submits the sandbox saw.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

import jimeng
from jimeng.cli import ExitCode, _app, main
from jimeng.sandbox import SandboxServer, Stages, build_server
from tests._processes import stop

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sleeps: Any) -> Path:
    for key in list(os.environ):
        if key.startswith(("JIMENG_", "VOLC_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("JIMENG_HOME", str(tmp_path / "home"))
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    monkeypatch.chdir(project)
    monkeypatch.setattr(_app, "_client_options", {"sleep": sleeps})
    return project


@pytest.fixture
def served() -> Iterator[SandboxServer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = build_server(stages=Stages(queue_polls=1, generate_polls=1))
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_resume_finishes_what_a_no_wait_left_and_submits_nothing(
    capsys: pytest.CaptureFixture[str], served: SandboxServer, isolated: Path
) -> None:
    code, ref, err = run(capsys, "image", "a cat", "--sandbox-url", served.url, "--no-wait", "-q")
    assert code == 0
    ref = ref.strip()
    assert err == f"accepted: {ref}\n"

    code, out, err = run(capsys, "task", "resume", "--sandbox-url", served.url, "--json")
    assert code == 0, err
    (doc,) = json.loads(out)["tasks"]
    assert doc["ref"] == ref and doc["status"] == "succeeded"
    (saved,) = doc["saved"]
    assert Path(saved).parent == isolated / "pic"
    assert Path(saved).read_bytes().startswith(PNG)
    assert served.requests["submit"] == 1

    code, out, err = run(capsys, "task", "resume", "--sandbox-url", served.url)
    assert (code, out) == (0, "")
    assert err == "jimeng: no unfinished tasks in the journal\n"


def test_resume_says_its_progress_and_keeps_going_after_a_failure(
    capsys: pytest.CaptureFixture[str], served: SandboxServer
) -> None:
    from jimeng.sandbox import FAIL_TASK

    refs = []
    for prompt in (f"a cat {FAIL_TASK}", "a dog"):
        _, out, _ = run(capsys, "image", prompt, "--sandbox-url", served.url, "--no-wait", "-q")
        refs.append(out.strip())
    code, out, err = run(capsys, "task", "resume", "--sandbox-url", served.url)
    assert code == ExitCode.TASK_FAILED
    lines = err.splitlines()
    assert lines[0] == f"resuming 1/2: {refs[0]}"
    assert lines[1].startswith("jimeng: error: ")
    assert f"resuming 2/2: {refs[1]}" in lines
    assert out.startswith("**Generation Info:**")  # the second one was saved and printed
    assert served.requests["submit"] == 2


def test_a_look_through_another_sandbox_leaves_the_journal_as_it_was(
    capsys: pytest.CaptureFixture[str], served: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    code, ref, err = run(capsys, "image", "x", "--sandbox-url", served.url, "--no-wait", "-q")
    assert code == 0, err
    ref = ref.strip()
    code, out, err = run(capsys, "task", "get", ref, "--sandbox", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "expired"  # the in-process sandbox never saw it
    assert f"journal: task {ref} was submitted through another endpoint or account" in caplog.text

    code, out, _ = run(capsys, "task", "list", "--local", "--json")
    assert [(t["ref"], t["status"]) for t in json.loads(out)["tasks"]] == [(ref, "queued")]

    code, out, err = run(capsys, "task", "resume", "--sandbox-url", served.url, "--json")
    assert code == 0, err
    (doc,) = json.loads(out)["tasks"]
    assert (doc["ref"], doc["status"]) == (ref, "succeeded")
    code, out, _ = run(capsys, "task", "list", "--local", "--json")
    (task,) = json.loads(out)["tasks"]
    assert (task["status"], task["saved"]) == ("succeeded", doc["saved"])
    assert served.requests["submit"] == 1


def test_resume_named_refs_and_no_journal(
    capsys: pytest.CaptureFixture[str], served: SandboxServer
) -> None:
    _, out, _ = run(
        capsys, "image", "a cat", "--sandbox-url", served.url, "--no-wait", "-q", "--no-journal"
    )
    ref = out.strip()
    code, out, err = run(capsys, "task", "resume", "--sandbox-url", served.url, "--json")
    assert json.loads(out) == {"tasks": []}  # --no-journal: nothing was recorded
    code, out, err = run(capsys, "--no-journal", "task", "resume", "--sandbox-url", served.url)
    assert code == ExitCode.USAGE
    assert err.startswith("jimeng: error: --no-journal: without REF, task resume reads")
    code, out, err = run(capsys, "task", "resume", ref, "--sandbox-url", served.url, "-q")
    assert code == 0, err
    assert Path(out.strip()).read_bytes().startswith(PNG)


def test_task_list_local_shows_the_journal(
    capsys: pytest.CaptureFixture[str], served: SandboxServer
) -> None:
    code, out, _ = run(capsys, "image", "a cat", "--sandbox-url", served.url, "--json")
    doc = json.loads(out)
    run(capsys, "image", "a dog", "--sandbox-url", served.url, "--no-wait", "-q")
    code, table, _ = run(capsys, "task", "list", "--local")  # no backend needed
    assert code == 0
    rows = [line for line in table.splitlines() if line.startswith("| jimeng_t2i_v40:")]
    assert len(rows) == 2
    assert re.match(
        r"\| jimeng_t2i_v40:\d+ \| sandbox \| image \| jimeng_t2i_v40 \| queued \|", rows[0]
    )
    assert rows[1].startswith(f"| {doc['ref']} | sandbox | image | jimeng_t2i_v40 | succeeded |")
    assert rows[1].endswith(f"| {doc['saved'][0]} |")
    code, out, _ = run(capsys, "task", "list", "--local", "--status", "succeeded", "--json")
    listed = json.loads(out)
    assert [task["ref"] for task in listed["tasks"]] == [doc["ref"]]
    assert listed["tasks"][0]["saved"] == doc["saved"]
    assert listed["journal"].endswith("journal.sqlite3")
    code, _, err = run(capsys, "task", "list", "--local", "--status", "done")
    assert code == ExitCode.USAGE
    assert "--status: unknown value 'done'" in err


def test_a_cancelled_task_stays_cancelled_when_the_server_forgets_it(
    capsys: pytest.CaptureFixture[str], served: SandboxServer
) -> None:
    _, out, _ = run(capsys, "image", "a cat", "--sandbox-url", served.url, "--no-wait", "-q")
    ref = out.strip()
    task_id = ref.split(":")[1]
    code, out, _ = run(capsys, "task", "cancel", ref, "--sandbox-url", served.url, "-q")
    assert (code, out) == (0, "cancelled\n")
    # The service answers "not found" for it from now on; the journal knows better.
    for _ in range(2):
        code, out, err = run(capsys, "task", "wait", ref, "--sandbox-url", served.url)
        assert (code, out) == (ExitCode.TASK_FAILED, "")
        assert err.splitlines() == [
            f"jimeng: error: task {task_id} was cancelled",
            "  task status cancelled",
            f"  task id {task_id}",
            f"  details: jimeng task get {ref} --sandbox-url {served.url}",
            "  exit code 5 (task failed)",
        ]
    code, out, _ = run(capsys, "task", "get", ref, "--sandbox-url", served.url, "--json")
    assert code == 0
    assert (json.loads(out)["status"], json.loads(out)["raw_status"]) == ("cancelled", "not_found")
    code, out, _ = run(capsys, "task", "list", "--local", "--json")
    assert [task["status"] for task in json.loads(out)["tasks"]] == ["cancelled"]
    # Without the journal, nothing tells the two apart.
    code, _, err = run(capsys, "task", "wait", ref, "--sandbox-url", served.url, "--no-journal")
    assert code == ExitCode.TASK_FAILED
    assert err.startswith(f"jimeng: error: task {task_id} is unknown to the server or expired")


# -- real processes ----------------------------------------------------------------------------


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JIMENG_", "VOLC_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["JIMENG_HOME"] = str(home)
    env["JIMENG_POLL_INTERVAL"] = "0.05"
    env.update(extra)
    return env


SERVE_OPTIONS = ("--port", "0", "--generate-delay", "1.5")


@pytest.fixture
def sandbox_process(isolated: Path) -> Iterator[str]:
    """``jimeng sandbox serve`` in its own process; tasks take 1.5 s to generate."""
    server = subprocess.Popen(
        [sys.executable, "-m", "jimeng", "sandbox", "serve", *SERVE_OPTIONS],
        cwd=isolated,
        env=_env(isolated / "unused"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert banner.startswith("jimeng sandbox serving on http://127.0.0.1:"), banner
        yield banner.split()[-1]
    finally:
        stop(server)


def health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/_sandbox/health", timeout=10) as answer:
        data: dict[str, Any] = json.load(answer)
    return data


def wait_for_accepted(process: subprocess.Popen[str]) -> str:
    """Read the process's stderr until it says ``accepted: <ref>``; return the ref."""
    stream: IO[str] | None = process.stderr
    assert stream is not None
    for line in stream:
        if line.startswith("accepted: "):
            return line.split(": ", 1)[1].strip()
    raise AssertionError(f"no 'accepted:' line; exit code {process.wait(10)}")


def start(args: list[str], cwd: Path, home: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.subprocess
def test_a_killed_command_is_resumed_by_another_with_one_submit(
    sandbox_process: str, isolated: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    command = start(
        ["-m", "jimeng", "image", "a cat", "--sandbox-url", sandbox_process, "--json"],
        isolated,
        home,
    )
    try:
        ref = wait_for_accepted(command)  # also with --json
        command.kill()  # SIGKILL: no handler runs, nothing is printed
    finally:
        command.communicate(timeout=20)
    assert command.returncode == -signal.SIGKILL
    assert not (isolated / "pic").exists()

    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "jimeng",
            "task",
            "resume",
            "--json",
            "--sandbox-url",
            sandbox_process,
        ],
        cwd=isolated,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr
    (doc,) = json.loads(resumed.stdout)["tasks"]
    assert doc["ref"] == ref and doc["status"] == "succeeded"
    (saved,) = doc["saved"]
    assert Path(saved).parent == isolated / "pic"
    assert Path(saved).read_bytes().startswith(PNG)
    assert health(sandbox_process)["requests"]["submit"] == 1


LIBRARY_SUBMIT = """
import asyncio, sys, jimeng
async def main():
    async with jimeng.Client(jimeng.Sandbox(url=sys.argv[1]), journal=True) as client:
        handle = await client.images.submit("a cat", return_url=False)
        print("accepted:", handle.ref, file=sys.stderr, flush=True)
        await handle.result()
        print("finished: the test should have killed this process", file=sys.stderr)
asyncio.run(main())
"""

LIBRARY_RESUME = """
import asyncio, json, sys, jimeng
async def main():
    async with jimeng.Client(jimeng.Sandbox(url=sys.argv[1]), journal=True) as client:
        done = []
        for handle in await client.tasks.unfinished():
            result = await handle.result()
            paths = await result.save(sys.argv[2])
            done.append({"ref": handle.ref, "paths": [str(p) for p in paths],
                         "inline": result.images[0].url is None})
        history = await client.tasks.history()
        print(json.dumps({"done": done, "saved": [list(e.saved) for e in history]}))
asyncio.run(main())
"""


@pytest.mark.subprocess
def test_a_killed_library_process_is_resumed_from_the_journal(
    sandbox_process: str, isolated: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    process = start(["-c", LIBRARY_SUBMIT, sandbox_process], isolated, home)
    try:
        ref = wait_for_accepted(process)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.communicate(timeout=20)
    assert process.returncode == -signal.SIGKILL

    out = tmp_path / "out"
    resumed = subprocess.run(
        [sys.executable, "-c", LIBRARY_RESUME, sandbox_process, str(out) + "/"],
        cwd=isolated,
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    (done,) = report["done"]
    assert done["ref"] == ref
    assert done["inline"] is True  # polled with the journalled return_url=False
    (path,) = done["paths"]
    assert Path(path).read_bytes().startswith(PNG)
    assert report["saved"] == [[str(Path(path).resolve())]]
    assert health(sandbox_process)["requests"]["submit"] == 1


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("number", "code", "name"),
    [(signal.SIGTERM, ExitCode.TERMINATED, "SIGTERM"), (signal.SIGHUP, ExitCode.HANGUP, "SIGHUP")],
)
def test_sigterm_and_sighup_stop_like_ctrl_c(
    sandbox_process: str, isolated: Path, tmp_path: Path, number: int, code: int, name: str
) -> None:
    command = start(
        ["-m", "jimeng", "image", "a cat", "--sandbox-url", sandbox_process],
        isolated,
        tmp_path / "home",
    )
    ref = wait_for_accepted(command)
    command.send_signal(number)
    _, err = command.communicate(timeout=20)
    assert command.returncode == code == {"SIGTERM": 143, "SIGHUP": 129}[name]
    assert f"jimeng: stopped by {name}" in err
    assert f"resume with: jimeng task wait {ref} --sandbox-url {sandbox_process}" in err
    resume = f"jimeng task resume --sandbox-url {sandbox_process}"
    assert f"or finish every unfinished task: {resume}\n" in err
    assert "Traceback" not in err


@pytest.mark.subprocess
def test_sigterm_with_json_prints_the_interruption_on_stdout(
    sandbox_process: str, isolated: Path, tmp_path: Path
) -> None:
    command = start(
        ["-m", "jimeng", "image", "a cat", "--sandbox-url", sandbox_process, "--json"],
        isolated,
        tmp_path / "home",
    )
    ref = wait_for_accepted(command)
    command.send_signal(signal.SIGTERM)
    out, err = command.communicate(timeout=20)
    assert command.returncode == ExitCode.TERMINATED
    error = json.loads(out)["error"]
    assert error == {
        "type": "Interrupted",
        "message": "stopped by SIGTERM",
        "signal": "SIGTERM",
        "exit_code": 143,
        "task_id": ref.split(":")[1],
        "ref": ref,
        "status": error["status"],
        "resume": f"jimeng task wait {ref} --sandbox-url {sandbox_process}",
        "resume_all": f"jimeng task resume --sandbox-url {sandbox_process}",
    }
    assert error["status"] in ("queued", "running")
    assert "jimeng: stopped by SIGTERM" in err


def test_exit_codes_follow_the_signal_numbers() -> None:
    assert ExitCode.INTERRUPTED == 128 + signal.SIGINT
    assert ExitCode.TERMINATED == 128 + signal.SIGTERM
    assert ExitCode.HANGUP == 128 + signal.SIGHUP
    assert jimeng.journal_path().name == "journal.sqlite3"
