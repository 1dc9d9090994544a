"""What a backend is: a translator between the library's models and one wire protocol.

A backend builds :class:`~jimeng._http.Call` objects and parses
:class:`~jimeng._http.Response` objects inside generator *flows*; it never opens sockets, sleeps
or retries (the engine does). It validates requests against its own model table before any flow
starts, so bad input fails without a network call.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from jimeng.errors import JimengError
from jimeng.models import ImageRequest, Task, TaskKind, TaskStatus, VideoRequest

if TYPE_CHECKING:
    from jimeng._http import Flow, Transport
    from jimeng._polling import PollPolicy
    from jimeng.backends._capabilities import Capabilities
    from jimeng.models._transforms import AvatarRequest, TransformRequest

__all__ = ["AccountBalance", "Backend", "NotSupportedError", "Runtime", "SessionStatus"]


class NotSupportedError(JimengError):
    """The backend (or its current configuration) cannot do this."""


@attrs.frozen(kw_only=True)
class AccountBalance:
    """Credits of one web session (Dreamina / gateway backends)."""

    session: str  # a fingerprint, never the session id
    gift: int = 0
    purchase: int = 0
    vip: int = 0
    region: str | None = None
    #: After a daily claim: whether credits were granted (``None`` when not a claim).
    claimed: bool | None = None

    @property
    def total(self) -> int:
        return self.gift + self.purchase + self.vip


@attrs.frozen(kw_only=True)
class SessionStatus:
    """Whether one web session is still logged in (Dreamina / gateway backends)."""

    session: str  # a fingerprint, never the session id
    #: ``None`` when the answer cannot be trusted (e.g. a check the site does not support).
    live: bool | None
    region: str | None = None
    note: str | None = None


@attrs.frozen(kw_only=True)
class Runtime:
    """What the client hands a backend when it opens: the engine, for backends that host
    something (the sandbox starts its server with it)."""

    transport: Transport


class Backend(abc.ABC):
    """Base class of every backend."""

    #: Short name used in errors, logs and task references.
    name: ClassVar[str] = "backend"

    async def open(self, runtime: Runtime) -> None:  # noqa: B027 - optional hook
        """Called once by the client before the first request."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Called when the client closes."""

    # -- validation (pure, before any network call) --------------------------------------------

    def validate_image(self, request: ImageRequest) -> None:
        """Raise :class:`~jimeng.errors.ValidationError` if ``request`` cannot be served."""
        raise NotSupportedError(f"the {self.name} backend does not generate images")

    def validate_video(self, request: VideoRequest) -> None:
        """Raise :class:`~jimeng.errors.ValidationError` if ``request`` cannot be served."""
        raise NotSupportedError(f"the {self.name} backend does not generate videos")

    # -- flows ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def submit_image(self, request: ImageRequest) -> Flow[Task]:
        """Submit an image request; the returned task may already be finished (sync backends)."""

    def submit_video(self, request: VideoRequest) -> Flow[Task]:
        raise NotSupportedError(f"the {self.name} backend does not generate videos")

    @abc.abstractmethod
    def poll(self, task: Task) -> Flow[Task]:
        """Observe ``task`` once more."""

    def resume(self, ref: str, *, model: str | None = None) -> Task:
        """A not-yet-observed task for a reference saved earlier (no network call)."""
        return Task(
            id=ref, kind=TaskKind.IMAGE, status=TaskStatus.UNKNOWN, backend=self.name, ref=ref
        )

    # -- transforms: edit, upscale, outpaint, motion, avatar, translate ------------------------

    def validate_transform(self, request: TransformRequest) -> None:
        """Raise :class:`~jimeng.errors.ValidationError` if ``request`` cannot be served, or
        :class:`NotSupportedError` when the backend has no such verb (before any request)."""
        raise NotSupportedError(
            f"the {self.name} backend cannot {request.verb.replace('_', ' ')}: the Volcengine "
            "backend (visual API) can"
        )

    def submit_transform(self, request: TransformRequest) -> Flow[Task]:
        """Submit a transform (validated by :meth:`validate_transform` first)."""
        raise NotSupportedError(f"the {self.name} backend cannot {request.verb}")

    def check_subject(self, request: AvatarRequest) -> Flow[Task]:
        """Submit the subject check that precedes an avatar video; the finished task's
        ``context["subject"]`` says whether a person-like subject was found."""
        raise NotSupportedError(f"the {self.name} backend has no subject check")

    def cancel(self, task: Task) -> Flow[Task]:
        raise NotSupportedError(f"the {self.name} backend cannot cancel tasks")

    def list_tasks(
        self, *, status: str | None, kind: str | None, limit: int | None
    ) -> Flow[Sequence[Task]]:
        raise NotSupportedError(f"the {self.name} backend cannot list tasks")

    def credits(self) -> Flow[Sequence[AccountBalance]]:
        raise NotSupportedError(f"the {self.name} backend has no credit balance")

    def claim_credits(self) -> Flow[Sequence[AccountBalance]]:
        raise NotSupportedError(f"the {self.name} backend has no daily credits")

    def check_sessions(self) -> Flow[Sequence[SessionStatus]]:
        raise NotSupportedError(f"the {self.name} backend has no web sessions to check")

    def poll_policy(self, task: Task) -> PollPolicy | None:
        """This backend's default polling for ``task`` — by its kind, or by what it is (a verb's
        typical latency); ``None``: the library's defaults. A client's own ``poll=`` options
        always win."""
        return None

    def failure_error(self, task: Task) -> JimengError | None:
        """A specific error for a failed task (e.g. content filtered), or ``None`` for the
        generic :class:`~jimeng.errors.TaskFailedError`."""
        return None

    def capabilities(self) -> Capabilities:
        """What this backend, as configured, can do: models, sizes, ratios, durations and
        features, built from the same tables its validation reads (no network call).

        A backend that does not override this reports no models and no features."""
        from jimeng.backends._capabilities import Capabilities

        return Capabilities(backend=self.name)

    def describe(self) -> dict[str, Any]:
        """Safe-to-print settings (never secrets)."""
        return {"backend": self.name}

    def limit_key(self) -> str:
        """Which account's limits the client's rate limiter tracks (no secret in it: a
        fingerprint at most). Backends with credentials name the account."""
        return self.name

    def account(self) -> str:
        """Whose tasks these are, when only the account that submitted a task can see it: a
        fingerprint of the credential (never the credential). ``""`` when anyone at the endpoint
        sees a task, or its ref names the account (a Dreamina session). The journal records it
        with each task and ignores what another account observes of it."""
        return ""
