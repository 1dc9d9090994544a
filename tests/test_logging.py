"""``JIMENG_LOG`` and the one stderr handler: levels, no duplicates, secrets redacted."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jimeng import _logging
from jimeng.sandbox import SANDBOX_SECRET_KEY

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import asyncio, logging, jimeng

async def main():
    async with jimeng.Client(jimeng.Sandbox(), sleep=lambda s: asyncio.sleep(0)) as client:
        await client.images.generate("a cat", size="1K")

asyncio.run(main())
logger = logging.getLogger("jimeng")
print(len(logger.handlers), logging.getLevelName(logger.level))
"""


@pytest.fixture
def restore_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("jimeng")
    handlers, level = list(logger.handlers), logger.level
    logger.handlers[:] = [h for h in handlers if not isinstance(h, _logging._Handler)]
    logger.setLevel(logging.NOTSET)  # other tests may leave it lower
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def run_script(value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JIMENG_", "VOLC_"))}
    if value is not None:
        env["JIMENG_LOG"] = value
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.parametrize(
    ("value", "levels", "handlers"),
    [
        (None, set(), "0 NOTSET"),
        ("debug", {"DEBUG", "INFO"}, "1 DEBUG"),
        ("INFO", {"INFO"}, "1 INFO"),
        ("warning", set(), "1 WARNING"),
    ],
)
def test_jimeng_log_installs_one_stderr_handler(
    value: str | None, levels: set[str], handlers: str
) -> None:
    done = run_script(value)
    assert done.stdout.strip() == handlers
    lines = done.stderr.splitlines()
    assert {line.split()[2] for line in lines} == levels
    if "DEBUG" in levels:
        assert any("DEBUG jimeng: POST http://127.0.0.1:" in line for line in lines)
    assert SANDBOX_SECRET_KEY not in done.stderr


def test_an_unknown_level_is_ignored_with_a_warning() -> None:
    done = run_script("loud")
    assert done.stdout.strip() == "0 NOTSET"
    assert "RuntimeWarning: JIMENG_LOG='loud' is not one of debug, info, warning, error" in (
        done.stderr
    )


def test_install_handler_is_idempotent_and_redacts(restore_logger: logging.Logger) -> None:
    logger = restore_logger
    stream = io.StringIO()
    first = _logging.install_handler(logging.INFO, stream)
    again = _logging.install_handler(logging.WARNING, stream)
    assert first is again and logger.handlers.count(first) == 1
    assert first.level == logging.INFO and logger.level == logging.INFO  # never raised
    _logging.install_handler(logging.DEBUG)
    assert first.level == logging.DEBUG and logger.level == logging.DEBUG
    first.setStream(stream)

    secret = "canary-logging-secret-5f2a"
    _logging.register_secret(secret)
    logger.info("token %s in a message", secret)
    logging.getLogger("jimeng.child").warning("child says %s", secret)
    text = stream.getvalue()
    assert secret not in text
    assert "INFO jimeng: token <redacted> in a message" in text
    assert "WARNING jimeng.child: child says <redacted>" in text


# -- cutting text after redaction ------------------------------------------------------------

CUT_SECRET = "canary-cut-secret-3e9d71"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        # A secret across the cut: replaced first, so none of it is left (the marker is whole).
        ("x" * 10 + CUT_SECRET, 15, "x" * 10 + "<redacted>"),
        # A secret before the cut makes room for what follows it.
        (CUT_SECRET + "tailandmore", 15, "<redacted>taila"),
        # The cut falls after a marker: nothing to keep whole.
        ("ab" + CUT_SECRET + "cdefgh", 14, "ab<redacted>cd"),
        # Short enough: only replaced.
        (f"key {CUT_SECRET}", 100, "key <redacted>"),
        ("plain text that is long", 10, "plain text"),
    ],
)
def test_redact_cut_replaces_secrets_before_it_cuts(text: str, limit: int, expected: str) -> None:
    _logging.register_secret(CUT_SECRET)
    assert _logging.redact_cut(text, limit) == expected


def test_redact_cut_adds_its_ellipsis_only_when_it_cuts() -> None:
    _logging.register_secret(CUT_SECRET)
    cut = _logging.redact_cut("y" * 20 + CUT_SECRET + "zz", 25, ellipsis="…")
    assert cut == "y" * 20 + "<redacted>…"
    # Only the marker was beyond the limit: kept whole, and nothing is left out.
    assert _logging.redact_cut("y" * 20 + CUT_SECRET, 25, ellipsis="…") == "y" * 20 + "<redacted>"
    assert _logging.redact_cut("y" * 30, 25, ellipsis="…") == "y" * 24 + "…"
    assert _logging.redact_cut("y" * 25, 25, ellipsis="…") == "y" * 25


def _cut_after_redacting_everything(text: str, limit: int, ellipsis: str) -> str:
    """What redact_cut returns, by the plain method: replace in the whole text, then cut."""
    text = _logging.redact(text)
    if len(text) <= limit:
        return text
    end = max(limit - len(ellipsis), 0)
    split = text.find("<redacted>", max(end - len("<redacted>") + 1, 0))
    if split != -1 and split < end:
        end = split + len("<redacted>")
    return text if end >= len(text) else text[:end] + ellipsis


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from(["a", "é", "xyz", CUT_SECRET, "canary-cut-2nd-5b0e"]), max_size=60
    ),
    limit=st.integers(min_value=0, max_value=60),
    ellipsis=st.sampled_from(["", "…"]),
)
def test_redact_cut_scans_only_the_start_and_answers_as_redacting_everything(
    pieces: list[str], limit: int, ellipsis: str
) -> None:
    _logging.register_secret(CUT_SECRET)
    _logging.register_secret("canary-cut-2nd-5b0e")
    text = "".join(pieces)
    assert _logging.redact_cut(text, limit, ellipsis=ellipsis) == _cut_after_redacting_everything(
        text, limit, ellipsis
    )
    body = text.encode()
    assert _logging.redact_head(body, limit) == _cut_after_redacting_everything(text, limit, "")


def test_a_huge_value_is_redacted_by_its_start_only(monkeypatch: pytest.MonkeyPatch) -> None:
    _logging.register_secret(CUT_SECRET)
    scanned: list[int] = []
    redact = _logging.redact

    def counting(text: str) -> str:
        scanned.append(len(text))
        return redact(text)

    monkeypatch.setattr(_logging, "redact", counting)
    huge = "p" * 5_000_000 + CUT_SECRET
    assert _logging.redact_cut(huge, 80, ellipsis="…") == "p" * 79 + "…"
    assert _logging.redact_head(huge.encode(), 80) == "p" * 80
    longest = len(CUT_SECRET.encode())  # at least: other tests register longer ones
    assert scanned and max(scanned) <= 4 * 80 + 2 * max(longest, _logging._ordered.longest)


def test_redact_head_cuts_a_body_in_characters_after_redaction() -> None:
    _logging.register_secret(CUT_SECRET)
    # Multi-byte characters before the secret: its start lies within the first 200 characters
    # though far beyond the first 200 bytes.
    body = ("é" * 190 + CUT_SECRET + "x" * 10_000).encode()
    assert _logging.redact_head(body, 200) == "é" * 190 + "<redacted>"
    assert _logging.redact_head(b"<html>" + CUT_SECRET.encode(), 8) == "<html><redacted>"
    assert _logging.redact_head(b"\xff\xfeok", 80) == "\ufffd\ufffdok"


def test_temporary_secrets_keep_only_the_newest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_logging, "MAX_TEMPORARY_SECRETS", 2)
    tokens = [f"canary-upload-token-{n}-9f2c" for n in range(3)]
    for token in tokens:
        _logging.register_secret(token, temporary=True)
    assert _logging.redact(" ".join(tokens)) == f"{tokens[0]} <redacted> <redacted>"
    _logging.register_secret(tokens[0])  # registered for good: no longer a temporary one
    _logging.register_secret("canary-upload-token-3-9f2c", temporary=True)
    assert _logging.redact(tokens[0]) == "<redacted>"
