"""``say``, ``play`` and ``pause`` on real calls: the door calls, the hub answers and talks."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from aiortc.mediastreams import AudioStreamTrack

from intercom.hub.callflows import SayOptions
from intercom.media import speak
from intercom.sdk import CallStatus

from ..listening import write_mp3, write_wav
from ..units import STEP
from .audio import dominant_hz, likeness, loudness, sound_span, sounding
from .flows import call_log, door, heard, store, until_over
from .receiver import receiver

SENTENCE = "Nobody is home, leave a message"


async def reference(hub, payload: str, language: str = "en-GB", voice: str = "female") -> np.ndarray:
    options = SayOptions(payload=payload, language=language, voice=voice)
    async with asyncio.timeout(STEP):
        return await speak(payload, options.espeak_voice, voice, hub.running.config.data_dir / "cache")


@pytest.mark.parametrize(
    ("language", "voice", "repeat"), [("en-GB", "female", 1), ("nl-NL", "male", 1), ("en-US", "female", 2)]
)
async def test_the_caller_hears_the_sentence_spoken(hub, make_unit, language, voice, repeat):
    options = {"payload": SENTENCE, "language": language, "voice": voice, "repeat": repeat}
    await store(hub, [{"id": "greet", "action": "say", "options": options}, {"id": "bye", "action": "hangup"}])
    unit = await door(make_unit, AudioStreamTrack)
    call = unit.start_call()
    assert await until_over(unit) is CallStatus.ENDED
    assert CallStatus.RINGING not in unit.events.of("call.status")  # answered by the hub, at once
    spoken = await reference(hub, SENTENCE, language, voice)
    audio = heard(call)
    gap = np.zeros(24000)  # the half second between repeats
    expected = sound_span(np.concatenate([spoken, *([gap, spoken] * (repeat - 1))]))
    assert sound_span(audio) == pytest.approx(expected, abs=0.3)
    assert loudness(audio) > 0.3 * loudness(spoken)  # spoken aloud, not a whisper of codec noise
    assert likeness(audio, spoken) > 0.8
    other = await reference(hub, SENTENCE, language, "male" if voice == "female" else "female")
    assert likeness(audio, spoken) > likeness(audio, other)  # the voice asked for, not the other one
    record, legs, _ = await call_log(hub)
    assert (record.status, record.source) == ("ended", "client:door")
    assert [(leg.direction, leg.status) for leg in legs] == [("incoming", "hangup")]
    assert legs[0].answered_at is not None


async def test_play_sends_a_wav_file_from_the_media_directory(hub, make_unit):
    media = hub.running.config.data_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    write_wav(media / "chime.wav", 1.0, rate=16000, hz=660, channels=1)  # not the call's rate: resampled
    await store(hub, [{"id": "chime", "action": "play", "options": {"media": "chime.wav"}}, {"action": "hangup"}])
    unit = await door(make_unit, AudioStreamTrack)
    call = unit.start_call()
    assert await until_over(unit) is CallStatus.ENDED
    audio = heard(call)
    assert sound_span(audio) == pytest.approx(1.0, abs=0.1)
    assert dominant_hz(sounding(audio)) == pytest.approx(660, abs=5)


async def test_play_plays_a_list_of_media_in_turn_skipping_one_it_cannot_have(hub, make_unit, caplog):
    media = hub.running.config.data_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    write_wav(media / "chime.wav", 0.8, hz=660, channels=1)
    write_wav(media / "bell.wav", 0.8, hz=440, channels=1)
    played = ["chime.wav", "nothing-here.wav", "bell.wav"]  # as MessageBird takes it: a list
    await store(hub, [{"id": "tunes", "action": "play", "options": {"media": played}}, {"action": "hangup"}])
    unit = await door(make_unit, AudioStreamTrack)
    call = unit.start_call()
    assert await until_over(unit) is CallStatus.ENDED
    audio = sounding(heard(call))
    assert len(audio) / 48000 == pytest.approx(1.6, abs=0.15)  # back to back: the missing one costs nothing
    middle = len(audio) // 2
    assert dominant_hz(audio[: middle - 4800]) == pytest.approx(660, abs=5)  # in the order given
    assert dominant_hz(audio[middle + 4800 :]) == pytest.approx(440, abs=5)
    assert any("play step tunes: nothing-here.wav skipped" in record.getMessage() for record in caplog.records)


@pytest.mark.loopback_requests
async def test_play_fetches_an_mp3_from_a_url(hub, make_unit, tmp_path):
    write_mp3(tmp_path / "bell.mp3", 1.5, hz=550)
    mp3 = (tmp_path / "bell.mp3").read_bytes()
    with receiver(lambda posted: (200, mp3)) as site:
        url = site.url("/sounds/bell.mp3")
        await store(hub, [{"action": "play", "options": {"media": url}}, {"action": "hangup"}])
        unit = await door(make_unit, AudioStreamTrack)
        call = unit.start_call()
        assert await until_over(unit) is CallStatus.ENDED
        fetched = await site.next()
    assert fetched.path == "/sounds/bell.mp3"
    audio = heard(call)
    assert sound_span(audio) == pytest.approx(1.5, abs=0.15)
    assert dominant_hz(sounding(audio)) == pytest.approx(550, abs=5)


async def test_a_missing_media_file_is_skipped_and_the_flow_goes_on(hub, make_unit):
    await store(
        hub,
        [
            {"action": "play", "options": {"media": "nothing-here.wav"}},
            {"action": "sendKeys", "options": {"keys": "7"}},
            {"action": "hangup"},
        ],
    )
    unit = await door(make_unit, AudioStreamTrack)
    unit.start_call()
    assert await until_over(unit) is CallStatus.ENDED
    assert unit.events.of("call.digits") == ["7"]


async def test_pause_keeps_the_caller_waiting_in_silence(hub, make_unit):
    await store(
        hub,
        [
            {"action": "pause", "options": {"length": 1.5}},
            {"action": "say", "options": {"payload": "Hello"}},
            {"action": "hangup"},
        ],
    )
    unit = await door(make_unit, AudioStreamTrack)
    call = unit.start_call()
    await unit.events.until(lambda: CallStatus.ACCEPTED in unit.events.of("call.status"))
    answered = time.monotonic()
    async with asyncio.timeout(STEP):
        first_sound = await call.sink.wait_for_audio(STEP)
    assert first_sound - answered == pytest.approx(1.5, abs=0.3)
    assert await until_over(unit) is CallStatus.ENDED
