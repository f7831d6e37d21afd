"""Debian's Kamailio as the intercom edge (deploy/kamailio/kamailio.cfg) on loopback ports: the
edge of the tests in ``tests/kamailio`` (which import it as ``bench.kamailio`` and add fake hubs and
units) and of ``bench/cluster.py``.

Like :mod:`mosquitto` it imports nothing of intercom's, so that a benchmark runs it as a top-level
module.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "kamailio" / "kamailio.cfg"
WAIT = 10.0  # Kamailio listens, stops, or logs a line within this, or the caller hears why not
# Where the cfg adds the Path to a unit's REGISTER and relays it to a hub
RELAY_REGISTER = '\tif (is_method("REGISTER")) {\n\t\tif (!add_path_received()) {'
ANSWER_REGISTER = '\tif (is_method("REGISTER")) {\n\t\tsl_send_reply("200", "OK");\n\t\texit;\n\t}\n'


def kamailio_program() -> str | None:
    """Where Debian's kamailio is (/usr/sbin, which a user's PATH may lack), or ``None``."""
    return shutil.which("kamailio") or shutil.which("kamailio", path="/usr/sbin:/sbin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


async def wait_for_port(port: int, alive: Callable[[], bool], what: str) -> None:
    """Until ``HOST:port`` accepts a connection; raise at once if ``alive()`` turns false."""
    async with asyncio.timeout(WAIT):
        while True:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(HOST, port)
                writer.close()
                return
            if not alive():
                raise RuntimeError(f"{what} exited at start")
            await asyncio.sleep(0.02)  # polling for the port, with the deadline above


def register_answering_config(folder: Path, config: Path = CONFIG) -> Path:
    """``config`` changed to answer a unit's REGISTER 200 itself where it would relay it to a hub
    (every check, pike and the flow header done before): the edge's own floor, for a benchmark.
    Written into ``folder``; deploy/ is never changed."""
    text = config.read_text()
    if text.count(RELAY_REGISTER) != 1:
        raise RuntimeError(f"{config}: no single place where a REGISTER is relayed to a hub, to answer it instead")
    path = folder / "kamailio-answers-register.cfg"
    path.write_text(text.replace(RELAY_REGISTER, ANSWER_REGISTER + RELAY_REGISTER))
    return path


@dataclass
class Edge:
    """One Kamailio edge: units on ``wss://HOST:wss_port/``, hubs on SIP/TCP ``HOST:hub_port``.

    It runs ``config`` (kamailio.cfg exactly as it ships, unless a bench gives a variant) with its
    settings as ``-A NAME=VALUE`` (free ports, the certificate, a dispatcher list naming ``hubs``,
    their ``host:port`` SIP/TCP addresses). ``settings`` are more ``-A`` defines
    (``{"PIKE_DENSITY": 20}``, ``{"WITH_WS": None}``); a string value is quoted for Kamailio here.
    ``shared_memory_mb``: Kamailio's shared memory (each TLS WebSocket holds ~150 kB of it, and tm
    keeps every answered transaction a few seconds). The log is ``folder/kamailio.log``; a crashed
    Kamailio's core file lands in ``folder`` too (its working directory), not in ``/``.
    """

    folder: Path
    hubs: list[str]
    tls: tuple[Path, Path]
    settings: dict[str, str | int | None] = field(default_factory=dict)
    name: str = "edge1"
    wss_port: int = field(default_factory=free_port)
    hub_port: int = field(default_factory=free_port)
    config: Path = CONFIG
    shared_memory_mb: int | None = None  # kamailio -m; None: its default (64 MB)
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        """What units put in their Request-URIs (the published protocol's host:port)."""
        return f"{HOST}:{self.wss_port}"

    @property
    def url(self) -> str:
        return f"wss://{self.host}/"

    @property
    def log_file(self) -> Path:
        return self.folder / "kamailio.log"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def crashed(self) -> bool:
        """Whether a Kamailio process died of a signal (its main process logs it, then stops them all)."""
        return self.log_file.exists() and "exited by a signal" in self.log()

    async def logged(self, text: str) -> None:
        """Until ``text`` is in the log (a worker may write its line after it answered)."""
        async with asyncio.timeout(WAIT):
            while text not in self.log():
                await asyncio.sleep(0.02)  # polling the file, with the deadline above

    def defines(self) -> list[str]:
        values: dict[str, str | int | None] = {
            "EDGE_NAME": self.name,
            "WSS_ADDR": HOST,
            "WSS_PORT": self.wss_port,
            "HUB_ADDR": HOST,
            "HUB_PORT": self.hub_port,
            "TLS_CERT": str(self.tls[0]),
            "TLS_KEY": str(self.tls[1]),
            "DISPATCHER_LIST": str(self.folder / "dispatcher.list"),
            **self.settings,
        }
        arguments = []
        for name, value in values.items():
            if value is None:
                arguments += ["-A", name]
            elif isinstance(value, int):
                arguments += ["-A", f"{name}={value}"]
            else:
                arguments += ["-A", f'{name}="{value}"']
        return arguments

    async def start(self) -> None:
        program = kamailio_program()
        if program is None:
            raise FileNotFoundError("kamailio is not installed (scripts/setup.sh installs it)")
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "run").mkdir(exist_ok=True)
        (self.folder / "dispatcher.list").write_text("".join(f"1 sip:{hub};transport=tcp\n" for hub in self.hubs))
        with self.log_file.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                program, "-DD", "-E", "-f", str(self.config), "-Y", str(self.folder / "run"), "-w", str(self.folder),
                *(("-m", str(self.shared_memory_mb)) if self.shared_memory_mb else ()), *self.defines(),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        alive = lambda: self.process is not None and self.process.returncode is None  # noqa: E731
        try:
            for port in (self.wss_port, self.hub_port):
                await wait_for_port(port, alive, f"kamailio (see {self.log_file})")
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                async with asyncio.timeout(WAIT):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                async with asyncio.timeout(WAIT):
                    await self.process.wait()
        self.process = None
