"""A griffe extension that lets mkdocstrings render the library's docstrings as they read.

The docstrings are written for ``help()`` and IDEs, in reStructuredText habits: class, function
and method roles, double-backtick literals, ``Text::`` literal blocks and ``.. code-block::``
directives. Rather than rewriting every docstring, this converts them to Markdown when the docs
are built:

* roles become cross-references that link when the target is documented and stay plain code
  otherwise (mkdocs-autorefs "optional" references, so a missing target never breaks the build);
* literal blocks and ``code-block`` directives become fenced blocks (Python when they parse as
  Python, text otherwise);
* ``#:`` comments above an attribute (the Sphinx convention the models use) become its docstring;
* attrs classes get an ``__init__`` built from ``attrs.fields()`` so their parameters show.
"""

from __future__ import annotations

import ast
import importlib
import re
import textwrap
from typing import Any

import griffe

ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|attr|exc|data|mod|obj|const):`(?P<target>[^`]+)`"
)
DOUBLE_BACKTICKS = re.compile(r"``(?P<code>[^`]+?)``")
DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. code-block::\s*(?P<language>\w*)\s*$")


def _reference(target: str, context: griffe.Object) -> str:
    shown = target.lstrip("~.")
    if target.startswith("~"):
        shown = shown.rsplit(".", 1)[-1]
    shown = shown.removesuffix("()")
    path = target.lstrip("~.").removesuffix("()")
    if "." not in path:
        # A bare name: a sibling member, or a public name of the package.
        owner = context if context.is_class or context.is_module else context.parent
        if owner is not None and path in owner.members:
            path = f"{owner.path}.{path}"
        else:
            path = f"jimeng.{path}"
    return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'


def _fence(lines: list[str]) -> list[str]:
    code = textwrap.dedent("\n".join(lines)).strip("\n")
    try:
        ast.parse(code)
        language = "python"
    except SyntaxError:
        language = "python" if ("await " in code or "async " in code) else "text"
    return [f"```{language}", *code.splitlines(), "```"]


def _take_indented(lines: list[str], start: int, indent: int) -> tuple[list[str], int]:
    """The block of lines indented deeper than ``indent`` from ``start`` (blank lines included)."""
    block: list[str] = []
    index = start
    while index < len(lines):
        line = lines[index]
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        block.append(line)
        index += 1
    while block and not block[-1].strip():
        block.pop()
        index -= 1
    return block, index


def markdown(text: str, context: griffe.Object) -> str:
    """One docstring, converted."""
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        directive = DIRECTIVE.match(line)
        literal = line.rstrip().endswith("::") and not line.strip().startswith("..")
        if directive or literal:
            indent = len(line) - len(line.lstrip())
            block, end = _take_indented(lines, index + 1, indent)
            if any(part.strip() for part in block):
                if literal:
                    lead = line.rstrip()[:-2].rstrip()
                    # "Text::" keeps one colon; a lone "::" disappears.
                    out.append(_inline(f"{lead}:", context) if lead.strip() else "")
                out.append("")
                out.extend(_fence(block))
                if end < len(lines) and lines[end].strip():
                    out.append("")
                index = end
                continue
        out.append(_inline(line, context))
        index += 1
    return "\n".join(out).strip("\n")


def _inline(line: str, context: griffe.Object) -> str:
    line = ROLE.sub(lambda match: _reference(match["target"], context), line)
    return DOUBLE_BACKTICKS.sub(lambda match: f"`{match['code']}`", line)


def _comment_docstring(attribute: griffe.Attribute) -> str | None:
    """The ``#:`` comment lines right above an attribute, if any."""
    if attribute.lineno is None or attribute.filepath is None:
        return None
    try:
        source = attribute.lines_collection[attribute.filepath]
    except KeyError:
        return None
    comments: list[str] = []
    index = attribute.lineno - 2
    while index >= 0 and source[index].strip().startswith("#:"):
        comments.insert(0, source[index].strip()[2:].strip())
        index -= 1
    return " ".join(comments) or None


def _runtime(path: str) -> Any:
    module_path, _, name = path.rpartition(".")
    while module_path:
        try:
            value: Any = importlib.import_module(module_path)
        except ImportError:
            module_path, _, outer = module_path.rpartition(".")
            name = f"{outer}.{name}"
            continue
        for part in name.split("."):
            value = getattr(value, part)
        return value
    return None


def _attrs_init(cls: griffe.Class) -> griffe.Function | None:
    import attrs

    try:
        runtime = _runtime(cls.path)
    except (AttributeError, ImportError):
        return None
    if not isinstance(runtime, type) or not attrs.has(runtime):
        return None
    parameters = [griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)]
    for field in attrs.fields(runtime):
        if not field.init:
            continue
        member = cls.all_members.get(field.name)
        annotation = getattr(member, "annotation", None) if member is not None else None
        if field.default is attrs.NOTHING:
            default = None
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            factory = field.default.factory
            default = f"{getattr(factory, '__name__', 'factory')}()"
        else:
            default = repr(field.default)
        parameters.append(
            griffe.Parameter(
                field.alias or field.name,
                annotation=annotation,
                kind=(
                    griffe.ParameterKind.keyword_only
                    if field.kw_only
                    else griffe.ParameterKind.positional_or_keyword
                ),
                default=default,
                docstring=member.docstring if member is not None else None,
            )
        )
    init = griffe.Function(
        "__init__",
        parameters=griffe.Parameters(*parameters),
        returns="None",
        lineno=cls.lineno,
        endlineno=cls.lineno,
    )
    init.labels.add("attrs-generated")
    return init


class ReadableDocstrings(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._visit(pkg, seen=set())

    def _visit(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.is_attribute and obj.docstring is None:
            comment = _comment_docstring(obj)  # type: ignore[arg-type]
            if comment:
                obj.docstring = griffe.Docstring(comment, parent=obj)
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value, obj)
        if obj.is_class and "__init__" not in obj.members:
            init = _attrs_init(obj)  # type: ignore[arg-type]
            if init is not None:
                obj.set_member("__init__", init)
        for member in list(obj.members.values()):
            if not member.is_alias:
                self._visit(member, seen)  # type: ignore[arg-type]
