"""Call-progress tones through PortAudio: the door hears its ringback, then the desk with each key's tone over it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from intercom.audio.devices import list_devices
from intercom.media import ToneSource
from intercom.sdk import CallAudio, CallStatus

from ..listening import has_pair
from ..units import DESK_HZ, DOOR_HZ, STEP, store_flow


async def test_the_door_speaker_plays_ringback_then_the_desk_with_key_feedback_mixed_in(hub, probe, make_unit):
    await store_flow(hub, "door", "client:desk")
    (speaker,) = [d.deviceId for d in list_devices() if d.kind == "audiooutput"]
    card = CallAudio.sound_card(speaker=speaker)  # eu: ringback at 425 Hz
    desk = await make_unit("desk", DESK_HZ)
    door = await make_unit("door", replace(card, source=lambda: ToneSource(DOOR_HZ)), outgoing="door", incoming=False)
    call = door.start_call()
    ringback = await probe.wait_for_port(is_input=False, timeout=STEP)
    probe.listen(ringback)
    await probe.wait_until(lambda: probe.dominant_frequency(0.3) == pytest.approx(425, abs=10), STEP)

    await desk.accept(await desk.next_incoming())
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    # The ringback's stream has closed and the call's opened, never both at once: one port, a new one.
    await probe.wait_until(lambda: probe.foreign_ports(is_input=False) not in ([], [ringback]), STEP)
    (far_end,) = probe.foreign_ports(is_input=False)
    probe.listen(far_end)
    await probe.wait_until(lambda: probe.dominant_frequency(0.3) == pytest.approx(DESK_HZ, abs=10), STEP)
    call.send_digits("5")
    await probe.wait_until(lambda: has_pair(probe.recent(0.1), 770, 1336, DESK_HZ), STEP)  # Q.23: 5
