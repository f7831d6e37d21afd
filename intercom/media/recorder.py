"""Recording a call leg: its Opus packets decoded while someone listens, streamed to a WAV file.

A :class:`PacketListener` keeps reading a passthrough receiver's track for the whole call, so
its queue never grows, and decodes only while its ``sink`` is set: the hub points that at a
:class:`WavRecorder` for a ``record`` step (or a call recorded whole) and back to None after.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .opus import FrameDecoder
from .tracks import FRAME_SAMPLES, SAMPLE_RATE, SILENCE_RMS, TrackReader, mono_samples

Sink = Callable[[np.ndarray], None]

SAMPLE_BYTES = 2
WAV_HEADER_BYTES = 44  # RIFF, fmt and data chunk headers of a plain PCM file: where the audio starts

# One thread flushes every recording to the card, one file after the other: an SD card gains
# nothing from parallel flushes, and the event loop never waits for one.
_SYNC_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recording-sync")


def wav_header(channels: int, data_bytes: int) -> bytes:
    """The 44-byte header of a 48 kHz 16-bit PCM WAV file whose audio is ``data_bytes`` long."""
    block = channels * SAMPLE_BYTES
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", 36 + data_bytes, b"WAVE",
        b"fmt ", 16, 1, channels, SAMPLE_RATE, SAMPLE_RATE * block, block, 8 * SAMPLE_BYTES,
        b"data", data_bytes,
    )  # fmt: skip


def repair_wav(path: Path, channels: int) -> float:
    """Make the file a :class:`WavRecorder` was writing when the hub died a valid WAV of all the
    whole frames it holds; their duration in seconds.

    The header is written anew from what the hub knows of its own recordings, never read: a
    power cut may have torn it. What follows it is cut to whole frames (a write in flight may
    have stopped mid-sample). A file shorter than a header holds no audio and gets a header.
    """
    block = channels * SAMPLE_BYTES
    with open(path, "r+b") as file:
        frames = max(0, os.fstat(file.fileno()).st_size - WAV_HEADER_BYTES) // block
        file.truncate(WAV_HEADER_BYTES + frames * block)
        file.write(wav_header(channels, frames * block))
        file.flush()
        os.fsync(file.fileno())
    return frames / SAMPLE_RATE


class WavRecorder:
    """Streams 48 kHz 16-bit audio of one or two channels to ``path``, a WAV file playable at any moment.

    The file has its final name from the start. Every ``sync_seconds`` of audio its header is made
    to count what was written so far and the file is flushed to the card (the ``fsync`` on a worker
    thread, so that a slow SD card never stalls the calls' audio): a SIGKILL or a power cut leaves a
    playable file short of at most the last ``sync_seconds`` (and of what a write in flight tore,
    which :func:`repair_wav` cuts off at the next start). ``None`` leaves flushing to the system.
    The two channels of a stereo recording (the two sides of a call) are fed separately, in chunks
    of any size: what both have is written, and :meth:`close` pads the one behind with silence.
    ``silent_seconds`` and ``heard_audio`` watch channel 0 frame by frame, for a voicemail's end on
    silence.
    """

    def __init__(self, path: Path, channels: int = 1, sync_seconds: float | None = None) -> None:
        if channels not in (1, 2):
            raise ValueError(f"a recording has 1 or 2 channels, not {channels}")
        self.path = path
        self.channels = channels
        self.heard_audio = False
        self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115 - open until close()
        os.chmod(path, 0o600)  # a voicemail is personal data, whatever the umask
        self._file.write(wav_header(channels, 0))
        self._sync_frames = None if sync_seconds is None else max(1, round(sync_seconds * SAMPLE_RATE))
        self._written = self._unsynced = 0  # frames in the file; of them, written since the last sync
        self._syncing: Future[None] | None = None
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
        if self._file is None:
            raise ValueError(f"the recording {self.path} is closed")
        samples = np.asarray(samples, dtype=np.int16).reshape(-1)
        self._received[channel] += len(samples)
        self._pending[channel] = np.concatenate([self._pending[channel], samples])
        if channel == 0:
            self._measure(samples)
        self._write(min(len(pending) for pending in self._pending))

    def close(self) -> float:
        """Finish the file, the channel behind padded with silence, on the card; its duration."""
        if self._file is not None:
            longest = max(len(pending) for pending in self._pending)
            self._pending = [np.pad(pending, (0, longest - len(pending))) for pending in self._pending]
            self._write(longest)
            self._wait_for_sync()
            self._count_in_header()
            os.fsync(self._file.fileno())  # the caller logs it kept next: it must be there
            self._file.close()
            self._file = None
        return self.duration

    def abort(self) -> None:
        """Drop the recording: the file goes (a closed recording stays)."""
        if self._file is not None:
            self._wait_for_sync()
            self._file.close()
            self._file = None
            self.path.unlink(missing_ok=True)

    def _write(self, count: int) -> None:
        if count and self._file is not None:
            interleaved = np.stack([pending[:count] for pending in self._pending], axis=1)
            self._file.write(interleaved.astype("<i2").tobytes())
            self._pending = [pending[count:] for pending in self._pending]
            self._written += count
            self._unsynced += count
            if self._sync_frames is not None and self._unsynced >= self._sync_frames:
                self._sync()

    def _sync(self) -> None:
        """The header counts what is written, and the file goes to the card behind the audio's back
        (unless the previous flush is still going: the next interval's then takes this one's data)."""
        assert self._file is not None
        self._count_in_header()
        self._unsynced = 0
        if self._syncing is None or self._syncing.done():
            self._syncing = _SYNC_THREAD.submit(os.fsync, self._file.fileno())

    def _count_in_header(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.pwrite(self._file.fileno(), wav_header(self.channels, self._written * self.channels * SAMPLE_BYTES), 0)

    def _wait_for_sync(self) -> None:
        if self._syncing is not None:
            self._syncing.result()  # the descriptor must outlive the fsync on it
            self._syncing = None

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
