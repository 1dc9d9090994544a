"""Backends: one translator per protocol family, all over the same engine."""

from __future__ import annotations

import attrs

from jimeng.backends._base import AccountBalance, Backend, NotSupportedError, Runtime, SessionStatus
from jimeng.backends._capabilities import FEATURES, Capabilities, ModelCapabilities
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

NAMES = ("volcengine", "dreamina", "gateway", "sandbox")


def create(name: str) -> Backend:
    """A backend by name, configured from the environment."""
    key = name.strip().lower()
    if key == "volcengine":
        from jimeng.backends.volcengine import Volcengine

        return Volcengine()
    if key == "dreamina":
        from jimeng.backends.dreamina import Dreamina

        return Dreamina()
    if key == "gateway":
        from jimeng.backends.gateway import Gateway

        return Gateway()
    if key == "sandbox":
        from jimeng.sandbox import Sandbox

        return Sandbox()
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
    configurations = (
        ("volcengine", Sandbox("volcengine")),
        ("dreamina", Sandbox("dreamina", tokens=every_site)),
        ("gateway (task mode)", Sandbox("gateway")),
        ("gateway (sync)", Sandbox("gateway-sync", options={"async_tasks": False})),
        ("openai relay", Sandbox("gateway-openai")),
    )
    return [
        attrs.evolve(sandbox.capabilities(), backend=label) for label, sandbox in configurations
    ]
