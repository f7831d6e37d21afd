"""Requests inside a call count only on the connection of the leg they belong to.

A dialog's Call-ID and tags are in every request of it: whoever sees one (or guesses) could
end or steer someone else's call from a WebSocket of their own. Here a stranger who knows them
exactly (read from the real call) sends each in-dialog method for each leg, from a socket that
never registered and from one registered as another identity; the call goes on untouched.
"""

from __future__ import annotations

import asyncio
import copy

import pytest

from intercom.sdk import CallStatus
from intercom.sdk.registration import RegistrationState
from intercom.sip import Dialog, Response, Via
from intercom.sip.dtmf import DTMF_CONTENT_TYPE, dtmf_body

from ..conftest import STEP
from ..units import DESK_HZ, DOOR_HZ, door_and_desk

FORBIDDEN = (403, "Forbidden (not the connection of this dialog)")


async def stranger(hub, raw_sip, registered: bool):
    sip = await raw_sip()
    if registered:
        response = await sip.exchange(RegistrationState(hub.address).build(hub.token("lobby")))
        assert response.status_code == 200
    return sip


def forged(dialog: Dialog, method: str) -> object:
    """What the leg's own client would send next in its dialog, made from a copy of it."""
    copied = copy.copy(dialog)
    via = Via("WSS", "stranger.invalid", None, {})
    if method == "ACK":
        return copied.create_ack(copied.local_seq, via)
    if method == "INFO":
        return copied.create_request(
            "INFO", via, headers=[("Content-Type", DTMF_CONTENT_TYPE)], body=dtmf_body("9", 100)
        )
    return copied.create_request(method, via)


@pytest.mark.parametrize("registered", [False, True], ids=["unregistered", "registered as lobby"])
@pytest.mark.parametrize("side", ["caller", "callee"])
async def test_a_strangers_in_dialog_requests_are_refused_and_change_nothing(hub, raw_sip, make_unit, side, registered):
    door, desk = await door_and_desk(hub, make_unit)
    call = door.start_call()
    answered = await desk.accept(await desk.next_incoming())
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    await desk.events.until(lambda: CallStatus.CONFIRMED in desk.events.of("call.status"))
    (hub_call,) = hub.running.app.state.calls.calls.values()
    _, hub_dialog = hub_call.dialog_of(side)
    assert hub_dialog is not None
    seen = hub_dialog.remote_seq
    own = (call if side == "caller" else answered).dialog
    assert own is not None
    sip = await stranger(hub, raw_sip, registered)

    for method in ("BYE", "INFO", "UPDATE", "INVITE"):
        await sip.send(forged(own, method))
        response = await sip.final_response()
        assert (response.status_code, response.reason) == FORBIDDEN, method
    await sip.send(forged(own, "ACK"))  # no answer: the next message is the OPTIONS' answer
    options = RegistrationState(hub.address).build(hub.token("lobby")).text().replace("REGISTER", "OPTIONS")
    answer = await sip.exchange(options)
    assert isinstance(answer, Response) and answer.cseq.method == "OPTIONS"

    assert hub_dialog.remote_seq == seen  # not one of them counted in the dialog
    assert hub.running.app.state.calls.calls == {hub_call.id: hub_call} and not hub_call.ended.is_set()
    assert CallStatus.ENDED not in door.events.of("call.status") + desk.events.of("call.status")
    # The call goes on: audio both ways, and the real parties' digits (only theirs) get through.
    async with asyncio.timeout(STEP):
        await call.sink.wait_until(lambda: call.sink.dominant_frequency(0.3) == pytest.approx(DESK_HZ, abs=15), STEP)
        await answered.sink.wait_until(
            lambda: answered.sink.dominant_frequency(0.3) == pytest.approx(DOOR_HZ, abs=15), STEP
        )
    call.send_digits("5")
    answered.send_digits("6")
    await desk.events.until(lambda: len(desk.events.of("call.digits")) >= 1)
    await door.events.until(lambda: len(door.events.of("call.digits")) >= 1)
    assert desk.events.of("call.digits") == ["5"] and door.events.of("call.digits") == ["6"]
    async with asyncio.timeout(STEP):
        await call.disconnect()
    await desk.events.until(lambda: CallStatus.ENDED in desk.events.of("call.status"))
