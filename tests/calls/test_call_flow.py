"""Calls end to end: a door unit calls client:desk through the hub, statuses and audio both ways."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

from intercom.auth import ADMIN
from intercom.hub import HubConfig, Storage, running_hub
from intercom.sdk import CallStatus

from ..conftest import HUB_LOOPBACK, STEP, Hub, connect_unit
from ..units import DESK_HZ, DOOR_HZ, door_and_desk, store_flow


async def test_answered_call_statuses_and_audio_both_ways(hub, make_unit):
    door, desk = await door_and_desk(hub, make_unit)
    call = door.start_call(floor="2")
    incoming = await desk.next_incoming()
    assert incoming.display_name == "door"
    await door.events.until(lambda: CallStatus.RINGING in door.events.of("call.status"))
    answered = await desk.accept(incoming)
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    await desk.events.until(lambda: CallStatus.CONFIRMED in desk.events.of("call.status"))
    assert door.events.of("call.status") == [
        CallStatus.CONNECTING, CallStatus.RINGING, CallStatus.ACCEPTED, CallStatus.CONFIRMED,
    ]  # fmt: skip
    assert desk.events.of("call.status") == [CallStatus.ACCEPTED, CallStatus.CONFIRMED]
    async with asyncio.timeout(STEP):
        await call.sink.wait_until(lambda: call.sink.dominant_frequency(0.3) == pytest.approx(DESK_HZ, abs=15), STEP)
        await answered.sink.wait_until(
            lambda: answered.sink.dominant_frequency(0.3) == pytest.approx(DOOR_HZ, abs=15), STEP
        )
    assert (await metrics(hub))["intercom_calls_bridged"] == 1
    async with asyncio.timeout(STEP):
        stats = await call.stats()
    assert (stats.id, stats.status) == (call.id, CallStatus.CONFIRMED)
    assert stats.packets_sent > 0 and stats.bytes_sent > stats.packets_sent and stats.packets_received > 0
    assert stats.packets_lost == 0 and stats.jitter_ms >= 0
    assert stats.capture is None and stats.playback is None  # a tone and a recorder, not a sound card
    async with asyncio.timeout(STEP):
        await call.disconnect()
    await desk.events.until(lambda: CallStatus.ENDED in desk.events.of("call.status"))
    assert door.events.of("call.status")[-1] is CallStatus.ENDED
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()
    figures = await metrics(hub)
    assert (figures["intercom_calls"], figures["intercom_calls_bridged"]) == (0, 0)
    assert (figures["intercom_calls_started_total"], figures["intercom_calls_answered_total"]) == (1, 1)


async def metrics(hub) -> dict[str, int]:
    def get() -> str:
        request = urllib.request.Request(
            f"http://{hub.address}/metrics", headers={"Authorization": f"AccessKey {hub.key.secret}"}
        )
        with urllib.request.urlopen(request, timeout=STEP) as answer:
            return answer.read().decode()

    async with asyncio.timeout(STEP):
        text = await asyncio.to_thread(get)
    return {
        name: int(value) for name, value in (line.split() for line in text.splitlines() if not line.startswith("#"))
    }


async def test_group_ring_the_second_desk_gets_canceled_when_the_first_answers(hub, make_unit):
    await store_flow(hub, "door", "client:desk,client:kitchen")
    desk = await make_unit("desk", DESK_HZ)
    kitchen = await make_unit("kitchen", 660.0)
    door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)
    door.start_call()
    at_desk, in_kitchen = await desk.next_incoming(), await kitchen.next_incoming()
    await desk.accept(at_desk)
    await kitchen.events.until(lambda: kitchen.events.canceled == [in_kitchen])
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    with pytest.raises(RuntimeError):
        in_kitchen.accept()


async def test_one_identity_on_two_devices_rings_both(hub, make_unit):
    await store_flow(hub, "door", "client:desk")
    first = await make_unit("desk", DESK_HZ)
    second = await make_unit("desk", 660.0)
    door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)
    door.start_call()
    ringing_first, ringing_second = await first.next_incoming(), await second.next_incoming()
    await second.accept(ringing_second)
    await first.events.until(lambda: first.events.canceled == [ringing_first])


@pytest.mark.parametrize(("answer", "status"), [("reject", 480)], ids=["reject"])
async def test_callee_rejects_and_the_caller_fails_with_its_code(hub, make_unit, answer, status):
    door, desk = await door_and_desk(hub, make_unit)
    call = door.start_call()
    incoming = await desk.next_incoming()
    await door.events.until(lambda: CallStatus.RINGING in door.events.of("call.status"))
    getattr(incoming, answer)()
    await door.events.until(lambda: door.events.of("call.error"))
    assert door.events.of("call.status") == [CallStatus.CONNECTING, CallStatus.RINGING, CallStatus.FAILED]
    (error,) = door.events.of("call.error")
    assert error.code == 500 and error.message.startswith(f"RTC Session failed: SIP/2.0 {status} ")
    assert desk.events.canceled == [incoming]  # the seed SDK emits canceled on any failure of an incoming call
    assert call.status is CallStatus.FAILED


async def test_caller_cancels_and_the_callee_gets_canceled(hub, make_unit):
    door, desk = await door_and_desk(hub, make_unit)
    call = door.start_call()
    incoming = await desk.next_incoming()
    await door.events.until(lambda: CallStatus.RINGING in door.events.of("call.status"))
    async with asyncio.timeout(STEP):
        await call.disconnect()
    await desk.events.until(lambda: desk.events.canceled == [incoming])
    await door.events.until(lambda: CallStatus.ENDED in door.events.of("call.status"))
    assert door.events.of("call.status") == [CallStatus.CONNECTING, CallStatus.RINGING, CallStatus.ENDED]
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()


async def test_no_answer_within_the_transfer_timeout_fails_with_480(hub, make_unit):
    door, desk = await door_and_desk(hub, make_unit, timeout=1)
    door.start_call()
    incoming = await desk.next_incoming()
    await desk.events.until(lambda: desk.events.canceled == [incoming])
    await door.events.until(lambda: door.events.of("call.error"))
    assert door.events.of("call.error")[0].message.startswith("RTC Session failed: SIP/2.0 480 ")


@pytest.mark.parametrize(
    ("flow_id", "outgoing", "registered", "status"),
    [
        ("door", None, True, 403),  # the token lacks client.outgoing
        ("door", "nonexistent", True, 404),  # the token names a flow the hub does not have
        ("door", "door", False, 480),  # nobody registered as desk
    ],
    ids=["no-outgoing-capability", "unknown-flow", "nobody-registered"],
)
async def test_calls_the_hub_refuses(hub, make_unit, flow_id, outgoing, registered, status):
    await store_flow(hub, flow_id, "client:desk")
    if registered:
        await make_unit("desk", DESK_HZ)
    door = await make_unit("door", DOOR_HZ, outgoing=outgoing, incoming=outgoing is None)
    door.start_call()
    await door.events.until(lambda: door.events.of("call.error"))
    assert door.events.of("call.error")[0].message.startswith(f"RTC Session failed: SIP/2.0 {status} ")
    assert door.events.of("call.status") == [CallStatus.CONNECTING, CallStatus.FAILED]


async def test_mute_silences_the_far_end_and_unmute_brings_the_tone_back(hub, make_unit):
    door, desk = await door_and_desk(hub, make_unit)
    call = door.start_call()
    answered = await desk.accept(await desk.next_incoming())
    await desk.events.until(lambda: CallStatus.ACCEPTED in desk.events.of("call.status"))
    heard = answered.sink
    async with asyncio.timeout(STEP):
        await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
        await heard.wait_until(lambda: heard.dominant_frequency(0.3) == pytest.approx(DOOR_HZ, abs=15), STEP)
        call.mute(True)
        await heard.wait_until(lambda: heard.is_silent(0.3), STEP)
        assert call.is_muted
        call.mute(False)
        await heard.wait_until(lambda: heard.dominant_frequency(0.3) == pytest.approx(DOOR_HZ, abs=15), STEP)
    assert door.events.of("call.muted") == [True, False]


async def test_digits_arrive_in_order_at_the_far_end(hub, make_unit):
    door, desk = await door_and_desk(hub, make_unit)
    call = door.start_call()
    answered = await desk.accept(await desk.next_incoming())
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    with pytest.raises(ValueError):
        call.send_digits("12a")
    answered.send_digits("1*")
    call.send_digits("7#")
    await door.events.until(lambda: len(door.events.of("call.digits")) == 2)
    await desk.events.until(lambda: len(desk.events.of("call.digits")) == 2)
    assert door.events.of("call.digits") == ["1", "*"]
    assert desk.events.of("call.digits") == ["7", "#"]


async def test_callee_hangs_up_and_both_end(hub, make_unit):
    door, desk = await door_and_desk(hub, make_unit)
    door.start_call()
    answered = await desk.accept(await desk.next_incoming())
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    async with asyncio.timeout(STEP):
        await answered.disconnect()
    await door.events.until(lambda: CallStatus.ENDED in door.events.of("call.status"))
    assert desk.events.of("call.status")[-1] is CallStatus.ENDED
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()


async def test_start_call_needs_a_connected_client(hub, make_unit):
    door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)
    async with asyncio.timeout(STEP):
        await door.client.destroy()
    with pytest.raises(RuntimeError, match="offline"):
        door.client.start_call()


async def test_accepting_inside_the_incoming_handler_still_rings_first(hub, make_unit):
    door, desk = await door_and_desk(hub, make_unit)
    accepted: list = []
    desk.client.on("incoming", lambda incoming: accepted.append(incoming.accept()))
    door.start_call()
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    assert door.events.of("call.status")[:2] == [CallStatus.CONNECTING, CallStatus.RINGING]
    assert accepted[0].status in (CallStatus.ACCEPTED, CallStatus.CONFIRMED)


async def test_an_unanswered_incoming_call_times_out_with_408_and_canceled(hub, make_unit, monkeypatch):
    monkeypatch.setattr("intercom.sdk.incoming.NO_ANSWER_TIMEOUT", 0.5)  # JsSIP's is 60 s
    door, desk = await door_and_desk(hub, make_unit, timeout=30)
    door.start_call()
    incoming = await desk.next_incoming()
    await desk.events.until(lambda: desk.events.canceled == [incoming])
    await door.events.until(lambda: door.events.of("call.error"))
    assert door.events.of("call.error")[0].message.startswith("RTC Session failed: SIP/2.0 408 ")


async def test_stopping_the_hub_mid_call_ends_it_everywhere_and_releases_its_media(tmp_path):
    config = HubConfig(data_dir=tmp_path / "own-hub", host="127.0.0.1", port=0, media=HUB_LOOPBACK)
    storage = Storage(config.data_dir)
    async with asyncio.timeout(STEP), running_hub(config, storage) as running:
        calls = running.app.state.calls
        hub = Hub(running, storage, await storage.create_key("tests", ADMIN))
        await store_flow(hub, "door", "client:desk")
        desk = await connect_unit(hub, "desk", DESK_HZ)
        door = await connect_unit(hub, "door", DOOR_HZ, outgoing="door", incoming=False)
        door.start_call()
        await desk.accept(await desk.next_incoming())
        await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
        assert calls.bridged_count == 1
    assert calls.calls == {}  # the call ended with the hub: nothing of it outlives the server
    await door.events.until(lambda: CallStatus.ENDED in door.events.of("call.status"))
    await desk.events.until(lambda: CallStatus.ENDED in desk.events.of("call.status"))
    for unit in (door, desk):
        async with asyncio.timeout(STEP):
            await unit.client.destroy()
    storage.close()


async def test_hanging_up_before_the_invite_is_sent_just_ends_the_call(hub, make_unit):
    door, desk = await door_and_desk(hub, make_unit)
    call = door.start_call()
    async with asyncio.timeout(STEP):
        await call.disconnect()  # still gathering candidates for its offer
    assert door.events.of("call.status") == [CallStatus.CONNECTING, CallStatus.ENDED]
    assert door.events.of("call.error") == [] and desk.events.incoming == []
    call = door.start_call()  # the client is none the worse for it
    await desk.next_incoming()
    await door.events.until(lambda: CallStatus.RINGING in door.events.of("call.status"))
