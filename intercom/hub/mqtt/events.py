"""The call log's rows as JSON on ``<prefix>/<unit>/event``: the webhooks' items, for Node-RED and others."""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict

from ..api.views import rfc3339
from ..callflows import CLIENT_PREFIX
from ..records import CallRecord, PublishedRow, RecordingRecord, UnlockEvent, Webhook
from ..webhooks import event_item
from .bridge import MqttBridge
from .home_assistant import REMEMBERED_CALLS

log = logging.getLogger(__name__)


class MqttEvents:
    """A call log publisher (intercom.hub.call_log.Publisher): renders and queues, never waits."""

    def __init__(self, bridge: MqttBridge) -> None:
        self.bridge = bridge
        # the unit of each recent call, for its recordings' events: told from memory, not the
        # database, as a publisher never waits (a call from before a restart tells none)
        self._units: OrderedDict[str, str | None] = OrderedDict()

    async def publish(self, row: PublishedRow, created: bool, extra: Webhook | None = None) -> None:
        try:
            unit = self.unit_of(row)
            if unit is None:
                return
            message = {"timestamp": rfc3339(time.time()), **event_item(row, created)}
            self.bridge.publish(self.bridge.topics.unit(unit, "event"), json.dumps(message))
        except Exception:  # a call must not fail for its MQTT events
            log.exception("mqtt: the event for %s %s was not queued", type(row).__name__, row.id)

    def unit_of(self, row: PublishedRow) -> str | None:
        """The unit an event is about: a call's calling client (the door), else the client it rings;
        an unlock's door. A call between no clients (a number, say) has no unit's topic."""
        if isinstance(row, UnlockEvent):
            return row.door
        if isinstance(row, RecordingRecord):
            return self._units.get(row.call_id)
        unit = next(
            (end.removeprefix(CLIENT_PREFIX) for end in (row.source, row.destination) if end.startswith(CLIENT_PREFIX)),
            None,
        )
        if isinstance(row, CallRecord) and row.id not in self._units:
            self._units[row.id] = unit
            while len(self._units) > REMEMBERED_CALLS:
                self._units.popitem(last=False)
        return unit
