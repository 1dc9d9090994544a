"""``jimeng batch``: exit codes, the report of bad lines, ``--json``, resuming, progress lines."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from jimeng.batch import BatchItem
from jimeng.cli import _app, main
from jimeng.cli._batch import BatchProgress
from jimeng.sandbox import BLOCK_INPUT, FAIL_TASK
from tests._images import png
from tests.conftest import Sleeps


@pytest.fixture(autouse=True)
def quiet_clients(monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps, tmp_path: Path) -> None:
    monkeypatch.setattr(_app, "_client_options", {"sleep": sleeps})
    monkeypatch.setenv("JIMENG_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _jsonl(path: Path, *lines: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_a_batch_runs_then_resumes_as_skipped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = _jsonl(
        tmp_path / "shots.jsonl",
        {"id": "a", "prompt": "a cat", "size": "1K"},
        {"id": "b", "prompt": "a dog", "size": "1K"},
    )
    code, out, err = _run(capsys, "batch", str(source), "--out", "shots", "--sandbox", "--json")
    assert code == 0, err
    *items, last = [json.loads(line) for line in out.splitlines()]
    assert sorted((item["id"], item["status"], item["skipped"]) for item in items) == [
        ("a", "done", False),
        ("b", "done", False),
    ]
    assert last["summary"]["done"] == 2
    assert last["summary"]["submits"] == 2
    assert (tmp_path / "shots" / "a.png").is_file()
    rows = (tmp_path / "shots" / "results.jsonl").read_text().splitlines()
    assert [json.loads(row)["id"] for row in rows] == ["a", "b"]
    # The line states are in the journal's file.
    assert (tmp_path / "home" / "journal.sqlite3").is_file()

    code, out, err = _run(capsys, "batch", str(source), "--out", "shots", "--sandbox")
    assert code == 0, err
    assert "2 done, 0 failed, 2 skipped" in out
    assert "results: shots/results.jsonl" in out


def test_lines_with_local_reference_files_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "ref.png").write_bytes(png(512, 512))
    source = _jsonl(
        tmp_path / "img.jsonl",
        {"id": "i1", "prompt": "watercolor", "images": ["ref.png"]},
        {"id": "i2", "prompt": "watercolor", "images": [str(tmp_path / "ref.png")]},
        {"id": "bad1", "prompt": "watercolor", "images": ["missing.png"]},
    )
    code, _, err = _run(capsys, "batch", str(source), "--out", "shots-img", "--sandbox")
    assert code == 2
    assert err.splitlines()[1] == "  line 3, images[0]: no such file: missing.png"

    code, _, err = _run(
        capsys, "batch", str(source), "--out", "shots-img", "--sandbox", "--skip-invalid"
    )
    assert code == 0, err
    rows = [
        json.loads(row)
        for row in (tmp_path / "shots-img" / "results.jsonl").read_text().splitlines()
    ]
    shots = tmp_path / "shots-img"
    assert [(row["id"], row["status"], row["paths"]) for row in rows] == [
        ("i1", "done", [str(shots / "i1.png")]),
        ("i2", "done", [str(shots / "i2.png")]),
        ("bad1", "invalid", []),
    ]
    assert (tmp_path / "shots-img" / "i1.png").read_bytes().startswith(b"\x89PNG")


def test_bad_lines_are_all_reported_and_nothing_is_sent(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,prompt,scale,size\nok,a cat,0.5,1K\nx,,abc,1K\ny,a dog,,9K\n")
    code, out, err = _run(capsys, "batch", str(source), "--out", "o", "--sandbox")
    assert code == 2
    assert "3 invalid lines" not in err
    assert "2 invalid lines, nothing sent" in err
    assert "line 3, prompt: missing" in err
    assert "line 3, scale: expected a number, got 'abc'" in err
    assert "line 4, size: " in err and "'9K'" in err
    assert "--skip-invalid" in err
    assert not (tmp_path / "o" / "results.jsonl").exists()

    code, out, err = _run(capsys, "batch", str(source), "--out", "o", "--sandbox", "--json")
    assert code == 2
    problems = json.loads(out)["error"]["problems"]
    assert [(p["line"], p["id"], p["field"]) for p in problems] == [
        (3, "x", "prompt"),
        (3, "x", "scale"),
        (4, "y", "size"),
    ]

    code, out, err = _run(capsys, "batch", str(source), "--out", "o", "--sandbox", "--skip-invalid")
    assert code == 0, err
    assert "1 done, 0 failed, 0 skipped (finished before), 2 invalid" in out
    assert "2 invalid lines skipped" in err


def test_one_bad_line_is_counted_in_the_singular(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": "a", "prompt": "a cat"}\n{"id": "b", "prompt": "x", "seed": "abc"}\n')
    code, _, err = _run(capsys, "batch", str(source), "--out", "o", "--sandbox")
    assert code == 2
    assert err.splitlines() == [
        "jimeng: error: 1 invalid line, nothing sent:",
        "  line 2, seed: must be an integer, got 'abc' (allowed: in [-1, 9223372036854775807])",
        "  fix them, or pass --skip-invalid to run the valid lines only",
    ]
    code, _, err = _run(capsys, "batch", str(source), "--out", "o", "--sandbox", "--skip-invalid")
    assert code == 0, err
    assert "jimeng: note: 1 invalid line skipped (see results.jsonl)" in err.splitlines()


def test_failed_lines_exit_5_and_are_retried_on_request(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = _jsonl(
        tmp_path / "b.jsonl", {"id": "ok", "prompt": "a cat"}, {"id": "no", "prompt": FAIL_TASK}
    )
    code, out, err = _run(capsys, "batch", str(source), "--out", "o", "--sandbox")
    assert code == 5
    assert "1 lines failed" in err and "--retry-failed" in err
    row = json.loads((tmp_path / "o" / "results.jsonl").read_text().splitlines()[1])
    assert (row["status"], row["error"]["class"]) == ("failed", "TaskFailedError")

    code, out, err = _run(capsys, "batch", str(source), "--out", "o", "--sandbox", "--json")
    assert code == 5
    assert json.loads(out.splitlines()[-1])["summary"]["submits"] == 2
    code, out, err = _run(
        capsys, "batch", str(source), "--out", "o", "--sandbox", "--json", "--retry-failed"
    )
    assert code == 5
    assert json.loads(out.splitlines()[-1])["summary"]["submits"] == 3


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "batch", "missing.jsonl", "--out", "o", "--sandbox")
    assert code == 2 and "no such file" in err
    code, _, err = _run(capsys, "batch", "x.jsonl", "--sandbox")
    assert code == 2 and "--out" in err
    code, _, err = _run(capsys, "batch", "x.jsonl", "--out", "o", "--max-concurrency", "0")
    assert code == 2 and "--max-concurrency" in err


def _item(status: str, *, skipped: bool = False) -> BatchItem:
    return BatchItem(id="a", line=1, status=status, skipped=skipped)  # type: ignore[arg-type]


def test_plain_progress_lines_are_spaced() -> None:
    stream = io.StringIO()
    progress = BatchProgress(stream, total=3, mode="plain")
    progress.item(_item("done"))
    progress.item(_item("failed"))
    assert stream.getvalue() == ""  # less than PLAIN_EVERY seconds: nothing yet
    progress.item(_item("done", skipped=True))
    text = stream.getvalue()
    # Counted as the summary counts them: the skipped line is one of the done ones.
    assert text.startswith("jimeng batch: 3/3 lines (2 done, 1 failed, 1 skipped), ")
    assert text.endswith(" lines/s\n")


def test_the_rate_counts_from_the_start_of_the_run_not_the_first_line() -> None:
    # The first line finishes 12 s after the command started; three lines then finish at once.
    clock = iter([112.0, 112.0, 112.0])
    stream = io.StringIO()
    progress = BatchProgress(
        stream, total=3, mode="plain", started=100.0, monotonic=lambda: next(clock)
    )
    for status in ("done", "done", "failed"):
        progress.item(_item(status))
    assert stream.getvalue() == (
        "jimeng batch: 1/3 lines (1 done, 0 failed, 0 skipped), 0.1 lines/s\n"
        "jimeng batch: 3/3 lines (2 done, 1 failed, 0 skipped), 0.2 lines/s\n"
    )


def test_the_bar_counts_elapsed_time_from_the_start_of_the_run() -> None:
    pytest.importorskip("tqdm")
    stream = io.StringIO()
    progress = BatchProgress(stream, total=2, mode="bar", started=100.0, monotonic=lambda: 142.0)
    assert progress._bar is not None
    elapsed = progress._bar.format_dict["elapsed"]  # type: ignore[attr-defined]
    assert 42.0 <= elapsed < 43.0  # the 42 s before the first line, not 0
    progress.close()


def test_the_bar_is_tqdm_on_a_terminal() -> None:
    tqdm = pytest.importorskip("tqdm")
    stream = io.StringIO()
    progress = BatchProgress(stream, total=2, mode="bar")
    assert isinstance(progress._bar, tqdm.tqdm)
    progress.item(_item("done"))
    progress.close()
    assert "1/2" in stream.getvalue()


def test_a_batch_name_stays_with_its_backend(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = _jsonl(tmp_path / "prod.jsonl", {"id": "a", "prompt": "a cat"})
    code, _, err = _run(capsys, "batch", str(source), "--out", "prod", "--sandbox")
    assert code == 0, err
    before = (tmp_path / "prod" / "results.jsonl").read_text()
    code, out, err = _run(
        capsys, "batch", str(source), "--out", "prod", "--sandbox", "--sandbox-protocol", "ark"
    )
    assert (code, out) == (2, "")
    assert err == (
        "jimeng: error: --name: the batch 'prod' runs on sandbox (volcengine) in-process, and "
        "this client is sandbox (ark) in-process: its saved lines and accepted tasks belong to "
        "that backend. Run it with that backend, or give this run a name of its own to start a "
        "separate batch\n"
    )
    assert (tmp_path / "prod" / "results.jsonl").read_text() == before
    code, out, err = _run(
        capsys, "batch", str(source), "--out", "ark", "--sandbox", "--sandbox-protocol", "ark",
        "--name", "prod-ark",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("1 done, 0 failed, 0 skipped (finished before)")


def test_progress_and_summary_count_alike(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = _jsonl(
        tmp_path / "prod.jsonl",
        {"id": "a", "prompt": "a cat"},
        {"id": "b", "prompt": "a dog"},
        {"id": "blocked", "prompt": f"a bird {BLOCK_INPUT}"},
    )
    code, out, err = _run(capsys, "batch", str(source), "--out", "prod", "--sandbox")
    assert code == 5
    assert err.splitlines()[0].startswith("jimeng batch: 3/3 lines (2 done, 1 failed, 0 skipped), ")
    assert out.splitlines()[0].startswith(
        "2 done, 1 failed, 0 skipped (finished before), 0 invalid, 0 pending of 3 lines; "
        "2 submits; "  # the refused submit cost nothing
    )
    code, out, err = _run(capsys, "batch", str(source), "--out", "prod", "--sandbox")
    assert code == 5
    assert (
        err.splitlines()[0] == "jimeng batch: 3/3 lines (2 done, 1 failed, 3 skipped), 0.0 lines/s"
    )
    assert out.splitlines()[0].startswith(
        "2 done, 1 failed, 3 skipped (finished before), 0 invalid, 0 pending of 3 lines; "
        "2 submits; "
    )


def test_a_rerun_from_another_folder_finds_the_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    source = _jsonl(project / "p.jsonl", {"id": "a", "prompt": "a cat"})
    monkeypatch.chdir(project)
    code, _, err = _run(capsys, "batch", "p.jsonl", "--out", "shots/", "--sandbox")
    assert code == 0, err
    saved = (project / "shots" / "a.png").read_bytes()

    monkeypatch.chdir(tmp_path)  # the same batch (same store, same name), from the folder above
    code, out, err = _run(capsys, "batch", str(source), "--out", "proj/shots/", "--sandbox")
    assert code == 0, err
    assert (
        "1 done, 0 failed, 1 skipped (finished before), 0 invalid, 0 pending of 1 line; 1 submit;"
        in out
    )
    row = json.loads((project / "shots" / "results.jsonl").read_text())
    assert (row["status"], row["paths"]) == ("done", [str(project / "shots" / "a.png")])
    assert (project / "shots" / "a.png").read_bytes() == saved


def test_a_rerun_elsewhere_or_with_files_gone_says_where_the_files_are(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = _jsonl(
        tmp_path / "prod.jsonl", {"id": "a", "prompt": "a cat"}, {"id": "b", "prompt": "a dog"}
    )
    code, _, err = _run(capsys, "batch", str(source), "--out", "prod", "--sandbox")
    assert code == 0, err
    code, out, err = _run(capsys, "batch", str(source), "--out", "copy", "--sandbox", "--json")
    assert code == 0, err
    *items, last = [json.loads(line) for line in out.splitlines()]
    copy = tmp_path / "copy"
    assert sorted((i["id"], i["status"], i["skipped"], i["paths"]) for i in items) == [
        ("a", "done", False, [str(copy / "a.png")]),
        ("b", "done", False, [str(copy / "b.png")]),
    ]
    assert last["summary"]["submits"] == 2
    rows = [
        json.loads(row)
        for row in (tmp_path / "copy" / "results.jsonl").read_text().split("\n")[:-1]
    ]
    assert [row["paths"] for row in rows] == [[str(copy / "a.png")], [str(copy / "b.png")]]
    assert (tmp_path / "copy" / "a.png").read_bytes() == (tmp_path / "prod" / "a.png").read_bytes()

    # Deleted everywhere, made by an in-process sandbox that is gone: reported, not "done".
    for folder in ("prod", "copy"):
        (tmp_path / folder / "b.png").unlink()
    code, out, err = _run(capsys, "batch", str(source), "--out", "copy", "--sandbox")
    assert code == 5
    assert "1 done, 1 failed, 1 skipped (finished before)" in out
    row = json.loads((tmp_path / "copy" / "results.jsonl").read_text().splitlines()[1])
    assert (row["id"], row["status"], row["paths"], row["error"]["class"]) == (
        "b",
        "failed",
        [],
        "TaskExpiredError",
    )
    assert row["error"]["message"].startswith(
        f"the files saved earlier are not in copy ({copy / 'b.png'}) and the task could not "
        "give them again: "
    )
    code, out, err = _run(
        capsys, "batch", str(source), "--out", "copy", "--sandbox", "--retry-failed"
    )
    assert code == 0, err
    assert (tmp_path / "copy" / "b.png").is_file()
    assert (
        "2 done, 0 failed, 1 skipped (finished before), 0 invalid, 0 pending of 2 lines; 3 submits"
        in out
    )
