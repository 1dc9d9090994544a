"""Backends: one translator per protocol family, all over the same engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from jimeng.backends._base import AccountBalance, Backend, NotSupportedError, Runtime, SessionStatus
from jimeng.errors import ConfigurationError

__all__ = [
    "FEATURES",
    "AccountBalance",
    "Backend",
    "Capabilities",
    "ModelCapabilities",
    "NotSupportedError",
    "Runtime",
    "SessionStatus",
    "create",
    "reference_capabilities",
]

if TYPE_CHECKING:
    from jimeng.backends._capabilities import FEATURES, Capabilities, ModelCapabilities


def __getattr__(name: str) -> Any:
    # The capability tables load on first use (``import jimeng`` does not need them).
    if name in ("FEATURES", "Capabilities", "ModelCapabilities"):
        from jimeng.backends import _capabilities

        return getattr(_capabilities, name)
    raise AttributeError(f"module 'jimeng.backends' has no attribute {name!r}")


NAMES = ("volcengine", "ark", "dreamina", "gateway", "sandbox")


def create(name: str) -> Backend:
    """A backend by name, configured from the environment."""
    key = name.strip().lower()
    if key == "volcengine":
        from jimeng.backends.volcengine import Volcengine

        return Volcengine()
    if key == "ark":
        from jimeng.backends.ark import Ark

        return Ark()
    if key == "dreamina":
        from jimeng.backends.dreamina import Dreamina

        return Dreamina()
    if key == "gateway":
        from jimeng.backends.gateway import Gateway

        return Gateway()
    if key == "sandbox":
        import os

        from jimeng.sandbox import Sandbox

        # A sandbox already serving elsewhere (``jimeng sandbox serve``), else one in-process.
        return Sandbox(url=os.environ.get("JIMENG_SANDBOX_URL") or None)
    raise ConfigurationError(f"unknown backend {name!r}; choose from {', '.join(NAMES)}")


def reference_capabilities() -> list[Capabilities]:
    """Each backend family's capabilities in a reference configuration (the sandbox's
    credentials; a Dreamina pool on every site), as ``jimeng backends`` and the docs show them.
    Nothing is started and nothing is sent."""
    from jimeng.sandbox import Sandbox

    # Session ids are registered as secrets (redacted from logs): these appear nowhere else.
    every_site = ",".join(
        f"{prefix}sandbox-capabilities-{code}"
        for prefix, code in (("", "cn"), ("us-", "us"), ("hk-", "hk"), ("jp-", "jp"), ("sg-", "sg"))
    )
    nowhere = "http://127.0.0.1:9"  # a sandbox given a URL starts (and binds) nothing
    configurations = (
        ("volcengine", Sandbox("volcengine", url=nowhere)),
        ("ark", Sandbox("ark", url=nowhere)),
        ("dreamina", Sandbox("dreamina", url=nowhere, tokens=every_site)),
        ("gateway (task mode)", Sandbox("gateway", url=nowhere, options={"async_tasks": True})),
        ("gateway (sync)", Sandbox("gateway-sync", url=nowhere, options={"async_tasks": False})),
        ("openai relay", Sandbox("gateway-openai", url=nowhere)),
    )
    return [
        attrs.evolve(sandbox.capabilities(), backend=label) for label, sandbox in configurations
    ]
