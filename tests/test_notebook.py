"""examples/quickstart.ipynb runs in a real Jupyter kernel (nbclient) and displays rich output."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from docs.notebook_page import execute, to_markdown

pytestmark = pytest.mark.subprocess

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    folder = tmp_path_factory.mktemp("notebook")
    return execute(cwd=folder), folder


def _code_cells(nb: Any) -> list[Any]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def _data(cell: Any) -> dict[str, Any]:
    [result] = [out for out in cell.outputs if out.output_type == "execute_result"]
    data: dict[str, Any] = result["data"]
    return data


def _stdout(cell: Any) -> str:
    return "".join(out["text"] for out in cell.outputs if out.output_type == "stream")


def test_every_cell_runs_without_errors_or_warnings(executed: tuple[Any, Path]) -> None:
    nb, _ = executed
    for cell in _code_cells(nb):
        kinds = [(out.output_type, out.get("name")) for out in cell.outputs]
        assert ("error", None) not in kinds, cell.source
        assert ("stream", "stderr") not in kinds, cell.source


def test_the_first_call_of_a_client_kept_across_cells_shows_the_result(
    executed: tuple[Any, Path],
) -> None:
    first = _code_cells(executed[0])[0]
    assert "async with" not in first.source
    html = _data(first)["text/html"]
    assert html.count("<img ") == 1
    assert 'src="data:image/png;base64,' in html
    assert "“a red fox in snow”" in html and "1024x1024" in html


def test_an_image_shows_as_png(executed: tuple[Any, Path]) -> None:
    data = _data(_code_cells(executed[0])[1])
    assert base64.b64decode(data["image/png"]).startswith(PNG_MAGIC)
    assert "<img " in data["text/html"]


def test_updates_and_a_short_repr(executed: tuple[Any, Path]) -> None:
    lines = _stdout(_code_cells(executed[0])[2]).splitlines()
    assert lines[0].startswith("jimeng_t2i_v40:")
    assert lines[1:3] == ["queued", "succeeded"]
    assert lines[3].startswith("<ImageResult 1 image jimeng-4.0 task=")


def test_a_video_shows_as_a_player(executed: tuple[Any, Path]) -> None:
    html = _data(_code_cells(executed[0])[3])["text/html"]
    assert "<video " in html and ".mp4" in html and "controls" in html


def test_results_are_saved_after_the_client_closed(executed: tuple[Any, Path]) -> None:
    nb, folder = executed
    assert _stdout(_code_cells(nb)[4]).strip() == "['.png'] .mp4"
    saved = sorted(path.suffix for path in (folder / "pic").iterdir())
    assert saved == [".mp4", ".png"]


def test_the_docs_page_embeds_the_outputs(executed: tuple[Any, Path]) -> None:
    nb, folder = executed
    page = to_markdown(nb, saved=folder / "pic")
    assert page.count("```python\n") == len(_code_cells(nb))
    assert page.count('<div class="notebook-output">') == 3  # result, image, video
    assert '<video src="data:video/mp4;base64,' in page and "data:image/png;base64," in page
    assert "http://127.0.0.1" not in page  # the sandbox is gone when the page is read
    assert "```text\nqueued" not in page  # stream output keeps its first line (the ref)
    assert "\nqueued\nsucceeded\n" in page
