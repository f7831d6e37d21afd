"""Home Assistant's Open door through the hub, outside any call, on a loopback hub with a real
door unit: it opens only a door whose env file names source:home_assistant, the audit says
"home assistant", and what only looks like the hub's request opens nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from intercom.appliance.unlock_store import UnlockStore
from intercom.hub.door_unlock import ask_door_to_open
from intercom.hub.legs import HubAddress
from intercom.sip.door import ASSERTED_IDENTITY, ASSERTED_SOURCE, asserted_source
from intercom.sip.headers import Headers

from ..conftest import STEP
from ..units import DOOR_HZ
from .controllers import unit
from .test_unlock_calls import audit

TIMEOUT = 2.0


async def door_unit(hub, make_unit, state_dir: Path, unlock_from: tuple[str, ...]):
    store = UnlockStore.open(state_dir)
    door, board = await unit(make_unit, "door", "door", DOOR_HZ, "door", unlock_store=store, unlock_from=unlock_from)
    return door, board, store


async def ask(hub, door: str = "door") -> int:
    running = hub.running.app.state
    async with asyncio.timeout(STEP):
        return await ask_door_to_open(running.registrar, HubAddress.of(running.config), door, "home_assistant", TIMEOUT)


async def test_a_door_that_names_home_assistant_opens_once_and_says_who(hub, make_unit, state_dir):
    door, board, store = await door_unit(hub, make_unit, state_dir, ("desk", "source:home_assistant"))
    try:
        assert await ask(hub) == 200
        await board.until(lambda: board.pulses)
        assert board.pulses == [2.5]  # one pulse of the door's relay
        (entry,) = audit(state_dir)
        assert (entry.verdict, entry.source, entry.who, entry.call_id) == ("open", "remote", "home assistant", None)
        assert entry.detail == "unlock request (home assistant through the hub)"
    finally:
        async with asyncio.timeout(STEP):
            await door.client.destroy()
        store.close()


async def test_a_door_that_does_not_name_it_refuses_and_logs_the_refusal(hub, make_unit, state_dir):
    door, board, store = await door_unit(hub, make_unit, state_dir, ("desk", "group:phones"))
    try:
        assert await ask(hub) == 200  # the door took the request ...
        async with asyncio.timeout(STEP):
            while not audit(state_dir):
                await asyncio.sleep(0.01)
        (entry,) = audit(state_dir)
        assert (entry.verdict, entry.who) == ("refused", "home assistant")  # ... and refused it
        assert board.pulses == []
    finally:
        async with asyncio.timeout(STEP):
            await door.client.destroy()
        store.close()


async def test_a_door_that_is_not_registered_gets_nothing(hub):
    assert await ask(hub, "gate") == 404


def test_the_source_counts_only_alone_and_well_formed() -> None:
    def headers(*lines: tuple[str, str]) -> Headers:
        built = Headers()
        for name, value in lines:
            built.add(name, value)
        return built

    assert asserted_source(headers((ASSERTED_SOURCE, "home_assistant"))) == "home_assistant"
    assert asserted_source(headers()) is None
    assert asserted_source(headers((ASSERTED_SOURCE, "home assistant"))) is None
    assert asserted_source(headers((ASSERTED_SOURCE, "a"), (ASSERTED_SOURCE, "b"))) is None
    # next to an identity it is a client's request passed on, never the hub's own
    both = headers((ASSERTED_SOURCE, "home_assistant"), (ASSERTED_IDENTITY, "<sip:desk@hub>"))
    assert asserted_source(both) is None
