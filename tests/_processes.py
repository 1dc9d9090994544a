"""Stopping the library's own processes in tests without leaking them."""

from __future__ import annotations

import signal
import subprocess


def stop(
    process: subprocess.Popen[str], sig: int = signal.SIGINT, timeout: float = 20
) -> tuple[str, str]:
    """Send ``sig`` and collect the output. A process still running after ``timeout`` seconds
    is killed (its pipes closed) before the test fails, so that one slow stop does not leave a
    process and open pipes behind for the tests that run next."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        raise AssertionError(
            f"{process.args!r} did not stop within {timeout:g} s of signal {sig}; "
            f"stderr: {err[-2000:]}"
        ) from None
