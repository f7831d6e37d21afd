"""Sound files for play steps: files of any rate and channel count, MP3, URLs on a local server, refusals."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from intercom.http_client import OutboundPolicy
from intercom.media import MediaError, load_media
from intercom.media.tracks import FULL_SCALE

from ..conftest import LOOPBACK_ALLOWED, STEP
from ..listening import RATE, peaks, write_mp3, write_wav


@dataclass
class Site:
    """What the local server answers: ``routes`` maps a path to (status, body, whether to send its length),
    ``headers`` a path to the headers it sends besides."""

    url: str
    routes: dict[str, tuple[int, bytes, bool]] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    hanging: set[str] = field(default_factory=set)  # paths that answer nothing until the test ends
    hits: Counter[str] = field(default_factory=Counter)
    release: threading.Event = field(default_factory=threading.Event)


class Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    def do_GET(self) -> None:
        site: Site = self.server.site  # type: ignore[attr-defined]
        site.hits[self.path] += 1
        if self.path in site.hanging:
            site.release.wait(STEP)
            return
        status, body, with_length = site.routes.get(self.path, (404, b"not here", True))
        self.send_response(status)
        if with_length:
            self.send_header("Content-Length", str(len(body)))
        for name, value in site.headers.get(self.path, {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[Site]:
    """An HTTP/1.0 server on 127.0.0.1 in a thread of its own; without a length a body ends at the close."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site = Site(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.site = site  # type: ignore[attr-defined]
    # A short poll: shutdown() waits for the serving loop to look again.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), name="test-http-server")
    thread.start()
    yield site
    site.release.set()
    server.shutdown()
    server.server_close()
    thread.join(STEP)


def assert_tone(samples: np.ndarray, seconds: float, hz: float = 1000.0) -> None:
    """48 kHz int16 of a half-scale ``hz`` sine lasting ``seconds``."""
    assert samples.dtype == np.int16 and samples.ndim == 1
    assert len(samples) / RATE == pytest.approx(seconds, abs=0.001)
    assert peaks(samples, 1) == pytest.approx([hz], abs=1)
    assert np.abs(samples).max() == pytest.approx(0.5 * FULL_SCALE, rel=0.05)


async def load(media: str, media_dir: Path, cache_dir: Path, **limits: Any) -> np.ndarray:
    """``load_media`` with the test server on 127.0.0.1 allowed, unless ``policy`` says otherwise."""
    async with asyncio.timeout(STEP):
        return await load_media(media, media_dir, cache_dir, **{"policy": LOOPBACK_ALLOWED, **limits})


@pytest.mark.parametrize(("rate", "channels"), [(8000, 1), (44100, 2)])
async def test_a_wav_of_any_rate_and_channels_comes_out_48_khz_mono(tmp_path: Path, rate: int, channels: int) -> None:
    write_wav(tmp_path / "tone.wav", 0.5, rate=rate, hz=1000.0, channels=channels)
    assert_tone(await load("tone.wav", tmp_path, tmp_path / "cache"), 0.5)


async def test_an_mp3_decodes(tmp_path: Path) -> None:
    (tmp_path / "sounds").mkdir()
    write_mp3(tmp_path / "sounds" / "tone.mp3", 1.0)
    samples = await load("sounds/tone.mp3", tmp_path, tmp_path / "cache")
    assert len(samples) / RATE == pytest.approx(1.0, abs=0.06)  # MP3 pads with whole frames of 24 ms
    assert peaks(samples[RATE // 10 : -RATE // 10], 1) == pytest.approx([1000], abs=1)


async def test_a_url_is_fetched_once_then_played_from_the_cache(tmp_path: Path, site: Site) -> None:
    write_wav(tmp_path / "tone.wav", 0.5, rate=16000)
    site.routes["/tone.wav"] = (200, (tmp_path / "tone.wav").read_bytes(), True)
    cache = tmp_path / "cache"

    first = await load(f"{site.url}/tone.wav", tmp_path / "media", cache)
    again = await load(f"{site.url}/tone.wav", tmp_path / "media", cache)

    assert_tone(first, 0.5)
    assert np.array_equal(first, again)
    assert site.hits == {"/tone.wav": 1}
    assert len(list(cache.iterdir())) == 1


async def test_an_http_error_is_refused_with_its_status(tmp_path: Path, site: Site) -> None:
    with pytest.raises(MediaError, match=r"gone\.wav: HTTP 404 Not Found"):
        await load(f"{site.url}/gone.wav", tmp_path, tmp_path / "cache")


@pytest.mark.parametrize("with_length", [True, False], ids=["announced", "streamed"])
async def test_a_body_over_the_limit_is_refused_and_nothing_kept(tmp_path: Path, site: Site, with_length: bool) -> None:
    site.routes["/big.wav"] = (200, bytes(200_000), with_length)
    small = replace(LOOPBACK_ALLOWED, max_media_bytes=100_000)
    refusal = r"big\.wav: the answer is (200000 bytes, )?more than 100000( bytes)? \(max_media_bytes: "
    with pytest.raises(MediaError, match=refusal):
        await load(f"{site.url}/big.wav", tmp_path, tmp_path / "cache", policy=small)
    assert not list((tmp_path / "cache").iterdir())


async def test_a_loopback_url_is_refused_without_the_setting_and_never_reached(tmp_path: Path, site: Site) -> None:
    write_wav(tmp_path / "tone.wav", 0.1)
    site.routes["/tone.wav"] = (200, (tmp_path / "tone.wav").read_bytes(), True)
    refusal = r"127\.0\.0\.1 is a loopback address: refused \(allow_loopback: intercom hub --allow-loopback-requests\)"
    with pytest.raises(MediaError, match=refusal):
        await load(f"{site.url}/tone.wav", tmp_path / "media", tmp_path / "cache", policy=OutboundPolicy())
    host = site.url.replace("127.0.0.1", "localhost")  # a name is resolved and checked too
    with pytest.raises(MediaError, match=r"localhost \((127\.0\.0\.1|::1)\) is a loopback address: refused"):
        await load(f"{host}/tone.wav", tmp_path / "media", tmp_path / "cache", policy=OutboundPolicy())
    assert site.hits == {}
    assert not list((tmp_path / "cache").iterdir())


async def test_redirects_are_followed_by_hand_up_to_the_limit(tmp_path: Path, site: Site) -> None:
    write_wav(tmp_path / "tone.wav", 0.5)
    site.routes["/tone.wav"] = (200, (tmp_path / "tone.wav").read_bytes(), True)
    for hop, target in (("/one", "/two"), ("/two", f"{site.url}/tone.wav")):
        site.routes[hop] = (302, b"", True)
        site.headers[hop] = {"Location": target}
    assert_tone(await load(f"{site.url}/one", tmp_path / "media", tmp_path / "cache"), 0.5)
    assert site.hits == {"/one": 1, "/two": 1, "/tone.wav": 1}
    one_hop = replace(LOOPBACK_ALLOWED, max_redirects=1)
    with pytest.raises(MediaError, match=r"more than 1 redirects \(max_redirects: intercom hub --max-redirects\)"):
        await load(f"{site.url}/one", tmp_path / "media", tmp_path / "again", policy=one_hop)


async def test_a_redirect_to_another_scheme_is_refused(tmp_path: Path, site: Site) -> None:
    write_wav(tmp_path / "secret.wav", 0.1)
    site.routes["/away"] = (302, b"", True)
    site.headers["/away"] = {"Location": f"file://{tmp_path}/secret.wav"}
    with pytest.raises(MediaError, match=r"cannot play .*/away: .*(protocol|scheme)"):
        await load(f"{site.url}/away", tmp_path / "media", tmp_path / "cache")


async def test_a_compressed_answer_is_refused(tmp_path: Path, site: Site) -> None:
    site.routes["/packed.wav"] = (200, gzip.compress(bytes(1_000_000)), True)
    site.headers["/packed.wav"] = {"Content-Encoding": "gzip"}
    with pytest.raises(MediaError, match=r"the answer is compressed \(gzip\), and the hub asked for none"):
        await load(f"{site.url}/packed.wav", tmp_path / "media", tmp_path / "cache")


async def test_a_url_that_is_not_audio_is_refused_and_nothing_kept(tmp_path: Path, site: Site) -> None:
    site.routes["/page.html"] = (200, b"<html><body>hello</body></html>" * 20, True)
    with pytest.raises(MediaError, match=r"page\.html: not audio that can be played"):
        await load(f"{site.url}/page.html", tmp_path, tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())


async def test_a_server_that_does_not_answer_in_time_is_refused(tmp_path: Path, site: Site) -> None:
    site.hanging.add("/slow.wav")
    with pytest.raises(MediaError, match=r"slow\.wav: no complete answer within 0\.2 s"):
        await load(f"{site.url}/slow.wav", tmp_path, tmp_path / "cache", timeout=0.2)


@pytest.mark.parametrize("media", ["../secret.wav", "sounds/../../secret.wav", "/elsewhere/secret.wav"])
async def test_a_path_outside_the_media_directory_is_refused(tmp_path: Path, media: str) -> None:
    write_wav(tmp_path / "secret.wav", 0.1)
    (tmp_path / "media").mkdir()
    with pytest.raises(MediaError, match="outside the media directory"):
        await load(media.replace("/elsewhere", str(tmp_path)), tmp_path / "media", tmp_path / "cache")


async def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"nothing\.wav: no such file in the media directory"):
        await load("nothing.wav", tmp_path, tmp_path / "cache")


async def test_a_file_that_is_not_audio_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_text("these are not the samples you are looking for\n" * 10)
    with pytest.raises(MediaError, match=r"notes\.wav: not audio that can be played"):
        await load("notes.wav", tmp_path, tmp_path / "cache")


async def test_only_http_and_https_urls_are_fetched(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="only http and https"):
        await load("file:///etc/passwd", tmp_path, tmp_path / "cache")


@pytest.mark.parametrize(
    ("url", "reason"), [("http://127.0.0.1:1/x.wav", "connection attempts failed"), ("http://[::1/x.wav", "port")]
)
async def test_a_url_that_cannot_be_fetched_is_refused(tmp_path: Path, url: str, reason: str) -> None:
    with pytest.raises(MediaError, match=rf"cannot play .*x\.wav: .*{reason}"):
        await load(url, tmp_path, tmp_path / "cache")
