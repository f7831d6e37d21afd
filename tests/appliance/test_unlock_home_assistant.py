"""Home Assistant's Open door through the hub, outside any call, on a loopback hub with a real
door unit: it opens only a door whose env file names source:home_assistant, the audit says
"home assistant", and what only looks like the hub's request opens nothing."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

from intercom.appliance.unlock_store import UnlockStore
from intercom.hub.door_unlock import ask_door_to_open
from intercom.hub.legs import HubAddress
from intercom.hub.mqtt.assistant import HomeAssistantLink
from intercom.hub.mqtt.bridge import MqttBridge
from intercom.hub.mqtt.settings import MqttSettings
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


def link_on(hub, *, open_door: bool = True) -> tuple[HomeAssistantLink, MqttBridge]:
    """The hub's Home Assistant link on a bridge that is not started: what it sends stays queued."""
    running = hub.running.app.state
    config = replace(running.config, mqtt_open_door=open_door, mqtt_open_min_interval=60.0)
    bridge = MqttBridge(MqttSettings(host="127.0.0.1", port=1))
    return HomeAssistantLink(bridge, config, running.registrar, hub.storage), bridge


async def test_the_open_door_command_opens_once_through_the_hub(hub, make_unit, state_dir):
    door, board, store = await door_unit(hub, make_unit, state_dir, ("desk", "source:home_assistant"))
    link, _ = link_on(hub)
    try:
        async with asyncio.timeout(STEP):
            assert await link.open_door("intercom/door/open", b"PRESS", retained=True) is None  # a retained one
            assert await link.open_door("intercom/door/open", b"PRESS", retained=False) == 200
            await board.until(lambda: board.pulses)
            assert (
                await link.open_door("intercom/door/open", b"PRESS", retained=False) is None
            )  # within mqtt_open_min_interval
        assert board.pulses == [2.5]
        assert [(entry.verdict, entry.who) for entry in audit(state_dir)] == [("open", "home assistant")]
    finally:
        async with asyncio.timeout(STEP):
            await door.client.destroy()
        store.close()


async def test_the_link_announces_the_doors_and_follows_their_registrations(hub, make_unit, state_dir):
    link, bridge = link_on(hub, open_door=False)
    await link.announce()

    def online() -> list[bytes]:
        return [payload for topic, payload, *_ in bridge._queue if topic == "intercom/door/online"]

    queued = {topic: payload for topic, payload, retain, _ in bridge._queue if retain}
    assert online() == [b"OFF"]
    assert queued["intercom/door/call"] == b"OFF"  # no call since the start, whatever a crash left retained
    assert queued["homeassistant/button/intercom_door/open/config"] == b""  # off: no Open door button
    assert json.loads(queued["homeassistant/event/intercom_door/doorbell/config"])["state_topic"] == (
        "intercom/door/doorbell"
    )
    door, _, store = await door_unit(hub, make_unit, state_dir, ("desk",))
    try:
        assert online() == [b"OFF", b"ON"]  # told by the registrar as the door registered
    finally:
        async with asyncio.timeout(STEP):
            await door.client.destroy()
        store.close()
    async with asyncio.timeout(STEP):
        while online()[-1] != b"OFF":  # the hub drops the binding as the socket closes
            await asyncio.sleep(0.01)
    assert online() == [b"OFF", b"ON", b"OFF"]
