"""The MCP server: tool specifications read from the backends' tables, calls on the sandbox,
and the real protocol over stdio and streamable HTTP with the official ``mcp`` client."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import jimeng
from jimeng.mcp import JimengTools, ToolResult
from jimeng.sandbox import Stages
from tests.conftest import Sleeps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def tools(tmp_path: Path, sleeps: Sleeps) -> AsyncIterator[JimengTools]:
    sandbox = jimeng.Sandbox(stages=Stages(queue_polls=1))
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        yield JimengTools(client, output_dir=tmp_path / "out")


def _names(tools: JimengTools) -> list[str]:
    return [spec.name for spec in tools.specs()]


# -- specifications ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "journal", "expected"),
    [
        ("volcengine", False, ["generate_image", "generate_video", "get_task", "wait_task",
                               "cancel_task"]),
        ("volcengine", True, ["generate_image", "generate_video", "get_task", "wait_task",
                              "cancel_task", "list_tasks"]),
        ("volcengine-relay", False, ["generate_image", "generate_video", "get_task", "wait_task"]),
        ("dreamina", False, ["generate_image", "generate_video", "get_task", "wait_task",
                             "credits"]),
        ("gateway", False, ["generate_image", "generate_video", "get_task", "wait_task",
                            "cancel_task", "list_tasks", "credits"]),
        ("gateway-openai", False, ["generate_image", "get_task", "wait_task"]),
        ("ark", False, ["generate_image", "generate_video", "get_task", "wait_task",
                        "cancel_task", "list_tasks"]),
    ],
)  # fmt: skip
async def test_tools_offered_follow_the_backend_features(
    protocol: Any, journal: bool, expected: list[str], tmp_path: Path
) -> None:
    client = jimeng.Client(
        jimeng.Sandbox(protocol), journal=tmp_path / "j.db" if journal else False
    )
    async with client:
        assert _names(JimengTools(client, output_dir=tmp_path)) == expected


@pytest.mark.parametrize(
    ("backend", "cost", "auth"),
    [
        (
            lambda: jimeng.Volcengine(access_key="AKTEST", secret_key="SKTEST"),
            "billed to the Volcengine account",
            "VOLC_ACCESSKEY / VOLC_SECRETKEY",
        ),
        (lambda: jimeng.Ark(api_key="ark-test-key"), "billed to the Ark account", "ARK_API_KEY"),
        (lambda: jimeng.Dreamina("us-session0000"), "spends credits", "JIMENG_SESSION_ID"),
        (
            lambda: jimeng.Gateway("http://127.0.0.1:5100", token="us-session0000"),
            "spends credits",
            "JIMENG_GATEWAY_URL",
        ),
        (jimeng.Sandbox, "Nothing is billed", "VOLC_ACCESSKEY"),
    ],
)
async def test_descriptions_say_side_effects_auth_limits_time_and_output(
    backend: Callable[[], jimeng.Backend], cost: str, auth: str, tmp_path: Path
) -> None:
    # Built inside the test's loop: a backend made at collection would outlive its loop.
    async with jimeng.Client(backend(), journal=False) as client:
        specs = {spec.name: spec for spec in JimengTools(client, output_dir=tmp_path).specs()}
    generate = specs["generate_image"].description
    assert cost in generate and auth in generate
    assert ("Takes " in generate and "429" in generate) or "No limits" in generate
    assert "MCP image content" in generate and "task ref" in generate and "wait_task" in generate
    assert "refused before anything is sent" in generate
    for name in ("get_task", "wait_task"):
        assert specs[name].read_only and auth in specs[name].description
    assert "Read-only" in specs["get_task"].description
    assert "Does not generate or bill anything again" in specs["wait_task"].description
    assert not specs["generate_image"].read_only
    for spec in specs.values():
        for name, schema in spec.input_schema["properties"].items():
            assert schema.get("description"), f"{spec.name}.{name} has no description"


async def test_schemas_carry_the_backend_tables(tmp_path: Path) -> None:
    backend = jimeng.Volcengine(access_key="AKTEST", secret_key="SKTEST")
    caps = backend.capabilities()
    async with jimeng.Client(backend, journal=False) as client:
        specs = {spec.name: spec for spec in JimengTools(client, output_dir=tmp_path).specs()}
    image = specs["generate_image"].input_schema["properties"]
    assert image["model"]["enum"] == [model.name for model in caps.image_models]
    assert image["images"]["maxItems"] == max(model.max_images for model in caps.image_models)
    assert image["seed"]["minimum"] == -1
    assert "negative_prompt" not in image  # the official API has none
    video = specs["generate_video"].input_schema["properties"]
    assert video["mode"]["enum"] == [model.name for model in caps.video_models]
    assert video["duration"]["enum"] == [5, 10]
    assert "16:9" in video["ratio"]["enum"]
    assert specs["generate_image"].input_schema["required"] == ["prompt"]
    assert specs["generate_image"].input_schema["additionalProperties"] is False


async def test_web_backends_take_negative_prompt_and_sample_strength(tmp_path: Path) -> None:
    backend = jimeng.Dreamina("us-session0000")
    async with jimeng.Client(backend, journal=False) as client:
        specs = {spec.name: spec for spec in JimengTools(client, output_dir=tmp_path).specs()}
    properties = specs["generate_image"].input_schema["properties"]
    assert properties["sample_strength"]["minimum"] == 0
    assert properties["sample_strength"]["maximum"] == 1
    assert "negative_prompt" in properties
    caps = backend.capabilities()
    assert properties["model"]["enum"] == [m.name for m in caps.image_models]
    video = specs["generate_video"].input_schema["properties"]
    assert "mode" not in video
    assert video["model"]["enum"] == [m.name for m in caps.video_models]
    assert video["duration"]["enum"] == sorted({d for m in caps.video_models for d in m.durations})


# -- calls on the sandbox ----------------------------------------------------------------------


async def test_generate_image_returns_image_content_paths_and_urls(
    tools: JimengTools, tmp_path: Path
) -> None:
    result = await tools.call("generate_image", {"prompt": "a red fox", "size": "1K"})
    assert not result.is_error
    assert result.data["status"] == "succeeded"
    assert result.data["ref"].startswith("jimeng_t2i_v40:")
    [saved] = result.data["saved"]
    [item] = result.images
    assert item.mime_type == "image/png"
    assert item.data.startswith(PNG_MAGIC)
    assert Path(saved).read_bytes() == item.data
    assert Path(saved).parent == tmp_path / "out"
    assert result.data["urls"][0].startswith("http://127.0.0.1:")
    assert json.loads(result.text)["saved"] == [saved]


async def test_a_short_wait_returns_the_ref_and_wait_task_collects(tools: JimengTools) -> None:
    first = await tools.call("generate_image", {"prompt": "a red fox", "wait_seconds": 0})
    assert (first.is_error, first.data["status"], first.images) == (False, "queued", ())
    assert first.data["ref"] in first.data["next"] and "wait_task" in first.data["next"]
    done = await tools.call("wait_task", {"ref": first.data["ref"], "save": False})
    assert done.data["status"] == "succeeded"
    assert "saved" not in done.data
    assert done.images[0].data.startswith(PNG_MAGIC)
    looked = await tools.call("get_task", {"ref": first.data["ref"]})
    assert (looked.data["status"], looked.images) == ("succeeded", ())
    assert looked.data["urls"] == done.data["urls"]


async def test_cancel_task_cancels_a_queued_task(tmp_path: Path, sleeps: Sleeps) -> None:
    sandbox = jimeng.Sandbox(stages=Stages(queue_polls=5))
    async with jimeng.Client(sandbox, sleep=sleeps) as client:
        tools = JimengTools(client, output_dir=tmp_path)
        queued = await tools.call("generate_video", {"prompt": "a kite", "wait_seconds": 0})
        cancelled = await tools.call("cancel_task", {"ref": queued.data["ref"]})
    assert (cancelled.is_error, cancelled.data["status"]) == (False, "cancelled")


async def test_generate_video_saves_the_mp4(tools: JimengTools, tmp_path: Path) -> None:
    result = await tools.call("generate_video", {"prompt": "a kite", "duration": 5})
    [saved] = result.data["saved"]
    assert Path(saved).read_bytes()[4:8] == b"ftyp"
    assert result.data["urls"][0].endswith(".mp4")
    assert result.images == ()


async def test_a_failed_task_is_a_tool_error_with_its_ref(tools: JimengTools) -> None:
    result = await tools.call("generate_image", {"prompt": "a fox sandbox:fail"})
    assert result.is_error
    assert result.data["error"] == "TaskFailedError"
    assert result.data["task_ref"].startswith("jimeng_t2i_v40:")
    assert result.data["code"] == 50500
    # Finished: another wait would answer the same, so the hint does not send the agent there.
    assert result.data["next"] == (
        "the task has ended without a result: wait_task would answer this same error (get_task "
        "shows its state); generating again starts a new, billed task"
    )


async def test_a_task_that_may_still_finish_is_sent_to_wait_task(
    tmp_path: Path, sleeps: Sleeps
) -> None:
    sandbox = jimeng.Sandbox()
    async with jimeng.Client(sandbox, sleep=sleeps, journal=False) as client:
        tools = JimengTools(client, output_dir=tmp_path)
        sandbox.server.inject("poll", status=500, code=50500, times=99)
        result = await tools.call("generate_image", {"prompt": "a red fox"})
    assert (result.is_error, result.data["error"]) == (True, "ServerError")
    ref = result.data["task_ref"]
    assert result.data["next"] == (
        f"the task was accepted and may still finish: call wait_task with ref {ref!r} "
        "(nothing is billed again)"
    )


async def test_a_refused_poll_does_not_say_the_task_ended(tmp_path: Path, sleeps: Sleeps) -> None:
    sandbox = jimeng.Sandbox()
    async with jimeng.Client(sandbox, sleep=sleeps, journal=False) as client:
        tools = JimengTools(client, output_dir=tmp_path)
        sandbox.server.inject("poll", status=401, times=99)
        result = await tools.call("generate_image", {"prompt": "a red fox"})
        ref = result.data["task_ref"]
        assert result.is_error and result.data["next"] == (
            "the task was accepted and may still finish; this error came while watching it: "
            f"fix its cause, then call wait_task with ref {ref!r} (nothing is billed again)"
        )
        sandbox.server.clear_faults()
        collected = await tools.call("wait_task", {"ref": ref})
    assert (collected.is_error, collected.data["status"]) == (False, "succeeded")
    assert sandbox.server.requests["submit"] == 1


async def test_bad_arguments_are_tool_errors_before_any_request(tmp_path: Path) -> None:
    sandbox = jimeng.Sandbox()
    async with jimeng.Client(sandbox, journal=False) as client:
        tools = JimengTools(client, output_dir=tmp_path)
        unknown_model = await tools.call("generate_image", {"prompt": "x", "model": "jimeng-9"})
        unknown_name = await tools.call("generate_image", {"prompt": "x", "colour": "red"})
        missing = await tools.call("get_task", {})
        bad_size = await tools.call("generate_image", {"prompt": "x", "size": "99x99"})
    assert sum(sandbox.server.requests.values()) == 0
    assert [r.data["error"] for r in (unknown_model, unknown_name, missing, bad_size)] == [
        "ValidationError"
    ] * 4
    assert [r.data["field"] for r in (unknown_model, unknown_name, missing, bad_size)] == [
        "model",
        "colour",
        "ref",
        "size",
    ]
    assert "jimeng-4.0" in unknown_model.data["allowed"]


async def test_refusals_quote_the_value_once_and_list_what_is_allowed(tmp_path: Path) -> None:
    sandbox = jimeng.Sandbox()
    async with jimeng.Client(sandbox, journal=False) as client:
        tools = JimengTools(client, output_dir=tmp_path)
        model = await tools.call("generate_image", {"prompt": "x", "model": "jimeng-9"})
        seed = await tools.call("generate_image", {"prompt": "x", "seed": "abc"})
        wait = await tools.call("generate_image", {"prompt": "x", "wait_seconds": 5000})
        most = tools.schema("generate_image")["properties"]["images"]["maxItems"]  # type: ignore[index]
        many = ["https://example.com/a.png"] * (most + 1)
        images = await tools.call("generate_image", {"prompt": "x", "images": many})
    models = [m.name for m in sandbox.capabilities().image_models]
    assert model.data == {
        "error": "ValidationError",
        "message": f"model: 'jimeng-9' is not offered here (allowed: {', '.join(models)})",
        "field": "model",
        "allowed": models,
    }
    assert seed.data == {
        "error": "ValidationError",
        "message": "seed: must be an integer, got 'abc'",
        "field": "seed",
    }
    assert wait.data == {
        "error": "ValidationError",
        "message": "wait_seconds: 5000 is out of range (allowed: 0 to 3600)",
        "field": "wait_seconds",
        "allowed": ["0 to 3600"],
    }
    assert images.data["message"] == f"images: has {most + 1} items (allowed: 1 to {most} items)"
    assert sum(sandbox.server.requests.values()) == 0


async def test_the_backends_notes_come_back_with_the_task(tools: JimengTools) -> None:
    note = (
        "width 10x10 scaled to 1024x1024: Volcengine 4.x takes an area from 1024x1024 to 4096x4096"
    )
    small = {"prompt": "a red fox", "width": 10, "height": 10}
    pending = await tools.call("generate_image", {**small, "wait_seconds": 0})
    assert pending.data["notes"] == [note]
    done = await tools.call("generate_image", {**small, "save": False})
    assert done.data["notes"] == [note]


@pytest.mark.parametrize("tool", ["generate_image", "generate_video"])
async def test_wait_task_answers_with_the_files_already_saved(
    tools: JimengTools, tmp_path: Path, tool: str
) -> None:
    made = await tools.call(tool, {"prompt": "a kite"})
    again = await tools.call("wait_task", {"ref": made.data["ref"]})
    assert again.data["saved"] == made.data["saved"]
    assert sorted(str(path) for path in (tmp_path / "out").iterdir()) == made.data["saved"]
    # A file deleted since is downloaded again.
    Path(made.data["saved"][0]).unlink()
    fresh = await tools.call("wait_task", {"ref": made.data["ref"]})
    assert [Path(path).is_file() for path in fresh.data["saved"]] == [True]


async def test_list_tasks_reads_the_journal_when_the_service_lists_none(
    tmp_path: Path, sleeps: Sleeps
) -> None:
    async with jimeng.Client(jimeng.Sandbox(), sleep=sleeps, journal=tmp_path / "j.db") as client:
        tools = JimengTools(client, output_dir=tmp_path)
        made = await tools.call("generate_image", {"prompt": "a red fox"})
        listed = await tools.call("list_tasks", {"kind": "image"})
    assert listed.data["source"] == "journal"
    [entry] = listed.data["tasks"]
    assert (entry["ref"], entry["status"]) == (made.data["ref"], "succeeded")
    assert entry["urls"] == made.data["urls"]


async def test_list_tasks_asks_a_gateway_and_credits_reads_balances(
    tmp_path: Path, sleeps: Sleeps
) -> None:
    async with jimeng.Client(jimeng.Sandbox("gateway"), sleep=sleeps, journal=False) as client:
        tools = JimengTools(client, output_dir=tmp_path)
        made = await tools.call("generate_image", {"prompt": "a red fox", "save": False})
        listed = await tools.call("list_tasks", {"limit": 5})
        credits = await tools.call("credits", {})
    assert listed.data["source"] == "service"
    assert made.data["ref"] in [task["ref"] for task in listed.data["tasks"]]
    [balance] = credits.data["balances"]
    assert set(balance) == {"session", "region", "gift", "purchase", "vip", "total"}
    assert balance["total"] == balance["gift"] + balance["purchase"] + balance["vip"]


def test_tool_results_keep_images_out_of_the_json() -> None:
    result = ToolResult(data={"ref": "r"}, images=())
    assert json.loads(result.text) == {"ref": "r"}


def test_tool_results_hide_registered_secrets() -> None:
    key = "canary-mcp-relay-key-0c3f"
    jimeng.Gateway(api_key=key)  # the relay backend registers its key
    result = ToolResult(data={"ref": "r", "urls": [f"https://cdn.test/a.png?key={key}"]})
    assert result.data == {"ref": "r", "urls": ["https://cdn.test/a.png?key=<redacted>"]}
    assert json.loads(result.text) == result.data


# -- the protocol, with the official client ----------------------------------------------------


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOLC_", "JIMENG_"))}
    env["JIMENG_HOME"] = os.environ["JIMENG_HOME"]
    # The sandbox finishes tasks on the first poll; these keep that poll from waiting 2 s.
    env["JIMENG_POLL_INTERVAL"] = env["JIMENG_VIDEO_POLL_INTERVAL"] = "0.01"
    return env


def _text(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(result.content[-1].text)
    return data


@pytest.mark.subprocess
async def test_stdio_server_lists_and_calls_every_tool(tmp_path: Path) -> None:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "jimeng", "mcp", "--sandbox", "--output-dir", str(tmp_path / "out")],
        env=_server_env(),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        names = [tool.name for tool in listed.tools]
        assert names == [
            "generate_image",
            "generate_video",
            "get_task",
            "wait_task",
            "cancel_task",
            "list_tasks",
        ]
        generate = next(tool for tool in listed.tools if tool.name == "generate_image")
        assert generate.annotations is not None
        assert generate.annotations.read_only_hint is False
        assert "Nothing is billed" in (generate.description or "")

        image = await session.call_tool("generate_image", {"prompt": "a red fox", "size": "1K"})
        assert not image.is_error
        assert [item.type for item in image.content] == ["image", "text"]
        picture = base64.b64decode(image.content[0].data)  # type: ignore[union-attr]
        assert picture.startswith(PNG_MAGIC)
        assert image.content[0].mime_type == "image/png"  # type: ignore[union-attr]
        made = _text(image)
        assert Path(made["saved"][0]).read_bytes() == picture
        assert image.structured_content == made

        video = await session.call_tool("generate_video", {"prompt": "a kite", "duration": 5})
        assert _text(video)["saved"][0].endswith(".mp4")

        looked = await session.call_tool("get_task", {"ref": made["ref"]})
        assert _text(looked)["status"] == "succeeded"
        waited = await session.call_tool("wait_task", {"ref": made["ref"], "save": False})
        assert [item.type for item in waited.content] == ["image", "text"]
        history = await session.call_tool("list_tasks", {"kind": "image"})
        assert [task["ref"] for task in _text(history)["tasks"]] == [made["ref"]]

        refused = await session.call_tool("cancel_task", {"ref": made["ref"]})
        assert refused.is_error
        error = _text(refused)
        assert error["error"] == "TaskNotCancellableError"
        assert error["task_ref"] == made["ref"]

        invalid = await session.call_tool("generate_image", {"prompt": "x", "model": "jimeng-9"})
        assert invalid.is_error and _text(invalid)["field"] == "model"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.subprocess
async def test_http_transport_serves_a_gateway_with_list_and_credits(tmp_path: Path) -> None:
    import anyio
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    port = _free_port()
    command = [sys.executable, "-m", "jimeng", "mcp", "--sandbox-protocol", "gateway"]
    command += ["--transport", "http"]
    server = subprocess.Popen(  # noqa: ASYNC220 - started once; the test talks to it over HTTP
        [*command, "--port", str(port), "--output-dir", str(tmp_path)],
        env=_server_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        # The banner is written once the socket listens, so connecting cannot race the bind.
        banner = await anyio.to_thread.run_sync(server.stderr.readline)
        url = f"http://127.0.0.1:{port}/mcp"
        assert banner.strip() == f"jimeng mcp: streamable HTTP at {url}"
        async with (
            streamable_http_client(url) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            listed = await session.list_tools()
            assert [tool.name for tool in listed.tools] == [
                "generate_image",
                "generate_video",
                "get_task",
                "wait_task",
                "cancel_task",
                "list_tasks",
                "credits",
            ]
            image = await session.call_tool("generate_image", {"prompt": "a fox", "save": False})
            urls = _text(image)["urls"]  # the web models draw four by default
            assert [item.type for item in image.content] == ["image"] * len(urls) + ["text"]
            assert len(urls) == 4
            listing = _text(await session.call_tool("list_tasks", {"limit": 5}))
            assert listing["source"] == "service"
            assert _text(image)["ref"] in [task["ref"] for task in listing["tasks"]]
            credits = _text(await session.call_tool("credits", {}))
            assert [balance["total"] > 0 for balance in credits["balances"]] == [True]
    finally:
        server.terminate()
        server.communicate(timeout=10)


def test_missing_extra_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from jimeng.mcp import _server

    monkeypatch.setitem(sys.modules, "mcp", None)
    with pytest.raises(jimeng.ConfigurationError, match=r"pip install 'jimeng\[mcp\]'"):
        _server._require_mcp()


def test_a_bad_backend_fails_on_stderr_and_leaves_stdout_to_the_protocol(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from jimeng.cli import main

    assert main(["mcp", "--json", "--backend", "nope"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "unknown backend 'nope'" in err


async def test_images_too_large_for_one_message_are_saved_not_inlined(
    tmp_path: Path, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jimeng.mcp import _tools

    async with jimeng.Client(jimeng.Sandbox(), sleep=sleeps, journal=False) as client:
        tools = JimengTools(client, output_dir=tmp_path)
        probe = await tools.call(
            "generate_image", {"prompt": "3 images of a fox", "size": "1K", "save": False}
        )
        sizes = [len(item.data) for item in probe.images]
        assert len(sizes) == 3
        # Room for the first two images only: the third is noted, not sent.
        monkeypatch.setattr(_tools, "MAX_INLINE_TOTAL", sizes[0] + sizes[1])
        result = await tools.call("generate_image", {"prompt": "3 images of a fox", "size": "1K"})
    assert [len(item.data) for item in result.images] == sizes[:2]
    assert result.data["notes"] == [
        f"image 3 ({sizes[2]} bytes) not inlined: too large for one message; open the saved "
        "file or the URL"
    ]
    assert len(result.data["saved"]) == 3
