"""Call-progress tones on each unit's own speaker: ringback, the ring, busy or congestion, key feedback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from intercom.media import ToneSource
from intercom.media.tones import EU, SoundFile, TonePlan, plan_for
from intercom.sdk import Call, CallAudio, CallStatus, incoming, progress_tones
from intercom.sip import make_response

from ..conftest import ENDPOINT_LOOPBACK, STEP
from ..listening import RATE, envelope_runs, has_pair, peaks, write_wav
from ..units import DESK_HZ, DOOR_HZ, Speaker, Unit, next_request, recorded, registered_raw_desk, store_flow

EDGE = round(0.01 * RATE)  # left out of a burst's spectrum: its fades


async def unit_with_speaker(
    make_unit, identity: str, hz: float, plan: TonePlan | None = EU, ring: SoundFile | None = None, **options: Any
) -> tuple[Unit, Speaker]:
    """A unit sending a tone of ``hz`` whose sinks a :class:`Speaker` logs; ``plan`` None turns tones off."""
    speaker = Speaker(plan or EU)
    audio = CallAudio(source=lambda: ToneSource(hz), sink=speaker.sink, policy=ENDPOINT_LOOPBACK, tones=plan, ring=ring)
    return await make_unit(identity, audio, events=speaker.events, **options), speaker


async def door_calling(hub, make_unit, **door_options: Any) -> tuple[Unit, Speaker, Call]:
    """A door with a :class:`Speaker` calling ``client:desk``."""
    await store_flow(hub, "door", "client:desk")
    door, speaker = await unit_with_speaker(make_unit, "door", DOOR_HZ, outgoing="door", incoming=False, **door_options)
    return door, speaker, door.start_call()


def statuses_and_sinks(unit: Unit) -> list[tuple[str, Any]]:
    return [(event, value) for event, value in unit.events.log if event in ("call.status", "sink.start", "sink.stop")]


@pytest.mark.parametrize(
    ("region", "frequencies", "runs"),
    [
        ("eu", [425], [(True, 0.5)]),  # 1 s on, 4 s off
        ("us", [440, 480], [(True, 0.5)]),  # 2 s on, 4 s off
        ("uk", [400, 450], [(True, 0.4), (False, 0.2), (True, 0.4), (False, 0.1)]),  # 0.4 on 0.2 off 0.4 on 2 off
    ],
)
async def test_the_caller_hears_its_regions_ringback_until_the_answer(hub, make_unit, region, frequencies, runs):
    desk = await make_unit("desk", DESK_HZ)
    door, speaker, _ = await door_calling(hub, make_unit, plan=plan_for(region))
    offered = await desk.next_incoming()
    heard = await recorded(await speaker.started("ringback"), sum(seconds for _, seconds in runs))

    assert envelope_runs(heard) == [(on, pytest.approx(seconds, abs=0.005)) for on, seconds in runs]
    first_burst = heard[EDGE : round(runs[0][1] * RATE) - EDGE]
    assert peaks(first_burst, len(frequencies)) == pytest.approx(frequencies, abs=1)
    await desk.accept(offered)
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    assert statuses_and_sinks(door) == [
        ("call.status", CallStatus.CONNECTING),
        ("call.status", CallStatus.RINGING),
        ("sink.start", "ringback"),
        ("call.status", CallStatus.ACCEPTED),
        ("sink.stop", "ringback"),  # before the far end's sink opens the same speaker
        ("sink.start", "far end"),
        ("call.status", CallStatus.CONFIRMED),
    ]


async def test_the_caller_hangs_up_while_ringing_and_hears_nothing_more(hub, make_unit):
    desk = await make_unit("desk", DESK_HZ)
    door, speaker, call = await door_calling(hub, make_unit)
    offered = await desk.next_incoming()
    await speaker.started("ringback")
    async with asyncio.timeout(STEP):
        await call.disconnect()
    await door.events.until(lambda: CallStatus.ENDED in door.events.of("call.status"))
    await desk.events.until(lambda: desk.events.canceled == [offered])
    assert speaker.log() == [("sink.start", "ringback"), ("sink.stop", "ringback")]


@pytest.mark.parametrize(
    ("status", "tone"),
    [(486, "busy"), (603, "busy"), (480, "congestion")],  # the rest of the table: tests/sdk/test_progress_tones.py
)
async def test_a_refused_call_sounds_busy_or_congestion_by_the_response_code(
    hub, raw_sip, make_unit, monkeypatch, status, tone
):
    monkeypatch.setattr(progress_tones, "FAILURE_TONE_SECONDS", 0.5)  # one round of the cadence
    desk = await registered_raw_desk(hub, raw_sip)
    door, speaker, _ = await door_calling(hub, make_unit)
    invite = await next_request(desk, "INVITE")
    async with asyncio.timeout(STEP):
        await desk.send(make_response(invite, 180, to_tag="raw", headers=[("Contact", "<sip:desk@raw.invalid>")]))
    await speaker.started("ringback")
    async with asyncio.timeout(STEP):
        await desk.send(make_response(invite, status, to_tag="raw"))
    failure = await speaker.started(tone)
    await door.events.until(lambda: ("sink.stop", tone) in speaker.log())  # it ends by itself

    assert statuses_and_sinks(door) == [
        ("call.status", CallStatus.CONNECTING),
        ("call.status", CallStatus.RINGING),
        ("sink.start", "ringback"),
        ("call.status", CallStatus.FAILED),  # not held up by the tone
        ("sink.stop", "ringback"),
        ("sink.start", tone),
        ("sink.stop", tone),
    ]
    on, off = getattr(EU, tone).cadence[0]
    heard = failure.recent(STEP)
    assert envelope_runs(heard)[:2] == [(True, pytest.approx(on, abs=0.005)), (False, pytest.approx(off, abs=0.03))]
    assert peaks(heard[EDGE : round(on * RATE) - EDGE], 1) == pytest.approx([425], abs=1)
    assert len(heard) / RATE == pytest.approx(on + off, abs=0.15)


async def test_destroy_silences_a_failure_tone_at_once(hub, make_unit):
    desk = await make_unit("desk", DESK_HZ)
    door, speaker, _ = await door_calling(hub, make_unit)
    (await desk.next_incoming()).reject()
    await speaker.started("congestion")  # 480: see progress_tones
    async with asyncio.timeout(STEP):
        await door.client.destroy()
    assert speaker.open() == []
    assert speaker.log()[-2:] == [("sink.start", "congestion"), ("sink.stop", "congestion")]
    assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("tone-stop(")]


@pytest.mark.parametrize("ring_file", [False, True], ids=["built-in", "wav"])
async def test_the_callee_rings_from_the_180_until_it_answers(hub, make_unit, tmp_path: Path, ring_file):
    await store_flow(hub, "door", "client:desk")
    ring = None
    if ring_file:
        write_wav(tmp_path / "ring.wav", 0.3, hz=1000.0)
        ring = SoundFile.read(tmp_path / "ring.wav")
    desk, speaker = await unit_with_speaker(make_unit, "desk", DESK_HZ, ring=ring)
    door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)
    door.start_call()
    offered = await desk.next_incoming()
    heard = await recorded(await speaker.started("ring file" if ring_file else "ring"), 0.4)

    expected = [1000.0] if ring_file else [880.0, 1120.0]  # the built-in ring's trill
    assert peaks(heard[EDGE:-EDGE], len(expected)) == pytest.approx(expected, abs=1)
    answered = await desk.accept(offered)
    await desk.events.until(lambda: CallStatus.ACCEPTED in desk.events.of("call.status"))
    name = "ring file" if ring_file else "ring"
    assert speaker.log() == [("sink.start", name), ("sink.stop", name), ("sink.start", "far end")]
    assert answered.sink is speaker.sinks[-1][1]


def lose_connection(hub) -> None:
    (connection,) = [
        c for c in hub.running.app.state.sip.connections if hub.running.registrar.lookup("desk")[0].connection is c
    ]
    connection.close(1011, "desk lost its network")


@pytest.mark.parametrize("ending", ["reject", "caller hangs up", "no answer", "destroy", "connection lost"])
async def test_the_ring_stops_when_the_call_is_not_answered(hub, make_unit, monkeypatch, ending):
    monkeypatch.setattr(incoming, "NO_ANSWER_TIMEOUT", 1.0 if ending == "no answer" else incoming.NO_ANSWER_TIMEOUT)
    desk, speaker = await unit_with_speaker(make_unit, "desk", DESK_HZ)
    _, _, call = await door_calling(hub, make_unit)
    offered = await desk.next_incoming()
    await speaker.started("ring")
    async with asyncio.timeout(STEP):
        if ending == "reject":
            offered.reject()
        elif ending == "caller hangs up":
            await call.disconnect()
        elif ending == "destroy":
            await desk.client.destroy()
        elif ending == "connection lost":
            lose_connection(hub)
    await desk.events.until(lambda: ("sink.stop", "ring") in speaker.log())
    assert speaker.log() == [("sink.start", "ring"), ("sink.stop", "ring")]


async def test_each_digit_sent_sounds_on_the_callers_speaker_and_not_at_the_far_end(hub, make_unit):
    door, desk = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False), await make_unit("desk", DESK_HZ)
    await store_flow(hub, "door", "client:desk")
    call = door.start_call()
    answered = await desk.accept(await desk.next_incoming())
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    heard = call.sink
    await heard.wait_until(lambda: heard.dominant_frequency(0.3) == pytest.approx(DESK_HZ, abs=15), STEP)

    call.send_digits("1#")
    for low, high in ((697, 1209), (941, 1477)):  # Q.23: 1 and #
        await heard.wait_until(lambda: has_pair(heard.recent(0.1), low, high, DESK_HZ), STEP)  # noqa: B023
    await desk.events.until(lambda: desk.events.of("call.digits") == ["1", "#"])
    far = answered.sink.recent(3.0)
    window = round(0.1 * RATE)
    assert not any(has_pair(far[start : start + window], 697, 1209, DOOR_HZ) for start in range(0, len(far), 960))


async def test_with_tones_off_nothing_rings_and_nothing_sounds_but_the_far_end(hub, make_unit):
    await store_flow(hub, "door", "client:desk")
    desk, desk_speaker = await unit_with_speaker(make_unit, "desk", DESK_HZ, plan=None)
    door, door_speaker = await unit_with_speaker(make_unit, "door", DOOR_HZ, plan=None, outgoing="door", incoming=False)
    door.start_call()
    (await desk.next_incoming()).reject()
    await door.events.until(lambda: CallStatus.FAILED in door.events.of("call.status"))
    door.start_call()  # by the time this one is answered, the first has long finished failing
    await desk.accept(await desk.next_incoming(2))
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    assert door_speaker.log() == [("sink.start", "far end")]
    assert desk_speaker.log() == [("sink.start", "far end")]
