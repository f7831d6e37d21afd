"""The discovery payloads, key by key against Home Assistant's MQTT platform documentation, and
the Open door command's checks. The broker tests (a real mosquitto) build on these."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from intercom import __version__
from intercom.hub.mqtt.commands import CommandRefused, OpenDoorCommands
from intercom.hub.mqtt.discovery import EVENT_TYPES, discovery_messages, event_payload, ring_time
from intercom.hub.mqtt.topics import Topics

# Keys each platform takes, from home-assistant.io/integrations/<platform>.mqtt (2025): the ones we
# may send, and the ones it requires. Everything we publish must be in here.
COMMON = {"unique_id", "name", "device", "origin", "availability", "availability_mode", "icon", "entity_category"}
PLATFORMS = {
    "event": ({"state_topic", "event_types"}, COMMON | {"state_topic", "event_types", "device_class"}),
    "button": ({"command_topic"}, COMMON | {"command_topic", "payload_press", "qos", "retain", "device_class"}),
    "binary_sensor": ({"state_topic"}, COMMON | {"state_topic", "payload_on", "payload_off", "device_class"}),
    "sensor": ({"state_topic"}, COMMON | {"state_topic", "device_class", "unit_of_measurement"}),
}
DEVICE_CLASSES = {  # the classes each platform documents, of those we could use
    "event": {"button", "doorbell", "motion"},
    "button": {"identify", "restart", "update"},
    "binary_sensor": {"connectivity", "running", "occupancy", "lock", "door"},
    "sensor": {"timestamp"},
}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "sw_version", "hw_version", "via_device"}


def messages(identity: str = "door", *, door: bool = True, open_door: bool = True) -> dict[str, dict]:
    topics = Topics(prefix="intercom", discovery_prefix="homeassistant")
    return {
        topic: json.loads(payload) if payload else {}
        for topic, payload in discovery_messages(topics, identity, door=door, open_door=open_door)
    }


def test_every_payload_uses_only_the_keys_its_platform_documents() -> None:
    published = messages()
    assert len(published) == 6
    for topic, config in published.items():
        discovery, component, node, object_id, leaf = topic.split("/")
        assert (discovery, node, leaf) == ("homeassistant", "intercom_door", "config")
        required, allowed = PLATFORMS[component]
        assert required <= config.keys(), topic
        assert config.keys() <= allowed, (topic, config.keys() - allowed)
        if "device_class" in config:
            assert config["device_class"] in DEVICE_CLASSES[component], topic
        assert config["unique_id"] == f"intercom_door_{object_id}"
        assert config["device"].keys() <= DEVICE_KEYS
        assert config["device"]["identifiers"] == ["intercom_door"]  # a list: one HA device per unit
        assert config["device"]["sw_version"] == __version__
        assert config["availability"] == [
            {"topic": "intercom/bridge/availability", "payload_available": "online", "payload_not_available": "offline"}
        ]
        assert config["availability_mode"] == "latest"


def test_a_door_has_a_doorbell_its_states_and_the_open_button() -> None:
    published = messages()
    bell = published["homeassistant/event/intercom_door/doorbell/config"]
    assert bell["state_topic"] == "intercom/door/doorbell"
    assert bell["event_types"] == ["ring", "answered", "missed", "voicemail", "unlocked", "wrong_code", "lockout"]
    assert bell["device_class"] == "doorbell"
    button = published["homeassistant/button/intercom_door/open/config"]
    assert button["command_topic"] == "intercom/door/open"
    assert (button["payload_press"], button["retain"], button["name"]) == ("PRESS", False, "Open door")
    online = published["homeassistant/binary_sensor/intercom_door/online/config"]
    assert (online["state_topic"], online["device_class"]) == ("intercom/door/online", "connectivity")
    assert (online["payload_on"], online["payload_off"]) == ("ON", "OFF")
    call = published["homeassistant/binary_sensor/intercom_door/call/config"]
    assert call["state_topic"] == "intercom/door/call"
    assert (
        published["homeassistant/sensor/intercom_door/last_caller/config"]["state_topic"] == "intercom/door/last_caller"
    )
    ring = published["homeassistant/sensor/intercom_door/last_ring/config"]
    assert (ring["state_topic"], ring["device_class"]) == ("intercom/door/last_ring", "timestamp")


def test_without_the_open_door_setting_the_button_is_removed() -> None:
    published = messages(open_door=False)
    assert published["homeassistant/button/intercom_door/open/config"] == {}  # empty retained payload: HA deletes it
    assert all(config for topic, config in published.items() if "/button/" not in topic)


def test_a_desk_has_no_doorbell_and_no_button() -> None:
    published = messages("desk", door=False)
    assert sorted(topic.split("/")[1] + "/" + topic.split("/")[3] for topic in published) == [
        "binary_sensor/call",
        "binary_sensor/online",
        "sensor/last_caller",
    ]
    assert all(config["device"]["model"] == "unit" for config in published.values())


def test_topics_follow_the_prefixes() -> None:
    topics = Topics(prefix="home/intercom", discovery_prefix="ha")
    (first, _), *_ = discovery_messages(topics, "door", door=True, open_door=True)
    assert first == "ha/binary_sensor/intercom_door/online/config"
    assert topics.open_door("door") == "home/intercom/door/open"
    assert topics.open_door_filter == "home/intercom/+/open"


def test_the_event_payload_carries_the_type_and_the_webhook_fields() -> None:
    body = json.loads(event_payload("ring", {"door": "door", "callId": "abc"}))
    assert body == {"door": "door", "callId": "abc", "event_type": "ring"}
    assert set(EVENT_TYPES) >= {"ring", "unlocked"}
    with pytest.raises(ValueError, match="'knock' is not one of ring"):
        event_payload("knock", {})


def test_the_ring_time_is_iso_8601_with_an_offset() -> None:
    stamp = ring_time(1_800_000_000.4)
    assert stamp == "2027-01-15T08:00:00+00:00"
    assert datetime.fromisoformat(stamp).utcoffset() is not None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def commands(clock: Clock | None = None) -> OpenDoorCommands:
    return OpenDoorCommands(
        Topics(prefix="intercom"), lambda: {"door", "gate"}, min_interval=2.0, clock=clock or Clock()
    )


def test_a_press_names_the_door() -> None:
    assert commands().door_to_open("intercom/gate/open", b"PRESS", retained=False) == "gate"


@pytest.mark.parametrize(
    ("topic", "payload", "retained", "reason"),
    [
        ("intercom/door/open", b"PRESS", True, "retained command ignored"),
        ("intercom/door/open", b"OPEN", False, "payload is not 'PRESS'"),
        ("intercom/door/open", b"PRESS" * 10, False, "payload is not 'PRESS'"),
        ("intercom/desk/open", b"PRESS", False, "not a door of this hub"),
        ("intercom/door/x/open", b"PRESS", False, "not an Open door topic"),
        ("other/door/open", b"PRESS", False, "not an Open door topic"),
        ("intercom//open", b"PRESS", False, "not an Open door topic"),
    ],
)
def test_what_is_not_our_button_opens_nothing(topic: str, payload: bytes, retained: bool, reason: str) -> None:
    with pytest.raises(CommandRefused, match=reason):
        commands().door_to_open(topic, payload, retained=retained)


def test_commands_are_paced_per_door() -> None:
    clock = Clock()
    paced = commands(clock)
    assert paced.door_to_open("intercom/door/open", b"PRESS", retained=False) == "door"
    with pytest.raises(CommandRefused, match=r"within 2 s \(mqtt_open_min_interval\)"):
        paced.door_to_open("intercom/door/open", b"PRESS", retained=False)
    assert paced.door_to_open("intercom/gate/open", b"PRESS", retained=False) == "gate"  # another door: its own pace
    clock.now += 2.0
    assert paced.door_to_open("intercom/door/open", b"PRESS", retained=False) == "door"
