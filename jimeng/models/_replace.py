"""``replace(instance, **changes)``: :func:`attrs.evolve` for the few copies made on every
request (a task stamped at submit, a poll's observation, a result given its prompt).

The copy is built by the class's own ``__init__`` (converters and validators run, exactly as
with ``attrs.evolve``), through a function compiled once per class, instead of walking the
class's fields by name on every call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

__all__ = ["replace"]

T = TypeVar("T")

_copiers: dict[type, Callable[[Any, dict[str, Any]], Any]] = {}


def _copier(cls: type) -> Callable[[Any, dict[str, Any]], Any]:
    fields = [field for field in attrs.fields(cls) if field.init]
    allowed = frozenset(field.alias for field in fields)
    arguments = ", ".join(
        f"{field.alias}=get({field.alias!r}, instance.{field.name})"
        if field.name.isidentifier() and not field.name.startswith("__")
        else f"{field.alias}=get({field.alias!r}, getattr(instance, {field.name!r}))"
        for field in fields
    )
    source = (
        "def copy(instance, changes):\n"
        "    if not allowed.issuperset(changes):\n"
        "        unknown = sorted(set(changes) - allowed)\n"
        "        raise TypeError(f'{cls.__name__} has no init field(s) {unknown}')\n"
        "    get = changes.get\n"
        f"    return cls({arguments})\n"
    )
    namespace: dict[str, Any] = {"cls": cls, "allowed": allowed}
    exec(compile(source, f"<jimeng replace {cls.__qualname__}>", "exec"), namespace)
    copy: Callable[[Any, dict[str, Any]], Any] = namespace["copy"]
    return copy


def replace(instance: T, **changes: Any) -> T:
    """A copy of the attrs ``instance`` with ``changes``, like :func:`attrs.evolve`."""
    cls = type(instance)
    copy = _copiers.get(cls)
    if copy is None:
        copy = _copiers[cls] = _copier(cls)
    result: T = copy(instance, changes)
    return result
