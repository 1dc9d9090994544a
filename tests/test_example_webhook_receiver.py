"""The webhook receiver example runs: a duplicate callback is processed once."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "webhook_receiver.py"


async def test_demo_processes_a_duplicate_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("webhook_receiver", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert await module.demo(tmp_path) == 0
    output = capsys.readouterr().out
    assert "callbacks received: 2, processed: 1" in output
    assert len(list(tmp_path.glob("jimeng_*.png"))) == 4
