"""The door tells the hub what its lock did: each unlock, wrong code, refusal and lockout.

One out-of-dialog MESSAGE per event on the door's registered connection (the hub takes the
door's identity from that registration, logs the event and hands it to its webhooks). It is
sent in the background and never waited for: a hub that is away must not hold up the strike,
and the door's own audit log (:mod:`.unlock_store`) has the event either way.
"""

from __future__ import annotations

import json
import logging

from ..sdk import Client
from ..sip.door import DOOR_EVENT_CONTENT_TYPE
from ..transport import ConnectionClosed
from .unlock_store import AuditEntry

log = logging.getLogger(__name__)


def event_body(entry: AuditEntry) -> bytes:
    """The MESSAGE body: what happened, where it came from, who, in which call, when."""
    fields = {"event": entry.verdict, "source": entry.source, "who": entry.who, "callId": entry.call_id}
    return json.dumps({**fields, "time": entry.at}, separators=(",", ":")).encode()


async def report(client: Client, entry: AuditEntry) -> None:
    """Send ``entry`` to the hub; a failure is logged and dropped (the audit log keeps it)."""
    try:
        response = await client.send_message(DOOR_EVENT_CONTENT_TYPE, event_body(entry))
    except (RuntimeError, ConnectionClosed, TimeoutError) as exc:
        log.info("the hub was not told of the door's %s: %s", entry.verdict, exc)
        return
    if not response.is_success:
        log.warning("the hub refused the door's %s event: %s", entry.verdict, response.text())
