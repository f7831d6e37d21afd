"""Call-progress tones: each region's frequencies and cadences as specified, and the tracks that play them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from intercom.media.tones import (
    DEFAULT_AMPLITUDE,
    PLANS,
    Tone,
    ToneTrack,
    WavError,
    WavTrack,
    plan_for,
    tone_pcm,
)
from intercom.media.tracks import FULL_SCALE

from ..listening import RATE, assert_paced_20_ms_frames, envelope_runs, pcm_of, peaks, read, write_wav

# The specification, written out again here rather than read from the module: (frequencies, cadence).
EU = {
    "ringback": ((425,), [(1.0, 4.0)]),
    "busy": ((425,), [(0.5, 0.5)]),
    "congestion": ((425,), [(0.25, 0.25)]),
}
EXPECTED = {
    "eu": EU,
    "nl": EU,
    "us": {
        "ringback": ((440, 480), [(2.0, 4.0)]),
        "busy": ((480, 620), [(0.5, 0.5)]),
        "congestion": ((480, 620), [(0.25, 0.25)]),
    },
    "uk": {
        "ringback": ((400, 450), [(0.4, 0.2), (0.4, 2.0)]),
        "busy": ((400,), [(0.375, 0.375)]),
        "congestion": ((400,), [(0.4, 0.35), (0.225, 0.525)]),
    },
}
DTMF_ROWS = {"123A": 697, "456B": 770, "789C": 852, "*0#D": 941}
DTMF_COLUMNS = {"147*": 1209, "2580": 1336, "369#": 1477, "ABCD": 1633}


def expected_runs(cadence: list[tuple[float, float]], rounds: int) -> list[tuple[bool, float]]:
    return [run for on, off in cadence * rounds for run in ((True, on), (False, off))]


def assert_runs(measured: list[tuple[bool, float]], expected: list[tuple[bool, float]]) -> None:
    assert [sounding for sounding, _ in measured] == [sounding for sounding, _ in expected], measured
    for (_, seconds), (_, wanted) in zip(measured, expected, strict=True):
        assert seconds == pytest.approx(wanted, abs=0.002), (measured, expected)


def first_burst(pcm: np.ndarray, on_seconds: float, rate: int = RATE) -> np.ndarray:
    """The steady middle of the burst at the start of ``pcm``: its 10 ms edges left out."""
    return pcm[round(0.01 * rate) : round((on_seconds - 0.01) * rate)]


@pytest.mark.parametrize("name", ["ringback", "busy", "congestion"])
@pytest.mark.parametrize("region", sorted(EXPECTED))
def test_each_region_sounds_its_tones_in_its_cadence(region: str, name: str) -> None:
    frequencies, cadence = EXPECTED[region][name]
    tone = getattr(plan_for(region), name)
    pcm = tone_pcm(tone, 2 * tone.period)

    assert_runs(envelope_runs(pcm), expected_runs(cadence, rounds=2))
    assert peaks(first_burst(pcm, cadence[0][0]), len(frequencies)) == pytest.approx(frequencies, abs=1)


def test_the_plans_are_the_specified_regions_and_nl_is_eu() -> None:
    assert sorted(PLANS) == ["eu", "nl", "uk", "us"]
    eu, nl = plan_for("eu"), plan_for("nl")
    assert (nl.ringback, nl.busy, nl.congestion, nl.ring) == (eu.ringback, eu.busy, eu.congestion, eu.ring)
    assert plan_for(" UK ") is PLANS["uk"]


def test_an_unknown_region_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'xx'.*known regions are eu, nl, uk, us"):
        plan_for("xx")


@pytest.mark.parametrize("key", list("0123456789*#ABCD"))
def test_dtmf_feedback_is_the_q23_pair_for_100_ms(key: str) -> None:
    row = next(hz for keys, hz in DTMF_ROWS.items() if key in keys)
    column = next(hz for keys, hz in DTMF_COLUMNS.items() if key in keys)
    pcm = tone_pcm(plan_for("us").digit(key), 0.3)

    assert_runs(envelope_runs(pcm), [(True, 0.1), (False, 0.2)])
    assert peaks(first_burst(pcm, 0.1), 2) == pytest.approx([row, column], abs=1)


def test_dtmf_keys_are_case_blind_and_others_are_refused() -> None:
    plan = plan_for("eu")
    assert plan.digit("a") == plan.digit("A")
    with pytest.raises(ValueError, match=r"no DTMF tone for 'x': keys are 123A456B789C\*0#D"):
        plan.digit("x")


def test_the_ring_is_a_two_tone_trill_in_a_double_ring_cadence() -> None:
    ring = plan_for("eu").ring
    pcm = tone_pcm(ring, 2 * ring.period)

    assert_runs(envelope_runs(pcm), expected_runs([(0.4, 0.2), (0.4, 2.0)], rounds=2))
    assert peaks(first_burst(pcm, 0.4), 2) == pytest.approx([880, 1120], abs=1)
    # The two take turns (25 ms each at 20 Hz) rather than sounding together.
    turns = [peaks(pcm[start + 240 : start + 960], 1)[0] for start in range(0, 7200, 1200)]
    assert turns == pytest.approx([880, 1120] * 3, abs=70)


def all_tones() -> list[Tone]:
    tones = {tone for plan in PLANS.values() for tone in (plan.ringback, plan.busy, plan.congestion, plan.ring)}
    odd = [Tone((1000,), [(0.1, 0.0)]), Tone((701, 1049), [(0.3, 0.1)], warble_hz=17)]  # turns end mid-cycle
    return [*sorted(tones, key=repr), PLANS["eu"].digit("1"), *odd]


@pytest.mark.parametrize("tone", all_tones(), ids=repr)
def test_edges_are_faded_so_no_step_is_steeper_than_the_tone_itself(tone: Tone) -> None:
    pcm = tone_pcm(tone, min(2 * tone.period, 3.0)).astype(np.int64)
    steepest_sine = 2 * np.pi * max(tone.frequencies) * DEFAULT_AMPLITUDE * FULL_SCALE / RATE
    assert np.abs(np.diff(pcm)).max() <= steepest_sine + 2
    assert abs(pcm[0]) <= 1 and np.abs(pcm).max() <= DEFAULT_AMPLITUDE * FULL_SCALE + 1


def test_a_continuous_tone_has_no_gap_where_its_cadence_comes_round() -> None:
    pcm = tone_pcm(Tone((1000,), [(0.1, 0.0)]), 0.35)
    assert envelope_runs(pcm) == [(True, pytest.approx(0.35))]


def test_tone_pcm_renders_at_any_rate_and_level() -> None:
    pcm = tone_pcm(plan_for("eu").busy, 2.0, samplerate=8000, amplitude=0.5)
    assert (len(pcm), pcm.dtype) == (16000, np.int16)
    assert np.abs(pcm).max() == pytest.approx(0.5 * FULL_SCALE, abs=1)
    assert_runs(envelope_runs(pcm, 8000), expected_runs([(0.5, 0.5)], rounds=2))
    assert peaks(first_burst(pcm, 0.5, 8000), 1, 8000) == pytest.approx([425], abs=1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Tone((), [(1.0, 1.0)]), "positive frequencies"),
        (lambda: Tone((425,), []), "at least one"),
        (lambda: Tone((425,), [(0.0, 1.0)]), "must be positive"),
        (lambda: Tone((425,), [(1.0, -1.0)]), "negative"),
        (lambda: tone_pcm(Tone((5000,), [(1.0, 0.0)]), 1.0, samplerate=8000), "cannot be played at 8000"),
        (lambda: tone_pcm(Tone((425,), [(1.0, 0.0)]), 1.0, amplitude=1.5), "fraction of full scale"),
        (lambda: ToneTrack(Tone((425,), [(1.0, 0.0)]), amplitude=0), "fraction of full scale"),
    ],
)
def test_impossible_tones_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


async def test_tone_track_plays_the_cadence_in_paced_20_ms_frames_looping() -> None:
    tone = Tone((1000,), [(0.04, 0.02)])
    track = ToneTrack(tone)
    try:
        frames, elapsed = await read(track, 8)
    finally:
        track.stop()

    assert_paced_20_ms_frames(frames, elapsed)
    pcm = pcm_of(frames)
    assert np.array_equal(pcm, tone_pcm(tone, 0.16))
    assert_runs(envelope_runs(pcm), expected_runs([(0.04, 0.02)], rounds=3)[:-1])


async def test_a_dtmf_track_plays_its_digit_once_then_silence() -> None:
    tone = plan_for("eu").digit("5")
    track = ToneTrack(tone)
    try:
        frames, _ = await read(track, 7)
    finally:
        track.stop()

    pcm = pcm_of(frames)
    assert np.array_equal(pcm, tone_pcm(tone, 0.14))
    assert not pcm[round(0.1 * RATE) :].any()


async def test_wav_track_loops_a_16_khz_stereo_file_as_48_khz_mono(tmp_path: Path) -> None:
    path = tmp_path / "ring.wav"
    write_wav(path, 0.1)
    track = WavTrack(path)
    try:
        frames, elapsed = await read(track, 8)
    finally:
        track.stop()

    assert track.duration == pytest.approx(0.1, abs=0.001)
    assert_paced_20_ms_frames(frames, elapsed)
    pcm = pcm_of(frames)
    assert peaks(pcm[:4800], 1) == pytest.approx([1000], abs=1)
    assert np.abs(pcm).max() == pytest.approx(0.5 * FULL_SCALE, rel=0.05)
    looped = len(track.pcm)
    assert np.array_equal(pcm[looped:], pcm[: len(pcm) - looped])


def test_a_missing_wav_is_refused_at_construction(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.wav"
    with pytest.raises(WavError, match=r"nowhere\.wav: no such file"):
        WavTrack(missing)


def test_a_file_that_is_not_audio_is_refused_at_construction(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not a RIFF file at all" * 20)
    with pytest.raises(WavError, match=r"cannot play .*garbage\.wav"):
        WavTrack(garbage)


def test_an_empty_or_overlong_wav_is_refused(tmp_path: Path) -> None:
    empty, long = tmp_path / "empty.wav", tmp_path / "long.wav"
    write_wav(empty, 0.0)
    write_wav(long, 0.5)
    with pytest.raises(WavError, match="no samples"):
        WavTrack(empty)
    with pytest.raises(WavError, match=r"longer than 0\.2 s"):
        WavTrack(long, max_seconds=0.2)
