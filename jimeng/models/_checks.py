"""Type and range checks for every public argument, as attrs validators and plain functions.

A wrong value raises :class:`~jimeng.errors.ValidationError` naming the field, a short repr of
what was given and what is allowed, before anything is sent. Nothing is coerced: ``"no"`` is not a
bool, ``1`` is not a bool, ``True`` is not a number, ``1080.0`` is not the choice ``1080``, and
NaN, infinity or a number beyond a float's range is not a number either. Text must be encodable
as UTF-8 (a lone surrogate is not). Ranges here hold on every backend; a backend's own table
narrows them further.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Collection, Mapping
from types import SimpleNamespace
from typing import Any

from yarl import URL

from jimeng.errors import ValidationError

__all__ = [
    "LARGEST",
    "Check",
    "boolean",
    "callable_",
    "check_argument",
    "check_bool",
    "check_int",
    "check_number",
    "check_secret",
    "check_secrets",
    "check_str",
    "check_url",
    "instance",
    "integer",
    "mapping_of_str",
    "number",
    "one_of",
    "refuse",
    "required",
    "secret_list",
    "secret_text",
    "text",
    "url",
]

#: An attrs validator: ``(instance, attribute, value) -> None``.
Check = Callable[[Any, Any, Any], None]

#: The largest magnitude a number may have: what a float (and so a JSON reader) can hold.
LARGEST = sys.float_info.max


def refuse(field: str, expected: str, value: Any, *, allowed: Any = None) -> ValidationError:
    """``field: must be <expected>, got <value>`` with the value's short repr."""
    return ValidationError(field, f"must be {expected}", allowed=allowed, value=value)


def check_bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise refuse(field, "True or False", value)
    return value


def check_str(field: str, value: Any, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise refuse(field, "a string", value)
    if not empty and not value.strip():
        raise refuse(field, "a non-empty string", value)
    if not _is_utf8(value):
        raise refuse(field, "text that can be encoded as UTF-8 (no lone surrogates)", value)
    return value


def _is_utf8(value: str) -> bool:
    """Whether the text encodes as UTF-8: a lone surrogate such as ``"\\ud800"`` does not, and
    would fail in the middle of building a request, or be sent as nonsense."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_secret(field: str, value: Any) -> str:
    """A non-empty string; a wrong value is described by its type only, never quoted."""
    if not isinstance(value, str) or not value.strip():
        shown = "an empty string" if isinstance(value, str) else f"a {type(value).__name__}"
        raise ValidationError(field, f"must be a non-empty string, got {shown} (not shown)")
    if not _is_utf8(value):
        raise ValidationError(
            field,
            "must be text that can be encoded as UTF-8, got a string with a lone surrogate "
            "(not shown)",
        )
    return value


def check_secrets(field: str, value: Any) -> str | list[str]:
    """One secret string, or a list/tuple of them (session ids, tokens)."""
    if isinstance(value, list | tuple):
        return [check_secret(f"{field}[{index}]", item) for index, item in enumerate(value)]
    return check_secret(field, value)


def check_int(
    field: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """An ``int`` (not a bool, not a float that happens to be whole) within the bounds, and
    within a float's range (every backend computes with it as one, every JSON reader reads it as
    one)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise refuse(field, "an integer", value, allowed=_bounds(minimum, maximum))
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise refuse(field, f"an integer {_bounds(minimum, maximum)}", value)
    if abs(value) > LARGEST:  # int and float compare exactly, without converting
        raise refuse(
            field, "an integer within a float's range", value, allowed=f"|value| <= {LARGEST:g}"
        )
    return value


def check_number(
    field: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
) -> float:
    """A finite ``int`` or ``float`` (not a bool) within the bounds; ``positive`` excludes zero.

    Other reals (``Fraction``, numpy scalars that are not floats) are refused rather than
    converted: no JSON encoder writes them.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise refuse(
            field,
            "a number (an int or a float)",
            value,
            allowed=_bounds(minimum, maximum, positive),
        )
    # An int compares with a float exactly, without converting (float() of a huge one overflows).
    if not abs(value) <= LARGEST:  # NaN, an infinity, or an int beyond a float's range
        raise refuse(field, "a finite number", value, allowed=_bounds(minimum, maximum, positive))
    if (
        (positive and value <= 0)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        raise refuse(field, f"a number {_bounds(minimum, maximum, positive)}", value)
    return value


def check_url(field: str, value: Any) -> str:
    """An ``http(s)://`` URL with a host."""
    text = check_str(field, value)
    try:
        parsed = URL(text.strip())
    except (ValueError, TypeError):
        raise refuse(field, "an http:// or https:// URL", value) from None
    if parsed.scheme.lower() not in ("http", "https"):
        raise refuse(field, "an http:// or https:// URL", value)
    if not parsed.host:
        raise refuse(field, "a URL with a host name", value)
    return text


def _bounds(minimum: float | None, maximum: float | None, positive: bool = False) -> str:
    low, high = _number_text(minimum), _number_text(maximum)
    if minimum is not None and maximum is not None:
        return f"in [{low}, {high}]"
    if minimum is not None:
        return f">= {low}"
    if maximum is not None:
        return f"<= {high}" + (" and > 0" if positive else "")
    return "> 0" if positive else ""


def _number_text(value: float | None) -> str:
    return str(value) if isinstance(value, int | None) else f"{value:g}"


# -- attrs validators (``None`` means "not given" and always passes) ------------------------------


def _optional(check: Callable[[str, Any], Any], field: str | None) -> Check:
    def validate(_: Any, attribute: Any, value: Any) -> None:
        if value is not None:
            check(field or attribute.name, value)

    return validate


def check_argument(name: str, value: Any, check: Check) -> None:
    """Run a validator of this module on a plain function argument called ``name``."""
    check(None, _argument(name), value)


@functools.lru_cache(maxsize=256)
def _argument(name: str) -> SimpleNamespace:
    """What a validator reads of an attribute (its name), for an argument (made once)."""
    return SimpleNamespace(name=name)


def required(check: Check) -> Check:
    """``check``, with ``None`` refused too (for fields that have no "not given")."""

    def validate(instance: Any, attribute: Any, value: Any) -> None:
        if value is None:
            raise refuse(attribute.name, "given (not None)", value)
        check(instance, attribute, value)

    return validate


def secret_text(field: str | None = None) -> Check:
    return _optional(check_secret, field)


def secret_list(field: str | None = None) -> Check:
    return _optional(check_secrets, field)


def boolean(field: str | None = None) -> Check:
    return _optional(check_bool, field)


def text(field: str | None = None, *, empty: bool = False) -> Check:
    return _optional(lambda name, value: check_str(name, value, empty=empty), field)


def integer(
    field: str | None = None, *, minimum: int | None = None, maximum: int | None = None
) -> Check:
    return _optional(
        lambda name, value: check_int(name, value, minimum=minimum, maximum=maximum), field
    )


def number(
    field: str | None = None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
) -> Check:
    return _optional(
        lambda name, value: check_number(
            name, value, minimum=minimum, maximum=maximum, positive=positive
        ),
        field,
    )


def url(field: str | None = None) -> Check:
    return _optional(check_url, field)


def one_of(choices: Collection[Any], field: str | None = None) -> Check:
    """One of ``choices``, of the choice's own type: ``True == 1`` and ``1080.0 == 1080`` hold
    in Python, but neither bool nor float is the integer choice (nor an integer a float one)."""

    def check(name: str, value: Any) -> None:
        if not any(_same_choice(value, choice) for choice in choices):
            raise refuse(name, "one of the allowed values", value, allowed=list(choices))

    return _optional(check, field)


def _same_choice(value: Any, choice: Any) -> bool:
    if isinstance(value, bool) is not isinstance(choice, bool):
        return False
    return isinstance(value, type(choice)) and bool(value == choice)


def instance(kind: type | tuple[type, ...], expected: str, field: str | None = None) -> Check:
    def check(name: str, value: Any) -> None:
        if not isinstance(value, kind):
            raise refuse(name, expected, value)

    return _optional(check, field)


def callable_(field: str | None = None) -> Check:
    def check(name: str, value: Any) -> None:
        if not callable(value):
            raise refuse(name, "callable", value)

    return _optional(check, field)


def mapping_of_str(field: str | None = None, *, values: bool = False) -> Check:
    """A mapping with string keys; with ``values``, string values too."""

    def check(name: str, value: Any) -> None:
        if not isinstance(value, Mapping):
            raise refuse(name, "a mapping (dict)", value)
        for key, item in value.items():
            if not isinstance(key, str):
                raise refuse(f"{name} key", "a string", key)
            if values:
                check_str(f"{name}[{key!r}]", item)

    return _optional(check, field)
