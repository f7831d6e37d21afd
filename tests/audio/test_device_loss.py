"""Unplugging the sound card mid-call (its JACK server stops) keeps the call up; plugging it back resumes the sound."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from intercom.media import RecordingSink, ToneSource
from intercom.sdk import CallAudio, CallStatus
from intercom.sdk.errors import DeviceError

from ..units import DESK_HZ, DOOR_HZ, STEP, store_flow
from .jackkit import JackProbe


def hears(probe: JackProbe, frequency: float):
    return lambda: probe.dominant_frequency(0.3) == pytest.approx(frequency, abs=10)


async def test_the_call_survives_the_card_going_away_and_its_sound_comes_back_with_it(
    hub, jack_server, probe, make_unit
):
    await store_flow(hub, "door", "client:desk")
    card = CallAudio.sound_card(tones=False)  # PortAudio's default devices: the JACK server's
    desk = await make_unit("desk", replace(card, source=lambda: ToneSource(DESK_HZ)))
    door = await make_unit("door", replace(card, sink=RecordingSink), outgoing="door")
    call = door.start_call()
    answered = await desk.accept(await desk.next_incoming())
    probe.play(DOOR_HZ)
    probe.feed(await probe.wait_for_port(is_input=True, timeout=STEP))
    probe.listen(await probe.wait_for_port(is_input=False, timeout=STEP))
    await probe.wait_until(hears(probe, DOOR_HZ), STEP)
    await probe.close()

    await asyncio.to_thread(jack_server.stop)  # the USB card pulled out
    await door.events.until(lambda: door.events.of("call.error"))
    await desk.events.until(lambda: desk.events.of("call.error"))
    for unit, device in ((door, "microphone"), (desk, "speaker")):
        (error,) = unit.events.of("call.error")
        assert isinstance(error, DeviceError) and (error.device, error.code) == (device, 500)
    assert call.status is answered.status is CallStatus.CONFIRMED
    # The call carries on meanwhile: the desk's tone (not from the card) still reaches the door.
    heard = call.sink.frames_received
    await call.sink.wait_until(lambda: call.sink.frames_received >= heard + 25, STEP)
    assert call.sink.dominant_frequency(0.3) == pytest.approx(DESK_HZ, abs=15)

    await asyncio.to_thread(jack_server.start)  # and plugged in again
    again = JackProbe(jack_server, asyncio.get_running_loop())
    try:
        again.play(DOOR_HZ)
        # The microphone and the speaker reopen on their own (a retry every second).
        again.feed(await again.wait_for_port(is_input=True, timeout=STEP))
        again.listen(await again.wait_for_port(is_input=False, timeout=STEP))
        await again.wait_until(hears(again, DOOR_HZ), STEP)
        assert call.status is answered.status is CallStatus.CONFIRMED
        assert len(door.events.of("call.error")) == len(desk.events.of("call.error")) == 1  # one an outage
        async with asyncio.timeout(STEP):
            await call.disconnect()
        await desk.events.until(lambda: CallStatus.ENDED in desk.events.of("call.status"))
        await again.wait_for_no_ports(STEP)
    finally:
        await again.close()
