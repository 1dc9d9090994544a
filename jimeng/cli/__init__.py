"""The ``jimeng`` command: ``jimeng image``, ``jimeng video``, ``jimeng task``, ``jimeng credits``,
``jimeng sandbox serve``. See docs/cli.md; exit codes are in :class:`ExitCode`."""

from jimeng.cli._app import main
from jimeng.cli._exit import ExitCode

__all__ = ["ExitCode", "main"]
