"""What one call, one client and the whole hub may hold: concurrent calls, devices rung, a call's
length, a leg gone silent, and what a peer's messages may make a call keep."""

from __future__ import annotations

import asyncio
import dataclasses
import sys

import pytest

from intercom.hub.call_limits import CallLimits, CallRefused
from intercom.hub.calls import MAX_QUEUED_KEYS, HubCall
from intercom.hub.config import HubConfig
from intercom.hub.flow_engine import MAX_KEYPRESS_VAR
from intercom.hub.records import LegRecord
from intercom.media import packets_received
from intercom.sdk import Call, CallStatus
from intercom.sip.dtmf import DTMF_CONTENT_TYPE, dtmf_body

from ..conftest import STEP
from ..flows.flows import call_log, store, until_answered, until_over
from ..units import DESK_HZ, DOOR_HZ, Unit, door_and_desk, store_flow
from .test_call_flow import metrics

PACKETS_PER_SECOND = 50  # 20 ms Opus frames


def running_call(hub) -> HubCall:
    (call,) = hub.running.app.state.calls.calls.values()
    return call


async def bridged(door: Unit, desk: Unit) -> tuple[Call, Call]:
    call = door.start_call()
    answered = await desk.accept(await desk.next_incoming())
    await until_answered(door)
    return call, answered


async def refusal(unit: Unit) -> list[str]:
    """The status line and headers of the final answer that failed ``unit``'s call."""
    await unit.events.until(lambda: unit.events.of("call.error"))
    (error,) = unit.events.of("call.error")
    return error.message.removeprefix("RTC Session failed: ").split("\r\n")


async def calls_running(hub, count: int) -> None:
    async with asyncio.timeout(STEP):
        while len(hub.running.app.state.calls.calls) != count:
            await asyncio.sleep(0.02)


async def ended_reason(hub) -> str | None:
    call, _, _ = await call_log(hub)
    return call.reason


async def test_a_caller_in_too_many_calls_gets_486_naming_the_limit(hub, make_unit):
    hub.running.config.max_calls_per_identity = 1
    door, desk = await door_and_desk(hub, make_unit)
    door.start_call()
    await desk.next_incoming()  # the door's first call rings: it counts
    second = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)  # a second device, same identity
    second.start_call()
    answer = await refusal(second)
    assert answer[0] == "SIP/2.0 486 Busy Here (client:door is in 1 calls, the limit max_calls_per_identity)"
    assert "Retry-After: 60" in answer
    assert len(hub.running.app.state.calls.calls) == 1


async def test_a_full_hub_answers_503_and_the_next_call_after_one_ends_goes_through(hub, make_unit):
    hub.running.config.max_calls = 1
    door, desk = await door_and_desk(hub, make_unit)
    first = door.start_call()
    await desk.next_incoming()
    other = await make_unit("garden", DOOR_HZ, outgoing="door", incoming=False)
    other.start_call()
    answer = await refusal(other)
    assert answer[0] == "SIP/2.0 503 Service Unavailable (the hub is in 1 calls, the limit max_calls)"
    assert "Retry-After: 60" in answer
    assert (await metrics(hub))["intercom_calls_refused_total"] == 1
    async with asyncio.timeout(STEP):
        await first.disconnect()
        await hub.running.app.state.calls.wait_idle()
    other.start_call()
    await desk.next_incoming(2)


async def test_a_desk_in_a_call_is_rung_again_until_its_limit_then_skipped_in_a_ring_group(hub, make_unit):
    door, desk = await door_and_desk(hub, make_unit)
    await bridged(door, desk)
    await store_flow(hub, "garden", "client:desk,client:kitchen")
    kitchen = await make_unit("kitchen", 660.0)
    garden = await make_unit("garden", DOOR_HZ, outgoing="garden", incoming=False)
    garden.start_call()
    await desk.next_incoming(2)  # in a call and rung again: a ring group as usual
    await kitchen.next_incoming()
    async with asyncio.timeout(STEP):
        await garden.client.destroy()  # the visitor leaves: the ringing stops
    await desk.events.until(lambda: len(desk.events.canceled) == 1)
    await calls_running(hub, 1)  # the garden's call has let go of the kitchen too

    hub.running.config.max_calls_per_identity = 1  # now the desk's one call is all it may be in
    gate = await make_unit("gate", DOOR_HZ, outgoing="garden", incoming=False)
    gate.start_call()
    await kitchen.next_incoming(2)
    gate_call = next(call for call in hub.running.app.state.calls.calls.values() if call.caller_name == "gate")
    legs, _ = await hub.storage.page(LegRecord, parent=gate_call.record.id)
    assert [leg.destination for leg in legs if leg.direction == "outgoing"] == ["client:kitchen"]
    assert len(desk.events.incoming) == 2

    await store_flow(hub, "desk-only", "client:desk")
    porch = await make_unit("porch", DOOR_HZ, outgoing="desk-only", incoming=False)
    porch.start_call()
    answer = await refusal(porch)
    assert answer[0] == "SIP/2.0 486 Busy Here (busy: desk in too many calls, the limit max_calls_per_identity)"


async def test_a_transfer_rings_at_most_max_ring_legs_devices(hub, make_unit):
    hub.running.config.max_ring_legs = 2
    await store_flow(hub, "door", "client:a,client:b,client:c")
    rung = [await make_unit(name, DESK_HZ) for name in ("a", "b", "c")]
    door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)
    door.start_call()
    await rung[0].next_incoming()
    await rung[1].next_incoming()
    legs, _ = await hub.storage.page(LegRecord, parent=running_call(hub).record.id)
    assert [leg.destination for leg in legs if leg.direction == "outgoing"] == ["client:a", "client:b"]
    assert rung[2].events.incoming == []


async def test_a_call_is_hung_up_at_its_maximum_duration(hub, make_unit):
    hub.running.config.media_timeout = 1.0  # the hub looks five times a timeout: every 0.2 s
    door, desk = await door_and_desk(hub, make_unit)
    await bridged(door, desk)
    hub.running.config.max_call_duration = 1.0  # already over: the next look ends it
    assert await until_over(door) is CallStatus.ENDED
    assert await until_over(desk) is CallStatus.ENDED
    assert await ended_reason(hub) == "the call lasted 1 s, the limit max_call_duration"
    assert (await metrics(hub))["intercom_calls_hung_up_by_limit_total"] == 1


async def test_a_muted_caller_is_not_cut_off_but_a_callee_whose_media_stopped_is(hub, make_unit):
    hub.running.config.media_timeout = 1.5  # from the answer: ICE and DTLS have that long, on a busy machine too
    door, desk = await door_and_desk(hub, make_unit)
    call, answered = await bridged(door, desk)
    hub_call = running_call(hub)
    call.mute(True)  # silence keeps flowing: more than the timeout of it must not end the call
    start = packets_received(hub_call.caller.media)
    async with asyncio.timeout(STEP):
        while packets_received(hub_call.caller.media) < start + 2 * PACKETS_PER_SECOND:
            await asyncio.sleep(0.05)
    assert not hub_call.ended.is_set() and call.status is CallStatus.CONFIRMED

    # The desk's media dies with no BYE: its sender stops, its signalling stays up.
    (transceiver,) = answered._media.getTransceivers()
    async with asyncio.timeout(STEP):
        await transceiver.sender.stop()
    assert await until_over(door) is CallStatus.ENDED
    assert await until_over(desk) is CallStatus.ENDED  # the hub's BYE
    assert await ended_reason(hub) == "no audio from the callee (desk) for 1.5 s, the limit media_timeout"


async def info(call: Call, content_type: str, body: bytes) -> int:
    """An INFO in ``call``'s dialog, as the browser client sends its stats; the status of the answer."""
    request = call.dialog.create_request("INFO", call._via(), headers=[("Content-Type", content_type)], body=body)
    async with asyncio.timeout(STEP):
        return (await call._connection.request(request)).status_code


@pytest.fixture
def hub_config(hub_config: HubConfig) -> HubConfig:
    """Hundreds of INFOs on one connection as fast as answers come, which no unit sends: the SIP
    message rate, a limit of its own (tests/hub/test_connection_limits.py), is lifted here."""
    return dataclasses.replace(hub_config, sip_messages_per_second=1e6, sip_message_burst=10**6)


async def test_stats_reports_and_unread_keys_keep_the_calls_memory_flat(hub, make_unit):
    await store(hub, [{"action": "pause", "options": {"length": 30}}])  # listens for no keys
    door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)
    call = door.start_call()
    await until_answered(door)
    hub_call = running_call(hub)
    report = b'[{"type":"transport","bytesSent":22724}]' * 40  # about the size of a browser's report
    sizes = []
    for count in range(400):
        assert await info(call, "application/json", report + b"%03d" % count) == 200
        if count in (9, 399):
            sizes.append(sum(sys.getsizeof(value) for value in vars(hub_call.stats["caller"]).values()))
    stats = hub_call.stats["caller"]
    assert stats.reports == 400 and stats.last_report.endswith("399")
    assert sizes[0] == sizes[1]
    for _ in range(MAX_QUEUED_KEYS + 8):
        assert await info(call, DTMF_CONTENT_TYPE, dtmf_body("5", 100)) == 200
    assert hub_call.keys.qsize() == MAX_QUEUED_KEYS and hub_call.keys_dropped == 8


@pytest.mark.parametrize(
    ("limits", "identity", "message"),
    [
        ({"max_calls": 0}, "desk", "the hub is in 0 calls, the limit max_calls"),
        ({"max_calls_per_identity": 0}, "desk", "client:desk is in 0 calls, the limit max_calls_per_identity"),
        ({"max_calls_per_identity": 0}, None, None),  # a caller whose token names nobody counts in the total only
    ],
)
def test_new_calls_are_checked_against_the_total_first(tmp_path, limits, identity, message):
    checks = CallLimits(HubConfig(data_dir=tmp_path, **limits), {})
    if message is None:
        checks.check_new(identity)
        return
    with pytest.raises(CallRefused, match=message):
        checks.check_new(identity)


async def test_an_on_keypress_var_keeps_the_latest_keys_only(hub, make_unit):
    await store(hub, [{"action": "pause", "options": {"length": 30}, "onKeypressVar": "code"}])
    door = await make_unit("door", DOOR_HZ, outgoing="door", incoming=False)
    call = door.start_call()
    await until_answered(door)
    hub_call = running_call(hub)
    pressed = "0123456789" * 7
    for key in pressed:
        assert await info(call, DTMF_CONTENT_TYPE, dtmf_body(key, 100)) == 200
    async with asyncio.timeout(STEP):
        while hub_call.variables.get("code", "")[-1:] != pressed[-1] or hub_call.keys.qsize():
            await asyncio.sleep(0.02)
    assert hub_call.variables["code"] == pressed[-MAX_KEYPRESS_VAR:]
