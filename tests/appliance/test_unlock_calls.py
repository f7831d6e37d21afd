"""Who may open the door, through real calls on a loopback hub: the desk's UNLOCK (no code typed), codes
typed at a desk, a flow of the hub's own, a desk not in the allow-list, a client forging who it is;
lockouts per source; and the events the door reports to the hub."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from intercom.appliance.lights import LOCKOUT_PATTERN
from intercom.appliance.unlock import WRONG_LIMIT
from intercom.appliance.unlock_store import AuditEntry, UnlockStore
from intercom.hub.records import Webhook
from intercom.media import new_peer_connection
from intercom.sdk import Call, CallStatus
from intercom.sdk.invite import build_invite
from intercom.sdk.registration import RegistrationState
from intercom.sip import Dialog, Via
from intercom.sip.door import ASSERTED_IDENTITY, UNLOCK_CONTENT_TYPE
from intercom.sip.dtmf import DTMF_CONTENT_TYPE, dtmf_body

from ..conftest import ENDPOINT_LOOPBACK, STEP
from ..flows.flows import store
from ..flows.receiver import receiver
from ..units import DESK_HZ, DOOR_HZ, store_flow
from .controllers import CODE, call_light, door_calls_and_desk_answers, unit


def audit(state_dir: Path) -> list[AuditEntry]:
    """The door's unlock log, newest first, read as ``intercom unlocks list`` reads it."""
    opened = UnlockStore.open(state_dir)
    try:
        return opened.latest(100)
    finally:
        opened.close()


async def digits_heard(call: Call, count: int) -> None:
    """Until the door's call heard ``count`` digits (the controller, listening first, judged them)."""
    heard: list[str] = []
    enough = asyncio.Event()

    def hear(digit: str) -> None:
        heard.append(digit)
        if len(heard) >= count:
            enough.set()

    call.on("digits", hear)
    async with asyncio.timeout(STEP):
        await enough.wait()


async def test_the_desks_unlock_opens_the_door_with_no_code_typed(door_and_desk, state_dir):
    (door, door_board), (desk, _) = door_and_desk
    await door_calls_and_desk_answers(door_and_desk)
    desk.press("unlock")
    await door_board.until(lambda: door_board.pulses)
    assert door_board.pulses == [2.5]
    (entry,) = audit(state_dir)
    assert (entry.verdict, entry.source, entry.who, entry.detail) == ("open", "remote", "desk", "unlock request")
    assert entry.call_id == door.call.id


async def test_five_hashes_at_the_door_lock_its_keypad_but_leave_the_desk_working(door_and_desk, state_dir):
    (door, door_board), (desk, desk_board) = door_and_desk
    for _ in range(WRONG_LIMIT):
        door.press("#")
    assert door_board.lights["call"] == LOCKOUT_PATTERN  # the visitor sees that guessing stopped
    for key in CODE:
        door.press(key)
    assert door_board.pulses == []  # the keypad is locked out, even for the right code
    await door_calls_and_desk_answers(door_and_desk)  # a call shows as a call, lockout or not
    for key in CODE:  # the resident types the code at the desk's keypad: its own counter
        desk.press(key)
    await door_board.until(lambda: len(door_board.pulses) == 1)
    desk.press("unlock")
    await door_board.until(lambda: len(door_board.pulses) == 2)
    desk.press("reject")  # hang up: the idle door shows its lockout again
    await desk_board.until(call_light(desk_board, CallStatus.ENDED))
    await door_board.until(lambda: door_board.lights["call"] == LOCKOUT_PATTERN)
    verdicts = [(entry.verdict, entry.who) for entry in reversed(audit(state_dir))]
    assert verdicts == [*[("wrong", "keypad")] * WRONG_LIMIT, ("lockout", "keypad"), ("open", "desk"), ("open", "desk")]


async def test_a_desk_not_in_the_allow_list_cannot_open_the_door(hub, make_unit, state_dir):
    await store_flow(hub, "door", "client:desk")
    desk, desk_board = await unit(make_unit, "desk", "desk", DESK_HZ, "desk")
    door_store = UnlockStore.open(state_dir)
    try:
        door, door_board = await unit(
            make_unit, "door", "door", DOOR_HZ, "door", unlock_from=("hall",), unlock_store=door_store
        )
        await door_calls_and_desk_answers(((door, door_board), (desk, desk_board)))
        async with asyncio.timeout(STEP):
            assert await desk.call.request_unlock() is True  # it arrived; the door said no
        desk.send_digit(CODE)
        await digits_heard(door.call, len(CODE))
        assert door_board.pulses == []
        assert [(e.verdict, e.who, e.detail) for e in audit(state_dir)] == [
            ("refused", "desk", "a code"),
            ("refused", "desk", "an unlock request"),
        ]
    finally:
        await door.client.destroy()
        door_store.close()


async def test_the_right_code_from_a_flow_of_the_hubs_own_opens_nothing(hub, make_unit, state_dir):
    """The attack of issue 14: CALL at an empty house, the hub's own flow answers (a voicemail
    greeting here), and keys with the right code are made to arrive in that call."""
    steps = [
        {"action": "pause", "options": {"length": 1}},
        {"action": "sendKeys", "options": {"keys": CODE}},
        {"action": "pause", "options": {"length": 20}},
    ]
    await store(hub, steps)
    door_store = UnlockStore.open(state_dir)
    try:
        door, door_board = await unit(make_unit, "door", "door", DOOR_HZ, "door", unlock_store=door_store)
        door.press("call")
        await door_board.until(call_light(door_board, CallStatus.CONFIRMED))
        await digits_heard(door.call, len(CODE))
        assert door_board.pulses == []
        (entry,) = audit(state_dir)
        assert (entry.verdict, entry.source, entry.who, entry.call_id) == ("refused", "remote", None, door.call.id)
    finally:
        await door.client.destroy()
        door_store.close()


async def test_a_client_that_forges_who_it_is_gets_nothing(hub, raw_sip, make_unit, state_dir):
    """A kitchen panel (raw SIP here) calls the door that answers by itself, and says it is the desk
    in every request: the door hears the kitchen, which may not open it."""
    await store_flow(hub, "kitchen", "client:door")
    door_store = UnlockStore.open(state_dir)
    kitchen = await raw_sip()
    media = new_peer_connection(ENDPOINT_LOOPBACK)
    try:
        door, door_board = await unit(
            make_unit, "door", "door", DOOR_HZ, "door", auto_answer=True, unlock_store=door_store
        )
        media.addTransceiver("audio", direction="sendrecv")
        await media.setLocalDescription(await media.createOffer())
        token = hub.token("kitchen", incoming=False, outgoing="kitchen")
        invite = build_invite(RegistrationState(hub.address), token, media.localDescription.sdp, {})
        forged = (ASSERTED_IDENTITY, f"<sip:desk@{hub.address}>")
        invite.headers.add(*forged)
        await kitchen.send(invite)
        ok = await kitchen.final_response()
        assert ok.status_code == 200
        dialog = Dialog.from_uac(invite, ok)
        via = Via("WSS", "kitchen.invalid", None, {})
        await kitchen.send(dialog.create_ack(invite.cseq.number, via))
        for key in CODE:
            info = dialog.create_request(
                "INFO", via, headers=[("Content-Type", DTMF_CONTENT_TYPE), forged], body=dtmf_body(key, 100)
            )
            assert (await kitchen.exchange(info)).status_code == 200
        unlock = dialog.create_request("INFO", via, headers=[("Content-Type", UNLOCK_CONTENT_TYPE), forged])
        assert (await kitchen.exchange(unlock)).status_code == 200  # the door answered: it has judged
        assert door_board.pulses == []
        assert [(e.verdict, e.who) for e in audit(state_dir)] == [("refused", "kitchen"), ("refused", "kitchen")]
    finally:
        await media.close()
        await door.client.destroy()
        door_store.close()


@pytest.mark.loopback_requests
async def test_the_door_tells_the_hub_each_wrong_code_lockout_and_unlock(door_and_desk, hub):
    (door, door_board), (desk, _) = door_and_desk
    with receiver() as webhook:
        await hub.storage.put(Webhook(url=webhook.url("/hook"), token="a-webhook-token-of-32-bytes-and-more"))
        for _ in range(WRONG_LIMIT):
            for key in "9999#":
                door.press(key)
        await door_calls_and_desk_answers(door_and_desk)
        desk.press("unlock")
        await door_board.until(lambda: door_board.pulses)
        payloads = []  # the call's own items (call, leg) come too
        while len(payloads) < WRONG_LIMIT + 2:
            items = json.loads((await webhook.next()).body)["items"]
            payloads += [item["payload"] for item in items if item["type"] == "unlock"]
    assert {p["door"] for p in payloads} == {"door"}
    assert sorted((p["event"], p["source"], p["who"]) for p in payloads) == sorted(
        [*[("wrong", "keypad", "keypad")] * WRONG_LIMIT, ("lockout", "keypad", "keypad"), ("open", "remote", "desk")]
    )
    (opened,) = [p for p in payloads if p["event"] == "open"]
    assert opened["callId"] == door.call.id


async def test_a_hub_that_is_away_does_not_hold_up_the_strike(hub, make_unit, state_dir):
    door_store = UnlockStore.open(state_dir)
    try:
        door, door_board = await unit(make_unit, "door", "door", DOOR_HZ, "door", unlock_store=door_store)
        await door.client.destroy()  # no hub to tell
        for key in CODE:
            door.press(key)
        assert door_board.pulses == [2.5]  # at once, in the press: the report to the hub is not waited for
        assert audit(state_dir)[0].verdict == "open"
    finally:
        door_store.close()


async def test_a_door_that_restarts_during_a_lockout_shows_it_and_keeps_it(hub, make_unit, state_dir):
    before = UnlockStore.open(state_dir)
    try:
        first, _ = await unit(make_unit, "door", "door", DOOR_HZ, "door", unlock_store=before)
        for _ in range(WRONG_LIMIT):
            first.press("#")
        first.close()
        await first.client.destroy()
    finally:
        before.close()
    after = UnlockStore.open(state_dir)  # the unit started again
    try:
        door, door_board = await unit(make_unit, "door", "door", DOOR_HZ, "door", unlock_store=after)
        assert door_board.lights["call"] == LOCKOUT_PATTERN
        for key in CODE:
            door.press(key)
        assert door_board.pulses == []
        door.close()
        await door.client.destroy()
    finally:
        after.close()
