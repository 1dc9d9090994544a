"""Receiving a gateway's task callbacks (protocols/gateway.md §8b).

A gateway in async-task mode POSTs the task record to ``callback_url`` when a task completes or
fails, with ``X-Webhook-Event: task.completed | task.failed`` and ``X-Task-Id``. It retries a
failed delivery after 5, 15 and 30 seconds, so the same callback can arrive more than once.

**Callbacks carry no signature.** Anyone who can reach the receiver can post a fake one. Put a
shared secret in the callback URL (:meth:`WebhookReceiver.callback_url` adds ``?token=…``) and
let the receiver refuse anything without it; keep the receiver on a private network or behind
TLS so the secret is not seen in transit. For a decision that costs money, confirm the task
with ``client.tasks.get(task.id)`` before acting on it.

.. code-block:: python

    receiver = jimeng.WebhookReceiver(secret=os.environ["HOOK_SECRET"])
    callback = receiver.callback_url("https://my.app/hooks/jimeng")
    await client.images.submit("a red fox", callback_url=callback)

    async def on_task(task: jimeng.Task) -> None: ...
    app.router.add_post("/hooks/jimeng", receiver.aiohttp_handler(on_task))
"""

from __future__ import annotations

import hmac
import inspect
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import attrs
from yarl import URL

from jimeng import _logging
from jimeng._handle import task_error
from jimeng.backends.gateway._errors import failure_error
from jimeng.backends.gateway._wire import parse_task
from jimeng.errors import JimengError
from jimeng.models import Task
from jimeng.models import _checks as checks
from jimeng.models._checks import check_argument

if TYPE_CHECKING:
    from aiohttp import web

    from jimeng._client import Client

__all__ = [
    "MemorySeen",
    "SeenStore",
    "WebhookDelivery",
    "WebhookReceiver",
    "WebhookRejected",
]

OnTask = Callable[[Task], Awaitable[None] | None]


class WebhookRejected(JimengError):
    """A callback the receiver refuses: malformed (400), without the secret (401), or with a
    wrong one (403). ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.status = status


@attrs.frozen(kw_only=True)
class WebhookDelivery:
    """One callback as received: the task it reports, its event, and whether it was seen
    before (a retry of a callback already accepted)."""

    task: Task
    event: str
    duplicate: bool

    @property
    def task_id(self) -> str:
        return self.task.id

    @property
    def key(self) -> str:
        """What makes a callback unique: its task id and event."""
        return f"{self.task.id}:{self.event}"

    def error(self) -> JimengError | None:
        """The exception a failed task stands for (``None`` when it succeeded), as
        ``handle.result()`` would raise it."""
        if self.task.result is not None:
            return None
        return task_error(self.task, lambda task: failure_error(task, backend=task.backend))


class SeenStore(Protocol):
    """Where a receiver remembers the callbacks it accepted (shared across processes if the
    receiver runs in several)."""

    def add(self, key: str) -> bool:
        """Remember ``key``; ``True`` if it was new."""
        ...

    def discard(self, key: str) -> None:
        """Forget ``key`` (so a retry of a callback that failed is processed again)."""
        ...


class MemorySeen:
    """A bounded in-process :class:`SeenStore` (the oldest keys are forgotten first)."""

    def __init__(self, limit: int = 10_000):
        self.limit = limit
        self._keys: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> bool:
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        while len(self._keys) > self.limit:
            self._keys.popitem(last=False)
        return True

    def discard(self, key: str) -> None:
        self._keys.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._keys


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in headers.items():
        if key.lower() == lowered:
            return item
    return None


def _secret_forms(secret: str) -> set[str]:
    """The secret as given and as it travels in a URL: percent-encoded the way
    :meth:`WebhookReceiver.callback_url` writes it, and fully encoded (a server that quotes
    the URL back may encode it afresh)."""
    in_query = URL.build(query={"v": secret}).raw_query_string.partition("=")[2]
    return {secret, in_query, quote(secret, safe="")}


class WebhookReceiver:
    """Parses gateway callbacks into :class:`~jimeng.Task` objects, once per task and event.

    ``secret``: when set, a callback's URL must carry it as ``?<secret_param>=<secret>``
    (compared in constant time); anything else is rejected. ``client``: bind results to this
    client so ``task.result.save()`` works. ``seen``: where accepted callbacks are remembered
    (default: the last 10 000, in memory).
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        secret_param: str = "token",
        client: Client | None = None,
        seen: SeenStore | None = None,
    ):
        check_argument("secret", secret, checks.secret_text())
        check_argument("secret_param", secret_param, checks.required(checks.text()))
        if client is not None:
            from jimeng._client import Client

            check_argument("client", client, checks.instance(Client, "a jimeng.Client"))
        if seen is not None and not callable(getattr(seen, "add", None)):
            raise checks.refuse("seen", "a SeenStore (an object with add(key) -> bool)", seen)
        self._secret = secret
        if secret is not None:
            for form in _secret_forms(secret):
                _logging.register_secret(form)
        self.secret_param = secret_param
        self._client = client
        self.seen: SeenStore = seen if seen is not None else MemorySeen()

    def __repr__(self) -> str:
        return f"WebhookReceiver(secret={'set' if self._secret else 'none'})"

    def callback_url(self, url: str) -> str:
        """``url`` with the shared secret added, to pass as ``callback_url=``."""
        checks.check_url("url", url)
        if self._secret is None:
            return url
        return str(URL(url).update_query({self.secret_param: self._secret}))

    # -- framework-agnostic ----------------------------------------------------------------------

    def _check_secret(self, url: str | None) -> None:
        if self._secret is None:
            return
        given = URL(url).query.get(self.secret_param) if url else None
        if not given:
            raise WebhookRejected("callback without the shared secret", status=401)
        if not hmac.compare_digest(given.encode("utf-8"), self._secret.encode("utf-8")):
            raise WebhookRejected("callback with a wrong shared secret", status=403)

    def _decode(self, body: bytes, headers: Mapping[str, str], url: str | None) -> tuple[Task, str]:
        self._check_secret(url)
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise WebhookRejected("callback body is not JSON", status=400) from None
        if not isinstance(payload, Mapping):
            raise WebhookRejected("callback body is not a task record", status=400)
        rejected: WebhookRejected | None = None
        cause: BaseException | None = None
        try:
            task = parse_task(payload, backend="gateway")
        except (JimengError, TypeError, ValueError, OSError) as error:
            rejected = WebhookRejected(f"callback body is not a task record: {error}", status=400)
            # A parser error quoting a secret of the body is left out of the chain.
            cause = None if _logging.error_holds_secret(error) else error
        if rejected is not None:
            raise rejected from cause  # outside the except block: no implicit context either
        header_id = _header(headers, "X-Task-Id")
        if header_id is not None and header_id != task.id:
            raise WebhookRejected(
                f"X-Task-Id {header_id!r} does not match the body's task_id {task.id!r}",
                status=400,
            )
        event = _header(headers, "X-Webhook-Event") or f"task.{task.raw_status or 'unknown'}"
        if not event.startswith("task."):
            raise WebhookRejected(f"unknown webhook event {event!r}", status=400)
        if self._client is not None and task.result is not None:
            task = attrs.evolve(task, result=self._client._bind(task.result, task))
        return task, event

    def parse(self, body: bytes, headers: Mapping[str, str], *, url: str | None = None) -> Task:
        """Check and decode one callback (no memory of earlier ones).

        ``url`` is the request's URL (path and query are enough); it is needed when a secret
        is set. Raises :class:`WebhookRejected`.
        """
        return self._decode(body, headers, url)[0]

    def receive(
        self, body: bytes, headers: Mapping[str, str], *, url: str | None = None
    ) -> WebhookDelivery:
        """Like :meth:`parse`, and remember it: a second callback for the same task and event
        comes back with ``duplicate=True``. Call :meth:`forget` if processing it failed, so the
        gateway's retry is processed again."""
        task, event = self._decode(body, headers, url)
        new = self.seen.add(f"{task.id}:{event}")
        if not new:
            _logging.logger.info("duplicate webhook %s for task %s ignored", event, task.id)
        return WebhookDelivery(task=task, event=event, duplicate=not new)

    def forget(self, delivery: WebhookDelivery) -> None:
        self.seen.discard(delivery.key)

    # -- aiohttp ---------------------------------------------------------------------------------

    def aiohttp_handler(self, callback: OnTask) -> Callable[[web.Request], Awaitable[web.Response]]:
        """An aiohttp handler that calls ``callback(task)`` once per task and event.

        It answers 200 (also for duplicates, so the gateway stops retrying), 400/401/403 for
        rejected callbacks, and 500 when ``callback`` raised (the key is forgotten, so the
        gateway's retry runs it again).
        """
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            try:
                delivery = self.receive(body, request.headers, url=str(request.rel_url))
            except WebhookRejected as error:
                return web.json_response({"ok": False, "error": error.message}, status=error.status)
            answer: dict[str, Any] = {
                "ok": True,
                "task_id": delivery.task_id,
                "event": delivery.event,
                "duplicate": delivery.duplicate,
            }
            if delivery.duplicate:
                return web.json_response(answer)
            try:
                outcome = callback(delivery.task)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                self.forget(delivery)
                _logging.logger.exception("webhook callback failed for task %s", delivery.task_id)
                return web.json_response(
                    {"ok": False, "task_id": delivery.task_id, "error": "callback failed"},
                    status=500,
                )
            return web.json_response(answer)

        return handle
