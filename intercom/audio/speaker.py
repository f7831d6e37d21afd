"""The speaker as a sink of an aiortc track, through sounddevice.

:class:`SpeakerSink` reads a remote track in a task and writes into a ring buffer that the
PortAudio callback drains, 48 kHz mono int16 in 20 ms blocks, on PortAudio's thread. The ring holds
at most ``buffer_ms`` (40 ms by default): a frame that would overfill it pushes out the oldest
samples (an *overrun*), and a callback that finds too little plays what there is followed by
silence (an *underrun*). Playback starts, and starts again after an underrun, once the ring holds
``playout_ms`` (30 ms by default, so two 20 ms frames): frames and device blocks both come every
20 ms, and without that margin the two clocks' jitter turns into underruns whenever they run in
phase. So the ring holds 20 to 40 ms, on top of the device's own latency. ``playout_ms=20`` starts
on one frame: 20 ms less mouth to ear (bench/audio.py), but a frame later than the device's next
block is an underrun, so it suits a quiet wired LAN, not Wi-Fi (after such an underrun the ring
holds one frame more from then on, as with the default). Both counts are in
:class:`PlaybackStats`, with the blocks played, for the call's statistics. When the device goes
away the sink drops what it receives until the device is back (:mod:`.supervision`). Every block
handed to the device, local sounds mixed in, goes to the unit's echo canceller as its reference
(:mod:`.processing`) in the same callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import sounddevice as sd
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..media.opus import FrameDecoder
from ..media.tasks import cancel_and_wait
from ..media.tracks import FRAME_SAMPLES, SAMPLE_RATE, add_clipped
from .portaudio import PORTAUDIO, DeviceId, sounds_in
from .processing import SoundProcessor
from .samples import MIN_PLAYOUT_MS, PLAYBACK_BUFFER_MS, PLAYOUT_MS, SampleRing, apply_gain
from .supervision import SupervisedDevice

MIX_BUFFER_MS = 1000  # local sound waiting to be mixed in: a key's feedback tone is 100 ms


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


class SpeakerSink(SupervisedDevice):
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
        self,
        track: MediaStreamTrack,
        device: DeviceId = None,
        gain: float = 1.0,
        buffer_ms: float = PLAYBACK_BUFFER_MS,
        processor: SoundProcessor | None = None,
        playout_ms: float = PLAYOUT_MS,
    ) -> None:
        if not MIN_PLAYOUT_MS <= playout_ms <= buffer_ms:
            raise ValueError(f"the speaker plays once it holds {MIN_PLAYOUT_MS}-{buffer_ms} ms, not {playout_ms}")
        super().__init__(device)
        self.track = track
        self.gain = gain
        self.processor = processor
        self.playout_ms = playout_ms
        self.ended = False
        self._ring = SampleRing(max(FRAME_SAMPLES, round(buffer_ms * SAMPLE_RATE / 1000)))
        self._prime = min(self._ring.capacity, round(playout_ms * SAMPLE_RATE / 1000))
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
            # PortAudio's thread: the far end's audio, then whatever was mixed in added over it; the
            # block as it goes to the device is the echo canceller's reference.
            if token != self._current:  # a stream being replaced, or not yet in use
                outdata.fill(0)
                return
            self._callbacks += 1
            self._play(outdata, frames)
            if len(self._overlay):
                extra = np.zeros(frames, dtype=np.int16)
                count = self._overlay.read_into(extra)
                outdata[:count, 0] = add_clipped(outdata[:count, 0], extra[:count])
            if self.processor is not None:
                self.processor.render(outdata[:, 0], sounds_in(time, self._stream))

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
