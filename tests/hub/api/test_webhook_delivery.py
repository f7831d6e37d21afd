"""The webhook dispatcher: signed POSTs to real receivers on 127.0.0.1, retried with back-off,
independent of each other, and resumed after a restart."""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest

from intercom.http_client import OutboundPolicy
from intercom.hub import Storage
from intercom.hub.api.views import CallView, LegView
from intercom.hub.records import CallRecord, LegRecord, Webhook, WebhookDelivery
from intercom.hub.webhooks import SIGNATURE_HEADER, WebhookDispatcher

from ...conftest import LOOPBACK_ALLOWED, STEP
from .call_log import door_call

TOKEN = "the-receivers-token-of-32-bytes-or-more"
FAST = (0.01, 0.02, 0.04)  # retry delays: four attempts in all


@dataclass
class Received:
    url: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def signature(self) -> str:
        return self.headers[SIGNATURE_HEADER.lower()]


class Receiver:
    """A webhook receiver on 127.0.0.1, in a thread: answers each POST with the next of
    ``statuses`` (200 once they run out) and hands what it got to the test's event loop."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.statuses = list(statuses)
        self.received: asyncio.Queue[Received] = asyncio.Queue()
        loop, receiver = asyncio.get_running_loop(), self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {name.lower(): value for name, value in self.headers.items()}
                got = Received(receiver.url_of(self.path), headers, body)
                loop.call_soon_threadsafe(receiver.received.put_nowait, got)
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = self.url_of("/hooks/intercom?unit=door")
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url_of(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    async def next(self) -> Received:
        async with asyncio.timeout(STEP):
            return await self.received.get()

    async def stop(self) -> None:
        async with asyncio.timeout(STEP):
            await asyncio.to_thread(self.server.shutdown)
        self.server.server_close()


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    """Receivers made by ``Receiver(...)`` calls appended here are stopped at teardown."""
    made: list[Receiver] = []
    yield made
    for receiver in made:
        await receiver.stop()


@pytest.fixture
def storage(tmp_path) -> Iterator[Storage]:
    storage = Storage(tmp_path)
    yield storage
    storage.close()


@pytest.fixture
async def dispatchers(storage) -> AsyncIterator[list[WebhookDispatcher]]:
    """Dispatchers appended here are closed at teardown."""
    made: list[WebhookDispatcher] = []
    yield made
    for dispatcher in made:
        async with asyncio.timeout(STEP):
            await dispatcher.close()


async def started(dispatchers, storage, **options) -> WebhookDispatcher:
    dispatcher = WebhookDispatcher(storage, **{"retry_delays": FAST, "outbound": LOOPBACK_ALLOWED, **options})
    dispatchers.append(dispatcher)
    await dispatcher.start()
    return dispatcher


async def idle(dispatcher: WebhookDispatcher) -> None:
    async with asyncio.timeout(STEP):
        await dispatcher.wait_idle()


async def deliveries(storage: Storage) -> list[WebhookDelivery]:
    return (await storage.page(WebhookDelivery))[0]


def check_signature(got: Received, token: str) -> dict[str, object]:
    """What a receiver does: the JWT is signed with its token, and binds this URL and body."""
    claims = jwt.decode(
        got.signature, token, algorithms=["HS256"], issuer="MessageBird",
        options={"require": ["iss", "nbf", "exp", "jti", "url_hash", "payload_hash"]},
    )  # fmt: skip
    assert claims["url_hash"] == hashlib.sha256(got.url.encode()).hexdigest()
    assert claims["payload_hash"] == hashlib.sha256(got.body).hexdigest()
    assert 0 < claims["exp"] - claims["nbf"] <= 600
    return claims


async def test_each_webhook_gets_the_event_signed_with_its_token(storage, dispatchers, receivers):
    receivers += [Receiver(), Receiver()]
    registered, own = receivers
    await storage.put(Webhook(url=registered.url, token=TOKEN))
    dispatcher = await started(dispatchers, storage)
    call = (await door_call(storage)).call

    await dispatcher.publish(call, created=True, extra=Webhook(url=own.url, token="the-calls-own-token-of-32-bytes-"))
    got = await registered.next()
    check_signature(got, TOKEN)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(got.signature, "another token of 32 bytes or more", algorithms=["HS256"])
    assert got.headers["content-type"] == "application/json"
    body = json.loads(got.body)
    assert body["items"] == [
        {"type": "call", "event": "callCreated", "payload": CallView.of(call).model_dump(mode="json", by_alias=True)}
    ]
    assert abs(calendar.timegm(time.strptime(body["timestamp"], "%Y-%m-%dT%H:%M:%SZ")) - time.time()) < 5
    claims = check_signature(await own.next(), "the-calls-own-token-of-32-bytes-")
    assert claims["jti"] != check_signature(got, TOKEN)["jti"]

    await idle(dispatcher)
    rows = {row.url: row for row in await deliveries(storage)}
    assert rows[registered.url].webhook_id is not None and rows[own.url].webhook_id is None
    for row in rows.values():
        assert (row.status, row.attempts, row.event) == ("delivered", 1, "callCreated")
        assert row.delivered_at is not None and row.payload.encode() == got.body


async def test_a_leg_update_is_rendered_as_the_api_shows_it(storage, dispatchers, receivers):
    receivers.append(Receiver())
    await storage.put(Webhook(url=receivers[0].url, token=TOKEN))
    dispatcher = await started(dispatchers, storage)
    leg = (await door_call(storage)).desk
    await dispatcher.publish(leg, created=False)
    (item,) = json.loads((await receivers[0].next()).body)["items"]
    assert item == {
        "type": "leg",
        "event": "legUpdated",
        "payload": LegView.of(leg).model_dump(mode="json", by_alias=True),
    }


async def test_a_receiver_that_fails_twice_gets_a_third_attempt(storage, dispatchers, receivers):
    receivers.append(Receiver(statuses=(500, 503)))
    await storage.put(Webhook(url=receivers[0].url, token=TOKEN))
    dispatcher = await started(dispatchers, storage)
    await dispatcher.publish((await door_call(storage)).recording, created=True)
    bodies = [(await receivers[0].next()).body for _ in range(3)]
    assert len(set(bodies)) == 1  # the same event each time
    await idle(dispatcher)
    (row,) = await deliveries(storage)
    assert (row.status, row.attempts, row.event) == ("delivered", 3, "recordingCreated")
    assert row.last_error == "HTTP 503 Service Unavailable"
    assert receivers[0].received.empty()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_dead_url_fails_after_its_attempts(storage, dispatchers):
    await storage.put(Webhook(url=f"http://127.0.0.1:{closed_port()}/hook", token=TOKEN))
    dispatcher = await started(dispatchers, storage)
    await dispatcher.publish((await door_call(storage)).call, created=False)
    await idle(dispatcher)
    (row,) = await deliveries(storage)
    assert (row.status, row.attempts, row.delivered_at) == ("failed", len(FAST) + 1, None)
    assert row.last_error.startswith("ConnectError")


async def test_dead_and_silent_receivers_hold_up_neither_publish_nor_the_others(storage, dispatchers, receivers):
    receivers.append(Receiver())
    with socket.socket() as black_hole:  # accepts connections (the kernel does), never answers
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(8)
        silent = f"http://127.0.0.1:{black_hole.getsockname()[1]}/hook"
        for url in (f"http://127.0.0.1:{closed_port()}/hook", silent, receivers[0].url):
            await storage.put(Webhook(url=url, token=TOKEN))
        dispatcher = await started(dispatchers, storage, timeout=60.0)
        call = (await door_call(storage)).call

        began = time.perf_counter()
        await dispatcher.publish(call, created=True)
        took = time.perf_counter() - began
        assert took < 0.25, f"publish took {took:.3f} s"  # it writes three rows, sends nothing

        await receivers[0].next()
        rows = {row.url: row for row in await deliveries(storage)}
        assert rows[silent].status == "pending" and rows[silent].attempts == 0  # still waiting for an answer


async def test_undelivered_events_wait_for_the_next_start(storage, dispatchers, receivers):
    receivers.append(Receiver(statuses=(500, 500)))
    await storage.put(Webhook(url=receivers[0].url, token=TOKEN))
    call = (await door_call(storage)).call

    before_start = WebhookDispatcher(storage, outbound=LOOPBACK_ALLOWED)
    await before_start.publish(call, created=True)  # not started: kept, not sent
    first = await started(dispatchers, storage, retry_delays=(60.0,))  # a retry far beyond the test
    await first.publish(call, created=False)
    sent = {json.loads((await receivers[0].next()).body)["items"][0]["event"] for _ in range(2)}
    assert sent == {"callCreated", "callUpdated"}  # both refused (500), to be retried in 60 s
    async with asyncio.timeout(STEP):
        await first.close()
    assert {row.status for row in await deliveries(storage)} == {"pending"}

    second = await started(dispatchers, storage)
    await idle(second)
    assert {(row.event, row.status) for row in await deliveries(storage)} == {
        ("callCreated", "delivered"),
        ("callUpdated", "delivered"),
    }
    resent = {json.loads((await receivers[0].next()).body)["items"][0]["event"] for _ in range(2)}
    assert resent == {"callCreated", "callUpdated"}


async def test_publish_never_raises(storage, caplog):
    dispatcher = WebhookDispatcher(storage)
    storage.close()
    with caplog.at_level(logging.ERROR, logger="intercom.hub.webhooks"):
        await dispatcher.publish(CallRecord(source="door", destination="client:desk"), created=True)
        await dispatcher.publish(LegRecord(call_id="c", source="door", destination="desk", direction="outgoing"), True)
    assert len(caplog.records) == 2 and "not queued" in caplog.records[0].getMessage()


async def test_a_loopback_receiver_is_refused_without_the_setting(storage, dispatchers, receivers):
    receivers.append(Receiver())
    await storage.put(Webhook(url=receivers[0].url, token=TOKEN))
    dispatcher = await started(dispatchers, storage, outbound=OutboundPolicy())
    await dispatcher.publish((await door_call(storage)).call, created=True)
    await idle(dispatcher)
    (row,) = await deliveries(storage)
    assert (row.status, row.attempts) == ("failed", len(FAST) + 1)
    assert row.last_error == (
        "OutboundRefused: 127.0.0.1 is a loopback address: refused "
        "(allow_loopback: intercom hub --allow-loopback-requests)"
    )
    assert receivers[0].received.empty()


async def test_the_receivers_answer_is_not_read(storage, dispatchers):
    """A 2xx whose body would never end (10 GB announced, nothing sent) is delivered at once: the
    hub reads the status and the headers, nothing more."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the hub hangs up
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        await storage.put(Webhook(url=f"http://127.0.0.1:{port}/hook", token=TOKEN))
        dispatcher = await started(dispatchers, storage, timeout=60.0)
        await dispatcher.publish((await door_call(storage)).call, created=True)
        await idle(dispatcher)
    (row,) = await deliveries(storage)
    assert (row.status, row.attempts) == ("delivered", 1)


async def test_while_the_database_refuses_writes_events_are_still_delivered_from_memory(
    storage, dispatchers, receivers
):
    receivers.append(Receiver(statuses=(500,)))  # one retry, also written nowhere
    await storage.put(Webhook(url=receivers[0].url, token=TOKEN))
    dispatcher = await started(dispatchers, storage)
    call = (await door_call(storage)).call
    storage._db.execute("PRAGMA query_only=1")  # what SQLite answers on a read-only or full disk
    await dispatcher.publish(call, created=False)
    first, again = await receivers[0].next(), await receivers[0].next()
    assert first.body == again.body and json.loads(first.body)["items"][0]["payload"]["id"] == call.id
    await idle(dispatcher)
    assert await deliveries(storage) == [] and "call_log" in storage.fault.parts


@pytest.mark.loopback_requests
async def test_a_webhook_made_without_a_token_has_its_deliveries_signed_with_the_one_the_hub_made(api, receivers):
    receivers.append(Receiver())
    response = await api.client.post("/webhooks", json={"title": "door log", "url": receivers[0].url})
    (webhook,) = response.json()["data"]
    await api.hub.running.app.state.webhooks.publish((await door_call(api.storage)).call, created=True)
    got = await receivers[0].next()
    check_signature(got, webhook["token"])
    with pytest.raises(jwt.InvalidSignatureError):
        check_signature(got, TOKEN)
