"""An attacker on the door's cable: a TCP relay on 127.0.0.1 between the door and its hub.

It sees every byte both ways and keeps them, may change bytes on their way, and may instead end
the door's TLS itself with a certificate of its own (a man in the middle), reading what the door
then sends in clear. This is what a tap or a rogue switch between the door and the desk can do.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

Tamper = Callable[[bytes], bytes]


@dataclass
class Capture:
    """What crossed the cable, each way."""

    to_hub: bytearray = field(default_factory=bytearray)
    to_door: bytearray = field(default_factory=bytearray)

    @property
    def both(self) -> bytes:
        return bytes(self.to_hub + self.to_door)


class CableRelay:
    """Listens on 127.0.0.1 and relays each connection to ``upstream`` (``host``, ``port``).

    ``tamper_to_hub``, when set, may change each chunk the door sends before it goes on. With
    ``impostor`` (a server-side SSL context with the attacker's own certificate), the relay ends
    the door's TLS itself, keeps the clear text it reads, and opens its own TLS to the hub.
    """

    def __init__(self, upstream: tuple[str, int], impostor: ssl.SSLContext | None = None) -> None:
        self.upstream = upstream
        self.impostor = impostor
        self.capture = Capture()
        self.tamper_to_hub: Tamper | None = None
        self.connections = 0
        self._to_door: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def __aenter__(self) -> CableRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0, ssl=self.impostor)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _relay(self, door_reader: asyncio.StreamReader, door_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            upstream_tls = _any_certificate() if self.impostor is not None else None
            hub_reader, hub_writer = await asyncio.open_connection(*self.upstream, ssl=upstream_tls)
        except OSError:
            door_writer.close()
            self._tasks.discard(task)
            return
        self._to_door = door_writer
        try:
            await asyncio.gather(
                self._pipe(door_reader, hub_writer, self.capture.to_hub, tampered=True),
                self._pipe(hub_reader, door_writer, self.capture.to_door, tampered=False),
            )
        finally:
            for writer in (door_writer, hub_writer):
                writer.close()
            self._tasks.discard(task)

    def inject_to_door(self, data: bytes) -> None:
        """Write ``data`` into the stream toward the door, between what the hub sends."""
        assert self._to_door is not None, "no connection to inject into"
        self._to_door.write(data)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, kept: bytearray, tampered: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            while chunk := await reader.read(65536):
                kept += chunk
                if tampered and self.tamper_to_hub is not None:
                    chunk = self.tamper_to_hub(chunk)
                writer.write(chunk)
                await writer.drain()
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


def _any_certificate() -> ssl.SSLContext:
    """The impostor's own side to the hub: it trusts whatever the hub shows."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
