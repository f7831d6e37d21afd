"""The call log's rows as JSON on ``<prefix>/<unit>/event``: the webhooks' items, for Node-RED and others."""

from __future__ import annotations

import json
import logging
import time

from ..api.views import rfc3339
from ..callflows import CLIENT_PREFIX
from ..records import CallRecord, PublishedRow, RecordingRecord, UnlockEvent, Webhook
from ..storage import Storage
from ..webhooks import event_item
from .bridge import MqttBridge

log = logging.getLogger(__name__)


class MqttEvents:
    """A call log publisher (intercom.hub.call_log.Publisher): renders and queues, never waits."""

    def __init__(self, bridge: MqttBridge, storage: Storage) -> None:
        self.bridge = bridge
        self.storage = storage

    def publish(self, row: PublishedRow, created: bool, extra: Webhook | None = None) -> None:
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
            call = self.storage.get(CallRecord, row.call_id)
            return self.unit_of(call) if isinstance(call, CallRecord) else None
        for end in (row.source, row.destination):
            if end.startswith(CLIENT_PREFIX):
                return end.removeprefix(CLIENT_PREFIX)
        return None
