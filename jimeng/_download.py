"""Saving results: streamed to a temporary file beside the target, renamed only when complete.

Nothing half-written ever carries the final name: a failed, truncated or oversized download
removes its temporary file and raises :class:`jimeng.errors.DownloadError`. Nothing mislabelled
either: the bytes must start like an image or a video (an HTML error page served with 200 is
refused), and the extension is the one of the real content, in a name the caller chose too.
Nothing overwritten: the final name is taken only if no file holds it, atomically, so saves
racing in other processes each get a name of their own. Temporary files that a killed process
left behind are removed by the next save into the same folder once they are an hour old.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

import aiohttp
from yarl import URL

from jimeng._http import Transport, map_transport_error
from jimeng._logging import error_holds_secret, logger
from jimeng._retry import retrying
from jimeng.errors import APIConnectionError, DownloadError, JimengError, ServerError
from jimeng.models._media import Media

__all__ = [
    "DEFAULT_MAX_BYTES",
    "STALE_PART_SECONDS",
    "Downloader",
    "content_name",
    "decode_base64",
    "media_extension",
    "move_to_free_name",
    "sniff_extension",
]

DEFAULT_MAX_BYTES = 512 * 1024 * 1024
_CHUNK = 256 * 1024
#: A ``.jimeng-*.part`` file older than this belongs to a save that died (no save takes an hour
#: without writing: each chunk rewrites the file's modification time).
STALE_PART_SECONDS = 3600.0
_PART_PREFIX, _PART_SUFFIX = ".jimeng-", ".part"

_CONTENT_TYPES = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "video/mp4": ".mp4",
}


#: Major brands of the ISO-BMFF ``ftyp`` box that announce an MP4 (or QuickTime) video. The same
#: box starts AVIF and HEIC images (``avif``, ``heic``, ``mif1``…), M4A audio and others: those
#: are not what a video task produces, and are refused like any other content.
_VIDEO_BRANDS = frozenset(
    brand.encode("ascii")
    for brand in (
        *(f"iso{n}" for n in "m23456789"),  # ISO base media
        *("mp41", "mp42", "avc1", "M4V ", "M4VH", "M4VP", "f4v ", "MSNV", "XAVC", "qt  "),
        *("dash", "msdh", "msix", "cmfc", "cmf2", "mmp4"),  # DASH and CMAF segments
        *("3gp4", "3gp5", "3gp6", "3gp7", "3g2a", "3g2b", "3g2c"),  # 3GPP video
    )
)


def media_extension(head: bytes) -> str | None:
    """The extension of a PNG, JPEG, WebP, GIF or MP4 from its first bytes, else ``None``.

    An ISO-BMFF file is an MP4 only when its major brand is a video one (see ``_VIDEO_BRANDS``).
    """
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif"
    if head[4:8] == b"ftyp" and head[8:12] in _VIDEO_BRANDS:
        return ".mp4"
    return None


#: What each extension ``media_extension`` gives holds, in words for messages.
_KINDS = {".png": "PNG", ".jpg": "JPEG", ".webp": "WebP", ".gif": "GIF", ".mp4": "MP4"}
#: The suffixes that already name each kind of content (in any case: ``.JPEG`` names a JPEG).
_NAMED_BY = {
    ".png": (".png",),
    ".jpg": (".jpg", ".jpeg", ".jpe", ".jfif"),
    ".webp": (".webp",),
    ".gif": (".gif",),
    ".mp4": (".mp4", ".m4v", ".mov"),
}
#: Suffixes that name an image or video format: one that names another format than the content
#: is replaced; any other suffix is part of the name the caller chose, and kept.
_MEDIA_SUFFIXES = frozenset(
    (
        *(suffix for suffixes in _NAMED_BY.values() for suffix in suffixes),
        *(".apng", ".avif", ".bmp", ".heic", ".heif", ".ico", ".jxl", ".svg", ".tif", ".tiff"),
        *(".3gp", ".avi", ".flv", ".mkv", ".webm", ".wmv"),
    )
)


def content_name(path: Path, ext: str) -> Path:
    """``path`` for a file whose content has the extension ``ext`` (from ``media_extension``).

    A suffix that names this content is kept (``cover.jpeg`` for a JPEG); one that names another
    image or video format is replaced (``cat.jpg`` holding a PNG becomes ``cat.png``); any other
    suffix stays part of the name and ``ext`` is added (``render_v1.2`` becomes
    ``render_v1.2.png``).
    """
    suffix = path.suffix.lower()
    if suffix in _NAMED_BY.get(ext, (ext,)):
        return path
    if suffix in _MEDIA_SUFFIXES:
        return path.with_suffix(ext)
    return path.with_name(path.name + ext)


def sniff_extension(head: bytes, content_type: str | None = None, url: str | None = None) -> str:
    """The file extension of the real content: magic bytes first, then Content-Type, then URL."""
    ext = media_extension(head)
    if ext is not None:
        return ext
    if content_type:
        ext = _CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
        if ext:
            return ext
    if url:
        suffix = Path(URL(url).path).suffix.lower()
        if suffix in {".png", ".jpg", ".jpeg", ".webp", ".gif", ".mp4"}:
            return ".jpg" if suffix == ".jpeg" else suffix
    return ".bin"


def decode_base64(text: str) -> bytes:
    """Decode a base64 payload, tolerating a ``data:`` prefix and missing padding."""
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    text = "".join(text.split())
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise DownloadError(f"result is not valid base64: {error}") from error


class Downloader:
    """Implements :class:`jimeng.models._media.Fetcher` for one client.

    ``detached`` says whether the client is closed; media then outlive it, each download using a
    short-lived session of its own (same retries, size cap and atomic saving).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        now: Callable[[], datetime] | None = None,
        detached: Callable[[], bool] | None = None,
        trust_env: bool = False,
    ):
        self.transport = transport
        self.max_bytes = max_bytes
        self._now = now or (lambda: datetime.now())
        self._detached = detached or (lambda: False)
        self._trust_env = trust_env

    def stamp(self) -> str:
        return self._now().strftime("%Y%m%d_%H%M%S")

    async def read(self, media: Media) -> bytes:
        if media.data is not None:
            return media.data
        assert media.url is not None
        chunks: list[bytes] = []

        async def sink(chunk: bytes) -> None:
            chunks.append(chunk)

        content_type = await self._fetch(media.url, sink, reset=chunks.clear)
        data = b"".join(chunks)
        _require_media(data[:32], content_type, media.url)
        return data

    async def save(
        self,
        media: Media,
        target: Path,
        *,
        index: int,
        explicit: bool,
        stamp: str | None = None,
    ) -> Path:
        folder = target.parent if explicit else target
        try:
            folder.mkdir(parents=True, exist_ok=True)
            remove_stale_parts(folder, now=self._now().timestamp())
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in every path below
                dir=folder, prefix=_PART_PREFIX, suffix=_PART_SUFFIX, delete=False
            )
        except OSError as error:
            raise DownloadError(f"cannot write to {folder}: {error.strerror}") from error
        temp = Path(handle.name)
        head = bytearray()
        content_type: list[str | None] = [media.content_type]
        try:
            if media.data is not None:
                handle.write(media.data)
                head += media.data[:32]
            else:
                assert media.url is not None

                async def sink(chunk: bytes) -> None:
                    if len(head) < 32:
                        head.extend(chunk[: 32 - len(head)])
                    handle.write(chunk)

                def reset() -> None:
                    handle.seek(0)
                    handle.truncate()
                    head.clear()

                content_type[0] = await self._fetch(media.url, sink, reset=reset)
            handle.flush()
            # Durable before the rename; off the event loop (an fsync can take tens of ms).
            await asyncio.to_thread(os.fsync, handle.fileno())
            # NamedTemporaryFile is private (0600); a saved image gets the usual umask mode.
            os.chmod(handle.name, 0o666 & ~_UMASK)
            handle.close()
            ext = _require_media(bytes(head), content_type[0] or media.content_type, media.url)
            if explicit:
                wanted = content_name(target, ext)
                final = move_to_free_name(temp, folder, wanted.stem, wanted.suffix)
                if final != target:
                    reasons = [f"the content is {_KINDS[ext]}"] if wanted != target else []
                    if final != wanted:
                        reasons.append(f"{wanted.name} is taken")
                    logger.info("%s saved as %s: %s", target, final.name, " and ".join(reasons))
            else:
                stem = f"jimeng_{stamp or self.stamp()}_{index}"
                final = move_to_free_name(temp, folder, stem, ext)
            return final
        except OSError as error:
            handle.close()
            temp.unlink(missing_ok=True)
            raise DownloadError(f"cannot save to {folder}: {error.strerror}") from error
        except BaseException:
            handle.close()
            temp.unlink(missing_ok=True)
            raise

    async def _fetch(
        self,
        url: str,
        sink: Callable[[bytes], object],
        *,
        reset: Callable[[], None],
    ) -> str | None:
        """Stream ``url`` into ``sink`` with retries; returns the Content-Type."""
        controller = retrying(
            self.transport.retry,
            idempotent=True,
            sleep=self.transport.sleep,
            rng=self.transport.rng,
        )
        try:
            async with self._session() as session:
                async for attempt in controller:
                    with attempt:
                        reset()
                        return await self._fetch_once(session, url, sink)
        except DownloadError:
            raise
        except JimengError as error:
            raise DownloadError(f"download failed: {error}", url=url) from error
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[aiohttp.ClientSession]:
        if not self._detached():
            yield await self.transport.session()
            return
        async with aiohttp.ClientSession(
            trust_env=self._trust_env, cookie_jar=aiohttp.DummyCookieJar()
        ) as session:
            yield session

    async def _fetch_once(
        self, session: aiohttp.ClientSession, url: str, sink: Callable[[bytes], object]
    ) -> str | None:
        self.transport.attempts["download"] = self.transport.attempts.get("download", 0) + 1
        received = 0
        failure: JimengError | None = None
        try:
            async with session.get(
                URL(url, encoded=True),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=self.transport.timeout,
                    sock_read=self.transport.timeout,
                ),
            ) as response:
                if response.status >= 500 or response.status == 429:
                    raise ServerError(
                        f"download answered HTTP {response.status}", status_code=response.status
                    )
                if response.status >= 400:
                    raise DownloadError(
                        f"download answered HTTP {response.status} (the link may have expired)",
                        url=url,
                    )
                declared = response.content_length
                if declared is not None and declared > self.max_bytes:
                    raise DownloadError(
                        f"file is {declared} bytes, above the {self.max_bytes}-byte limit", url=url
                    )
                async for chunk in response.content.iter_chunked(_CHUNK):
                    received += len(chunk)
                    if received > self.max_bytes:
                        raise DownloadError(
                            f"file exceeds the {self.max_bytes}-byte limit", url=url
                        )
                    result = sink(chunk)
                    if asyncio.iscoroutine(result):
                        await result
                if declared is not None and received != declared:
                    raise APIConnectionError(
                        f"download truncated: {received} of {declared} bytes", sent=True
                    )
                return response.headers.get("Content-Type")
        except asyncio.CancelledError:
            raise
        except JimengError:
            raise
        except Exception as error:
            failure = map_transport_error(error, "GET", url)
            if not error_holds_secret(error):
                raise failure from error
        assert failure is not None  # every other way out of the block returns or raises
        raise failure from None  # outside the handler: see map_transport_error


def _require_media(head: bytes, content_type: str | None, url: str | None) -> str:
    """The extension of real media, or :class:`DownloadError` for anything else (an HTML error
    page or a JSON document served with 200, an empty body)."""
    ext = media_extension(head)
    if ext is not None:
        return ext
    host = URL(url).host if url else None
    where = f"from {host}" if host else "inline"
    preview = head[:16].decode("ascii", "replace")
    raise DownloadError(
        f"the result {where} is not an image or a video "
        f"(Content-Type {content_type or 'not given'}, starts with {preview!r}); nothing was saved",
        url=url,
    )


def remove_stale_parts(folder: Path, *, now: float, age: float = STALE_PART_SECONDS) -> list[Path]:
    """Delete this library's temporary files in ``folder`` that were last written more than
    ``age`` seconds before ``now`` (left by a killed save); return what was removed."""
    removed: list[Path] = []
    try:
        candidates = list(folder.glob(f"{_PART_PREFIX}*{_PART_SUFFIX}"))
    except OSError:
        return removed
    for path in candidates:
        try:
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > age:
                path.unlink()
                removed.append(path)
        except OSError:
            continue  # gone already, or not ours to remove: the save goes on
    return removed


def _read_umask() -> int:
    # Read once: setting the umask to look at it is process-wide and unsafe with threads.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


#: ``os.link`` failures that mean the filesystem has no hard links (FAT and exFAT, some network
#: and FUSE mounts), not that the name or the folder is unusable.
_NO_HARD_LINKS = frozenset(
    {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS, errno.EINVAL}
)


def move_to_free_name(temp: Path, folder: Path, stem: str, ext: str) -> Path:
    """Give the complete file ``temp`` the first of ``stem{ext}``, ``stem-2{ext}``,
    ``stem-3{ext}``… that nothing in ``folder`` holds, and return it.

    Never over an existing file, even when other processes save into the same folder at the same
    moment: checking a name and then renaming onto it would let another process take the name in
    between. A hard link is made only if the name is free, atomically, and shows the complete
    content from its first instant.
    """
    counter = 1
    linking = True
    while True:
        candidate = folder / (f"{stem}{ext}" if counter == 1 else f"{stem}-{counter}{ext}")
        counter += 1
        if linking:
            try:
                os.link(temp, candidate)
            except FileExistsError:
                continue
            except OSError as error:
                if error.errno not in _NO_HARD_LINKS:
                    raise
                linking = False
            else:
                with contextlib.suppress(OSError):
                    temp.unlink()  # a leftover .part is removed once stale; the file is saved
                return candidate
        if _replace_onto_own_claim(temp, candidate):
            return candidate


def _replace_onto_own_claim(temp: Path, candidate: Path) -> bool:
    """Without hard links: claim ``candidate`` with an empty file (``O_EXCL`` fails when the name
    is taken: ``False``), then move ``temp`` onto the claim.

    The price: between the two steps the name holds an empty file, and a process killed right
    then leaves it behind. Never another's file, and never part of this one.
    """
    try:
        os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        return False
    try:
        os.replace(temp, candidate)
    except BaseException:
        candidate.unlink(missing_ok=True)
        raise
    return True
