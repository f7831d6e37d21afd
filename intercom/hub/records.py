"""What the hub keeps about its calls: calls, their legs, recordings, webhooks and deliveries.

These are the rows of :class:`~intercom.hub.storage.Storage`, with the Voice API's field names
as aliases. Times are seconds since the epoch (``time.time()``); the REST layer renders them.
A call is the whole conversation; each leg is one SIP dialog of it (the caller's, and one per
device rung), so a call log reads "door called, desk rang, nobody answered, voicemail kept".
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CallStatus = Literal["queued", "starting", "ongoing", "ended"]
LegStatus = Literal["starting", "ringing", "ongoing", "busy", "no_answer", "failed", "hangup"]
Direction = Literal["incoming", "outgoing"]
RecordingKind = Literal["ivr", "transfer", "call"]
RecordingStatus = Literal["recording", "done"]
DeliveryStatus = Literal["pending", "delivered", "failed"]
UnlockEventKind = Literal["open", "wrong", "lockout", "refused"]

LEG_FINAL = frozenset({"busy", "no_answer", "failed", "hangup"})


def new_id() -> str:
    return uuid.uuid4().hex


class _Row(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str = Field(default_factory=new_id)
    created_at: float = Field(default_factory=time.time, alias="createdAt")
    updated_at: float = Field(default_factory=time.time, alias="updatedAt")


class CallRecord(_Row):
    source: str
    destination: str
    status: CallStatus = "starting"
    call_flow_id: str | None = Field(None, alias="callFlowId")
    ended_at: float | None = Field(None, alias="endedAt")
    reason: str | None = None  # why it ended, in words: "no answer", "fetchCallFlow failed: ..."


class LegRecord(_Row):
    call_id: str = Field(alias="callID")
    source: str
    destination: str
    status: LegStatus = "starting"
    direction: Direction
    answered_at: float | None = Field(None, alias="answeredAt")
    ended_at: float | None = Field(None, alias="endedAt")

    @property
    def duration(self) -> int:
        """Whole seconds talked: from the answer to the end (or now, while it lasts)."""
        if self.answered_at is None:
            return 0
        return int((self.ended_at or time.time()) - self.answered_at)


class RecordingRecord(_Row):
    call_id: str = Field(alias="callID")
    leg_id: str = Field(alias="legID")
    kind: RecordingKind = Field(alias="type")
    duration: float = 0.0  # seconds of audio in the file
    channels: int = 1
    # "recording" from the first sample on, so that a hub that dies finds and repairs it at its next start
    status: RecordingStatus = "done"
    path: str  # the WAV file, relative to the hub's data directory
    # The file went to keep the recordings quota (intercom.hub.retention); the row stays, so the
    # call log still says a recording was made.
    pruned_at: float | None = Field(None, alias="prunedAt")
    cut: str | None = None  # why it stopped before its step ended (a limit, a full disk), if it did


class Webhook(_Row):
    url: str
    token: str
    title: str | None = None


class WebhookDelivery(_Row):
    url: str
    token: str  # signs it: kept here, as a call's own webhook is stored nowhere else
    webhook_id: str | None = Field(None, alias="webhookID")  # None for a call's own webhook
    event: str
    payload: str  # the JSON body, exactly as signed and sent
    status: DeliveryStatus = "pending"
    attempts: int = 0
    last_error: str | None = Field(None, alias="lastError")
    delivered_at: float | None = Field(None, alias="deliveredAt")


class UnlockEvent(_Row):
    """What a door reported about its lock (intercom/appliance/unlock.py): stored (table
    ``unlock_events``, the building's audit; the door keeps its own log too), logged and handed to
    the webhooks as an ``unlock`` item."""

    door: str  # the identity the door registered with, never the body's word
    event: UnlockEventKind
    source: Literal["keypad", "remote"]
    who: str | None = Field(None, max_length=64)  # "keypad", the asserted identity, or None: nobody asserted
    sip_call_id: str | None = Field(None, alias="callId", max_length=256)  # the door's SIP Call-ID, if in a call
    at: float = Field(alias="time", allow_inf_nan=False)  # when it happened, by the door's clock

    @classmethod
    def from_door(cls, door: str, body: bytes) -> UnlockEvent:
        """The event in a door's MESSAGE body (JSON); ``ValueError`` naming what is wrong."""
        try:
            fields = json.loads(body)
            if not isinstance(fields, dict):
                raise ValueError("not a JSON object")
            fields.pop("door", None)
            return cls.model_validate({**fields, "door": door})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


@dataclass(frozen=True)
class Registration:
    """A binding of a unit behind a SIP proxy, in the location the hubs share (table
    ``registrations``, intercom.hub.shared_location): the unit's flow (the proxy's address and
    ``P-Intercom-Flow``), the Contact (``uri``, what tells it from the flow's other bindings, and
    as registered), the proxy's Path (its values one per line), who registered with which key
    (the key's group, and whether the token may receive calls), until when, and which hub took it."""

    edge: str
    flow: str
    uri: str
    contact: str
    path: str
    identity: str | None
    key_group: str | None
    access_key_id: str
    incoming: bool
    expires_at: float
    user_agent: str | None
    hub: str


# What the call log tells its publishers (webhooks, the MQTT bridge): a row written, or a door's news.
PublishedRow = CallRecord | LegRecord | RecordingRecord | UnlockEvent
