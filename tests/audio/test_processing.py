"""The unit's audio processing offline: blocks fed as the PortAudio callbacks feed them, faster than
real time, with a clock that counts samples. The room here is a plain delay and attenuation; the
acoustic rig (test_echo_rig.py) puts a real call and a reverberant room around it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from intercom.audio.echo_meter import EchoMeter
from intercom.audio.processing import NO_PROCESSING, ProcessingSettings, SoundProcessor
from intercom.media.tracks import FRAME_SAMPLES, SAMPLE_RATE

ECHO_ONLY = ProcessingSettings(echo_cancellation=True, noise_suppression=False, auto_gain=False, high_pass_filter=False)
SECONDS = 6


class SampleClock:
    """Hand-over times as a real-time unit would see them: one block every 20 ms."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def far_end(seconds: float, seed: int = 7) -> np.ndarray:
    """Speech-like: noise in 100-300 ms bursts with pauses between, at about -20 dBFS."""
    rng = np.random.default_rng(seed)
    samples = rng.standard_normal(round(seconds * SAMPLE_RATE)) * 3000
    bursts = np.repeat(rng.random(int(seconds * 10) + 1) > 0.35, SAMPLE_RATE // 10)[: len(samples)]
    return np.clip(samples * bursts, -32768, 32767).astype(np.int16)


def room(reference: np.ndarray, delay_ms: float, attenuation_db: float) -> np.ndarray:
    delay = round(delay_ms * SAMPLE_RATE / 1000)
    echo = np.zeros(len(reference), dtype=np.float64)
    echo[delay:] = reference[:-delay] * 10 ** (-attenuation_db / 20)
    return echo.astype(np.int16)


def run(processor: SoundProcessor, clock: SampleClock, speaker: np.ndarray, microphone: np.ndarray) -> np.ndarray:
    """The speaker's block goes to the device, then the microphone's of the same 20 ms comes in."""
    sent = []
    for start in range(0, len(speaker) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        clock.now = start / SAMPLE_RATE
        processor.render(speaker[start : start + FRAME_SAMPLES], 0.0)
        sent.append(processor.capture(microphone[start : start + FRAME_SAMPLES], 0.0))
    return np.concatenate(sent)


def power_db(samples: np.ndarray) -> float:
    values = samples.astype(np.float64)
    return 10 * math.log10(max(np.mean(values * values), 1e-12))


@pytest.fixture
def clock() -> SampleClock:
    return SampleClock()


def test_the_canceller_takes_the_echo_out_of_what_is_sent(clock):
    speaker = far_end(SECONDS)
    microphone = room(speaker, delay_ms=40, attenuation_db=9)
    processor = SoundProcessor(ECHO_ONLY, EchoMeter(clock))
    sent = run(processor, clock, speaker, microphone)
    converged = slice(2 * SAMPLE_RATE, None)
    erle = power_db(microphone[converged]) - power_db(sent[converged])
    assert erle >= 40
    stats = processor.stats
    assert stats.frames_processed == stats.reference_frames == SECONDS * 100
    assert stats.errors == 0 and stats.cost_us_per_frame > 0
    # the unit's own estimates agree with the room: the delay to the millisecond
    assert stats.echo.delay_ms == pytest.approx(40, abs=1)
    assert stats.echo.erle_db >= 30


def test_without_the_canceller_the_echo_goes_out_as_it_came(clock):
    speaker = far_end(SECONDS)
    microphone = room(speaker, delay_ms=40, attenuation_db=9)
    filter_only = ProcessingSettings(echo_cancellation=False, noise_suppression=False, auto_gain=False)
    processor = SoundProcessor(filter_only, EchoMeter(clock))
    sent = run(processor, clock, speaker, microphone)
    converged = slice(2 * SAMPLE_RATE, None)
    assert abs(power_db(microphone[converged]) - power_db(sent[converged])) < 6
    assert processor.stats.reference_frames == 0  # no reference is handed to a canceller that is off
    assert processor.stats.echo.erle_db < 6


def test_a_block_is_processed_in_the_callback_that_captured_it(clock):
    """Two 10 ms frames a block, no block held back: what comes out has the block's length at once."""
    processor = SoundProcessor(ProcessingSettings(), EchoMeter(clock))
    block = far_end(0.02)
    processor.render(np.zeros(FRAME_SAMPLES, np.int16), 0.01)
    out = processor.capture(block, 0.01)
    assert out.shape == block.shape and out.dtype == np.int16 and out is not block
    assert processor.stats.delay_hint_ms == 20  # the two device latencies given


def test_echo_figures_wait_for_the_far_end(clock):
    meter = EchoMeter(clock)
    silence = np.zeros(FRAME_SAMPLES, np.int16)
    for block in range(150):
        clock.now = block * FRAME_SAMPLES / SAMPLE_RATE
        meter.render(silence)
        meter.capture(far_end(0.02, seed=block), far_end(0.02, seed=block))  # a near voice, no far end
    figures = meter.figures()
    assert figures.erle_db is None  # the speaker played nothing: no echo to cancel
    assert figures.delay_ms is None


def test_no_processing_is_no_processor():
    assert not NO_PROCESSING.any and ProcessingSettings().any
