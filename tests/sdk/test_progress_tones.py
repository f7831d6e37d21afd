"""The tone settings of ``CallAudio`` and the choices of ``ProgressTones``, without calls."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from intercom.audio.devices import UnknownDevice
from intercom.media.tones import EU, PLANS, UK, Tone, WavError
from intercom.sdk import CallAudio
from intercom.sdk.progress_tones import ProgressTones, failure_tone, whole_rounds

from ..listening import RATE, write_wav


@pytest.mark.parametrize(
    ("status", "tone"),
    [
        (486, "busy"),  # Busy Here
        (600, "busy"),  # Busy Everywhere
        (603, "busy"),  # Decline
        (480, "congestion"),  # Temporarily Unavailable: no answer, nobody registered, a callee's reject()
        (403, "congestion"),
        (404, "congestion"),
        (408, "congestion"),
        (500, "congestion"),
        (503, "congestion"),
        (604, "congestion"),  # Does Not Exist Anywhere
        (None, "congestion"),  # no response at all: the connection to the hub was lost
    ],
)
def test_busy_only_for_a_far_end_that_is_engaged_or_declines(status: int | None, tone: str) -> None:
    assert failure_tone(UK, status) is getattr(UK, tone)


@pytest.mark.parametrize(
    ("tone", "rounds"),
    [
        (EU.busy, 3),  # 1 s cadence
        (EU.congestion, 6),  # 0.5 s
        (UK.congestion, 2),  # 1.5 s
        (Tone((425,), ((0.7, 0.7),)), 3),  # 1.4 s: 2 rounds would stop short of 3 s
        (Tone((425,), ((1.0, 4.0),)), 1),
    ],
)
def test_a_failure_tone_plays_whole_rounds_for_at_least_3_s_then_stops(tone: Tone, rounds: int) -> None:
    once = whole_rounds(tone, 3.0)
    assert once.cadence == tone.cadence * rounds and not once.repeat
    assert (once.frequencies, once.warble_hz) == (tone.frequencies, tone.warble_hz)


def test_calls_play_the_european_tones_unless_told_otherwise() -> None:
    audio = CallAudio()
    assert (audio.tones, audio.ring) == (EU, None)


def test_the_sound_card_takes_its_region_and_may_turn_tones_off() -> None:
    assert CallAudio.sound_card().tones is PLANS["eu"]
    assert CallAudio.sound_card(region="US").tones is PLANS["us"]
    assert CallAudio.sound_card(region="uk", tones=False).tones is None
    with pytest.raises(ValueError, match=r"no tone plan for region 'xx': known regions are eu, nl, uk, us"):
        CallAudio.sound_card(region="xx", tones=False)  # a mistake in settings, even with tones off


def test_a_ring_file_is_read_when_the_sound_card_is_configured(tmp_path: Path) -> None:
    write_wav(tmp_path / "ring.wav", 0.5)
    audio = CallAudio.sound_card(ring_file=tmp_path / "ring.wav")
    assert audio.ring is not None and len(audio.ring.pcm) == 0.5 * RATE


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, r"cannot play .*/ring\.wav: no such file"), (b"RIFF, but not really" * 10, r"cannot play .*/ring\.wav")],
    ids=["missing", "not audio"],
)
def test_a_ring_file_that_cannot_play_is_refused_at_configuration(tmp_path: Path, content, message) -> None:
    if content is not None:
        (tmp_path / "ring.wav").write_bytes(content)
    with pytest.raises(WavError, match=message):
        CallAudio.sound_card(ring_file=tmp_path / "ring.wav")


def test_a_speaker_that_cannot_play_a_tone_does_not_stop_the_call(caplog) -> None:
    def unplugged(track):
        raise UnknownDevice("no audiooutput device with id 'usb'")

    with caplog.at_level(logging.WARNING):
        assert ProgressTones().ringback(CallAudio(sink=unplugged)) is None
    assert "cannot play a tone: no audiooutput device with id 'usb'" in caplog.text
