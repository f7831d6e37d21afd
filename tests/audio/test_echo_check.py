"""The echo test's analysis (intercom/audio/echo_check.py) on synthetic takes: the test signal played
through a room of bench/room_sound.py, with street noise, clipped to int16 as a card would."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pytest

from bench.room_sound import room_response, street_at
from intercom.audio import echo_check
from intercom.audio.echo_check import (
    BLOCK,
    RATE,
    EchoFigures,
    Take,
    cancelled,
    figure_lines,
    measure,
    signal_span,
    speech_like_signal,
    verdict,
)
from intercom.audio.processing import NO_PROCESSING, SoundProcessor
from intercom.audio.samples import apply_gain, dbfs, peak_dbfs

from .jackkit import OverlapAdd

MIC_FIRST_S = -0.06  # the microphone's stream opens first: its blocks are handed back 3 blocks "early"


def synthetic_take(
    echo_db: float = -9.0,
    delay_ms: float = 40.0,
    speaker_gain: float = 1.0,
    microphone_gain: float = 1.0,
    noise_dbfs: float | None = -65.0,
    lead_s: float = MIC_FIRST_S,
    polarity: float = 1.0,
) -> Take:
    """The test signal at ``speaker_gain``, through a room (``delay_ms``, ``echo_db``, 250 ms of
    reverb) with street noise, recorded at ``microphone_gain``; the microphone's blocks handed back
    ``lead_s`` after the speaker's (so the delay the take shows is the room's)."""
    signal = speech_like_signal()
    played = apply_gain(np.concatenate([signal, np.zeros(-len(signal) % BLOCK, np.int16)]), speaker_gain)
    response = polarity * room_response(delay_ms, np.random.default_rng(11), echo_db=echo_db)
    convolver = OverlapAdd(response, BLOCK)
    echo = np.concatenate([convolver.push(block / 32768.0) for block in played.reshape(-1, BLOCK)])
    lead = round(lead_s * RATE)
    # the world on the microphone's timeline: recorded[j] is what sounded at played position j + lead
    world = np.concatenate([np.zeros(max(0, -lead)), echo[max(0, lead) :]])
    world = world[: len(world) - len(world) % BLOCK]
    if noise_dbfs is not None:
        world = world + street_at(len(world), seed=12, dbfs=noise_dbfs)
    recorded = np.clip(np.rint(world * 32768 * microphone_gain), -32768, 32767).astype(np.int16)
    return Take(played, recorded, lead_s, speaker_latency_s=0.04, microphone_latency_s=0.02)


def suggested(line: str, setting: str) -> float:
    found = re.search(rf"INTERCOM_AUDIO_{setting} to ([0-9.]+)", line)
    assert found, f"{setting} is not named with a value in {line!r}"
    return float(found[1])


def test_the_test_signal_is_quiet_then_speech_like_then_quiet():
    signal = speech_like_signal()
    assert len(signal) / RATE == pytest.approx(echo_check.QUIET_S + echo_check.SIGNAL_S + echo_check.TAIL_S)
    assert len(signal) / RATE < 10  # the whole test stays under ~10 s
    span = signal_span(signal)
    assert not signal[: span.start].any() and not signal[span.stop :].any()
    assert peak_dbfs(signal) == pytest.approx(echo_check.SIGNAL_PEAK_DBFS, abs=0.01)
    assert -20 < dbfs(signal[span]) < -12  # a voice's crest: ~13 dB under its peaks
    assert np.array_equal(speech_like_signal(), signal)  # the same every time
    spectrum = np.abs(np.fft.rfft(signal[span].astype(np.float64))) ** 2
    frequencies = np.fft.rfftfreq(len(signal[span]), 1 / RATE)
    low, high = echo_check.SIGNAL_BAND_HZ
    assert spectrum[(frequencies >= low) & (frequencies <= high)].sum() > 0.99 * spectrum.sum()
    # syllables: the level moves like speech's, with gaps between them
    frames = signal[span][: len(signal[span]) // 480 * 480].reshape(-1, 480).astype(np.float64)
    levels = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    assert np.mean(levels < levels.max() - 30) > 0.1 and np.mean(levels > levels.max() - 10) > 0.3


def test_a_good_path_has_its_delay_echo_level_and_a_converged_canceller():
    take = synthetic_take(echo_db=-9.0, delay_ms=40.0)
    figures = measure(take)
    assert figures.dropouts == 0 and measure(replace(take, dropouts=2)).dropouts == 2
    assert figures.heard and figures.delay_ms == pytest.approx(40.0, abs=0.1)
    span = signal_span(take.played)
    lag = round((40.0 - MIC_FIRST_S * 1000) * RATE / 1000)
    noise = synthetic_take(echo_db=-200.0).recorded  # the same street alone
    echo = (
        take.recorded[span.start + lag : span.stop + lag].astype(np.float64) - noise[span.start + lag : span.stop + lag]
    )
    true_echo_dbfs = 10 * math.log10(np.mean((echo / 32768) ** 2))
    assert figures.echo_dbfs == pytest.approx(true_echo_dbfs, abs=0.3)
    assert figures.echo_return_loss_db == pytest.approx(dbfs(take.played[span]) - true_echo_dbfs, abs=0.3)
    assert figures.noise_floor_dbfs == pytest.approx(dbfs(noise[take.quiet]), abs=0.05)
    assert figures.clipped_samples == 0 and not figures.clips
    assert figures.erle_db is not None and figures.erle_db >= 25
    result = verdict(figures, speaker_gain=1.0, microphone_gain=1.0)
    assert result.good and result.lines[0].startswith("good: the canceller")


def test_with_the_canceller_off_the_same_path_shows_no_enhancement():
    figures = measure(synthetic_take(), make_processor=lambda: SoundProcessor(NO_PROCESSING))
    assert figures.heard and figures.erle_db == pytest.approx(0.0, abs=0.5)
    result = verdict(figures, speaker_gain=1.0, microphone_gain=1.0)
    assert not result.good and result.lines[0].startswith("the canceller reaches only 0 dB")
    assert suggested(result.lines[0], "SPEAKER_GAIN") == 0.5


def test_a_clipping_microphone_is_told_the_speaker_gain_that_stops_it():
    figures = measure(synthetic_take(echo_db=4.0))
    assert figures.clips and figures.microphone_peak_dbfs == pytest.approx(0.0, abs=0.01)
    result = verdict(figures, speaker_gain=1.0, microphone_gain=1.0)
    assert not result.good and result.lines[0].startswith("the microphone clips at this speaker gain")
    gain = suggested(result.lines[0], "SPEAKER_GAIN")
    assert 0.25 <= gain <= 0.35 and "MICROPHONE_GAIN" not in result.lines[0]  # it is 1: not to be lowered
    again = measure(synthetic_take(echo_db=4.0, speaker_gain=gain))
    assert not again.clips and again.microphone_peak_dbfs == pytest.approx(echo_check.TARGET_PEAK_DBFS, abs=1.5)
    # what is left is the room: an echo this loud is louder than the speaker signal, whatever the gain
    [left] = verdict(again, speaker_gain=gain, microphone_gain=1.0).lines
    assert left.startswith("the echo comes back louder than the speaker signal")


@pytest.mark.parametrize("louder_db", [6.0, 10.0, 14.0])
def test_a_clipped_peak_is_estimated_from_the_echos_median(louder_db):
    unclipped = measure(synthetic_take(echo_db=-4.0))
    assert not unclipped.clips and unclipped.echo_peak_dbfs is not None
    clipped = measure(synthetic_take(echo_db=-4.0 + louder_db))  # the same echo, louder
    assert clipped.clips and clipped.microphone_peak_dbfs == pytest.approx(0.0, abs=0.01)
    assert clipped.echo_peak_dbfs == pytest.approx(unclipped.echo_peak_dbfs + louder_db, abs=1.0)


def test_an_echo_louder_than_the_speaker_signal_is_told_the_microphone_gain():
    # a microphone gain of 4 on a close microphone: loud, yet the speaker gain keeps it off full scale
    figures = measure(synthetic_take(echo_db=0.0, speaker_gain=0.15, microphone_gain=4.0))
    assert not figures.clips and figures.echo_return_loss_db is not None and figures.echo_return_loss_db < -5
    result = verdict(figures, speaker_gain=0.15, microphone_gain=4.0)
    assert not result.good
    [line] = result.lines
    assert line.startswith("the echo comes back louder than the speaker signal")
    assert "move the microphone away from the speaker" in line
    gain = suggested(line, "MICROPHONE_GAIN")
    again = measure(synthetic_take(echo_db=0.0, speaker_gain=0.15, microphone_gain=gain))
    assert again.echo_return_loss_db == pytest.approx(echo_check.TARGET_ERL_DB, abs=1.0)


def test_no_echo_is_told_to_check_the_speaker_and_silence_the_microphone():
    figures = measure(synthetic_take(echo_db=-200.0))
    assert not figures.heard and figures.delay_ms is None and figures.erle_db is None
    result = verdict(figures, speaker_gain=1.0, microphone_gain=1.0)
    assert not result.good and result.lines == (
        "no echo heard: is the speaker connected? Check its cable and amplifier, and that INTERCOM_AUDIO_SPEAKER "
        "names the card it is on (`intercom devices`)",
    )
    silent = measure(synthetic_take(echo_db=-200.0, noise_dbfs=None))
    assert silent.noise_floor_dbfs == -math.inf
    assert "the microphone gives digital silence" in verdict(silent, 1.0, 1.0).lines[0]
    assert "INTERCOM_AUDIO_SPEAKER_GAIN is 0" in verdict(silent, 0.0, 1.0).lines[0]


def test_a_speaker_wired_the_other_way_round_is_heard_all_the_same():
    figures = measure(synthetic_take(polarity=-1.0))
    assert figures.heard and figures.delay_ms == pytest.approx(40.0, abs=0.1)
    assert figures.erle_db is not None and figures.erle_db > 25


def test_an_echo_under_a_noisy_street_is_not_heard_and_the_noise_is_called_out():
    figures = measure(synthetic_take(echo_db=-30.0, noise_dbfs=-35.0))
    assert not figures.heard and figures.noise_floor_dbfs > echo_check.NOISY_DBFS
    lines = verdict(figures, 1.0, 1.0).lines
    assert lines[0] == "no echo heard over the noise" and lines[1].startswith("noise floor -3")


def test_an_echo_far_down_is_no_echo():
    figures = measure(synthetic_take(echo_db=-50.0, noise_dbfs=-90.0))
    assert figures.heard and figures.echo_return_loss_db is not None
    assert figures.echo_return_loss_db > echo_check.FAINT_ERL_DB
    assert verdict(figures, 1.0, 1.0).lines[0].startswith("no echo heard (it comes back")


def test_a_noisy_microphone_is_called_out():
    figures = measure(synthetic_take(noise_dbfs=-35.0))
    assert figures.noise_floor_dbfs == pytest.approx(-35.0, abs=2.0) and figures.heard  # the street swells
    result = verdict(figures, 1.0, 1.0)
    assert not result.good and result.lines == (
        f"noise floor {figures.noise_floor_dbfs:.0f} dBFS before anything played, a visitor's voice has to "
        "rise above it: test again in a quiet moment; if it stays, it is electrical: hum from a ground loop or "
        "the USB power, or hiss from a capture gain set too high (alsamixer)",
    )


def test_the_canceller_is_credited_only_down_to_the_noise_floor():
    # a quiet echo over a quiet street: what the canceller leaves is under the noise
    figures = measure(synthetic_take(echo_db=-25.0, noise_dbfs=-60.0))
    clean = measure(synthetic_take(echo_db=-25.0, noise_dbfs=None))
    assert not clean.erle_below_noise and clean.erle_db is not None and clean.erle_db > 50
    assert figures.erle_below_noise and figures.erle_db is not None and figures.echo_dbfs is not None
    # the echo's height over the noise (the street swells: its level in the quiet stretch is not the window's)
    assert figures.erle_db == pytest.approx(figures.echo_dbfs - figures.noise_floor_dbfs, abs=6.0)
    assert figures.erle_db < clean.erle_db - 20
    assert verdict(figures, 1.0, 1.0).lines == (
        f"good: the canceller takes the echo below the noise floor (at least {figures.erle_db:.0f} dB)",
    )
    assert figure_lines(figures)[-1].endswith("after 3 s of signal, at least: what is left is below the noise floor")


@pytest.mark.parametrize(("delay_ms", "lead_s"), [(150.0, -0.037), (5.0, 0.0), (300.0, 0.013)])
def test_the_delay_is_found_whatever_the_streams_offset(delay_ms, lead_s):
    figures = measure(synthetic_take(delay_ms=delay_ms, lead_s=lead_s))
    assert figures.delay_ms == pytest.approx(delay_ms, abs=0.1)
    assert figures.erle_db is not None and figures.erle_db > 20


class OrderRecorder:
    """Stands in for a SoundProcessor: notes the order in which blocks come."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def render(self, block: np.ndarray, latency: float) -> None:
        self.calls.append("render")

    def capture(self, block: np.ndarray, latency: float) -> np.ndarray:
        self.calls.append("capture")
        return block


@pytest.mark.parametrize(
    ("lead_s", "rendered_before_first_capture"),
    [
        (-0.06, 0),  # three blocks before the speaker's first: nothing to render yet
        (-0.0011, 0),
        (-0.0009, 1),  # within a millisecond of the speaker's first: the same cycle, the speaker's first
        (0.0, 1),
        (0.0188, 1),
        (0.0199, 2),
    ],
)
def test_the_canceller_gets_every_speaker_block_handed_over_before_the_microphones(
    lead_s, rendered_before_first_capture
):
    take = synthetic_take(lead_s=lead_s)
    recorder = OrderRecorder()
    cancelled(take, lambda: recorder)  # type: ignore[arg-type, return-value]
    assert recorder.calls.index("capture") == rendered_before_first_capture
    # then one speaker block per microphone block, each before the microphone's
    steady = recorder.calls[recorder.calls.index("render", 10) :][:40]
    assert steady == ["render", "capture"] * 20 or steady == ["capture", "render"] * 20


def test_bad_takes_are_refused_with_the_reason():
    good = synthetic_take()
    with pytest.raises(ValueError, match="played must be mono int16 in whole 960-sample blocks"):
        Take(good.played.astype(np.float32), good.recorded, MIC_FIRST_S)
    with pytest.raises(ValueError, match="recorded must be mono int16"):
        Take(good.played, good.recorded[:-1], MIC_FIRST_S)
    with pytest.raises(ValueError, match="less than the test signal"):
        Take(good.played[: 100 * BLOCK], good.recorded, MIC_FIRST_S)
    with pytest.raises(ValueError, match="before the test signal's echo could have come back"):
        Take(good.played, good.recorded[: 300 * BLOCK], MIC_FIRST_S)
    with pytest.raises(ValueError, match=r"the microphone started 0\.80 s after the speaker"):
        Take(good.played, good.recorded, 0.8)


def test_the_figures_read_as_an_installer_needs_them():
    figures = EchoFigures(
        noise_floor_dbfs=-62.04,
        played_dbfs=-16.0,
        microphone_peak_dbfs=-1.0,
        clipped_samples=0,
        heard=True,
        echo_dbfs=-12.0,
        delay_ms=61.2,
        echo_return_loss_db=-4.0,
        echo_peak_dbfs=-1.0,
        erle_db=31.0,
    )
    assert figure_lines(figures) == [
        "noise floor        -62.0 dBFS  before the test sound",
        "speaker signal     -16.0 dBFS",
        "microphone peak     -1.0 dBFS  0 samples clipped",
        "echo               -12.0 dBFS  4.0 dB above the speaker signal (echo return loss)",
        "delay                 61 ms    speaker to microphone, the device buffers included",
        "canceller (ERLE)    31.0 dB    after 3 s of signal",
    ]
    assert verdict(figures, speaker_gain=2.0, microphone_gain=3.0).lines == (
        "the echo comes back louder than the speaker signal (4.0 dB above it): move the microphone away from the "
        "speaker or turn it away, or lower INTERCOM_AUDIO_MICROPHONE_GAIN to 0.94 (now 3)",
    )
    clipping = EchoFigures(**{**figures.__dict__, "clipped_samples": 500, "echo_peak_dbfs": 6.0})
    assert verdict(clipping, speaker_gain=2.0, microphone_gain=3.0).lines[0] == (
        "the microphone clips at this speaker gain (500 samples at full scale): lower INTERCOM_AUDIO_SPEAKER_GAIN "
        "to 0.5 (now 2), or INTERCOM_AUDIO_MICROPHONE_GAIN to 0.75 (now 3)"
    )
    good = EchoFigures(**{**figures.__dict__, "echo_return_loss_db": 10.0})
    assert verdict(good, speaker_gain=1.0, microphone_gain=1.0).lines == ("good: the canceller reaches 31 dB",)
    assert verdict(good, speaker_gain=1.0, microphone_gain=1.0, echo_cancellation=False).lines == (
        "INTERCOM_AUDIO_ECHO_CANCELLATION is false: calls send this echo as it is; set it to true",
    )
    busy = EchoFigures(**{**good.__dict__, "dropouts": 3})
    assert verdict(busy, 1.0, 1.0).lines == (
        "the sound card lost 3 blocks during the test (the machine was busy), so these figures are off: stop "
        "what else runs (sudo systemctl stop intercom) and test again",
    )
    tiny = EchoFigures(**{**clipping.__dict__, "echo_peak_dbfs": 60.0})
    assert "INTERCOM_AUDIO_SPEAKER_GAIN to 0.01 (now 2)" in verdict(tiny, 2.0, 1.0).lines[0]  # never 0
    unheard = EchoFigures(-70.0, -16.0, -50.0, 0, heard=False)
    assert figure_lines(unheard)[-1] == "echo              none heard"
