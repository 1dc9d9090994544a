"""Backends: one translator per protocol family, all over the same engine."""

from __future__ import annotations

from jimeng.backends._base import AccountBalance, Backend, NotSupportedError, Runtime, SessionStatus
from jimeng.errors import ConfigurationError

__all__ = ["AccountBalance", "Backend", "NotSupportedError", "Runtime", "SessionStatus", "create"]

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
        from jimeng.sandbox import Sandbox

        return Sandbox()
    raise ConfigurationError(f"unknown backend {name!r}; choose from {', '.join(NAMES)}")
