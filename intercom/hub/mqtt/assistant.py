"""Home Assistant on the hub's MQTT bridge: discovery and states out, the Open door command in
(docs/home-assistant.md). Built by the app when ``HubConfig.mqtt`` is set."""

from __future__ import annotations

import logging

from ..config import HubConfig
from ..door_unlock import ask_door_to_open
from ..legs import HubAddress
from ..records import CallRecord, LegRecord, RecordingRecord, UnlockEvent, Webhook
from ..registrar import Registrar
from .bridge import MqttBridge
from .commands import CommandRefused, OpenDoorCommands
from .discovery import OFF, ON, Topics, discovery_messages
from .home_assistant import HomeAssistantStates

log = logging.getLogger(__name__)

SOURCE = "home_assistant"  # what the door's INTERCOM_UNLOCK_FROM names: source:home_assistant


class HomeAssistantLink:
    """A call log publisher (the states and events) and the Open door command's handler."""

    def __init__(self, bridge: MqttBridge, config: HubConfig, registrar: Registrar) -> None:
        settings = bridge.settings
        self.bridge = bridge
        self.config = config
        self.registrar = registrar
        self.topics = Topics(settings.topic_prefix, settings.discovery_prefix)
        self.states = HomeAssistantStates(self.topics, config.doors)
        self.commands = OpenDoorCommands(self.topics, lambda: config.doors, config.mqtt_open_min_interval)
        # Each state topic's latest value (one per unit and state: the hub's own identities), told
        # again at every connect: a broker restarted without persistence has forgotten them.
        self.states_held: dict[str, bytes] = {}
        bridge.on_connect(self.announce)
        if config.mqtt_open_door:
            bridge.subscribe(self.topics.open_door_filter, self.open_door)

    def announce(self) -> None:
        """After every (re)connect: the doors' discovery configs, whether each is online, and the
        units' latest states."""
        for door in self.config.doors:
            for topic, payload in discovery_messages(
                self.topics, door, door=True, open_door=self.config.mqtt_open_door
            ):
                self.bridge.publish(topic, payload, retain=True)
            online = ON if self.registrar.lookup(door) else OFF
            self.bridge.publish(self.topics.unit(door, "online"), online, retain=True)
        for topic, payload in self.states_held.items():
            self.bridge.publish(topic, payload, retain=True)

    def publish(
        self, row: CallRecord | LegRecord | RecordingRecord | UnlockEvent, created: bool, extra: Webhook | None = None
    ) -> None:
        try:
            for message in self.states.messages(row, created):
                self.bridge.publish(message.topic, message.payload, retain=message.retain)
                if message.retain:
                    self.states_held[message.topic] = message.payload
        except Exception:  # a call must not fail for what Home Assistant shows of it
            log.exception("mqtt: Home Assistant's state for %s %s was not queued", type(row).__name__, row.id)

    async def open_door(self, topic: str, payload: bytes, retained: bool) -> int | None:
        """Home Assistant's Open door: the door's SIP answer, or ``None`` when refused here."""
        try:
            door = self.commands.door_to_open(topic, payload, retained=retained)
        except CommandRefused as refused:
            log.warning("mqtt: %s", refused)
            return None
        return await ask_door_to_open(
            self.registrar, HubAddress.of(self.config), door, SOURCE, self.config.mqtt_open_timeout
        )
