"""Two hubs behind one Kamailio edge on one PostgreSQL database: a unit registers through either,
is called from either, and loses nothing when one dies (README "Running for many buildings")."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import connect

from intercom.sdk import CallStatus
from intercom.sip import Response

from ..conftest import RawSip, replay
from ..units import DESK_HZ, DOOR_HZ, STEP, Unit, door_and_desk
from .conftest import Building

HUBS = {"hub-1", "hub-2"}


def units_at(building: Building, unit_at) -> Callable[..., Any]:
    """SDK units connected to the building's edge, each registered through whichever hub it chose."""
    return functools.partial(unit_at, building)


async def talk(door: Unit, desk: Unit, calls: int) -> None:
    """The door calls the desk (its ``calls``-th call), the desk answers, each hears the other, the door hangs up."""
    call = door.start_call()
    answered = await desk.accept(await desk.next_incoming(calls))
    await door.events.until(lambda: door.events.of("call.status").count(CallStatus.CONFIRMED) == calls)
    async with asyncio.timeout(STEP):
        await call.sink.wait_until(lambda: call.sink.dominant_frequency(0.3) == pytest.approx(DESK_HZ, abs=15), STEP)
        await answered.sink.wait_until(
            lambda: answered.sink.dominant_frequency(0.3) == pytest.approx(DOOR_HZ, abs=15), STEP
        )
        await call.disconnect()
    await desk.events.until(lambda: desk.events.of("call.status").count(CallStatus.ENDED) == calls)


async def ended_calls(building: Building, count: int) -> list[str]:
    """The hubs of the first ``count`` calls, once each is logged as ended."""
    async with asyncio.timeout(STEP):
        while True:
            rows = await building.storage.rows("SELECT hub, body FROM calls ORDER BY created_at")
            if len(rows) >= count and all('"status":"ended"' in body.replace(" ", "") for _, body in rows):
                return [hub for hub, _ in rows]
            await asyncio.sleep(0.05)  # polling the shared log, with the deadline above


async def test_the_published_register_through_the_edge_is_in_the_location_both_hubs_share(building: Building) -> None:
    trust = ssl.create_default_context(cafile=str(building.cert))
    async with asyncio.timeout(STEP):
        websocket = await connect(building.edge.url, subprotocols=["sip"], ssl=trust)  # type: ignore[list-item]
    try:
        sip = RawSip(websocket)
        register = replay("register-first.sip", building.address, building.token("desk"))
        response = await sip.exchange(register)
        assert isinstance(response, Response) and response.status_code == 200, response
        assert response.headers.get("Content-Type") == "application/json"
        first = await building.registered_through("desk")
        # the refresh (round robin: through the other hub) replaces the binding, it adds none
        again = register.replace("CSeq: 1 REGISTER", "CSeq: 2 REGISTER").replace("z9hG4bK", "z9hG4bKx", 1)
        assert (await sip.exchange(again)).status_code == 200
        second = await building.registered_through("desk")
        assert {first, second} == HUBS
    finally:
        async with asyncio.timeout(STEP):
            await websocket.close()


async def test_a_door_calls_a_desk_registered_through_the_other_hub_with_audio_both_ways(
    building: Building, unit_at
) -> None:
    door, desk = await door_and_desk(building, units_at(building, unit_at))
    desk_hub = await building.registered_through("desk")
    building.drain(desk_hub)  # the call cannot go where the desk registered
    await talk(door, desk, 1)
    assert await ended_calls(building, 1) == list(HUBS - {desk_hub})


async def test_a_hub_killed_while_idle_loses_no_registration_and_new_calls_go_to_the_other(
    building: Building, unit_at
) -> None:
    door, desk = await door_and_desk(building, units_at(building, unit_at))
    desk_hub = await building.registered_through("desk")
    building.hub(desk_hub).kill()
    survivor = (HUBS - {desk_hub}).pop()
    assert await building.registered_through("desk") == desk_hub  # the row outlives its hub
    for calls in (1, 2):  # whether the edge has noticed yet or not: it fails over to the survivor
        await talk(door, desk, calls)
    assert await ended_calls(building, 2) == [survivor, survivor]
