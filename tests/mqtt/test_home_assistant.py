"""Home Assistant end to end through a real mosquitto (issue 19, "Must show"): the hub's bridge wired
as the app wires it, a door unit whole on mock pins, and clients of the broker's own users: a
watcher that reads every topic, Home Assistant's user (of the bridge's topics it may write only
the Open door commands), a stranger who may do nothing.
What a subscriber sees of discovery, a ring, an Open door; what the broker's ACL, a wrong password
and a retained command do not achieve; and all of it again after the broker restarted."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest
from gpiozero.pins.mock import MockFactory

from intercom.appliance.unit import Unit
from intercom.hub import HubConfig, Storage, running_hub
from intercom.hub.mqtt.bridge import MqttBridge

from ..appliance.boards import Boards, press, until
from ..appliance.test_unit import settings_for
from ..appliance.test_unlock_calls import audit
from ..units import DESK_HZ, DOOR_HZ, STEP, store_flow
from .conftest import BRIDGE_USER, STRANGER_USER, Broker
from .test_bridge import Watcher, a_call, make_certificate, watching
from .test_discovery import DEVICE_CLASSES, DEVICE_KEYS, PLATFORMS

HA_USER = "homeassistant"
# Home Assistant's user as docs/home-assistant.md's ACL gives it: it reads what the bridge
# publishes, and of the bridge's topics may write nothing but the Open door commands.
HA_ACL = f"""user {HA_USER}
topic read intercom/#
topic write intercom/+/open
topic readwrite homeassistant/#
"""
CALL_BUTTON, RELAY = 17, 26  # the door's pins (the settings' defaults)
# What discovery gives each unit: (component, object_id), as home-assistant.io's platforms take them.
DOOR_ENTITIES = {
    ("binary_sensor", "online"),
    ("binary_sensor", "call"),
    ("sensor", "last_caller"),
    ("event", "doorbell"),
    ("sensor", "last_ring"),
    ("button", "open"),
}
DESK_ENTITIES = {("binary_sensor", "online"), ("binary_sensor", "call"), ("sensor", "last_caller")}
OPEN_REFUSED = "mqtt_open_min_interval"  # in the one line a paced command is refused with
RETAINED_REFUSED = "retained command ignored"
AVAILABILITY = "intercom/bridge/availability"


@pytest.fixture
async def broker(make_broker, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    """The broker with Home Assistant's user besides the conftest's; over TLS when a test asks
    (``@pytest.mark.parametrize("broker", ["tls"], indirect=True)``)."""
    tls: dict[str, object] = {}
    if getattr(request, "param", None) == "tls":
        ca = make_certificate(tmp_path, "test-ca", None)
        tls = {"tls": make_certificate(tmp_path, "broker", ca), "ca_file": ca[0]}
    running = make_broker(acl=HA_ACL, users=(HA_USER,), **tls)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def bridge_settings(broker: Broker, **options: object):
    """The bridge's settings, trusting the test CA when the broker speaks TLS."""
    return broker.settings(**({"ca_file": broker.ca_file} if broker.tls else {}), **options)


@pytest.fixture
def hub_config(hub_config: HubConfig, broker: Broker) -> HubConfig:
    # A long pace between Open door commands: a second press in a test is always within it.
    return replace(
        hub_config, mqtt=bridge_settings(broker), mqtt_open_door=True, mqtt_open_min_interval=60.0, doors=("door",)
    )


async def all_sent(bridge: MqttBridge) -> None:
    """Until the bridge is connected and the broker acknowledged everything it queued."""
    async with asyncio.timeout(STEP):
        await bridge.wait_connected()
        while "intercom_mqtt_queued 0\n" not in bridge.metrics():
            await asyncio.sleep(0.01)  # polling the bridge's queue, with the deadline above


async def retained(broker: Broker, topics: set[str]) -> dict[str, bytes]:
    """What the broker holds retained under the two prefixes, as a new subscriber gets it, once
    every one of ``topics`` came (a topic that never comes fails the test)."""
    held: dict[str, bytes] = {}
    try:
        async with asyncio.timeout(STEP), broker.watcher() as client:
            await client.subscribe([("homeassistant/#", 1), ("intercom/#", 1)])
            async for message in client.messages:
                assert message.retain, f"{message.topic.value}: a live message, not the broker's retained one"
                held[message.topic.value] = bytes(message.payload)
                if topics <= held.keys():
                    return held
    except TimeoutError:
        raise AssertionError(f"the broker does not hold {sorted(topics - held.keys())}") from None
    raise AssertionError("the watcher's subscription ended")


async def holds(broker: Broker, topic: str) -> bytes | None:
    """What the broker holds retained on ``topic``, or None. The broker answers subscriptions in
    order: once the availability topic's retained ``online`` came, ``topic``'s would have come before."""
    async with asyncio.timeout(STEP), broker.watcher() as client:
        await client.subscribe(topic, qos=1)
        await client.subscribe(AVAILABILITY, qos=1)
        held = None
        async for message in client.messages:
            if message.topic.value == AVAILABILITY:
                return held
            held = bytes(message.payload)
    raise AssertionError("the watcher's subscription ended")


def config_topic(identity: str, component: str, object_id: str) -> str:
    return f"homeassistant/{component}/intercom_{identity}/{object_id}/config"


def door_configs() -> set[str]:
    return {config_topic("door", component, object_id) for component, object_id in DOOR_ENTITIES}


def desk_configs() -> set[str]:
    return {config_topic("desk", component, object_id) for component, object_id in DESK_ENTITIES}


async def door_on_pins(hub, boards: Boards, state_dir: Path, unlock_from: str) -> tuple[Unit, MockFactory]:
    """The door unit whole on a board of mock pins, its CALL ringing the desk, its unlock log in
    ``state_dir``; ``unlock_from`` is its INTERCOM_UNLOCK_FROM."""
    await store_flow(hub, "door", "client:desk")
    settings = settings_for(hub, "door", unlock_from=unlock_from, state_dir=state_dir)
    return await boards.start(settings, DOOR_HZ)


def relay_pulses(pins: MockFactory) -> int:
    return sum(1 for state in pins.pin(RELAY).states if state.state)


def events_on(watcher: Watcher, topic: str) -> list[dict]:
    return [json.loads(payload) for payload in watcher.on(topic)]


async def test_discovery_as_a_subscriber_reads_it(broker, hub, make_unit):
    await make_unit("desk", DESK_HZ)  # a desk registers: a unit besides the hub's door
    bridge = hub.running.app.state.mqtt
    await all_sent(bridge)
    units = {"door": door_configs(), "desk": desk_configs()}
    online = {"intercom/door/online", "intercom/desk/online"}
    held = await retained(broker, door_configs() | desk_configs() | {AVAILABILITY} | online)
    configs = {topic: json.loads(payload) for topic, payload in held.items() if topic.startswith("homeassistant/")}
    assert configs.keys() == door_configs() | desk_configs()
    assert held[AVAILABILITY] == b"online"  # retained while the bridge is up
    assert (held["intercom/door/online"], held["intercom/desk/online"]) == (b"OFF", b"ON")  # only the desk is here
    unique_ids = [config["unique_id"] for config in configs.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    for topic, config in configs.items():
        _, component, node, _, _ = topic.split("/")
        unit = next(unit for unit, topics in units.items() if topic in topics)
        required, allowed = PLATFORMS[component]
        assert required <= config.keys() <= allowed, (topic, config.keys() - allowed, required - config.keys())
        assert config.get("device_class", next(iter(DEVICE_CLASSES[component]))) in DEVICE_CLASSES[component], topic
        assert config["device"].keys() <= DEVICE_KEYS
        assert config["device"]["identifiers"] == [node] == [f"intercom_{unit}"], topic  # one device per unit
        assert [entry["topic"] for entry in config["availability"]] == [AVAILABILITY], topic
        named = [config[key] for key in ("state_topic", "command_topic") if key in config]
        assert all(name.startswith(f"intercom/{unit}/") for name in named), (topic, named)
    devices = {json.dumps(config["device"], sort_keys=True) for config in configs.values()}
    assert len(devices) == len(units)  # every entity of a unit names the same device
    # the states the bridge publishes at connect, and the command topic it subscribes to, are the named ones
    for unit in units:
        assert configs[config_topic(unit, "binary_sensor", "online")]["state_topic"] == f"intercom/{unit}/online"
    button = configs[config_topic("door", "button", "open")]
    assert button["command_topic"] == f"{bridge.settings.topic_prefix}/door/open"


async def test_a_desk_registering_then_unregistering_turns_its_online_on_then_off(broker, hub, make_unit):
    bridge = hub.running.app.state.mqtt
    await all_sent(bridge)
    async with watching(broker) as watcher:
        desk = await make_unit("desk", DESK_HZ)
        await watcher.until(lambda: watcher.on("intercom/desk/online") == [b"ON"], "the desk online")
        async with asyncio.timeout(STEP):
            await desk.client.destroy()  # it unregisters
        await watcher.until(lambda: watcher.on("intercom/desk/online") == [b"ON", b"OFF"], "the desk offline")
    assert await holds(broker, "intercom/desk/online") == b"OFF"  # retained: a new Home Assistant reads it too


async def test_without_open_door_the_button_published_before_is_removed(broker, hub_config):
    button = config_topic("door", "button", "open")
    storage = Storage(hub_config.data_dir)
    try:
        for open_door in (True, False):  # the hub as it was, then restarted with the setting off
            config = replace(hub_config, mqtt_open_door=open_door)
            async with asyncio.timeout(STEP), running_hub(config, storage) as hub:
                await all_sent(hub.app.state.mqtt)
                assert (await holds(broker, button) is not None) is open_door
    finally:
        storage.close()
    assert (await retained(broker, door_configs() - {button})).keys() >= door_configs() - {button}  # the rest stays


async def test_the_doors_call_button_rings_in_home_assistant(broker, hub, make_unit, boards, tmp_path):
    desk = await make_unit("desk", DESK_HZ)
    _, pins = await door_on_pins(hub, boards, tmp_path, "desk")
    bridge = hub.running.app.state.mqtt
    await all_sent(bridge)
    held = await retained(broker, door_configs() | desk_configs())
    configs = {topic: json.loads(payload) for topic, payload in held.items() if topic.startswith("homeassistant/")}
    doorbell = configs[config_topic("door", "event", "doorbell")]["state_topic"]
    last_caller = configs[config_topic("desk", "sensor", "last_caller")]["state_topic"]
    last_ring = configs[config_topic("door", "sensor", "last_ring")]["state_topic"]
    call = configs[config_topic("door", "binary_sensor", "call")]["state_topic"]
    async with watching(broker) as watcher:
        pressed = datetime.now(UTC).replace(microsecond=0)
        await press(pins, CALL_BUTTON)
        await watcher.until(lambda: watcher.on(doorbell), "the ring")
        incoming = await desk.next_incoming()  # the desk rings as well
        await watcher.until(lambda: watcher.on(call)[-1:] == [b"ON"] and watcher.on(last_ring), "the door's states")
        (ring,) = events_on(watcher, doorbell)
        assert ring["event_type"] == "ring" and ring["callId"]
        await watcher.until(lambda: events_on(watcher, "intercom/door/event"), "the plain event")
        plain = events_on(watcher, "intercom/door/event")[0]
        assert (plain["type"], plain["event"], plain["payload"]["id"]) == ("call", "callCreated", ring["callId"])
        assert plain["payload"]["source"] == "client:door"
        assert await holds(broker, call) == b"ON"  # retained: a Home Assistant that starts now sees the call up
        incoming.reject()
        await watcher.until(lambda: watcher.on(call)[-1:] == [b"OFF"], "the call's end")
        assert [event["event_type"] for event in events_on(watcher, doorbell)] == ["ring", "missed"]
    held = await retained(broker, {last_ring, call, last_caller})
    assert held[call] == b"OFF" and held[last_caller] == b"door"
    assert pressed <= datetime.fromisoformat(held[last_ring].decode()) <= datetime.now(UTC)


async def press_open(broker: Broker, user: str = HA_USER, *, retain: bool = False) -> None:
    """Home Assistant's button (or another user) publishes PRESS on the door's command topic."""
    async with asyncio.timeout(STEP), broker.watcher(user) as client:
        await client.publish("intercom/door/open", "PRESS", qos=1, retain=retain)


async def logged(caplog: pytest.LogCaptureFixture, line: str, times: int) -> None:
    async with asyncio.timeout(STEP):
        while caplog.text.count(line) < times:
            await asyncio.sleep(0.01)  # polling the log, with the deadline above
    assert caplog.text.count(line) == times


async def audited(state_dir: Path, rows: int) -> list:
    async with asyncio.timeout(STEP):
        while len(entries := audit(state_dir)) < rows:
            await asyncio.sleep(0.01)  # polling the door's unlock log, with the deadline above
    return entries


@pytest.mark.parametrize("broker", ["tls"], indirect=True)
async def test_open_door_pulses_the_relay_once_and_is_audited(broker, hub, boards, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="intercom.hub")
    _, pins = await door_on_pins(hub, boards, tmp_path, "desk,source:home_assistant")
    await all_sent(hub.running.app.state.mqtt)
    async with watching(broker) as watcher:
        await press_open(broker)
        await until(lambda: relay_pulses(pins) == 1)
        await watcher.until(lambda: events_on(watcher, "intercom/door/doorbell"), "the unlocked event")
        (unlocked,) = events_on(watcher, "intercom/door/doorbell")
        assert (unlocked["event_type"], unlocked["who"]) == ("unlocked", "home assistant")
        await press_open(broker)  # again, within mqtt_open_min_interval
        await logged(caplog, OPEN_REFUSED, 1)
    assert relay_pulses(pins) == 1
    (entry,) = audit(tmp_path)
    assert (entry.verdict, entry.source, entry.who) == ("open", "remote", "home assistant")


async def test_a_door_that_does_not_name_home_assistant_refuses(broker, hub, boards, tmp_path):
    _, pins = await door_on_pins(hub, boards, tmp_path, "desk")
    await all_sent(hub.running.app.state.mqtt)
    await press_open(broker)
    (entry,) = await audited(tmp_path, 1)
    assert (entry.verdict, entry.who) == ("refused", "home assistant")
    assert relay_pulses(pins) == 0


async def test_a_stranger_a_wrong_password_and_a_retained_press_open_nothing(broker, hub, boards, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="intercom.hub")
    _, pins = await door_on_pins(hub, boards, tmp_path, "desk,source:home_assistant")
    bridge = hub.running.app.state.mqtt
    await all_sent(bridge)
    await press_open(broker, STRANGER_USER)  # the broker takes it, and hands it to nobody
    with pytest.raises(aiomqtt.MqttCodeError, match=r"[Nn]ot authori[sz]ed|[Bb]ad user name or password"):
        async with asyncio.timeout(STEP), broker.client(HA_USER, password="not-the-password"):
            pass
    await press_open(broker, retain=True)  # held by the broker, and handed again at every subscribe
    await logged(caplog, RETAINED_REFUSED, 1)
    reconnected = asyncio.Event()
    bridge.on_connect(reconnected.set)
    async with asyncio.timeout(STEP), broker.client(BRIDGE_USER, identifier=bridge.settings.client_id):
        pass  # the broker gives the bridge's session to this client: the bridge is thrown off, and comes back
    async with asyncio.timeout(STEP):
        await reconnected.wait()
    await logged(caplog, RETAINED_REFUSED, 2)  # the retained command, handed again at the bridge's subscribe
    assert relay_pulses(pins) == 0 and audit(tmp_path) == []
    await press_open(broker)  # Home Assistant's own: the bridge was listening all along
    await until(lambda: relay_pulses(pins) == 1)
    (entry,) = await audited(tmp_path, 1)
    assert (entry.verdict, entry.who) == ("open", "home assistant")
    assert OPEN_REFUSED not in caplog.text  # no command before it got through: it was the first to


async def test_after_a_broker_restart_the_bridge_republishes_all_and_a_call_meanwhile_worked(broker, hub, make_unit):
    bridge = hub.running.app.state.mqtt
    await store_flow(hub, "door", "client:desk")
    await store_flow(hub, "desk", "client:door")
    desk = await make_unit("desk", DESK_HZ, outgoing="desk")
    door = await make_unit("door", DOOR_HZ, outgoing="door")
    await a_call(hub, desk, door)  # the desk calls the door: the door's last caller, which nothing later changes
    await all_sent(bridge)
    await broker.stop()  # with no persistence: it forgets every retained message
    async with asyncio.timeout(STEP):
        while bridge.connected:
            await asyncio.sleep(0.01)  # polling the bridge's state, with the deadline above
        await a_call(hub, door, desk)  # the broker is away: the call works all the same
    assert "intercom_mqtt_queued 0\n" not in bridge.metrics(), "the call's events wait in the queue"
    watching_again = asyncio.Event()

    async def after_the_watcher() -> None:  # holds the queue until the watcher listens
        async with asyncio.timeout(STEP):
            await watching_again.wait()

    bridge.on_connect(after_the_watcher)
    await broker.start()
    async with watching(broker) as watcher:
        watching_again.set()
        # what the call said while the broker was away was queued, and is sent now
        await watcher.until(lambda: [e["event_type"] for e in events_on(watcher, "intercom/door/doorbell")] == [
            "ring", "answered"], "the queued call's doorbell events")  # fmt: skip
        await watcher.until(lambda: watcher.on("intercom/door/event"), "the queued plain events")
    await all_sent(bridge)
    states = {"intercom/door/online", "intercom/door/call", "intercom/door/last_ring", "intercom/door/last_caller"}
    held = await retained(broker, door_configs() | desk_configs() | {AVAILABILITY} | states)
    assert held[AVAILABILITY] == b"online"
    assert (held["intercom/door/online"], held["intercom/door/call"]) == (b"ON", b"OFF")
    assert held["intercom/door/last_caller"] == b"desk"  # told before the restart, told again after it
