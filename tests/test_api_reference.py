"""The API reference covers every public name and renders no reStructuredText markup."""

from __future__ import annotations

import re
from pathlib import Path

import griffe
import pytest

import jimeng
from docs.griffe_readable import ReadableDocstrings, markdown

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"
RAW_MARKUP = re.compile(
    r":(class|func|meth|attr|exc|data|mod|obj):`|(?<!`)``(?!`)|::\s*$|\.\. code-block", re.M
)


def documented_paths() -> set[str]:
    paths: set[str] = set()
    for page in REFERENCE.glob("*.md"):
        paths.update(re.findall(r"^::: ([\w.]+)$", page.read_text(encoding="utf-8"), re.M))
    return paths


@pytest.mark.parametrize("name", jimeng.__all__)
def test_every_public_name_has_a_reference_entry(name: str) -> None:
    assert f"jimeng.{name}" in documented_paths()


@pytest.fixture(scope="module")
def package() -> griffe.Module:
    loaded = griffe.load(
        "jimeng",
        search_paths=[str(ROOT)],
        extensions=griffe.load_extensions(ReadableDocstrings),
        docstring_parser=griffe.Parser.sphinx,
    )
    assert isinstance(loaded, griffe.Module)
    return loaded


def _public_objects(obj: griffe.Object, seen: set[str]) -> list[griffe.Object]:
    if obj.path in seen:
        return []
    seen.add(obj.path)
    found = [obj]
    for name, member in obj.members.items():
        if not member.is_alias and not name.startswith("_"):
            found.extend(_public_objects(member, seen))  # type: ignore[arg-type]
    return found


def test_no_docstring_keeps_sphinx_markup(package: griffe.Module) -> None:
    leftovers = [
        f"{obj.path}: {RAW_MARKUP.search(obj.docstring.value)[0]!r}"  # type: ignore[index]
        for obj in _public_objects(package, set())
        if obj.docstring is not None and RAW_MARKUP.search(obj.docstring.value)
    ]
    assert leftovers == []


def test_attrs_models_get_their_constructor(package: griffe.Module) -> None:
    init = package["models._requests.Watermark.__init__"]
    assert [(p.name, p.kind.value, p.default) for p in init.parameters][1:] == [
        (p.name, "keyword-only", p.default) for p in init.parameters if p.name != "self"
    ]
    assert {p.name for p in init.parameters} >= {"position", "language", "opacity", "text"}


def test_hash_colon_comments_become_attribute_docstrings(package: griffe.Module) -> None:
    deadline = package["_polling.PollPolicy.deadline"]
    assert deadline.docstring is not None
    assert deadline.docstring.value.startswith("Overall limit in seconds")


def test_roles_and_literal_blocks_convert() -> None:
    context = griffe.Module("jimeng")
    text = (
        "Returns a :class:`~jimeng.TaskHandle` (see :func:`backend_from_env`), ``code``.\n"
        "The entry point::\n\n"
        "    async with jimeng.Client() as client:\n"
        "        await client.images.generate('x')\n\n"
        "A tree::\n\n"
        "    JimengError\n"
        "    └── APIError\n"
    )
    assert markdown(text, context).splitlines() == [
        'Returns a <autoref identifier="jimeng.TaskHandle" optional><code>TaskHandle</code>'
        '</autoref> (see <autoref identifier="jimeng.backend_from_env" optional>'
        "<code>backend_from_env</code></autoref>), `code`.",
        "The entry point:",
        "",
        "```python",
        "async with jimeng.Client() as client:",
        "    await client.images.generate('x')",
        "```",
        "",
        "A tree:",
        "",
        "```text",
        "JimengError",
        "└── APIError",
        "```",
    ]
