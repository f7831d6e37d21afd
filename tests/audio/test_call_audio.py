"""A door's microphone to a desk's speaker, both on the JACK dummy sound card, through a real call."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from intercom.audio.devices import list_devices
from intercom.audio.speaker import SpeakerSink
from intercom.media import RecordingSink, ToneSource
from intercom.sdk import CallAudio, CallStatus

from ..units import DESK_HZ, DOOR_HZ, STEP, store_flow
from .jackkit import RATE

MAX_LATENCY_S = 0.25  # mouth to ear through capture, Opus, the hub and playback: ~0.07 s measured


async def test_a_tone_at_the_door_microphone_is_heard_at_the_desk_speaker(hub, probe, make_unit, caplog):
    await store_flow(hub, "door", "client:desk")
    (microphone,) = [d.deviceId for d in list_devices() if d.kind == "audioinput"]
    (speaker,) = [d.deviceId for d in list_devices() if d.kind == "audiooutput"]
    desk_card = CallAudio.sound_card(speaker=speaker)
    door_card = CallAudio.sound_card(microphone=microphone)
    speakers: list[SpeakerSink] = []

    def speaker_sink(track):
        speakers.append(desk_card.sink(track))
        return speakers[-1]

    desk = await make_unit("desk", replace(desk_card, source=lambda: ToneSource(DESK_HZ), sink=speaker_sink))
    door = await make_unit("door", replace(door_card, sink=RecordingSink), outgoing="door")
    probe.play(DOOR_HZ)
    call = door.start_call()
    answered = await desk.accept(await desk.next_incoming())
    # One PortAudio client holds both units' streams: the door's capture is its only input port,
    # the desk's playback its only output port.
    probe.feed(await probe.wait_for_port(is_input=True, timeout=STEP))
    probe.listen(await probe.wait_for_port(is_input=False, timeout=STEP))
    await probe.wait_until(lambda: probe.dominant_frequency(0.3) == pytest.approx(DOOR_HZ, abs=10), STEP)
    async with asyncio.timeout(STEP):
        await call.sink.wait_until(lambda: call.sink.dominant_frequency(0.3) == pytest.approx(DESK_HZ, abs=15), STEP)
    assert answered.sink is speakers[0]

    probe.silence()
    await probe.wait_until(lambda: probe.rms(0.1) < 0.003, STEP)
    probe.click()
    await probe.wait_until(lambda: probe.clicks and probe.onset_after(probe.clicks[0]) is not None, STEP)
    latency = (probe.onset_after(probe.clicks[0]) - probe.clicks[0]) / RATE
    assert 0 < latency < MAX_LATENCY_S
    stats = speakers[0].stats
    print(f"mouth to ear {latency * 1000:.1f} ms; {stats}")  # shown with -s or -rP
    assert stats.max_buffered_ms <= 40.0
    async with asyncio.timeout(STEP):
        desk_stats, door_stats = await answered.stats(), await call.stats()
    assert desk_stats.playback.blocks_played >= stats.blocks_played and desk_stats.playback.underruns >= 0
    assert desk_stats.capture is None  # the desk sends a tone source, not a microphone
    assert door_stats.capture.blocks_captured > 0 and door_stats.playback is None
    assert door_stats.packets_sent > 0 and desk_stats.packets_received > 0 and desk_stats.id == answered.id
    processing = door_stats.capture.processing  # on by default: every captured block goes through it
    assert processing.frames_processed >= 2 * door_stats.capture.blocks_captured - 2 and processing.errors == 0
    assert processing.reference_frames == 0  # the door plays nothing here: its sink is no speaker
    assert desk_stats.capture is None

    caplog.set_level("INFO", logger="intercom.sdk.call")

    async with asyncio.timeout(STEP):
        await call.disconnect()
    await desk.events.until(lambda: CallStatus.ENDED in desk.events.of("call.status"))
    assert speakers[0].stream is None  # the call stopped its sink, closing the device
    ended = [r.getMessage() for r in caplog.records if "ended, its sound" in r.getMessage()]
    assert any("microphone" in line and "echo cancelled" in line for line in ended), ended  # the door's
    assert any("speaker" in line and "underruns" in line for line in ended), ended  # the desk's
    await probe.wait_for_no_ports(STEP)  # and the door's microphone went with the call
