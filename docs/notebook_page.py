"""The docs' "Notebook" page, built from ``examples/quickstart.ipynb`` when the site is built.

A mkdocs hook: the notebook is executed with nbclient against the sandbox (in a temporary
folder), and its cells and outputs become a Markdown page: code as Python blocks, rich outputs
(``text/html``, ``image/png``, ``image/jpeg``) as HTML, text as text blocks. The page is
generated, never written into ``docs/``. The test suite executes the same notebook through
:func:`execute`.
"""

from __future__ import annotations

import base64
import html
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"
PAGE = "notebook.md"
#: Cells run in seconds on the sandbox; a stuck cell fails the build instead of hanging it.
CELL_TIMEOUT = 120
SANDBOX_VIDEO = re.compile(r'<video src="http://127\.0\.0\.1:\d+/[^"]+\.mp4"')


def kernel_environment() -> dict[str, str]:
    """The kernel's environment: no credentials, and polls that do not wait (the sandbox
    finishes a task on its first poll)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOLC_", "JIMENG_"))}
    if "JIMENG_HOME" in os.environ:
        env["JIMENG_HOME"] = os.environ["JIMENG_HOME"]
    env["JIMENG_POLL_INTERVAL"] = env["JIMENG_VIDEO_POLL_INTERVAL"] = "0.01"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def execute(notebook: Path = NOTEBOOK, cwd: Path | None = None) -> Any:
    """Run every cell (raising on the first error) and return the executed notebook."""
    from nbclient import NotebookClient
    from traitlets.config import Config

    nb = nbformat.read(notebook, as_version=4)
    with tempfile.TemporaryDirectory() as scratch:
        # IPC sockets in the scratch folder: the kernel is local, and over TCP it warns.
        sockets = Config({"KernelManager": {"transport": "ipc", "ip": str(Path(scratch) / "k")}})
        client = NotebookClient(
            nb,
            config=sockets,
            timeout=CELL_TIMEOUT,
            kernel_name="python3",
            resources={"metadata": {"path": str(cwd or scratch)}},
        )
        client.execute(env=kernel_environment())
    return nb


def _output(output: Any) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        return f"```text\n{output['text'].rstrip()}\n```"
    if kind == "error":
        return f"```text\n{output['ename']}: {output['evalue']}\n```"
    data = output.get("data", {})
    if "text/html" in data:
        return f'<div class="notebook-output">\n{data["text/html"]}\n</div>'
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            encoded = data[mime].replace("\n", "")
            return f'<img src="data:{mime};base64,{encoded}" alt="output"/>'
    if "text/plain" in data:
        return f"```text\n{html.unescape(data['text/plain']).rstrip()}\n```"
    return ""


def _embed_sandbox_videos(text: str, saved: Path | None) -> str:
    """Sandbox URLs die with the kernel: point video players at the saved file's bytes."""
    videos = sorted(saved.glob("*.mp4")) if saved is not None and saved.is_dir() else []
    if len(videos) != 1:
        return text
    encoded = base64.b64encode(videos[0].read_bytes()).decode("ascii")
    return SANDBOX_VIDEO.sub(f'<video src="data:video/mp4;base64,{encoded}"', text)


def to_markdown(nb: Any, saved: Path | None = None) -> str:
    """The executed notebook as a Markdown page. ``saved`` is the folder the notebook saved
    its files in: a sandbox video is embedded from there."""
    parts = [
        "<!-- Generated from examples/quickstart.ipynb when the docs are built. -->",
    ]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(cell.source)
        elif cell.cell_type == "code":
            parts.append(f"```python\n{cell.source}\n```")
            for output in cell.get("outputs", []):
                if text := _output(output):
                    parts.append(_embed_sandbox_videos(text, saved))
    parts.append(
        "Download the notebook: `examples/quickstart.ipynb` in the repository "
        "(`jupyter lab examples/quickstart.ipynb`)."
    )
    return "\n\n".join(parts) + "\n"


def on_files(files: Any, config: Any) -> Any:
    """mkdocs hook: add the generated page."""
    from mkdocs.structure.files import File

    with tempfile.TemporaryDirectory() as folder:
        page = to_markdown(execute(cwd=Path(folder)), saved=Path(folder) / "pic")
    files.append(File.generated(config, PAGE, content=page))
    return files
