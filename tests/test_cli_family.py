"""``jimeng image edit|upscale|outpaint``, ``jimeng video imitate|avatar|translate`` and
``--backend ark`` in-process against the sandbox (the CLI's clients never sleep)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jimeng.cli import ExitCode, _app, main
from jimeng.cli._parser import verb_words
from jimeng.sandbox import SandboxServer
from jimeng.sandbox._media import mp4_info, png_size
from tests._images import png
from tests.test_cli import served  # noqa: F401 - a fixture


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sleeps: Any) -> Iterator[Path]:
    for key in list(os.environ):
        if key.startswith(("JIMENG_", "VOLC_", "ARK_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("JIMENG_HOME", str(tmp_path / "home"))  # the CLI journals by default
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_app, "_client_options", {"sleep": sleeps})
    (tmp_path / "photo.png").write_bytes(png(640, 360, prompt="photo"))
    (tmp_path / "mask.png").write_bytes(png(640, 360, prompt="mask"))
    yield tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["image", "edit", "x", "--image", "a"], ["image-edit", "x", "--image", "a"]),
        (["--json", "video", "avatar", "u"], ["--json", "video-avatar", "u"]),
        (["image", "edit"], ["image", "edit"]),  # the prompt "edit"
        (["image", "--", "edit", "--sandbox"], ["image", "--", "edit", "--sandbox"]),
        (["--backend", "image", "x"], ["--backend", "image", "x"]),
        (["video", "a cat"], ["video", "a cat"]),
    ],
)
def test_verbs_are_read_after_the_command_word(words: list[str], expected: list[str]) -> None:
    assert verb_words(words) == expected


def test_image_edit_saves_the_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(
        capsys,
        "image",
        "edit",
        "a red scarf",
        "--image",
        "photo.png",
        "--mask",
        "mask.png",
        "--sandbox",
        "--json",
        "-o",
        "edited.png",
    )
    assert code == ExitCode.OK
    doc = json.loads(out)
    assert (doc["model"], doc["prompt"]) == ("jimeng-inpaint", "a red scarf")
    assert png_size((tmp_path / "edited.png").read_bytes()) == (640, 360)


def test_remove_and_a_prompt_conflict(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "image", "edit", "x", "--image", "photo.png", "--mask", "mask.png", "--remove",
        "--sandbox",
    )  # fmt: skip
    assert code == ExitCode.USAGE
    assert "--remove" in err


def test_image_upscale_and_outpaint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, _ = run(
        capsys, "image", "upscale", "photo.png", "--resolution", "4k", "--sandbox", "-o", "u.png"
    )
    assert code == ExitCode.OK
    assert png_size((tmp_path / "u.png").read_bytes()) == (4096, 2304)
    code, _, _ = run(
        capsys, "image", "outpaint", "photo.png", "--top", "0.5", "--sandbox", "-o", "o.png"
    )
    assert code == ExitCode.OK
    assert png_size((tmp_path / "o.png").read_bytes()) == (640, 540)


def test_video_avatar_and_translate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(
        capsys,
        "video",
        "avatar",
        "https://example.com/me.png",
        "--audio",
        "https://example.com/hi_3s.mp3",
        "--resolution",
        "720",
        "--sandbox",
        "-o",
        "talk.mp4",
    )
    assert code == ExitCode.OK
    assert "- Mode: omnihuman-1.5" in out
    assert mp4_info((tmp_path / "talk.mp4").read_bytes()).duration == pytest.approx(3.0)
    code, out, _ = run(
        capsys,
        "video",
        "translate",
        "https://example.com/t_6s.mp4",
        "--to",
        "en",
        "--sandbox",
        "--json",
        "--no-save",
    )
    assert code == ExitCode.OK
    assert json.loads(out)["model"] == "video-translate-2.0"


def test_a_local_driving_video_is_a_usage_level_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (Path("me.png")).write_bytes(png(720, 960))
    code, _, err = run(capsys, "video", "imitate", "me.png", "--video", "dance.mp4", "--sandbox")
    assert code == ExitCode.USAGE
    assert "public http(s) URL" in err


def test_imitate_no_wait_prints_the_resume_command(
    capsys: pytest.CaptureFixture[str],
    served: SandboxServer,  # noqa: F811
) -> None:
    code, out, _ = run(
        capsys,
        "video",
        "imitate",
        "https://example.com/me.png",
        "--video",
        "https://example.com/d_4s.mp4",
        "--sandbox-url",
        served.url,
        "--no-wait",
    )
    assert code == ExitCode.OK
    assert "jimeng task wait jimeng_dreamactor_m20_gen_video:" in out


def test_backend_ark(capsys: pytest.CaptureFixture[str], served: SandboxServer) -> None:  # noqa: F811
    os.environ["ARK_API_KEY"] = "ark-sandbox-0000000000000000000000000000"
    os.environ["ARK_BASE_URL"] = served.url + "/ark/api/v3"
    try:
        code, out, _ = run(
            capsys, "image", "a dune", "--backend", "ark", "--size", "1280x720", "--json",
            "--no-save",
        )  # fmt: skip
    finally:
        del os.environ["ARK_API_KEY"], os.environ["ARK_BASE_URL"]
    assert code == ExitCode.OK, out
    doc = json.loads(out)
    assert (doc["backend"], doc["model"]) == ("ark", "seedream-4.0")


VERBS = [
    ["image", "edit", "a red scarf", "--image", "photo.png", "--mask", "mask.png"],
    ["image", "upscale", "photo.png"],
    ["image", "outpaint", "photo.png", "--top", "0.5"],
    ["video", "imitate", "https://example.com/me.png", "--video", "https://example.com/d_4s.mp4"],
    ["video", "avatar", "https://example.com/me.png", "--audio", "https://example.com/hi_3s.mp3"],
    ["video", "translate", "https://example.com/t_6s.mp4", "--to", "en"],
]


@pytest.mark.parametrize("argv", VERBS, ids=lambda argv: "-".join(argv[:2]))
@pytest.mark.parametrize("mode", ["--json", "--quiet", "--no-wait"])
def test_every_verb_says_accepted_on_stderr(
    capsys: pytest.CaptureFixture[str],
    served: SandboxServer,  # noqa: F811
    argv: list[str],
    mode: str,
) -> None:
    code, out, err = run(capsys, *argv, "--sandbox-url", served.url, "--no-save", mode)

    assert code == ExitCode.OK, err
    task_id, task = list(served.tasks.items())[-1]  # (an avatar's subject check comes first)
    ref = f"{task.params['req_key']}:{task_id}"
    assert err == f"accepted: {ref}\n"
    if mode == "--json":
        assert json.loads(out)["ref"] == ref
