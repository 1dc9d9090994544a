"""The offline sandbox: a local server that speaks the backends' real protocols.

``jimeng.Client(jimeng.Sandbox())`` starts it on a free loopback port when the client opens and
talks to it exactly as it would to the real service (signed requests, polling, downloads). Other
programs can use ``python -m jimeng.sandbox --port 8787`` and point their backend at it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from jimeng._http import Flow
from jimeng._polling import PollPolicy
from jimeng.backends._base import AccountBalance, Backend, Runtime, SessionStatus
from jimeng.backends._capabilities import Capabilities
from jimeng.errors import ConfigurationError, JimengError
from jimeng.models import ImageRequest, Task, VideoRequest
from jimeng.models._checks import (
    check_argument,
    instance,
    mapping_of_str,
    number,
    required,
    secret_list,
    text,
)
from jimeng.models._transforms import AvatarRequest, TransformRequest
from jimeng.sandbox._ark import ARK_PREFIX, SANDBOX_ARK_KEY, ArkProtocol
from jimeng.sandbox._clock import VirtualClock
from jimeng.sandbox._dreamina import SANDBOX_TOKENS, DreaminaProtocol
from jimeng.sandbox._dreamina import base_urls as dreamina_base_urls
from jimeng.sandbox._gateway import (
    GATEWAY_PREFIX,
    OPENAI_PREFIX,
    SANDBOX_API_KEY,
    SANDBOX_GATEWAY_TOKEN,
    SYNC_GATEWAY_PREFIX,
)
from jimeng.sandbox._gateway import mounts as gateway_mounts
from jimeng.sandbox._server import Fault, SandboxServer, Stages
from jimeng.sandbox._volcengine import (
    BLOCK_INPUT,
    BLOCK_OUTPUT,
    FAIL_TASK,
    RELAY_PATH,
    SANDBOX_ACCESS_KEY,
    SANDBOX_RELAY_KEY,
    SANDBOX_SECRET_KEY,
    VolcengineProtocol,
)

__all__ = [
    "ARK_PREFIX",
    "BLOCK_INPUT",
    "BLOCK_OUTPUT",
    "FAIL_TASK",
    "SANDBOX_ACCESS_KEY",
    "SANDBOX_API_KEY",
    "SANDBOX_ARK_KEY",
    "SANDBOX_GATEWAY_TOKEN",
    "SANDBOX_RELAY_KEY",
    "SANDBOX_SECRET_KEY",
    "Fault",
    "Sandbox",
    "SandboxServer",
    "Stages",
    "VirtualClock",
    "banner",
    "build_server",
    "dreamina_base_urls",
]

Protocol = Literal[
    "volcengine",
    "volcengine-relay",
    "ark",
    "dreamina",
    "gateway",
    "gateway-sync",
    "gateway-openai",
]
PROTOCOLS: tuple[str, ...] = (
    "volcengine",
    "volcengine-relay",
    "ark",
    "dreamina",
    "gateway",
    "gateway-sync",
    "gateway-openai",
)
#: Where each gateway-family protocol is mounted on the sandbox server.
_GATEWAY_PREFIXES = {
    "gateway": GATEWAY_PREFIX,
    "gateway-sync": SYNC_GATEWAY_PREFIX,
    "gateway-openai": OPENAI_PREFIX,
}


def banner(url: str) -> list[str]:
    """How to reach each emulated service on a server at ``url`` (printed by the serve commands)."""
    return [
        f"  Volcengine: endpoint {url}, access key {SANDBOX_ACCESS_KEY}, "
        f"secret key {SANDBOX_SECRET_KEY}",
        f"  Volcengine-format relay: {url}{RELAY_PATH}, api key {SANDBOX_RELAY_KEY}",
        f"  Ark: base_url {url}{ARK_PREFIX}, api key {SANDBOX_ARK_KEY}",
        f"  Dreamina: any session ids, base_urls={dreamina_base_urls(url)!r}",
        f"  Gateway (task mode): {url}{GATEWAY_PREFIX}, token {SANDBOX_GATEWAY_TOKEN}",
        f"  Gateway (sync only): {url}{SYNC_GATEWAY_PREFIX}, same token",
        f"  OpenAI-compatible relay: {url}{OPENAI_PREFIX}, api key {SANDBOX_API_KEY}",
    ]


def build_server(**options: Any) -> SandboxServer:
    """A server with every protocol mounted (not started)."""
    server = SandboxServer(**options)
    server.mount(VolcengineProtocol())
    server.mount(VolcengineProtocol(relay=True))
    server.mount(ArkProtocol())
    server.mount(DreaminaProtocol())
    for protocol in gateway_mounts():
        server.mount(protocol)
    return server


class Sandbox(Backend):
    """A backend that runs against the local emulator, with no credentials and no network.

    ``protocol`` picks which real backend is exercised (its translator runs unchanged against the
    emulator). ``stages`` sets how tasks move (delays and polls per stage); ``url`` connects to a
    sandbox already serving elsewhere (``python -m jimeng.sandbox``) instead of starting one.

    ``max_rps`` and ``max_concurrent_tasks`` cap the emulated account like the real service
    (refusals answered 429 with 50429 / 50430 on the Volcengine protocols); ``seed`` fixes the
    random source (ids, drawn generation times).

    ``"gateway"`` is a jimeng-api with the async-task mode, ``"gateway-sync"`` one without it,
    ``"gateway-openai"`` an OpenAI-compatible relay; ``options`` go to the
    :class:`~jimeng.Gateway` they run (``{"async_tasks": False}``, ``{"token": …}``).
    """

    name: ClassVar[str] = "sandbox"

    def __init__(
        self,
        protocol: Protocol = "volcengine",
        *,
        stages: Stages | None = None,
        time_factor: float = 1.0,
        url: str | None = None,
        server: SandboxServer | None = None,
        tokens: str | Sequence[str] | None = None,
        options: Mapping[str, Any] | None = None,
        max_rps: float | None = None,
        max_concurrent_tasks: int | None = None,
        seed: int | None = None,
    ):
        check_argument("protocol", protocol, required(text()))
        check_argument("stages", stages, instance(Stages, "a Stages"))
        check_argument("time_factor", time_factor, required(number(minimum=0)))  # 0: no delays
        check_argument("url", url, text())
        check_argument("server", server, instance(SandboxServer, "a SandboxServer"))
        check_argument("tokens", tokens, secret_list())
        check_argument("options", options, mapping_of_str())
        if protocol not in PROTOCOLS:
            raise ConfigurationError(
                f"unknown sandbox protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}"
            )
        self.protocol = protocol
        self._tokens = tokens  # Dreamina session tokens (any ids work; default: one CN session)
        self._options = dict(options or {})
        self._url = url
        self._owns_server = server is None and url is None
        self._server = server
        if self._owns_server:
            self._server = build_server(
                stages=stages,
                time_factor=time_factor,
                max_rps=max_rps,
                max_concurrent_tasks=max_concurrent_tasks,
                seed=seed,
            )
        # The port is bound here, so the inner backend names the real URL from the start: a
        # request built before the server runs (a first call without ``async with``) is right.
        base = url
        if base is None and self._server is not None:
            self._server.reserve()
            base = self._server.url
        self._inner = self._make_inner(base or "")

    def __repr__(self) -> str:
        return f"Sandbox(protocol={self.protocol!r}, url={self.url!r})"

    @property
    def server(self) -> SandboxServer:
        """The in-process server (for faults and counters)."""
        if self._server is None:
            raise ConfigurationError("this sandbox connects to a remote server; it has no handle")
        return self._server

    @property
    def url(self) -> str | None:
        if self._url:
            return self._url
        if self._server is not None and self._server.port:
            return self._server.url
        return None

    def _make_inner(self, base: str) -> Backend:
        if self.protocol == "dreamina":
            from jimeng.backends.dreamina import Dreamina

            return Dreamina(self._tokens or SANDBOX_TOKENS, base_urls=dreamina_base_urls(base))
        if self.protocol == "ark":
            from jimeng.backends.ark import Ark

            return Ark(SANDBOX_ARK_KEY, base_url=base.rstrip("/") + ARK_PREFIX, **self._options)
        if self.protocol in _GATEWAY_PREFIXES:
            from jimeng.backends.gateway import Gateway

            options: dict[str, Any] = {"url": base.rstrip("/") + _GATEWAY_PREFIXES[self.protocol]}
            if self.protocol == "gateway-openai":
                options["api_key"] = SANDBOX_API_KEY
            else:
                options["token"] = SANDBOX_GATEWAY_TOKEN
                if self.protocol == "gateway":
                    # This mount is known to run tasks. "gateway-sync" is left to the probe
                    # (§21.7), as a real gateway would be; options={"async_tasks": None} makes
                    # "gateway" ask too.
                    options["async_tasks"] = True
            options.update(self._options)
            return Gateway(**options)
        from jimeng.backends.volcengine import Volcengine

        if self.protocol == "volcengine-relay":
            return Volcengine(api_key=SANDBOX_RELAY_KEY, endpoint=base.rstrip("/") + RELAY_PATH)
        return Volcengine(
            access_key=SANDBOX_ACCESS_KEY,
            secret_key=SANDBOX_SECRET_KEY,
            endpoint=base,
        )

    async def open(self, runtime: Runtime) -> None:
        if self._owns_server and self._server is not None:
            await self._server.start()
        await self._inner.open(runtime)

    async def aclose(self) -> None:
        await self._inner.aclose()
        if self._owns_server and self._server is not None:
            await self._server.stop()

    # Everything else is the real backend's translation, unchanged.

    def validate_image(self, request: ImageRequest) -> None:
        self._inner.validate_image(request)

    def validate_video(self, request: VideoRequest) -> None:
        self._inner.validate_video(request)

    def submit_image(self, request: ImageRequest) -> Flow[Task]:
        return self._inner.submit_image(request)

    def submit_video(self, request: VideoRequest) -> Flow[Task]:
        return self._inner.submit_video(request)

    def poll(self, task: Task) -> Flow[Task]:
        return self._inner.poll(task)

    def resume(self, ref: str, *, model: str | None = None) -> Task:
        return self._inner.resume(ref, model=model)

    def cancel(self, task: Task) -> Flow[Task]:
        return self._inner.cancel(task)

    def validate_transform(self, request: TransformRequest) -> None:
        self._inner.validate_transform(request)

    def submit_transform(self, request: TransformRequest) -> Flow[Task]:
        return self._inner.submit_transform(request)

    def check_subject(self, request: AvatarRequest) -> Flow[Task]:
        return self._inner.check_subject(request)

    def poll_policy(self, task: Task) -> PollPolicy | None:
        return self._inner.poll_policy(task)

    def list_tasks(
        self, *, status: str | None, kind: str | None, limit: int | None
    ) -> Flow[Sequence[Task]]:
        return self._inner.list_tasks(status=status, kind=kind, limit=limit)

    def credits(self) -> Flow[Sequence[AccountBalance]]:
        return self._inner.credits()

    def claim_credits(self) -> Flow[Sequence[AccountBalance]]:
        return self._inner.claim_credits()

    def check_sessions(self) -> Flow[Sequence[SessionStatus]]:
        return self._inner.check_sessions()

    def failure_error(self, task: Task) -> JimengError | None:
        return self._inner.failure_error(task)

    def capabilities(self) -> Capabilities:
        return self._inner.capabilities()

    def describe(self) -> dict[str, Any]:
        # in_process: a server that lives and dies with this process (a new address each run).
        described = {"backend": self.name, "protocol": self.protocol, "url": self.url}
        return {**described, "in_process": self._owns_server}

    def limit_key(self) -> str:
        return f"{self.name}:{self.protocol}"
