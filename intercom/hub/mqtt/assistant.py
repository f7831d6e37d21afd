"""Home Assistant on the hub's MQTT bridge: discovery and states out, the Open door command in
(docs/home-assistant.md). Built by the app when ``HubConfig.mqtt`` is set."""

from __future__ import annotations

import logging

from ..config import HubConfig
from ..door_unlock import ask_door_to_open
from ..legs import HubAddress
from ..records import PublishedRow, Webhook
from ..registrar import Registrar
from ..storage import Storage
from .bridge import MqttBridge
from .commands import CommandRefused, OpenDoorCommands
from .discovery import OFF, ON, discovery_messages
from .home_assistant import HomeAssistantStates

log = logging.getLogger(__name__)

SOURCE = "home_assistant"  # what the door's INTERCOM_UNLOCK_FROM names: source:home_assistant


class HomeAssistantLink:
    """A call log publisher (the states and events), each unit's Online from its registrations, and
    the Open door command's handler.

    The units, one HA device each: the hub's doors, every identity a unit key of the hub's names
    (so a unit switched off shows as offline, not as absent), and whoever registers that is not in
    a group (a paired phone is not a unit)."""

    def __init__(self, bridge: MqttBridge, config: HubConfig, registrar: Registrar, storage: Storage) -> None:
        self.bridge = bridge
        self.config = config
        self.registrar = registrar
        self.storage = storage
        self.announced: set[str] = set()  # the units whose device this connection has published
        self.topics = bridge.topics
        self.states = HomeAssistantStates(self.topics, config.doors)
        self.commands = OpenDoorCommands(self.topics, lambda: config.doors, config.mqtt_open_min_interval)
        # Each state topic's latest value (one per unit and state: the hub's own identities), told
        # again at every connect: a broker restarted without persistence has forgotten them.
        self.states_held: dict[str, bytes] = {}
        bridge.on_connect(self.announce)
        registrar.on_presence(self.presence_changed)
        if config.mqtt_open_door:
            log.warning(
                "mqtt: Home Assistant's Open door is on: whoever the broker lets publish to %s may ask a door "
                "to open, and a door whose INTERCOM_UNLOCK_FROM names source:home_assistant opens",
                self.topics.open_door_filter,
            )
            bridge.subscribe(self.topics.open_door_filter, self.open_door)

    async def announce(self) -> None:
        """After every (re)connect: every unit's discovery configs, whether it is online, and the
        units' latest states (a broker that restarted without its store, or a new Home Assistant,
        gets them again)."""
        self.announced.clear()
        units = dict.fromkeys((*self.config.doors, *await self._keyed_units(), *self._registered_units()))
        for identity in units:
            self._announce(identity)
        for topic, payload in self.states_held.items():
            self.bridge.publish(topic, payload, retain=True)

    def presence_changed(self, identity: str, reachable: bool) -> None:
        """The registrar's news: a unit came online (a new one gets its device first) or went away."""
        if identity not in self.announced:
            if not reachable or not self._is_unit(identity):
                return
            self._announce(identity)
            call = self.topics.unit(identity, "call")
            self.bridge.publish(call, self.states_held[call], retain=True)
        else:
            self.bridge.publish(self.topics.unit(identity, "online"), ON if reachable else OFF, retain=True)

    def _announce(self, identity: str) -> None:
        door = identity in self.config.doors
        for topic, payload in discovery_messages(
            self.topics, identity, door=door, open_door=self.config.mqtt_open_door
        ):
            self.bridge.publish(topic, payload, retain=True)
        online = ON if self.registrar.lookup(identity) else OFF
        self.bridge.publish(self.topics.unit(identity, "online"), online, retain=True)
        # No call of it since the hub started: none is up, whatever the broker kept from before a
        # crash (told with the other held states).
        self.states_held.setdefault(self.topics.unit(identity, "call"), OFF.encode())
        self.announced.add(identity)

    async def _keyed_units(self) -> list[str]:
        """The identities of the hub's live unit keys (not the admin's, not a paired phone's)."""
        return [
            identity
            for key in await self.storage.list_keys()
            if not key.revoked and key.scope is not None and not key.scope.admin and key.scope.group is None
            for identity in key.scope.identities
        ]

    def _registered_units(self) -> list[str]:
        return [identity for identity in self.registrar.identities() if self._is_unit(identity)]

    def _is_unit(self, identity: str) -> bool:
        """Registered, and not as a member of a group (a paired phone)."""
        bindings = self.registrar.lookup(identity)
        return bool(bindings) and all(self.registrar.group_of(b.grant.access_key_id) is None for b in bindings)

    async def publish(self, row: PublishedRow, created: bool, extra: Webhook | None = None) -> None:
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
