"""The call log's rows as what Home Assistant shows of each unit: the doorbell's events, call
active, last caller, last ring (the entities of :mod:`.discovery`). Pure: rows in, messages out;
the bridge queues them, so nothing here ever waits on the broker.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from ..callflows import CLIENT_PREFIX
from ..records import LEG_FINAL, CallRecord, LegRecord, PublishedRow, RecordingRecord, UnlockEvent
from .discovery import OFF, ON, event_payload, ring_time
from .topics import Topics

REMEMBERED_CALLS = 256  # the door calls whose later rows (answer, voicemail, end) we still place
UNLOCK_EVENTS = {"open": "unlocked", "wrong": "wrong_code", "lockout": "lockout"}  # "refused": no event


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class _DoorCall:
    door: str
    answered: bool = False


class HomeAssistantStates:
    """Turns each row the call log publishes into the messages of the units it is about."""

    def __init__(self, topics: Topics, doors: Collection[str], clock: Callable[[], float] = time.time) -> None:
        self.topics = topics
        self.doors = doors
        self.clock = clock
        self._calls: OrderedDict[str, _DoorCall] = OrderedDict()  # the doors' calls, newest last

    def messages(self, row: PublishedRow, created: bool) -> list[Message]:
        if isinstance(row, UnlockEvent):
            return self._unlock(row)
        if isinstance(row, CallRecord):
            return self._call(row, created)
        if isinstance(row, LegRecord):
            return self._leg(row, created)
        return self._recording(row)

    def _call(self, call: CallRecord, created: bool) -> list[Message]:
        door = _unit(call.source)
        if door not in self.doors:
            return []
        if created:
            self._remember(call.id, _DoorCall(door))
            now = self.clock()
            return [
                self._event(door, "ring", {"callId": call.id}),
                self._state(door, "last_ring", ring_time(now)),
                self._state(door, "call", ON),
            ]
        if call.status != "ended":
            return []
        known = self._calls.pop(call.id, None)
        ended = [self._state(door, "call", OFF)]
        if known is not None and not known.answered:
            ended.insert(0, self._event(door, "missed", {"callId": call.id, "reason": call.reason}))
        return ended

    def _leg(self, leg: LegRecord, created: bool) -> list[Message]:
        if leg.direction != "outgoing":
            return []
        callee, caller = _unit(leg.destination), _unit(leg.source)
        if created:
            return [self._state(callee, "last_caller", caller)]
        if leg.status == "ongoing":
            answered = [self._state(callee, "call", ON)]
            known = self._calls.get(leg.call_id)
            if known is not None and not known.answered:
                known.answered = True
                answered.append(self._event(known.door, "answered", {"callId": leg.call_id, "answeredBy": callee}))
            return answered
        return [self._state(callee, "call", OFF)] if leg.status in LEG_FINAL and leg.answered_at is not None else []

    def _recording(self, recording: RecordingRecord) -> list[Message]:
        known = self._calls.get(recording.call_id)
        if known is None or recording.kind != "ivr" or recording.status != "done":
            return []
        voicemail = {
            "callId": recording.call_id,
            "recordingId": recording.id,
            "duration": recording.duration,
            "url": f"/desk/api/voicemails/{recording.id}.wav",  # a paired phone's Bearer fetches it
        }
        return [self._event(known.door, "voicemail", voicemail)]

    def _unlock(self, event: UnlockEvent) -> list[Message]:
        kind = UNLOCK_EVENTS.get(event.event)
        if kind is None:
            return []
        return [self._event(event.door, kind, {"source": event.source, "who": event.who, "callId": event.sip_call_id})]

    def _event(self, unit: str, kind: str, fields: dict[str, Any]) -> Message:
        return Message(self.topics.doorbell(unit), event_payload(kind, fields), retain=False)

    def _state(self, unit: str, leaf: str, value: str) -> Message:
        return Message(self.topics.unit(unit, leaf), value.encode(), retain=True)

    def _remember(self, call_id: str, call: _DoorCall) -> None:
        self._calls[call_id] = call
        while len(self._calls) > REMEMBERED_CALLS:
            self._calls.popitem(last=False)


def _unit(address: str) -> str:
    """A call log's ``client:door`` as the unit's identity."""
    return address.removeprefix(CLIENT_PREFIX)
