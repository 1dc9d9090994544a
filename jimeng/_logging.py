"""The ``jimeng`` logger and its redaction of secrets.

Backends register every secret they hold (keys, session ids, bearer tokens); a filter on the
``jimeng`` logger replaces them in messages and arguments. Headers are never logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, TextIO

__all__ = [
    "error_holds_secret",
    "fingerprint",
    "logger",
    "redact",
    "redact_cut",
    "redact_head",
    "register_secret",
    "scrub",
]

logger = logging.getLogger("jimeng")

_lock = threading.Lock()
_secrets: set[str] = set()
#: Short-lived credentials (upload tokens), oldest first; only the newest are kept.
_temporary: OrderedDict[str, None] = OrderedDict()
#: Temporary secrets kept registered: enough for every upload in flight, few enough that a long
#: run does not slow every redaction down with credentials that expired long ago.
MAX_TEMPORARY_SECRETS = 256
_REDACTED = "<redacted>"


class _Ordered:
    """The registered secrets, longest first (so a secret inside another is replaced after
    it), with what the fast checks need. Replaced as a whole on registration, so readers need
    no lock."""

    __slots__ = ("as_bytes", "json_safe", "longest", "texts")

    def __init__(self, texts: tuple[str, ...]):
        self.texts = texts
        self.as_bytes = tuple(text.encode("utf-8") for text in texts)
        #: The longest secret's length in UTF-8 bytes.
        self.longest = max((len(data) for data in self.as_bytes), default=0)
        #: JSON keeps these secrets' characters as they are (no quotes, backslashes or
        #: control characters), so a JSON text without the secret decodes to values without it.
        self.json_safe = all(
            text.isprintable() and '"' not in text and "\\" not in text for text in texts
        )


_ordered = _Ordered(())


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible label for a secret (safe in logs and errors)."""
    digest = hashlib.sha256(secret.encode("utf-8")).hexdigest()[:8]
    return f"…{digest}"


#: Shorter values are not treated as secrets: real keys, tokens and session ids are far longer,
#: and scrubbing a short word ("session", "test") would garble every message that contains it.
MIN_SECRET_LENGTH = 8


def register_secret(value: str | None, *, temporary: bool = False) -> None:
    """Make sure ``value`` is scrubbed from log records and error messages.

    ``temporary`` marks a short-lived credential that a backend receives again and again (an
    upload token): only the newest :data:`MAX_TEMPORARY_SECRETS` of those stay registered.
    """
    global _ordered
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        if temporary:
            if value in _temporary:
                _temporary.move_to_end(value)
                return
            _temporary[value] = None
            while len(_temporary) > MAX_TEMPORARY_SECRETS:
                _temporary.popitem(last=False)
        else:
            _secrets.add(value)
            _temporary.pop(value, None)
        every = _secrets.union(_temporary)
        _ordered = _Ordered(tuple(sorted(every, key=len, reverse=True)))


def redact(text: str) -> str:
    """Replace every registered secret in ``text``."""
    for secret in _ordered.texts:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def error_holds_secret(error: BaseException) -> bool:
    """Whether a registered secret shows in ``error`` or in an exception it chains to: in its
    message, repr, arguments or attributes (an aiohttp error keeps the URLs it was redirected
    to, with their query strings)."""
    secrets = _ordered.texts
    if not secrets:
        return False
    pending: list[BaseException | None] = [error]
    seen: set[int] = set()
    while pending:
        item = pending.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        try:
            texts = (str(item), repr(item), repr(item.args), repr(vars(item)))
        except Exception:
            return True  # what cannot be shown cannot be checked: keep it out of sight
        if any(secret in text for text in texts for secret in secrets):
            return True
        pending += (item.__cause__, item.__context__)
    return False


def redact_cut(text: str, limit: int, *, ellipsis: str = "") -> str:
    """``text`` with every registered secret replaced, then cut to ``limit`` characters (the
    ``ellipsis`` included) when longer.

    Replacing before cutting is what keeps a secret that crosses the cut from leaving its start
    behind. A ``<redacted>`` that the cut would split is kept whole, so the result may exceed
    ``limit`` by a few characters. Only the start of a long text is scanned, so a huge value
    costs no more than a short one.
    """
    head, more = _redacted_start(text, limit, lambda: text, more=False)
    return _cut(head, limit, ellipsis, more)


def redact_head(data: bytes, limit: int) -> str:
    """The start of ``data`` as text (UTF-8, undecodable bytes replaced), at most ``limit``
    characters, with every registered secret replaced before the cut (see :func:`redact_cut`).

    Only as many bytes are decoded as the first ``limit`` characters and a secret starting
    among them can span, so a huge body costs no more than a short one.
    """
    window = 4 * limit + _ordered.longest  # a character is at most 4 bytes
    head, more = _redacted_start(
        data[:window].decode("utf-8", "replace"),
        limit,
        lambda: data.decode("utf-8", "replace"),
        more=len(data) > window,
    )
    return _cut(head, limit, "", more)


def _redacted_start(
    text: str, limit: int, whole: Callable[[], str], *, more: bool
) -> tuple[str, bool]:
    """The start of a text (``text``; ``more``: the text goes on after it, as ``whole()``
    has it) with secrets replaced, long enough to cut ``limit`` characters from, and whether
    text was left out after it."""
    window = limit + _ordered.longest
    if len(text) > window:
        text, more = text[:window], True
    head = redact(text)
    if more and len(head) - _ordered.longest < limit:
        # Secrets shrank the start so much that the cut could reach a secret its end splits
        # (not replaced, as it is not whole there): redact the whole text instead.
        return redact(whole()), False
    return head, more


def _cut(text: str, limit: int, ellipsis: str, more: bool) -> str:
    if len(text) <= limit and not more:
        return text
    end = max(limit - len(ellipsis), 0)
    split = text.find(_REDACTED, max(end - len(_REDACTED) + 1, 0))
    if split != -1 and split < end:
        end = split + len(_REDACTED)
    if end >= len(text) and not more:
        return text
    return text[:end] + ellipsis


def scrub(value: Any) -> Any:
    """``value`` (a decoded server answer: dicts, lists, strings) with every registered secret
    replaced, at any depth. The same object comes back when there is nothing to replace, so a
    stored answer is copied only when it held a secret."""
    ordered = _ordered
    if not ordered.texts or not value:
        return value
    secrets = ordered.texts
    if isinstance(value, str):
        return _scrub(value, secrets)
    known = _clean.get(id(value))
    if known is not None and known[0] is value and known[1] is ordered:
        return value  # known clean: decoded from a clean body, or copied with attrs.evolve
    if _plainly_clean(value, ordered):
        _remember_clean(value, ordered)
        return value
    return _scrub(value, secrets)


#: Answers recently found clean (by identity, for the secrets registered then), so copies of a
#: model do not scan them again.
_clean: dict[int, tuple[Any, _Ordered]] = {}
_CLEAN_SIZE = 256


def _remember_clean(value: Any, ordered: _Ordered) -> None:
    _clean[id(value)] = (value, ordered)
    if len(_clean) > _CLEAN_SIZE:
        del _clean[next(iter(_clean))]


def decoded_clean(value: Any, text: bytes) -> None:
    """``value`` was just decoded from the JSON ``text``: when the text holds no secret and no
    escape (so every decoded string is a slice of it), remember the value as clean, sparing
    :func:`scrub` a scan of it."""
    ordered = _ordered
    if not (ordered.texts and ordered.json_safe and isinstance(value, dict | list)):
        return
    if b"\\" in text:
        return
    for secret in ordered.as_bytes:  # a loop, not any(): this runs for every answer
        if secret in text:
            return
    _remember_clean(value, ordered)


def _plainly_clean(value: Any, ordered: _Ordered) -> bool:
    """A fast no: the answer's JSON text contains no secret. Only trusted when JSON keeps every
    secret's characters as they are (no quotes, backslashes or control characters)."""
    if not ordered.json_safe:
        return False
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return False
    return not any(secret in text for secret in ordered.texts)


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, _REDACTED)
        return value
    if isinstance(value, bytes | bytearray):
        text = value.decode("utf-8", "surrogateescape")
        if not any(secret in text for secret in secrets):
            return value
        return _scrub(text, secrets).encode("utf-8", "surrogateescape")
    if isinstance(value, Mapping):
        items = [(_scrub(k, secrets), _scrub(v, secrets), k, v) for k, v in value.items()]
        if all(nk is k and nv is v for nk, nv, k, v in items):
            return value
        return {nk: nv for nk, nv, _, _ in items}
    if isinstance(value, list | tuple):
        cleaned_items = [_scrub(item, secrets) for item in value]
        if all(new is old for new, old in zip(cleaned_items, value, strict=True)):
            return value
        return tuple(cleaned_items) if isinstance(value, tuple) else cleaned_items
    return value


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        else:
            record.msg = redact(str(record.msg))
        return True


def _install() -> None:
    if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
        logger.addFilter(_RedactingFilter())


_install()

#: ``JIMENG_LOG`` values and the levels they set.
LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one handler :func:`install_handler` puts on the ``jimeng`` logger."""


def install_handler(level: int, stream: TextIO | None = None) -> logging.Handler:
    """Print the ``jimeng`` logger's records at ``level`` and above on ``stream`` (stderr).

    Called again, it reuses its handler (never two copies of a line) and only lowers the level.
    Records from child loggers (``jimeng.*``) are redacted by the handler too.
    """
    with _lock:
        handler = next((h for h in logger.handlers if isinstance(h, _Handler)), None)
        if handler is None:
            handler = _Handler(stream or sys.stderr)
            handler.setFormatter(logging.Formatter(_FORMAT))
            handler.addFilter(_RedactingFilter())
            logger.addHandler(handler)
            handler.setLevel(level)
        else:
            if stream is not None:
                handler.setStream(stream)
            handler.setLevel(min(level, handler.level))
        if logger.level == logging.NOTSET or logger.level > handler.level:
            logger.setLevel(handler.level)
    return handler


def configure_from_env() -> None:
    """``JIMENG_LOG=debug|info|warning|error``: print the library's log on stderr."""
    raw = os.environ.get("JIMENG_LOG", "").strip()
    if not raw:
        return
    level = LOG_LEVELS.get(raw.lower())
    if level is None:
        warnings.warn(
            f"JIMENG_LOG={raw!r} is not one of {', '.join(LOG_LEVELS)}; ignored",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    install_handler(level)


configure_from_env()


def debug(message: str, *args: Any) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(message, *args)
