"""The Open door command from Home Assistant: what the bridge accepts before it asks the door
(docs/home-assistant.md "Opening the door"). Who may publish is the broker's ACL; this module checks
what arrived: a door the hub knows, the button's payload, never a retained message, not too often.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from .discovery import PRESS
from .topics import Topics

MAX_COMMAND_BYTES = 16  # PRESS and room to spare: anything longer is not our button


class CommandRefused(Exception):
    """An Open door command the bridge drops; the message is the one log line saying why."""


@dataclass
class OpenDoorCommands:
    """Turns a message on ``<prefix>/<door>/open`` into the door to open, or refuses it.

    ``min_interval`` (HubConfig ``mqtt_open_min_interval``) paces commands per door: a client
    allowed to publish still cannot make the strike buzz in a loop.
    """

    topics: Topics
    doors: Callable[[], Collection[str]]  # the doors the hub knows now (they come and go)
    min_interval: float = 2.0
    clock: Callable[[], float] = time.monotonic
    _last: dict[str, float] = field(default_factory=dict)

    def door_to_open(self, topic: str, payload: bytes, *, retained: bool) -> str:
        """The door this message asks to open; ``CommandRefused`` when it must do nothing."""
        door = self._door_of(topic)
        if retained:
            # A retained command would open the door again at every reconnect of the bridge.
            raise CommandRefused(f"open {door}: retained command ignored (publish it without retain)")
        if len(payload) > MAX_COMMAND_BYTES or payload.strip() != PRESS.encode():
            raise CommandRefused(f"open {door}: payload is not {PRESS!r}")
        if door not in self.doors():
            raise CommandRefused(f"open {door}: not a door of this hub")
        now = self.clock()
        last = self._last.get(door)
        if last is not None and now - last < self.min_interval:
            raise CommandRefused(
                f"open {door}: another command within {self.min_interval:g} s (mqtt_open_min_interval)"
            )
        self._last[door] = now
        return door

    def _door_of(self, topic: str) -> str:
        head, tail = f"{self.topics.prefix}/", "/open"
        door = topic[len(head) : -len(tail)] if topic.startswith(head) and topic.endswith(tail) else ""
        if not door or "/" in door:
            raise CommandRefused(f"not an Open door topic: {topic[:100]!r}")
        return door
