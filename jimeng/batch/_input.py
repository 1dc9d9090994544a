"""Batch input: one request per line of a JSONL or CSV file, checked before anything is sent.

The fields a line may carry are the parameters of ``client.images.generate`` and
``client.videos.generate``, read from their signatures (so a new parameter is a new column at
once); their annotations decide how a CSV cell's text is read. Everything else about a value is
the library's own validation (the request models and the backend's capabilities).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import inspect
import io
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from jimeng.errors import ValidationError
from jimeng.models import AigcMeta, TaskKind, Watermark

__all__ = [
    "BatchLine",
    "InputError",
    "LineProblem",
    "fields_for",
    "line_from_mapping",
    "parse_lines",
    "read_lines",
]

#: Parameters of ``generate`` that are about waiting, not about the request.
_WAIT_PARAMETERS = frozenset({"self", "poll", "on_submit", "on_update"})
#: Columns that are about the line, not a parameter.
ID_FIELD = "id"
KIND_FIELD = "kind"
#: ``id`` values become file names: keep them to a safe alphabet.
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


@attrs.frozen(kw_only=True)
class LineProblem:
    """Why one input line cannot be submitted: its number (1-based, as an editor shows it),
    the field at fault (``None`` for the line as a whole), what is wrong, and the line's ``id``
    when it has a readable one."""

    line: int
    field: str | None
    message: str
    id: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"


class InputError(ValidationError):
    """Input lines are invalid; ``problems`` lists every one (nothing was submitted)."""

    def __init__(self, problems: Sequence[LineProblem], *, source: str):
        self.problems = tuple(problems)
        shown = "; ".join(str(problem) for problem in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        count = len({problem.line for problem in self.problems})
        super().__init__(
            "input", f"{source}: {count} invalid line{'s' * (count != 1)}: {shown}{more}"
        )


@attrs.frozen(kw_only=True)
class BatchLine:
    """One request of a batch.

    ``id`` is the line's stable identity: the ``id`` column when given, else the line number
    and a hash of the line's content (so an edited line is a new line). ``fingerprint`` is a
    hash of the request itself: the state store keys a line by both, so editing a line that has
    an ``id`` is noticed too. ``params`` are keyword arguments of ``generate``.
    """

    id: str
    number: int
    kind: TaskKind
    prompt: str
    params: Mapping[str, Any] = attrs.field(factory=dict)
    fingerprint: str = ""

    @property
    def key(self) -> str:
        """Where the line's state is stored: id and fingerprint."""
        return f"{self.id}#{self.fingerprint}"

    def to_json(self) -> dict[str, Any]:
        """The line as JSON data (what a shared queue carries between workers)."""
        return {
            "id": self.id,
            "number": self.number,
            "kind": self.kind.value,
            "prompt": self.prompt,
            "params": _plain(self.params),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BatchLine:
        kind = TaskKind(data["kind"])
        params = {
            name: _typed(fields_for(kind)[name], value)
            for name, value in dict(data.get("params") or {}).items()
        }
        return cls(
            id=str(data["id"]),
            number=int(data["number"]),
            kind=kind,
            prompt=str(data["prompt"]),
            params=params,
            fingerprint=str(data["fingerprint"]),
        )


def _plain(value: Any) -> Any:
    """JSON data for a parameter value (attrs options become objects)."""
    if attrs.has(type(value)):
        return {key: _plain(item) for key, item in attrs.asdict(value, recurse=False).items()}
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and not isinstance(value, bool | int | float | str):
        return value.value  # enums
    return value


# -- fields, from the public signatures ------------------------------------------------------------


def fields_for(kind: TaskKind) -> dict[str, Any]:
    """Parameter name → type hint of ``generate`` for ``kind``, without ``prompt`` and the
    waiting options (``poll``, ``on_submit``, ``on_update``)."""
    return dict(_fields(kind))


_FIELD_CACHE: dict[TaskKind, dict[str, Any]] = {}


def _fields(kind: TaskKind) -> dict[str, Any]:
    cached = _FIELD_CACHE.get(kind)
    if cached is not None:
        return cached
    if kind is TaskKind.VIDEO:
        from jimeng.resources.videos import Videos

        method: Callable[..., Any] = Videos.generate
    else:
        from jimeng.resources.images import Images

        method = Images.generate
    hints = typing.get_type_hints(method)
    fields = {
        name: hints[name]
        for name, parameter in inspect.signature(method).parameters.items()
        if name not in _WAIT_PARAMETERS and name != "prompt"
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    _FIELD_CACHE[kind] = fields
    return fields


def _members(hint: Any) -> tuple[Any, ...]:
    """The members of a union (``X | None`` → ``(X, NoneType)``), else ``(hint,)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _accepts(hint: Any, wanted: type) -> bool:
    return any(member is wanted for member in _members(hint))


def _is_sequence(hint: Any) -> bool:
    for member in _members(hint):
        origin = typing.get_origin(member)
        if (
            isinstance(origin, type)
            and issubclass(origin, Sequence)
            and not issubclass(origin, str | bytes)
        ):
            return True
    return False


def _options_class(hint: Any) -> type | None:
    """The attrs option object a parameter takes (``Watermark``, ``AigcMeta``), if any."""
    for member in _members(hint):
        if member in (Watermark, AigcMeta):
            return member  # type: ignore[no-any-return]
    return None


def _accepts_mapping(hint: Any) -> bool:
    for member in _members(hint):
        origin = typing.get_origin(member)
        if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
            return True
    return False


def _typed(hint: Any, value: Any) -> Any:
    """A JSON value as ``generate`` takes it: option objects from JSON objects. Anything else
    passes unchanged (the library checks types and ranges itself)."""
    options = _options_class(hint)
    if options is not None and isinstance(value, Mapping):
        names = {field.name for field in attrs.fields(options)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ValidationError(
                "", f"unknown option {unknown[0]!r}", allowed=sorted(names), value=value
            )
        return options(**value)
    return value


def _from_text(hint: Any, text: str) -> Any:
    """A CSV cell's text as the parameter's type. Empty cells are "not given"."""
    text = text.strip()
    if _options_class(hint) is not None or _accepts_mapping(hint):
        if text.startswith("{"):
            return _typed(hint, _json_cell(text))
        if _accepts(hint, bool):
            return _boolean(text)
        raise ValidationError("", f"expected a JSON object, got {text!r}")
    if _accepts(hint, bool):
        return _boolean(text)
    if _accepts(hint, int) and not _accepts(hint, float):
        try:
            return int(text)
        except ValueError:
            raise ValidationError("", f"expected a whole number, got {text!r}") from None
    if _accepts(hint, float):
        try:
            return float(text)
        except ValueError:
            raise ValidationError("", f"expected a number, got {text!r}") from None
    if _is_sequence(hint) and text.startswith("["):
        return _json_cell(text)
    return text


def _json_cell(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ValidationError("", f"not valid JSON ({_json_problem(error)})") from None


def _json_problem(error: ValueError | RecursionError) -> str:
    """What is wrong with a JSON text: the decoder's words, an integer too long to read (more
    than 4300 digits, which Python refuses to convert), or nesting too deep to decode."""
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at column {error.colno}"
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error).split(";", 1)[0]


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValidationError("", f"expected true or false, got {text!r}", allowed="true, false, 1, 0")


# -- lines ---------------------------------------------------------------------------------------


def _digest(data: Any) -> str:
    text = json.dumps(_plain(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def line_from_mapping(
    raw: Mapping[str, Any],
    *,
    number: int,
    kind: TaskKind,
    model: str | None = None,
    from_text: bool = False,
) -> tuple[BatchLine | None, list[LineProblem]]:
    """Read one line's fields. ``kind`` and ``model`` are the defaults (a ``kind`` or
    ``model`` field wins). ``from_text``: values are CSV text to be read by type."""
    problems: list[LineProblem] = []
    values = {key: value for key, value in raw.items() if not _blank(value)}
    line_id = values.pop(ID_FIELD, None)
    if line_id is not None:
        line_id = str(line_id).strip()
    # An invalid line keeps its id in the report when it has a readable one.
    known_id = line_id if line_id and line_id.isprintable() else None

    def problem(field: str | None, message: str) -> None:
        problems.append(LineProblem(line=number, id=known_id, field=field, message=message))

    line_kind = kind
    if KIND_FIELD in values:
        try:
            line_kind = TaskKind(str(values.pop(KIND_FIELD)).strip().lower())
        except ValueError:
            problem(KIND_FIELD, "must be image or video")
            return None, problems
    fields = _fields(line_kind)
    if line_id is not None and not _ID_PATTERN.match(line_id):
        problem(
            ID_FIELD,
            f"{line_id!r} is not a usable id (letters, digits, '.', '_', '-'; up to 128, "
            "starting with a letter or digit: it names the saved files)",
        )
    prompt = values.pop("prompt", None)
    if not isinstance(prompt, str) or not prompt.strip():
        problem("prompt", "missing (every line needs a prompt)")
    params: dict[str, Any] = {}
    for name, value in values.items():
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problem(name, f"unknown field for {line_kind.value}s{hint}")
            continue
        try:
            hint_type = fields[name]
            params[name] = _from_text(hint_type, value) if from_text else _typed(hint_type, value)
        except ValidationError as error:
            problem(name, error.message.lstrip(": "))
    if model is not None and "model" not in params:
        params["model"] = model
    if problems:
        return None, problems
    assert isinstance(prompt, str)
    fingerprint = _digest({"kind": line_kind.value, "prompt": prompt, **params})
    return (
        BatchLine(
            id=line_id or f"line{number}-{fingerprint[:8]}",
            number=number,
            kind=line_kind,
            prompt=prompt,
            params=params,
            fingerprint=fingerprint,
        ),
        problems,
    )


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_lines(
    text: str,
    *,
    fmt: str,
    kind: TaskKind = TaskKind.IMAGE,
    model: str | None = None,
) -> tuple[list[BatchLine], list[LineProblem]]:
    """Every line of a JSONL (``fmt="jsonl"``) or CSV (``fmt="csv"``, a header row naming the
    fields) document: the lines that can be submitted, and the problems of the others."""
    lines: list[BatchLine] = []
    problems: list[LineProblem] = []
    for number, raw, from_text, error in _records(text, fmt):
        if error is not None:
            problems.append(LineProblem(line=number, field=None, message=error))
            continue
        line, found = line_from_mapping(
            raw, number=number, kind=kind, model=model, from_text=from_text
        )
        problems.extend(found)
        if line is not None:
            lines.append(line)
    seen: dict[str, int] = {}
    for line in lines:
        if line.id in seen:
            problems.append(
                LineProblem(
                    line=line.number,
                    id=line.id,
                    field=ID_FIELD,
                    message=f"{line.id!r} is also the id of line {seen[line.id]}",
                )
            )
        seen.setdefault(line.id, line.number)
    bad = {problem.line for problem in problems}
    return [line for line in lines if line.number not in bad], problems


def _records(text: str, fmt: str) -> Iterable[tuple[int, dict[str, Any], bool, str | None]]:
    """(line number, fields, values-are-text, error) per non-empty record."""
    if fmt == "jsonl":
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            try:
                data = json.loads(raw)
            except (ValueError, RecursionError) as error:
                yield number, {}, False, f"not valid JSON ({_json_problem(error)})"
                continue
            if not isinstance(data, dict):
                yield number, {}, False, f"expected a JSON object, got {type(data).__name__}"
                continue
            yield number, data, False, None
        return
    if fmt != "csv":
        raise ValueError(f"unknown input format {fmt!r}")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if len(set(header)) != len(header):
        yield 1, {}, True, "the header names a column twice"
        return
    for row in reader:
        number = reader.line_num
        extra = row.pop(None, None)
        if extra:
            yield number, {}, True, f"{len(extra)} more cells than the header has columns"
            continue
        if all(_blank(value) for value in row.values()):
            continue
        yield number, {key.strip(): value for key, value in row.items() if key}, True, None


def read_lines(
    path: str | Path,
    *,
    kind: TaskKind = TaskKind.IMAGE,
    model: str | None = None,
) -> tuple[list[BatchLine], list[LineProblem]]:
    """Read a ``.csv`` file, or JSON Lines (any other name); see :func:`parse_lines`."""
    source = Path(path)
    suffix = source.suffix.lower()
    fmt = "csv" if suffix == ".csv" else "jsonl"
    try:
        text = source.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValidationError("input", f"no such file: {source}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValidationError("input", f"cannot read {source}: {error}") from None
    return parse_lines(text, fmt=fmt, kind=kind, model=model)
