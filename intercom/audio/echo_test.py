"""``intercom audio-test --echo``: play a test sound on the unit's speaker while its microphone
records, then tell the installer what the acoustic path between them does to a call.

It opens the devices as a call does (:data:`~.portaudio.PORTAUDIO`, 48 kHz mono, 20 ms blocks, the
settings' gains applied in the callbacks) and notes when each block is handed over, so that the
take can be replayed to a canceller in the order the unit's own callbacks would feed it. What it
makes of the take is :mod:`.echo_check`'s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import sounddevice as sd

from .devices import index_and_name
from .echo_check import BLOCK, RATE, Take, Verdict, figure_lines, measure, speech_like_signal, verdict
from .portaudio import PORTAUDIO, DeviceId, captured_ago, sounds_in
from .samples import apply_gain

START_TIMEOUT_S = 5.0  # on top of the take's own length: the devices open in ~0.1 s


class _Timeline:
    """Blocks handed over by one stream's callbacks, with when: the stream's first block was handed
    over at the earliest of (callback time - its block's place), since a callback is late by however
    long it waited and never early. ``dropouts`` counts the blocks the device lost on the way (after
    the first, which may report the stream's own start)."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self._starts: list[float] = []
        self.latencies: list[float] = []
        self.dropouts = 0

    def add(self, block: np.ndarray, latency: float, lost: bool) -> None:
        self._starts.append(time.monotonic() - len(self.blocks) * BLOCK / RATE)
        if lost and self.blocks:
            self.dropouts += 1
        self.blocks.append(block)
        self.latencies.append(latency)

    @property
    def start(self) -> float:
        return min(self._starts)

    @property
    def latency(self) -> float:
        return float(np.median(self.latencies))

    def samples(self) -> np.ndarray:
        return np.concatenate(self.blocks)


def play_and_record(
    signal: np.ndarray, microphone: DeviceId, speaker: DeviceId, microphone_gain: float, speaker_gain: float
) -> Take:
    """Play ``signal`` (int16) on ``speaker`` while ``microphone`` records, each with its gain, as a
    call would; the recording runs until the last block of ``signal`` has been handed over."""
    blocks = np.concatenate([signal, np.zeros(-len(signal) % BLOCK, np.int16)]).reshape(-1, BLOCK)
    played, recorded = _Timeline(), _Timeline()
    all_played, done = threading.Event(), threading.Event()
    streams: dict[str, sd._StreamBase] = {}

    def captured(indata: np.ndarray, frames: int, when: Any, status: sd.CallbackFlags) -> None:
        latency = captured_ago(when, streams.get("in"))
        recorded.add(apply_gain(indata[:, 0], microphone_gain).copy(), latency, status.input_overflow)
        if all_played.is_set():
            done.set()
            raise sd.CallbackStop

    def output(outdata: np.ndarray, frames: int, when: Any, status: sd.CallbackFlags) -> None:
        if len(played.blocks) == len(blocks):
            outdata.fill(0)
            all_played.set()
            return
        outdata[:, 0] = apply_gain(blocks[len(played.blocks)], speaker_gain)
        played.add(outdata[:, 0].copy(), sounds_in(when, streams.get("out")), status.output_underflow)

    # the microphone first, so that it hears the quiet before the signal
    streams["in"] = PORTAUDIO.open_blocking(sd.InputStream, microphone, captured)
    try:
        streams["out"] = PORTAUDIO.open_blocking(sd.OutputStream, speaker, output)
        try:
            if not done.wait(len(signal) / RATE + START_TIMEOUT_S):
                raise TimeoutError("the sound card did not play and record in time: is the device busy?")
        finally:
            PORTAUDIO.close_blocking(streams["out"])
    finally:
        PORTAUDIO.close_blocking(streams["in"])
    return Take(
        played=played.samples(),
        recorded=recorded.samples(),
        lead_s=recorded.start - played.start,
        speaker_latency_s=played.latency,
        microphone_latency_s=recorded.latency,
        dropouts=played.dropouts + recorded.dropouts,
    )


def run_echo_test(
    microphone: DeviceId,
    speaker: DeviceId,
    microphone_gain: float,
    speaker_gain: float,
    echo_cancellation: bool = True,
    say: Callable[[str], None] = print,
) -> Verdict:
    """The whole test, said line by line: what plays where, the figures, then the verdict."""
    _, input_name = index_and_name(microphone, "audioinput")
    _, output_name = index_and_name(speaker, "audiooutput")
    signal = speech_like_signal()
    say(
        f"echo test: {len(signal) / RATE:.1f} s of test sound on {output_name} (gain {speaker_gain:g}), "
        f"recording {input_name} (gain {microphone_gain:g}); keep quiet near the unit"
    )
    take = play_and_record(signal, microphone, speaker, microphone_gain, speaker_gain)
    figures = measure(take)
    for line in figure_lines(figures):
        say(line)
    result = verdict(figures, speaker_gain, microphone_gain, echo_cancellation)
    for line in result.lines:
        say(line)
    return result
