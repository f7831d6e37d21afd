"""The acoustic rig itself (bench/jack_room.py, bench/room_sound.py): a room that delays, attenuates and
reverberates what a speaker port plays, adds a voice and noise, clips when told, and keeps each part."""

from __future__ import annotations

import numpy as np
import pytest

from bench import room_sound
from bench.room_sound import db, lag_by_correlation, room_response

from ..units import STEP
from .jackkit import PERIOD, RATE, OverlapAdd, Playback


def test_overlap_add_is_the_convolution_block_by_block():
    rng = np.random.default_rng(1)
    response = room_response(60, rng)
    signal = rng.standard_normal(RATE)
    convolver = OverlapAdd(response, PERIOD)
    sizes = [PERIOD, 500, PERIOD, 7] * 19  # JACK may hand a shorter block
    blocks, start = [], 0
    for size in sizes:
        blocks.append(convolver.push(signal[start : start + size]))
        start += size
    length = start + len(response) - 1  # the whole convolution, by FFT (np.convolve takes ~30 s here)
    expected = np.fft.irfft(np.fft.rfft(signal[:start], length) * np.fft.rfft(response, length), length)[:start]
    assert np.allclose(np.concatenate(blocks), expected, atol=1e-9)


def test_bad_rooms_and_signals_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="longer than the 960"):
        OverlapAdd(np.ones(10), PERIOD).push(np.zeros(PERIOD + 1))
    with pytest.raises(ValueError, match="non-empty 1-D"):
        OverlapAdd(np.zeros(0), PERIOD)
    with pytest.raises(ValueError, match="delay >= 0"):
        room_response(-1, np.random.default_rng(1))
    with pytest.raises(ValueError, match="reverb time > 0"):
        room_response(20, np.random.default_rng(1), rt60_ms=0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        Playback(np.zeros((2, 2)))


@pytest.mark.parametrize(("delay_ms", "echo_db", "rt60_ms"), [(20, -6.0, 200.0), (60, -12.0, 300.0)])
def test_a_room_response_has_its_delay_attenuation_and_tail(delay_ms, echo_db, rt60_ms):
    response = room_response(delay_ms, np.random.default_rng(7), echo_db=echo_db, rt60_ms=rt60_ms)
    delay = delay_ms * RATE // 1000
    assert not response[:delay].any() and response[delay] > 0
    assert db(np.sum(response**2)) == pytest.approx(echo_db, abs=1e-9)
    tail = response[delay + 1 :]
    first, last = (np.sum(part**2) for part in (tail[: RATE // 20], tail[-RATE // 20 :]))
    assert len(tail) == pytest.approx(1.2 * rt60_ms / 1000 * RATE, abs=1)
    # 60 dB in rt60: the last 50 ms lie (length - 50 ms) * 60 / rt60 dB under the first 50 ms
    assert db(first / last) == pytest.approx((len(tail) / RATE - 0.05) * 60 / (rt60_ms / 1000), abs=3)


def test_the_speech_and_the_street_have_their_levels():
    far, near = room_sound.far_speech(), room_sound.near_speech()
    assert room_sound.far_speech() is far  # made once per process
    assert db(np.mean(far**2)) == pytest.approx(room_sound.SPEAKER_RMS_DBFS, abs=0.01)
    assert db(np.mean(near[room_sound.active_mask(near)] ** 2)) == pytest.approx(room_sound.NEAR_RMS_DBFS, abs=0.01)
    assert len(far) > 20 * RATE and len(near) > 10 * RATE and len(far) % room_sound.FRAME == 0
    # two voices: a man's and a woman's differ in pitch, so their spectra barely correlate
    spectra = [np.abs(np.fft.rfft(voice[: 10 * RATE])) for voice in (far, near)]
    assert np.corrcoef(*spectra)[0, 1] < 0.8
    noise = room_sound.street_at(10 * RATE, seed=3)
    assert db(np.mean(noise**2)) == pytest.approx(room_sound.NEAR_RMS_DBFS - room_sound.NOISE_SNR_DB, abs=0.01)
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / RATE)
    assert spectrum[freqs < 200].sum() > spectrum[freqs > 1000].sum()  # a street rumbles


async def test_a_click_through_the_room_comes_back_at_the_delay_and_attenuation(probe, make_room):
    response = room_response(40, np.random.default_rng(3))
    room = make_room(response, keep_seconds=4.0)
    room.stand_between(probe.mouth.name, probe.ear.name)
    noise = np.random.default_rng(4).standard_normal(RATE // 2).astype(np.float32) * 0.1
    played = probe.play_signal(noise)
    await probe.wait_until(lambda: played.finished, STEP)
    quiet_from = room.position
    await room.wait_until(lambda: room.position > quiet_from + len(response) + PERIOD, STEP)
    probe.silence()
    probe.click()
    await probe.wait_until(lambda: probe.clicks and probe.position > probe.clicks[0] + RATE, STEP)

    heard, ear = room.recent(3.0), probe.recent(2.0)
    # on the room's own timeline the echo is the speaker through the response, exactly
    settled = slice(len(response), len(heard.echo))
    size = 1 << (len(heard.speaker) + len(response)).bit_length()
    expected = np.fft.irfft(np.fft.rfft(heard.speaker, size) * np.fft.rfft(response, size), size)
    assert np.allclose(heard.echo[settled], expected[settled], atol=1e-5)
    start = int(np.argmax(heard.speaker != 0))
    white = slice(start, start + len(noise) + len(response))
    assert db(np.sum(heard.echo[white] ** 2) / np.sum(heard.speaker[white] ** 2)) == pytest.approx(-9.0, abs=0.5)
    delay = 40 * RATE // 1000
    assert lag_by_correlation(heard.speaker[white], heard.echo[white], RATE // 10) == delay
    click = white.stop + int(np.argmax(heard.speaker[white.stop :] != 0))
    assert heard.speaker[click:].max() > 0.5  # the click, on its own
    assert click + delay == click + int(np.argmax(np.abs(heard.echo[click:]) > 1e-4))
    assert np.array_equal(heard.microphone, heard.echo)  # no voice, no noise, no clipping
    assert not heard.near.any() and not heard.noise.any()
    assert np.abs(ear).max() > 0.01  # and the probe's ear got what the room sent


async def test_the_room_adds_voice_and_noise_and_clips_when_told(probe, make_room):
    room = make_room(room_response(20, np.random.default_rng(5)), keep_seconds=2.0, clip_level=0.1)
    room.stand_between(probe.mouth.name, probe.ear.name)
    probe.play(440.0, amplitude=0.5)
    voice = room.play_near(0.3 * np.sin(2 * np.pi * 1000 * np.arange(RATE // 4) / RATE))
    room.play_noise(room_sound.street_at(RATE, seed=6, dbfs=-20.0))
    await room.wait_until(lambda: voice.finished and room.position > voice.started + RATE // 2, STEP)

    heard = room.components(voice.started, voice.started + RATE // 4)
    assert db(np.mean(heard.near**2)) == pytest.approx(db(0.3**2 / 2), abs=0.1)
    assert heard.noise.any() and heard.echo.any()
    total = heard.echo + heard.near + heard.noise
    assert np.abs(total).max() > 0.2  # loud enough to clip
    assert np.allclose(heard.microphone, np.clip(total, -0.1, 0.1), atol=1e-6)
    assert np.abs(heard.microphone).max() == pytest.approx(0.1, abs=1e-6)

    room.quiet()
    room.clip_level = None
    quiet_from = room.position + PERIOD
    await room.wait_until(lambda: room.position > quiet_from + RATE // 4, STEP)
    after = room.components(quiet_from, quiet_from + RATE // 4)
    assert not after.near.any() and not after.noise.any()
    assert np.abs(after.microphone).max() > 0.1 and np.array_equal(after.microphone, after.echo)


async def test_the_room_refuses_a_clipping_level_that_is_not_positive(jack_server, make_room):
    with pytest.raises(ValueError, match="above 0"):
        make_room(room_response(20, np.random.default_rng(5)), clip_level=0.0)
