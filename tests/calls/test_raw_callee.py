"""The hub against a bare SIP callee: what it passes back to the caller, and what it sends the callee."""

from __future__ import annotations

import asyncio

import pytest

from intercom.sdk import CallStatus
from intercom.sip import make_response

from ..conftest import STEP
from ..units import next_request, registered_raw_desk, store_flow


@pytest.mark.parametrize("status", [486, 480, 603])
async def test_the_callees_refusal_reaches_the_caller_and_is_acked(hub, raw_sip, make_unit, status):
    await store_flow(hub, "door", "client:desk")
    desk = await registered_raw_desk(hub, raw_sip)
    door = await make_unit("door", 440.0, outgoing="door", incoming=False)
    door.start_call()
    invite = await next_request(desk, "INVITE")
    assert invite.from_.display_name == "door" and invite.headers.get("Content-Type") == "application/sdp"
    assert "opus/48000" in invite.body.decode() and "PCMU" not in invite.body.decode()
    await desk.send(make_response(invite, 180, to_tag="raw1", headers=[("Contact", "<sip:desk@raw.invalid>")]))
    await door.events.until(lambda: CallStatus.RINGING in door.events.of("call.status"))
    await desk.send(make_response(invite, status, to_tag="raw1"))
    ack = await next_request(desk, "ACK")
    assert ack.headers.get("Via") == invite.headers.get("Via") and ack.cseq.number == invite.cseq.number
    await door.events.until(lambda: door.events.of("call.error"))
    assert door.events.of("call.error")[0].message.startswith(f"RTC Session failed: SIP/2.0 {status} ")


async def test_a_decline_ends_the_group_ring_at_once(hub, raw_sip, make_unit):
    await store_flow(hub, "door", "client:desk,client:kitchen")
    desk = await registered_raw_desk(hub, raw_sip)
    kitchen = await make_unit("kitchen", 660.0)
    door = await make_unit("door", 440.0, outgoing="door", incoming=False)
    door.start_call()
    invite = await next_request(desk, "INVITE")
    ringing_kitchen = await kitchen.next_incoming()
    await desk.send(make_response(invite, 603, to_tag="raw2"))
    await kitchen.events.until(lambda: kitchen.events.canceled == [ringing_kitchen])
    await door.events.until(lambda: door.events.of("call.error"))
    assert door.events.of("call.error")[0].message.startswith("RTC Session failed: SIP/2.0 603 ")


async def test_a_callee_whose_socket_closes_mid_call_ends_the_call_for_the_caller(hub, raw_sip, make_unit):
    await store_flow(hub, "door", "client:desk")
    door = await make_unit("door", 440.0, outgoing="door", incoming=False)
    desk = await make_unit("desk", 880.0)
    door.start_call()
    await desk.accept(await desk.next_incoming())
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    (connection,) = [
        c for c in hub.running.app.state.sip.connections if hub.running.registrar.lookup("desk")[0].connection is c
    ]
    connection.close(1011, "desk lost power")
    await door.events.until(lambda: CallStatus.ENDED in door.events.of("call.status"))
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()


async def test_a_caller_whose_socket_closes_while_ringing_cancels_the_callee(hub, make_unit):
    await store_flow(hub, "door", "client:desk")
    door = await make_unit("door", 440.0, outgoing="door", incoming=False)
    desk = await make_unit("desk", 880.0)
    door.start_call()
    incoming = await desk.next_incoming()
    (caller_connection,) = [call.caller.connection for call in hub.running.app.state.calls.calls.values()]
    caller_connection.close(1011, "door lost power")
    await desk.events.until(lambda: desk.events.canceled == [incoming])
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()
