"""Home Assistant MQTT discovery: what the bridge publishes so that HA builds, without YAML, one
device per unit (docs/home-assistant.md; keys as home-assistant.io's MQTT platform pages spell them).

Pure data: topics and payloads, no client. The bridge publishes :func:`discovery_messages` retained
after every (re)connect, so a broker that lost its store, or an HA that restarted, gets them again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ... import __version__
from .topics import OFFLINE, ONLINE, Topics, node_id

# The event entity's types: the webhooks' events a resident automates on (issue 19, Deliver 2).
EVENT_TYPES = ("ring", "answered", "missed", "voicemail", "unlocked", "wrong_code", "lockout")
ON, OFF = "ON", "OFF"  # HA's binary_sensor defaults, written out
PRESS = "PRESS"  # HA's button default, written out: the one payload the Open door topic accepts


def discovery_messages(topics: Topics, identity: str, *, door: bool, open_door: bool) -> list[tuple[str, bytes]]:
    """The retained config messages for one unit, as (topic, payload). A door gets the event entity
    and, when ``open_door`` is on, the Open door button; with it off the button's topic gets an empty
    payload, which removes a button published before (HA's documented way to delete an entity)."""
    entities: list[tuple[str, str, dict[str, Any] | None]] = [
        # Online is a sensor, not the entities' availability: an offline door still shows its last ring.
        ("binary_sensor", "online", _binary_sensor(topics, identity, "online", "Online", "connectivity")),
        ("binary_sensor", "call", _binary_sensor(topics, identity, "call", "Call active", "running")),
        ("sensor", "last_caller", _last_caller(topics, identity)),
    ]
    if door:
        entities += [
            ("event", "doorbell", _doorbell(topics, identity)),
            ("sensor", "last_ring", _last_ring(topics, identity)),
            ("button", "open", _open_button(topics, identity) if open_door else None),
        ]
    return [
        (
            topics.config(component, identity, object_id),
            b"" if body is None else json.dumps(_common(topics, identity, object_id, door) | body).encode(),
        )
        for component, object_id, body in entities
    ]


def event_payload(event_type: str, fields: dict[str, Any]) -> bytes:
    """An event for ``<prefix>/<unit>/event``: the webhook's fields and HA's ``event_type`` key
    (HA's event entity takes the type from it and every other key as an attribute)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event type {event_type!r} is not one of {', '.join(EVENT_TYPES)}")
    return json.dumps({**fields, "event_type": event_type}).encode()


def ring_time(at: float) -> str:
    """The last ring sensor's state: ISO 8601 with its offset, which ``device_class: timestamp`` requires."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def _common(topics: Topics, identity: str, object_id: str, door: bool) -> dict[str, Any]:
    """What every entity carries: its unique id, its device (one per unit), the bridge's availability."""
    return {
        "unique_id": f"{node_id(identity)}_{object_id}",
        "device": {
            "identifiers": [node_id(identity)],
            "name": identity,
            "manufacturer": "intercom",
            "model": "door unit" if door else "unit",
            "sw_version": __version__,
        },
        "origin": {"name": "intercom", "sw_version": __version__},
        "availability": [{"topic": topics.availability, "payload_available": ONLINE, "payload_not_available": OFFLINE}],
        "availability_mode": "latest",
    }


def _binary_sensor(topics: Topics, identity: str, leaf: str, name: str, device_class: str) -> dict[str, Any]:
    return {
        "name": name,
        "state_topic": topics.unit(identity, leaf),
        "payload_on": ON,
        "payload_off": OFF,
        "device_class": device_class,
    }


def _last_caller(topics: Topics, identity: str) -> dict[str, Any]:
    return {"name": "Last caller", "state_topic": topics.unit(identity, "last_caller"), "icon": "mdi:account-voice"}


def _last_ring(topics: Topics, identity: str) -> dict[str, Any]:
    return {"name": "Last ring", "state_topic": topics.unit(identity, "last_ring"), "device_class": "timestamp"}


def _doorbell(topics: Topics, identity: str) -> dict[str, Any]:
    return {
        "name": "Doorbell",
        "state_topic": topics.doorbell(identity),
        "event_types": list(EVENT_TYPES),
        "device_class": "doorbell",
    }


def _open_button(topics: Topics, identity: str) -> dict[str, Any]:
    # A button, not a lock: the strike pulses and relocks by itself (docs/home-assistant.md argues it).
    return {
        "name": "Open door",
        "command_topic": topics.open_door(identity),
        "payload_press": PRESS,
        "qos": 1,
        "retain": False,
        "icon": "mdi:door-open",
    }
