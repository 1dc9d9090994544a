"""``client.account``: credits of web sessions (Dreamina and gateway backends)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from jimeng.backends._base import AccountBalance, SessionStatus

if TYPE_CHECKING:
    from jimeng._client import Client

__all__ = ["Account"]


class Account:
    """Credit balances and the daily claim, per session (fingerprints, never session ids)."""

    def __init__(self, client: Client):
        self._client = client

    async def credits(self) -> Sequence[AccountBalance]:
        return await self._client._run(self._client.backend.credits())

    async def claim(self) -> Sequence[AccountBalance]:
        """Claim the daily free credits where the site offers them."""
        return await self._client._run(self._client.backend.claim_credits())

    async def check(self) -> Sequence[SessionStatus]:
        """Whether each session is still logged in."""
        return await self._client._run(self._client.backend.check_sessions())
