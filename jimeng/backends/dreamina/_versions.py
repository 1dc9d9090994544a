"""The web client's version constants, in one place (protocols/dreamina-web.md §1.3, §2.1).

Upstream raises the minimum client version from time to time; requests from an older one get
``ret 3018 permission denied``. Override without waiting for a release::

    jimeng.Dreamina(tokens, versions={"app_version": "8.5.0", "da_version": "3.4.0"})
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from jimeng.errors import ConfigurationError

__all__ = ["DEFAULT_VERSIONS", "ClientVersions", "coerce_versions"]


@attrs.frozen(kw_only=True)
class ClientVersions:
    """What the browser client says it is. Every field can be overridden."""

    #: ``Appvr`` header and part of the ``Sign`` (IPT ``VERSION_CODE``).
    app_version: str = "8.4.0"
    #: ``Pf`` header and part of the ``Sign`` (IPT ``PLATFORM_CODE``).
    platform: str = "7"
    web_version: str = "7.5.0"
    da_version: str = "3.3.9"
    #: ``draft_content.version``.
    draft_version: str = "3.3.9"
    #: ``min_version`` of drafts, components and ``large_image_info``.
    draft_min_version: str = "3.0.2"
    #: §4.3: blend drafts (and blends of 2+ images) declare 3.2.9.
    blend_min_version: str = "3.2.9"
    #: §6.2: video drafts and inputs declare 3.0.5, the video component 1.0.0.
    video_min_version: str = "3.0.5"
    video_component_min_version: str = "1.0.0"
    sdk_version: str = "48.0.0"
    user_agent: str = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/142.0.0.0 Safari/537.36"
    )
    sec_ch_ua: str = '"Chromium";v="142", "Google Chrome";v="142", "Not_A Brand";v="99"'
    #: §2.1: the literal first and last parts of the string the ``Sign`` hashes.
    sign_prefix: str = "9e2c"
    sign_suffix: str = "11ac"

    def describe(self) -> str:
        return (
            f"Appvr {self.app_version}, web_version {self.web_version}, "
            f"da_version {self.da_version}, draft version {self.draft_version}"
        )


DEFAULT_VERSIONS = ClientVersions()


def coerce_versions(value: ClientVersions | Mapping[str, str] | None) -> ClientVersions:
    """Defaults, a full :class:`ClientVersions`, or the defaults with some fields replaced."""
    if value is None:
        return DEFAULT_VERSIONS
    if isinstance(value, ClientVersions):
        return value
    known = {field.name for field in attrs.fields(ClientVersions)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ConfigurationError(
            f"unknown Dreamina version field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return attrs.evolve(DEFAULT_VERSIONS, **{key: str(item) for key, item in value.items()})
