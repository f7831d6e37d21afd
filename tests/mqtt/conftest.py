"""A real broker for the MQTT bridge's tests: Debian's mosquitto on 127.0.0.1, with a password file
and an ACL (the bridge may write its own prefixes; a watcher may read everything), plain or TLS."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
import pytest

from intercom.hub.mqtt.settings import MqttSettings

from ..appliance.conftest import boards  # noqa: F401  (whole units on mock pins, for the Home Assistant tests)
from ..units import STEP

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
class Broker:
    folder: Path
    port: int
    passwords: dict[str, str]
    tls: tuple[Path, Path] | None = None  # the broker's certificate and key
    ca_file: Path | None = None  # what the watcher trusts, under TLS
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

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

    async def start(self) -> None:
        config = self.folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {self.folder / 'passwords'}",
            f"acl_file {self.folder / 'acl'}",
            "persistence false",
            "user root",  # started as root in CI: keep reading the test's private files
            "log_dest stderr",
        ]
        if self.tls:
            lines += [f"certfile {self.tls[0]}", f"keyfile {self.tls[1]}"]
        config.write_text("\n".join(lines) + "\n")
        self.process = await asyncio.create_subprocess_exec(
            mosquitto(), "-c", str(config), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        async with asyncio.timeout(STEP):
            while True:
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    writer.close()
                    return
                assert self.process.returncode is None, "mosquitto exited at start"
                await asyncio.sleep(0.02)  # polling for the port, with the deadline above

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            async with asyncio.timeout(STEP):
                await self.process.wait()
        self.process = None


def mosquitto() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if found is None:
        pytest.skip("mosquitto is not installed (scripts/setup.sh installs it)")
    return found


def write_passwords(folder: Path, passwords: dict[str, str]) -> None:
    """The password file, hashed by mosquitto_passwd -U: no password on a command line."""
    path = folder / "passwords"
    path.write_text("".join(f"{user}:{password}\n" for user, password in passwords.items()))
    path.chmod(0o600)
    subprocess.run(["mosquitto_passwd", "-U", str(path)], check=True, capture_output=True, timeout=30)


@pytest.fixture
def make_broker(tmp_path: Path) -> Callable[..., Broker]:
    def make(
        tls: tuple[Path, Path] | None = None, ca_file: Path | None = None, acl: str = "", users: tuple[str, ...] = ()
    ) -> Broker:
        """A broker not started yet; ``acl`` adds lines to the ACL for ``users``, more users of a
        test's own (Home Assistant's, say), each with a password of its own."""
        folder = tmp_path / "broker"
        folder.mkdir(exist_ok=True)
        everyone = (BRIDGE_USER, WATCHER_USER, STRANGER_USER, *users)
        passwords = {user: secrets.token_urlsafe(16) for user in everyone}
        write_passwords(folder, passwords)
        (folder / "acl").write_text(ACL + acl)
        return Broker(folder, free_port(), passwords, tls, ca_file)

    return make


@pytest.fixture
async def broker(make_broker: Callable[..., Broker]) -> AsyncIterator[Broker]:
    running = make_broker()
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
