"""The MCP server: :class:`~jimeng.mcp._tools.JimengTools` over the official ``mcp`` package.

The ``mcp`` package is an optional extra (``pip install "jimeng[mcp]"``) and is imported only
here, when a server is built.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from jimeng import __version__
from jimeng._client import Client
from jimeng.backends import Backend
from jimeng.errors import ConfigurationError
from jimeng.mcp._tools import JimengTools, ToolResult

if TYPE_CHECKING:
    from mcp import types as mcp_types
    from mcp.server.lowlevel import Server

__all__ = ["DEFAULT_OUTPUT_DIR", "build_server", "default_output_dir", "serve"]

Transport = Literal["stdio", "http"]
DEFAULT_OUTPUT_DIR = Path("~/jimeng/pic")

INSTRUCTIONS = (
    "Image and video generation with Jimeng (即梦 / Dreamina / Seedream). generate_image and "
    "generate_video start billed generations; get_task, wait_task and list_tasks only read; "
    "a generate call that returns a ref with status 'running' is collected with wait_task, "
    "never by generating again."
)


def default_output_dir() -> Path:
    """``$JIMENG_MCP_OUTPUT_DIR``, else ``~/jimeng/pic``."""
    return Path(os.environ.get("JIMENG_MCP_OUTPUT_DIR") or DEFAULT_OUTPUT_DIR).expanduser()


def _require_mcp() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "the MCP server needs the mcp package: pip install 'jimeng[mcp]'"
        ) from None


def build_server(tools: JimengTools) -> Server[Any]:
    """A low-level MCP server that lists and calls ``tools``."""
    _require_mcp()
    import mcp.types as types
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel import Server

    listed = [
        types.Tool(
            name=spec.name,
            title=spec.title,
            description=spec.description,
            input_schema=dict(spec.input_schema),
            annotations=types.ToolAnnotations(
                title=spec.title,
                read_only_hint=spec.read_only,
                destructive_hint=spec.destructive,
                idempotent_hint=spec.idempotent,
                open_world_hint=True,
            ),
        )
        for spec in tools.specs()
    ]

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listed)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        result = await tools.call(params.name, params.arguments)
        return _to_mcp(result)

    return Server(
        "jimeng",
        version=__version__,
        title="Jimeng image and video generation",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _to_mcp(result: ToolResult) -> mcp_types.CallToolResult:
    import mcp.types as types

    content: list[Any] = [
        types.ImageContent(
            type="image", data=base64.b64encode(item.data).decode("ascii"), mime_type=item.mime_type
        )
        for item in result.images
    ]
    content.append(types.TextContent(type="text", text=result.text))
    return types.CallToolResult(
        content=content, structured_content=dict(result.data), is_error=result.is_error
    )


@contextlib.asynccontextmanager
async def _tools(
    backend: Backend, output_dir: Path | None, journal: bool
) -> AsyncIterator[JimengTools]:
    async with Client(backend, journal=journal) as client:
        yield JimengTools(client, output_dir=output_dir or default_output_dir())


async def serve(
    backend: Backend,
    *,
    transport: Transport = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    output_dir: Path | None = None,
    journal: bool = True,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve the tools for ``backend`` until the client disconnects (stdio) or the process is
    stopped (HTTP, at ``http://host:port/mcp``). ``journal`` keeps a task journal so tasks
    survive restarts and ``list_tasks`` has a history. ``on_listening`` is called with the HTTP
    URL once the socket accepts connections."""
    _require_mcp()
    async with _tools(backend, output_dir, journal) as tools:
        server = build_server(tools)
        if transport == "stdio":
            from mcp.server.stdio import stdio_server

            async with stdio_server() as (read_stream, write_stream):
                await server.run(read_stream, write_stream, server.create_initialization_options())
            return
        import uvicorn

        app = server.streamable_http_app(host=host)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning")
        with socket.create_server((host, port)) as listener:
            if on_listening is not None:
                on_listening(f"http://{host}:{port}/mcp")
            await uvicorn.Server(config).serve(sockets=[listener])
