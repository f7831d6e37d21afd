"""Who is at the other end, as the hub asserts it (P-Asserted-Identity from the sender's token), and
the desk's unlock request: on real calls, with a client that tries to forge the header."""

from __future__ import annotations

import asyncio
import json

import pytest

from intercom.hub.records import UnlockEvent, Webhook
from intercom.media import new_peer_connection
from intercom.sdk import CallStatus, Digits
from intercom.sdk.invite import build_invite, build_message
from intercom.sdk.registration import RegistrationState
from intercom.sip import Dialog, Request, Via
from intercom.sip.door import ASSERTED_IDENTITY, DOOR_EVENT_CONTENT_TYPE, UNLOCK_CONTENT_TYPE, asserted_identity
from intercom.sip.dtmf import DTMF_CONTENT_TYPE, dtmf_body

from ..conftest import ENDPOINT_LOOPBACK, STEP
from ..flows.flows import store
from ..flows.receiver import receiver
from ..units import store_flow

FORGED = "<sip:desk@evil.invalid>"


async def bridged(hub, make_unit):
    """The door calls, the desk answers: both calls confirmed, each following the unlock event too."""
    await store_flow(hub, "door", "client:desk")
    desk = await make_unit("desk", 880.0)
    door = await make_unit("door", 440.0, outgoing="door", incoming=False)
    door_call = door.start_call()
    incoming = await desk.next_incoming()
    desk_call = await desk.accept(incoming)
    for unit, call in ((door, door_call), (desk, desk_call)):
        call.on("unlock", unit.events.record("call.unlock"))
        await unit.events.until(lambda unit=unit: CallStatus.CONFIRMED in unit.events.of("call.status"))
    return door, door_call, desk, desk_call, incoming


async def test_each_side_learns_who_the_other_is(hub, make_unit):
    _, door_call, _, desk_call, incoming = await bridged(hub, make_unit)
    assert incoming.remote_identity == desk_call.remote_identity == "door"  # from the hub's INVITE
    assert door_call.remote_identity == "desk"  # from the hub's 200


async def test_digits_and_unlock_requests_carry_the_senders_identity(hub, make_unit):
    door, door_call, desk, desk_call, _ = await bridged(hub, make_unit)
    desk_call.send_digits("7")
    await door.events.until(lambda: door.events.of("call.digits"))
    (digit,) = door.events.of("call.digits")
    assert isinstance(digit, Digits) and digit == "7" and digit.asserted_identity == "desk"
    async with asyncio.timeout(STEP):
        assert await desk_call.request_unlock() is True
    await door.events.until(lambda: door.events.of("call.unlock"))
    assert door.events.of("call.unlock") == ["desk"]
    door_call.send_digits("1")
    await desk.events.until(lambda: desk.events.of("call.digits"))
    assert desk.events.of("call.digits")[0].asserted_identity == "door"


async def test_a_forged_asserted_identity_never_reaches_the_other_side(hub, raw_sip, make_unit):
    """A door (here: raw SIP) claims to be the desk in its INVITE and its INFOs: the desk sees the
    door, as the door's token says."""
    await store_flow(hub, "door", "client:desk")
    desk = await make_unit("desk", 880.0)
    door = await raw_sip()
    media = new_peer_connection(ENDPOINT_LOOPBACK)
    try:
        media.addTransceiver("audio", direction="sendrecv")
        await media.setLocalDescription(await media.createOffer())
        token = hub.token("door", incoming=False, outgoing="door")
        invite = build_invite(RegistrationState(hub.address), token, media.localDescription.sdp, {})
        invite.headers.add(ASSERTED_IDENTITY, FORGED)
        await door.send(invite)
        await forged_in_call(desk, door, invite)
    finally:
        await media.close()


async def forged_in_call(desk, door, invite: Request) -> None:
    incoming = await desk.next_incoming()
    desk_call = await desk.accept(incoming)
    desk_call.on("unlock", desk.events.record("call.unlock"))
    assert desk_call.remote_identity == "door"
    ok = await door.final_response()
    assert ok.status_code == 200 and asserted_identity(ok.headers) == "desk"
    dialog = Dialog.from_uac(invite, ok)
    via = Via("WSS", "setdn3a1sf12.invalid", None, {})
    await door.send(dialog.create_ack(invite.cseq.number, via))
    await desk.events.until(lambda: CallStatus.CONFIRMED in desk.events.of("call.status"))

    forged = [(ASSERTED_IDENTITY, FORGED)]
    digit = dialog.create_request(
        "INFO", via, headers=[("Content-Type", DTMF_CONTENT_TYPE), *forged], body=dtmf_body("5", 100)
    )
    assert (await door.exchange(digit)).status_code == 200
    unlock = dialog.create_request("INFO", via, headers=[("Content-Type", UNLOCK_CONTENT_TYPE), *forged])
    assert (await door.exchange(unlock)).status_code == 200  # passed on, as the door's
    await desk.events.until(lambda: desk.events.of("call.digits") and desk.events.of("call.unlock"))
    assert [d.asserted_identity for d in desk.events.of("call.digits")] == ["door"]
    assert desk.events.of("call.unlock") == ["door"]


async def test_keys_a_flow_of_the_hubs_own_sends_assert_nobody_and_it_takes_no_unlock_request(hub, make_unit):
    """sendKeys with the right code, as a relay on the door's cable would arrange it: no identity."""
    steps = [{"action": "sendKeys", "options": {"keys": "4711#"}}, {"action": "pause", "options": {"length": 20}}]
    await store(hub, steps)
    door = await make_unit("door", 440.0, outgoing="door", incoming=False)
    call = door.start_call()
    await door.events.until(lambda: len(door.events.of("call.digits")) == 5)
    assert door.events.of("call.digits") == list("4711#")
    assert {digit.asserted_identity for digit in door.events.of("call.digits")} == {None}
    assert call.remote_identity is None  # the hub answered for itself
    async with asyncio.timeout(STEP):
        assert await call.request_unlock() is False  # 403: not bridged to a client
    await call.disconnect()


@pytest.mark.loopback_requests
async def test_a_doors_event_reaches_the_webhooks_as_the_registered_identity(hub, raw_sip, make_unit):
    with receiver() as webhook:
        await hub.storage.put(Webhook(url=webhook.url("/hook"), token="a-webhook-token-of-32-bytes-and-more"))
        door = await make_unit("door", 440.0, outgoing="door")
        body = {"event": "lockout", "source": "keypad", "who": "keypad", "callId": None, "time": 1.8e9, "door": "x"}
        async with asyncio.timeout(STEP):
            answer = await door.client.send_message(DOOR_EVENT_CONTENT_TYPE, json.dumps(body).encode())
        assert answer.status_code == 200
        (item,) = json.loads((await webhook.next()).body)["items"]
    assert (item["type"], item["event"]) == ("unlock", "unlockCreated")
    payload = item["payload"]
    assert payload["door"] == "door"  # the registration's identity, not the body's
    assert (payload["event"], payload["source"], payload["who"], payload["callId"]) == (
        "lockout",
        "keypad",
        "keypad",
        None,
    )
    assert payload["time"] == "2027-01-15T08:00:00Z"
    (stored,), _ = await hub.storage.page(UnlockEvent)  # the building's audit, in the hub's database
    assert (stored.id, stored.door, stored.event, stored.at) == (payload["id"], "door", "lockout", 1.8e9)


async def test_a_doors_event_from_a_connection_that_never_registered_or_unreadable_is_refused(hub, raw_sip, make_unit):
    stranger = await raw_sip()
    body = json.dumps({"event": "open", "source": "remote", "who": "desk", "callId": None, "time": 1.8e9}).encode()
    message = build_message(RegistrationState(hub.address), DOOR_EVENT_CONTENT_TYPE, body)
    assert (await stranger.exchange(message)).status_code == 403
    door = await make_unit("door", 440.0, outgoing="door")
    for bad in (b"{", b"[]", b'{"event": "opened", "source": "keypad", "time": 1}', b'{"event": "open"}'):
        async with asyncio.timeout(STEP):
            answer = await door.client.send_message(DOOR_EVENT_CONTENT_TYPE, bad)
        assert answer.status_code == 400, bad
    assert (await hub.storage.page(UnlockEvent))[1] == 0  # nothing refused was stored
