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
the stream runs. Devices are named as sounddevice takes them (an index or part of a name, ``None``
for PortAudio's default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import av
import numpy as np
import sounddevice as sd
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .tasks import cancel_and_wait
from .tracks import FRAME_SAMPLES, SAMPLE_RATE, add_clipped, audio_frame

log = logging.getLogger(__name__)

DTYPE = "int16"
CAPTURE_QUEUE_BLOCKS = 5  # 100 ms: rides out an event-loop stall; a reader that keeps up holds ~0
PLAYBACK_BUFFER_MS = 40
MIX_BUFFER_MS = 1000  # local sound waiting to be mixed in: a key's feedback tone is 100 ms
INT16_MIN, INT16_MAX = -32768, 32767

Device = int | str | None
StreamT = TypeVar("StreamT", sd.InputStream, sd.OutputStream)


def apply_gain(samples: np.ndarray, gain: float) -> np.ndarray:
    """``samples`` (int16) scaled by ``gain`` and clipped to int16; the same array when ``gain`` is 1."""
    if gain == 1.0:
        return samples
    return np.clip(np.rint(samples * gain), INT16_MIN, INT16_MAX).astype(np.int16)


def open_stream(kind: type[StreamT], device: Device, callback: Callable[..., None]) -> StreamT:
    """A started 48 kHz mono int16 stream calling back every 960 samples; closed again if it cannot start.

    Opening and closing take a few tens of milliseconds on JACK (~55 ms and ~40 ms measured), during
    which the calling thread waits.
    """
    stream = kind(
        device=device,
        samplerate=SAMPLE_RATE,
        channels=1,
        dtype=DTYPE,
        blocksize=FRAME_SAMPLES,
        latency="low",
        callback=callback,
    )
    try:
        stream.start()
    except BaseException:
        stream.close(ignore_errors=True)
        raise
    return stream


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


class MicrophoneTrack(MediaStreamTrack):
    """An aiortc audio track from a sounddevice input, opened at the first ``recv()``.

    Frames are 960-sample mono s16 at 48 kHz; ``pts`` counts samples captured by the device since the
    stream opened (``time_base`` 1/48000), so blocks dropped because the reader fell behind leave a
    gap in the timestamps rather than shifting later audio. ``gain`` may be changed at any time.
    A device that cannot be opened ends the track: ``recv()`` raises ``MediaStreamError`` and
    :attr:`error` says why.
    """

    kind = "audio"

    def __init__(self, device: Device = None, gain: float = 1.0, queue_blocks: int = CAPTURE_QUEUE_BLOCKS) -> None:
        super().__init__()
        self.device = device
        self.gain = gain
        self.error: Exception | None = None
        self._blocks: deque[tuple[int, np.ndarray]] = deque(maxlen=queue_blocks)
        self._arrived = asyncio.Event()
        self._stream: sd.InputStream | None = None
        self._captured = 0  # blocks, counted on PortAudio's thread
        self._delivered = 0  # blocks, counted on the loop
        self._dropped = 0
        self._overflows = 0

    @property
    def stream(self) -> sd.InputStream | None:
        """The open PortAudio stream, ``None`` before the first ``recv()`` and after ``stop()``."""
        return self._stream

    @property
    def stats(self) -> CaptureStats:
        return CaptureStats(self._delivered, self._dropped, self._overflows)

    async def recv(self) -> av.AudioFrame:
        if self._stream is None:
            self._open()
        while not self._blocks:
            if self.readyState != "live":
                raise MediaStreamError
            self._arrived.clear()
            await self._arrived.wait()
        if self.readyState != "live":
            raise MediaStreamError
        pts, samples = self._blocks.popleft()
        return audio_frame(apply_gain(samples, self.gain), pts)

    def stop(self) -> None:
        super().stop()
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close(ignore_errors=True)
        self._blocks.clear()
        self._arrived.set()  # a reader waiting in recv() sees the track ended

    def _open(self) -> None:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()

        def captured(indata: np.ndarray, frames: int, time: Any, status: sd.CallbackFlags) -> None:
            # PortAudio's thread: copy (indata is reused) and hand over; nothing here may raise.
            pts = self._captured * FRAME_SAMPLES
            self._captured += 1
            with contextlib.suppress(RuntimeError):  # the loop is closed; stop() will close the stream
                loop.call_soon_threadsafe(self._deliver, pts, indata[:, 0].copy(), bool(status.input_overflow))

        try:
            stream = open_stream(sd.InputStream, self.device, captured)
        except (sd.PortAudioError, ValueError) as exc:
            self.error = exc
            log.error("cannot open microphone %r: %s", self.device, exc)
            self.stop()
            raise MediaStreamError(f"cannot open microphone {self.device!r}: {exc}") from exc
        self._stream = stream

    def _deliver(self, pts: int, samples: np.ndarray, overflow: bool) -> None:
        if self._stream is None:  # stopped after PortAudio called back
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


class SpeakerSink:
    """Plays ``track`` on a sounddevice output between :meth:`start` and :meth:`stop`.

    Any audio frame (or Opus ``av.Packet``) is converted to 48 kHz mono s16, scaled by ``gain`` and
    written to a ring of at most ``buffer_ms`` that the output callback drains 960 samples at a time.
    The device opens when :meth:`start` is called. When the track ends the device plays silence until
    :meth:`stop`; :attr:`ended` tells, and :attr:`error` holds a device failure. :meth:`mix` adds a
    local sound over whatever plays, through a ring of its own.
    """

    def __init__(
        self, track: MediaStreamTrack, device: Device = None, gain: float = 1.0, buffer_ms: float = PLAYBACK_BUFFER_MS
    ) -> None:
        self.track = track
        self.device = device
        self.gain = gain
        self.ended = False
        self.error: Exception | None = None
        self._ring = SampleRing(max(FRAME_SAMPLES, round(buffer_ms * SAMPLE_RATE / 1000)))
        self._prime = max(FRAME_SAMPLES, self._ring.capacity - FRAME_SAMPLES // 2)
        self._overlay = SampleRing(round(MIX_BUFFER_MS * SAMPLE_RATE / 1000))
        self._primed = False  # the callback is draining the ring, not waiting for it to fill
        self._stream: sd.OutputStream | None = None
        self._task: asyncio.Task[None] | None = None
        self._resampler: av.AudioResampler | None = None
        self._decoder: av.CodecContext | None = None
        self._playing = False  # set once the ring first filled: underruns count from then on
        self._frames_received = 0
        self._blocks_played = 0
        self._underruns = 0
        self._overruns = 0
        self._samples_dropped = 0
        self._max_buffered = 0

    @property
    def stream(self) -> sd.OutputStream | None:
        """The open PortAudio stream, ``None`` before :meth:`start` and after :meth:`stop`."""
        return self._stream

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
        try:
            stream = open_stream(sd.OutputStream, self.device, self._output)
        except (sd.PortAudioError, ValueError) as exc:
            self.error = exc
            log.error("cannot open speaker %r: %s", self.device, exc)
        else:
            self._stream = stream
        self._task = asyncio.create_task(self._run(), name=f"SpeakerSink({self.track.id})")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close(ignore_errors=True)
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
        if self._stream is None:  # no device: read the track all the same so the call keeps flowing
            return
        dropped = self._ring.write(samples)
        if dropped:
            self._overruns += 1
            self._samples_dropped += dropped
        self._max_buffered = max(self._max_buffered, len(self._ring))

    def _output(self, outdata: np.ndarray, frames: int, time: Any, status: sd.CallbackFlags) -> None:
        # PortAudio's thread: the far end's audio, then whatever was mixed in added over it.
        self._play(outdata, frames, time, status)
        if len(self._overlay):
            extra = np.zeros(frames, dtype=np.int16)
            count = self._overlay.read_into(extra)
            outdata[:count, 0] = add_clipped(outdata[:count, 0], extra[:count])

    def _play(self, outdata: np.ndarray, frames: int, time: Any, status: sd.CallbackFlags) -> None:
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
        if isinstance(item, av.Packet):
            if self._decoder is None:
                self._decoder = av.CodecContext.create("libopus", "r")
                self._decoder.sample_rate = SAMPLE_RATE
            frames = self._decoder.decode(item)
        else:
            frames = [item]
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
