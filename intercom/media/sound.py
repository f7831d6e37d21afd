"""The sound card as aiortc sees it: a microphone track and a speaker sink, through sounddevice.

Both run PortAudio streams at 48 kHz, mono, int16, in 20 ms blocks (960 samples), the frame size
of everything else in :mod:`intercom.media`. PortAudio calls back on a thread of its own:

* :class:`MicrophoneTrack` copies each captured block and hands it to the event loop with
  ``loop.call_soon_threadsafe``; the loop keeps a few blocks for ``recv()`` and drops the oldest
  when the reader falls behind, so a stalled sender never builds up delay.
* :class:`SpeakerSink` reads a remote track in a task and writes into a ring buffer that the
  PortAudio callback drains. The ring holds at most ``buffer_ms`` (40 ms by default): a frame that
  would overfill it pushes out the oldest samples (an *overrun*), and a callback that finds too
  little plays what there is followed by silence (an *underrun*). Playback starts, and starts again
  after an underrun, once the ring holds half a block less than its capacity (30 ms by default):
  frames and device blocks both come every 20 ms, and without that margin the two clocks' jitter
  turns into underruns whenever they run in phase. So the ring holds 10 to 40 ms, on top of the
  device's own latency. Both counts are in :class:`PlaybackStats`, with the blocks played, for the
  call's statistics.

Software gain (a plain factor, clipped to int16) applies to either side and may be changed while
the stream runs. Devices are named by the ids ``intercom devices`` lists (``None`` for PortAudio's
default) and opened on PortAudio's own thread (:mod:`.portaudio`). Each side watches its device:
when it goes away (unplugged, or its JACK server stopped) ``on_error`` is told, the microphone
sends silence and the speaker drops what it receives, and the device is tried again every second
until it is back. :meth:`switch` moves either side to another device while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import sounddevice as sd
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .devices import UnknownDevice
from .opus import FrameDecoder
from .portaudio import PORTAUDIO, DeviceId
from .tasks import cancel_and_wait
from .tracks import FRAME_SAMPLES, SAMPLE_RATE, add_clipped, audio_frame

log = logging.getLogger(__name__)

FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
CAPTURE_QUEUE_BLOCKS = 5  # 100 ms: rides out an event-loop stall; a reader that keeps up holds ~0
PLAYBACK_BUFFER_MS = 40
LOST_AFTER = 0.5  # seconds without a callback (or an inactive stream): the device is gone
RETRY_INTERVAL = 1.0  # seconds between attempts to open a device that is away
MIX_BUFFER_MS = 1000  # local sound waiting to be mixed in: a key's feedback tone is 100 ms
INT16_MIN, INT16_MAX = -32768, 32767


def apply_gain(samples: np.ndarray, gain: float) -> np.ndarray:
    """``samples`` (int16) scaled by ``gain`` and clipped to int16; the same array when ``gain`` is 1."""
    if gain == 1.0:
        return samples
    return np.clip(np.rint(samples * gain), INT16_MIN, INT16_MAX).astype(np.int16)


@dataclass(frozen=True)
class CaptureStats:
    """What a :class:`MicrophoneTrack` has captured: blocks from the device, blocks dropped unread."""

    blocks_captured: int
    blocks_dropped: int
    input_overflows: int


@dataclass(frozen=True)
class PlaybackStats:
    """What a :class:`SpeakerSink` has played.

    ``frames_received`` counts frames read from the track; ``blocks_played`` device blocks filled
    entirely with received audio; ``underruns`` blocks that were short of audio and got silence
    (counted from the first audio on, not while waiting for it); ``overruns`` frames that pushed the
    oldest buffered samples out, ``samples_dropped`` how many. ``max_buffered_ms`` is the most the
    ring held just after a write, ``device_latency_ms`` PortAudio's own output latency on top.
    """

    frames_received: int
    blocks_played: int
    underruns: int
    overruns: int
    samples_dropped: int
    max_buffered_ms: float
    device_latency_ms: float


def _close_if_opened(opening: asyncio.Future[sd._StreamBase]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        PORTAUDIO.close_soon(opening.result())


class DeviceLost(RuntimeError):
    """The sound device stopped delivering (unplugged, or its JACK server went away)."""


class _Supervised(ABC):
    """What a microphone and a speaker share: opening their device on PortAudio's thread, noticing
    that it went away, retrying every second until it is back, and switching to another device.

    A failure calls ``on_error`` (when set) once per outage and is kept in :attr:`error` until the
    device opens again. A device counts as lost when its stream is no longer active or has not
    called back for :data:`LOST_AFTER` seconds.
    """

    stream_kind: type[sd.InputStream] | type[sd.OutputStream]
    name: str

    def __init__(self, device: DeviceId) -> None:
        self.device = device
        self.error: Exception | None = None
        self.on_error: Callable[[Exception], None] | None = None
        self._stream: sd._StreamBase | None = None
        self._callbacks = 0  # blocks PortAudio asked for or delivered: stalls show as a count that stops
        self._tokens = itertools.count(1)
        self._current = 0  # the token of the stream in use: a stream being replaced is ignored
        self._supervisor: asyncio.Task[None] | None = None
        self._switching = asyncio.Lock()

    @property
    def stream(self) -> sd._StreamBase | None:
        """The open PortAudio stream; ``None`` before it opened, while the device is away and after stop."""
        return self._stream

    @abstractmethod
    def _callback(self, token: int) -> Callable[..., None]:
        """PortAudio's callback for a stream of this side, doing nothing unless ``token`` is current."""

    async def _open(self, device: DeviceId) -> tuple[sd._StreamBase, int]:
        """A started stream on ``device`` and the token its callback answers to. Cancelled meanwhile
        (the track stopped), the stream PortAudio's thread goes on to open is closed again."""
        token = next(self._tokens)
        opening = asyncio.ensure_future(PORTAUDIO.open(self.stream_kind, device, self._callback(token)))
        try:
            return await asyncio.shield(opening), token
        except asyncio.CancelledError:
            opening.add_done_callback(_close_if_opened)
            raise

    def _supervise(self) -> None:
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._keep_open(), name=f"{type(self).__name__}({self.name})")

    async def _keep_open(self) -> None:
        seen = -1
        while True:
            if self._stream is None:
                async with self._switching:
                    await self._try_open()
                await asyncio.sleep(RETRY_INTERVAL if self._stream is None else LOST_AFTER)
                seen = -1
                continue
            stream = self._stream
            if not stream.active or self._callbacks == seen:
                async with self._switching:
                    if stream is self._stream:  # not switched away meanwhile
                        self._stream = None
                        await PORTAUDIO.close(stream, dead=True)
                        self._failed(DeviceLost(f"{self.name} {self.device or 'default'} stopped: unplugged?"))
                continue
            seen = self._callbacks
            await asyncio.sleep(LOST_AFTER)

    async def _try_open(self) -> None:
        try:
            self._stream, self._current = await self._open(self.device)
        except (UnknownDevice, sd.PortAudioError, ValueError) as exc:
            if self.error is None:
                self._failed(exc)
            return
        if self.error is not None:
            log.info("%s %r is back", self.name, self.device)
        self.error = None

    def _failed(self, exc: Exception) -> None:
        log.error("%s %r: %s", self.name, self.device, exc)
        self.error = exc
        self._device_away()
        if self.on_error is not None:
            self.on_error(exc)

    @abstractmethod
    def _device_away(self) -> None:
        """The device went away or would not open: drop what waits for it."""

    async def switch(self, device: DeviceId) -> None:
        """Carry on on ``device``: its stream opens before the old one closes, so the gap is one block
        or so. Raises :class:`UnknownDevice` (or ``sd.PortAudioError``) and keeps the old device."""
        async with self._switching:
            stream, token = await self._open(device)
            old, self._stream, self._current = self._stream, stream, token
            self.device, self.error = device, None
            if old is not None:
                await PORTAUDIO.close(old)

    async def _stop_supervising(self) -> sd._StreamBase | None:
        if self._supervisor is not None:
            await cancel_and_wait(self._supervisor)
            self._supervisor = None
        stream, self._stream = self._stream, None
        return stream


class MicrophoneTrack(_Supervised, MediaStreamTrack):
    """An aiortc audio track from a sounddevice input, opened at the first ``recv()``.

    Frames are 960-sample mono s16 at 48 kHz; ``pts`` counts samples since the track began (``time_base``
    1/48000), so blocks dropped because the reader fell behind leave a gap in the timestamps rather
    than shifting later audio. ``gain`` may be changed at any time. While the device is away the track
    sends silence at the same pace, so that the call carries on and RTP keeps flowing.
    """

    kind = "audio"
    stream_kind = sd.InputStream
    name = "microphone"

    def __init__(self, device: DeviceId = None, gain: float = 1.0, queue_blocks: int = CAPTURE_QUEUE_BLOCKS) -> None:
        MediaStreamTrack.__init__(self)
        _Supervised.__init__(self, device)
        self.gain = gain
        self._blocks: deque[tuple[int, np.ndarray]] = deque(maxlen=queue_blocks)
        self._arrived = asyncio.Event()
        self._captured = 0  # blocks, counted on PortAudio's thread (or the loop's, as silence)
        self._delivered = 0  # blocks, counted on the loop
        self._dropped = 0
        self._overflows = 0
        self._silence_due = 0.0

    @property
    def stats(self) -> CaptureStats:
        return CaptureStats(self._delivered, self._dropped, self._overflows)

    async def recv(self) -> av.AudioFrame:
        self._supervise()
        while not self._blocks:
            if self.readyState != "live":
                raise MediaStreamError
            self._arrived.clear()
            if self._stream is None and self.error is not None:
                await self._silence()
            else:
                await self._arrived.wait()
        if self.readyState != "live":
            raise MediaStreamError
        pts, samples = self._blocks.popleft()
        return audio_frame(apply_gain(samples, self.gain), pts)

    def stop(self) -> None:
        super().stop()
        if self._supervisor is not None:
            self._supervisor.cancel()
            self._supervisor = None
        stream, self._stream = self._stream, None
        if stream is not None:
            PORTAUDIO.close_soon(stream)
        self._blocks.clear()
        self._arrived.set()  # a reader waiting in recv() sees the track ended

    def _callback(self, token: int) -> Callable[..., None]:
        loop = asyncio.get_running_loop()

        def captured(indata: np.ndarray, frames: int, time: Any, status: sd.CallbackFlags) -> None:
            # PortAudio's thread: copy (indata is reused) and hand over; nothing here may raise.
            if token != self._current:  # a stream being replaced, or not yet in use
                return
            pts = self._captured * FRAME_SAMPLES
            self._captured += 1
            self._callbacks += 1
            with contextlib.suppress(RuntimeError):  # the loop is closed; stop() will close the stream
                loop.call_soon_threadsafe(self._deliver, pts, indata[:, 0].copy(), bool(status.input_overflow))

        return captured

    def _device_away(self) -> None:
        self._silence_due = asyncio.get_running_loop().time()
        self._arrived.set()  # a reader waiting for the device now gets silence instead

    async def _silence(self) -> None:
        """One block of silence, a block's time after the last."""
        loop = asyncio.get_running_loop()
        self._silence_due = max(self._silence_due + FRAME_SECONDS, loop.time() - FRAME_SECONDS)
        await asyncio.sleep(max(0.0, self._silence_due - loop.time()))
        if self._stream is None and not self._blocks:
            self._deliver(self._captured * FRAME_SAMPLES, np.zeros(FRAME_SAMPLES, np.int16), False)
            self._captured += 1

    def _deliver(self, pts: int, samples: np.ndarray, overflow: bool) -> None:
        if self.readyState != "live":  # stopped after PortAudio called back
            return
        if len(self._blocks) == self._blocks.maxlen:
            self._dropped += 1
        self._blocks.append((pts, samples))
        self._delivered += 1
        self._overflows += overflow
        self._arrived.set()


class SampleRing:
    """A bounded FIFO of int16 samples shared by the event loop (writer) and PortAudio's thread (reader).

    A lock guards the indices and the copies; both sides hold it for one 960-sample copy at most.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._buffer = np.zeros(capacity, dtype=np.int16)
        self._start = 0
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._size

    def write(self, samples: np.ndarray) -> int:
        """Append ``samples``, dropping the oldest to make room; returns how many were dropped."""
        with self._lock:
            if len(samples) >= self.capacity:
                dropped = self._size + len(samples) - self.capacity
                self._buffer[:] = samples[-self.capacity :]
                self._start, self._size = 0, self.capacity
                return dropped
            dropped = max(0, self._size + len(samples) - self.capacity)
            if dropped:
                self._start = (self._start + dropped) % self.capacity
                self._size -= dropped
            end = (self._start + self._size) % self.capacity
            first = min(len(samples), self.capacity - end)
            self._buffer[end : end + first] = samples[:first]
            self._buffer[: len(samples) - first] = samples[first:]
            self._size += len(samples)
            return dropped

    def read_into(self, out: np.ndarray) -> int:
        """Fill ``out`` from the oldest samples, zeros after the last; returns how many were real."""
        with self._lock:
            count = min(len(out), self._size)
            first = min(count, self.capacity - self._start)
            out[:first] = self._buffer[self._start : self._start + first]
            out[first:count] = self._buffer[: count - first]
            self._start = (self._start + count) % self.capacity
            self._size -= count
        out[count:] = 0
        return count

    def clear(self) -> None:
        with self._lock:
            self._start = self._size = 0


class SpeakerSink(_Supervised):
    """Plays ``track`` on a sounddevice output between :meth:`start` and :meth:`stop`.

    Any audio frame (or Opus ``av.Packet``) is converted to 48 kHz mono s16, scaled by ``gain`` and
    written to a ring of at most ``buffer_ms`` that the output callback drains 960 samples at a time.
    The device opens when :meth:`start` is called, on PortAudio's thread. When the track ends the
    device plays silence until :meth:`stop`; :attr:`ended` tells. The track is read all along, device
    or not, so that the call's audio keeps flowing while the device is away. :meth:`mix` adds a
    local sound over whatever plays, through a ring of its own.
    """

    stream_kind = sd.OutputStream
    name = "speaker"

    def __init__(
        self, track: MediaStreamTrack, device: DeviceId = None, gain: float = 1.0, buffer_ms: float = PLAYBACK_BUFFER_MS
    ) -> None:
        super().__init__(device)
        self.track = track
        self.gain = gain
        self.ended = False
        self._ring = SampleRing(max(FRAME_SAMPLES, round(buffer_ms * SAMPLE_RATE / 1000)))
        self._prime = max(FRAME_SAMPLES, self._ring.capacity - FRAME_SAMPLES // 2)
        self._overlay = SampleRing(round(MIX_BUFFER_MS * SAMPLE_RATE / 1000))
        self._primed = False  # the callback is draining the ring, not waiting for it to fill
        self._task: asyncio.Task[None] | None = None
        self._resampler: av.AudioResampler | None = None
        self._decoder = FrameDecoder()
        self._playing = False  # set once the ring first filled: underruns count from then on
        self._frames_received = 0
        self._blocks_played = 0
        self._underruns = 0
        self._overruns = 0
        self._samples_dropped = 0
        self._max_buffered = 0

    @property
    def underruns(self) -> int:
        return self._underruns

    @property
    def overruns(self) -> int:
        return self._overruns

    @property
    def blocks_played(self) -> int:
        return self._blocks_played

    @property
    def stats(self) -> PlaybackStats:
        latency = self._stream.latency if self._stream is not None else 0.0
        return PlaybackStats(
            frames_received=self._frames_received,
            blocks_played=self._blocks_played,
            underruns=self._underruns,
            overruns=self._overruns,
            samples_dropped=self._samples_dropped,
            max_buffered_ms=self._max_buffered * 1000 / SAMPLE_RATE,
            device_latency_ms=float(latency) * 1000,
        )

    def start(self) -> None:
        if self._task is not None:
            return
        self._supervise()
        self._task = asyncio.create_task(self._run(), name=f"SpeakerSink({self.track.id})")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        stream = await self._stop_supervising()
        if stream is not None:
            await PORTAUDIO.close(stream)
        self._ring.clear()
        self._overlay.clear()
        self._primed = False

    def mix(self, samples: np.ndarray) -> None:
        """Play ``samples`` (48 kHz mono int16: a key's feedback tone) over the far end's audio, from
        the next device block on and after any mixed before that is still waiting; scaled by ``gain``."""
        if self._stream is not None:
            self._overlay.write(apply_gain(samples, self.gain))

    async def _run(self) -> None:
        try:
            while True:
                item = await self.track.recv()
                self._frames_received += 1
                for samples in self._pcm(item):
                    self._write(apply_gain(samples, self.gain))
        except MediaStreamError:
            self.ended = True

    def _write(self, samples: np.ndarray) -> None:
        if self._stream is None:  # no device (yet, or any more): the ring would only overflow
            return
        dropped = self._ring.write(samples)
        if dropped:
            self._overruns += 1
            self._samples_dropped += dropped
        self._max_buffered = max(self._max_buffered, len(self._ring))

    def _device_away(self) -> None:
        self._ring.clear()
        self._overlay.clear()
        self._primed = False

    def _callback(self, token: int) -> Callable[..., None]:
        def output(outdata: np.ndarray, frames: int, time: Any, status: sd.CallbackFlags) -> None:
            # PortAudio's thread: the far end's audio, then whatever was mixed in added over it.
            if token != self._current:  # a stream being replaced, or not yet in use
                outdata.fill(0)
                return
            self._callbacks += 1
            self._play(outdata, frames)
            if len(self._overlay):
                extra = np.zeros(frames, dtype=np.int16)
                count = self._overlay.read_into(extra)
                outdata[:count, 0] = add_clipped(outdata[:count, 0], extra[:count])

        return output

    def _play(self, outdata: np.ndarray, frames: int) -> None:
        # PortAudio's thread: fill the block from the ring, silence for whatever is missing.
        out = outdata[:, 0]
        if not self._primed:
            if len(self._ring) < self._prime and not self.ended:
                out.fill(0)
                self._underruns += self._playing
                return
            self._primed = self._playing = True
        if self._ring.read_into(out) == frames:
            self._blocks_played += 1
        else:
            self._primed = False
            self._underruns += not self.ended

    def _pcm(self, item: av.AudioFrame | av.Packet) -> list[np.ndarray]:
        frames = self._decoder.frames(item)
        chunks = []
        for frame in frames:
            if frame.format.name == "s16" and frame.layout.name == "mono" and frame.sample_rate == SAMPLE_RATE:
                chunks.append(frame.to_ndarray().reshape(-1))
                continue
            if self._resampler is None:
                self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for converted in self._resample(frame):
                chunks.append(converted.to_ndarray().reshape(-1))
        return chunks

    def _resample(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        assert self._resampler is not None
        try:
            return self._resampler.resample(frame)
        except ValueError:  # the far end changed format or rate mid-stream: start a fresh resampler
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            return self._resampler.resample(frame)
