"""The MQTT bridge against a real mosquitto: password, events of a real call, a broker restart, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from intercom.hub.mqtt.bridge import MqttBridge
from intercom.sdk import CallStatus

from ..units import STEP, door_and_desk
from .conftest import STRANGER_USER, Broker


class Watcher:
    """Every message the broker hands a read-everything client, in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []

    def on(self, topic: str) -> list[bytes]:
        return [payload for name, payload, _ in self.messages if name == topic]

    async def until(self, condition, what: str) -> None:
        async with asyncio.timeout(STEP):
            while not condition():
                await asyncio.sleep(0.01)  # polling a condition, with the deadline above
        assert condition(), what


@contextlib.asynccontextmanager
async def watching(broker: Broker) -> AsyncIterator[Watcher]:
    watcher = Watcher()

    async def read() -> None:
        async with broker.watcher() as client:
            await client.subscribe("#", qos=1)
            subscribed.set()
            async for message in client.messages:
                watcher.messages.append((message.topic.value, bytes(message.payload), message.retain))

    subscribed = asyncio.Event()
    task = asyncio.create_task(read())
    async with asyncio.timeout(STEP):
        await subscribed.wait()
    try:
        yield watcher
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def running(bridge: MqttBridge) -> AsyncIterator[MqttBridge]:
    await bridge.start()
    try:
        yield bridge
    finally:
        async with asyncio.timeout(STEP):
            await bridge.close()


async def test_the_bridge_connects_with_its_password_says_online_and_publishes(broker):
    async with watching(broker) as watcher, running(MqttBridge(broker.settings())) as bridge:
        async with asyncio.timeout(STEP):
            await bridge.wait_connected()
        bridge.publish(bridge.topics.unit("door", "event"), '{"x": 1}')
        await watcher.until(lambda: watcher.on("intercom/door/event") == [b'{"x": 1}'], "the event")
        assert b"online" in watcher.on(bridge.topics.availability)
    await watcher.until(lambda: watcher.on(bridge.topics.availability)[-1:] == [b"offline"], "offline at close")


async def test_a_wrong_password_is_refused_and_logged_without_it(broker, caplog):
    secret = "not-the-password-1234"
    bridge = MqttBridge(broker.settings(password=secret))
    caplog.set_level(logging.WARNING, logger="intercom.hub.mqtt")
    async with watching(broker) as watcher, running(bridge):
        bridge.publish("intercom/door/event", "lost")
        async with asyncio.timeout(STEP):
            while not any("mqtt" in record.getMessage() for record in caplog.records):
                await asyncio.sleep(0.01)  # polling the log, with the deadline above
        assert not bridge.connected
    lines = [record.getMessage() for record in caplog.records]
    assert any(broker.url in line for line in lines), lines
    assert not any(secret in line for line in caplog.text.splitlines()), caplog.text
    assert watcher.on("intercom/door/event") == []


async def test_a_full_queue_drops_the_oldest_says_so_and_sends_the_rest(broker, caplog):
    bridge = MqttBridge(broker.settings(queue_size=3))
    caplog.set_level(logging.WARNING, logger="intercom.hub.mqtt")
    for number in range(5):  # the broker not reached yet: all wait in the queue
        bridge.publish("intercom/door/event", str(number))
    assert bridge.dropped == 2
    assert "intercom_mqtt_queued 3\n" in bridge.metrics()
    assert "intercom_mqtt_dropped_total 2\n" in bridge.metrics()
    assert caplog.text.count("queue is full, the oldest messages go (queue_size=3: --mqtt-queue-size") == 1
    async with watching(broker) as watcher, running(bridge):
        await watcher.until(lambda: watcher.on("intercom/door/event") == [b"2", b"3", b"4"], "the newest three")
        await watcher.until(lambda: "intercom_mqtt_queued 0\n" in bridge.metrics(), "the queue emptied")  # once acked
        assert "intercom_mqtt_connected 1\n" in bridge.metrics()
    assert "mqtt: 2 messages were dropped while the broker was away" in caplog.text


def test_a_url_with_a_password_or_another_scheme_is_refused():
    from intercom.hub.mqtt.settings import MqttSettings

    with pytest.raises(ValueError, match="must not hold a user or password"):
        MqttSettings.from_url("mqtt://user:secret@127.0.0.1")
    with pytest.raises(ValueError, match="mqtt://host"):
        MqttSettings.from_url("http://127.0.0.1")
    assert MqttSettings.from_url("mqtts://127.0.0.1").port == 8883


def test_the_password_is_not_in_the_settings_repr(broker):
    assert broker.passwords["intercom"] not in repr(broker.settings())


@pytest.fixture
def hub_config(hub_config, broker):
    return replace(hub_config, mqtt=broker.settings())


async def a_call(hub, door, desk) -> None:
    """The door rings the desk, the desk answers, the door hangs up."""
    call = door.start_call()
    incoming = await desk.next_incoming(len(desk.events.incoming) + 1)
    await desk.accept(incoming)
    async with asyncio.timeout(STEP):
        await door.events.until(lambda: call.status is CallStatus.CONFIRMED)
        await call.disconnect()
        await hub.running.app.state.calls.wait_idle()


async def test_the_events_of_a_real_call_arrive_as_json_on_the_units_topic(broker, hub, make_unit):
    async with watching(broker) as watcher:
        async with asyncio.timeout(STEP):
            await hub.running.app.state.mqtt.wait_connected()
        door, desk = await door_and_desk(hub, make_unit)
        await a_call(hub, door, desk)
        await watcher.until(
            lambda: any(json.loads(p)["event"] == "callUpdated" and json.loads(p)["payload"]["status"] == "ended"
                        for p in watcher.on("intercom/door/event")),
            "the call's end",
        )  # fmt: skip
    events = [json.loads(payload) for payload in watcher.on("intercom/door/event")]
    assert events[0]["type"] == "call" and events[0]["event"] == "callCreated"
    assert {"timestamp", "type", "event", "payload"} <= set(events[0])
    assert events[0]["payload"]["source"] == "client:door"
    assert {event["type"] for event in events} >= {"call", "leg"}


def make_certificate(folder: Path, name: str, issuer: tuple[Path, Path] | None) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    if issuer is None:
        command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                   "-nodes", "-days", "2", "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True, timeout=30)
        return cert, key
    request = folder / f"{name}.csr"
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(request), *subject],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    extensions = folder / "san.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(
        ["openssl", "x509", "-req", "-in", str(request), "-CA", str(issuer[0]), "-CAkey", str(issuer[1]),
         "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(extensions)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("trust", ["ca_file", "pinned_cert", "system"])
async def test_tls_with_a_ca_file_or_a_pinned_certificate(make_broker, tmp_path, caplog, trust):
    ca = make_certificate(tmp_path, "test-ca", None)
    server = make_certificate(tmp_path, "broker", ca)
    broker = make_broker(tls=server, ca_file=ca[0])
    await broker.start()
    try:
        options = {"ca_file": ca[0], "pinned_cert": server[0], "system": None}
        settings = broker.settings(**({trust: options[trust]} if trust != "system" else {}))
        assert settings.tls
        caplog.set_level(logging.WARNING, logger="intercom.hub.mqtt")
        async with watching(broker) as watcher, running(MqttBridge(settings)) as bridge:
            if trust == "system":  # the test CA is in no system store: refused, and said why
                async with asyncio.timeout(STEP):
                    while "certificate verify failed" not in caplog.text:
                        await asyncio.sleep(0.01)  # polling the log, with the deadline above
                assert not bridge.connected
                return
            bridge.publish("intercom/door/event", "over tls")
            await watcher.until(lambda: watcher.on("intercom/door/event") == [b"over tls"], "the message over TLS")
    finally:
        await broker.stop()


async def test_the_brokers_acl_lets_a_stranger_publish_nothing_on_the_bridges_topics(broker):
    async with watching(broker) as watcher, running(MqttBridge(broker.settings())) as bridge:
        async with asyncio.timeout(STEP), broker.watcher(STRANGER_USER) as stranger:
            await stranger.publish("intercom/door/event", "forged", qos=1)  # mosquitto drops it silently
        bridge.publish("intercom/door/event", "real")
        await watcher.until(lambda: b"real" in watcher.on("intercom/door/event"), "the bridge's own")
    assert watcher.on("intercom/door/event") == [b"real"]
