"""Recording a call leg: its Opus packets decoded while someone listens, streamed to a WAV file.

A :class:`PacketListener` keeps reading a passthrough receiver's track for the whole call, so
its queue never grows, and decodes only while its ``sink`` is set: the hub points that at a
:class:`WavRecorder` for a ``record`` step (or a call recorded whole) and back to None after.
"""

from __future__ import annotations

import asyncio
import os
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .opus import FrameDecoder
from .tracks import FRAME_SAMPLES, SAMPLE_RATE, SILENCE_RMS, TrackReader, mono_samples

Sink = Callable[[np.ndarray], None]


class WavRecorder:
    """Streams 48 kHz 16-bit audio of one or two channels to ``path``, a WAV file complete once there.

    Until :meth:`close` the file is ``path.with_suffix(".part")``: a crash never leaves a truncated
    recording under the name a reader looks for. The two channels of a stereo recording (the two
    sides of a call) are fed separately, in chunks of any size: what both have is written, and
    :meth:`close` pads the one behind with silence. ``silent_seconds`` and ``heard_audio`` watch
    channel 0 frame by frame, for a voicemail's end on silence.
    """

    def __init__(self, path: Path, channels: int = 1) -> None:
        if channels not in (1, 2):
            raise ValueError(f"a recording has 1 or 2 channels, not {channels}")
        self.path = path
        self.part = path.with_suffix(".part")
        self.heard_audio = False
        self._wave: wave.Wave_write | None = wave.open(str(self.part), "wb")  # noqa: SIM115 - open until close()
        os.chmod(self.part, 0o600)  # a voicemail is personal data, whatever the umask
        self._wave.setnchannels(channels)
        self._wave.setsampwidth(2)
        self._wave.setframerate(SAMPLE_RATE)
        self._pending = [np.zeros(0, dtype=np.int16) for _ in range(channels)]
        self._received = [0] * channels
        self._unmeasured = np.zeros(0, dtype=np.int16)  # channel 0 short of a whole frame
        self._silent_samples = 0

    @property
    def duration(self) -> float:
        """Seconds recorded so far, on the channel furthest ahead: the length of the file once closed."""
        return max(self._received) / SAMPLE_RATE

    @property
    def silent_seconds(self) -> float:
        """How long channel 0 has been quiet: whole 20 ms frames since the last one above ``SILENCE_RMS``."""
        return self._silent_samples / SAMPLE_RATE

    def add(self, samples: np.ndarray, channel: int = 0) -> None:
        """Append 48 kHz int16 ``samples`` to ``channel``."""
        if self._wave is None:
            raise ValueError(f"the recording {self.path} is closed")
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        self._received[channel] += len(samples)
        self._pending[channel] = np.concatenate([self._pending[channel], samples])
        if channel == 0:
            self._measure(samples)
        self._write(min(len(pending) for pending in self._pending))

    def close(self) -> float:
        """Finish the file, the channel behind padded with silence, and give it its name; its duration."""
        if self._wave is not None:
            longest = max(len(pending) for pending in self._pending)
            self._pending = [np.pad(pending, (0, longest - len(pending))) for pending in self._pending]
            self._write(longest)
            self._wave.close()
            self._wave = None
            os.replace(self.part, self.path)
        return self.duration

    def abort(self) -> None:
        """Drop the recording: the part file goes (a closed recording stays)."""
        if self._wave is not None:
            self._wave.close()
            self._wave = None
            self.part.unlink(missing_ok=True)

    def _write(self, count: int) -> None:
        if count and self._wave is not None:
            interleaved = np.stack([pending[:count] for pending in self._pending], axis=1)
            self._wave.writeframesraw(interleaved.astype("<i2").tobytes())
            self._pending = [pending[count:] for pending in self._pending]

    def _measure(self, samples: np.ndarray) -> None:
        unmeasured = np.concatenate([self._unmeasured, samples])
        whole = len(unmeasured) // FRAME_SAMPLES * FRAME_SAMPLES
        frames = unmeasured[:whole].reshape(-1, FRAME_SAMPLES).astype(np.float64)
        self._unmeasured = unmeasured[whole:]
        loud = np.flatnonzero(np.sqrt(np.mean(frames**2, axis=1)) >= SILENCE_RMS)
        if len(loud):
            self.heard_audio = True
            self._silent_samples = (len(frames) - 1 - loud[-1]) * FRAME_SAMPLES
        else:
            self._silent_samples += len(frames) * FRAME_SAMPLES


class PacketListener(TrackReader):
    """Reads ``track`` (Opus ``av.Packet`` s of a passthrough receiver, or audio frames) between
    :meth:`start` and :meth:`stop`, handing each frame's 48 kHz int16 samples to ``sink``.

    With ``sink`` None what arrives is read and dropped undecoded: decoding costs only while
    someone listens. ``ended`` is set when the track ends (the leg hung up).
    """

    def __init__(self, track: MediaStreamTrack, sink: Sink | None = None) -> None:
        super().__init__(track)
        self.sink = sink
        self.ended = asyncio.Event()
        self._decoder = FrameDecoder()

    async def _run(self) -> None:
        try:
            while True:
                item = await self.track.recv()
                sink = self.sink
                if sink is not None:
                    for frame in self._decoder.frames(item):
                        sink(mono_samples(frame).astype(np.int16, copy=False))
        except MediaStreamError:
            self.ended.set()
