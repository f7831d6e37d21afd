"""Revoking a key (``intercom keys revoke``, another process writing the database) ends at once
what stands on it: the bindings its tokens made, their ringing, and the calls they are in."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from intercom.auth import unit_scope
from intercom.hub import Storage
from intercom.sdk import CallStatus

from ..conftest import STEP, connect_unit
from ..units import DESK_HZ, DOOR_HZ, store_flow

REVOCATION_BOUND = 3.0  # the hub polls the database every 0.5 s; a BYE round trip on loopback is quick


@pytest.fixture
async def units(hub):
    """A door and a desk, each on a unit key of its own, and the flow ``door`` that rings the desk."""
    await store_flow(hub, "door", "client:desk")
    keys = {
        "door": await hub.storage.create_key("door unit", unit_scope("door", "door", "door")),
        "desk": await hub.storage.create_key("desk unit", unit_scope("desk", "desk", "ring_door")),
    }
    desk = await connect_unit(dataclasses.replace(hub, key=keys["desk"]), "desk", DESK_HZ)
    door = await connect_unit(dataclasses.replace(hub, key=keys["door"]), "door", DOOR_HZ, outgoing="door")
    yield door, desk, keys
    for unit in (door, desk):
        async with asyncio.timeout(STEP):
            await unit.client.destroy()


async def revoke_elsewhere(hub, key_id: str) -> None:
    """As `intercom keys revoke` does it: another connection to the database."""
    cli_side = Storage(hub.storage.data_dir)
    try:
        assert await cli_side.revoke_key(key_id)
    finally:
        cli_side.close()


@pytest.mark.parametrize("revoked", ["desk", "door"])
async def test_a_revoked_key_ends_the_call_and_drops_its_bindings(hub, units, revoked):
    door, desk, keys = units
    call = door.start_call()
    await desk.accept(await desk.next_incoming())
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    await desk.events.until(lambda: CallStatus.CONFIRMED in desk.events.of("call.status"))
    registrar = hub.running.registrar
    assert len(registrar.lookup("desk")) == 1 and len(registrar.lookup("door")) == 1

    started = time.monotonic()
    await revoke_elsewhere(hub, keys[revoked].id)
    for unit in (door, desk):  # each side gets a BYE
        await unit.events.until(lambda unit=unit: CallStatus.ENDED in unit.events.of("call.status"), REVOCATION_BOUND)
    assert time.monotonic() - started < REVOCATION_BOUND
    assert registrar.lookup(revoked) == []
    other = "door" if revoked == "desk" else "desk"
    assert len(registrar.lookup(other)) == 1  # the other key's binding stays
    async with asyncio.timeout(STEP):
        await hub.running.app.state.calls.wait_idle()
    assert call.status is CallStatus.ENDED


async def test_a_revoked_key_stops_its_device_ringing(hub, units):
    door, desk, keys = units
    call = door.start_call()
    incoming = await desk.next_incoming()
    await door.events.until(lambda: CallStatus.RINGING in door.events.of("call.status"))
    await revoke_elsewhere(hub, keys["desk"].id)
    await desk.events.until(lambda: desk.events.canceled == [incoming], REVOCATION_BOUND)
    # The desk's ringing ended with 487 (our CANCEL): the door hears that, as when a caller cancels.
    await door.events.until(lambda: CallStatus.ENDED in door.events.of("call.status"), REVOCATION_BOUND)
    assert hub.running.registrar.lookup("desk") == []
    assert call.status is CallStatus.ENDED


async def test_a_revoked_keys_token_is_refused_at_the_next_call(hub, units):
    door, _, keys = units
    await revoke_elsewhere(hub, keys["door"].id)
    call = door.start_call()  # the door's socket is still open: its INVITE is refused
    await door.events.until(lambda: CallStatus.FAILED in door.events.of("call.status"))
    assert call.status is CallStatus.FAILED
