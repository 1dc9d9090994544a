"""Every Python block in README.md and docs/*.md runs against the sandbox.

The blocks of one page run in order in one namespace, like the cells of a notebook, with
top-level ``await`` allowed. The namespace starts with ``jimeng``, ``asyncio``, an open sandbox
``client``, an unopened sandbox ``backend``, a ``prompt``, and ``sandbox_client`` (``await
sandbox_client(protocol, **options)`` is an open client on such a sandbox, for setup comments).
The working directory is a fresh temporary folder, ``JIMENG_BACKEND=sandbox`` with no credentials
in the environment, only loopback hosts resolve, and ``asyncio.sleep`` returns at once, so
polling schedules cost no real time.

Two HTML comments, invisible on the rendered page, steer a block:

* ``<!-- docs-test: compile-only -->`` on the line before a fence: the block needs real
  credentials, another process or a third-party package; it is compiled, not run.
* ``<!-- docs-test: raises ValidationError -->`` on the line before a fence: the block shows an
  error; it must raise that ``jimeng`` exception.
* ``<!-- docs-test: setup`` … ``-->``: hidden code run at that point of the page (to give a page
  a gateway client, an environment variable, …).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import re
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import CodeType
from typing import Any

import pytest

import jimeng

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]

COMPILE_ONLY = "<!-- docs-test: compile-only -->"
RAISES = re.compile(r"^<!-- docs-test: raises (?P<error>\w+) -->$")
SETUP_OPEN = "<!-- docs-test: setup"
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^\n`]*)$")
PYTHON_INFOS = {"python", "py"}
#: A block that runs longer than this is stuck (the sandbox answers in milliseconds).
BLOCK_TIMEOUT = 60.0


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence (or of the setup comment)
    source: str
    compile_only: bool = False
    setup: bool = False
    raises: str | None = None  # the name of the jimeng exception the block must raise

    @property
    def label(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page.name
        return f"{page}:{self.line}"


def page_blocks(page: Path) -> list[Block]:
    """The Python blocks and setup comments of a page, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    previous = ""  # the last non-blank line before the current one
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if stripped.startswith(SETUP_OPEN):
            start = index
            body: list[str] = []
            rest = stripped[len(SETUP_OPEN) :].strip()
            if rest.endswith("-->"):
                body.append(rest[:-3])
            else:
                body.append(rest)
                index += 1
                while index < len(lines) and lines[index].strip() != "-->":
                    body.append(lines[index])
                    index += 1
            blocks.append(Block(page, start + 1, "\n".join(body).strip() + "\n", setup=True))
            index += 1
            continue
        match = FENCE.match(line)
        if match:
            indent, fence = match["indent"], match["fence"]
            info = match["info"].split()
            language = info[0].lstrip(".{").rstrip("}") if info else ""
            start = index
            body = []
            index += 1
            while index < len(lines) and not lines[index].strip().startswith(fence):
                text = lines[index]
                body.append(text[len(indent) :] if text.startswith(indent) else text.lstrip())
                index += 1
            if language in PYTHON_INFOS:
                raises = RAISES.match(previous)
                blocks.append(
                    Block(
                        page,
                        start + 1,
                        "\n".join(body) + "\n",
                        compile_only=previous == COMPILE_ONLY,
                        raises=raises["error"] if raises else None,
                    )
                )
            previous = ""
            index += 1
            continue
        if stripped:
            previous = stripped
        index += 1
    return blocks


def compile_block(block: Block) -> CodeType:
    return compile(
        block.source, block.label, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )


def is_coroutine_code(code: CodeType) -> bool:
    return bool(code.co_flags & 0x80)  # inspect.CO_COROUTINE: the block has a top-level await


def _loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name not in {"127.0.0.1", "localhost", "::1"}:
        raise OSError(f"docs blocks reach loopback only; {name!r} needs the compile-only marker")
    return _real_getaddrinfo(host, *args, **kwargs)


_real_getaddrinfo = socket.getaddrinfo
_real_sleep = asyncio.sleep


async def _no_wait(delay: float, result: Any = None) -> Any:
    """Clients made inside a block poll on their default schedules without waiting."""
    return await _real_sleep(0, result)


@contextlib.contextmanager
def sandbox_environment(folder: Path) -> Iterator[None]:
    saved = dict(os.environ)
    cwd = Path.cwd()
    socket.getaddrinfo = _loopback_only
    for name in list(os.environ):
        if name.startswith(("JIMENG_", "VOLC_", "HOOK_")):
            del os.environ[name]
    os.environ["JIMENG_BACKEND"] = "sandbox"
    os.environ["JIMENG_HOME"] = str(folder / ".jimeng-home")  # a journal of the page's own
    asyncio.sleep = _no_wait  # type: ignore[assignment]
    os.chdir(folder)
    try:
        yield
    finally:
        socket.getaddrinfo = _real_getaddrinfo
        asyncio.sleep = _real_sleep
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


class _NothingRaised(Exception):
    """Never raised: the ``except`` clause for blocks that expect no error."""


async def _close_clients(clients: list[Any]) -> None:
    for client in clients:
        if isinstance(client, jimeng.Client):
            await client.aclose()


def run_page(page: Path, folder: Path) -> None:
    """Run every block of ``page`` in order; a failure names the block's line."""
    loop = asyncio.new_event_loop()
    namespace: dict[str, Any] = {"__name__": "__docs__", "jimeng": jimeng, "asyncio": asyncio}
    opened: list[jimeng.Client] = []  # the seeded clients, even after a block rebinds the name
    with sandbox_environment(folder):
        try:

            async def sandbox_client(protocol: Any = "volcengine", **options: Any) -> jimeng.Client:
                client = jimeng.Client(jimeng.Sandbox(protocol, **options))
                await client.__aenter__()
                opened.append(client)
                return client

            async def seed() -> None:
                namespace.update(
                    client=await sandbox_client(),
                    backend=jimeng.Sandbox(),
                    prompt="a red fox",
                    sandbox_client=sandbox_client,
                )

            loop.run_until_complete(seed())
            for block in page_blocks(page):
                code = compile_block(block)
                if block.compile_only:
                    continue
                expected: type[BaseException] = (
                    getattr(jimeng, block.raises) if block.raises else _NothingRaised
                )
                try:
                    if is_coroutine_code(code):
                        loop.run_until_complete(
                            asyncio.wait_for(eval(code, namespace), BLOCK_TIMEOUT)
                        )
                    else:
                        exec(code, namespace)
                except expected:
                    continue
                except Exception as error:
                    raise AssertionError(
                        f"{block.label}: {type(error).__name__}: {error}\n{block.source}"
                    ) from error
                if block.raises:
                    raise AssertionError(f"{block.label}: {block.raises} was not raised")
        finally:
            loop.run_until_complete(_close_clients([*opened, *namespace.values()]))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def pages_with_python() -> list[Path]:
    return [page for page in PAGES if page_blocks(page)]


@pytest.mark.parametrize("page", pages_with_python(), ids=lambda page: str(page.relative_to(ROOT)))
def test_page_blocks_run_on_the_sandbox(page: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_page(page, tmp_path)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_block_compiles(page: Path) -> None:
    for block in page_blocks(page):
        compile_block(block)


def test_markers_are_read(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n"
        "```python\nx = 1\n```\n\n"
        f"{COMPILE_ONLY}\n\n"
        "```python\nawait real_service()\n```\n\n"
        "<!-- docs-test: setup\ny = x + 1\n-->\n\n"
        "<!-- docs-test: raises ValidationError -->\n"
        "```python\nraise jimeng.ValidationError('f', 'bad')\n```\n\n"
        "!!! note\n    ```py\n    z = y\n    ```\n\n"
        "```bash\necho not python\n```\n",
        encoding="utf-8",
    )
    blocks = page_blocks(page)
    assert [(b.line, b.source, b.compile_only, b.setup, b.raises) for b in blocks] == [
        (3, "x = 1\n", False, False, None),
        (9, "await real_service()\n", True, False, None),
        (13, "y = x + 1\n", False, True, None),
        (18, "raise jimeng.ValidationError('f', 'bad')\n", False, False, "ValidationError"),
        (23, "z = y\n", False, False, None),
    ]


def test_a_failing_block_names_its_line(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nx = 1\n```\n\n```python\nraise KeyError('boom')\n```\n")
    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(AssertionError, match=r"page.md:5: KeyError: 'boom'"):
        run_page(page, folder)


def test_a_block_marked_raises_must_raise(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- docs-test: raises ValidationError -->\n```python\nx = 1\n```\n")
    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(AssertionError, match=r"page.md:2: ValidationError was not raised"):
        run_page(page, folder)


def test_pages_journal_in_their_own_folder_not_the_users(tmp_path: Path) -> None:
    # Blocks open journalled clients (docs/tasks.md): with the user's data folder, an unfinished
    # task left there by any earlier run would be resumed against this run's sandbox.
    with sandbox_environment(tmp_path):
        assert jimeng.journal_path() == tmp_path / ".jimeng-home" / "journal.sqlite3"
