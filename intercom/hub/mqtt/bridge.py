"""One connection to the broker, kept up for as long as the hub runs.

A call never waits for the broker: :meth:`MqttBridge.publish` only appends to a bounded queue, and
a task of the bridge's own sends it. While the broker is away the queue keeps the newest
``queue_size`` messages; on every (re)connect the bridge announces itself online (the last will
says offline), subscribes again and runs the on-connect callbacks (discovery is republished there).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable

import aiomqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from .settings import MqttSettings
from .topics import OFFLINE, ONLINE, Topics

log = logging.getLogger(__name__)

OnConnect = Callable[[], Awaitable[None] | None]
Handler = Callable[[str, bytes, bool], Awaitable[None]]  # topic, payload, retained


class MqttBridge:
    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix, settings.discovery_prefix)
        self.dropped = 0  # messages lost to a full queue since start-up
        self._dropped_unsaid = 0  # of those, since the last connect
        self._queue: deque[tuple[str, bytes, bool, int]] = deque()
        self._queued = asyncio.Event()
        self._on_connect: list[OnConnect] = []
        self._handlers: dict[str, Handler] = {}
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handling: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def publish(self, topic: str, payload: str | bytes, retain: bool = False, qos: int = 1) -> None:
        """Queue a message; returns at once. When the queue is full the oldest message goes."""
        if len(self._queue) >= self.settings.queue_size:
            self._queue.popleft()
            self.dropped += 1
            self._dropped_unsaid += 1
            if self._dropped_unsaid == 1:  # once per outage; the count is said at the reconnect
                log.warning(
                    "mqtt: the queue is full, the oldest messages go (queue_size=%d: --mqtt-queue-size, "
                    "INTERCOM_MQTT_QUEUE_SIZE)",
                    self.settings.queue_size,
                )
        data = payload.encode() if isinstance(payload, str) else payload
        self._queue.append((topic, data, retain, qos))
        self._queued.set()

    def metrics(self) -> str:
        """The bridge's lines of /metrics: whether it is connected, what waits, what was lost."""
        return (
            "# TYPE intercom_mqtt_connected gauge\n"
            f"intercom_mqtt_connected {int(self.connected)}\n"
            "# TYPE intercom_mqtt_queued gauge\n"
            f"intercom_mqtt_queued {len(self._queue)}\n"
            "# TYPE intercom_mqtt_dropped_total counter\n"
            f"intercom_mqtt_dropped_total {self.dropped}\n"
        )

    def on_connect(self, callback: OnConnect) -> None:
        """Run ``callback`` after every (re)connect: publish what the broker must hold (discovery)."""
        self._on_connect.append(callback)

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Call ``handler(topic, payload, retained)`` for every message on ``topic_filter``, from now on:
        ``retained`` says the broker kept it from before (a command must not act on one)."""
        self._handlers[topic_filter] = handler
        if self._client is not None:
            client = self._client
            self._spawn(self._subscribe(client, topic_filter))

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mqtt bridge")

    async def close(self) -> None:
        """Say offline (so Home Assistant need not wait for the last will) and disconnect."""
        client = self._client
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await client.publish(self.topics.availability, OFFLINE, qos=1, retain=True, timeout=2)
        for task in [*self._handling, *([self._task] if self._task else [])]:
            task.cancel()
        await asyncio.gather(*self._handling, *([self._task] if self._task else []), return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        delay = self.settings.reconnect_min
        while True:
            try:
                async with self._new_client() as client:
                    delay = self.settings.reconnect_min
                    await self._connect(client)
                    await self._serve(client)
            except aiomqtt.MqttError as error:
                # The error is the broker's answer or the socket's; it never holds the password.
                log.warning("mqtt: %s: %s; retrying in %.1f s", self.settings.url, error, delay)
            except Exception:  # a bug must not end the bridge for good: said, and retried
                log.exception("mqtt: the connection to %s failed; retrying in %.1f s", self.settings.url, delay)
            finally:
                self._client = None
                self._connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.reconnect_max)

    def _new_client(self) -> aiomqtt.Client:
        settings = self.settings
        return aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password,
            identifier=settings.client_id,
            # MQTT 5 for retain-as-published: under 3.1.1 the broker clears the retain flag of a message
            # published while we are subscribed, and a retained Open door would open once, then linger.
            protocol=aiomqtt.ProtocolVersion.V5,
            will=aiomqtt.Will(self.topics.availability, OFFLINE, qos=1, retain=True),
            tls_context=settings.tls_context(),
            keepalive=settings.keepalive,
            timeout=10,
        )

    async def _connect(self, client: aiomqtt.Client) -> None:
        await client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        for topic_filter in self._handlers:
            await self._subscribe(client, topic_filter)
        self._client = client
        for callback in self._on_connect:
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except aiomqtt.MqttError:
                raise
            except Exception:
                log.exception("mqtt: an on-connect callback failed")
        self._connected.set()
        log.info("mqtt: connected to %s as %s", self.settings.url, self.settings.client_id)
        if self._dropped_unsaid:
            log.warning("mqtt: %d messages were dropped while the broker was away", self._dropped_unsaid)
            self._dropped_unsaid = 0

    async def _serve(self, client: aiomqtt.Client) -> None:
        sender = asyncio.create_task(self._send(client))
        try:
            async for message in client.messages:
                for topic_filter, handler in self._handlers.items():
                    if message.topic.matches(topic_filter):
                        self._spawn(handler(message.topic.value, bytes(message.payload), bool(message.retain)))  # type: ignore[arg-type]
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        if sender.done() and not sender.cancelled() and sender.exception():
            raise sender.exception()  # type: ignore[misc]

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            await self._queued.wait()
            while self._queue:
                topic, payload, retain, qos = self._queue[0]
                await client.publish(topic, payload, qos=qos, retain=retain)
                self._queue.popleft()  # only once sent: a broker lost mid-way gets it again
            self._queued.clear()

    async def _subscribe(self, client: aiomqtt.Client, topic_filter: str) -> None:
        # The retain flag as its publisher set it, so a handler can refuse a retained command however it comes.
        await client.subscribe(topic_filter, options=SubscribeOptions(qos=1, retainAsPublished=True))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("mqtt: handling a message failed")

        task = asyncio.create_task(run())
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)
