"""Sound for call flows' ``play`` steps: a file in the media directory, or a URL fetched once and kept.

Whatever FFmpeg reads (WAV, MP3, Ogg...) comes out as 48 kHz mono int16, decoded in a thread by
:meth:`SoundFile.read`. A URL's body is decoded before it goes into ``cache_dir``, so the cache
only ever holds audio, and a URL is fetched again only when its file there is gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..http_client import DEFAULT_OUTBOUND, OutboundPolicy, OutboundRefused, httpx_module, new_client, outbound_module
from .tones import SoundFile, WavError

MAX_MEDIA_SECONDS = 600.0  # decoded whole into memory (~55 MB at this length): longer is a mistake


class MediaError(RuntimeError):
    """Media that cannot be played: missing, outside the media directory, not fetched, too large or not audio."""


async def load_media(
    media: str,
    media_dir: Path,
    cache_dir: Path,
    timeout: float = 10.0,
    max_seconds: float = MAX_MEDIA_SECONDS,
    policy: OutboundPolicy = DEFAULT_OUTBOUND,
) -> np.ndarray:
    """``media`` as 48 kHz mono int16: a path relative to ``media_dir``, or an http(s) URL.

    A URL gets ``timeout`` seconds and ``policy.max_media_bytes`` in all, and goes only where
    ``policy`` allows. Raises :class:`MediaError`.
    """
    scheme, separator, _ = media.partition("://")
    if separator and scheme.lower() in ("http", "https"):
        return await _load_url(media, cache_dir, timeout, policy, max_seconds)
    if separator:
        raise MediaError(f"cannot play {media}: only http and https URLs are fetched")
    return await _decode(_inside(media, media_dir), media, max_seconds)


def _inside(media: str, media_dir: Path) -> Path:
    root = media_dir.resolve()
    path = (root / media).resolve()
    if not path.is_relative_to(root):
        raise MediaError(f"cannot play {media}: it is outside the media directory {media_dir}")
    if not path.is_file():
        raise MediaError(f"cannot play {media}: no such file in the media directory {media_dir}")
    return path


async def _load_url(
    url: str, cache_dir: Path, timeout: float, policy: OutboundPolicy, max_seconds: float
) -> np.ndarray:
    path = cache_dir / hashlib.sha256(url.encode()).hexdigest()
    if path.exists():
        return await _decode(path, url, max_seconds)
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, part = tempfile.mkstemp(dir=cache_dir, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            await _download(url, file, timeout, policy)
        samples = await _decode(Path(part), url, max_seconds)
        os.replace(part, path)
    finally:
        Path(part).unlink(missing_ok=True)
    return samples


async def _download(url: str, file: BinaryIO, timeout: float, policy: OutboundPolicy) -> None:
    """Write the body of ``url`` to ``file``, if it comes in time, with a 2xx status and no larger than allowed."""
    httpx = await httpx_module()
    outbound = await outbound_module()
    try:
        client = await new_client(policy, timeout=timeout)
        async with (
            asyncio.timeout(timeout),
            client,
            outbound.opened(client, policy, "GET", url) as response,
        ):
            if not response.is_success:
                raise MediaError(f"cannot play {url}: HTTP {response.status_code} {response.reason_phrase}")
            async for chunk in outbound.chunks(response, policy.max_media_bytes, policy.setting("max_media_bytes")):
                file.write(chunk)
    except (TimeoutError, httpx.TimeoutException) as error:
        raise MediaError(f"cannot play {url}: no complete answer within {timeout:g} s") from error
    except (httpx.HTTPError, httpx.InvalidURL, OutboundRefused) as error:
        raise MediaError(f"cannot play {url}: {error}") from error


async def _decode(path: Path, media: str, max_seconds: float) -> np.ndarray:
    try:
        return (await asyncio.to_thread(SoundFile.read, path, max_seconds)).pcm
    except WavError as error:
        raise MediaError(f"cannot play {media}: not audio that can be played ({error})") from error
