"""Webhooks: each change to a call, leg or recording POSTed to the URLs that asked, signed as
MessageBird signs them, and retried until the receiver takes it.

:meth:`WebhookDispatcher.publish` runs inside call flows, on every status change, so it only
renders and queues: each delivery is a row written at once (a restart resumes it) and sent by a
task of its own, so that a receiver that is down, or one that accepts and never answers, holds
up nobody else. A delivery is sent at least once: one cut off by a shutdown is sent again (but
one queued while the disk could not be written is sent from memory only, and lost by a restart).

The ``MessageBird-Signature-JWT`` header is an HS256 JWT keyed by the webhook's token whose
claims bind it to the URL and the body (``url_hash``, ``payload_hash``: SHA-256, hex).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import jwt

from ..http_client import DEFAULT_OUTBOUND, OutboundPolicy, new_client, outbound_module
from .api.views import render, rfc3339
from .records import CallRecord, LegRecord, PublishedRow, RecordingRecord, UnlockEvent, Webhook, WebhookDelivery
from .storage import Storage

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "MessageBird-Signature-JWT"
SIGNATURE_LIFETIME = 300  # seconds a signature is valid: long enough for a receiver's clock to lag
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)  # after each failed attempt; one attempt more than delays
TIMEOUT = 5.0
MAX_SENDING = 32  # requests in flight at once, whatever the number of deliveries waiting

EVENT_TYPES: dict[type, str] = {
    CallRecord: "call",
    LegRecord: "leg",
    RecordingRecord: "recording",
    UnlockEvent: "unlock",
}


def event_item(row: PublishedRow, created: bool) -> dict[str, object]:
    """One item of a webhook's body: what the MQTT bridge publishes too (intercom.hub.mqtt.events)."""
    kind = EVENT_TYPES[type(row)]
    event = f"{kind}{'Created' if created else 'Updated'}"
    return {"type": kind, "event": event, "payload": render(row).model_dump(mode="json", by_alias=True)}


def signature(url: str, body: bytes, token: str) -> str:
    now = int(time.time())
    claims = {
        "iss": "MessageBird",
        "nbf": now,
        "exp": now + SIGNATURE_LIFETIME,
        "jti": str(uuid.uuid4()),
        "url_hash": hashlib.sha256(url.encode()).hexdigest(),
        "payload_hash": hashlib.sha256(body).hexdigest(),
    }
    return jwt.encode(claims, token, algorithm="HS256")


class WebhookDispatcher:
    """Queues an event per webhook and sends each until it is taken or ``retry_delays`` run out."""

    def __init__(
        self,
        storage: Storage,
        *,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        timeout: float = TIMEOUT,
        max_sending: int = MAX_SENDING,
        outbound: OutboundPolicy = DEFAULT_OUTBOUND,
    ) -> None:
        self.storage = storage
        self.outbound = outbound
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self._sending = asyncio.Semaphore(max_sending)
        self._client: httpx.AsyncClient | None = None  # made at the first delivery
        self._client_made = asyncio.Lock()
        self._started = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def publish(self, row: PublishedRow, created: bool, extra: Webhook | None = None) -> None:
        """Queue the event of ``row`` being created or updated for every webhook, and for ``extra``
        (a call's own). Returns at once and never raises: a call must not fail for its webhooks.
        Call it from the event loop's thread."""
        try:
            await self._publish(row, created, extra)
        except Exception:
            log.exception("webhooks: the event for %s %s was not queued", type(row).__name__, row.id)

    async def _publish(self, row: PublishedRow, created: bool, extra: Webhook | None) -> None:
        webhooks, _ = await self.storage.page(Webhook)
        targets = [*webhooks, *([extra] if extra is not None else [])]
        if not targets:
            return  # nobody asked: no rendering on the way of a call's set-up
        item = event_item(row, created)
        event = str(item["event"])
        body = json.dumps({"timestamp": rfc3339(time.time()), "items": [item]})
        for webhook in targets:
            delivery = WebhookDelivery(
                url=webhook.url,
                token=webhook.token,
                webhook_id=None if webhook is extra else webhook.id,
                event=event,
                payload=body,
            )
            await self.storage.try_put(delivery)  # on a failing disk it is sent all the same, from memory
            self._send(delivery)

    async def start(self) -> None:
        """Send from now on, beginning with the deliveries left pending by the last run."""
        self._started = True
        for delivery in await self.storage.pending_deliveries():
            self._send(delivery)

    async def close(self) -> None:
        """Stop sending; what is not delivered yet stays pending for the next :meth:`start`."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._started = False
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def wait_idle(self) -> None:
        """Until every delivery started has been delivered or has failed."""
        await self._idle.wait()

    def _send(self, delivery: WebhookDelivery) -> None:
        if not self._started:
            return  # the row waits for start()
        task = asyncio.get_running_loop().create_task(self._deliver(delivery))
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def _http(self) -> httpx.AsyncClient:
        async with self._client_made:
            if self._client is None:
                self._client = await new_client(self.outbound, timeout=self.timeout)
            return self._client

    async def _deliver(self, delivery: WebhookDelivery) -> None:
        client = await self._http()
        while True:
            async with self._sending:
                error = await self._attempt(client, delivery)
            delivery.attempts += 1
            if error is None:
                delivery.status, delivery.delivered_at = "delivered", time.time()
            else:
                delivery.last_error = error
                if delivery.attempts > len(self.retry_delays):
                    delivery.status = "failed"
                    log.warning("webhook to %s failed %d times: %s", delivery.url, delivery.attempts, error)
            await self.storage.try_put(delivery)
            if delivery.status != "pending":
                return
            await asyncio.sleep(self.retry_delays[delivery.attempts - 1])

    async def _attempt(self, client: httpx.AsyncClient, delivery: WebhookDelivery) -> str | None:
        """One POST; what went wrong, or ``None`` when the receiver took it (2xx). The answer's
        body is not read: a receiver cannot make the hub take in more than its status line and
        headers, and a redirect is a failure like any other 3xx."""
        body = delivery.payload.encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(delivery.url, body, delivery.token)}
        outbound = await outbound_module()
        try:
            async with outbound.opened(
                client, self.outbound, "POST", delivery.url, follow_redirects=False, content=body, headers=headers
            ) as response:
                if not response.is_success:
                    return f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
        except Exception as exc:  # network errors, refusals, and anything else: the row records it and moves on
            return f"{type(exc).__name__}: {exc}".rstrip(": ")
        return None
