"""WebRTC's audio processing between a unit's microphone and its encoder: AEC3 echo cancellation,
noise suppression, automatic gain and a high-pass filter, through livekit's
``rtc.AudioProcessingModule`` (chosen by measurement: ``bench/aec_compare.py``, bench/README.md).

One :class:`SoundProcessor` serves one unit (one sound card) for all its calls, so that the canceller
stays converged on the room from one call to the next. It runs on PortAudio's threads, where the
blocks are: the speaker's callback hands it every block it gives the device, after everything else
the unit plays was mixed in (:meth:`SoundProcessor.render`), and the microphone's callback hands it
every block captured and sends on what comes back (:meth:`SoundProcessor.capture`). The reference is
thus exactly what reaches the speaker, at the moment it goes to the device: never from a backlog,
never after its echo was captured (a canceller fed a late reference collapses to ~5 dB for good,
bench/README.md). Each 20 ms block goes through as two 10 ms frames, in the same callback, so the
framing adds no delay; the processing itself adds ~15 ms (AEC 9, noise suppression 7, filter 1).

The module's per-frame calls go through :mod:`.livekit_adaptation`, with their requests serialised
once instead of for every frame.

The delay hint is taken from PortAudio's timestamps of each block (how long until the speaker's
block sounds, how long ago the microphone's block was captured); AEC3 finds the room's own delay.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..media.tracks import SAMPLE_RATE as RATE
from .echo_meter import EchoFigures, EchoMeter
from .livekit_adaptation import FrameCall

log = logging.getLogger(__name__)

FRAME = RATE // 100  # the module takes 10 ms frames only


@dataclass(frozen=True)
class ProcessingSettings:
    """Which steps run on what the microphone captures; all of them by default."""

    echo_cancellation: bool = True
    noise_suppression: bool = True
    auto_gain: bool = True
    high_pass_filter: bool = True

    @property
    def any(self) -> bool:
        return self.echo_cancellation or self.noise_suppression or self.auto_gain or self.high_pass_filter


ALL_PROCESSING = ProcessingSettings()
NO_PROCESSING = ProcessingSettings(False, False, False, False)


@dataclass(frozen=True)
class ProcessingStats:
    """What the processing did: its steps, the frames it took, what it cost, and the echo figures.

    ``cost_us_per_frame`` is the CPU time of both streams per 10 ms frame (the speaker's block and
    the microphone's), on PortAudio's threads; ``errors`` counts blocks sent unprocessed because the
    module failed on them. ``echo`` holds this unit's estimates of ERLE and delay (:mod:`.echo_meter`):
    the module itself reports neither.
    """

    settings: ProcessingSettings
    frames_processed: int
    reference_frames: int
    cost_us_per_frame: float
    delay_hint_ms: int
    errors: int
    echo: EchoFigures


class _Frame:
    """A reusable 10 ms frame the module processes in place (``process()``), with a numpy view on its samples."""

    def __init__(self, apm: Any, call: str) -> None:
        self.data = bytearray(FRAME * 2)
        self.samples = np.frombuffer(self.data, dtype=np.int16)
        self.process = FrameCall(apm, call, self.data, RATE)


class SoundProcessor:
    """One unit's audio processing: reference blocks in from the speaker, microphone blocks through.

    :meth:`render` and :meth:`capture` are called on PortAudio's threads (one each) and never raise:
    a block the module fails on goes out as captured, counted in :attr:`stats`.
    """

    def __init__(self, settings: ProcessingSettings, meter: EchoMeter | None = None) -> None:
        from livekit import rtc  # 28 MB of native library: loaded only by units with a sound card

        self.settings = settings
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=settings.echo_cancellation,
            noise_suppression=settings.noise_suppression,
            high_pass_filter=settings.high_pass_filter,
            auto_gain_control=settings.auto_gain,
        )
        self._render_frame = _Frame(self._apm, "apm_process_reverse_stream")
        self._capture_frame = _Frame(self._apm, "apm_process_stream")
        self.meter = meter or EchoMeter()
        self._render_latency = 0.0  # seconds from the last reference hand-over until it sounds
        self._delay_hint = -1
        self._frames = 0
        self._reference_frames = 0
        self._cpu_ns = 0
        self._errors = 0

    @property
    def stats(self) -> ProcessingStats:
        frames = max(self._frames, self._reference_frames)
        return ProcessingStats(
            settings=self.settings,
            frames_processed=self._frames,
            reference_frames=self._reference_frames,
            cost_us_per_frame=self._cpu_ns / 1000 / frames if frames else 0.0,
            delay_hint_ms=max(0, self._delay_hint),
            errors=self._errors,
            echo=self.meter.figures(),
        )

    def render(self, block: np.ndarray, latency: float) -> None:
        """``block`` (int16) goes to the speaker now and sounds ``latency`` seconds later."""
        started = time.thread_time_ns()
        self._render_latency = latency
        if self.settings.echo_cancellation:
            frame = self._render_frame
            try:
                for start in range(0, len(block) - FRAME + 1, FRAME):
                    frame.samples[:] = block[start : start + FRAME]
                    frame.process()
                    self._reference_frames += 1
            except Exception:  # PortAudio's thread: nothing may raise here
                self._failed()
        self.meter.render(block)
        self._cpu_ns += time.thread_time_ns() - started

    def capture(self, block: np.ndarray, latency: float) -> np.ndarray:
        """``block`` (int16) as captured ``latency`` seconds ago, processed; a new array."""
        started = time.thread_time_ns()
        out = block.copy()
        frame = self._capture_frame
        try:
            if self.settings.echo_cancellation:
                self._hint(round((self._render_latency + latency) * 1000))
            for start in range(0, len(block) - FRAME + 1, FRAME):
                frame.samples[:] = block[start : start + FRAME]
                frame.process()
                out[start : start + FRAME] = frame.samples
                self._frames += 1
        except Exception:  # PortAudio's thread: nothing may raise here; the block goes out as captured
            self._failed()
            out = block.copy()
        self.meter.capture(block, out)
        self._cpu_ns += time.thread_time_ns() - started
        return out

    def _hint(self, delay_ms: int) -> None:
        # The module keeps a hint until the next one: setting it only when it changes gives the same
        # output, bit for bit, as setting it before every frame, and saves an FFI call (~25 us) a block.
        if delay_ms != self._delay_hint:
            self._apm.set_stream_delay_ms(delay_ms)
            self._delay_hint = delay_ms

    def _failed(self) -> None:
        self._errors += 1
        if self._errors == 1:
            log.exception("audio processing failed; the microphone goes out unprocessed")
