"""Debian's mosquitto on a loopback port, with logins from a password file and rights from an ACL,
plain or TLS: the broker of the MQTT bridge's tests (``tests/mqtt/conftest.py`` imports it as
``bench.mosquitto`` and adds its clients) and of ``bench/mqtt.py``.

Like :mod:`jack_probe` it imports nothing of intercom's, so that a benchmark runs it as a top-level
module. Passwords reach mosquitto only through the file, hashed in place by ``mosquitto_passwd -U``:
never on a command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

HOST = "127.0.0.1"
START_TIMEOUT = 15.0  # mosquitto listens within this, or the caller hears why not


def mosquitto_program() -> str | None:
    """Where Debian's mosquitto is (/usr/sbin, which a user's PATH may lack), or ``None``."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")


@dataclass
class Mosquitto:
    """One broker on ``HOST:port``; :meth:`start` and :meth:`stop` may alternate (a broker restart).
    Its log goes to ``folder/mosquitto.log``."""

    folder: Path
    port: int
    passwords: dict[str, str]
    tls: tuple[Path, Path] | None = None  # the broker's certificate and key
    process: asyncio.subprocess.Process | None = field(default=None, repr=False, kw_only=True)

    @classmethod
    def prepared(cls, folder: Path, port: int, passwords: dict[str, str], acl: str, **fields: Any) -> Self:
        """A broker not started yet, its password file (hashed) and ACL written into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "passwords"
        path.write_text("".join(f"{user}:{password}\n" for user, password in passwords.items()))
        path.chmod(0o600)
        subprocess.run(["mosquitto_passwd", "-U", str(path)], check=True, capture_output=True, timeout=30)
        (folder / "acl").write_text(acl)
        return cls(folder, port, passwords, **fields)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{HOST}:{self.port}"

    async def start(self, timeout: float = START_TIMEOUT) -> None:
        program = mosquitto_program()
        if program is None:
            raise FileNotFoundError("mosquitto is not installed (scripts/setup.sh installs it)")
        config = self.folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous false",
            f"password_file {self.folder / 'passwords'}",
            f"acl_file {self.folder / 'acl'}",
            "persistence false",
            "user root",  # started as root in CI: keep reading the caller's private files
            "log_dest stderr",
        ]
        if self.tls:
            lines += [f"certfile {self.tls[0]}", f"keyfile {self.tls[1]}"]
        config.write_text("\n".join(lines) + "\n")
        with (self.folder / "mosquitto.log").open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                program, "-c", str(config), stdout=asyncio.subprocess.DEVNULL, stderr=log
            )
        async with asyncio.timeout(timeout):
            while True:
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection(HOST, self.port)
                    writer.close()
                    return
                if self.process.returncode is not None:
                    raise RuntimeError(f"mosquitto exited at start: see {self.folder / 'mosquitto.log'}")
                await asyncio.sleep(0.02)  # polling for the port, with the deadline above

    async def stop(self, timeout: float = START_TIMEOUT) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            async with asyncio.timeout(timeout):
                await self.process.wait()
        self.process = None
