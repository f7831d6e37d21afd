"""``transfer`` inside richer flows: after the hub has talked to the caller, recorded (``record``
in/out/both, and the flow's ``record: true``), and the voicemail after nobody answers."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import AudioStreamTrack

from intercom.media import ToneSource
from intercom.sdk import CallStatus

from ..units import DESK_HZ, DOOR_HZ, STEP
from .audio import dominant_hz, sound_span
from .flows import call_log, door, read_wav, store, until_answered, until_over


async def talk_and_hang_up(hub, make_unit, steps, record=False, seconds=1.5):
    """The door calls, the desk answers, both talk for ``seconds``, the door hangs up."""
    await store(hub, steps, record=record)
    desk = await make_unit("desk", DESK_HZ)
    unit = await door(make_unit, lambda: ToneSource(DOOR_HZ))
    call = unit.start_call()
    answered = await desk.accept(await desk.next_incoming())
    await until_answered(unit)
    await until_answered(desk)
    sink = answered.sink
    await sink.wait_until(lambda: sink.dominant_frequency(0.3) == pytest.approx(DOOR_HZ, abs=15), STEP)
    async with asyncio.timeout(STEP):
        await asyncio.sleep(seconds)  # the conversation's length
        await call.disconnect()
    return await call_log(hub)


@pytest.mark.parametrize(("record", "channels"), [("in", [DOOR_HZ]), ("out", [DESK_HZ]), ("both", [DOOR_HZ, DESK_HZ])])
async def test_transfer_records_what_the_caller_says_hears_or_both(hub, make_unit, record, channels):
    ring = {"id": "ring", "action": "transfer", "options": {"destination": "client:desk", "record": record}}
    _, legs, recordings = await talk_and_hang_up(hub, make_unit, [ring])
    desk_leg = next(leg for leg in legs if leg.destination == "client:desk")
    assert [(rec.kind, rec.leg_id, rec.channels) for rec in recordings] == [("transfer", desk_leg.id, len(channels))]
    samples, rate, _ = read_wav(hub, recordings[0])
    assert len(samples) / rate == pytest.approx(1.5, abs=0.5)
    for channel, hz in enumerate(channels):
        assert dominant_hz(samples[rate // 2 :, channel]) == pytest.approx(hz, abs=5)


async def test_a_flow_with_record_true_keeps_the_whole_call_prompt_and_bridge(hub, make_unit):
    steps = [
        {"id": "hello", "action": "say", "options": {"payload": "Please wait"}},
        {"id": "ring", "action": "transfer", "options": {"destination": "client:desk"}},
    ]
    record, legs, recordings = await talk_and_hang_up(hub, make_unit, steps, record=True)
    door_leg = next(leg for leg in legs if leg.direction == "incoming")
    assert [(rec.kind, rec.leg_id, rec.channels) for rec in recordings] == [("call", door_leg.id, 2)]
    samples, rate, _ = read_wav(hub, recordings[0])
    said, heard = samples[:, 0], samples[:, 1]
    assert dominant_hz(said[rate // 2 :]) == pytest.approx(DOOR_HZ, abs=5)  # the door all along
    assert dominant_hz(heard[-rate:]) == pytest.approx(DESK_HZ, abs=5)  # the desk, at the end
    prompt = heard[: rate // 2]
    assert sound_span(prompt) > 0.3 and dominant_hz(prompt) != pytest.approx(DESK_HZ, abs=15)  # the prompt first
    assert record.status == "ended" and {leg.status for leg in legs} == {"hangup"}


async def test_nobody_answers_so_the_visitor_leaves_a_message(hub, make_unit):
    await store(
        hub,
        [
            {"id": "ring", "action": "transfer", "options": {"destination": "client:desk", "timeout": 1}},
            {"id": "sorry", "action": "say", "options": {"payload": "Nobody is home, leave a message"}},
            {"id": "message", "action": "record", "options": {"maxLength": 1, "timeout": 0}},
            {"id": "bye", "action": "hangup"},
        ],
    )
    desk = await make_unit("desk", DESK_HZ)
    unit = await door(make_unit, lambda: ToneSource(DOOR_HZ))
    call = unit.start_call()
    await desk.next_incoming()
    assert await until_over(unit) is CallStatus.ENDED
    statuses = unit.events.of("call.status")
    assert statuses.index(CallStatus.RINGING) < statuses.index(CallStatus.ACCEPTED)  # rang, then the hub answered
    assert sound_span(call.sink.recent(30)) > 1.0  # the sentence
    await desk.events.until(lambda: len(desk.events.canceled) == 1)
    record, legs, recordings = await call_log(hub)
    assert [(leg.destination, leg.status) for leg in legs] == [("door", "hangup"), ("client:desk", "no_answer")]
    assert record.reason == "no answer" and len(recordings) == 1
    samples, _, _ = read_wav(hub, recordings[0])
    assert dominant_hz(samples[:, 0]) == pytest.approx(DOOR_HZ, abs=5)


async def test_nobody_registered_goes_on_to_the_next_step(hub, make_unit):
    await store(
        hub,
        [
            {"action": "transfer", "options": {"destination": "client:desk", "timeout": 5}},
            {"action": "sendKeys", "options": {"keys": "8"}},
        ],
    )
    unit = await door(make_unit, AudioStreamTrack)
    unit.start_call()
    assert await until_over(unit) is CallStatus.ENDED
    assert unit.events.of("call.digits") == ["8"]
