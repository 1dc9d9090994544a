"""The ``jimeng`` command line, run in-process with ``main(argv)`` against the sandbox (and once
for real as ``python -m jimeng``). No test waits: the CLI's clients get the recording sleep."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

import jimeng
from jimeng.backends import AccountBalance
from jimeng.cli import ExitCode, _app, _files, main
from jimeng.cli._exit import option_for
from jimeng.cli._progress import Progress, format_bytes, format_elapsed
from jimeng.models import (
    Image,
    ImageResult,
    Task,
    TaskFailure,
    TaskKind,
    TaskStatus,
    Video,
    VideoResult,
)
from jimeng.sandbox import BLOCK_INPUT, BLOCK_OUTPUT, FAIL_TASK, SandboxServer, Stages, build_server
from jimeng.sandbox._media import render_mp4, render_png
from tests._processes import stop

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"
NAME = re.compile(r"^jimeng_\d{8}_\d{6}_(\d+)\.png$")
CANARIES = {
    "VOLC_SECRETKEY": "canary-secret-key-7f3a9c",
    "JIMENG_SESSION_ID": "us-canary-session-5d1e8b",
    "JIMENG_GATEWAY_TOKEN": "canary-gateway-token-2c4d",
    "JIMENG_API_KEY": "canary-api-key-9e8f",
}


@attrs.frozen
class Outcome:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sleeps: Any) -> Path:
    """A clean environment, a project folder as cwd, and clients that never sleep."""
    for key in list(os.environ):
        if key.startswith(("JIMENG_", "VOLC_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("JIMENG_HOME", str(tmp_path / "jimeng-home"))  # the journal lives here
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n")
    monkeypatch.chdir(project)
    monkeypatch.setattr(_app, "_client_options", {"sleep": sleeps})
    return project


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*argv: str) -> Outcome:
        code = main(list(argv))
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


@pytest.fixture
def served() -> Iterator[SandboxServer]:
    """A sandbox serving from another thread, so ``main()`` can run its own event loop.
    Tasks stay queued for one poll and run for one more."""
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


def pngs(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if NAME.match(path.name))


def submitted(server: SandboxServer) -> dict[str, Any]:
    """The submit body of the only task the server received."""
    (task,) = server.tasks.values()
    return dict(task.params)


# -- success -------------------------------------------------------------------------------


def test_image_prints_generation_info_and_saves_under_pic(cli: Any, isolated: Path) -> None:
    result = cli("image", "A white Siamese cat on a windowsill, 2 images", "--sandbox")

    assert result.code == 0, result.err
    files = pngs(isolated / "pic")
    assert [NAME.match(p.name).group(1) for p in files] == ["1", "2"]  # type: ignore[union-attr]
    assert all(p.read_bytes().startswith(PNG) for p in files)
    lines = result.out.splitlines()
    assert lines[:4] == [
        "**Generation Info:**",
        "- Prompt: A white Siamese cat on a windowsill, 2 images",
        "- Size: 2048 × 2048",
        f"- Save Path: {isolated / 'pic'}",
    ]
    for number, path in enumerate(files, start=1):
        assert re.search(
            rf"^\*\*Image {number}:\*\* !\[Image {number}\]\(http://\S+\)$", result.out, re.M
        )
        assert f"- File: {path}" in lines
    assert result.out.count("- Link: http://127.0.0.1:") == 2
    # Not a terminal: no progress line, only the ref the moment the task was accepted.
    assert re.fullmatch(r"accepted: jimeng_t2i_v40:\d+\n", result.err)


def test_project_root_is_found_from_a_subfolder(cli: Any, tmp_path: Path, monkeypatch: Any) -> None:
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    deep = root / "src" / "deeper"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)

    assert cli("image", "a cat", "--sandbox", "-q").code == 0

    assert len(pngs(root / "pic")) == 1
    assert not (deep / "pic").exists()


def test_project_root_falls_back_to_the_start_folder(tmp_path: Path) -> None:
    assert _files.project_root(tmp_path, markers=("no-such-marker-here",)) == tmp_path.resolve()
    (tmp_path / ".claude").mkdir()
    assert _files.project_root(tmp_path / "x" / "y") == tmp_path.resolve()


def test_exact_size_to_an_explicit_file(cli: Any, isolated: Path) -> None:
    result = cli(
        "image", "Mountain sunset", "--width", "2560", "--height", "1440",
        "--output", "pic/sunset.png", "--sandbox", "--json",
    )  # fmt: skip

    assert result.code == 0, result.err
    doc = result.json()
    target = isolated / "pic" / "sunset.png"
    assert doc["saved"] == [str(target)]
    assert doc["images"][0]["width"] == 2560 and doc["images"][0]["height"] == 1440
    assert target.read_bytes().startswith(PNG)


def test_explicit_file_is_numbered_for_several_images(cli: Any, isolated: Path) -> None:
    result = cli("image", "three cats, 3 images", "-o", "out/cat.png", "--sandbox", "-q")

    assert result.code == 0
    names = [Path(line).name for line in result.out.splitlines()]
    assert names == ["cat_1.png", "cat_2.png", "cat_3.png"]
    assert all((isolated / "out" / name).is_file() for name in names)


def test_output_dir_and_no_save(cli: Any, isolated: Path) -> None:
    assert cli("image", "a cat", "--output-dir", "shots", "--sandbox", "-q").code == 0
    assert len(pngs(isolated / "shots")) == 1

    result = cli("image", "a dog", "--no-save", "--sandbox", "--json")
    assert result.code == 0
    doc = result.json()
    assert doc["saved"] == [] and len(doc["urls"]) == 1
    assert not (isolated / "pic").exists()


def test_json_is_one_document_and_stderr_stays_silent(cli: Any) -> None:
    result = cli("--json", "--sandbox", "image", "a cat")  # options before the command work too

    assert result.code == 0
    doc = result.json()
    assert {
        "task_id", "ref", "status", "urls", "saved", "model", "backend", "prompt", "images",
    } <= set(doc)  # fmt: skip
    assert doc["status"] == "succeeded"
    assert doc["backend"] == "sandbox"
    assert doc["ref"].endswith(doc["task_id"])
    assert doc["urls"] == [image["url"] for image in doc["images"]]
    assert result.err == f"accepted: {doc['ref']}\n"  # stderr says only that


def test_quiet_prints_only_paths(cli: Any, isolated: Path) -> None:
    result = cli("image", "a cat", "--sandbox", "--quiet")

    assert result.code == 0
    assert result.out.splitlines() == [str(pngs(isolated / "pic")[0])]
    assert re.fullmatch(r"accepted: \S+\n", result.err)


def test_only_given_options_are_sent(cli: Any, served: SandboxServer) -> None:
    assert cli("image", "a cat", "--sandbox-url", served.url, "-q").code == 0
    assert set(submitted(served)) == {"req_key", "prompt"}


def test_given_options_are_sent_as_given(cli: Any, served: SandboxServer) -> None:
    result = cli(
        "image", "a cat", "--size", "1K", "--scale", "0.7", "--force-single",
        "--images", "https://example.com/in.jpg", "--sandbox-url", served.url, "-q",
    )  # fmt: skip

    assert result.code == 0, result.err
    body = submitted(served)
    assert body == {
        "req_key": "jimeng_t2i_v40",
        "prompt": "a cat",
        "size": 1024 * 1024,
        "scale": 0.7,
        "force_single": True,
        "image_urls": ["https://example.com/in.jpg"],
    }


def test_no_wait_then_get_and_wait(cli: Any, served: SandboxServer, isolated: Path) -> None:
    result = cli("image", "a cat", "--sandbox-url", served.url, "--no-wait", "--json")
    assert result.code == 0
    doc = result.json()
    assert doc["status"] == "queued"
    assert doc["wait"] == f"jimeng task wait {doc['ref']} --sandbox-url {served.url}"
    assert served.polls[doc["task_id"]] == 0

    got = cli("task", "get", doc["ref"], "--sandbox-url", served.url, "--json")
    assert got.code == 0 and got.json()["status"] == "queued"

    waited = cli(*shlex.split(doc["wait"])[1:])
    assert waited.code == 0, waited.err
    assert "**Generation Info:**" in waited.out
    assert "- Prompt:" not in waited.out  # a resumed task's prompt is not known
    assert len(pngs(isolated / "pic")) == 1

    done = cli("task", "get", doc["ref"], "--sandbox-url", served.url)
    assert done.code == 0
    assert "- Status: succeeded (done)" in done.out
    assert "- Result 1: http://" in done.out


def test_no_wait_on_the_in_process_sandbox_warns(cli: Any) -> None:
    result = cli("image", "a cat", "--sandbox", "--no-wait")

    assert result.code == 0
    assert "**Task submitted:**" in result.out
    assert "jimeng sandbox serve" in result.err


SCALED = "width 10x10 scaled to 1024x1024: Volcengine 4.x takes an area from 1024x1024 to 4096x4096"


def test_the_backends_notes_reach_every_output_mode(cli: Any, isolated: Path) -> None:
    as_json = cli("image", "a cat", "--width", "10", "--height", "10", "--sandbox", "--json")
    doc = as_json.json()
    assert (as_json.code, doc["notes"]) == (0, [SCALED])
    assert doc["images"][0]["width"] == doc["images"][0]["height"] == 1024
    assert as_json.err == f"accepted: {doc['ref']}\n"  # stdout carries the note

    text = cli("image", "a cat", "--width", "10", "--height", "10", "--sandbox", "--no-save")
    assert text.code == 0
    assert re.fullmatch(rf"accepted: jimeng_t2i_v40:\d+\njimeng: note: {SCALED}\n", text.err)
    assert text.out.splitlines()[1:4] == [
        "- Prompt: a cat",
        "- Size: 1024 × 1024",  # what was made, not the 10 × 10 asked for
        "- Save Path: not saved",
    ]

    submitted = cli("image", "a cat", "--width", "10", "--height", "10", "--sandbox", "--no-wait",
                    "--json")  # fmt: skip
    assert submitted.json()["notes"] == [SCALED, _app.IN_PROCESS_SANDBOX]

    quiet = cli("image", "a cat", "--width", "10", "--height", "10", "--sandbox", "-q")
    assert re.fullmatch(r"accepted: jimeng_t2i_v40:\d+\n", quiet.err)  # -q: no notes


def test_one_image_shows_its_folder_as_the_save_path(cli: Any, isolated: Path) -> None:
    result = cli("image", "a cat", "--sandbox", "-o", "shots/cat.png")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[3] == f"- Save Path: {isolated / 'shots'}"
    assert f"- File: {isolated / 'shots' / 'cat.png'}" in lines


# -- progress ------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_on_a_terminal(
    cli: Any, served: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)

    code = main(["image", "a cat", "--sandbox-url", served.url])

    assert code == 0
    line = terminal.getvalue()
    assert line.startswith("\r\x1b[K")
    for word in ("submitting", "queued (in_queue)", "running (generating)", "downloading"):
        assert word in line
    assert line.endswith("\r\x1b[K")  # erased before the result is printed
    # One line stays: the ref, said the moment the task was accepted.
    assert re.search(r"\r\x1b\[Kaccepted: jimeng_t2i_v40:\d+\n", line)
    assert line.count("\n") == 1
    assert capsys.readouterr().out.startswith("**Generation Info:**")


@pytest.mark.parametrize("flag", ["--json", "--quiet"])
def test_no_progress_with_json_or_quiet(
    flag: str, served: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)

    assert main(["image", "a cat", "--sandbox-url", served.url, flag]) == 0
    assert re.fullmatch(r"accepted: jimeng_t2i_v40:\d+\n", terminal.getvalue())


def test_progress_counts_the_bytes_arriving(tmp_path: Path) -> None:
    (tmp_path / "old.png").write_bytes(b"x" * 5000)
    now = [0.0]
    progress = Progress(Terminal(), enabled=True, monotonic=lambda: now[0])
    now[0] = 75.0
    progress.downloading(tmp_path)
    assert progress.line().endswith("downloading · 1m15s")
    (tmp_path / ".jimeng-abc.part").write_bytes(b"x" * 1024)
    (tmp_path / "jimeng_20250101_000000_1.png").write_bytes(b"x" * 1024)
    assert progress.line().endswith("downloading · 1m15s · 2.0 KB")


def test_progress_formats() -> None:
    assert [format_elapsed(s) for s in (0, 59.9, 65, 3725)] == ["0s", "59s", "1m05s", "1h02m"]
    assert [format_bytes(n) for n in (0, 1023, 1536, 5 * 1024**2)] == [
        "0 B",
        "1023 B",
        "1.5 KB",
        "5.0 MB",
    ]


# -- usage and validation: one line naming the option, exit 2, nothing sent ------------------


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["image", "x", "--size", "3K"], "--size"),
        (["image", "x", "--seed", "abc"], "--seed"),
        (["image", "x", "--width", "2048"], "--height"),
        (["image", "x", "--size", "2K", "--width", "9", "--height", "9"], "--size"),
        (["image", "x", "--width", "4000", "--height", "100"], "--width"),
        (["image", "x", "--images", "missing.png"], "--images (item 1)"),
        (["image", "x", "--images", "https://e.com/a.png", "./local.png"], "--images (item 2)"),
        (["image", "x", "--sample-strength", "2"], "--sample-strength"),
        (["image", "x", "--ratio", "5:4"], "--ratio"),
        (["image", "x", "--model", "jimeng-9"], "--model"),
        (["image", "   "], "PROMPT"),
        (["image", "x", "--output", "a.png", "--output-dir", "b"], "--output-dir"),
        (["image", "x", "--backend", "nope"], "--backend"),
        (["image", "x", "--sandbox", "--backend", "volcengine"], "--sandbox"),
        (["image", "x", "--sandbox-protocol", "nope"], "--sandbox-protocol"),
        (
            ["image", "x", "--backend", "volcengine", "--sandbox-url", "http://127.0.0.1:9"],
            "--sandbox-url",
        ),
        (["frobnicate"], "COMMAND"),
        (["task", "wait", "12345"], "REF"),
    ],
)
def test_usage_errors_name_the_option(
    cli: Any, served: SandboxServer, argv: list[str], option: str
) -> None:
    extra = [] if "--sandbox" in argv or "--backend" in argv else ["--sandbox-url", served.url]
    result = cli(*argv, *extra)

    assert result.code == ExitCode.USAGE == 2
    assert result.out == ""
    assert len(result.err.splitlines()) == 1, result.err
    assert result.err.startswith(f"jimeng: error: {option}: "), result.err
    assert "Traceback" not in result.err
    assert sum(served.requests.values()) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scale", "nan"], "--scale: must be in [0, 1], got nan (allowed: [0, 1])"),
        (["--scale", "-1"], "--scale: must be in [0, 1], got -1.0 (allowed: [0, 1])"),
        (
            ["--scale", "0.5", "--model", "jimeng-4.6"],
            "--scale: jimeng-4.6 takes an integer scale from 1 to 100 (not 4.0's 0–1), got 0.5 "
            "(allowed: integer 1–100)",
        ),
    ],
)
def test_scale_is_refused_with_the_models_own_range(
    cli: Any, served: SandboxServer, argv: list[str], message: str
) -> None:
    result = cli("image", "a cat", *argv, "--sandbox-url", served.url)

    assert (result.code, result.out) == (ExitCode.USAGE, "")
    assert result.err == f"jimeng: error: {message}\n"
    assert sum(served.requests.values()) == 0


def test_missing_prompt_is_a_usage_error(cli: Any) -> None:
    result = cli("image")
    assert result.code == 2
    assert result.err.strip() == (
        "jimeng: error: the following arguments are required: PROMPT (see 'jimeng image --help')"
    )


def test_parse_error_as_json(cli: Any) -> None:
    result = cli("image", "x", "--seed", "abc", "--json")
    assert result.code == 2
    assert result.json()["error"]["option"] == "--seed"


def test_validation_error_as_json(cli: Any) -> None:
    result = cli("image", "x", "--size", "3K", "--sandbox", "--json")
    assert result.code == 2
    error = result.json()["error"]
    assert error["option"] == "--size"
    assert error["type"] == "ValidationError"
    assert "1K, 2K, 4K" in error["allowed"]


def test_option_names_for_library_fields() -> None:
    options = {"images": "--images", "tail_image": "--tail-image", "watermark": "--watermark"}
    assert option_for("images[3]", options) == "--images (item 4)"
    assert option_for("tail_image", options) == "--tail-image"
    assert option_for("watermark.opacity", options) == "--watermark (opacity)"
    assert option_for("prompt", options) == "PROMPT"
    assert option_for("min_ratio", options) == "min_ratio"


def test_help_and_version(cli: Any) -> None:
    assert cli("--version").out.strip() == f"jimeng {jimeng.__version__}"
    result = cli("image", "--help")
    assert result.code == 0
    for option in ("--size", "--images", "--intelligent-ratio", "--negative-prompt", "--no-wait"):
        assert option in result.out


# -- failures: code, message, request id, task id, resume hint, exit code --------------------


def test_content_policy_on_input(cli: Any) -> None:
    result = cli("image", f"a cat {BLOCK_INPUT}", "--sandbox")

    assert result.code == ExitCode.CONTENT_POLICY == 4
    assert result.err.startswith("jimeng: error: Text Risk Not Pass\n")
    assert re.search(r"code 50412 · HTTP 400 · request id \w+ · backend volcengine", result.err)
    assert "task id" not in result.err  # refused at submit: nothing to resume


def test_content_policy_on_output_names_the_task(cli: Any, served: SandboxServer) -> None:
    result = cli("image", f"a cat {BLOCK_OUTPUT}", "--sandbox-url", served.url, "--json")

    assert result.code == 4
    error = result.json()["error"]
    assert error["code"] == 50511
    assert error["request_id"]
    assert error["task_id"] and error["ref"].endswith(error["task_id"])
    assert error["inspect"] == f"jimeng task get {error['ref']} --sandbox-url {served.url}"
    assert "resume" not in error  # a refused output will not come back


def test_the_in_process_sandbox_suggests_no_follow_up_that_cannot_work(cli: Any) -> None:
    refused = cli("image", f"a cat {BLOCK_OUTPUT}", "--sandbox", "--json")
    error = refused.json()["error"]
    assert refused.code == 4 and error["task_id"]
    assert "inspect" not in error and "resume" not in error and "note" not in error
    assert "jimeng task" not in refused.err

    slow = cli("image", "a cat", "--sandbox", "--no-wait", "--json")
    doc = slow.json()
    assert slow.code == 0 and doc["wait"] is None
    assert doc["notes"] == [
        "this sandbox ran inside this command and stopped with it; to collect tasks later, run "
        "'jimeng sandbox serve' in another terminal and pass --sandbox-url (or set "
        "JIMENG_SANDBOX_URL)"
    ]
    plain = cli("image", "a cat", "--sandbox", "--no-wait")
    assert "Collect the result" not in plain.out and "jimeng task" not in plain.out + plain.err
    assert "jimeng sandbox serve" in plain.err


def test_server_failure_while_polling_is_resumable(
    cli: Any, served: SandboxServer, sleeps: Any
) -> None:
    served.inject("poll", status=500, code=50500, times=99)
    result = cli("image", "a cat", "--sandbox-url", served.url)

    assert result.code == ExitCode.UNAVAILABLE == 9
    (task_id,) = served.tasks
    assert f"task id {task_id}" in result.err
    assert "code 50500 · HTTP 500" in result.err
    assert (
        f"resume with: jimeng task wait jimeng_t2i_v40:{task_id} --sandbox-url {served.url}"
        in result.err
    )
    # The poll was retried to the policy's budget, with backoff, without waiting for real.
    assert served.requests["poll"] == jimeng.RetryPolicy().max_attempts
    assert len(sleeps.calls) >= jimeng.RetryPolicy().max_attempts - 1


def test_a_task_that_failed_is_not_resumable(cli: Any, served: SandboxServer) -> None:
    result = cli("image", f"a cat {FAIL_TASK}", "--sandbox-url", served.url)

    assert result.code == ExitCode.TASK_FAILED == 5
    (task_id,) = served.tasks
    assert f"task {task_id} failed: Internal Error" in result.err
    assert "jimeng task wait" not in result.err
    # queued, running, then the failure: the finished task is not polled again or retried
    assert served.requests["poll"] == 3


def test_rate_limited_submit(cli: Any, served: SandboxServer) -> None:
    served.inject("submit", status=429, times=10)

    result = cli("image", "a cat", "--sandbox-url", served.url)

    assert result.code == 9
    assert "code 50429 · HTTP 429" in result.err
    assert served.requests["submit"] == 4  # the default policy's attempts
    assert not served.tasks


def test_network_failure(cli: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli("image", "a cat", "--sandbox-url", f"http://127.0.0.1:{port}")

    assert result.code == ExitCode.NETWORK == 8
    assert "Traceback" not in result.err


def test_timeout_prints_the_exact_resume_command(
    cli: Any, served: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    monkeypatch.setenv("JIMENG_MAX_POLL_ATTEMPTS", "1")

    result = cli("image", "a cat", "--sandbox-url", served.url)

    assert result.code == ExitCode.TIMEOUT == 6
    hint = re.search(r"resume with: (.+)$", result.err, re.M)
    assert hint is not None
    monkeypatch.delenv("JIMENG_MAX_POLL_ATTEMPTS")
    resumed = cli(*shlex.split(hint.group(1))[1:])
    assert resumed.code == 0, resumed.err
    assert len(pngs(isolated / "pic")) == 1


def test_a_bad_polling_variable_stops_the_command_before_the_submit(
    cli: Any, served: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIMENG_POLL_INTERVAL", "-1")

    result = cli("image", "a cat", "--sandbox-url", served.url)

    assert result.code == ExitCode.CONFIG == 3
    assert "JIMENG_POLL_INTERVAL must be a positive number, got '-1'" in result.err
    assert "accepted" not in result.err
    assert served.requests["submit"] == 0


def test_ctrl_c_with_json_prints_the_interruption(
    cli: Any, served: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def interrupted(self: Any, **options: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(jimeng.TaskHandle, "result", interrupted)

    result = cli("image", "a cat", "--sandbox-url", served.url, "--json")

    assert result.code == ExitCode.INTERRUPTED == 130
    (task_id,) = served.tasks
    ref = f"jimeng_t2i_v40:{task_id}"
    wait = f"jimeng task wait {ref} --sandbox-url {served.url}"
    assert result.json() == {
        "error": {
            "type": "Interrupted",
            "message": "interrupted",
            "signal": "SIGINT",
            "exit_code": 130,
            "task_id": task_id,
            "ref": ref,
            "status": "queued",
            "resume": wait,
            "resume_all": f"jimeng task resume --sandbox-url {served.url}",
        }
    }
    assert result.err.splitlines() == [
        f"accepted: {ref}",
        "jimeng: interrupted",
        f"  task {task_id} keeps running server-side; resume with: {wait}",
        f"  or finish every unfinished task: jimeng task resume --sandbox-url {served.url}",
    ]


def test_ctrl_c_while_saving_a_done_task_says_how_to_save_it(
    cli: Any, served: SandboxServer, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    async def interrupted(self: Any, *args: Any, **options: Any) -> Any:
        raise KeyboardInterrupt

    save = jimeng.ImageResult.save
    monkeypatch.setattr(jimeng.ImageResult, "save", interrupted)

    result = cli("image", "a cat", "--sandbox-url", served.url, "--json")

    assert result.code == ExitCode.INTERRUPTED == 130
    (task_id,) = served.tasks
    ref = f"jimeng_t2i_v40:{task_id}"
    wait = f"jimeng task wait {ref} --sandbox-url {served.url}"
    assert result.err.splitlines()[-2:] == [
        "jimeng: interrupted",
        f"  task {task_id} is done; its files may not all be saved: {wait}",
    ]
    assert result.json()["error"]["resume"] == wait
    assert result.json()["error"]["status"] == "succeeded"
    monkeypatch.setattr(jimeng.ImageResult, "save", save)
    again = cli(*shlex.split(wait)[1:])
    assert again.code == 0, again.err
    assert len(pngs(isolated / "pic")) == 1
    assert served.requests["submit"] == 1


def test_ctrl_c_with_json_before_the_submit_has_no_ref(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def interrupted(self: Any, *args: Any, **options: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(jimeng.resources.images.Images, "submit", interrupted)

    result = cli("image", "a cat", "--sandbox", "--json")

    assert (result.code, result.err) == (130, "jimeng: interrupted\n")
    assert result.json() == {
        "error": {
            "type": "Interrupted",
            "message": "interrupted",
            "signal": "SIGINT",
            "exit_code": 130,
        }
    }


def test_expired_task(cli: Any) -> None:
    result = cli("task", "wait", "jimeng_t2i_v40:42", "--sandbox")

    assert result.code == ExitCode.TASK_FAILED == 5
    assert "task id 42" in result.err
    # in-process, the sandbox cannot know the task: say what would work instead
    assert "  this sandbox started inside this command" in result.err
    assert "'jimeng sandbox serve'" in result.err
    assert "jimeng task" not in result.err


def test_an_unknown_model_key_in_a_ref_is_refused_before_asking(
    cli: Any, served: SandboxServer
) -> None:
    for action in ("get", "wait", "cancel"):
        result = cli("task", action, "bogus:123", "--sandbox-url", served.url, "--json")
        assert result.code == ExitCode.USAGE
        assert result.err.startswith(
            "jimeng: error: REF: 'bogus' in 'bogus:123' is not a model key of this backend; a "
            "ref is 'req_key:task_id' as printed when the task was submitted (allowed: "
        )
        error = result.json()["error"]
        assert error["option"] == "REF" and "jimeng_t2i_v40" in error["allowed"].split(", ")
    assert sum(served.requests.values()) == 0


def test_failed_download_leaves_no_file_and_can_be_resumed(
    cli: Any, served: SandboxServer, isolated: Path
) -> None:
    served.inject("download", kind="truncate", times=10)

    result = cli("image", "a cat", "--sandbox-url", served.url)

    assert result.code == ExitCode.DOWNLOAD == 10
    assert "resume with: jimeng task wait jimeng_t2i_v40:" in result.err
    assert list((isolated / "pic").iterdir()) == []


def test_unwritable_output_is_a_failed_save(
    cli: Any, isolated: Path, served: SandboxServer
) -> None:
    (isolated / "blocker").write_text("a file, not a folder")

    result = cli("image", "a cat", "--output-dir", "blocker/shots", "--sandbox-url", served.url)

    assert result.code == ExitCode.DOWNLOAD
    accepted, error = result.err.split("\n", 1)
    assert accepted.startswith("accepted: ")
    assert error.startswith("jimeng: error: cannot write to blocker/shots: Not a directory")
    assert "resume with: jimeng task wait jimeng_t2i_v40:" in result.err
    assert "Traceback" not in result.err

    # In-process, the task went with the sandbox: say how to keep it next time instead.
    inside = cli("image", "a cat", "--output-dir", "blocker/shots", "--sandbox")
    assert inside.code == ExitCode.DOWNLOAD
    assert "jimeng task" not in inside.err and "'jimeng sandbox serve'" in inside.err


def test_no_backend_configured(cli: Any) -> None:
    result = cli("image", "a cat")

    assert result.code == ExitCode.CONFIG == 3
    assert "--sandbox" in result.err


def test_unknown_backend_in_the_environment(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIMENG_BACKEND", "nope")
    result = cli("image", "a cat")
    assert result.code == 3
    assert "JIMENG_BACKEND" in result.err


def test_backend_from_the_environment(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIMENG_BACKEND", "sandbox")
    result = cli("image", "a cat", "--json")
    assert result.code == 0 and result.json()["backend"] == "sandbox"


def test_sandbox_url_from_the_environment(
    cli: Any, served: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIMENG_BACKEND", "sandbox")
    monkeypatch.setenv("JIMENG_SANDBOX_URL", served.url)
    assert cli("image", "a cat", "-q").code == 0
    assert len(served.tasks) == 1


@pytest.mark.parametrize("access_key", ["AKLTsandbox000000000000000000000", "AK-canary-access-3b7"])
def test_rejected_credentials_never_leak(
    cli: Any, served: SandboxServer, monkeypatch: pytest.MonkeyPatch, access_key: str
) -> None:
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VOLC_ACCESSKEY", access_key)
    monkeypatch.setenv("JIMENG_API_URL", served.url)

    for argv in (["image", "a cat", "--backend", "volcengine"], ["image", "a cat", "--json"]):
        result = cli(*argv)
        assert result.code == ExitCode.CONFIG == 3
        assert "Traceback" not in result.err
        for value in CANARIES.values():
            assert value not in result.out + result.err
        assert "request id" in result.err


# -- other backends' verbs, through a test double ------------------------------------------


class Double(jimeng.Backend):
    """A backend that answers at once from memory (to test what the sandbox cannot yet do)."""

    name = "double"

    def __init__(self, *, webp: bool = False) -> None:
        self.webp = webp
        self.requests: list[Any] = []

    def _task(self, kind: TaskKind, status: TaskStatus, result: Any = None) -> Task:
        return Task(
            id="t-1", kind=kind, status=status, backend=self.name, ref="t-1", model="m",
            result=result,
        )  # fmt: skip

    def validate_image(self, request: Any) -> None:
        self.requests.append(request)

    def validate_video(self, request: Any) -> None:
        self.requests.append(request)

    def submit_image(self, request: Any) -> Any:
        data = WEBP if self.webp else render_png(request.prompt, 64, 48)
        result = ImageResult(images=(Image(data=data),), task_id="t-1", model="m")
        return self._task(TaskKind.IMAGE, TaskStatus.SUCCEEDED, result)
        yield  # a flow that needs no call

    def submit_video(self, request: Any) -> Any:
        video = Video(
            data=render_mp4(request.prompt, width=64, height=48, frames=4, fps=24),
            content_type="video/mp4",
            duration=5.0,
            fps=24,
        )
        return self._task(TaskKind.VIDEO, TaskStatus.SUCCEEDED, VideoResult(video=video))
        yield

    def poll(self, task: Task) -> Any:
        return task
        yield

    def list_tasks(self, *, status: Any, kind: Any, limit: Any) -> Any:
        self.requests.append({"status": status, "kind": kind, "limit": limit})
        return [self._task(TaskKind.IMAGE, TaskStatus.QUEUED)]
        yield

    def cancel(self, task: Task) -> Any:
        return attrs.evolve(task, status=TaskStatus.CANCELLED, raw_status="cancelled")
        yield

    def credits(self) -> Any:
        return [AccountBalance(session="…1a2b3c4d", gift=60, vip=5, region="us")]
        yield

    def resume(self, ref: str, *, model: str | None = None) -> Task:
        failure = TaskFailure(code=2043, message="generation failed")
        return attrs.evolve(
            self._task(TaskKind.IMAGE, TaskStatus.FAILED), id=ref, ref=ref, failure=failure
        )


# A 1×1 lossless WebP.
WEBP = bytes.fromhex("524946461a000000574542505650384c0d0000002f0000001007101111888808fe0700")


@pytest.fixture
def double(monkeypatch: pytest.MonkeyPatch) -> Double:
    backend = Double()
    monkeypatch.setattr(_app, "_make_backend", lambda args: backend)
    return backend


def test_a_link_signed_with_a_secret_is_printed_without_it(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relay may sign its links with the caller's key: no output format prints it."""
    key = "canary-cli-relay-key-7b1e"
    jimeng.Gateway(api_key=key)  # the relay backend registers its key
    url = f"https://cdn.test/img.png?key={key}"

    class Relay(Double):
        def submit_image(self, request: Any) -> Any:
            image = Image(url=url, data=render_png(request.prompt, 64, 48))
            result = ImageResult(images=(image,), task_id="t-1", model="m")
            return self._task(TaskKind.IMAGE, TaskStatus.SUCCEEDED, result)
            yield

    monkeypatch.setattr(_app, "_make_backend", lambda args: Relay())
    shown = "https://cdn.test/img.png?key=<redacted>"
    text = cli("image", "a cat")
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert f"**Image 1:** ![Image 1]({shown})" in lines and f"- Link: {shown}" in lines
    doc = cli("image", "a cat", "--json").json()
    assert doc["urls"] == [shown] and doc["images"][0]["url"] == shown
    assert cli("image", "a cat", "--no-save", "--quiet").out == f"{shown}\n"


def test_video_prints_the_seed_block_and_saves_the_mp4(
    cli: Any, double: Double, isolated: Path
) -> None:
    result = cli(
        "video", "A golden retriever running through sunflowers",
        "--mode", "t2v_720p", "--duration", "5", "--output", "dog.mp4",
    )  # fmt: skip

    assert result.code == 0, result.err
    assert double.requests[0].given() == {"mode": "t2v_720p", "duration": 5.0}
    saved = isolated / "dog.mp4"
    assert saved.read_bytes()[4:8] == b"ftyp"
    assert result.out.splitlines() == [
        "**Generated Video:**",
        f"[Video](<{saved}>)",
        "",
        "**Generation Info:**",
        "- Prompt: A golden retriever running through sunflowers",
        "- Duration: 5 seconds",
        "- Mode: t2v_720p",
        "- FPS: 24",
        f"- Save Path: {saved}",
        "- Task: t-1 (double)",
    ]


def test_video_json(cli: Any, double: Double) -> None:
    result = cli("video", "waves", "--ratio", "16:9", "--json")
    assert result.code == 0
    doc = result.json()
    assert doc["kind"] == "video" and doc["duration"] == 5.0 and doc["fps"] == 24
    assert doc["saved"][0].endswith(".mp4")
    assert double.requests[0].given() == {"aspect_ratio": "16:9"}


def test_video_ratio_and_aspect_ratio_must_agree(cli: Any, served: SandboxServer) -> None:
    result = cli(
        "video", "x", "--ratio", "16:9", "--aspect-ratio", "9:16", "--sandbox-url", served.url
    )

    assert (result.code, result.out) == (ExitCode.USAGE, "")
    assert (
        result.err
        == "jimeng: error: --ratio: --ratio 16:9 and --aspect-ratio 9:16 disagree; give one\n"
    )
    assert sum(served.requests.values()) == 0


def test_video_ratio_given_twice_alike_is_one_aspect_ratio(cli: Any, double: Double) -> None:
    result = cli("video", "waves", "--ratio", "16:9", "--aspect-ratio", "16:9", "-q")
    assert result.code == 0, result.err
    assert double.requests[0].given() == {"aspect_ratio": "16:9"}


def test_video_on_the_sandbox(cli: Any, isolated: Path) -> None:
    try:
        jimeng.Sandbox().validate_video(jimeng.VideoRequest(prompt="x", mode="t2v_720p"))
    except jimeng.NotSupportedError:
        pytest.skip("the sandbox's Volcengine protocol does not generate videos on this branch")
    result = cli(
        "video", "A golden retriever running through sunflowers", "--mode", "t2v_720p",
        "--duration", "5", "--output", "dog.mp4", "--sandbox",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert (isolated / "dog.mp4").read_bytes()[4:8] == b"ftyp"
    assert "- Mode: t2v_720p" in result.out


def test_video_unsupported_names_the_backend(cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    class ImagesOnly(Double):
        def validate_video(self, request: Any) -> None:
            raise jimeng.NotSupportedError("the double backend does not generate videos")

    monkeypatch.setattr(_app, "_make_backend", lambda args: ImagesOnly())
    result = cli("video", "waves")
    assert result.code == 2
    assert result.err == "jimeng: error: --backend: the double backend does not generate videos\n"


def test_task_list_cancel_and_credits(cli: Any, double: Double) -> None:
    listed = cli("task", "list", "--status", "queued", "--limit", "5")
    assert listed.code == 0
    assert double.requests[-1] == {"status": "queued", "kind": None, "limit": 5}
    assert listed.out.splitlines()[2].startswith("| t-1 | image | queued | m |")

    cancelled = cli("task", "cancel", "t-1", "--json")
    assert cancelled.code == 0 and cancelled.json()["status"] == "cancelled"

    credits = cli("credits")
    assert credits.code == 0
    assert "| …1a2b3c4d | us | 60 | 0 | 5 | 65 |" in credits.out
    assert cli("credits", "--json").json()["total"] == 65


def test_failed_task(cli: Any, double: Double) -> None:
    result = cli("task", "wait", "t-9", "--json")

    assert result.code == ExitCode.TASK_FAILED == 5
    error = result.json()["error"]
    assert error["type"] == "TaskFailedError"
    assert error["task_id"] == "t-9"
    assert error["code"] == 2043
    assert "generation failed" in error["message"]


def test_not_supported_verbs_name_the_backend(cli: Any) -> None:
    for argv in (["task", "list"], ["credits"]):
        result = cli(*argv, "--sandbox")
        assert result.code == 2
        assert result.err.startswith("jimeng: error: --backend: the ")


# -- WebP to PNG ----------------------------------------------------------------------------


def test_webp_is_kept_with_a_note_without_pillow(
    cli: Any, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    monkeypatch.setattr(_app, "_make_backend", lambda args: Double(webp=True))
    # Imports fail as if Pillow were not installed, even after another test imported it.
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)

    result = cli("image", "a cat")

    assert result.code == 0
    (saved,) = (isolated / "pic").iterdir()
    assert saved.suffix == ".webp"
    assert "pip install 'jimeng[pillow]'" in result.err
    assert cli("image", "a cat", "--json").json()["notes"]


def fake_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for ``PIL.Image`` that writes a small PNG."""

    class Picture:
        def __enter__(self) -> Picture:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def save(self, target: Path, format: str) -> None:
            assert format == "PNG"
            Path(target).write_bytes(render_png("converted", 1, 1))

    module = types.ModuleType("PIL.Image")
    module.open = lambda path: Picture()  # type: ignore[attr-defined]
    package = types.ModuleType("PIL")
    package.Image = module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "PIL", package)
    monkeypatch.setitem(sys.modules, "PIL.Image", module)


def test_webp_becomes_png_with_pillow(
    cli: Any, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    monkeypatch.setattr(_app, "_make_backend", lambda args: Double(webp=True))
    fake_pillow(monkeypatch)

    result = cli("image", "a cat", "--json")

    assert result.code == 0
    (saved,) = (isolated / "pic").iterdir()
    assert NAME.match(saved.name)
    assert saved.read_bytes().startswith(PNG)
    assert result.json()["saved"] == [str(saved)]
    assert result.json()["notes"] == []
    # The journal names the PNG, not the WebP it replaced.
    listed = cli("task", "list", "--local", "--json").json()["tasks"]
    assert [entry["saved"] for entry in listed] == [[str(saved.resolve())]]


def test_convert_keeps_an_explicit_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pillow(monkeypatch)
    folder = tmp_path / "out"
    folder.mkdir()
    named = folder / "lake.png"
    named.write_bytes(WEBP)
    assert _files.is_webp(named)
    assert _files.convert_webp(named) == named
    assert named.read_bytes().startswith(PNG)
    assert [p.name for p in folder.iterdir()] == ["lake.png"]


def test_convert_names_the_png_by_its_content_and_replaces_no_other_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_pillow(monkeypatch)
    folder = tmp_path / "out"
    folder.mkdir()
    misnamed = folder / "lake.jpg"
    misnamed.write_bytes(WEBP)
    misnamed.chmod(0o640)
    webp = folder / "pond.webp"
    webp.write_bytes(WEBP)
    (folder / "pond.png").write_bytes(b"another pond")

    assert _files.convert_webp(misnamed) == folder / "lake.png"
    assert _files.convert_webp(webp) == folder / "pond-2.png"

    converted = render_png("converted", 1, 1)
    assert sorted((p.name, p.read_bytes()) for p in folder.iterdir()) == [
        ("lake.png", converted),
        ("pond-2.png", converted),
        ("pond.png", b"another pond"),
    ]
    assert (folder / "lake.png").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("webp", [False, True])
def test_an_output_name_gets_the_extension_of_what_is_saved(
    cli: Any, monkeypatch: pytest.MonkeyPatch, isolated: Path, webp: bool
) -> None:
    monkeypatch.setattr(_app, "_make_backend", lambda args: Double(webp=webp))
    fake_pillow(monkeypatch)

    result = cli("image", "a cat", "--output", "out/cover.jpg", "--json")

    assert result.code == 0, result.err
    saved = isolated / "out" / "cover.png"
    assert result.json()["saved"] == [str(saved)]
    assert [p.name for p in saved.parent.iterdir()] == ["cover.png"]
    assert saved.read_bytes().startswith(PNG)
    listed = cli("task", "list", "--local", "--json").json()["tasks"]
    assert [entry["saved"] for entry in listed] == [[str(saved.resolve())]]


def test_image_size_from_headers(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    png.write_bytes(render_png("x", 320, 200))
    webp = tmp_path / "b.webp"
    webp.write_bytes(WEBP)
    jpeg = tmp_path / "c.jpg"
    # SOI, an APP0 segment, then SOF0 with height 30 and width 40.
    jpeg.write_bytes(
        b"\xff\xd8\xff\xe0\x00\x04ab\xff\xc0\x00\x11\x08\x00\x1e\x00\x28\x03" + b"\x00" * 9
    )
    assert _files.image_size(png) == (320, 200)
    assert _files.image_size(webp) == (1, 1)
    assert _files.image_size(jpeg) == (40, 30)
    assert _files.image_size(tmp_path / "missing.png") is None


# -- sandbox serve and a real process --------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("submit:429", {"action": "submit", "kind": "http", "status": 429}),
        ("download:truncate:2", {"action": "download", "kind": "truncate", "times": 2}),
        ("*:reset", {"action": "*", "kind": "reset"}),
    ],
)
def test_fault_specs(spec: str, expected: dict[str, Any]) -> None:
    assert _app._faults([spec]) == [expected]


@pytest.mark.parametrize("spec", ["submit", "submit:teapot", "poll:500:0", ":500"])
def test_bad_fault_specs(cli: Any, spec: str) -> None:
    result = cli("sandbox", "serve", "--fault", spec)
    assert result.code == 2
    assert result.err.startswith("jimeng: error: --fault: ")


def test_serve_refuses_other_hosts(cli: Any) -> None:
    result = cli("sandbox", "serve", "--host", "0.0.0.0")
    assert result.code == 2 and "--host" in result.err


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JIMENG_", "VOLC_"))}
    env["JIMENG_HOME"] = os.environ["JIMENG_HOME"]  # the test's own journal folder
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # A short first poll: the subprocess has no test seam and the sandbox answers at once.
    env["JIMENG_POLL_INTERVAL"] = "0.05"
    env.update(extra)
    return env


def _jimeng(args: Sequence[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jimeng", *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.subprocess
def test_python_m_jimeng_json(isolated: Path) -> None:
    done = _jimeng(["image", "A white Siamese cat", "--sandbox", "--json"], isolated)

    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == "succeeded"
    (saved,) = doc["saved"]
    assert Path(saved).parent == isolated / "pic"
    assert Path(saved).read_bytes().startswith(PNG)
    assert done.stderr == f"accepted: {doc['ref']}\n"


@pytest.mark.subprocess
def test_python_m_jimeng_failure(isolated: Path) -> None:
    done = _jimeng(["image", f"x {BLOCK_INPUT}", "--sandbox", "--json"], isolated)

    assert done.returncode == 4
    assert json.loads(done.stdout)["error"]["code"] == 50412
    assert "Traceback" not in done.stderr


@pytest.mark.subprocess
def test_sandbox_serve_in_the_foreground(isolated: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "jimeng", "sandbox", "serve", "--port", "0"],
        cwd=isolated,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert banner.startswith("jimeng sandbox serving on http://127.0.0.1:")
        url = banner.split()[-1]
        submitted = _jimeng(["image", "a cat", "--sandbox-url", url, "--no-wait", "-q"], isolated)
        assert submitted.returncode == 0, submitted.stderr
        ref = submitted.stdout.strip()
        waited = _jimeng(["task", "wait", ref, "--sandbox-url", url, "--json"], isolated)
        assert waited.returncode == 0, waited.stderr
        assert json.loads(waited.stdout)["ref"] == ref
    finally:
        _, err = stop(server)
    assert server.returncode == 0
    assert "stopped" in err


# -- the docs page stays true -----------------------------------------------------------------


def _all_long_options() -> set[str]:
    import argparse

    from jimeng.cli._parser import build_parser

    found: set[str] = set()
    pending: list[argparse.ArgumentParser] = [build_parser()]
    while pending:
        parser = pending.pop()
        for action in parser._actions:
            found.update(o for o in action.option_strings if o.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
    return found - {"--help", "--version"}


def test_docs_list_every_option_and_exit_code() -> None:
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = sorted(option for option in _all_long_options() if f"`{option}" not in page)
    assert missing == []
    table = dict(re.findall(r"^\| (\d+) \| (.+) \|$", page, re.M))
    assert sorted(map(int, table)) == sorted(code.value for code in ExitCode)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "99999"], "--port: must be between 0 and 65535, got 99999"),
        (["--queue-delay", "-1"], "--queue-delay: must be 0 or more, got -1"),
    ],
)
def test_sandbox_serve_checks_its_numbers(cli: Any, argv: list[str], message: str) -> None:
    result = cli("sandbox", "serve", *argv)
    assert result.code == ExitCode.USAGE == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_backends_prints_the_capability_table(cli: Any) -> None:
    from jimeng.backends import reference_capabilities
    from jimeng.backends._capabilities import comparison_table

    table = cli("backends")
    assert table.code == 0
    assert table.out == comparison_table(reference_capabilities())
    assert "| dreamina | `jimeng-video-seedance-2.0` | video |" in table.out
    data = cli("backends", "--json", "--sandbox", "--sandbox-protocol", "gateway").json()
    (gateway,) = data["backends"]
    assert gateway["backend"] == "gateway"
    assert {"cancel", "list", "webhooks"} <= set(gateway["features"])


# -- environment and logging -------------------------------------------------------------------


def test_jimeng_sandbox_url_alone_selects_the_sandbox(
    cli: Any, served: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JIMENG_SANDBOX_URL", served.url)
    result = cli("image", "a cat", "--no-wait", "--json")
    doc = result.json()
    assert result.code == 0 and doc["backend"] == "sandbox"
    assert doc["wait"] == f"jimeng task wait {doc['ref']}"  # the environment finds it again
    assert served.requests["submit"] == 1
    got = cli("task", "get", doc["ref"], "--json")
    assert got.code == 0 and got.json()["task_id"] == doc["task_id"]


@pytest.mark.parametrize(
    ("flags", "levels"),
    [
        ((), set()),
        (("-v",), {"INFO"}),
        (("-vv",), {"INFO", "DEBUG"}),
        (("-v", "-v"), {"INFO", "DEBUG"}),
    ],
)
def test_verbose_logs_on_stderr(
    cli: Any, served: SandboxServer, flags: tuple[str, ...], levels: set[str]
) -> None:
    logger = logging.getLogger("jimeng")
    before = (list(logger.handlers), logger.level)
    try:
        result = cli(*flags, "image", "a cat", "--sandbox-url", served.url, "-q")
    finally:
        logger.handlers[:] = before[0]
        logger.setLevel(before[1])
    assert result.code == 0
    lines = [line for line in result.err.splitlines() if " jimeng: " in line]
    assert {line.split()[2] for line in lines} == levels
    if "INFO" in levels:
        assert any("INFO jimeng: accepted image task" in line for line in lines)
    if "DEBUG" in levels:
        assert any(f"DEBUG jimeng: POST {served.url}/ -> 200" in line for line in lines)
        assert not any(CANARIES["VOLC_SECRETKEY"] in line for line in lines)


def test_no_message_speaks_of_a_skill_script() -> None:
    package = Path(jimeng.__file__).parent
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "skill script" in path.read_text(encoding="utf-8").lower()
    ]
    assert offenders == []


def _messages(path: Path) -> Iterator[tuple[int, str]]:
    """The string constants of a module that are not docstrings: messages, not comments."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    for node in ast.walk(tree):
        text = node.value if isinstance(node, ast.Constant) else None
        if isinstance(text, str) and id(node) not in docstrings:
            yield node.lineno, text


def test_no_message_cites_the_protocol_notes() -> None:
    # Users have no protocols/ folder: a section number in an error is noise to them.
    package = Path(jimeng.__file__).parent
    offenders = [
        f"{path.relative_to(package)}:{line}: {text}"
        for path in sorted(package.rglob("*.py"))
        for line, text in _messages(path)
        if "§" in text or "protocols/" in text
    ]
    assert offenders == []


def test_errors_speak_in_user_terms(cli: Any, tmp_path: Path) -> None:
    relay = cli("video", "a dog", "--sandbox", "--sandbox-protocol", "gateway-openai")
    assert (relay.code, relay.err) == (
        ExitCode.USAGE,
        "jimeng: error: --backend: OpenAI-compatible relays generate images only, not videos; "
        "a jimeng-api gateway generates both\n",
    )
    portrait = tmp_path / "me.png"
    portrait.write_bytes(render_png("me", 720, 960))
    avatar = cli(
        "video", "avatar", str(portrait), "--audio", "https://example.com/hi_3s.mp3", "--sandbox"
    )
    assert (avatar.code, avatar.err) == (
        ExitCode.USAGE,
        "jimeng: error: image: omnihuman-1.5 downloads the image itself, so it must be a public "
        "http(s) URL, not a local file or bytes: upload it somewhere reachable first "
        "(allowed: http(s) URL)\n",
    )
