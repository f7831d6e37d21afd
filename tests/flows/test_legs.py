"""Each device rung is a leg in the call log, and its status says how the ringing ended: a bare SIP
desk answers as the test says."""

from __future__ import annotations

import pytest
from aiortc.mediastreams import AudioStreamTrack

from intercom.sdk import CallStatus
from intercom.sip import make_response

from ..units import next_request, registered_raw_desk
from .flows import call_log, door, store, until_over


@pytest.mark.parametrize(
    ("status", "leg_status", "caller_status"),
    [(486, "busy", "busy"), (603, "busy", "busy"), (480, "no_answer", "no_answer"), (500, "failed", "failed")],
)
async def test_a_refusal_is_logged_on_the_leg_and_the_caller(
    hub, raw_sip, make_unit, status, leg_status, caller_status
):
    await store(hub, [{"id": "ring", "action": "transfer", "options": {"destination": "client:desk"}}])
    desk = await registered_raw_desk(hub, raw_sip)
    unit = await door(make_unit, AudioStreamTrack)
    unit.start_call()
    invite = await next_request(desk, "INVITE")
    await desk.send(make_response(invite, 180, to_tag="raw", headers=[("Contact", "<sip:desk@raw.invalid>")]))
    await desk.send(make_response(invite, status, to_tag="raw"))
    await next_request(desk, "ACK")
    assert await until_over(unit) is CallStatus.FAILED
    record, legs, _ = await call_log(hub)
    assert [(leg.direction, leg.status) for leg in legs] == [("incoming", leg_status), ("outgoing", leg_status)]
    assert all(leg.answered_at is None and leg.ended_at is not None for leg in legs)
    assert record.status == "ended"
