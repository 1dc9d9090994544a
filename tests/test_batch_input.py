"""Batch input: fields from the public signatures, JSONL and CSV, every bad line reported."""

from __future__ import annotations

import inspect
from pathlib import Path
from unittest.mock import ANY

import attrs
import pytest

import jimeng
from jimeng.batch import BatchLine, _check, fields_for, parse_lines, read_lines
from jimeng.batch._check import PARAMETER_TO_FIELD, check_lines, request_for
from jimeng.models import TaskKind
from jimeng.resources._common import read_local
from jimeng.resources.images import Images
from jimeng.resources.videos import Videos
from tests._images import png


def _wanted(method: object) -> set[str]:
    names = set(inspect.signature(method).parameters)  # type: ignore[arg-type]
    return names - {"self", "prompt", "poll", "on_submit", "on_update"}


def test_fields_are_every_generate_parameter() -> None:
    assert set(fields_for(TaskKind.IMAGE)) == _wanted(Images.generate)
    assert set(fields_for(TaskKind.VIDEO)) == _wanted(Videos.generate)
    assert {"size", "images", "watermark", "extra_body", "seed"} <= set(fields_for(TaskKind.IMAGE))


@pytest.mark.parametrize(
    ("kind", "model"),
    [(TaskKind.IMAGE, jimeng.ImageRequest), (TaskKind.VIDEO, jimeng.VideoRequest)],
)
def test_every_parameter_maps_to_a_request_field(kind: TaskKind, model: type) -> None:
    fields = set(attrs.fields_dict(model))
    renames = PARAMETER_TO_FIELD[kind]
    assert {renames.get(name, name) for name in fields_for(kind)} <= fields


def test_jsonl_lines_with_and_without_ids() -> None:
    text = (
        '{"id": "sku-1", "prompt": "a red shoe", "size": "2K", "seed": 7}\n'
        "\n"
        '{"prompt": "a blue shoe", "watermark": {"text": "AI"}, "extra_body": {"x": 1}}\n'
    )
    lines, problems = parse_lines(text, fmt="jsonl", model="jimeng-4.0")
    assert problems == []
    first, second = lines
    assert (first.id, first.number, first.prompt) == ("sku-1", 1, "a red shoe")
    assert first.params == {"size": "2K", "seed": 7, "model": "jimeng-4.0"}
    assert second.number == 3
    assert second.id == f"line3-{second.fingerprint[:8]}"
    assert second.params["watermark"] == jimeng.Watermark(text="AI")
    assert second.params["extra_body"] == {"x": 1}


def test_an_edited_line_is_a_new_line() -> None:
    (before,), _ = parse_lines('{"id": "a", "prompt": "a cat"}', fmt="jsonl")
    (after,), _ = parse_lines('{"id": "a", "prompt": "a cat, at night"}', fmt="jsonl")
    (same,), _ = parse_lines('{"prompt": "a cat", "id": "a"}', fmt="jsonl")
    assert before.id == after.id == "a"
    assert before.key != after.key
    assert before.key == same.key
    (plain,), _ = parse_lines('{"prompt": "a cat"}', fmt="jsonl")
    (edited,), _ = parse_lines('{"prompt": "a dog"}', fmt="jsonl")
    assert plain.id != edited.id


def test_csv_cells_are_read_by_parameter_type() -> None:
    text = (
        "id,prompt,seed,scale,force_single,images,watermark,size\n"
        'p1,a cat,12,0.5,true,"[""https://example.com/a.png""]",false,\n'
        'p2,a dog,,,no,https://example.com/b.png,"{""text"": ""AI""}",1K\n'
    )
    lines, problems = parse_lines(text, fmt="csv")
    assert problems == []
    first, second = lines
    assert (first.number, second.number) == (2, 3)
    assert first.params == {
        "seed": 12,
        "scale": 0.5,
        "force_single": True,
        "images": ["https://example.com/a.png"],
        "watermark": False,
    }
    assert second.params == {
        "force_single": False,
        "images": "https://example.com/b.png",
        "watermark": jimeng.Watermark(text="AI"),
        "size": "1K",
    }


def test_every_bad_line_is_reported_with_its_number_and_field() -> None:
    text = (
        '{"id": "ok", "prompt": "fine"}\n'
        "not json\n"
        '{"prompt": "x", "sizee": "2K"}\n'
        '{"size": "2K"}\n'
        '{"id": "ok", "prompt": "same id"}\n'
        '{"prompt": "y", "kind": "audio"}\n'
        '{"prompt": "z", "watermark": {"colour": "red"}}\n'
        '{"id": "../etc", "prompt": "a"}\n'
        "[1, 2]\n"
    )
    lines, problems = parse_lines(text, fmt="jsonl")
    assert [line.id for line in lines] == ["ok"]
    found = {(p.line, p.field) for p in problems}
    assert found == {
        (2, None),
        (3, "sizee"),
        (4, "prompt"),
        (5, "id"),
        (6, "kind"),
        (7, "watermark"),
        (8, "id"),
        (9, None),
    }
    by_line = {p.line: p.message for p in problems}
    assert "did you mean 'size'" in by_line[3]
    assert "also the id of line 1" in by_line[5]
    assert "not valid JSON" in by_line[2]


def test_a_number_too_long_to_read_is_a_line_problem() -> None:
    digits = "9" * 5000
    lines, problems = parse_lines(
        f'{{"id": "ok", "prompt": "a"}}\n{{"prompt": "b", "seed": {digits}}}\n', fmt="jsonl"
    )
    assert [line.id for line in lines] == ["ok"]
    assert [(p.line, p.field, p.message) for p in problems] == [
        (
            2,
            None,
            "not valid JSON (Exceeds the limit (4300 digits) for integer string conversion: "
            "value has 5000 digits)",
        )
    ]
    deep = "[" * 100_000 + "]" * 100_000
    _, problems = parse_lines(f'{{"prompt": "b", "images": {deep}}}\n', fmt="jsonl")
    assert [p.message for p in problems] == ["not valid JSON (nested too deeply)"]
    _, problems = parse_lines('{"prompt": "b"\n', fmt="jsonl")
    assert [p.message for p in problems] == [
        "not valid JSON (Expecting ',' delimiter at column 15)"
    ]


def test_csv_type_errors_name_the_field() -> None:
    text = "prompt,seed,force_single,scale\na,abc,maybe,x\n"
    lines, problems = parse_lines(text, fmt="csv")
    assert lines == []
    assert {(p.line, p.field) for p in problems} == {
        (2, "seed"),
        (2, "force_single"),
        (2, "scale"),
    }


def test_library_validation_per_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = (
        '{"prompt": "ok", "size": "2K"}\n'
        '{"prompt": "bad size", "size": "9K"}\n'
        '{"id": "gone", "prompt": "bad local file", "images": ["missing-file.png"]}\n'
        '{"prompt": "video ok", "kind": "video", "duration": 5}\n'
    )
    lines, problems = parse_lines(text, fmt="jsonl")
    assert problems == []
    found = check_lines(lines, jimeng.Sandbox())
    assert {(p.line, p.field) for p in found} == {(2, "size"), (3, "images[0]")}
    (missing,) = [p for p in found if p.line == 3]
    assert (missing.id, missing.message) == ("gone", "no such file: missing-file.png")


@pytest.mark.parametrize("protocol", ["volcengine", "dreamina", "ark", "gateway"])
def test_existing_local_files_are_valid_on_every_protocol(
    protocol: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ref.png").write_bytes(png(1024, 1024))
    (tmp_path / "notes.txt").write_text("not an image")
    text = (
        '{"id": "rel", "prompt": "watercolor", "images": ["ref.png"]}\n'
        f'{{"id": "abs", "prompt": "watercolor", "images": ["{tmp_path / "ref.png"}"]}}\n'
        '{"id": "txt", "prompt": "watercolor", "images": ["notes.txt"]}\n'
        '{"id": "none", "prompt": "watercolor", "images": ["nope.png"]}\n'
    )
    lines, problems = parse_lines(text, fmt="jsonl")
    assert problems == []
    found = check_lines(lines, jimeng.Sandbox(protocol))  # type: ignore[arg-type]
    assert [(p.line, p.id, p.field, p.message) for p in found] == [
        (
            3,
            "txt",
            "images[0]",
            "the file notes.txt is not an image this library can read (it starts with "
            "b'not an i') (allowed: PNG, JPEG, WebP, GIF or BMP)",
        ),
        (4, "none", "images[0]", "no such file: nope.png"),
    ]


def test_the_backend_judges_a_local_file_by_its_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wide.png").write_bytes(png(1000, 100))  # 10:1, beyond the 3:1 i2v frames take
    (tmp_path / "frame.png").write_bytes(png(1280, 720))
    text = (
        '{"id": "v1", "kind": "video", "prompt": "pan", "mode": "i2v_first_720p", '
        '"image": "frame.png"}\n'
        '{"id": "v2", "kind": "video", "prompt": "pan", "mode": "i2v_first_720p", '
        '"image": "wide.png"}\n'
    )
    lines, _ = parse_lines(text, fmt="jsonl")
    found = check_lines(lines, jimeng.Sandbox())
    assert [(p.line, p.id, p.field) for p in found] == [(2, "v2", "image")]
    assert "1000x100" in found[0].message


def test_a_file_many_lines_share_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ref.png").write_bytes(png(512, 512))
    (tmp_path / "other.png").write_bytes(png(512, 512, prompt="other"))
    reads: list[str] = []

    def counting(path: Path, field: str, *, image: bool = True) -> bytes:
        reads.append(str(path))
        return read_local(path, field, image=image)

    monkeypatch.setattr(_check, "read_local", counting)
    text = "".join(f'{{"prompt": "p{n}", "images": ["ref.png", "other.png"]}}\n' for n in range(50))
    lines, _ = parse_lines(text, fmt="jsonl")
    assert check_lines(lines, jimeng.Sandbox()) == []
    assert reads == ["ref.png", "other.png"]


def test_kept_files_stay_within_their_budget(tmp_path: Path) -> None:
    a, b = png(512, 512, prompt="a"), png(512, 512, pad=100, prompt="b")
    (tmp_path / "a.png").write_bytes(a)
    (tmp_path / "b.png").write_bytes(b)
    files = _check.LocalFiles(keep=len(b))
    assert files.read(tmp_path / "a.png", "images[0]", image=True) == a
    assert files.read(tmp_path / "b.png", "images[0]", image=True) == b  # pushes a.png out
    assert list(files._kept) == [(str((tmp_path / "b.png").resolve()), len(b), ANY, True)]
    files.read(tmp_path / "a.png", "images[0]", image=True)  # and back in: b.png goes
    assert list(files._kept) == [(str((tmp_path / "a.png").resolve()), len(a), ANY, True)]


def test_request_for_builds_the_models() -> None:
    (line,), _ = parse_lines(
        '{"prompt": "v", "kind": "video", "ratio": "16:9", "extra_body": {"a": 1}}', fmt="jsonl"
    )
    request = request_for(line)
    assert isinstance(request, jimeng.VideoRequest)
    assert (request.aspect_ratio, request.extra) == ("16:9", {"a": 1})


def test_lines_round_trip_through_json() -> None:
    (line,), _ = parse_lines(
        '{"id": "w", "prompt": "p", "watermark": {"text": "AI"}, "seed": 3}', fmt="jsonl"
    )
    assert BatchLine.from_json(line.to_json()) == line


def test_read_lines_picks_the_format_from_the_name(tmp_path: Path) -> None:
    csv_file = tmp_path / "in.csv"
    csv_file.write_text("prompt\na cat\n", encoding="utf-8")
    jsonl_file = tmp_path / "in.jsonl"
    jsonl_file.write_text('{"prompt": "a cat"}\n', encoding="utf-8")
    assert [line.number for line in read_lines(csv_file)[0]] == [2]
    assert [line.number for line in read_lines(jsonl_file)[0]] == [1]
    with pytest.raises(jimeng.ValidationError, match="no such file"):
        read_lines(tmp_path / "missing.jsonl")
