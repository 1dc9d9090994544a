"""A fast stub of the Volcengine visual API for overhead measurements (not the sandbox).

``python benchmarks/stub_server.py`` prints ``listening on http://127.0.0.1:PORT`` and answers
``CVSync2AsyncSubmitTask`` with a task id and ``CVSync2AsyncGetResult`` with a finished task
(``image_urls``), at once, over keep-alive HTTP/1.1. It is a bare ``asyncio.Protocol`` so that
the client, not the server, is the bottleneck; it does not verify signatures (the sandbox does).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys

_ids = itertools.count(7_390_000_000_000_000_000)


def _answer(payload: dict[str, object]) -> bytes:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def _envelope(data: dict[str, object]) -> dict[str, object]:
    return {
        "code": 10000,
        "data": data,
        "message": "Success",
        "request_id": "20260101000000STUB",
        "status": 10000,
        "time_elapsed": "1.0ms",
    }


class StubProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for header in head.split("\r\n")[1:]:
                name, _, value = header.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            request_line = head.split("\r\n", 1)[0]
            assert self.transport is not None
            if "CVSync2AsyncSubmitTask" in request_line:
                reply = _answer(_envelope({"task_id": str(next(_ids))}))
            else:
                reply = _answer(
                    _envelope(
                        {
                            "status": "done",
                            "binary_data_base64": None,
                            "image_urls": ["https://cdn.invalid/stub/1.png"],
                        }
                    )
                )
            self.transport.write(reply)


async def serve(port: int = 0) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StubProtocol, "127.0.0.1", port)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
