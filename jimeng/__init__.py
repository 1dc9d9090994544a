"""jimeng — async Python SDK for ByteDance Jimeng (即梦 / Dreamina) image and video generation.

.. code-block:: python

    import jimeng

    async with jimeng.Client(jimeng.Sandbox()) as client:
        result = await client.images.generate("a white Siamese cat on a windowsill", size="2K")
        print(await result.save("pic/"))
"""

from typing import TYPE_CHECKING, Any

from jimeng._client import Client, backend_from_env
from jimeng._handle import TaskHandle
from jimeng._limits import Limits, LimitSnapshot
from jimeng._polling import PollPolicy
from jimeng._retry import RetryPolicy
from jimeng._version import __version__
from jimeng.backends import AccountBalance, Backend, NotSupportedError, SessionStatus
from jimeng.errors import (
    AntiBotError,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    ContentPolicyError,
    DownloadError,
    InsufficientCreditsError,
    InvalidRequestError,
    JimengError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SessionExpiredError,
    TaskCancelledError,
    TaskError,
    TaskExpiredError,
    TaskFailedError,
    TaskNotCancellableError,
    TaskTimeoutError,
    ValidationError,
)
from jimeng.models import (
    AigcMeta,
    Image,
    ImageInput,
    ImageRequest,
    ImageResult,
    Media,
    Task,
    TaskFailure,
    TaskKind,
    TaskStatus,
    Video,
    VideoRequest,
    VideoResult,
    Watermark,
    WatermarkPosition,
)

if TYPE_CHECKING:
    from jimeng._journal import (
        JournalEntry,
        JournalStore,
        JournalUpdate,
        ResultLink,
        SQLiteJournal,
        journal_path,
    )
    from jimeng._sync import SyncClient
    from jimeng._task_progress import TaskProgress
    from jimeng.backends._capabilities import Capabilities, ModelCapabilities
    from jimeng.backends.ark import Ark
    from jimeng.backends.dreamina import Dreamina
    from jimeng.backends.gateway import Gateway
    from jimeng.backends.volcengine import Volcengine
    from jimeng.models import (
        REMOVE_PROMPT,
        AvatarRequest,
        InpaintRequest,
        MediaInput,
        MotionRequest,
        OutpaintRequest,
        TranslateRequest,
        UpscaleRequest,
    )
    from jimeng.sandbox import Sandbox
    from jimeng.webhooks import WebhookReceiver

#: Imported on first use, so ``import jimeng`` stays light: the sandbox and the webhook
#: receiver bring aiohttp's server, each backend its own tables, the edit and video-transform
#: requests their models.
_LAZY = {
    "Ark": "jimeng.backends.ark",
    "Dreamina": "jimeng.backends.dreamina",
    "Gateway": "jimeng.backends.gateway",
    "Volcengine": "jimeng.backends.volcengine",
    "Sandbox": "jimeng.sandbox",
    "WebhookReceiver": "jimeng.webhooks",
    "SyncClient": "jimeng._sync",
    "TaskProgress": "jimeng._task_progress",
    "Capabilities": "jimeng.backends._capabilities",
    "ModelCapabilities": "jimeng.backends._capabilities",
    "JournalEntry": "jimeng._journal",
    "JournalStore": "jimeng._journal",
    "JournalUpdate": "jimeng._journal",
    "ResultLink": "jimeng._journal",
    "SQLiteJournal": "jimeng._journal",
    "journal_path": "jimeng._journal",
    "REMOVE_PROMPT": "jimeng.models._transforms",
    "AvatarRequest": "jimeng.models._transforms",
    "InpaintRequest": "jimeng.models._transforms",
    "MediaInput": "jimeng.models._transforms",
    "MotionRequest": "jimeng.models._transforms",
    "OutpaintRequest": "jimeng.models._transforms",
    "TranslateRequest": "jimeng.models._transforms",
    "UpscaleRequest": "jimeng.models._transforms",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jimeng' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "REMOVE_PROMPT",
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AccountBalance",
    "AigcMeta",
    "AntiBotError",
    "Ark",
    "AuthenticationError",
    "AvatarRequest",
    "Backend",
    "Capabilities",
    "Client",
    "ConfigurationError",
    "ContentPolicyError",
    "DownloadError",
    "Dreamina",
    "Gateway",
    "Image",
    "ImageInput",
    "ImageRequest",
    "ImageResult",
    "InpaintRequest",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "JimengError",
    "JournalEntry",
    "JournalStore",
    "JournalUpdate",
    "LimitSnapshot",
    "Limits",
    "Media",
    "MediaInput",
    "ModelCapabilities",
    "MotionRequest",
    "NotFoundError",
    "NotSupportedError",
    "OutpaintRequest",
    "PermissionDeniedError",
    "PollPolicy",
    "RateLimitError",
    "ResultLink",
    "RetryPolicy",
    "SQLiteJournal",
    "Sandbox",
    "ServerError",
    "SessionExpiredError",
    "SessionStatus",
    "SyncClient",
    "Task",
    "TaskCancelledError",
    "TaskError",
    "TaskExpiredError",
    "TaskFailedError",
    "TaskFailure",
    "TaskHandle",
    "TaskKind",
    "TaskNotCancellableError",
    "TaskProgress",
    "TaskStatus",
    "TaskTimeoutError",
    "TranslateRequest",
    "UpscaleRequest",
    "ValidationError",
    "Video",
    "VideoRequest",
    "VideoResult",
    "Volcengine",
    "Watermark",
    "WatermarkPosition",
    "WebhookReceiver",
    "__version__",
    "backend_from_env",
    "journal_path",
]
