"""Synthetic audio for tests and demos, and a sink that listens to what arrives.

Sources produce 48 kHz mono s16 in 20 ms frames, paced on the wall clock as a sound card would,
so a peer connection carries them exactly as it carries a microphone. :class:`RecordingSink`
reads a remote track (decoded frames, or the Opus packets of a passthrough receiver, which it
decodes itself) and answers the questions tests ask: which tone, silent or not, when clicks came.
"""

from __future__ import annotations

import asyncio
import bisect
import fractions
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from typing import cast

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .opus import FrameDecoder
from .tasks import cancel_and_wait

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
FULL_SCALE = 32767
RESYNC_SECONDS = 0.1  # a source read this late skips ahead instead of bursting to catch up
SILENCE_RMS = 100.0  # about -50 dBFS: Opus-coded digital silence stays far below, speech far above
AUDIO_PEAK = 1000  # a frame with a sample this loud is audio, not silence or codec noise
CLICK_PEAK = 8000  # a click onset; the sink re-arms after a frame below a quarter of it
CLICK_SAMPLES = 240  # 5 ms, well inside the first frame even after Opus's 6.5 ms look-ahead
CLICK_HZ = 2000.0


def audio_frame(samples: np.ndarray, pts: int) -> av.AudioFrame:
    """One mono s16 frame of ``samples`` at 48 kHz, stamped ``pts`` (in samples)."""
    frame = av.AudioFrame.from_ndarray(samples.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = TIME_BASE
    return frame


def add_clipped(samples: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """``samples`` with as much of ``extra`` as fits added over their start, clipped to the int16 range.

    The result has ``samples``' length and dtype; a sum beyond int16 clips rather than wraps round.
    """
    mixed = samples.astype(np.float64)
    count = min(len(mixed), len(extra))
    mixed[:count] += extra[:count]
    limits = np.iinfo(np.int16)
    return np.clip(mixed, limits.min, limits.max).astype(samples.dtype)


class PacedTrack(MediaStreamTrack):
    """An audio track whose 20 ms frames come due on the wall clock; subclasses say what a frame carries."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._pts = 0
        self._start: float | None = None

    async def _next_pts(self) -> int:
        """Wait until the next frame is due and return its first sample's number in the stream."""
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            due = self._start + self._pts / SAMPLE_RATE
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > RESYNC_SECONDS:
                self._start = now - self._pts / SAMPLE_RATE
        pts = self._pts
        self._pts += FRAME_SAMPLES
        return pts


class PacedSource(PacedTrack):
    """A paced track of PCM frames; subclasses say what samples they contain."""

    async def recv(self) -> av.AudioFrame:
        pts = await self._next_pts()
        return audio_frame(self.samples(pts), pts)

    @abstractmethod
    def samples(self, pts: int) -> np.ndarray:
        """The frame's 960 samples, its first one being sample number ``pts`` of the stream."""


class ToneSource(PacedSource):
    """A continuous sine at ``frequency_hz``; ``amplitude`` is a fraction of full scale."""

    def __init__(self, frequency_hz: float, amplitude: float = 0.3) -> None:
        super().__init__()
        self.frequency_hz = frequency_hz
        self.amplitude = amplitude

    def samples(self, pts: int) -> np.ndarray:
        phase = 2 * np.pi * self.frequency_hz * (pts + np.arange(FRAME_SAMPLES)) / SAMPLE_RATE
        return self.amplitude * FULL_SCALE * np.sin(phase)


class ClickSource(PacedSource):
    """Silence with a 5 ms burst every ``interval_s``, at the start of a frame, for latency measurement.

    ``sent_at`` holds the monotonic time at which each click frame was handed to the reader.
    """

    def __init__(self, interval_s: float = 0.5, amplitude: float = 0.8) -> None:
        super().__init__()
        self.every = max(1, round(interval_s / FRAME_SECONDS))
        burst = np.sin(2 * np.pi * CLICK_HZ * np.arange(CLICK_SAMPLES) / SAMPLE_RATE)
        self._click = np.zeros(FRAME_SAMPLES)
        self._click[:CLICK_SAMPLES] = amplitude * FULL_SCALE * burst
        self.sent_at: list[float] = []

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        if self._is_click(frame.pts):
            self.sent_at.append(time.monotonic())
        return frame

    def samples(self, pts: int) -> np.ndarray:
        return self._click if self._is_click(pts) else np.zeros(FRAME_SAMPLES)

    def _is_click(self, pts: int) -> bool:
        return (pts // FRAME_SAMPLES) % self.every == 0


class MutableSource(MediaStreamTrack):
    """Passes ``source`` on, or digital silence in its place while muted.

    Frames keep flowing while muted, as in a browser, so RTP and the far end's playout carry on.
    """

    kind = "audio"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source
        self.muted = False

    def mute(self, muted: bool = True) -> None:
        self.muted = muted

    async def recv(self) -> av.AudioFrame:
        frame = await self.source.recv()
        if not self.muted:
            return frame
        silent = av.AudioFrame(format=frame.format.name, layout=frame.layout.name, samples=frame.samples)
        for plane in silent.planes:
            plane.update(bytes(plane.buffer_size))
        silent.sample_rate, silent.pts, silent.time_base = frame.sample_rate, frame.pts, frame.time_base
        return silent

    def stop(self) -> None:
        super().stop()
        self.source.stop()


class TrackReader:
    """Reads ``track`` in a task of its own between :meth:`start` and :meth:`stop` (``_run``)."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{type(self).__name__}({self.track.id})")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    @abstractmethod
    async def _run(self) -> None: ...


class RecordingSink(TrackReader):
    """Reads ``track`` in a task between :meth:`start` and :meth:`stop`, keeping the last ``keep_seconds``.

    Times are ``time.monotonic()`` at the moment a frame (or packet) came out of ``track.recv()``.
    Sound given to :meth:`mix` is added to the frames that arrive next, as a speaker would play it.
    """

    def __init__(self, track: MediaStreamTrack, keep_seconds: float = 10.0) -> None:
        super().__init__(track)
        self.first_audio_at: float | None = None
        self.clicks: list[float] = []
        self.ended = False
        self.sample_rate = SAMPLE_RATE
        self.frames_received = 0
        self._frames: deque[np.ndarray] = deque(maxlen=max(1, round(keep_seconds / FRAME_SECONDS)))
        self._arrived = asyncio.Event()
        self._click_armed = True
        self._decoder = FrameDecoder()
        self._overlay = np.zeros(0, dtype=np.int16)

    def mix(self, samples: np.ndarray) -> None:
        """Add ``samples`` (48 kHz mono int16: a local tone) over the audio that arrives next,
        after any mixed before that is still waiting."""
        self._overlay = np.concatenate([self._overlay, samples.astype(np.int16)])

    async def _run(self) -> None:
        try:
            while True:
                item = await self.track.recv()
                arrived = time.monotonic()
                self.frames_received += 1
                for samples in self._pcm(item):
                    self._listen(samples, arrived)
                self._arrived.set()
        except MediaStreamError:
            self.ended = True
            self._arrived.set()

    def _pcm(self, item: av.AudioFrame | av.Packet) -> list[np.ndarray]:
        frames = self._decoder.frames(item)
        for frame in frames:
            self.sample_rate = frame.sample_rate
        return [mono_samples(frame) for frame in frames]

    def _listen(self, samples: np.ndarray, arrived: float) -> None:
        if len(self._overlay):
            samples, self._overlay = add_clipped(samples, self._overlay), self._overlay[len(samples) :]
        self._frames.append(samples)
        peak = float(np.abs(samples).max(initial=0.0))
        if peak >= AUDIO_PEAK and self.first_audio_at is None:
            self.first_audio_at = arrived
        if peak >= CLICK_PEAK and self._click_armed:
            self.clicks.append(arrived)
            self._click_armed = False
        elif peak < CLICK_PEAK / 4:
            self._click_armed = True

    def recent(self, seconds: float) -> np.ndarray:
        """The last ``seconds`` of audio as float samples (fewer if less has arrived)."""
        wanted = round(seconds * self.sample_rate)
        chunks: list[np.ndarray] = []
        have = 0
        for samples in reversed(self._frames):
            if have >= wanted:
                break
            chunks.append(samples)
            have += len(samples)
        if not chunks:
            return np.zeros(0)
        return np.concatenate(chunks[::-1])[-wanted:].astype(np.float64)

    def rms(self, seconds: float = 0.2) -> float:
        samples = self.recent(seconds)
        return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0

    def is_silent(self, seconds: float = 0.2) -> bool:
        """Whether a full ``seconds`` of audio has arrived and all of it is quiet."""
        return len(self.recent(seconds)) >= round(seconds * self.sample_rate) and self.rms(seconds) < SILENCE_RMS

    def dominant_frequency(self, seconds: float = 0.5) -> float | None:
        """The strongest frequency over the last ``seconds`` (FFT bin centre), None if too little or silent."""
        samples = self.recent(seconds)
        if len(samples) < round(seconds * self.sample_rate) or self.rms(seconds) < SILENCE_RMS:
            return None
        spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
        spectrum[0] = 0.0
        return float(np.argmax(spectrum) * self.sample_rate / len(samples))

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Return once ``predicate()`` holds, checked as audio arrives; TimeoutError after ``timeout`` s."""
        async with asyncio.timeout(timeout):
            while not predicate():
                if self.ended:
                    raise MediaStreamError(f"track {self.track.id} ended while waiting")
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_for_audio(self, timeout: float) -> float:
        """The monotonic time of the first non-silent frame, waiting up to ``timeout`` s for it."""
        await self.wait_until(lambda: self.first_audio_at is not None, timeout)
        return cast(float, self.first_audio_at)


def click_latencies(sent: list[float], received: list[float]) -> list[float]:
    """For each sent click, the delay to the first click received before the next one was sent."""
    latencies = []
    for index, sent_at in enumerate(sent):
        position = bisect.bisect_left(received, sent_at)
        next_sent = sent[index + 1] if index + 1 < len(sent) else float("inf")
        if position < len(received) and received[position] < next_sent:
            latencies.append(received[position] - sent_at)
    return latencies


def mono_samples(frame: av.AudioFrame) -> np.ndarray:
    """The first channel of ``frame`` as numbers on the int16 scale (float formats scaled up to it)."""
    array = frame.to_ndarray()
    if array.dtype.kind == "f":
        array = array * FULL_SCALE
    if frame.format.is_planar:
        return array[0]
    return array.reshape(-1, len(frame.layout.channels))[:, 0]
