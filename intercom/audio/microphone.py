"""The microphone as an aiortc track, through sounddevice.

PortAudio captures 48 kHz mono int16 in 20 ms blocks (960 samples), the frame size of everything in
:mod:`intercom.media`, and calls back on a thread of its own: :class:`MicrophoneTrack` copies each
block and hands it to the event loop with ``loop.call_soon_threadsafe``; the loop keeps a few blocks
for ``recv()`` and drops the oldest when the reader falls behind, so a stalled sender never builds
up delay. Software gain (a plain factor, clipped to int16) may be changed while the stream runs;
it applies before the unit's :class:`~.processing.SoundProcessor` (echo cancellation, noise
suppression, automatic gain), which runs in the same callback, so that the processed block is what
the loop gets.
When the device goes away (unplugged, or its JACK server stopped) the track sends silence at the
same pace, so that the call carries on, and the device is tried again every second
(:mod:`.supervision`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import sounddevice as sd
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..media.tracks import FRAME_SAMPLES, FRAME_SECONDS, audio_frame
from .portaudio import PORTAUDIO, DeviceId, captured_ago
from .processing import ProcessingStats, SoundProcessor
from .samples import apply_gain
from .supervision import SupervisedDevice

CAPTURE_QUEUE_BLOCKS = 5  # 100 ms: rides out an event-loop stall; a reader that keeps up holds ~0


@dataclass(frozen=True)
class CaptureStats:
    """What a :class:`MicrophoneTrack` has captured: blocks from the device, blocks dropped unread."""

    blocks_captured: int
    blocks_dropped: int
    input_overflows: int
    processing: ProcessingStats | None = None  # echo cancellation and the rest, when the unit runs it


class MicrophoneTrack(SupervisedDevice, MediaStreamTrack):
    """An aiortc audio track from a sounddevice input, opened at the first ``recv()``.

    Frames are 960-sample mono s16 at 48 kHz; ``pts`` counts samples since the track began (``time_base``
    1/48000), so blocks dropped because the reader fell behind leave a gap in the timestamps rather
    than shifting later audio. ``gain`` may be changed at any time. While the device is away the track
    sends silence at the same pace, so that the call carries on and RTP keeps flowing.
    """

    kind = "audio"
    stream_kind = sd.InputStream
    name = "microphone"

    def __init__(
        self,
        device: DeviceId = None,
        gain: float = 1.0,
        queue_blocks: int = CAPTURE_QUEUE_BLOCKS,
        processor: SoundProcessor | None = None,
    ) -> None:
        MediaStreamTrack.__init__(self)
        SupervisedDevice.__init__(self, device)
        self.gain = gain
        self.processor = processor
        self._blocks: deque[tuple[int, np.ndarray]] = deque(maxlen=queue_blocks)
        self._arrived = asyncio.Event()
        self._captured = 0  # blocks, counted on PortAudio's thread (or the loop's, as silence)
        self._delivered = 0  # blocks, counted on the loop
        self._dropped = 0
        self._overflows = 0
        self._silence_due = 0.0

    @property
    def stats(self) -> CaptureStats:
        processing = self.processor.stats if self.processor is not None else None
        return CaptureStats(self._delivered, self._dropped, self._overflows, processing)

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
        return audio_frame(samples, pts)

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
            samples = apply_gain(indata[:, 0], self.gain)
            if self.processor is not None:
                samples = self.processor.capture(samples, captured_ago(time, self._stream))
            else:
                samples = samples.copy()  # indata is reused once this returns
            with contextlib.suppress(RuntimeError):  # the loop is closed; stop() will close the stream
                loop.call_soon_threadsafe(self._deliver, pts, samples, bool(status.input_overflow))

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
