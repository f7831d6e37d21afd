"""A hub killed mid-call (issue 20): the edge hangs the call up for both units (deploy/kamailio/,
"A hub killed mid-call") and a surviving hub logs it as ended."""

from __future__ import annotations

import asyncio

import pytest

from intercom.sdk import CallStatus

from ..units import DESK_HZ, DOOR_HZ, STEP, door_and_desk
from .conftest import Building
from .test_two_hubs import HUBS, ended_calls, talk, units_at


async def test_a_hub_killed_mid_call_ends_the_call_for_both_units_and_it_is_logged(building: Building, unit_at) -> None:
    door, desk = await door_and_desk(building, units_at(building, unit_at))
    call = door.start_call()
    answered = await desk.accept(await desk.next_incoming())
    await door.events.until(lambda: CallStatus.CONFIRMED in door.events.of("call.status"))
    async with asyncio.timeout(STEP):  # a real call: each hears the other
        await call.sink.wait_until(lambda: call.sink.dominant_frequency(0.3) == pytest.approx(DESK_HZ, abs=15), STEP)
        await answered.sink.wait_until(
            lambda: answered.sink.dominant_frequency(0.3) == pytest.approx(DOOR_HZ, abs=15), STEP
        )
    [carrier] = await building.call_hubs()
    assert carrier in HUBS

    building.hub(carrier).kill()  # no BYE from it, ever
    for unit in (door, desk):  # the edge's probing takes it out (1 s), its calls end (1 s)
        await unit.events.until(lambda unit=unit: CallStatus.ENDED in unit.events.of("call.status"))
    hub = building.hub(carrier).sip_address
    await building.edge.logged(f"hub {hub} is down: the edge hangs up the 2 calls it carried")
    assert await ended_calls(building, 1) == [carrier]  # logged by the survivor's sweeper
    await talk(door, desk, 2)  # and the units go on: the next call is the survivor's
    assert await ended_calls(building, 2) == [carrier, (HUBS - {carrier}).pop()]
