"""``record`` on real calls: a key, silence or the length limit ends it, and the WAV holds what the
caller sent; ``onFinish`` receives it."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import io
import wave

import pytest
from aiortc.mediastreams import AudioStreamTrack

from intercom.media import ToneSource
from intercom.sdk import CallStatus

from ..units import STEP
from .audio import ToneThenSilence, dominant_hz, sound_span
from .flows import call_log, door, read_wav, store, until_answered, until_over
from .receiver import receiver

VISITOR_HZ = 440.0


async def record_flow(hub, **options) -> None:
    await store(hub, [{"id": "message", "action": "record", "options": options}, {"id": "bye", "action": "hangup"}])


@pytest.mark.parametrize("key", ["#", "*", "any"])
async def test_the_finish_key_ends_the_recording_and_the_wav_holds_the_voice(hub, make_unit, key):
    await record_flow(hub, maxLength=30, timeout=0, finishOnKey=key)
    unit = await door(make_unit, lambda: ToneSource(VISITOR_HZ))
    call = unit.start_call()
    await until_answered(unit)
    async with asyncio.timeout(STEP):
        await asyncio.sleep(1.5)  # the visitor speaks for a while: the length under test
    pressed = "5" if key == "any" else key
    if key != "any":
        call.send_digits("1")  # not the finish key: the recording goes on
    call.send_digits(pressed)
    assert await until_over(unit) is CallStatus.ENDED
    _, legs, recordings = await call_log(hub)
    assert [(rec.kind, rec.leg_id) for rec in recordings] == [("ivr", legs[0].id)]
    samples, rate, channels = read_wav(hub, recordings[0])
    assert (rate, channels) == (48000, 1)
    assert len(samples) / rate == pytest.approx(1.5, abs=0.3)
    assert recordings[0].duration == pytest.approx(len(samples) / rate, abs=0.05)
    assert dominant_hz(samples[rate // 2 :, 0]) == pytest.approx(VISITOR_HZ, abs=5)


async def test_no_finish_key_runs_to_the_length_limit(hub, make_unit):
    await record_flow(hub, maxLength=2, timeout=0, finishOnKey="none")
    unit = await door(make_unit, lambda: ToneSource(VISITOR_HZ))
    call = unit.start_call()
    await until_answered(unit)
    call.send_digits("#")
    assert await until_over(unit) is CallStatus.ENDED
    _, _, recordings = await call_log(hub)
    assert recordings[0].duration == pytest.approx(2.0, abs=0.2)


async def test_silence_ends_the_recording(hub, make_unit):
    await record_flow(hub, maxLength=30, timeout=1)
    unit = await door(make_unit, lambda: ToneThenSilence(VISITOR_HZ, 1.5))
    unit.start_call()
    assert await until_over(unit) is CallStatus.ENDED
    _, _, recordings = await call_log(hub)
    samples, rate, _ = read_wav(hub, recordings[0])
    assert len(samples) / rate == pytest.approx(2.5, abs=0.4)  # 1.5 s spoken, then 1 s of silence
    assert sound_span(samples[:, 0]) == pytest.approx(1.5, abs=0.3)


async def test_a_caller_who_hangs_up_keeps_the_message(hub, make_unit):
    await record_flow(hub, maxLength=30, timeout=0)
    unit = await door(make_unit, lambda: ToneSource(VISITOR_HZ))
    call = unit.start_call()
    await until_answered(unit)
    async with asyncio.timeout(STEP):
        await asyncio.sleep(1.0)  # the message's length
        await call.disconnect()
    record, legs, recordings = await call_log(hub)
    assert recordings[0].duration == pytest.approx(1.0, abs=0.3)
    assert record.status == "ended" and legs[0].status == "hangup"


@pytest.mark.loopback_requests
async def test_on_finish_gets_the_recording_in_a_post(hub, make_unit):
    with receiver() as service:
        await record_flow(hub, maxLength=1, timeout=0, onFinish=service.url("/voicemail"))
        unit = await door(make_unit, lambda: ToneSource(VISITOR_HZ))
        unit.start_call()
        assert await until_over(unit) is CallStatus.ENDED
        posted = await service.next()
    _, legs, recordings = await call_log(hub)
    assert posted.path == "/voicemail"
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {posted.content_type}\r\n\r\n".encode() + posted.body
    )
    parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
    assert parts["recordingID"].get_content().strip() == recordings[0].id
    assert parts["legID"].get_content().strip() == legs[0].id
    with wave.open(io.BytesIO(parts["file"].get_content())) as file:
        assert file.getnframes() / file.getframerate() == pytest.approx(1.0, abs=0.2)


async def test_a_recording_without_sound_of_any_length_is_still_a_file(hub, make_unit):
    await record_flow(hub, maxLength=1, timeout=0)
    unit = await door(make_unit, AudioStreamTrack)
    unit.start_call()
    assert await until_over(unit) is CallStatus.ENDED
    _, _, recordings = await call_log(hub)
    samples, _, _ = read_wav(hub, recordings[0])
    assert sound_span(samples[:, 0]) == 0.0 and recordings[0].duration == pytest.approx(1.0, abs=0.2)
