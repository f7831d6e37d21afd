"""Where the MQTT bridge publishes and listens: its own prefix (events, states, commands, its
availability) and Home Assistant's discovery prefix. One place, for the bridge and what rides on it."""

from __future__ import annotations

from dataclasses import dataclass

ONLINE, OFFLINE = "online", "offline"  # the bridge's availability (and its last will): HA's defaults


@dataclass(frozen=True)
class Topics:
    """Where everything lives: the bridge's own prefix and HA's discovery prefix."""

    prefix: str = "intercom"
    discovery_prefix: str = "homeassistant"

    @property
    def availability(self) -> str:
        """The bridge's last will: every entity is unavailable while the hub is not connected."""
        return f"{self.prefix}/bridge/availability"

    def unit(self, identity: str, leaf: str) -> str:
        """A unit's state or event topic: ``<prefix>/<unit>/<leaf>``."""
        return f"{self.prefix}/{identity}/{leaf}"

    def doorbell(self, identity: str) -> str:
        """HA's event entity: JSON with ``event_type`` one of :data:`EVENT_TYPES` (the plain
        ``<prefix>/<unit>/event`` carries every webhook item, which HA's schema would reject)."""
        return self.unit(identity, "doorbell")

    def open_door(self, identity: str) -> str:
        """The Open door button's command topic; the broker's ACL lets only HA's user write it."""
        return self.unit(identity, "open")

    @property
    def open_door_filter(self) -> str:
        """What the bridge subscribes to for Open door commands."""
        return f"{self.prefix}/+/open"

    def config(self, component: str, identity: str, object_id: str) -> str:
        """A discovery config topic: ``<discovery>/<component>/intercom_<unit>/<object_id>/config``."""
        return f"{self.discovery_prefix}/{component}/{node_id(identity)}/{object_id}/config"


def node_id(identity: str) -> str:
    """The unit's id in HA (its device identifier, its topics' node id, its entities' unique_id prefix)."""
    return f"intercom_{identity}"
