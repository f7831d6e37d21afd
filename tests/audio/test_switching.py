"""Moving a call's microphone and speaker to another sound card mid-call, on two JACK port sets.

The second card is a JACK client of its own (``usb-card``, a :class:`JackProbe`): PortAudio lists
every JACK client with ports as a device, and connects a stream on it to that client's ports.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest

from intercom.audio.devices import UnknownDevice, list_devices
from intercom.audio.portaudio import PORTAUDIO
from intercom.media import RecordingSink, ToneSource
from intercom.sdk import CallAudio, CallStatus

from ..units import DESK_HZ, STEP, store_flow
from .jackkit import PERIOD, RATE, JackProbe

SYSTEM_HZ, CARD_HZ = 1000.0, 1500.0
MAX_GAP_S = 0.1  # the limit for a switch
LOUD = 0.05
WINDOW = 2.0  # seconds of what the probe heard to look for a gap in: the switch is in it


def device_id(label: str, kind: str) -> str:
    (found,) = [d.deviceId for d in list_devices() if d.label.startswith(f"{label} (") and d.kind == kind]
    return found


def hears(probe: JackProbe, frequency: float):
    return lambda: probe.dominant_frequency(0.2) == pytest.approx(frequency, abs=15)


def longest_silence(probe: JackProbe, seconds: float) -> float:
    """The longest run of quiet 20 ms blocks in the last ``seconds`` the probe heard, in seconds."""
    blocks = probe.recent(seconds).reshape(-1, PERIOD)
    longest = run = 0
    for loud in np.sqrt(np.mean(blocks.astype(np.float64) ** 2, axis=1)) >= LOUD:
        run = 0 if loud else run + 1
        longest = max(longest, run)
    return longest * PERIOD / RATE


@pytest.fixture
async def usb_card(jack_server):
    card = JackProbe(jack_server, asyncio.get_running_loop(), name="usb-card")
    async with asyncio.timeout(STEP):
        assert await PORTAUDIO.rescan()  # so that this process's PortAudio lists it (nothing is open yet)
    yield card
    await card.close()


async def test_microphone_and_speaker_move_to_another_card_mid_call(hub, probe, usb_card, make_unit):
    await store_flow(hub, "door", "client:desk")
    system_in, system_out = device_id("system", "audioinput"), device_id("system", "audiooutput")
    card_in, card_out = device_id("usb-card", "audioinput"), device_id("usb-card", "audiooutput")
    desk = await make_unit(
        "desk", replace(CallAudio.sound_card(speaker=system_out, tones=False), source=lambda: ToneSource(DESK_HZ))
    )
    door = await make_unit(
        "door", replace(CallAudio.sound_card(microphone=system_in, tones=False), sink=RecordingSink), outgoing="door"
    )
    call = door.start_call()
    answered = await desk.accept(await desk.next_incoming())
    probe.play(SYSTEM_HZ)  # what the system card's microphone hears
    usb_card.play(CARD_HZ)  # and the other card's
    probe.feed(await probe.wait_for_port(is_input=True, timeout=STEP))
    probe.listen(await probe.wait_for_port(is_input=False, timeout=STEP))
    await probe.wait_until(hears(probe, SYSTEM_HZ), STEP)
    await probe.wait_until(lambda: longest_silence(probe, WINDOW) == 0, STEP)  # steady, so gaps show

    async with asyncio.timeout(STEP):
        await call.set_input_source({"audio": {"deviceId": card_in}})
    await probe.wait_until(hears(probe, CARD_HZ), STEP)  # the desk now hears the other card's microphone
    await probe.wait_until(lambda: probe.rms(0.5) > LOUD, STEP)
    assert longest_silence(probe, WINDOW) <= MAX_GAP_S
    assert len(probe.foreign_ports(is_input=True)) == 1  # the first microphone's stream is closed

    async with asyncio.timeout(STEP):
        await answered.set_output_source(card_out)
    await usb_card.wait_until(hears(usb_card, CARD_HZ), STEP)  # the far end now plays on the other card
    gap = usb_card.monotonic_at(usb_card.onset_after(0, LOUD)) - probe.monotonic_at(probe.last_loud(LOUD))
    print(f"speaker switch gap {gap * 1000:.0f} ms")
    assert gap <= MAX_GAP_S
    assert call.status is answered.status is CallStatus.CONFIRMED


async def test_an_unknown_device_raises_and_the_call_keeps_its_own(hub, probe, make_unit):
    await store_flow(hub, "door", "client:desk")
    desk = await make_unit("desk", replace(CallAudio.sound_card(tones=False), source=lambda: ToneSource(DESK_HZ)))
    door = await make_unit("door", replace(CallAudio.sound_card(tones=False), sink=RecordingSink), outgoing="door")
    call = door.start_call()
    answered = await desk.accept(await desk.next_incoming())
    probe.play(SYSTEM_HZ)
    probe.feed(await probe.wait_for_port(is_input=True, timeout=STEP))
    probe.listen(await probe.wait_for_port(is_input=False, timeout=STEP))
    await probe.wait_until(lambda: hears(probe, SYSTEM_HZ)() and longest_silence(probe, WINDOW) == 0, STEP)
    async with asyncio.timeout(STEP):
        with pytest.raises(UnknownDevice, match="no audioinput device"):
            await call.set_input_source({"audio": {"deviceId": "0123456789abcdef"}})
        with pytest.raises(UnknownDevice, match="no audiooutput device"):
            await answered.set_output_source("0123456789abcdef")
        with pytest.raises(ValueError, match="deviceId"):
            await call.set_input_source({"video": {}})
        with pytest.raises(ValueError, match="device id"):
            await answered.set_output_source("")
    assert hears(probe, SYSTEM_HZ)() and longest_silence(probe, WINDOW) == 0  # the old devices played on
    async with asyncio.timeout(STEP):
        await call.disconnect()
    await desk.events.until(lambda: CallStatus.ENDED in desk.events.of("call.status"))
    async with asyncio.timeout(STEP):
        with pytest.raises(RuntimeError, match="needs an active call"):
            await call.set_input_source({"audio": {"deviceId": device_id("system", "audioinput")}})
        with pytest.raises(RuntimeError, match="needs an active call"):
            await answered.set_output_source(device_id("system", "audiooutput"))


async def test_sound_that_is_not_a_sound_card_cannot_be_switched(hub, make_unit):
    await store_flow(hub, "door", "client:desk")
    desk = await make_unit("desk", DESK_HZ)
    door = await make_unit("door", SYSTEM_HZ, outgoing="door")
    call = door.start_call()
    await desk.accept(await desk.next_incoming())
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    async with asyncio.timeout(STEP):
        with pytest.raises(RuntimeError, match="sound card"):
            await call.set_input_source({"audio": {"deviceId": "0123456789abcdef"}})
        with pytest.raises(RuntimeError, match="sound card"):
            await call.set_output_source("0123456789abcdef")
