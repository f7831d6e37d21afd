"""A paired phone at the door, end to end on a loopback hub, the Python SDK standing in for its page:
the door's flow rings the desk and every phone paired now (group:phones), the phone answers and
opens the door (INTERCOM_UNLOCK_FROM=desk,group:phones), the unlock log names it; revoked, its call
ends and it is rung no more; a client of the same name without the hub's word for the group opens nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from intercom.appliance.unlock_store import UnlockStore
from intercom.hub.callflows import CallFlow
from intercom.sdk import Call, CallStatus

from ..appliance.controllers import call_light, unit
from ..appliance.test_unlock_calls import audit
from ..units import DESK_HZ, DOOR_HZ, STEP, Unit, store_flow
from .pairing import Desk

PHONE_HZ = 880.0


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    (tmp_path / "door-state").mkdir()
    return tmp_path / "door-state"  # the door's unlock log


@pytest.fixture
async def door(hub, make_unit, state_dir: Path):
    """The door, whose CALL runs the embedded hub's default: the desk and the paired phones together."""
    await store_flow(hub, "door", "client:desk,group:phones")
    store = UnlockStore.open(state_dir)
    allowed = ("desk", "group:phones")
    made = await unit(make_unit, "door", "door", DOOR_HZ, "door", unlock_store=store, unlock_from=allowed)
    yield made
    async with asyncio.timeout(STEP):
        await made[0].client.destroy()
    store.close()


async def answered(phone: Unit, count: int = 1) -> Call:
    call = await phone.accept(await phone.next_incoming(count))
    await phone.events.until(lambda: call.status is CallStatus.CONFIRMED)
    return call


async def test_the_door_rings_the_phone_paired_now_which_answers_and_opens(desk_api: Desk, make_unit, door, state_dir):
    (controller, board) = door
    desk = await make_unit("desk", DESK_HZ)
    phone = await make_unit("anna_phone", PHONE_HZ, token=await desk_api.jwt(await desk_api.pair()))
    controller.press("call")
    await desk.next_incoming()  # both ring: the desk ...
    call = await answered(phone)  # ... and the phone, which answers first
    await desk.events.until(lambda: len(desk.events.canceled) == 1)
    await board.until(call_light(board, CallStatus.CONFIRMED))
    async with asyncio.timeout(STEP):
        assert await call.request_unlock() is True
    await board.until(lambda: board.pulses)
    (entry,) = audit(state_dir)
    assert (entry.verdict, entry.who, entry.detail) == ("open", "anna_phone", "unlock request (group phones)")


async def test_revoked_the_phones_call_ends_and_the_next_ring_leaves_it_out(desk_api: Desk, make_unit, door):
    (controller, board) = door
    desk = await make_unit("desk", DESK_HZ)
    phone = await make_unit("anna_phone", PHONE_HZ, token=await desk_api.jwt(await desk_api.pair()))
    controller.press("call")
    call = await answered(phone)
    await desk_api.book.revoke("anna_phone")
    await phone.events.until(lambda: call.status is CallStatus.ENDED)  # the sweeper ended it at once
    await board.until(call_light(board, CallStatus.ENDED))
    controller.press("call")
    await desk.next_incoming(2)
    assert len(phone.events.incoming) == 1  # not rung again
    assert [leg.identity for leg in desk_api.hub.running.app.state.registrar.lookup("group:phones")] == []


async def test_a_client_named_like_the_phone_but_not_paired_opens_nothing(desk_api: Desk, make_unit, door, state_dir):
    (controller, board) = door
    impostor = await make_unit("anna_phone", PHONE_HZ)  # a token of the admin key: no group asserted
    # group:phones would not ring it: the flow names it
    ring = {"id": "ring", "action": "transfer", "options": {"destination": "client:anna_phone"}}
    await desk_api.hub.storage.replace_call_flow(
        CallFlow.model_validate({"id": "door", "title": "door", "steps": [ring]})
    )
    controller.press("call")
    call = await answered(impostor)
    await board.until(call_light(board, CallStatus.CONFIRMED))
    async with asyncio.timeout(STEP):
        assert await call.request_unlock() is True  # delivered; the door said no
    (entry,) = audit(state_dir)
    assert (entry.verdict, entry.who) == ("refused", "anna_phone")
    assert board.pulses == []
