"""``jimeng mcp``: the library's generation tools for AI agents, over the Model Context Protocol.

Built only on the public API, like the command line. Install the extra and run it::

    pip install "jimeng[mcp]"
    jimeng mcp                       # stdio, for desktop agents
    jimeng mcp --transport http      # streamable HTTP at http://127.0.0.1:8000/mcp

The tools are ``generate_image``, ``generate_video``, ``get_task``, ``wait_task`` and, where the
backend offers them, ``cancel_task``, ``list_tasks`` and ``credits``. The ``mcp`` package is
imported only when a server is built.
"""

from jimeng.mcp._server import build_server, default_output_dir, serve
from jimeng.mcp._tools import ImageItem, JimengTools, ToolResult, ToolSpec

__all__ = [
    "ImageItem",
    "JimengTools",
    "ToolResult",
    "ToolSpec",
    "build_server",
    "default_output_dir",
    "serve",
]
