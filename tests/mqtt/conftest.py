"""A real broker for the MQTT bridge's tests: Debian's mosquitto on 127.0.0.1, with a password file
and an ACL (the bridge may write its own prefixes; a watcher may read everything), plain or TLS.
The process is :mod:`bench.mosquitto`'s, which bench/mqtt.py starts too."""

from __future__ import annotations

import secrets
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from bench.mosquitto import Mosquitto, mosquitto_program
from intercom.hub.mqtt.settings import MqttSettings

from ..appliance.conftest import boards  # noqa: F401  (whole units on mock pins, for the Home Assistant tests)

BRIDGE_USER, WATCHER_USER, STRANGER_USER = "intercom", "watcher", "stranger"  # the stranger may do nothing
ACL = f"""user {BRIDGE_USER}
topic readwrite intercom/#
topic readwrite homeassistant/#
user {WATCHER_USER}
topic read #
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Broker(Mosquitto):
    """The tests' broker: the bridge's settings and other clients of it."""

    ca_file: Path | None = None  # what the watcher trusts, under TLS

    def settings(self, **options: object) -> MqttSettings:
        """The bridge's settings, with its password and small back-off for tests."""
        options = {"username": BRIDGE_USER, "password": self.passwords[BRIDGE_USER], **options}
        options.setdefault("reconnect_min", 0.05)
        options.setdefault("reconnect_max", 0.2)
        return MqttSettings.from_url(self.url, **options)

    def watcher(self, user: str = WATCHER_USER) -> aiomqtt.Client:
        """A client that may read every topic (and write none), or another of the ACL's users."""
        return self.client(user)

    def client(self, user: str, password: str | None = None, **options: object) -> aiomqtt.Client:
        """A client of ``user``, with its password unless told another; trusting the test CA under TLS."""
        tls = ssl.create_default_context(cafile=str(self.ca_file)) if self.tls else None
        password = self.passwords[user] if password is None else password
        return aiomqtt.Client("127.0.0.1", self.port, username=user, password=password, tls_context=tls, **options)


@pytest.fixture
def make_broker(tmp_path: Path) -> Callable[..., Broker]:
    def make(
        tls: tuple[Path, Path] | None = None, ca_file: Path | None = None, acl: str = "", users: tuple[str, ...] = ()
    ) -> Broker:
        """A broker not started yet; ``acl`` adds lines to the ACL for ``users``, more users of a
        test's own (Home Assistant's, say), each with a password of its own."""
        if mosquitto_program() is None:
            pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
        everyone = (BRIDGE_USER, WATCHER_USER, STRANGER_USER, *users)
        passwords = {user: secrets.token_urlsafe(16) for user in everyone}
        return Broker.prepared(tmp_path / "broker", free_port(), passwords, ACL + acl, tls=tls, ca_file=ca_file)

    return make


@pytest.fixture
async def broker(make_broker: Callable[..., Broker]) -> AsyncIterator[Broker]:
    running = make_broker()
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
