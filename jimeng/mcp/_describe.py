"""What each tool tells a model: side effects, auth, limits, durations and output, per backend.

A model chooses and calls tools from their descriptions alone, so each one says what calling it
does to the world (a billed generation, credits spent), how the server is authenticated (the
environment variables it was started with), the limits it runs into and how long it takes, what
comes back, and which tool to use instead when another fits better.
"""

from __future__ import annotations

import attrs

__all__ = ["BackendFacts", "backend_facts"]


@attrs.frozen(kw_only=True)
class BackendFacts:
    """Sentences about one backend family, used in every tool description."""

    title: str
    cost: str
    auth: str
    limits: str
    image_time: str = "usually 10-60 s"
    video_time: str = "usually 1-5 minutes"


_VOLCENGINE = BackendFacts(
    title="the official Volcengine visual API",
    cost="Each successful generation is billed to the Volcengine account of the configured key.",
    auth="Authenticated with the access key pair in VOLC_ACCESSKEY / VOLC_SECRETKEY (or a relay "
    "key), set in the environment that starts this server.",
    limits="Accounts run 1 task at a time by default (2 on paid plans); more answers HTTP 429 "
    "(codes 50429/50430), which the server retries with backoff before reporting RateLimitError.",
)
_ARK = BackendFacts(
    title="Volcengine Ark (Seedream images, Seedance videos)",
    cost="Each generation is billed to the Ark account of the configured key (only images "
    "actually produced are billed).",
    auth="Authenticated with the Ark API key in ARK_API_KEY (ARK_REGION, ARK_BASE_URL optional), "
    "set in the environment that starts this server.",
    limits="Ark allows about 500 images per minute per model; HTTP 429 answers are retried with "
    "backoff before reporting RateLimitError.",
)
_DREAMINA = BackendFacts(
    title="Dreamina / Jimeng web sessions",
    cost="Each generation spends credits of the configured web session(s) (about 1 per image "
    "request, more at 4k, per second for video); when one session runs out the next is used.",
    auth="Authenticated with browser session ids in JIMENG_SESSION_ID (comma-separated, "
    "optional us-/hk-/jp-/sg- region prefix), set in the environment that starts this server.",
    limits="The site rate-limits (HTTP 429, retried with backoff) and risk-checks busy "
    "accounts (AntiBotError); out of credits is InsufficientCreditsError.",
)
_GATEWAY = BackendFacts(
    title="a jimeng-api gateway",
    cost="Each generation spends credits of the session(s) the gateway forwards.",
    auth="Reaches the gateway at JIMENG_GATEWAY_URL with the session token(s) in "
    "JIMENG_GATEWAY_TOKEN (or a relay key in JIMENG_GATEWAY_API_KEY), set in the environment "
    "that starts this server.",
    limits="The gateway queues work above its concurrency limit; HTTP 429 answers are retried "
    "with backoff; out of credits is InsufficientCreditsError.",
)
_SANDBOX = BackendFacts(
    title="the offline sandbox (an emulator: nothing is billed, no network)",
    cost="Nothing is billed: the sandbox draws test images locally.",
    auth="Needs no credentials (started with --sandbox or JIMENG_BACKEND=sandbox); the real "
    "backends read VOLC_ACCESSKEY / VOLC_SECRETKEY, JIMENG_SESSION_ID or JIMENG_GATEWAY_URL.",
    limits="No limits unless faults are injected.",
    image_time="under a second",
    video_time="a few seconds",
)

_FACTS = {"volcengine": _VOLCENGINE, "ark": _ARK, "dreamina": _DREAMINA, "gateway": _GATEWAY}


def backend_facts(name: str) -> BackendFacts:
    """The sentences for a backend by its ``name`` (``sandbox`` for the emulator)."""
    if name == "sandbox":
        return _SANDBOX
    return _FACTS.get(name, _VOLCENGINE if name.startswith("volc") else _GATEWAY)
